//! Service packages and the read-only registry, end to end over real TLS: upload through the
//! management API (packages from the builder and from a real `docker save`), refusals with
//! their field codes, and `/v2/` read by a sensor — with reqwest and with `skopeo`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestServer;
use honeysens_core::ids::SensorId;
use honeysens_core::model::{Architecture, DivisionSpec, Role, SensorAuthMode, SensorSpec};
use honeysens_core::package::oci::{self, ImageIndex, ImageManifest};
use honeysens_core::package::{
    ArchiveLayout, ImageSpec, ManifestStyle, PackageBuilder, PackageManifest, RootfsFile,
    write_entries,
};
use honeysens_core::pki::IssuedKeyPair;
use honeysens_http::client::ClientError;
use honeysens_http::mgmt_client::ManagementClient;
use std::io::Read;
use std::process::Command;

const PAYLOAD: &[u8] = b"#!/bin/false\nthe honeypot binary would be here\n";

fn manifest(name: &str, revision: &str, archs: &[Architecture]) -> PackageManifest {
    PackageManifest {
        name: name.into(),
        repository: format!("honeysens/{name}"),
        description: "test service".into(),
        architectures: archs.to_vec(),
        revision: revision.into(),
        revision_description: "from the test".into(),
        port_assignment: [("2222/tcp".to_owned(), 22)].into(),
        catch_all: false,
        raw_network_access: false,
    }
}

fn builder(name: &str, revision: &str, archs: &[Architecture]) -> PackageBuilder {
    let images = archs
        .iter()
        .map(|a| ImageSpec {
            architecture: *a,
            files: vec![RootfsFile {
                path: "bin/honeypot".into(),
                mode: 0o755,
                contents: [PAYLOAD, a.as_str().as_bytes()].concat(),
            }],
            entrypoint: vec!["/bin/honeypot".into()],
            cmd: vec![],
            env: vec!["HONEYSENS=1".into()],
            exposed_ports: vec!["2222/tcp".into()],
        })
        .collect();
    PackageBuilder::new(manifest(name, revision, archs), images)
}

fn api_error(e: ClientError) -> (u16, String, Vec<(String, String)>) {
    match e {
        ClientError::Api {
            status,
            code,
            fields,
            ..
        } => (
            status,
            code,
            fields
                .into_iter()
                .map(|f| (f.field, f.code.to_owned()))
                .collect(),
        ),
        other => panic!("not an API error: {other}"),
    }
}

async fn admin(srv: &TestServer) -> ManagementClient {
    srv.user("admin", Role::Admin, vec![]).await;
    srv.login("admin").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_create_services_and_revisions_and_bad_ones_are_refused() {
    let srv = TestServer::start(&[]).await;
    let c = admin(&srv).await;

    // Two architectures in one OCI-layout package: one service, two revisions.
    let both = [Architecture::Amd64, Architecture::Arm64];
    let up = c
        .upload_service_package(builder("ssh", "1.0.0", &both).write(Vec::new()).unwrap())
        .await
        .unwrap();
    assert!(up.created);
    assert_eq!(up.service.spec.repository, "honeysens/ssh");
    assert_eq!(up.revisions.len(), 2);
    for r in &up.revisions {
        assert_eq!(r.spec.revision, "1.0.0");
        assert_eq!(r.spec.port_assignment["2222/tcp"], 22);
        // The digest names the stored OCI manifest, whose blobs are all stored too.
        let hex = oci::sha256_hex(&r.spec.image_digest).unwrap();
        let (_, mut rd) = srv.state.blobs.open(hex).await.unwrap();
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut bytes)
            .await
            .unwrap();
        assert_eq!(oci::digest_of(&bytes), r.spec.image_digest);
        let m: ImageManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m.media_type, oci::MEDIA_TYPE_MANIFEST);
        assert_eq!(m.layers[0].media_type, oci::MEDIA_TYPE_LAYER_GZIP);
        for d in std::iter::once(&m.config).chain(&m.layers) {
            let size = srv
                .state
                .blobs
                .stat(oci::sha256_hex(&d.digest).unwrap())
                .await
                .unwrap();
            assert_eq!(size, Some(d.size));
        }
    }
    let listed = c.list_service_revisions(up.service.id).await.unwrap();
    assert_eq!(listed.len(), 2);

    // The same revision again: 409 with a stable code, nothing added.
    let e = c
        .upload_service_package(
            builder("ssh", "1.0.0", &both[..1])
                .write(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    let (status, code, _) = api_error(e);
    assert_eq!((status, code.as_str()), (409, "service_revision.conflict"));

    // A new revision as a gzip-compressed legacy docker-save package: added to the service.
    let mut legacy = builder("ssh", "1.1.0", &both[..1]);
    legacy.layout = ArchiveLayout::DockerLegacy;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
    std::io::Write::write_all(&mut gz, &legacy.write(Vec::new()).unwrap()).unwrap();
    let up2 = c
        .upload_service_package(gz.finish().unwrap())
        .await
        .unwrap();
    assert!(!up2.created);
    assert_eq!(up2.service.id, up.service.id);
    assert_eq!(
        c.list_service_revisions(up.service.id).await.unwrap().len(),
        3
    );

    // The old HoneySens layout: metadata.xml beside an inner service.tar.
    let mut old = builder("recon", "2.0", &[Architecture::Armhf]);
    old.style = ManifestStyle::MetadataXml;
    old.layout = ArchiveLayout::DockerLegacy;
    let up3 = c
        .upload_service_package(old.write(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(up3.revisions[0].spec.architecture, Architecture::Armhf);

    // As a multipart form too.
    let pkg = builder("web", "1", &[Architecture::Amd64])
        .write(Vec::new())
        .unwrap();
    let mut form =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"package\"; filename=\"p.tar\"\r\n\
        Content-Type: application/x-tar\r\n\r\n"
            .to_vec();
    form.extend_from_slice(&pkg);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let res = c
        .raw(
            reqwest::Method::POST,
            "/api/services/packages",
            Some((form, "multipart/form-data; boundary=XyZ")),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 201, "{:?}", res.body);

    // Refusals, each with its field code, and nothing created.
    let base = builder("bad", "1", &[Architecture::Amd64]);
    let mut legacy_base = base.clone();
    legacy_base.layout = ArchiveLayout::DockerLegacy;
    type Entries = Vec<(String, Vec<u8>)>;
    let tamper = |b: &PackageBuilder, f: &dyn Fn(&mut Entries)| {
        let mut entries = b.entries().unwrap();
        f(&mut entries);
        write_entries(Vec::new(), &entries).unwrap()
    };
    let missing_layer = tamper(&legacy_base, &|e| {
        e.retain(|(p, _)| !p.ends_with("layer.tar"))
    });
    let mismatch = tamper(&legacy_base, &|e| {
        for (p, d) in e.iter_mut() {
            if p.ends_with("layer.tar") {
                let n = d.len();
                d[n - 2000] ^= 1;
            }
        }
    });
    let mut wrong_arch = base.clone();
    wrong_arch.images[0].architecture = Architecture::Arm64;
    let mut bad_field = base.clone();
    bad_field
        .manifest
        .port_assignment
        .insert("99999/tcp".into(), 22);
    let no_manifest = tamper(&base, &|e| e.retain(|(p, _)| p != "honeysens.json"));
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "missing layer",
            missing_layer,
            "image.layers.0",
            "missing_layer",
        ),
        (
            "digest mismatch",
            mismatch,
            "image.layers.0",
            "digest_mismatch",
        ),
        (
            "wrong architecture",
            wrong_arch.write(Vec::new()).unwrap(),
            "image.architecture",
            "architecture_mismatch",
        ),
        (
            "bad manifest field",
            bad_field.write(Vec::new()).unwrap(),
            "port_assignment.99999/tcp",
            "invalid_port",
        ),
        ("no manifest", no_manifest, "package.manifest", "missing"),
        ("not a tar", b"garbage".repeat(200), "package", "malformed"),
    ];
    for (what, bytes, field, field_code) in cases {
        let e = c.upload_service_package(bytes).await.unwrap_err();
        let (status, code, fields) = api_error(e);
        assert_eq!(
            (status, code.as_str()),
            (422, "validation.failed"),
            "{what}"
        );
        assert!(
            fields.iter().any(|(f, c)| f == field && c == field_code),
            "{what}: {fields:?}"
        );
    }
    let names: Vec<String> = srv
        .store
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, ["recon", "ssh", "web"]);

    // Empty body.
    let (status, code, _) = api_error(c.upload_service_package(vec![]).await.unwrap_err());
    assert_eq!((status, code.as_str()), (422, "validation.failed"));
    srv.stop().await;
}

async fn cert_sensor(srv: &TestServer) -> (SensorId, IssuedKeyPair) {
    let div = srv
        .store
        .create_division(&DivisionSpec { name: "d".into() })
        .await
        .unwrap()
        .id;
    let spec = SensorSpec {
        auth: SensorAuthMode::Certificate,
        ..SensorSpec::new("s1", div)
    };
    let id = srv.store.create_sensor(&spec).await.unwrap().id;
    let issued = srv.ca.issue_sensor(id, 365).unwrap();
    srv.store.record_certificate(&issued.record).await.unwrap();
    (id, issued)
}

fn sensor_http(srv: &TestServer, issued: &IssuedKeyPair) -> reqwest::Client {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(srv.ca.cert_der().to_vec()))
        .unwrap();
    let certs = vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(honeysens_http::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy()
        .build()
        .unwrap()
}

fn oci_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_serves_sensors_read_only() {
    let srv = TestServer::start(&[]).await;
    let c = admin(&srv).await;
    let both = [Architecture::Amd64, Architecture::Arm64];
    let up = c
        .upload_service_package(builder("x", "1.0", &both).write(Vec::new()).unwrap())
        .await
        .unwrap();
    c.upload_service_package(builder("x", "0.9", &both[..1]).write(Vec::new()).unwrap())
        .await
        .unwrap();
    // Another service whose image differs (same bytes would share digests, legitimately).
    let mut y = builder("y", "1", &both[..1]);
    y.images[0].files[0].contents = b"other".to_vec();
    let other = c
        .upload_service_package(y.write(Vec::new()).unwrap())
        .await
        .unwrap();
    let (_, issued) = cert_sensor(&srv).await;
    let http = sensor_http(&srv, &issued);
    let anon = srv.raw(None);
    let url = |p: &str| format!("{}{p}", srv.url);

    // Base endpoint: 200 for the sensor, 401 in OCI format for anybody else.
    let r = http.get(url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let r = anon.get(url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert_eq!(oci_code(&r.bytes().await.unwrap()), "UNAUTHORIZED");
    let r = anon
        .get(url("/v2/honeysens/x/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Tags.
    let r = http
        .get(url("/v2/honeysens/x/tags/list"))
        .send()
        .await
        .unwrap();
    let tags: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"name": "honeysens/x", "tags": ["0.9", "1.0"]})
    );

    // A tag over two architectures is an index; over one, the manifest itself.
    let r = http
        .get(url("/v2/honeysens/x/manifests/1.0"))
        .header("accept", oci::MEDIA_TYPE_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], oci::MEDIA_TYPE_INDEX);
    let digest = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = r.bytes().await.unwrap();
    assert_eq!(oci::digest_of(&body), digest);
    let index: ImageIndex = serde_json::from_slice(&body).unwrap();
    let mut expected: Vec<String> = up
        .revisions
        .iter()
        .map(|r| r.spec.image_digest.clone())
        .collect();
    expected.sort();
    let mut got: Vec<String> = index.manifests.iter().map(|d| d.digest.clone()).collect();
    got.sort();
    assert_eq!(got, expected);
    // The index is stable and can be fetched by its digest.
    let again = http
        .get(url(&format!("/v2/honeysens/x/manifests/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.unwrap(), body);

    let amd = up
        .revisions
        .iter()
        .find(|r| r.spec.architecture == Architecture::Amd64)
        .unwrap();
    let r = http
        .get(url(&format!(
            "/v2/honeysens/x/manifests/{}",
            amd.spec.image_digest
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], oci::MEDIA_TYPE_MANIFEST);
    assert_eq!(
        r.headers()["docker-content-digest"],
        amd.spec.image_digest.as_str()
    );
    let body = r.bytes().await.unwrap();
    assert_eq!(oci::digest_of(&body), amd.spec.image_digest);
    let m: ImageManifest = serde_json::from_slice(&body).unwrap();
    let r = http
        .head(url(&format!(
            "/v2/honeysens/x/manifests/{}",
            amd.spec.image_digest
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        body.len().to_string().as_str()
    );
    assert!(r.bytes().await.unwrap().is_empty());
    let single = http
        .get(url("/v2/honeysens/x/manifests/0.9"))
        .send()
        .await
        .unwrap();
    assert_eq!(single.headers()["content-type"], oci::MEDIA_TYPE_MANIFEST);

    // The layer blob, streamed, decompresses to a tar holding the payload.
    let layer = &m.layers[0];
    let r = http
        .get(url(&format!("/v2/honeysens/x/blobs/{}", layer.digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], layer.digest.as_str());
    let gz = r.bytes().await.unwrap();
    assert_eq!(oci::digest_of(&gz), layer.digest);
    assert_eq!(
        file_in_layer(&gz, "bin/honeypot"),
        [PAYLOAD, b"amd64"].concat()
    );
    let r = http
        .head(url(&format!("/v2/honeysens/x/blobs/{}", layer.digest)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-length"],
        layer.size.to_string().as_str()
    );

    // Unknown things, in OCI error format.
    let y_digest = &other.revisions[0].spec.image_digest;
    for (path, status, code) in [
        (
            "/v2/honeysens/nope/tags/list".to_owned(),
            404,
            "NAME_UNKNOWN",
        ),
        (
            "/v2/honeysens/x/manifests/7.7".to_owned(),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/honeysens/x/manifests/{y_digest}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/honeysens/x/blobs/{y_digest}"),
            404,
            "BLOB_UNKNOWN",
        ),
        (
            format!("/v2/honeysens/x/blobs/sha256:{}", "0".repeat(64)),
            404,
            "BLOB_UNKNOWN",
        ),
    ] {
        let r = http.get(url(&path)).send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(oci_code(&r.bytes().await.unwrap()), code, "{path}");
    }

    // Read-only: every write is 405 UNSUPPORTED, authenticated or not.
    for client in [&http, &anon] {
        for method in ["PUT", "POST", "PATCH", "DELETE"] {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            for path in [
                "/v2/",
                "/v2/honeysens/x/manifests/1.0",
                "/v2/honeysens/x/blobs/uploads/",
            ] {
                let r = client.request(m.clone(), url(path)).send().await.unwrap();
                assert_eq!(r.status(), 405, "{method} {path}");
                assert_eq!(oci_code(&r.bytes().await.unwrap()), "UNSUPPORTED");
            }
        }
    }

    skopeo_copy(&srv, &issued, &m).await;
    srv.stop().await;
}

fn file_in_layer(gz: &[u8], path: &str) -> Vec<u8> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == path {
            let mut out = Vec::new();
            e.read_to_end(&mut out).unwrap();
            return out;
        }
    }
    panic!("{path} not in the layer");
}

fn have(tool: &str, arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} must be available in CI"
        );
        println!("SKIPPED: {tool} is not available");
    }
    ok
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("hs-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `skopeo copy` of `honeysens/x:1.0` (amd64 picked from the index) into an OCI layout,
/// authenticated with the sensor's certificate; the copied manifest is the one served.
async fn skopeo_copy(srv: &TestServer, issued: &IssuedKeyPair, served: &ImageManifest) {
    if !have("skopeo", "--version") {
        return;
    }
    let dir = TempDir::new("skopeo");
    let certs = dir.0.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("sensor.cert"), &issued.cert_pem).unwrap();
    std::fs::write(certs.join("sensor.key"), &issued.key_pem).unwrap();
    std::fs::write(certs.join("ca.crt"), srv.ca.cert_pem()).unwrap();
    let out = dir.0.join("out");
    let src = format!("docker://127.0.0.1:{}/honeysens/x:1.0", srv.port);
    let (certs2, out2) = (certs.clone(), out.clone());
    let src2 = src.clone();
    let run = move |with_cert: bool| {
        let (certs, out, src) = (&certs2, &out2, &src2);
        let mut cmd = Command::new("skopeo");
        cmd.args(["--override-arch", "amd64", "--override-os", "linux", "copy"]);
        if with_cert {
            cmd.arg("--src-cert-dir").arg(certs);
        } else {
            cmd.arg("--src-tls-verify=false");
        }
        cmd.arg(src)
            .arg(format!("oci:{}:1.0", out.display()))
            .output()
            .unwrap()
    };
    let (without, with) = tokio::task::spawn_blocking(move || (run(false), run(true)))
        .await
        .unwrap();
    assert!(
        !without.status.success(),
        "skopeo without a certificate must fail"
    );
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("401")
            || String::from_utf8_lossy(&without.stderr)
                .to_lowercase()
                .contains("unauthorized"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    assert!(
        with.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&with.stderr)
    );
    let index: ImageIndex =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        std::fs::read(out.join("blobs/sha256").join(oci::sha256_hex(d).unwrap())).unwrap()
    };
    let copied: ImageManifest = serde_json::from_slice(&blob(&index.manifests[0].digest)).unwrap();
    assert_eq!(copied.layers[0].digest, served.layers[0].digest);
    assert_eq!(copied.config.digest, served.config.digest);
    let gz = blob(&copied.layers[0].digest);
    assert_eq!(
        file_in_layer(&gz, "bin/honeypot"),
        [PAYLOAD, b"amd64"].concat()
    );
}

/// Removes the test image even when the test fails.
struct DockerImage(String);

impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_docker_save_is_accepted() {
    if !have("docker", "info") {
        return;
    }
    let dir = TempDir::new("docker");
    std::fs::write(dir.0.join("hello"), PAYLOAD).unwrap();
    std::fs::write(
        dir.0.join("Dockerfile"),
        "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n",
    )
    .unwrap();
    let image = DockerImage(format!("hs-test-{}:1", uuid::Uuid::new_v4().simple()));
    let ctx = dir.0.clone();
    let tag = image.0.clone();
    let saved = tokio::task::spawn_blocking(move || {
        let build = Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(&ctx)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let arch = Command::new("docker")
            .args(["image", "inspect", "-f", "{{.Architecture}}", &tag])
            .output()
            .unwrap();
        let save = Command::new("docker")
            .args(["save", &tag])
            .output()
            .unwrap();
        assert!(
            save.status.success(),
            "{}",
            String::from_utf8_lossy(&save.stderr)
        );
        (
            String::from_utf8_lossy(&arch.stdout).trim().to_owned(),
            save.stdout,
        )
    })
    .await
    .unwrap();
    let (arch, saved) = saved;
    let arch = match arch.as_str() {
        "amd64" => Architecture::Amd64,
        "arm64" => Architecture::Arm64,
        _ => Architecture::Armhf,
    };
    // On the Docker bridge's gateway address: the daemon refuses client certificates for
    // loopback registries (it treats 127.0.0.0/8 as insecure and skips certs.d there).
    let bridge = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "docker0"])
        .output()
        .unwrap();
    // `4: docker0    inet 172.17.0.1/16 brd … scope global docker0`
    let gateway: std::net::IpAddr = String::from_utf8_lossy(&bridge.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("the docker0 bridge has an IPv4 address");
    let srv = TestServer::start_at(&[], gateway).await;
    let c = admin(&srv).await;

    // New layout: honeysens.json beside the docker-save files (flattened) …
    let mut flat = vec![(
        "honeysens.json".to_owned(),
        serde_json::to_vec(&manifest("docker", "1", &[arch])).unwrap(),
    )];
    let mut ar = tar::Archive::new(saved.as_slice());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            flat.push((path, data));
        }
    }
    let up = c
        .upload_service_package(write_entries(Vec::new(), &flat).unwrap())
        .await
        .unwrap();
    assert_eq!(up.revisions[0].spec.architecture, arch);

    // … and the old one: metadata.xml beside the unmodified `docker save` tar.
    let xml = format!(
        "<?xml version=\"1.0\"?><service><name>docker</name><repository>honeysens/docker</repository>\
         <description>d</description><architecture>{arch}</architecture><revision>2</revision>\
         <revisionDescription>r</revisionDescription><rawNetworkAccess>false</rawNetworkAccess>\
         <catchAll>true</catchAll><portAssignment>{{}}</portAssignment></service>"
    );
    let old = write_entries(
        Vec::new(),
        &[
            ("metadata.xml".to_owned(), xml.into_bytes()),
            ("service.tar".to_owned(), saved.clone()),
        ],
    )
    .unwrap();
    let up2 = c.upload_service_package(old).await.unwrap();
    assert!(up2.revisions[0].spec.catch_all);

    // The stored layer holds the file Docker copied.
    let hex = oci::sha256_hex(&up2.revisions[0].spec.image_digest).unwrap();
    let (_, mut rd) = srv.state.blobs.open(hex).await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut bytes)
        .await
        .unwrap();
    let m: ImageManifest = serde_json::from_slice(&bytes).unwrap();
    let (_, mut rd) = srv
        .state
        .blobs
        .open(oci::sha256_hex(&m.layers[0].digest).unwrap())
        .await
        .unwrap();
    let mut gz = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut gz)
        .await
        .unwrap();
    assert_eq!(file_in_layer(&gz, "hello"), PAYLOAD);

    // Docker itself pulls the stored image from the registry with a sensor certificate.
    let (_, issued) = cert_sensor(&srv).await;
    let host = format!("{}", std::net::SocketAddr::new(gateway, srv.port));
    let certs_dir = DockerCerts(std::path::PathBuf::from(format!(
        "/etc/docker/certs.d/{host}"
    )));
    std::fs::create_dir_all(&certs_dir.0).unwrap();
    std::fs::write(certs_dir.0.join("client.cert"), &issued.cert_pem).unwrap();
    std::fs::write(certs_dir.0.join("client.key"), &issued.key_pem).unwrap();
    std::fs::write(certs_dir.0.join("ca.crt"), srv.ca.cert_pem()).unwrap();
    let pulled = DockerImage(format!("{host}/honeysens/docker:2"));
    let name = pulled.0.clone();
    let pull = tokio::task::spawn_blocking(move || {
        Command::new("docker")
            .args(["pull", &name])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        pull.status.success(),
        "docker pull: {}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let stdout = String::from_utf8_lossy(&pull.stdout);
    assert!(
        stdout.contains(&up2.revisions[0].spec.image_digest),
        "{stdout}"
    );
    srv.stop().await;
}

/// Removes a per-test Docker client certificate directory.
struct DockerCerts(std::path::PathBuf);

impl Drop for DockerCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_sensors_read_the_registry_too() {
    use honeysens_http::hmac;
    let srv = TestServer::start(&[]).await;
    let c = admin(&srv).await;
    let up = c
        .upload_service_package(
            builder("h", "1", &[Architecture::Amd64])
                .write(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let div = srv
        .store
        .create_division(&DivisionSpec { name: "d".into() })
        .await
        .unwrap()
        .id;
    let spec = SensorSpec {
        auth: SensorAuthMode::Hmac,
        ..SensorSpec::new("h1", div)
    };
    let id = srv.store.create_sensor(&spec).await.unwrap().id;
    let secret = "a-long-random-sensor-secret-0123456789";
    srv.store.set_sensor_secret(id, Some(secret)).await.unwrap();
    let raw = srv.raw(None);
    let get = |path: String, secret: &'static str| {
        let raw = raw.clone();
        let url = format!("{}{path}", srv.url);
        async move {
            let ts = honeysens_core::time::now().timestamp();
            let nonce = hmac::new_nonce();
            let sig = hmac::sign_request(secret.as_bytes(), id.0, ts, &nonce, "GET", &path, b"");
            raw.get(url)
                .header(hmac::SENSOR_HEADER, id.0.to_string())
                .header(hmac::TIMESTAMP_HEADER, ts.to_string())
                .header(hmac::NONCE_HEADER, nonce)
                .header(hmac::SIGNATURE_HEADER, sig)
                .send()
                .await
                .unwrap()
        }
    };
    let digest = &up.revisions[0].spec.image_digest;
    let r = get(format!("/v2/honeysens/h/manifests/{digest}"), secret).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key(hmac::SIGNATURE_HEADER));
    let body = r.bytes().await.unwrap();
    assert_eq!(oci::digest_of(&body), *digest);
    let m: ImageManifest = serde_json::from_slice(&body).unwrap();
    let r = get(
        format!("/v2/honeysens/h/blobs/{}", m.layers[0].digest),
        secret,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        oci::digest_of(&r.bytes().await.unwrap()),
        m.layers[0].digest
    );
    // A wrong signature: 401 in the registry's format.
    let r = get("/v2/".into(), "not-the-secret").await;
    assert_eq!(r.status(), 401);
    assert_eq!(oci_code(&r.bytes().await.unwrap()), "UNAUTHORIZED");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_revisions_releases_unshared_image_blobs() {
    let srv = TestServer::start(&[]).await;
    let c = admin(&srv).await;
    // Two labels with identical images share every blob, manifest included.
    let a = c
        .upload_service_package(
            builder("gc", "1", &[Architecture::Amd64])
                .write(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let b = c
        .upload_service_package(
            builder("gc", "2", &[Architecture::Amd64])
                .write(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let digest = a.revisions[0].spec.image_digest.clone();
    assert_eq!(b.revisions[0].spec.image_digest, digest);
    let hex = |d: &str| oci::sha256_hex(d).unwrap().to_owned();
    let (_, mut rd) = srv.state.blobs.open(&hex(&digest)).await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut bytes)
        .await
        .unwrap();
    let m: ImageManifest = serde_json::from_slice(&bytes).unwrap();
    let blobs: Vec<String> = [
        digest.clone(),
        m.config.digest.clone(),
        m.layers[0].digest.clone(),
    ]
    .iter()
    .map(|d| hex(d))
    .collect();
    let present = |blobs: Vec<String>| {
        let st = srv.state.clone();
        async move {
            let mut n = 0;
            for b in &blobs {
                if st.blobs.stat(b).await.unwrap().is_some() {
                    n += 1;
                }
            }
            n
        }
    };
    c.delete_service_revision(a.service.id, a.revisions[0].id)
        .await
        .unwrap();
    assert_eq!(present(blobs.clone()).await, 3, "still used by revision 2");
    c.delete_service(a.service.id).await.unwrap();
    assert_eq!(present(blobs).await, 0, "released with the last revision");
    srv.stop().await;
}
