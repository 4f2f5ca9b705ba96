//! The sensor API over real TLS on loopback: client certificates (direct and via a trusted
//! proxy), HMAC, revocation, renewal. Every test starts the real server on port 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::ids::SensorId;
use honeysens_core::model::{DivisionSpec, Role, SensorAuthMode, SensorSpec, SensorState};
use honeysens_core::pki::{CertificateAuthority, IssuedKeyPair};
use honeysens_core::protocol::StatusRequest;
use honeysens_core::time::now;
use honeysens_http::client::{ClientError, SensorAuth, SensorClient};
use honeysens_http::hmac;
use std::time::Duration;

mod common;

use common::TestServer;

impl TestServer {
    async fn sensor(&self, name: &str, auth: SensorAuthMode) -> SensorId {
        let div = match self.store.list_divisions().await.unwrap().first() {
            Some(d) => d.id,
            None => {
                self.store
                    .create_division(&DivisionSpec {
                        name: "Default".into(),
                    })
                    .await
                    .unwrap()
                    .id
            }
        };
        let spec = SensorSpec {
            auth,
            ..SensorSpec::new(name, div)
        };
        self.store.create_sensor(&spec).await.unwrap().id
    }

    async fn issue(&self, id: SensorId, days: i64) -> IssuedKeyPair {
        let issued = self.ca.issue_sensor(id, days).unwrap();
        self.store.record_certificate(&issued.record).await.unwrap();
        issued
    }

    fn sensor_client(&self, auth: SensorAuth) -> SensorClient {
        SensorClient::new(&self.url, self.ca.cert_pem(), auth, None).unwrap()
    }

    fn cert_client(&self, issued: &IssuedKeyPair) -> SensorClient {
        self.sensor_client(SensorAuth::Certificate {
            cert_pem: issued.cert_pem.clone(),
            key_pem: issued.key_pem.clone(),
        })
    }
}

fn api_code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn is_handshake_failure(e: &ClientError) -> bool {
    matches!(e, ClientError::Transport(_))
}

fn status_request(timestamp_offset_s: i64) -> StatusRequest {
    StatusRequest {
        timestamp: now() + chrono::Duration::seconds(timestamp_offset_s),
        state: SensorState::Running,
        addresses: vec!["192.0.2.7/24".into()],
        free_memory_mb: 200,
        disk_total_mb: 4000,
        disk_used_mb: 1000,
        agent_version: "test".into(),
        firmware_version: None,
        services: vec![],
        spool_depth: 0,
        csr: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_and_health_need_no_certificate() {
    let srv = TestServer::start(&[]).await;
    let anon = srv.sensor_client(SensorAuth::None);
    assert_eq!(anon.identify().await.unwrap(), "HoneySens");
    let health = anon
        .call(reqwest::Method::GET, "/api/system/health", None)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&health).unwrap()["status"],
        "ok"
    );
    let ca = anon
        .call(reqwest::Method::GET, "/api/system/ca", None)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(ca).unwrap(), srv.ca.cert_pem());
    let (status, code) = api_code(
        anon.call(reqwest::Method::GET, "/api/nope", None)
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (404, "route.not_found"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_sensor_certificate_is_accepted_and_missing_one_refused() {
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("s1", SensorAuthMode::Certificate).await;
    let issued = srv.issue(id, 365).await;
    let me = srv.cert_client(&issued).whoami().await.unwrap();
    assert_eq!(
        (me.sensor_id, me.name.as_str(), me.auth),
        (id, "s1", SensorAuthMode::Certificate)
    );
    let (status, code) = api_code(
        srv.sensor_client(SensorAuth::None)
            .whoami()
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (401, "auth.required"));
    // The poll is recorded and answered; a sensor clock ten minutes ahead is reported, not refused.
    let answer = srv
        .cert_client(&issued)
        .send_status(&status_request(600))
        .await
        .unwrap();
    assert_eq!(answer.sensor_id, id);
    assert!(
        (answer.clock_skew_ms - 600_000).abs() < 5_000,
        "{}",
        answer.clock_skew_ms
    );
    assert_eq!(answer.update_interval, 5);
    assert!(
        answer.certificate.is_none(),
        "no renewal for a fresh certificate"
    );
    let sensor = srv.store.get_sensor(id).await.unwrap();
    assert_eq!(sensor.last_state, Some(SensorState::Running));
    assert_eq!(srv.store.list_status(id, 5).await.unwrap().len(), 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_expired_and_unrecorded_certificates_are_refused() {
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("s1", SensorAuthMode::Certificate).await;
    // Another CA issuing for the same sensor id: the handshake fails.
    let (evil, _) = CertificateAuthority::generate("Evil CA").unwrap();
    let forged = evil.issue_sensor(id, 365).unwrap();
    let err = srv.cert_client(&forged).whoami().await.unwrap_err();
    assert!(is_handshake_failure(&err), "{err:?}");
    // Expired: validity of zero days ends now.
    let expired = srv.issue(id, 0).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = srv.cert_client(&expired).whoami().await.unwrap_err();
    assert!(is_handshake_failure(&err), "{err:?}");
    // Issued by our CA but never recorded (e.g. restored from an old backup): refused by the store check.
    let unrecorded = srv.ca.issue_sensor(id, 365).unwrap();
    let (status, code) = api_code(srv.cert_client(&unrecorded).whoami().await.unwrap_err());
    assert_eq!((status, code.as_str()), (401, "auth.unknown_certificate"));
    // A sensor set to HMAC may not use a certificate.
    let hmac_sensor = srv.sensor("h1", SensorAuthMode::Hmac).await;
    let cert = srv.issue(hmac_sensor, 365).await;
    let (status, code) = api_code(srv.cert_client(&cert).whoami().await.unwrap_err());
    assert_eq!((status, code.as_str()), (401, "auth.method_not_allowed"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_sensor_revokes_its_certificate_at_once() {
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("doomed", SensorAuthMode::Certificate).await;
    let issued = srv.issue(id, 365).await;
    assert_eq!(
        srv.cert_client(&issued).whoami().await.unwrap().sensor_id,
        id
    );
    // Deleted in the store, the hot-path cache invalidated as every management change does
    // (see `management_changes_reach_the_sensor_api_at_once`).
    srv.store.delete_sensor(id).await.unwrap();
    srv.state.cache.invalidate();
    // Before the TLS layer learns of it, the per-request check refuses.
    let (status, code) = api_code(srv.cert_client(&issued).whoami().await.unwrap_err());
    assert_eq!((status, code.as_str()), (401, "auth.revoked_certificate"));
    // After the CRL is rebuilt the handshake itself fails.
    srv.state.tls.reload().await.unwrap();
    let err = srv.cert_client(&issued).whoami().await.unwrap_err();
    assert!(is_handshake_failure(&err), "{err:?}");
    // Other sensors are unaffected by the new CRL.
    let other = srv.sensor("other", SensorAuthMode::Certificate).await;
    let ok = srv.issue(other, 365).await;
    assert_eq!(
        srv.cert_client(&ok).whoami().await.unwrap().sensor_id,
        other
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_changes_reach_the_sensor_api_at_once() {
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("switching", SensorAuthMode::Certificate).await;
    let issued = srv.issue(id, 365).await;
    let client = srv.cert_client(&issued);
    assert_eq!(client.whoami().await.unwrap().sensor_id, id);
    // An admin switches the sensor to HMAC: the cached authentication must not outlive it.
    srv.user("admin", Role::Admin, vec![]).await;
    let admin = srv.login("admin").await;
    let mut spec = admin.get_sensor(id).await.unwrap().spec;
    spec.auth = SensorAuthMode::Hmac;
    admin.update_sensor(id, &spec).await.unwrap();
    let (status, code) = api_code(client.whoami().await.unwrap_err());
    assert_eq!((status, code.as_str()), (401, "auth.method_not_allowed"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_outside_this_server_apply_within_the_cache_ttl() {
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("elsewhere", SensorAuthMode::Certificate).await;
    let issued = srv.issue(id, 365).await;
    let client = srv.cert_client(&issued);
    assert_eq!(client.whoami().await.unwrap().sensor_id, id);
    // Another replica (or the admin CLI) deletes the sensor: this server's cache cannot know,
    // so the sensor is locked out once the entry expires.
    srv.store.delete_sensor(id).await.unwrap();
    tokio::time::sleep(honeysens_http::cache::TTL + Duration::from_millis(100)).await;
    let (status, code) = api_code(client.whoami().await.unwrap_err());
    assert_eq!((status, code.as_str()), (401, "auth.revoked_certificate"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_renewed_through_the_poll() {
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("s", SensorAuthMode::Certificate).await;
    let old = srv.issue(id, 10).await;
    let answer = srv
        .cert_client(&old)
        .send_status(&status_request(0))
        .await
        .unwrap();
    let bundle = answer
        .certificate
        .expect("a certificate ten days from expiry is renewed");
    let key = bundle.key_pem.clone().expect("server-generated key");
    assert!(bundle.not_after > now() + chrono::Duration::days(300));
    let renewed = SensorClient::new(
        &srv.url,
        srv.ca.cert_pem(),
        SensorAuth::Certificate {
            cert_pem: bundle.cert_pem.clone(),
            key_pem: key,
        },
        None,
    )
    .unwrap();
    assert_eq!(renewed.whoami().await.unwrap().sensor_id, id);
    assert!(
        renewed
            .send_status(&status_request(0))
            .await
            .unwrap()
            .certificate
            .is_none()
    );

    // A sensor that keeps its key sends a CSR; whatever subject it asks for, the certificate is
    // made out to the authenticated sensor.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "999");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let old2 = srv.issue(id, 5).await;
    let mut req = status_request(0);
    req.csr = Some(csr);
    let bundle = srv
        .cert_client(&old2)
        .send_status(&req)
        .await
        .unwrap()
        .certificate
        .unwrap();
    assert!(bundle.key_pem.is_none());
    let own = SensorClient::new(
        &srv.url,
        srv.ca.cert_pem(),
        SensorAuth::Certificate {
            cert_pem: bundle.cert_pem,
            key_pem: key.serialize_pem(),
        },
        None,
    )
    .unwrap();
    assert_eq!(own.whoami().await.unwrap().sensor_id, id);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_header_only_from_trusted_addresses() {
    // 127.0.0.2 plays the TLS-terminating proxy; the test clients bind their source address.
    let srv = TestServer::start(&["127.0.0.2/32"]).await;
    let id = srv
        .sensor("behind-proxy", SensorAuthMode::Certificate)
        .await;
    let issued = srv.issue(id, 365).await;
    let escaped =
        percent_encoding::utf8_percent_encode(&issued.cert_pem, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let url = format!("{}/api/sensors/self", srv.url);
    let forged = srv
        .raw(Some("127.0.0.1".parse().unwrap()))
        .get(&url)
        .header("x-client-cert", &escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "auth.untrusted_proxy");
    let proxied = srv
        .raw(Some("127.0.0.2".parse().unwrap()))
        .get(&url)
        .header("x-client-cert", &escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    let me: serde_json::Value = proxied.json().await.unwrap();
    assert_eq!(me["sensor_id"], id.0);
    // The server verifies the forwarded certificate itself.
    let (evil, _) = CertificateAuthority::generate("Evil CA").unwrap();
    let forged_cert = evil.issue_sensor(id, 365).unwrap();
    let bad = srv
        .raw(Some("127.0.0.2".parse().unwrap()))
        .get(&url)
        .header("x-client-cert", forged_cert.cert_pem.replace('\n', " "))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let garbage = srv
        .raw(Some("127.0.0.2".parse().unwrap()))
        .get(&url)
        .header("x-client-cert", "not a certificate")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    srv.stop().await;
}

struct Signed {
    sensor: i64,
    ts: i64,
    nonce: String,
    body: Vec<u8>,
    signature: String,
}

fn signed(secret: &str, sensor: i64, ts: i64, method: &str, path: &str, body: &[u8]) -> Signed {
    let nonce = hmac::new_nonce();
    let signature = hmac::sign_request(secret.as_bytes(), sensor, ts, &nonce, method, path, body);
    Signed {
        sensor,
        ts,
        nonce,
        body: body.to_vec(),
        signature,
    }
}

async fn send(client: &reqwest::Client, url: &str, s: &Signed) -> reqwest::Response {
    client
        .post(url)
        .header(hmac::SENSOR_HEADER, s.sensor.to_string())
        .header(hmac::TIMESTAMP_HEADER, s.ts.to_string())
        .header(hmac::NONCE_HEADER, &s.nonce)
        .header(hmac::SIGNATURE_HEADER, &s.signature)
        .header("content-type", "application/json")
        .body(s.body.clone())
        .send()
        .await
        .unwrap()
}

async fn code_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap();
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_authentication_and_its_refusals() {
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("hmac", SensorAuthMode::Hmac).await;
    let secret = "a-long-random-sensor-secret-0123456789";
    srv.store.set_sensor_secret(id, Some(secret)).await.unwrap();
    // The client signs requests and verifies the server's response signature.
    let client = srv.sensor_client(SensorAuth::Hmac {
        sensor_id: id,
        secret: secret.into(),
    });
    assert_eq!(client.whoami().await.unwrap().sensor_id, id);
    assert_eq!(
        client
            .send_status(&status_request(0))
            .await
            .unwrap()
            .sensor_id,
        id
    );
    // A client with the wrong secret is refused.
    let wrong = srv.sensor_client(SensorAuth::Hmac {
        sensor_id: id,
        secret: "guess".into(),
    });
    let (status, code) = api_code(wrong.whoami().await.unwrap_err());
    assert_eq!((status, code.as_str()), (401, "auth.bad_signature"));

    let raw = srv.raw(None);
    let url = format!("{}/api/sensors/status", srv.url);
    let body = serde_json::to_vec(&status_request(0)).unwrap();
    let t = now().timestamp();
    let good = signed(secret, id.0, t, "POST", "/api/sensors/status", &body);
    let ok = send(&raw, &url, &good).await;
    assert_eq!(ok.status(), 200);
    let sig = ok
        .headers()
        .get(hmac::SIGNATURE_HEADER)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let answer = ok.bytes().await.unwrap();
    assert!(hmac::signatures_match(
        &hmac::sign_response(secret.as_bytes(), &good.nonce, 200, &answer),
        &sig
    ));
    // Replaying the same signed request.
    assert_eq!(
        code_of(send(&raw, &url, &good).await).await,
        (401, "auth.replayed".into())
    );
    // A timestamp outside ±60 s, correctly signed.
    let stale = signed(secret, id.0, t - 120, "POST", "/api/sensors/status", &body);
    assert_eq!(
        code_of(send(&raw, &url, &stale).await).await,
        (401, "auth.stale_timestamp".into())
    );
    let future = signed(secret, id.0, t + 120, "POST", "/api/sensors/status", &body);
    assert_eq!(
        code_of(send(&raw, &url, &future).await).await,
        (401, "auth.stale_timestamp".into())
    );
    // The body was changed after signing.
    let mut tampered = signed(secret, id.0, t, "POST", "/api/sensors/status", &body);
    tampered.body = serde_json::to_vec(&status_request(5)).unwrap();
    assert_eq!(
        code_of(send(&raw, &url, &tampered).await).await,
        (401, "auth.bad_signature".into())
    );
    // Signed for another path.
    let other_path = signed(secret, id.0, t, "POST", "/api/sensors/self", &body);
    assert_eq!(
        code_of(send(&raw, &url, &other_path).await).await,
        (401, "auth.bad_signature".into())
    );
    // A certificate-mode sensor cannot use HMAC even with a secret on record.
    let cert_sensor = srv.sensor("cert", SensorAuthMode::Certificate).await;
    srv.store
        .set_sensor_secret(cert_sensor, Some(secret))
        .await
        .unwrap();
    let s = signed(
        secret,
        cert_sensor.0,
        t,
        "POST",
        "/api/sensors/status",
        &body,
    );
    assert_eq!(
        code_of(send(&raw, &url, &s).await).await,
        (401, "auth.method_not_allowed".into())
    );
    let unknown = signed(secret, 424_242, t, "POST", "/api/sensors/status", &body);
    assert_eq!(
        code_of(send(&raw, &url, &unknown).await).await,
        (401, "auth.unknown_sensor".into())
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_with_and_without_a_sensor_certificate() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "openssl must be installed in CI"
        );
        return;
    }
    let srv = TestServer::start(&[]).await;
    let id = srv.sensor("s", SensorAuthMode::Certificate).await;
    let issued = srv.issue(id, 365).await;
    let dir = std::env::temp_dir().join(format!("hs-openssl-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("c.pem"), &issued.cert_pem).unwrap();
    std::fs::write(dir.join("k.pem"), &issued.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), srv.ca.cert_pem()).unwrap();
    let (port, cert_dir) = (srv.port, dir.clone());
    let run = move |with_cert: bool, extra: &[&str]| {
        let dir = &cert_dir;
        let mut cmd = std::process::Command::new("openssl");
        cmd.arg("s_client");
        cmd.args(extra);
        cmd.args([
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(dir.join("ca.pem"))
        .args(["-verify_return_error"]);
        if with_cert {
            cmd.arg("-cert")
                .arg(dir.join("c.pem"))
                .arg("-key")
                .arg(dir.join("k.pem"));
        }
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                b"GET /api/sensors/self HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (with, without, tls12, tls11) = tokio::task::spawn_blocking(move || {
        (
            run(true, &[]),
            run(false, &[]),
            run(true, &["-tls1_2"]),
            // Let the client offer TLS 1.1 at all (OpenSSL 3 refuses it by default), so the
            // refusal below is the server's.
            run(true, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]),
        )
    })
    .await
    .unwrap();
    assert!(tls12.starts_with("HTTP/1.1 200"), "{tls12}");
    assert!(
        !tls11.contains("HTTP/1.1"),
        "TLS 1.1 must be refused: {tls11}"
    );
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    assert!(with.contains(&format!("\"sensor_id\":{}", id.0)), "{with}");
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    assert!(without.contains("auth.required"), "{without}");
    let _ = std::fs::remove_dir_all(&dir);
    srv.stop().await;
}

/// `SensorClient::download` (the `Transport` method the Docker runtime fetches registry blobs
/// with) against the real server: HMAC-signed GET of a sensor path streamed into a file,
/// byte for byte, and refusals as `TransportError::Refused`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_streams_a_sensor_path_into_a_file() {
    use honeysens_core::model::{PlatformSpec, Role};
    use honeysens_core::protocol::{Transport, TransportError};
    use honeysens_http::mgmt::platforms::FirmwareMetadata;

    let srv = TestServer::start(&[]).await;
    srv.user("admin", Role::Admin, vec![]).await;
    let admin = srv.login("admin").await;
    let platform = admin
        .create_platform(&PlatformSpec {
            name: "docker_x86".into(),
            title: "Docker (x86)".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    // Several chunks' worth, so the body really streams.
    let bytes: Vec<u8> = (0..(2 * 1024 * 1024 + 333))
        .map(|i: usize| (i as u8).wrapping_mul(7))
        .collect();
    let fw = admin
        .upload_firmware(
            platform.id,
            &FirmwareMetadata {
                version: "1.0.0".into(),
                description: "image".into(),
                changelog: vec![],
                sha256: None,
            },
            bytes.clone(),
        )
        .await
        .unwrap();

    let id = srv.sensor("dl", SensorAuthMode::Hmac).await;
    let secret = "a-long-random-sensor-secret-download-0123";
    srv.store.set_sensor_secret(id, Some(secret)).await.unwrap();
    let client = srv.sensor_client(SensorAuth::Hmac {
        sensor_id: id,
        secret: secret.into(),
    });
    let dir = std::env::temp_dir().join(format!("hs-download-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("fw.img");
    let path = format!("/api/sensors/firmware/{}", fw.id);
    let got = Transport::download(&client, &path, &["application/octet-stream"], &dest)
        .await
        .unwrap();
    assert_eq!(got.size, bytes.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);

    // Unknown path and wrong secret: refused, not retried as "unavailable".
    let e = Transport::download(&client, "/api/sensors/firmware/999999", &[], &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(e, TransportError::Refused { status: 404, .. }),
        "{e}"
    );
    let wrong = srv.sensor_client(SensorAuth::Hmac {
        sensor_id: id,
        secret: "guess".into(),
    });
    let e = Transport::download(&wrong, &path, &[], &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(e, TransportError::Refused { status: 401, .. }),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
