//! A sensor catching attackers, end to end, on the machine's real Docker engine.
//!
//! The project's own honeypot binary is packaged into `FROM scratch` service packages with
//! the server's `service-package` command, uploaded through the management API and assigned
//! to a sensor. The real agent binary (`--runtime docker`) pulls the images from the server's
//! registry, starts the containers and the catch-all. Real clients attack the sensor's address
//! from another network namespace — OpenSSH `ssh` (password via `sshpass`), `curl`, and
//! `nmap -p- -T5` — and the events must reach the server with the attacker's address, the
//! sensor port and the right classification; the scan exactly once. Unassigning removes the
//! containers and their images.
//!
//! Needs root, Docker, `ip`, `nft`, `nmap`, `sshpass`, `ssh` and `curl`: skipped with a message
//! when something is missing, a failure when `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::Store;
use honeysens_core::ids::SensorId;
use honeysens_core::model::{Classification, Event, EventQuery, PageRequest, ServiceState};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::Srv;

const AGENT: &str = env!("CARGO_BIN_EXE_honeysens-sensor");

/// Another binary of the workspace, built next to this test's own binaries.
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run `cargo build -p honeysens-honeypot -p honeysens-server` (cargo test --workspace does)",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether this machine can run the test; under `CI=true` a missing part is a failure.
fn prerequisites() -> bool {
    let mut missing = Vec::new();
    let uid = run(Command::new("id").arg("-u"));
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        missing.push("root".to_owned());
    }
    if !Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        missing.push("a running Docker engine".to_owned());
    }
    for tool in ["ip", "nft", "nmap", "sshpass", "ssh", "curl"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            missing.push(tool.to_owned());
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("services end-to-end test needs {}", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// The attacker's namespace with a veth pair into the host, where the sensor lives.
struct Attacker {
    ns: String,
    host_if: String,
    sensor_ip: IpAddr,
    ip: IpAddr,
}

impl Attacker {
    fn create(tag: &str, subnet: u8) -> Attacker {
        let a = Attacker {
            ns: format!("hs-att-{tag}"),
            host_if: format!("hsh-{tag}"),
            sensor_ip: format!("10.231.{subnet}.1").parse().unwrap(),
            ip: format!("10.231.{subnet}.2").parse().unwrap(),
        };
        let peer = format!("hsa-{tag}");
        ok(Command::new("ip").args(["netns", "add", &a.ns]));
        ok(Command::new("ip").args([
            "link", "add", &a.host_if, "type", "veth", "peer", "name", &peer,
        ]));
        ok(Command::new("ip").args(["link", "set", &peer, "netns", &a.ns]));
        ok(Command::new("ip").args([
            "addr",
            "add",
            &format!("{}/24", a.sensor_ip),
            "dev",
            &a.host_if,
        ]));
        ok(Command::new("ip").args(["link", "set", &a.host_if, "up"]));
        for args in [
            vec!["addr", "add", &format!("{}/24", a.ip), "dev", &peer],
            vec!["link", "set", &peer, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            ok(Command::new("ip")
                .args(["netns", "exec", &a.ns, "ip"])
                .args(&args));
        }
        a
    }

    /// A command run inside the attacker's namespace.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Removes whatever the agent left behind (containers, network, images, nft table), also
/// when the test fails half-way.
struct DockerLeftovers {
    repo_prefix: String,
}

impl DockerLeftovers {
    fn containers(&self) -> Vec<String> {
        ok(Command::new("docker").args([
            "ps",
            "-a",
            "--filter",
            "label=io.honeysens.service",
            "--format",
            "{{.Names}}",
        ]))
        .lines()
        .map(str::to_owned)
        .collect()
    }

    fn images(&self) -> Vec<String> {
        ok(Command::new("docker").args(["images", "--format", "{{.Repository}}:{{.Tag}}"]))
            .lines()
            .filter(|l| l.starts_with(&self.repo_prefix))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for DockerLeftovers {
    fn drop(&mut self) {
        for c in self.containers() {
            let _ = Command::new("docker")
                .args(["rm", "-f", &c])
                .stdout(Stdio::null())
                .status();
        }
        for i in self.images() {
            let _ = Command::new("docker")
                .args(["rmi", "-f", &i])
                .stdout(Stdio::null())
                .status();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", "honeysens"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", "honeysens"])
            .stderr(Stdio::null())
            .status();
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn events_from(store: &Arc<dyn Store>, sensor: SensorId, source: IpAddr) -> Vec<Event> {
    let query = EventQuery {
        sensors: vec![sensor],
        ..Default::default()
    };
    let page = store
        .list_events(&query, &PageRequest::first(500))
        .await
        .unwrap();
    page.items
        .into_iter()
        .filter(|e| e.data.source_ip == source)
        .collect()
}

async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn package(dir: &Path, honeypot: &Path, repo_prefix: &str, name: &str, extra: &[&str]) -> Vec<u8> {
    let out = dir.join(format!("{name}.tar"));
    let mut cmd = Command::new(workspace_bin("honeysens-server"));
    cmd.args(["service-package", "--binary"])
        .arg(honeypot)
        .args([
            "--name",
            name,
            "--repository",
            &format!("{repo_prefix}/{name}"),
            "--revision",
            "1.0.0",
            "--arg",
            name,
        ])
        .args(extra)
        .arg("-o")
        .arg(&out);
    ok(&mut cmd);
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_docker_services_reach_the_server_and_unassigning_cleans_up() {
    if !prerequisites() {
        return;
    }
    let tag = format!("{:04x}", rand_u16());
    let repo_prefix = format!("e2e{tag}");
    let leftovers = DockerLeftovers {
        repo_prefix: repo_prefix.clone(),
    };
    let attacker = Attacker::create(&tag, (rand_u16() % 200 + 20) as u8);

    // The server, in-process over SQLite, on loopback (only the agent talks to it).
    let mut srv = Srv::new("e2e").await;
    let store = srv.store.clone();
    let (admin, division) = srv.admin().await;

    // Service packages of the project's own honeypot binary, uploaded through the API.
    let honeypot = workspace_bin("honeysens-honeypot");
    let mut services = Vec::new();
    for (name, extra) in [
        ("ssh", vec!["--port", "22/tcp=22"]),
        ("http", vec!["--port", "80/tcp=80"]),
        ("recon", vec!["--catch-all", "--raw-network-access"]),
    ] {
        let bytes = package(&srv.dir, &honeypot, &repo_prefix, name, &extra);
        let uploaded = admin.upload_service_package(bytes).await.unwrap();
        assert_eq!(uploaded.revisions.len(), 1, "{name}");
        services.push(uploaded.service);
    }
    let (sensor, bundle) = srv.enrol(&admin, division, "e2e").await;
    for s in &services {
        admin.assign_service(sensor, s.id, None).await.unwrap();
    }

    // The real agent with the Docker runtime.
    let intake_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = KillOnDrop(
        Command::new(AGENT)
            .args(["run", "--config"])
            .arg(&bundle)
            .arg("--state-dir")
            .arg(srv.dir.join("agent"))
            .args([
                "--runtime",
                "docker",
                "--poll-every",
                "2",
                "--intake-tcp",
                &format!("0.0.0.0:{intake_port}"),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    // The next status reports say all three run.
    wait_for("all services running", Duration::from_secs(240), || {
        let store = store.clone();
        async move {
            let reports = store.list_status(sensor, 1).await.ok()?;
            let last = reports.first()?;
            let running = last
                .services
                .iter()
                .filter(|s| s.state == ServiceState::Running)
                .count();
            (running == 3).then_some(())
        }
    })
    .await;
    let mut names = leftovers.containers();
    names.sort();
    assert_eq!(
        names,
        ["honeysens-http", "honeysens-recon", "honeysens-ssh"],
        "one container per service"
    );

    // Attacks from the other namespace.
    let target = attacker.sensor_ip.to_string();
    let ssh = run(attacker.cmd("sshpass").args([
        "-p",
        "hunter2",
        "ssh",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "NumberOfPasswordPrompts=1",
        &format!("root@{target}"),
        "true",
    ]));
    assert!(!ssh.status.success(), "the honeypot must refuse the login");
    ok(attacker.cmd("curl").args([
        "-s",
        "-m",
        "10",
        "-o",
        "/dev/null",
        &format!("http://{target}/admin"),
    ]));
    ok(attacker
        .cmd("nmap")
        .args(["-p-", "-T5", "-n", "-Pn", &target]));

    let src = attacker.ip;
    let events = wait_for(
        "ssh, http and scan events",
        Duration::from_secs(120),
        || {
            let store = store.clone();
            async move {
                let ev = events_from(&store, sensor, src).await;
                let has = |code: &str| ev.iter().any(|e| e.data.type_code == code);
                (has("ssh.login.failed") && has("http.request") && has("scan.host")).then_some(ev)
            }
        },
    )
    .await;
    let login = events
        .iter()
        .find(|e| e.data.type_code == "ssh.login.failed")
        .unwrap();
    assert_eq!(login.data.dest_port, Some(22));
    assert!(login.data.source_port.is_some_and(|p| p > 0));
    assert_eq!(login.data.service.as_deref(), Some("ssh"));
    assert_eq!(
        login.data.classification,
        Classification::HoneypotInteraction
    );
    let payload = store.get_event_payload(login.id).await.unwrap();
    assert!(
        payload
            .details
            .iter()
            .any(|d| d.data.contains("user: root")),
        "{payload:?}"
    );
    assert!(
        payload
            .details
            .iter()
            .any(|d| d.data.contains("password: hunter2")),
        "{payload:?}"
    );
    let request = events
        .iter()
        .find(|e| e.data.type_code == "http.request")
        .unwrap();
    assert_eq!(request.data.dest_port, Some(80));
    // The scan is one event, also after the quiet period has passed again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let scans: Vec<Event> = events_from(&store, sensor, src)
        .await
        .into_iter()
        .filter(|e| e.data.type_code == "scan.host")
        .collect();
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!(scans[0].data.classification, Classification::PortScan);
    let details = store.get_event_payload(scans[0].id).await.unwrap().details;
    assert!(
        details.iter().any(|d| d.data == "port_count: 65535"),
        "{details:?}"
    );

    // Unassigned: containers and images go.
    for s in &services {
        admin.unassign_service(sensor, s.id).await.unwrap();
    }
    wait_for(
        "containers and images removed",
        Duration::from_secs(120),
        || {
            let (c, i) = (leftovers.containers(), leftovers.images());
            async move { (c.is_empty() && i.is_empty()).then_some(()) }
        },
    )
    .await;

    drop(agent);
    srv.stop().await;
    drop(leftovers);
    drop(attacker);
}

fn rand_u16() -> u16 {
    let b = uuid::Uuid::new_v4().into_bytes();
    u16::from_le_bytes([b[0], b[1]])
}
