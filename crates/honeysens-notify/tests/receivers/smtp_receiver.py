"""SMTP receiver for the honeysens-notify tests, built on aiosmtpd.

Modes: plain, starttls (STARTTLS required), tls (implicit TLS), auth (STARTTLS required, then
AUTH with --user/--password; aiosmtpd refuses AUTH before TLS). Every accepted message is parsed
with Python's email module and written to <out>/<n>.json as
{mail_from, rcpt_tos, subject, body, content_type, tls, auth_user}. Prints "READY <port>" once
listening; runs until killed.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Store:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": msg["subject"],
            "body": msg.get_content(),
            "content_type": msg.get_content_type(),
            # session.ssl is set by STARTTLS; with implicit TLS the transport itself is TLS.
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "auth_user": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
        }
        self.n += 1
        tmp = os.path.join(self.out, f".{self.n}.json")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out, f"{self.n}.json"))
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["plain", "starttls", "tls", "auth"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    ctx = None
    if a.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        # auth_data ends up in session.auth_data, where the message handler reads the login.
        # handled=False: aiosmtpd itself answers 535 on failure (its default expects us to).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    kwargs = {}
    if a.mode in ("starttls", "auth"):
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.mode == "tls":
        kwargs.update(ssl_context=ctx)
    if a.mode == "auth":
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    else:
        kwargs.update(auth_require_tls=False)

    port = free_port()
    controller = Controller(Store(a.out), hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs)
    controller.start()
    print(f"READY {port}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
