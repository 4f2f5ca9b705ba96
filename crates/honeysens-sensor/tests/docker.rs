//! The Docker runtime against the real Docker engine: a `FROM scratch` image with a static
//! busybox (Debian's `busybox-static`) that answers `hello-<service>` on its port.
//!
//! Skipped (with a message) without Docker, root or busybox; under `CI=true` that is a
//! failure. Every test uses its own names (network, prefix, image, nft table, netns) and a
//! guard removes them again, also when the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::model::{Architecture, ServiceState, ServiceStatus};
use honeysens_core::protocol::{
    Downloaded, EventUploadResult, ServiceTarget, StatusRequest, StatusResponse, Transport,
    TransportError,
};
use honeysens_sensor::runtime::docker::{DockerOptions, DockerRuntime, LABEL_OWNER};
use honeysens_sensor::runtime::image::{
    FetchedImage, ImageError, ImageSource, RegistryImageSource,
};
use honeysens_sensor::runtime::{ContainerRuntime, ServicePlan};
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const BUSYBOX: &str = "/bin/busybox";

/// The catch-all test redirects every unclaimed TCP/UDP port of this host to its service, as an
/// agent does on its own sensor; the other tests' containers dial their agent's intake on the
/// host meanwhile, which that redirect would take. They share the host; the catch-all runs
/// alone.
static HOST_PORTS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Whether Docker, root and busybox are there; panics under CI when not.
fn available() -> bool {
    let docker = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let root = nix::unistd::geteuid().is_root();
    let busybox = Path::new(BUSYBOX).exists();
    if docker && root && busybox {
        return true;
    }
    let why = format!(
        "docker tests need the Docker engine ({docker}), root ({root}) and {BUSYBOX} from busybox-static ({busybox})"
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Everything a test created, removed on drop.
struct Guard {
    network: String,
    repo: String,
    dir: PathBuf,
    nft_table: Option<String>,
    netns: Option<String>,
    veth: Option<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let ids = sh(&[
            "docker",
            "ps",
            "-aq",
            "--filter",
            &format!("label={LABEL_OWNER}={}", self.network),
        ]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            sh(&["docker", "rm", "-f", id]);
        }
        sh(&["docker", "network", "rm", &self.network]);
        let images = sh(&[
            "docker",
            "images",
            "-q",
            "--filter",
            &format!("reference={}", self.repo),
        ]);
        for id in String::from_utf8_lossy(&images.stdout).split_whitespace() {
            sh(&["docker", "rmi", "-f", id]);
        }
        if let Some(t) = &self.nft_table {
            sh(&["nft", "delete", "table", "inet", t]);
        }
        if let Some(v) = &self.veth {
            sh(&["ip", "link", "del", v]);
        }
        if let Some(n) = &self.netns {
            sh(&["ip", "netns", "del", n]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A guard for test `name` with its own names.
fn guard(name: &str) -> Guard {
    let id = std::process::id();
    let g = Guard {
        network: format!("hst{name}{id}"),
        repo: format!("hstest/{name}{id}"),
        dir: std::env::temp_dir().join(format!("hs-docker-{name}-{id}")),
        nft_table: None,
        netns: None,
        veth: None,
    };
    let _ = std::fs::remove_dir_all(&g.dir);
    std::fs::create_dir_all(&g.dir).unwrap_or_else(|e| panic!("{e}"));
    g
}

/// Builds the busybox image (label `t=<name>` makes its id unique to the test), saves it as
/// a `docker save` archive and removes it from the engine again.
fn build_archive(g: &Guard, name: &str) -> PathBuf {
    let ctx = g.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(BUSYBOX, ctx.join("busybox")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\nLABEL t={name}{}\n\
             ENTRYPOINT [\"/bin/busybox\",\"sh\",\"-c\",\"exec /bin/busybox nc -ll -p ${{HONEYSENS_CATCHALL_PORT:-2222}} -e /bin/busybox echo hello-$HONEYSENS_SERVICE\"]\n",
            std::process::id()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tag = format!("hstest-build/{name}{}:1", std::process::id());
    let out = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = g.dir.join("image.tar");
    let out = sh(&["docker", "save", "-o", &archive.to_string_lossy(), &tag]);
    assert!(out.status.success(), "docker save failed");
    let out = sh(&["docker", "rmi", &tag]);
    assert!(out.status.success(), "docker rmi failed");
    archive
}

/// Serves one prepared archive (a copy per fetch) and counts fetches.
struct ArchiveSource {
    archive: PathBuf,
    fetches: std::sync::atomic::AtomicUsize,
    delay: Duration,
}

#[async_trait::async_trait]
impl ImageSource for ArchiveSource {
    async fn fetch(
        &self,
        _service: &ServiceTarget,
        _transport: Option<Arc<dyn Transport>>,
        work_dir: &Path,
    ) -> Result<FetchedImage, ImageError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let copy = work_dir.join("image.tar");
        tokio::fs::copy(&self.archive, &copy).await?;
        Ok(FetchedImage {
            archive: copy,
            temporary: true,
        })
    }
}

fn service(g: &Guard, name: &str, revision: &str, digest: &str) -> ServiceTarget {
    ServiceTarget {
        name: name.to_owned(),
        repository: g.repo.clone(),
        revision: revision.to_owned(),
        architecture: Architecture::Amd64,
        image_digest: digest.to_owned(),
        port_assignment: BTreeMap::new(),
        catch_all: false,
        raw_network_access: false,
    }
}

fn fake_digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

/// Stands in for the agent's TCP intake on all addresses (as the binary runs it with
/// Docker): answers `intake` to every connection. Its port.
fn intake_stub() -> u16 {
    let intake = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = intake.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in intake.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut conn, b"intake\n");
        }
    });
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn options(g: &Guard) -> DockerOptions {
    let mut o = DockerOptions::new(g.dir.join("work"));
    o.network = g.network.clone();
    o.prefix = format!("{}-", g.network);
    o.nft_table = g.nft_table.clone();
    o.fetch_wait = Duration::from_secs(120);
    o
}

/// Reads what the service at `addr` answers, polling until it says `hello-…` (containers
/// take a moment to listen).
async fn hello(addr: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        let got = tokio::task::spawn_blocking({
            let addr = addr.to_owned();
            move || -> std::io::Result<String> {
                let mut s = std::net::TcpStream::connect(&addr)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        match got {
            Ok(text) if text.starts_with("hello-") => return text.trim().to_owned(),
            Ok(text) => last = text,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{addr} never answered hello (last: {last})");
}

fn inspect(name: &str, format: &str) -> Option<String> {
    let out = sh(&["docker", "inspect", "--format", format, name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What `ip:port` answers to a client in netns `ns` (busybox nc).
fn nc_from(ns: &str, ip: &str, port: u16) -> String {
    let out = sh(&[
        "ip",
        "netns",
        "exec",
        ns,
        BUSYBOX,
        "nc",
        "-w",
        "5",
        ip,
        &port.to_string(),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn only(statuses: &[ServiceStatus]) -> &ServiceStatus {
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    &statuses[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_create_adopt_replace_move_and_remove() {
    if !available() {
        return;
    }
    let _ports = HOST_PORTS.read().await;
    let g = guard("life");
    let archive = build_archive(&g, "life");
    let source = Arc::new(ArchiveSource {
        archive,
        fetches: Default::default(),
        delay: Duration::ZERO,
    });
    let net: Ipv4Net = "10.231.17.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
    let host_port = free_port();
    let intake_port = intake_stub();
    let digest = fake_digest("life-1");
    let mut ssh = service(&g, "ssh", "1", &digest);
    ssh.port_assignment.insert("2222/tcp".into(), host_port);
    let plan = ServicePlan {
        services: vec![ssh.clone()],
        service_network: net,
    };
    let mut opts = options(&g);
    opts.intake_port = Some(intake_port);

    let rt = DockerRuntime::connect(opts.clone(), source.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let st = rt.reconcile(&plan).await;
    assert_eq!(only(&st).state, ServiceState::Running, "{st:?}");
    let cname = format!("{}ssh", opts.prefix);
    assert_eq!(hello(&format!("127.0.0.1:{host_port}")).await, "hello-ssh");
    let id1 = inspect(&cname, "{{.Id}}").unwrap_or_default();
    assert!(!id1.is_empty());
    let labels = inspect(&cname, "{{json .Config.Labels}}").unwrap_or_default();
    let labels: HashMap<String, String> =
        serde_json::from_str(&labels).unwrap_or_else(|e| panic!("{labels}: {e}"));
    assert_eq!(
        labels.get("io.honeysens.service").map(String::as_str),
        Some("ssh")
    );
    assert_eq!(
        labels.get("io.honeysens.revision").map(String::as_str),
        Some("1")
    );
    assert_eq!(labels.get("io.honeysens.digest"), Some(&digest));
    let env = inspect(&cname, "{{json .Config.Env}}").unwrap_or_default();
    assert!(
        env.contains(&format!("HONEYSENS_INTAKE=tcp:10.231.17.1:{intake_port}")),
        "{env}"
    );
    assert!(env.contains("HONEYSENS_SERVICE=ssh"), "{env}");
    // The container reaches the agent's intake at the gateway.
    let out = sh(&[
        "docker",
        "exec",
        &cname,
        BUSYBOX,
        "nc",
        "-w",
        "5",
        "10.231.17.1",
        &intake_port.to_string(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "intake",
        "{out:?}"
    );
    let ip = inspect(
        &cname,
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            g.network
        ),
    )
    .unwrap_or_default();
    assert!(
        ip.starts_with("10.231.17."),
        "container on the service network: {ip}"
    );
    assert_eq!(
        inspect(&cname, "{{.HostConfig.RestartPolicy.Name}}").as_deref(),
        Some("unless-stopped")
    );
    assert_eq!(source.fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // An agent restart: a new runtime adopts the container and does not fetch again.
    rt.shutdown().await;
    drop(rt);
    let rt = DockerRuntime::connect(opts.clone(), source.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let st = rt.reconcile(&plan).await;
    assert_eq!(only(&st).state, ServiceState::Running, "{st:?}");
    assert_eq!(
        inspect(&cname, "{{.Id}}").unwrap_or_default(),
        id1,
        "adopted, not recreated"
    );
    assert_eq!(source.fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A new revision replaces it.
    let mut ssh2 = ssh.clone();
    ssh2.revision = "2".into();
    let plan2 = ServicePlan {
        services: vec![ssh2],
        service_network: net,
    };
    let st = rt.reconcile(&plan2).await;
    assert_eq!(only(&st).state, ServiceState::Running, "{st:?}");
    let id2 = inspect(&cname, "{{.Id}}").unwrap_or_default();
    assert!(!id2.is_empty() && id2 != id1, "replaced");
    assert_eq!(
        inspect(&cname, "{{index .Config.Labels \"io.honeysens.revision\"}}").as_deref(),
        Some("2")
    );
    assert_eq!(hello(&format!("127.0.0.1:{host_port}")).await, "hello-ssh");

    // A new service network range: network and container recreated on it.
    let net2: Ipv4Net = "10.231.18.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
    let plan3 = ServicePlan {
        services: plan2.services.clone(),
        service_network: net2,
    };
    let st = rt.reconcile(&plan3).await;
    assert_eq!(only(&st).state, ServiceState::Running, "{st:?}");
    let subnet = sh(&[
        "docker",
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &g.network,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&subnet.stdout).trim(),
        "10.231.18.0/24"
    );
    let ip = inspect(
        &cname,
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            g.network
        ),
    )
    .unwrap_or_default();
    assert!(ip.starts_with("10.231.18."), "moved: {ip}");
    assert_eq!(hello(&format!("127.0.0.1:{host_port}")).await, "hello-ssh");

    // Nothing assigned: container and image gone.
    let st = rt
        .reconcile(&ServicePlan {
            services: Vec::new(),
            service_network: net2,
        })
        .await;
    assert!(st.is_empty());
    assert!(inspect(&cname, "{{.Id}}").is_none(), "container removed");
    let images = sh(&[
        "docker",
        "images",
        "-q",
        "--filter",
        &format!("reference={}", g.repo),
    ]);
    assert!(
        String::from_utf8_lossy(&images.stdout).trim().is_empty(),
        "image removed"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_services_are_reported_and_others_still_run() {
    if !available() {
        return;
    }
    let _ports = HOST_PORTS.read().await;
    let g = guard("bad");
    let archive = build_archive(&g, "bad");
    let source = Arc::new(ArchiveSource {
        archive,
        fetches: Default::default(),
        // Slower than `fetch_wait`: the first answer is `scheduled`.
        delay: Duration::from_secs(2),
    });
    let mut opts = options(&g);
    opts.fetch_wait = Duration::from_millis(200);
    let rt = DockerRuntime::connect(opts.clone(), source)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut bad_port = service(&g, "badport", "1", &fake_digest("bad"));
    bad_port.port_assignment.insert("22/sctp".into(), 22);
    let mut bad_repo = service(&g, "badrepo", "1", &fake_digest("bad"));
    bad_repo.repository = "../etc".into();
    let good = service(&g, "good", "1", &fake_digest("bad"));
    let plan = ServicePlan {
        services: vec![bad_port, bad_repo, good],
        service_network: "10.231.19.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
    };
    let st = rt.reconcile(&plan).await;
    let by_name: HashMap<_, _> = st.iter().map(|s| (s.name.as_str(), s)).collect();
    assert_eq!(by_name["badport"].state, ServiceState::Error);
    assert!(
        by_name["badport"]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("sctp")
    );
    assert_eq!(by_name["badrepo"].state, ServiceState::Error);
    assert_eq!(by_name["good"].state, ServiceState::Scheduled, "{st:?}");
    // When the image arrives the runtime starts the service without waiting for a poll.
    let cname = format!("{}good", opts.prefix);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while inspect(&cname, "{{.State.Running}}").as_deref() != Some("true") {
        assert!(tokio::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let st = rt.reconcile(&plan).await;
    assert!(
        st.iter()
            .any(|s| s.name == "good" && s.state == ServiceState::Running)
    );
    rt.shutdown().await;
}

/// A transport serving registry paths from memory (the registry endpoint is not on this
/// branch); `SensorClient::download` is tested against the real server in honeysens-http.
struct BlobTransport(HashMap<String, Vec<u8>>);

#[async_trait::async_trait]
impl Transport for BlobTransport {
    async fn poll(&self, _: &StatusRequest) -> Result<StatusResponse, TransportError> {
        Err(TransportError::Unavailable("test".into()))
    }
    async fn upload_events(&self, _: &[Vec<u8>]) -> Result<EventUploadResult, TransportError> {
        Err(TransportError::Unavailable("test".into()))
    }
    async fn download(
        &self,
        path: &str,
        _accept: &[&str],
        dest: &Path,
    ) -> Result<Downloaded, TransportError> {
        let body = self.0.get(path).ok_or(TransportError::Refused {
            status: 404,
            code: "not_found".into(),
        })?;
        tokio::fs::write(dest, body)
            .await
            .map_err(|e| TransportError::Io(e.to_string()))?;
        Ok(Downloaded {
            content_type: None,
            size: body.len() as u64,
        })
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The OCI blobs of a `docker save` archive: registry paths → bytes, and the manifest digest.
fn oci_blobs(archive: &Path, repo: &str) -> (HashMap<String, Vec<u8>>, String) {
    let mut files = HashMap::new();
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap_or_else(|e| panic!("{e}")));
    for entry in tar.entries().unwrap_or_else(|e| panic!("{e}")) {
        let mut entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let path = entry
            .path()
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string_lossy()
            .into_owned();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .unwrap_or_else(|e| panic!("{e}"));
        files.insert(path, data);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).unwrap_or_else(|e| panic!("{e}"));
    let config = &files[manifest[0]["Config"].as_str().unwrap_or_default()];
    let mut blobs = HashMap::new();
    blobs.insert(format!("/v2/{repo}/blobs/{}", sha(config)), config.clone());
    let mut layers = Vec::new();
    for l in manifest[0]["Layers"].as_array().into_iter().flatten() {
        let data = &files[l.as_str().unwrap_or_default()];
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha(data),
            "size": data.len(),
        }));
        blobs.insert(format!("/v2/{repo}/blobs/{}", sha(data)), data.clone());
    }
    let oci = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(config),
            "size": config.len(),
        },
        "layers": layers,
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let digest = sha(&oci);
    blobs.insert(format!("/v2/{repo}/manifests/{digest}"), oci);
    (blobs, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_blobs_are_verified_assembled_and_loaded() {
    if !available() {
        return;
    }
    let _ports = HOST_PORTS.read().await;
    let g = guard("reg");
    let archive = build_archive(&g, "reg");
    let (blobs, digest) = oci_blobs(&archive, &g.repo);
    let mut corrupt = blobs.clone();
    for (path, data) in corrupt.iter_mut() {
        if path.contains("/blobs/") && data.len() > 10_000 {
            data[5000] ^= 0xff;
        }
    }
    let rt = DockerRuntime::connect(options(&g), Arc::new(RegistryImageSource))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut svc = service(&g, "web", "7", &digest);
    svc.port_assignment.insert("2222".into(), port);
    let plan = ServicePlan {
        services: vec![svc],
        service_network: "10.231.20.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
    };

    // No connection yet: an error, not a crash.
    let st = rt.reconcile(&plan).await;
    assert_eq!(only(&st).state, ServiceState::Error, "{st:?}");
    // A corrupted layer is refused by its digest.
    rt.use_transport(Arc::new(BlobTransport(corrupt)));
    let st = rt.reconcile(&plan).await;
    assert_eq!(only(&st).state, ServiceState::Error, "{st:?}");
    assert!(
        only(&st)
            .error
            .as_deref()
            .unwrap_or("")
            .contains("digest mismatch"),
        "{st:?}"
    );
    // The real blobs load and run; the image carries both tags.
    rt.use_transport(Arc::new(BlobTransport(blobs)));
    let st = rt.reconcile(&plan).await;
    assert_eq!(only(&st).state, ServiceState::Running, "{st:?}");
    assert_eq!(hello(&format!("127.0.0.1:{port}")).await, "hello-web");
    let hex = digest.trim_start_matches("sha256:");
    for tag in ["7".to_owned(), format!("sha256-{hex}")] {
        let out = sh(&["docker", "image", "inspect", &format!("{}:{tag}", g.repo)]);
        assert!(out.status.success(), "tag {tag} missing");
    }
    // Downloads leave nothing behind in the work directory.
    let left: Vec<_> = std::fs::read_dir(g.dir.join("work"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_all_takes_unclaimed_ports_from_outside() {
    if !available() {
        return;
    }
    let _ports = HOST_PORTS.write().await;
    let id = std::process::id();
    let mut g = guard("ca");
    g.nft_table = Some(format!("hstest{id}"));
    let ns = format!("hsca{id}");
    let veth = format!("hsv{}", id % 100_000);
    let peer = format!("hsp{}", id % 100_000);
    g.netns = Some(ns.clone());
    g.veth = Some(veth.clone());
    let octet = 10 + id % 200;
    let host_ip = format!("10.252.{octet}.1");
    let peer_ip = format!("10.252.{octet}.2");
    for cmd in [
        vec!["ip", "netns", "add", &ns],
        vec![
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer,
        ],
        vec!["ip", "link", "set", &peer, "netns", &ns],
        vec!["ip", "addr", "add", &format!("{host_ip}/30"), "dev", &veth],
        vec!["ip", "link", "set", &veth, "up"],
        vec![
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{peer_ip}/30"),
            "dev",
            &peer,
        ],
        vec!["ip", "-n", &ns, "link", "set", &peer, "up"],
        vec!["ip", "-n", &ns, "link", "set", "lo", "up"],
    ] {
        let out = sh(&cmd);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let archive = build_archive(&g, "ca");
    let source = Arc::new(ArchiveSource {
        archive,
        fetches: Default::default(),
        delay: Duration::ZERO,
    });
    let mut opts = options(&g);
    opts.catch_all_port = free_port();
    let protected = free_port();
    opts.protected_tcp_ports.insert(protected);
    let intake_port = intake_stub();
    opts.intake_port = Some(intake_port);
    let rt = DockerRuntime::connect(opts.clone(), source)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut recon = service(&g, "recon", "1", &fake_digest("ca"));
    recon.catch_all = true;
    recon.raw_network_access = true;
    let plan = ServicePlan {
        services: vec![recon],
        service_network: "10.231.21.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
    };
    let st = rt.reconcile(&plan).await;
    assert_eq!(only(&st).state, ServiceState::Running, "{st:?}");
    let cname = format!("{}recon", opts.prefix);
    assert_eq!(
        inspect(&cname, "{{.HostConfig.NetworkMode}}").as_deref(),
        Some("host")
    );
    // A host-network service reaches the agent's intake at the service network's gateway.
    let env = inspect(&cname, "{{json .Config.Env}}").unwrap_or_default();
    let intake_addr = format!("10.231.21.1:{intake_port}");
    assert!(
        env.contains(&format!("HONEYSENS_INTAKE=tcp:{intake_addr}")),
        "{env}"
    );
    assert!(
        env.contains(&format!("HONEYSENS_CATCHALL_PORT={}", opts.catch_all_port)),
        "{env}"
    );
    let (ip, port) = intake_addr.split_once(':').unwrap();
    let out = sh(&["docker", "exec", &cname, BUSYBOX, "nc", "-w", "5", ip, port]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "intake",
        "{out:?}"
    );
    // The listener runs on the host (host network) on the catch-all port.
    assert_eq!(
        hello(&format!("127.0.0.1:{}", opts.catch_all_port)).await,
        "hello-recon"
    );
    let table = g.nft_table.clone().unwrap_or_default();
    let listed = sh(&["nft", "list", "table", "inet", &table]);
    assert!(listed.status.success(), "table {table} exists");

    // From another machine (the netns), an arbitrary port reaches the catch-all service.
    let from_ns = {
        let (ns, host_ip) = (ns.clone(), host_ip.clone());
        move |port: u16| nc_from(&ns, &host_ip, port)
    };
    let unmapped = 40000 + (id % 20000) as u16;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = tokio::task::spawn_blocking({
            let f = from_ns.clone();
            move || f(unmapped)
        })
        .await
        .unwrap_or_default();
        if got == "hello-recon" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {unmapped} was not redirected: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A port the agent keeps for itself is not redirected (nothing listens there).
    let got = tokio::task::spawn_blocking({
        let f = from_ns.clone();
        move || f(protected)
    })
    .await
    .unwrap_or_default();
    assert_eq!(got, "", "protected port {protected} must not be redirected");

    // UDP too: a datagram to an unclaimed port arrives at the catch-all port (the test
    // listens there itself; the container's busybox only speaks TCP).
    let udp = std::net::UdpSocket::bind(("0.0.0.0", opts.catch_all_port)).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut received = None;
    for _ in 0..10 {
        let (ns, host_ip) = (ns.clone(), host_ip.clone());
        tokio::task::spawn_blocking(move || {
            // busybox nc has no UDP mode here; bash's /dev/udp sends one datagram.
            Command::new("ip")
                .args(["netns", "exec", &ns, "bash", "-c"])
                .arg(format!(
                    "echo udp-probe > /dev/udp/{host_ip}/{}",
                    unmapped + 1
                ))
                .output()
        })
        .await
        .unwrap()
        .unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            received = Some((String::from_utf8_lossy(&buf[..n]).trim().to_owned(), from));
            break;
        }
    }
    let (text, from) = received.expect("the UDP datagram was not redirected");
    assert_eq!(text, "udp-probe");
    assert_eq!(from.ip().to_string(), peer_ip);

    // The intake answers locally but is closed to the outside (dropped, not redirected).
    let local = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", intake_port)).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert_eq!(local.trim(), "intake");
    let got = tokio::task::spawn_blocking(move || from_ns(intake_port))
        .await
        .unwrap_or_default();
    assert_eq!(got, "", "the intake must not be reachable from outside");

    rt.shutdown().await;
    let listed = sh(&["nft", "list", "table", "inet", &table]);
    assert!(!listed.status.success(), "table removed on shutdown");
    // The container keeps running (adopted at the next start).
    assert_eq!(
        inspect(&cname, "{{.State.Running}}").as_deref(),
        Some("true")
    );
}
