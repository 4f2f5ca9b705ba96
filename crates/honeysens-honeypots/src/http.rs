//! `http`: a web server with a login page (axum) that records requests, submitted credentials
//! and scanner fingerprints.
//!
//! - `http.login`: every credential submission — a form or query with a user and a password
//!   field (any path), or an `Authorization: Basic` header — with `user:` and `password:`.
//! - `http.scanner`: a request with a known scanner's user agent (nmap, nikto, sqlmap,
//!   masscan, zgrab, …) or a well-known probe path (`/.env`, `/wp-login.php`, `/cgi-bin/`,
//!   path traversal, …). At most one per source and fingerprint per window; later matches are
//!   counted into the aggregated `http.request`.
//! - `http.request`: aggregated per source: one event per window (default one minute) listing
//!   the requests (`request: GET /path`, up to 100), their count, and the first request's
//!   `user_agent:` and other headers of interest. A crawler yields a handful of events, not
//!   thousands.

use crate::event::{Reporter, detail, new_event, one_line, truncate};
use crate::sink::EventSink;
use crate::{Error, Shutdown};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use base64::Engine;
use honeysens_core::model::Protocol;
use honeysens_core::protocol::IntakeEvent;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Configuration of the HTTP honeypot.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Service name put into events.
    pub service: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// `Server` header and page title product.
    pub server_header: String,
    /// Aggregation window for `http.request` and for repeated `http.scanner` events.
    pub window: Duration,
}

impl HttpConfig {
    /// Defaults for a server on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        HttpConfig {
            service: "http".into(),
            listen,
            server_header: "nginx/1.22.1".into(),
            window: Duration::from_secs(60),
        }
    }
}

/// User-agent fragments of well-known scanners (matched lowercase).
const SCANNER_AGENTS: &[&str] = &[
    "nmap",
    "nikto",
    "sqlmap",
    "masscan",
    "zgrab",
    "nuclei",
    "gobuster",
    "dirbuster",
    "wpscan",
    "acunetix",
    "nessus",
    "openvas",
    "zmeu",
    "hydra",
    "wfuzz",
    "ffuf",
    "feroxbuster",
    "censysinspect",
    "expanse",
];

/// Path fragments of well-known probes (matched on the lowercase, once-decoded path+query).
const PROBE_PATHS: &[&str] = &[
    "/.env",
    "/.git/",
    "/.aws/",
    "/.ssh/",
    "/wp-login.php",
    "/wp-admin",
    "/xmlrpc.php",
    "/cgi-bin/",
    "/phpmyadmin",
    "/pma/",
    "/etc/passwd",
    "/boaform/",
    "/hnap1",
    "/actuator",
    "/server-status",
    "/vendor/phpunit",
    "/solr/admin",
    "/manager/html",
    "/console/",
    "/shell",
    "/.ds_store",
    "/config.json",
    "/owa/",
    "../",
    "..\\",
    "${jndi:",
];

/// Why a request looks like a scanner, if it does.
pub fn scanner_fingerprint(path_and_query: &str, user_agent: &str) -> Option<String> {
    let ua = user_agent.to_ascii_lowercase();
    if let Some(s) = SCANNER_AGENTS.iter().find(|s| ua.contains(*s)) {
        return Some(format!("user agent {s}"));
    }
    let raw = path_and_query.to_ascii_lowercase();
    let decoded = percent_decode(&raw).to_ascii_lowercase();
    if raw.contains("%2e%2e") || raw.contains("..%2f") || raw.contains("..%5c") {
        return Some("path traversal".into());
    }
    PROBE_PATHS
        .iter()
        .find(|p| decoded.contains(*p))
        .map(|p| format!("probe {}", p.trim_end_matches('/')))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// User and password fields of a form or query (common field names).
pub fn credentials(pairs: &[(String, String)]) -> Option<(String, String)> {
    const USER: &[&str] = &[
        "user", "username", "login", "email", "uname", "usr", "log", "name",
    ];
    const PASS: &[&str] = &["password", "pass", "passwd", "pwd", "pw", "secret"];
    let find = |names: &[&str]| {
        pairs
            .iter()
            .find(|(k, _)| names.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(_, v)| v.clone())
    };
    let pass = find(PASS)?;
    Some((find(USER).unwrap_or_default(), pass))
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    remote: SocketAddr,
    local: SocketAddr,
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(target: IncomingStream<'_, TcpListener>) -> Self {
        let remote = *target.remote_addr();
        let local = target
            .io()
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0));
        Peer { remote, local }
    }
}

struct Pending {
    first_at: Instant,
    first: IntakeEvent,
    requests: Vec<String>,
    count: u64,
}

struct App {
    config: HttpConfig,
    reporter: Reporter,
    pending: Mutex<HashMap<IpAddr, Pending>>,
    scanner_seen: Mutex<HashMap<(IpAddr, String), Instant>>,
}

/// Runs the HTTP honeypot until `shutdown` is cancelled.
pub async fn run(config: HttpConfig, sink: EventSink, shutdown: Shutdown) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Bind(config.listen, e))?;
    tracing::info!(addr = ?listener.local_addr().ok(), "http: listening");
    let app = Arc::new(App {
        config: config.clone(),
        reporter: Reporter::new(sink),
        pending: Mutex::new(HashMap::new()),
        scanner_seen: Mutex::new(HashMap::new()),
    });
    let router = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(app.clone());
    let flusher = {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let tick =
                (app.config.window / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(tick) => flush(&app, false),
                }
            }
            flush(&app, true);
        })
    };
    let serve = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let r = serve.await;
    shutdown.cancel();
    let _ = flusher.await;
    r.map_err(Error::Io)
}

fn flush(app: &App, all: bool) {
    let now = Instant::now();
    let due: Vec<Pending> = match app.pending.lock() {
        Ok(mut p) => {
            let keys: Vec<IpAddr> = p
                .iter()
                .filter(|(_, v)| all || now.duration_since(v.first_at) >= app.config.window)
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| p.remove(k)).collect()
        }
        Err(_) => Vec::new(),
    };
    for mut p in due {
        let mut ev = p.first;
        if p.count > 1 {
            ev.summary = format!("{} HTTP requests", p.count);
        }
        detail(&mut ev, false, "requests", p.count);
        let listed = p.requests.len() as u64;
        for r in p.requests.drain(..) {
            detail(&mut ev, true, "request", r);
        }
        if p.count > listed {
            detail(&mut ev, false, "requests_not_listed", p.count - listed);
        }
        app.reporter.report(ev);
    }
    if let Ok(mut s) = app.scanner_seen.lock() {
        s.retain(|_, t| now.duration_since(*t) < app.config.window);
    }
}

const LOGIN_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in</title>
<style>body{font-family:sans-serif;background:#eef;display:flex;justify-content:center;margin-top:10%}
form{background:#fff;padding:2em;border-radius:6px;box-shadow:0 0 8px #aab}
input{display:block;margin:.5em 0 1em;padding:.4em;width:16em}</style></head>
<body><form method="post" action="/login"><h2>Management console</h2>{ERROR}
<label>Username<input name="username" autocomplete="username"></label>
<label>Password<input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button></form></body></html>
"#;

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let ua = h(header::USER_AGENT).unwrap_or_default();
    let pq = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| uri.path().to_owned());
    let request_line = format!("{method} {}", truncate(&pq, 1024));
    let config = &app.config;
    let event = |code: &str, summary: String| {
        let mut ev = new_event(
            &config.service,
            peer.remote,
            peer.local,
            Protocol::Tcp,
            code,
            summary,
        );
        detail(&mut ev, true, "method", method.as_str());
        detail(&mut ev, true, "path", truncate(&pq, 2048));
        if !ua.is_empty() {
            detail(&mut ev, true, "user_agent", &ua);
        }
        ev
    };

    // Credentials: form body, query, or HTTP basic authentication.
    let mut pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let is_form =
        h(header::CONTENT_TYPE).is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if method == Method::POST && (is_form || !body.is_empty()) {
        pairs.extend(form_urlencoded::parse(&body).into_owned());
    }
    let mut creds = credentials(&pairs).map(|c| (c, "form"));
    if let Some(basic) = h(header::AUTHORIZATION)
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
    {
        let s = String::from_utf8_lossy(&basic).into_owned();
        let (u, p) = s.split_once(':').unwrap_or((s.as_str(), ""));
        creds = Some(((u.to_owned(), p.to_owned()), "basic"));
    }
    if let Some(((user, password), how)) = &creds {
        let mut ev = event(
            "http.login",
            format!("HTTP login attempt for {}", one_line(user)),
        );
        detail(&mut ev, true, "user", user);
        detail(&mut ev, true, "password", password);
        detail(&mut ev, false, "auth", how);
        app.reporter.report(ev);
    }

    if let Some(reason) = scanner_fingerprint(&pq, &ua) {
        let key = (peer.remote.ip(), reason.clone());
        let fresh = app
            .scanner_seen
            .lock()
            .map(|mut s| s.insert(key, Instant::now()).is_none())
            .unwrap_or(true);
        if fresh {
            let mut ev = event(
                "http.scanner",
                format!(
                    "HTTP scanner: {reason} ({})",
                    one_line(truncate(&request_line, 200))
                ),
            );
            detail(&mut ev, false, "fingerprint", &reason);
            app.reporter.report(ev);
        }
    }

    // Aggregated request record.
    if let Ok(mut p) = app.pending.lock() {
        let entry = p.entry(peer.remote.ip()).or_insert_with(|| {
            let mut ev = event(
                "http.request",
                format!("HTTP request {}", one_line(truncate(&request_line, 200))),
            );
            for (name, key) in [
                (header::HOST, "host"),
                (header::REFERER, "referer"),
                (header::CONTENT_TYPE, "content_type"),
                (header::COOKIE, "cookie"),
            ] {
                if let Some(v) = h(name) {
                    detail(&mut ev, true, key, v);
                }
            }
            if let Some(v) = h(header::HeaderName::from_static("x-forwarded-for")) {
                detail(&mut ev, true, "x_forwarded_for", v);
            }
            Pending {
                first_at: Instant::now(),
                first: ev,
                requests: Vec::new(),
                count: 0,
            }
        });
        entry.count += 1;
        if entry.requests.len() < 100 {
            entry.requests.push(request_line.clone());
        }
    }

    let server = HeaderValue::from_str(&config.server_header)
        .unwrap_or_else(|_| HeaderValue::from_static("nginx"));
    let page = |status: StatusCode, error: &str| {
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            LOGIN_PAGE.replace("{ERROR}", error),
        )
            .into_response();
        r.headers_mut().insert(header::SERVER, server.clone());
        r
    };
    let path = uri.path();
    if creds.is_some() {
        return page(
            StatusCode::UNAUTHORIZED,
            "<p style=\"color:#b00\">Invalid username or password.</p>",
        );
    }
    if ["/", "/login", "/index.html", "/admin", "/login.php"].contains(&path) {
        return page(StatusCode::OK, "");
    }
    let mut r = (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>\n",
    )
        .into_response();
    r.headers_mut().insert(header::SERVER, server);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_scanners_and_probes() {
        assert!(
            scanner_fingerprint("/", "Mozilla/5.0 (compatible; Nmap Scripting Engine)").is_some()
        );
        assert!(scanner_fingerprint("/", "Mozilla/5.00 (Nikto/2.1.6)").is_some());
        assert!(scanner_fingerprint("/.env", "curl/8").is_some());
        assert!(scanner_fingerprint("/cgi-bin/test.sh", "").is_some());
        assert!(scanner_fingerprint("/static/..%2f..%2fetc/passwd", "").is_some());
        assert!(scanner_fingerprint("/a/%2e%2e/b", "").is_some());
        assert!(scanner_fingerprint("/wp-login.php", "x").is_some());
        assert!(scanner_fingerprint("/index.html", "curl/8.0").is_none());
        assert!(scanner_fingerprint("/login?user=a", "Mozilla/5.0").is_none());
    }

    #[test]
    fn finds_credentials_in_common_fields() {
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            credentials(&p(&[("username", "admin"), ("password", "x")])),
            Some(("admin".into(), "x".into()))
        );
        assert_eq!(
            credentials(&p(&[("log", "wp"), ("pwd", "y")])),
            Some(("wp".into(), "y".into()))
        );
        assert_eq!(credentials(&p(&[("q", "search")])), None);
    }
}
