//! The process runtime with real built-in honeypots: a planned SSH service listens on its
//! assigned sensor port and reports into the sink; a non-built-in service is an error; a
//! changed plan moves it; removing it from the plan closes the port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::model::{Architecture, ServiceState};
use honeysens_core::protocol::ServiceTarget;
use honeysens_honeypots::sink::EventSink;
use honeysens_sensor::runtime::process::{NOT_BUILT_IN, ProcessRuntime};
use honeysens_sensor::runtime::{ContainerRuntime, ServicePlan};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn service(name: &str, repo: &str, port: u16) -> ServiceTarget {
    ServiceTarget {
        name: name.into(),
        repository: repo.into(),
        revision: "1.0".into(),
        architecture: Architecture::Amd64,
        image_digest: "sha256:0000".into(),
        port_assignment: [("22/tcp".to_owned(), port)].into_iter().collect(),
        catch_all: false,
        raw_network_access: false,
    }
}

fn plan(services: Vec<ServiceTarget>) -> ServicePlan {
    ServicePlan {
        services,
        service_network: "10.10.10.0/24".parse().unwrap(),
    }
}

async fn closed(port: u16) -> bool {
    let deadline = tokio::time::Instant::now() + T;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Speaks the SSH version exchange and returns the server's banner.
async fn ssh_hello(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"SSH-2.0-RuntimeTest_1.0\r\n").await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_built_in_ssh_on_its_sensor_port_and_stops_it_when_unplanned() {
    let dir = std::env::temp_dir().join(format!("hs-proc-rt-{}", uuid::Uuid::now_v7()));
    let (sink, mut rx) = EventSink::channel(64);
    let rt = ProcessRuntime::new(sink)
        .with_bind_ip("127.0.0.1".parse().unwrap())
        .with_state_dir(&dir);
    let port = free_port();
    let statuses = rt
        .reconcile(&plan(vec![
            service("ssh-hp", "honeysens/ssh", port),
            service("cowrie", "honeysens/cowrie", free_port()),
        ]))
        .await;
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].name, "ssh-hp");
    assert_eq!(statuses[0].state, ServiceState::Running, "{statuses:?}");
    assert_eq!(statuses[1].state, ServiceState::Error);
    assert_eq!(statuses[1].error.as_deref(), Some(NOT_BUILT_IN));
    assert!(
        dir.join("ssh-hp/ssh_host_ed25519_key").exists(),
        "host key persisted"
    );

    assert!(ssh_hello(port).await.starts_with("SSH-2.0-"));
    let ev = loop {
        let ev = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
        if ev.type_code == "ssh.connect" {
            break ev;
        }
    };
    assert_eq!(ev.service.as_deref(), Some("ssh-hp"));
    assert_eq!(ev.dest_port, Some(port));
    assert!(
        ev.details
            .iter()
            .any(|d| d.data == "client: SSH-2.0-RuntimeTest_1.0")
    );

    // The same plan again: nothing restarts (the port stays served).
    let again = rt
        .reconcile(&plan(vec![service("ssh-hp", "honeysens/ssh", port)]))
        .await;
    assert_eq!(again[0].state, ServiceState::Running);

    // A changed port assignment moves the service.
    let port2 = free_port();
    let moved = rt
        .reconcile(&plan(vec![service("ssh-hp", "honeysens/ssh", port2)]))
        .await;
    assert_eq!(moved[0].state, ServiceState::Running);
    assert!(closed(port).await, "old port still open");
    assert!(ssh_hello(port2).await.starts_with("SSH-2.0-"));

    // A port taken by someone else: error with the reason, nothing else affected.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap().port();
    let st = rt
        .reconcile(&plan(vec![
            service("ssh-hp", "honeysens/ssh", port2),
            service("web", "honeysens/http", taken),
        ]))
        .await;
    assert_eq!(st[0].state, ServiceState::Running);
    assert_eq!(st[1].state, ServiceState::Error);
    assert!(
        st[1].error.as_deref().unwrap().contains("cannot listen"),
        "{st:?}"
    );

    // Removed from the plan: the port closes.
    let none = rt.reconcile(&plan(vec![])).await;
    assert!(none.is_empty());
    assert!(closed(port2).await, "port still open after removal");
    rt.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
