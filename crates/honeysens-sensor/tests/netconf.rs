//! `NetConfigurator` against real netlink, inside a network namespace each test creates.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns` / setns). Without it the tests
//! skip with a message, or fail when `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::model::NetworkConfig;
use honeysens_sensor::netconf::{Change, DhcpCommand, NetConfigurator, NetError};
use ipnet::IpNet;
use nix::sched::{CloneFlags, setns};
use serde_json::Value;
use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const IFACE: &str = "hs0";
const PEER: &str = "hs0p";

/// `true` when the tests can run; otherwise explains why not (and fails under `CI=true`).
fn have_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let why = "netconf tests need root: they create network namespaces (ip netns add) and configure \
               interfaces through netlink";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}; run them as root (CI=true makes this a failure)");
    }
    eprintln!("skipping: {why}");
    false
}

/// A network namespace with a veth pair `hs0`/`hs0p` (peer up, `hs0` left down) and a scratch
/// directory for `resolv.conf`; both are removed on drop.
struct TestNs {
    name: String,
    dir: PathBuf,
}

impl TestNs {
    fn new() -> TestNs {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "hs-nc-{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let dir = std::env::temp_dir().join(&name);
        let ns = TestNs { name, dir };
        std::fs::create_dir_all(&ns.dir).unwrap();
        ns.ip(&["link", "add", IFACE, "type", "veth", "peer", "name", PEER]);
        ns.ip(&["link", "set", PEER, "up"]);
        ns
    }

    fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }

    /// `ip -n NS ARGS`, which must succeed.
    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip -n NS -j ARGS` parsed.
    fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.ip(&full);
        if out.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    fn link(&self) -> Value {
        self.ip_json(&["link", "show", "dev", IFACE])[0].clone()
    }

    fn link_up(&self) -> bool {
        self.link()["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "UP")
    }

    fn mac(&self) -> String {
        self.link()["address"].as_str().unwrap().to_owned()
    }

    /// Addresses on `hs0` as `addr/prefix`, link-local IPv6 ones excluded unless asked for.
    fn addrs(&self, with_link_local: bool) -> Vec<String> {
        let v = self.ip_json(&["addr", "show", "dev", IFACE]);
        let mut out: Vec<String> = v[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| with_link_local || a["scope"] != "link")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect();
        out.sort();
        out
    }

    /// Gateways of default routes (`-4` or `-6`) via `hs0`.
    fn default_gateways(&self, family: &str) -> Vec<String> {
        let v = self.ip_json(&[family, "route", "show", "default"]);
        v.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["dev"] == IFACE)
            .map(|r| r["gateway"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Runs `body` on a thread that has entered this namespace, on a current-thread runtime
    /// built there, so every netlink socket it opens belongs to the namespace.
    fn run<F, Fut>(&self, body: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let path = format!("/var/run/netns/{}", self.name);
        let thread = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            setns(ns, CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(body());
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixed(address: &str, gateway: Option<&str>, dns: &[&str]) -> NetworkConfig {
    NetworkConfig::Static {
        address: net(address),
        gateway: gateway.map(ip),
        dns: dns.iter().map(|d| ip(d)).collect(),
    }
}

fn sorted(mut changes: Vec<Change>) -> Vec<String> {
    let mut out: Vec<String> = changes.drain(..).map(|c| format!("{c:?}")).collect();
    out.sort();
    out
}

#[test]
fn static_then_other_static_then_unconfigured_then_idempotent() {
    if !have_root() {
        return;
    }
    let ns = std::sync::Arc::new(TestNs::new());
    std::fs::write(
        ns.resolv_conf(),
        "search example.org\nnameserver 203.0.113.1\n",
    )
    .unwrap();
    assert!(!ns.link_up());
    let outer = ns.clone();
    outer.run(move || async move {
        let nc = NetConfigurator::new(IFACE, ns.resolv_conf())
            .await
            .unwrap()
            .with_dhcp_client(None);

        // First static configuration with a MAC override, on a link that is down.
        let first = fixed("10.20.0.5/24", Some("10.20.0.1"), &["192.0.2.53"]);
        let mac = "02:00:5E:10:20:05";
        let changes = nc.apply(&first, Some(mac)).await.unwrap();
        assert_eq!(
            sorted(changes),
            sorted(vec![
                Change::Mac("02:00:5e:10:20:05".into()),
                Change::LinkUp,
                Change::AddressAdded(net("10.20.0.5/24")),
                Change::DefaultRoute(ip("10.20.0.1")),
                Change::Dns(vec![ip("192.0.2.53")]),
            ])
        );
        assert!(ns.link_up());
        assert_eq!(ns.mac(), "02:00:5e:10:20:05");
        assert_eq!(ns.addrs(false), ["10.20.0.5/24"]);
        assert_eq!(ns.default_gateways("-4"), ["10.20.0.1"]);
        assert_eq!(
            std::fs::read_to_string(ns.resolv_conf()).unwrap(),
            "search example.org\nnameserver 192.0.2.53\n"
        );
        let state = nc.current().await.unwrap();
        assert!(state.up);
        assert_eq!(state.mac.as_deref(), Some("02:00:5e:10:20:05"));
        assert!(state.addresses.contains(&net("10.20.0.5/24")));
        assert_eq!(state.default_gateways, [ip("10.20.0.1")]);
        assert_eq!(state.dns, [ip("192.0.2.53")]);

        // A different static configuration; a stray address added behind our back goes too.
        ns.ip(&["addr", "add", "10.20.0.99/24", "dev", IFACE]);
        let second = fixed(
            "10.30.0.7/16",
            Some("10.30.0.1"),
            &["192.0.2.54", "2001:db8::53"],
        );
        let changes = nc.apply(&second, Some(mac)).await.unwrap();
        assert_eq!(
            sorted(changes),
            sorted(vec![
                Change::AddressRemoved(net("10.20.0.5/24")),
                Change::AddressRemoved(net("10.20.0.99/24")),
                Change::AddressAdded(net("10.30.0.7/16")),
                Change::DefaultRoute(ip("10.30.0.1")),
                Change::Dns(vec![ip("192.0.2.54"), ip("2001:db8::53")]),
            ])
        );
        assert_eq!(ns.addrs(false), ["10.30.0.7/16"]);
        assert_eq!(ns.default_gateways("-4"), ["10.30.0.1"]);
        assert_eq!(ns.mac(), "02:00:5e:10:20:05");
        assert!(ns.link_up());

        // Unconfigured: the host owns the interface, nothing is touched.
        let before = nc.current().await.unwrap();
        let resolv_before = std::fs::read_to_string(ns.resolv_conf()).unwrap();
        assert_eq!(
            nc.apply(&NetworkConfig::Unconfigured, Some("not-a-mac"))
                .await
                .unwrap(),
            []
        );
        assert_eq!(nc.current().await.unwrap(), before);
        assert_eq!(ns.mac(), "02:00:5e:10:20:05");
        assert_eq!(
            std::fs::read_to_string(ns.resolv_conf()).unwrap(),
            resolv_before
        );

        // The same static configuration twice: the second apply changes nothing.
        assert_eq!(nc.apply(&second, Some(mac)).await.unwrap(), []);
        assert_eq!(nc.apply(&second, Some(mac)).await.unwrap(), []);
        assert_eq!(nc.current().await.unwrap(), before);

        // An invalid MAC is rejected before anything is touched.
        let third = fixed("10.40.0.8/24", None, &[]);
        assert!(matches!(
            nc.apply(&third, Some("02:00:5e:zz:00:01")).await,
            Err(NetError::InvalidMac(_))
        ));
        assert!(matches!(
            nc.apply(&third, Some("01:00:5e:00:00:01")).await,
            Err(NetError::InvalidMac(_))
        ));
        assert_eq!(nc.current().await.unwrap(), before);

        // No gateway: the default route goes; no MAC override: the MAC stays.
        // Removing 10.30.0.7 usually takes its default route with it (the kernel flushes routes
        // whose gateway became unreachable); whether or not DefaultRouteRemoved is reported
        // for that, none may be left.
        let mut changes = nc.apply(&third, None).await.unwrap();
        changes.retain(|c| *c != Change::DefaultRouteRemoved);
        assert_eq!(
            sorted(changes),
            sorted(vec![
                Change::AddressRemoved(net("10.30.0.7/16")),
                Change::AddressAdded(net("10.40.0.8/24")),
                Change::Dns(vec![]),
            ])
        );
        assert!(ns.default_gateways("-4").is_empty());
        assert_eq!(ns.mac(), "02:00:5e:10:20:05");
        assert_eq!(nc.apply(&third, None).await.unwrap(), []);

        // A default route on the interface with no gateway configured is removed.
        ns.ip(&["route", "add", "default", "via", "10.40.0.1", "dev", IFACE]);
        assert_eq!(
            nc.apply(&third, None).await.unwrap(),
            [Change::DefaultRouteRemoved]
        );
        assert!(ns.default_gateways("-4").is_empty());
    });
}

#[test]
fn static_ipv6_leaves_ipv4_and_link_local_alone() {
    if !have_root() {
        return;
    }
    let ns = std::sync::Arc::new(TestNs::new());
    let outer = ns.clone();
    outer.run(move || async move {
        let nc = NetConfigurator::new(IFACE, ns.resolv_conf())
            .await
            .unwrap()
            .with_dhcp_client(None);
        let v4 = fixed("10.50.0.2/24", Some("10.50.0.1"), &[]);
        nc.apply(&v4, None).await.unwrap();

        let v6 = fixed("2001:db8:1::5/64", Some("2001:db8:1::1"), &["2001:db8::53"]);
        let changes = nc.apply(&v6, None).await.unwrap();
        assert_eq!(
            sorted(changes),
            sorted(vec![
                Change::AddressAdded(net("2001:db8:1::5/64")),
                Change::DefaultRoute(ip("2001:db8:1::1")),
                Change::Dns(vec![ip("2001:db8::53")]),
            ])
        );
        assert_eq!(ns.addrs(false), ["10.50.0.2/24", "2001:db8:1::5/64"]);
        assert_eq!(ns.default_gateways("-6"), ["2001:db8:1::1"]);
        assert_eq!(ns.default_gateways("-4"), ["10.50.0.1"]);
        assert_eq!(nc.apply(&v6, None).await.unwrap(), []);

        // A link-local address is never removed.
        let link_local: Vec<String> = ns
            .addrs(true)
            .into_iter()
            .filter(|a| a.starts_with("fe80:"))
            .collect();
        if link_local.is_empty() {
            ns.ip(&["addr", "add", "fe80::99/64", "dev", IFACE]);
        }
        let v6b = fixed("2001:db8:2::5/64", None, &["2001:db8::53"]);
        let changes = nc.apply(&v6b, None).await.unwrap();
        assert!(changes.contains(&Change::AddressRemoved(net("2001:db8:1::5/64"))));
        assert!(changes.contains(&Change::AddressAdded(net("2001:db8:2::5/64"))));
        assert!(ns.addrs(true).iter().any(|a| a.starts_with("fe80:")));
        assert!(ns.default_gateways("-6").is_empty());
        assert_eq!(nc.apply(&v6b, None).await.unwrap(), []);
    });
}

#[test]
fn dhcp_starts_the_client_once_and_static_stops_it() {
    if !have_root() {
        return;
    }
    let ns = std::sync::Arc::new(TestNs::new());
    // What a previous static configuration left behind.
    ns.ip(&["addr", "add", "10.60.0.2/24", "dev", IFACE]);
    let outer = ns.clone();
    outer.run(move || async move {
        // `sleep` stands in for a foreground DHCP client; `{interface}` is substituted.
        let marker = ns.dir.join("dhcp-started");
        let script = format!("echo \"$0\" > '{}'; exec sleep 300", marker.display());
        let nc = NetConfigurator::new(IFACE, ns.resolv_conf())
            .await
            .unwrap()
            .with_dhcp_client(Some(DhcpCommand::new("sh", ["-c", &script, "{interface}"])));

        let changes = nc.apply(&NetworkConfig::Dhcp, None).await.unwrap();
        assert_eq!(
            sorted(changes),
            sorted(vec![
                Change::LinkUp,
                Change::AddressRemoved(net("10.60.0.2/24")),
                Change::DhcpStarted,
            ])
        );
        assert!(ns.link_up());
        assert!(ns.addrs(false).is_empty());
        for _ in 0..100 {
            if marker.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), IFACE);

        // Already in DHCP mode: nothing to do, the client is not started again.
        assert_eq!(nc.apply(&NetworkConfig::Dhcp, None).await.unwrap(), []);
        assert_eq!(
            nc.apply(&NetworkConfig::Unconfigured, None).await.unwrap(),
            []
        );
        // Back from Unconfigured: the client started earlier is still running.
        assert_eq!(nc.apply(&NetworkConfig::Dhcp, None).await.unwrap(), []);

        let fixed_cfg = fixed("10.60.0.3/24", Some("10.60.0.1"), &[]);
        let changes = nc.apply(&fixed_cfg, None).await.unwrap();
        assert_eq!(
            sorted(changes),
            sorted(vec![
                Change::DhcpStopped,
                Change::AddressAdded(net("10.60.0.3/24")),
                Change::DefaultRoute(ip("10.60.0.1")),
            ])
        );
        assert_eq!(nc.apply(&fixed_cfg, None).await.unwrap(), []);
    });
}

#[test]
fn dhcp_left_to_the_os_only_brings_the_link_up() {
    if !have_root() {
        return;
    }
    let ns = std::sync::Arc::new(TestNs::new());
    ns.ip(&["addr", "add", "10.70.0.2/24", "dev", IFACE]);
    let outer = ns.clone();
    outer.run(move || async move {
        let nc = NetConfigurator::new(IFACE, ns.resolv_conf())
            .await
            .unwrap()
            .with_dhcp_client(None);
        assert_eq!(
            nc.apply(&NetworkConfig::Dhcp, None).await.unwrap(),
            [Change::LinkUp]
        );
        assert_eq!(ns.addrs(false), ["10.70.0.2/24"]);
        assert_eq!(nc.apply(&NetworkConfig::Dhcp, None).await.unwrap(), []);
    });
}

#[test]
fn missing_interface_is_reported() {
    if !have_root() {
        return;
    }
    let ns = TestNs::new();
    ns.run(|| async {
        let err = NetConfigurator::new("hs-missing", PathBuf::from("/nonexistent/resolv.conf"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, NetError::NoSuchInterface(ref n) if n == "hs-missing"),
            "{err}"
        );
    });
}
