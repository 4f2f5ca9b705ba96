"""Webhook receiver for the honeysens-notify tests (Python's http.server).

Verifies X-HoneySens-Signature itself with hmac (sha256 over "<timestamp>.<body>") and appends
one JSON line per request to --out: {path, event, delivery, timestamp, user_agent,
content_type, signature, verdict, body, received_at}
(received_at: Unix seconds when the headers had arrived, for latency measurements). verdict is "valid", "invalid" or "unsigned".
Paths /status/<code> answer with that code (after recording); others answer 204.
Serves HTTPS with --cert/--key. Prints "READY <port>" once listening.
"""

import argparse
import hashlib
import hmac
import json
import time
import ssl
from http.server import BaseHTTPRequestHandler, HTTPServer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--secret", default="")
    p.add_argument("--out", required=True)
    p.add_argument("--cert", help="serve HTTPS with this certificate (and --key)")
    p.add_argument("--key")
    a = p.parse_args()
    secret = a.secret.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received_at = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ts = self.headers.get("X-HoneySens-Timestamp", "")
            sig = self.headers.get("X-HoneySens-Signature")
            if sig is None:
                verdict = "unsigned"
            else:
                want = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                verdict = "valid" if hmac.compare_digest(want, sig) else "invalid"
            rec = {
                "path": self.path,
                "event": self.headers.get("X-HoneySens-Event"),
                "delivery": self.headers.get("X-HoneySens-Delivery"),
                "timestamp": ts,
                "user_agent": self.headers.get("User-Agent"),
                "content_type": self.headers.get("Content-Type"),
                "signature": sig,
                "verdict": verdict,
                "body": json.loads(body),
                "received_at": received_at,
            }
            with open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            code = 204
            if self.path.startswith("/status/"):
                code = int(self.path.rsplit("/", 1)[1])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"READY {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
