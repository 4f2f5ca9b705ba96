//! The real agent binary against the real server over real TLS on loopback: enrolment with a
//! bundle from the management API, status and config through the API, events pushed at once,
//! kill -9 with events spooled, server outages — every event arrives exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::model::{EventQuery, PageRequest, SensorSpec};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{Srv, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_honeysens-sensor");

/// The agent binary as a child process.
struct Agent {
    child: Child,
    state: PathBuf,
}

impl Agent {
    fn start(bundle: &Path, state: &Path, poll_every: u64) -> Agent {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(bundle)
            .arg("--state-dir")
            .arg(state)
            .args(["--poll-every", &poll_every.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let a = Agent {
            child,
            state: state.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(a.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "agent intake socket never appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        a
    }

    fn socket(&self) -> PathBuf {
        self.state.join("intake.sock")
    }

    /// Sends events over one connection; returns the uids the agent acknowledged.
    fn send(&self, events: &[serde_json::Value]) -> Vec<uuid::Uuid> {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut acked = Vec::new();
        for e in events {
            s.write_all(format!("{e}\n").as_bytes()).unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let ack: serde_json::Value = serde_json::from_str(&line).unwrap();
            if ack["ok"] == true {
                acked.push(ack["uid"].as_str().unwrap().parse().unwrap());
            } else {
                assert!(ack["code"].is_string(), "{ack}");
            }
        }
        acked
    }

    fn status(&self) -> serde_json::Value {
        let out = Command::new(BIN)
            .args(["status", "--state-dir"])
            .arg(&self.state)
            .output()
            .unwrap();
        if !out.status.success() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    fn terminate(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "agent exited with {st}");
                return;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event(n: usize) -> serde_json::Value {
    serde_json::json!({
        "service": "recon",
        "source_ip": format!("10.0.{}.{}", n / 250, n % 250 + 1),
        "source_port": 40000 + (n % 20000),
        "dest_port": 22,
        "protocol": "tcp",
        "type_code": "conn.attempt",
        "classification": "connection_attempt",
        "severity": "low",
        "summary": format!("connection attempt {n}")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_status_config_and_events_pushed_at_once() {
    let srv = Srv::new("enrol").await;
    let (admin, division) = srv.admin().await;
    let (id, bundle) = srv.enrol(&admin, division, "lab-1").await;
    let state = srv.dir.join("state-1");
    // Polls every second, so config changes show quickly.
    let agent = Agent::start(&bundle, &state, 1);

    // Status visible through the API.
    wait_until("a status report", Duration::from_secs(20), || async {
        !admin.sensor_status(id, None).await.unwrap().is_empty()
    })
    .await;
    let reports = admin.sensor_status(id, None).await.unwrap();
    assert_eq!(reports[0].agent_version, env!("CARGO_PKG_VERSION"));
    assert!(reports[0].disk_total_mb > 0);

    // A config change is picked up on the next poll.
    let mut spec = admin.get_sensor(id).await.unwrap().spec;
    spec.update_interval = Some(7);
    admin.update_sensor(id, &spec).await.unwrap();
    wait_until(
        "the new update interval",
        Duration::from_secs(20),
        || async { agent.status()["update_interval"] == 7 },
    )
    .await;
    let st = agent.status();
    assert_eq!(st["last_poll_ok"], true);
    assert_eq!(st["sensor_id"], id.0);

    // Events arrive without waiting for a poll; one invalid line is refused alone.
    let started = Instant::now();
    let mut batch: Vec<serde_json::Value> = (0..20).map(event).collect();
    batch.insert(5, serde_json::json!({ "source_ip": "not an address" }));
    let acked = agent.send(&batch);
    assert_eq!(acked.len(), 20);
    wait_until(
        "the events on the server",
        Duration::from_secs(20),
        || async { srv.event_uids(id).await.len() == 20 },
    )
    .await;
    println!(
        "20 events on the server {:?} after sending",
        started.elapsed()
    );
    let stored: HashSet<_> = srv.event_uids(id).await.into_iter().collect();
    assert_eq!(stored, acked.into_iter().collect());
    agent.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_and_outages_lose_nothing_and_duplicate_nothing() {
    let mut srv = Srv::new("outage").await;
    let (admin, division) = srv.admin().await;
    let (id, bundle) = srv.enrol(&admin, division, "lab-2").await;
    let state = srv.dir.join("state-2");

    // Server down: the agent takes events into its spool.
    srv.stop().await;
    let agent = Agent::start(&bundle, &state, 1);
    let mut acked = agent.send(&(0..300).map(event).collect::<Vec<_>>());
    assert_eq!(acked.len(), 300);
    // Killed with events spooled.
    agent.kill9();

    // Server back, agent restarted: everything arrives, once.
    srv.start().await;
    let agent = Agent::start(&bundle, &state, 1);
    wait_until("the spooled events", Duration::from_secs(60), || async {
        srv.event_uids(id).await.len() >= 300
    })
    .await;

    // An outage while running: sent during it, delivered after it.
    srv.stop().await;
    acked.extend(agent.send(&(300..450).map(event).collect::<Vec<_>>()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    srv.start().await;
    wait_until(
        "the events sent during the outage",
        Duration::from_secs(90),
        || async { srv.event_uids(id).await.len() >= 450 },
    )
    .await;
    // Give a duplicate the chance to appear before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = srv.event_uids(id).await;
    assert_eq!(stored.len(), 450, "no event twice");
    let stored: HashSet<_> = stored.into_iter().collect();
    assert_eq!(stored, acked.iter().copied().collect::<HashSet<_>>());
    wait_until("an empty spool", Duration::from_secs(20), || async {
        agent.status()["spool_depth"] == 0
    })
    .await;
    agent.terminate();
    srv.stop().await;
}

/// A TCP relay to the server's port counting connections; with `basic`, an HTTP CONNECT proxy
/// demanding that `Proxy-Authorization: Basic` value.
async fn relay(target: u16, basic: Option<String>) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let basic = basic.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                if let Some(expected) = basic {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if inbound.read_exact(&mut byte).await.is_err() {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let wanted = format!(
                        "proxy-authorization: basic {}",
                        expected.to_ascii_lowercase()
                    );
                    if !head.starts_with(&format!("connect 127.0.0.1:{target}"))
                        || !head.contains(&wanted)
                    {
                        let _ = inbound
                            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                    if inbound
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_move_and_proxy_are_applied_persisted_and_kept_after_restart() {
    use honeysens_core::model::{ProxyConfig, ServerEndpoint};
    use std::sync::atomic::Ordering;
    let srv = Srv::new("move").await;
    let (admin, division) = srv.admin().await;
    let (id, bundle) = srv.enrol(&admin, division, "lab-3").await;
    let state = srv.dir.join("state-3");
    let agent = Agent::start(&bundle, &state, 1);
    wait_until("a first poll", Duration::from_secs(20), || async {
        agent.status()["last_poll_ok"] == true
    })
    .await;

    // Move the sensor to another address (a relay in front of the same server).
    let (moved, via_move) = relay(srv.port, None).await;
    let mut spec = admin.get_sensor(id).await.unwrap().spec;
    spec.server_endpoint = Some(ServerEndpoint {
        host: "127.0.0.1".into(),
        port: moved,
    });
    admin.update_sensor(id, &spec).await.unwrap();
    wait_until(
        "polls through the new address",
        Duration::from_secs(20),
        || async {
            via_move.load(Ordering::SeqCst) > 0 && agent.status()["server"]["port"] == moved
        },
    )
    .await;
    let persisted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("state.json")).unwrap()).unwrap();
    assert_eq!(persisted["server"]["port"], moved);

    // Then through an HTTP proxy with Basic authentication.
    let basic = "c2Vuc29yOnMzY3JldA=="; // sensor:s3cret
    let (proxy_port, via_proxy) = relay(moved, Some(basic.into())).await;
    spec.proxy = Some(ProxyConfig {
        host: "127.0.0.1".into(),
        port: proxy_port,
        user: Some("sensor".into()),
        password: Some("s3cret".into()),
    });
    admin.update_sensor(id, &spec).await.unwrap();
    wait_until(
        "polls through the proxy",
        Duration::from_secs(20),
        || async { via_proxy.load(Ordering::SeqCst) > 0 },
    )
    .await;

    // A restart keeps both: the agent comes back through proxy and new address.
    agent.kill9();
    let before = via_proxy.load(Ordering::SeqCst);
    let reports = admin.sensor_status(id, Some(1000)).await.unwrap().len();
    let agent = Agent::start(&bundle, &state, 1);
    wait_until(
        "a poll after the restart",
        Duration::from_secs(20),
        || async { admin.sensor_status(id, Some(1000)).await.unwrap().len() > reports + 1 },
    )
    .await;
    assert!(via_proxy.load(Ordering::SeqCst) > before);
    // Events take the same way.
    let acked = agent.send(&[event(1)]);
    wait_until("the event", Duration::from_secs(20), || async {
        srv.event_uids(id).await == acked
    })
    .await;
    agent.terminate();
}

/// The TransportFactory of an embedded agent: the server's handlers, no HTTP.
struct InProcess(honeysens_http::server::AppState);

impl honeysens_sensor::agent::TransportFactory for InProcess {
    fn connect(
        &self,
        c: &honeysens_sensor::agent::Connection,
    ) -> Result<Arc<dyn honeysens_core::protocol::Transport>, String> {
        Ok(Arc::new(
            honeysens_http::inprocess::InProcessTransport::new(self.0.clone(), c.sensor_id),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_agent_and_server_in_one_process() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let srv = Srv::new("embedded").await;
    let (admin, division) = srv.admin().await;
    let created = admin
        .create_sensor(&SensorSpec::new("inproc", division))
        .await
        .unwrap();
    let mut config =
        honeysens_sensor::agent::AgentConfig::new(created.bundle, srv.dir.join("state-e"));
    config.poll_every = Some(Duration::from_millis(200));
    config.unix_socket = None;
    config.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    let agent =
        honeysens_sensor::agent::start(config, Arc::new(InProcess(srv.state.clone().unwrap())))
            .await
            .unwrap();
    let stream = tokio::net::TcpStream::connect(agent.tcp_addr.unwrap())
        .await
        .unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(r).lines();
    let mut acked = Vec::new();
    for n in 0..10 {
        w.write_all(format!("{}\n", event(n)).as_bytes())
            .await
            .unwrap();
        let ack: serde_json::Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        acked.push(ack["uid"].as_str().unwrap().parse::<uuid::Uuid>().unwrap());
    }
    let id = created.sensor.id;
    wait_until("the events", Duration::from_secs(20), || async {
        srv.event_uids(id).await.len() == 10
    })
    .await;
    wait_until("status reports", Duration::from_secs(20), || async {
        agent.status().last_poll_ok && !admin.sensor_status(id, None).await.unwrap().is_empty()
    })
    .await;
    assert_eq!(
        srv.event_uids(id).await.into_iter().collect::<HashSet<_>>(),
        acked.into_iter().collect()
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificate_is_persisted_and_used_after_restart() {
    use honeysens_core::protocol::SensorCredentials;
    let srv = Srv::new("renew").await;
    let (admin, division) = srv.admin().await;
    let created = admin
        .create_sensor(&SensorSpec::new("lab-4", division))
        .await
        .unwrap();
    let id = created.sensor.id;
    // A bundle whose certificate expires in 10 days: the next poll brings a renewal.
    let short = srv.ca.issue_sensor(id, 10).unwrap();
    srv.store.record_certificate(&short.record).await.unwrap();
    let mut bundle = created.bundle;
    bundle.credentials = SensorCredentials::Certificate {
        cert_pem: short.cert_pem.clone(),
        key_pem: short.key_pem.clone(),
        not_after: short.record.not_after,
    };
    let path = srv.dir.join("short.json");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let state = srv.dir.join("state-4");
    let agent = Agent::start(&path, &state, 1);
    let persisted_cert = || -> Option<String> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("state.json")).ok()?).ok()?;
        v["credentials"]["cert_pem"].as_str().map(str::to_owned)
    };
    wait_until("a persisted renewal", Duration::from_secs(20), || async {
        persisted_cert().is_some_and(|c| c != short.cert_pem)
    })
    .await;
    agent.kill9();
    // The old certificate is revoked: only the renewed one can let the agent in now.
    srv.store
        .revoke_certificate(&short.record.serial, honeysens_core::time::now())
        .await
        .unwrap();
    let reports = admin.sensor_status(id, Some(1000)).await.unwrap().len();
    let agent = Agent::start(&path, &state, 1);
    wait_until(
        "a poll with the renewed certificate",
        Duration::from_secs(20),
        || async { admin.sensor_status(id, Some(1000)).await.unwrap().len() > reports },
    )
    .await;
    // status.json is written after the answer is processed, a moment after the server has
    // the report.
    wait_until(
        "the agent's own record of the poll",
        Duration::from_secs(20),
        || async { agent.status()["last_poll_ok"] == true },
    )
    .await;
    agent.terminate();
}

/// Records what the agent asks of its runtime and answers `running` for every service.
#[derive(Default)]
struct RecordingRuntime {
    plans: std::sync::Mutex<Vec<honeysens_sensor::runtime::ServicePlan>>,
    transports: std::sync::atomic::AtomicUsize,
    shut_down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl honeysens_sensor::runtime::ContainerRuntime for RecordingRuntime {
    async fn reconcile(
        &self,
        plan: &honeysens_sensor::runtime::ServicePlan,
    ) -> Vec<honeysens_core::model::ServiceStatus> {
        self.plans.lock().unwrap().push(plan.clone());
        plan.services
            .iter()
            .map(|s| honeysens_core::model::ServiceStatus {
                name: s.name.clone(),
                state: honeysens_core::model::ServiceState::Running,
                error: None,
            })
            .collect()
    }

    fn use_transport(&self, _: Arc<dyn honeysens_core::protocol::Transport>) {
        self.transports
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    async fn shutdown(&self) {
        self.shut_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The agent hands the assigned services (this host's architecture only) to its runtime
/// after each poll and reports the runtime's statuses to the server with the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_reconciled_and_their_status_reported() {
    use honeysens_core::model::{
        Architecture, ServiceAssignment, ServiceRevisionSpec, ServiceSpec, ServiceState,
    };
    let Some(arch) = honeysens_sensor::runtime::host_architecture() else {
        eprintln!("SKIPPED: no service architecture for this host");
        return;
    };
    let other = if arch == Architecture::Amd64 {
        Architecture::Arm64
    } else {
        Architecture::Amd64
    };
    let srv = Srv::new("runtime").await;
    let (admin, division) = srv.admin().await;
    let created = admin
        .create_sensor(&SensorSpec::new("rt", division))
        .await
        .unwrap();
    let id = created.sensor.id;
    let svc = srv
        .store
        .create_service(&ServiceSpec {
            name: "ssh".into(),
            repository: "honeysens/ssh".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    for (revision, architecture) in [("1", arch), ("9", other)] {
        srv.store
            .add_service_revision(&ServiceRevisionSpec {
                service_id: svc.id,
                revision: revision.into(),
                architecture,
                description: String::new(),
                port_assignment: [("2222/tcp".to_owned(), 22)].into_iter().collect(),
                catch_all: false,
                raw_network_access: false,
                image_digest: format!("sha256:{}", "b".repeat(64)),
            })
            .await
            .unwrap();
    }
    srv.store
        .assign_service(&ServiceAssignment {
            sensor_id: id,
            service_id: svc.id,
            revision: None,
        })
        .await
        .unwrap();

    let runtime = Arc::new(RecordingRuntime::default());
    let mut config =
        honeysens_sensor::agent::AgentConfig::new(created.bundle, srv.dir.join("state-rt"));
    config.poll_every = Some(Duration::from_millis(200));
    config.unix_socket = None;
    config.runtime = Some(runtime.clone());
    let agent =
        honeysens_sensor::agent::start(config, Arc::new(InProcess(srv.state.clone().unwrap())))
            .await
            .unwrap();
    assert_eq!(
        runtime.transports.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the runtime gets the transport at start"
    );
    wait_until(
        "a reported service status",
        Duration::from_secs(20),
        || async {
            admin
                .sensor_status(id, None)
                .await
                .unwrap()
                .iter()
                .any(|r| {
                    r.services
                        .iter()
                        .any(|s| s.name == "ssh" && s.state == ServiceState::Running)
                })
        },
    )
    .await;
    let plan = runtime.plans.lock().unwrap()[0].clone();
    let got: Vec<(String, String, Architecture)> = plan
        .services
        .iter()
        .map(|s| (s.name.clone(), s.revision.clone(), s.architecture))
        .collect();
    assert_eq!(got, [("ssh".to_owned(), "1".to_owned(), arch)]);
    assert_eq!(plan.service_network.to_string(), "10.10.10.0/24");
    let status = agent.status();
    assert_eq!(status.service_states.len(), 1);
    assert_eq!(status.service_states[0].state, ServiceState::Running);
    agent.shutdown().await;
    assert!(runtime.shut_down.load(std::sync::atomic::Ordering::SeqCst));
}

/// `--runtime docker` without a reachable engine: a clear error at start, nothing half-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_runtime_runs_a_built_in_honeypot_without_docker() {
    let srv = Srv::new("process").await;
    let (admin, division) = srv.admin().await;
    let (id, bundle) = srv.enrol(&admin, division, "pr").await;
    // The built-in ssh honeypot as a service of the process runtime.
    let port = srv.builtin_service(&admin, id, "ssh", "22/tcp").await;
    let state = srv.dir.join("state-pr");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&bundle)
        .arg("--state-dir")
        .arg(&state)
        .args(["--poll-every", "1", "--runtime", "process"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let agent = Agent {
        child,
        state: state.clone(),
    };
    // The service reports running in a status poll.
    srv.wait_service_running(&admin, id, "ssh").await;
    // A client announcing its version and leaving: an ssh.connect event on the server.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"SSH-2.0-agent-test\r\n").unwrap();
    let mut banner = [0u8; 8];
    std::io::Read::read_exact(&mut s, &mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
    drop(s);
    let query = EventQuery {
        sensors: vec![id],
        ..Default::default()
    };
    wait_until("the ssh.connect event", Duration::from_secs(30), || async {
        srv.store
            .list_events(&query, &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.data.type_code == "ssh.connect"
                    && e.data.service.as_deref() == Some("ssh")
                    && e.data.dest_port == Some(port)
            })
    })
    .await;
    agent.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_runtime_without_engine_fails_clearly() {
    let srv = Srv::new("nodocker").await;
    let (admin, division) = srv.admin().await;
    let (_, bundle) = srv.enrol(&admin, division, "nd").await;
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&bundle)
        .arg("--state-dir")
        .arg(srv.dir.join("state-nd"))
        .args(["--runtime", "docker", "--docker-socket"])
        .arg(srv.dir.join("no-such-docker.sock"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("docker runtime"), "{err}");
    // An unknown runtime is refused by the argument parser.
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&bundle)
        .args(["--runtime", "podman"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("podman"));
}
