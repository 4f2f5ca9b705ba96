//! End-to-end tests of the real `honeysens-server` binary: each test gets its own temporary
//! data directory and servers listen on `127.0.0.1:0`; the port is read from the
//! "listening on" line. Servers are killed when their guard drops, so a failing test leaves no
//! process behind.
//!
//! Async tests run on a multi-threaded runtime: `ServerProc::stop` blocks the test thread,
//! and the clients' connection tasks must still answer the server's HTTP/2 shutdown (GOAWAY
//! and PING) meanwhile, as a live sensor would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::Store;
use honeysens_core::ids::SensorId;
use honeysens_core::model::Role;
use honeysens_core::password::verify_password;
use honeysens_http::client::{SensorAuth, SensorClient};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_honeysens-server");

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "honeysens-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment (no `HONEYSENS_*` or `RUST_LOG` from the caller).
fn bare_command() -> Command {
    let mut c = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HONEYSENS_") {
            c.env_remove(key);
        }
    }
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

/// The binary working on `data_dir`.
fn command(data_dir: &Path) -> Command {
    let mut c = bare_command();
    c.arg("--data-dir").arg(data_dir);
    c
}

fn run(data_dir: &Path, args: &[&str]) -> Output {
    command(data_dir).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A running server; killed on drop unless stopped.
struct ServerProc {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    url: String,
}

impl ServerProc {
    fn start(data_dir: &Path, envs: &[(&str, &str)]) -> ServerProc {
        let mut cmd = command(data_dir);
        cmd.args(["--listen", "127.0.0.1:0", "serve"])
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let out_lines = Arc::new(Mutex::new(Vec::new()));
        let err_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let (out, lines) = (child.stdout.take().unwrap(), out_lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (err, lines) = (child.stderr.take().unwrap(), err_lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut server = ServerProc {
            child,
            stdout: out_lines,
            stderr: err_lines,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        server.url = rest.split(' ').next().unwrap().to_owned();
                        return server;
                    }
                }
                Err(_) => panic!(
                    "server did not come up; stdout:\n{}\nstderr:\n{}",
                    server.stdout(),
                    server.stderr()
                ),
            }
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit.
    fn stop(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        while started.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server still running 10 s after SIGTERM");
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The initial admin password from the startup output, if it was printed.
fn printed_password(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|l| l.split("Initial admin user: admin / password: ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().to_owned())
}

async fn open_store(data_dir: &Path) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", data_dir.join("honeysens.db").display());
    honeysens_store::open(&url, &Default::default())
        .await
        .unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// (a) First start initialises everything; a second start reuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_initialises_and_restart_reuses() {
    let tmp = TempDir::new("first");
    let data = tmp.join("data");
    let mut server = ServerProc::start(&data, &[]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    assert!(!server.url.ends_with(":0"));
    let output = server.stdout();
    assert!(output.contains(&format!("(CA: {})", data.join("ca.crt").display())));
    let password = printed_password(&output).expect("admin password printed");
    assert!(password.len() >= 20);

    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("ca.crt")), 0o644);
    assert_eq!(mode(&data.join("server.key")), 0o600);
    assert!(read(&data.join("server.crt")).contains("BEGIN CERTIFICATE"));
    let ca_pem = read(&data.join("ca.crt"));
    let server_pem = read(&data.join("server.crt"));

    let health = run(&data, &["healthcheck", "--url", &server.url]);
    assert!(health.status.success(), "{}", stderr(&health));
    // The default URL comes from --listen; with port 0 nothing listens there, so give the port.
    let port = server.url.rsplit(':').next().unwrap();
    let health = run(
        &data,
        &["--listen", &format!("0.0.0.0:{port}"), "healthcheck"],
    );
    assert!(health.status.success(), "{}", stderr(&health));
    // The server certificate also names localhost.
    let local = run(
        &data,
        &["healthcheck", "--url", &format!("https://localhost:{port}")],
    );
    assert!(local.status.success(), "{}", stderr(&local));

    let (status, _) = server.stop();
    assert!(status.success());

    let store = open_store(&data).await;
    let (admin, hash) = store.get_user_credentials("admin").await.unwrap();
    assert_eq!(admin.spec.role, Role::Admin);
    assert!(admin.must_change_password);
    assert!(verify_password(&password, &hash));
    assert_eq!(store.list_divisions().await.unwrap()[0].name, "Default");
    assert_eq!(admin.spec.divisions.len(), 1);
    store.close().await;

    let mut again = ServerProc::start(&data, &[]);
    let output = again.stdout();
    assert_eq!(printed_password(&output), None, "{output}");
    assert!(!output.contains("Initial admin user"));
    assert!(!output.contains(&password));
    assert_eq!(read(&data.join("ca.crt")), ca_pem, "same CA");
    assert_eq!(
        read(&data.join("server.crt")),
        server_pem,
        "server certificate reused"
    );
    let health = run(&data, &["healthcheck", "--url", &again.url]);
    assert!(health.status.success(), "{}", stderr(&health));
    assert!(again.stop().0.success());
}

/// (b) SIGTERM stops the server cleanly and quickly; afterwards nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero() {
    let tmp = TempDir::new("sigterm");
    let data = tmp.join("data");
    let mut server = ServerProc::start(&data, &[]);
    // An open keep-alive connection must not hold up the shutdown for long.
    let client = SensorClient::new(
        &server.url,
        &read(&data.join("ca.crt")),
        SensorAuth::None,
        None,
    )
    .unwrap();
    assert_eq!(client.identify().await.unwrap(), "HoneySens");
    let (status, took) = server.stop();
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(server.stdout().contains("shutting down"));
    let health = run(&data, &["healthcheck", "--url", &server.url]);
    assert!(!health.status.success());
}

/// (c) The health check fails when nobody listens, and without a CA file.
#[test]
fn healthcheck_fails_without_a_server() {
    let tmp = TempDir::new("health");
    let data = tmp.join("data");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}");
    // No ca.crt yet.
    let o = run(&data, &["healthcheck", "--url", &url]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ca.crt"), "{}", stderr(&o));

    let out = run(
        &data,
        &[
            "ca",
            "export",
            "--out",
            data.join("ca.crt").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let o = run(&data, &["healthcheck", "--url", &url, "--timeout", "5"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not healthy"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

/// (c) A server whose certificate the given CA did not issue is not healthy either.
#[test]
fn healthcheck_refuses_a_foreign_ca() {
    let tmp = TempDir::new("foreign");
    let (data, other) = (tmp.join("data"), tmp.join("other"));
    let mut server = ServerProc::start(&data, &[]);
    let out = run(
        &other,
        &[
            "ca",
            "export",
            "--out",
            other.join("ca.crt").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let o = run(&other, &["healthcheck", "--url", &server.url]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(server.stop().0.success());
}

/// (d) `HONEYSENS_ADMIN_PASSWORD` sets the first password, which is never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_password_from_environment() {
    let tmp = TempDir::new("adminpw");
    let data = tmp.join("data");
    let secret = "Env-Provided-Secret-42";
    let mut server = ServerProc::start(&data, &[("HONEYSENS_ADMIN_PASSWORD", secret)]);
    assert!(server.stop().0.success());
    let (out, err) = (server.stdout(), server.stderr());
    assert!(
        !out.contains(secret) && !err.contains(secret),
        "{out}\n{err}"
    );
    assert_eq!(printed_password(&out), None);
    assert!(
        out.contains("password from HONEYSENS_ADMIN_PASSWORD"),
        "{out}"
    );

    let store = open_store(&data).await;
    let (admin, hash) = store.get_user_credentials("admin").await.unwrap();
    assert!(verify_password(secret, &hash));
    assert!(!admin.must_change_password);
    store.close().await;

    // Too short a password is refused: no admin, no server.
    let tmp2 = TempDir::new("adminpw-short");
    let o = command(&tmp2.join("data"))
        .args(["--listen", "127.0.0.1:0", "serve"])
        .env("HONEYSENS_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("HONEYSENS_ADMIN_PASSWORD"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("listening on"));
}

/// (e) `ca export` creates the CA when needed and prints what the server publishes.
#[test]
fn ca_export_matches_the_published_ca() {
    let tmp = TempDir::new("ca");
    let data = tmp.join("data");
    let first = run(&data, &["ca", "export"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let pem = stdout(&first);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(stderr(&first).is_empty(), "{}", stderr(&first));

    let mut server = ServerProc::start(&data, &[]);
    assert!(server.stop().0.success());
    assert_eq!(read(&data.join("ca.crt")), pem);

    let again = run(&data, &["ca", "export"]);
    assert_eq!(stdout(&again), pem);
    let file = tmp.join("exported.pem");
    let o = run(&data, &["ca", "export", "--out", file.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).is_empty());
    assert_eq!(read(&file), pem);
}

/// (f) `sensor add` writes working credentials: a client certificate, or an HMAC secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_add_writes_working_credentials() {
    let tmp = TempDir::new("sensor");
    let data = tmp.join("data");
    let mut server = ServerProc::start(&data, &[]);

    let dir = tmp.join("s1");
    let o = run(
        &data,
        &[
            "sensor",
            "add",
            "--name",
            "lab-1",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id: i64 = stdout(&o).trim().parse().unwrap();
    assert_eq!(mode(&dir.join("sensor.key")), 0o600);
    assert_eq!(mode(&dir.join("sensor.crt")), 0o644);
    assert_eq!(read(&dir.join("ca.crt")), read(&data.join("ca.crt")));
    assert!(!dir.join("sensor.secret").exists());
    let client = SensorClient::new(
        &server.url,
        &read(&dir.join("ca.crt")),
        SensorAuth::Certificate {
            cert_pem: read(&dir.join("sensor.crt")),
            key_pem: read(&dir.join("sensor.key")),
        },
        None,
    )
    .unwrap();
    let me = client.whoami().await.unwrap();
    assert_eq!(me.sensor_id, SensorId(id));
    assert_eq!(me.name, "lab-1");

    // Existing credentials are never overwritten.
    let o = run(
        &data,
        &[
            "sensor",
            "add",
            "--name",
            "lab-2",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let dir = tmp.join("s2");
    let o = command(&data)
        .args([
            "sensor",
            "add",
            "--name",
            "lab-2",
            "--division",
            "Lab",
            "--hmac",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id2: i64 = stdout(&o).trim().parse().unwrap();
    assert_ne!(id2, id);
    assert_eq!(mode(&dir.join("sensor.secret")), 0o600);
    assert!(dir.join("ca.crt").exists());
    assert!(!dir.join("sensor.crt").exists() && !dir.join("sensor.key").exists());
    let secret = read(&dir.join("sensor.secret"));
    assert!(secret.len() >= 32 && !secret.contains('\n'));
    let hmac = SensorClient::new(
        &server.url,
        &read(&dir.join("ca.crt")),
        SensorAuth::Hmac {
            sensor_id: SensorId(id2),
            secret: secret.clone(),
        },
        None,
    )
    .unwrap();
    let me = hmac.whoami().await.unwrap();
    assert_eq!(me.sensor_id, SensorId(id2));
    assert_ne!(me.division_id.0, 0);

    // A wrong secret is refused.
    let wrong = SensorClient::new(
        &server.url,
        &read(&dir.join("ca.crt")),
        SensorAuth::Hmac {
            sensor_id: SensorId(id2),
            secret: format!("{secret}x"),
        },
        None,
    )
    .unwrap();
    assert!(wrong.whoami().await.is_err());
    assert!(server.stop().0.success());
}

/// (g) `user add` with a password from stdin, and with a generated one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_creates_users() {
    let tmp = TempDir::new("user");
    let data = tmp.join("data");
    let mut child = command(&data)
        .args(["user", "add", "--name", "alice", "--role", "manager"])
        .args(["--division", "Lab", "--division", "Ops", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\nignored second line\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("correct horse"), "{}", stdout(&o));

    let o = run(
        &data,
        &["user", "add", "--name", "bob", "--role", "observer"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bob_pw = stdout(&o)
        .split("password: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();

    let o = run(&data, &["user", "add", "--name", "bob", "--role", "admin"]);
    assert_eq!(o.status.code(), Some(1), "duplicate user");
    assert!(stderr(&o).contains("already exists"));
    let o = run(
        &data,
        &["user", "add", "--name", "no spaces", "--role", "admin"],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = run(&data, &["user", "add", "--name", "carol", "--role", "root"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        &data,
        &[
            "user",
            "add",
            "--name",
            "carol",
            "--role",
            "admin",
            "--password-stdin",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "empty stdin");

    let store = open_store(&data).await;
    let (alice, hash) = store.get_user_credentials("alice").await.unwrap();
    assert_eq!(alice.spec.role, Role::Manager);
    assert!(verify_password("correct horse battery", &hash));
    assert!(!verify_password("ignored second line", &hash));
    assert!(!alice.must_change_password);
    let divisions = store.list_divisions().await.unwrap();
    let mut names: Vec<&str> = alice
        .spec
        .divisions
        .iter()
        .map(|id| {
            divisions
                .iter()
                .find(|d| d.id == *id)
                .unwrap()
                .name
                .as_str()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["Lab", "Ops"]);

    let (bob, hash) = store.get_user_credentials("bob").await.unwrap();
    assert_eq!(bob.spec.role, Role::Observer);
    assert!(bob.must_change_password);
    assert!(verify_password(&bob_pw, &hash));
    assert!(store.get_user_credentials("carol").await.is_err());
    store.close().await;
}

/// Settings come from defaults < TOML file < environment < flags.
#[test]
fn configuration_layers() {
    let tmp = TempDir::new("layers");
    let config = tmp.join("honeysens.toml");
    let dir = |name: &str| tmp.join(name).display().to_string();
    std::fs::write(
        &config,
        format!("data_dir = {:?}\nlog_format = \"json\"\n", dir("a")),
    )
    .unwrap();
    let migrate = |env: Option<&str>, flag: Option<&str>| {
        let mut c = bare_command();
        c.arg("--config").arg(&config);
        if let Some(env) = env {
            c.env("HONEYSENS_DATA_DIR", env);
        }
        if let Some(flag) = flag {
            c.args(["--data-dir", flag]);
        }
        let o = c.arg("migrate").output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert!(migrate(None, None).contains(&dir("a")));
    assert!(tmp.join("a/honeysens.db").exists());
    assert!(migrate(Some(&dir("b")), None).contains(&dir("b")));
    assert!(tmp.join("b/honeysens.db").exists());
    assert!(migrate(Some(&dir("b")), Some(&dir("c"))).contains(&dir("c")));
    assert!(tmp.join("c/honeysens.db").exists());

    // Bad configuration is a usage error, from any layer.
    let o = bare_command()
        .args(["--config", "/nonexistent.toml", "migrate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = command(tmp.path())
        .env("HONEYSENS_TRUSTED_PROXIES", "10.0.0.0/8, banana")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("banana"));
    let o = command(tmp.path())
        .env("HONEYSENS_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
        .env("HONEYSENS_HOSTNAMES", "hs.example, 192.0.2.10")
        .env("HONEYSENS_CRL_REFRESH_SECS", "30")
        .env("HONEYSENS_LISTEN", "127.0.0.1:1")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = command(tmp.path())
        .args(["--tls-cert", "/x.pem", "migrate"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "tls_cert needs tls_key");
}

/// Operator-supplied certificate files win over the generated certificate; configured
/// hostnames lead to a new generated certificate.
#[test]
fn tls_files_and_hostnames() {
    let tmp = TempDir::new("tls");
    let data = tmp.join("data");
    let mut server = ServerProc::start(&data, &[]);
    assert!(server.stop().0.success());
    let generated = read(&data.join("server.crt"));

    // A new hostname means a new generated certificate.
    let mut server = ServerProc::start(&data, &[("HONEYSENS_HOSTNAMES", "hs.example")]);
    assert!(server.stop().0.success());
    let renamed = read(&data.join("server.crt"));
    assert_ne!(renamed, generated);
    assert!(
        server.stdout().contains("does not cover hs.example"),
        "{}",
        server.stdout()
    );

    // Operator files: copy the generated pair elsewhere, then break the data-dir copy; the
    // server must serve the operator's files and leave the data-dir ones alone.
    let (cert, key) = (tmp.join("op.crt"), tmp.join("op.key"));
    std::fs::copy(data.join("server.crt"), &cert).unwrap();
    std::fs::copy(data.join("server.key"), &key).unwrap();
    std::fs::write(data.join("server.crt"), "garbage").unwrap();
    let mut server = ServerProc::start(
        &data,
        &[
            ("HONEYSENS_TLS_CERT", cert.to_str().unwrap()),
            ("HONEYSENS_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    let health = run(&data, &["healthcheck", "--url", &server.url]);
    assert!(health.status.success(), "{}", stderr(&health));
    assert!(server.stop().0.success());
    assert_eq!(read(&data.join("server.crt")), "garbage");

    // Unusable operator files are a runtime failure.
    let o = command(&data)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&key)
        .arg("--tls-key")
        .arg(&key)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("TLS certificate"));
}

/// `remote …` drives a running server through the typed management client with a token
/// from the environment; the bundle it writes lets a sensor in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_commands_use_the_api_with_a_token() {
    use honeysens_http::mgmt::access::CreateToken;
    use honeysens_http::mgmt_client::ManagementClient;

    let tmp = TempDir::new("remote");
    let data = tmp.join("data");
    let server = ServerProc::start(&data, &[]);
    let password = printed_password(&server.stdout()).unwrap();
    let ca_pem = read(&data.join("ca.crt"));
    let mut admin = ManagementClient::new(&server.url, &ca_pem).unwrap();
    admin.login("admin", &password).await.unwrap();
    let new_pw = "a brand new admin password";
    admin.change_password(&password, new_pw).await.unwrap();
    let token = admin
        .create_token(
            &serde_json::from_value::<CreateToken>(
                serde_json::json!({ "name": "cli", "scope": "admin" }),
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .token;
    let division = admin
        .list_divisions(&Default::default())
        .await
        .unwrap()
        .items[0]
        .id;

    // Without a token: a usage error, nothing sent.
    let o = run(&data, &["remote", "--url", &server.url, "sensors"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("HONEYSENS_TOKEN"), "{}", stderr(&o));

    let bundle_path = tmp.join("lab.json");
    let o = command(&data)
        .env("HONEYSENS_TOKEN", &token)
        .args([
            "remote",
            "--url",
            &server.url,
            "sensor-add",
            "--name",
            "lab",
        ])
        .args(["--division", &division.to_string(), "--out"])
        .arg(&bundle_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let id: i64 = stdout(&o).trim().parse().unwrap();
    assert_eq!(mode(&bundle_path), 0o600);
    let bundle: honeysens_core::protocol::SensorBundle =
        serde_json::from_str(&read(&bundle_path)).unwrap();
    assert_eq!(bundle.sensor_id, SensorId(id));
    let honeysens_core::protocol::SensorCredentials::Certificate {
        cert_pem, key_pem, ..
    } = &bundle.credentials
    else {
        panic!("certificate bundle expected")
    };
    let sensor = SensorClient::new(
        &server.url,
        &bundle.ca_pem,
        SensorAuth::Certificate {
            cert_pem: cert_pem.clone(),
            key_pem: key_pem.clone(),
        },
        None,
    )
    .unwrap();
    assert_eq!(sensor.whoami().await.unwrap().sensor_id, SensorId(id));

    let o = command(&data)
        .env("HONEYSENS_TOKEN", &token)
        .args(["remote", "--url", &server.url, "sensors"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "lab");

    // A new bundle replaces the credentials: the first certificate stops working.
    let o = command(&data)
        .env("HONEYSENS_TOKEN", &token)
        .args([
            "remote",
            "--url",
            &server.url,
            "sensor-config",
            "--id",
            &id.to_string(),
            "--out",
        ])
        .arg(tmp.join("lab2.json"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(sensor.whoami().await.is_err());
    // A wrong token is refused with the server's code.
    let o = command(&data)
        .env("HONEYSENS_TOKEN", "hst_wrong")
        .args(["remote", "--url", &server.url, "sensors"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("auth."), "{}", stderr(&o));
}
