//! Platforms and firmware revisions over real TLS: upload (streamed into the blob store),
//! download, digest check, duplicates, default revision, deletion and its effect on sensors,
//! blobs and the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestServer;
use honeysens_core::model::{PlatformSpec, Role, SensorSpec};
use honeysens_http::client::ClientError;
use honeysens_http::mgmt::platforms::FirmwareMetadata;
use honeysens_http::mgmt_client::ManagementClient;
use reqwest::Method;
use sha2::{Digest, Sha256};

fn meta(version: &str, sha256: Option<String>) -> FirmwareMetadata {
    FirmwareMetadata {
        version: version.into(),
        description: "test image".into(),
        changelog: vec!["first".into(), "second".into()],
        sha256,
    }
}

fn api_error(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("not an API error: {other}"),
    }
}

/// A test image; deterministic bytes from `seed`.
fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_lifecycle() {
    let srv = TestServer::start(&[]).await;
    let div = srv.division("ops").await;
    srv.user("admin", Role::Admin, vec![]).await;
    srv.user("observer", Role::Observer, vec![div]).await;
    let admin = srv.login("admin").await;
    let observer = srv.login("observer").await;

    let platform = admin
        .create_platform(&PlatformSpec {
            name: "docker_x86".into(),
            title: "Docker (x86)".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(platform.default_firmware, None);
    assert_eq!(
        api_error(admin.create_platform(&platform.spec).await.unwrap_err()),
        (409, "platform.conflict".into())
    );
    let listed = observer.list_platforms(&Default::default()).await.unwrap();
    assert_eq!(listed.items, vec![platform.clone()]);
    assert_eq!(observer.get_platform(platform.id).await.unwrap(), platform);

    // Upload with the right digest: stored, described, downloadable byte for byte. Larger
    // than axum's default 2 MiB body limit (lifted for this route) and than one chunk, so the
    // image really streams in pieces both ways.
    let bytes = image(1, 3 * 1024 * 1024 + 17);
    let digest = hex::encode(Sha256::digest(&bytes));
    let fw = admin
        .upload_firmware(
            platform.id,
            &meta("1.0.0", Some(digest.clone())),
            bytes.clone(),
        )
        .await
        .unwrap();
    assert_eq!(fw.spec.sha256, digest);
    assert_eq!(fw.spec.storage_key, digest);
    assert_eq!(fw.spec.size, bytes.len() as u64);
    assert_eq!(fw.spec.platform_id, platform.id);
    assert_eq!(fw.spec.changelog, ["first", "second"]);
    assert_eq!(
        srv.state.blobs.stat(&digest).await.unwrap(),
        Some(bytes.len() as u64)
    );
    assert_eq!(observer.get_firmware(fw.id).await.unwrap(), fw);
    assert_eq!(observer.download_firmware(fw.id).await.unwrap(), bytes);
    let raw = observer
        .raw(Method::GET, &format!("/api/firmware/{}/image", fw.id), None)
        .await
        .unwrap();
    assert_eq!(raw.headers["content-type"], "application/octet-stream");
    assert_eq!(
        raw.headers["content-length"],
        bytes.len().to_string().as_str()
    );

    // Without a digest the server computes it.
    let small = image(2, 1000);
    let fw2 = admin
        .upload_firmware(platform.id, &meta("1.1.0", None), small.clone())
        .await
        .unwrap();
    assert_eq!(fw2.spec.sha256, hex::encode(Sha256::digest(&small)));
    let versions: Vec<String> = observer
        .list_firmware(platform.id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.spec.version)
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"], "newest first");

    // A wrong digest: 422, nothing stored.
    let other = image(3, 5000);
    let other_digest = hex::encode(Sha256::digest(&other));
    let e = admin
        .upload_firmware(platform.id, &meta("2.0.0", Some("ab".repeat(32))), other)
        .await
        .unwrap_err();
    match e {
        ClientError::Api {
            status,
            code,
            fields,
            ..
        } => {
            assert_eq!((status, code.as_str()), (422, "validation.failed"));
            assert_eq!(fields[0].field, "sha256");
        }
        other => panic!("{other}"),
    }
    assert_eq!(srv.state.blobs.stat(&other_digest).await.unwrap(), None);

    // Duplicate version: 409; the existing blob stays.
    let e = admin
        .upload_firmware(platform.id, &meta("1.0.0", None), image(4, 10))
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (409, "firmware.conflict".into()));
    assert!(srv.state.blobs.stat(&digest).await.unwrap().is_some());

    // Bad metadata and missing parts: 400 request.malformed.
    let (mut form, ct) = ManagementClient::firmware_form(&meta("3.0.0", None), b"x").unwrap();
    let json_at = form.windows(1).position(|w| w == b"{").unwrap();
    form[json_at] = b'[';
    let r = admin
        .raw(
            Method::POST,
            &format!("/api/platforms/{}/firmware", platform.id),
            Some((form, &ct)),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "request.malformed");
    let b = "hs-test";
    let only_meta = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"version\":\"3.0.0\"}}\r\n--{b}--\r\n"
    );
    let r = admin
        .raw(
            Method::POST,
            &format!("/api/platforms/{}/firmware", platform.id),
            Some((
                only_meta.into_bytes(),
                &format!("multipart/form-data; boundary={b}"),
            )),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{:?}", r.body);
    // Not multipart at all.
    let r = admin
        .raw(
            Method::POST,
            &format!("/api/platforms/{}/firmware", platform.id),
            Some((b"{}".to_vec(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // Invalid metadata: 422.
    let e = admin
        .upload_firmware(platform.id, &meta(" ", None), image(5, 10))
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (422, "validation.failed".into()));
    // Unknown platform: 404.
    let e = admin
        .upload_firmware(
            honeysens_core::ids::PlatformId(424242),
            &meta("1.0.0", None),
            image(6, 10),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (404, "platform.not_found".into()));

    // Observers read but cannot write.
    let e = observer
        .upload_firmware(platform.id, &meta("9.9.9", None), image(7, 10))
        .await
        .unwrap_err();
    assert_eq!(api_error(e), (403, "auth.forbidden".into()));
    assert_eq!(
        api_error(observer.set_default_firmware(fw.id).await.unwrap_err()),
        (403, "auth.forbidden".into())
    );
    assert_eq!(
        api_error(observer.delete_firmware(fw.id).await.unwrap_err()),
        (403, "auth.forbidden".into())
    );

    // Default revision, and a sensor pinned to it.
    admin.set_default_firmware(fw.id).await.unwrap();
    assert_eq!(
        admin
            .get_platform(platform.id)
            .await
            .unwrap()
            .default_firmware,
        Some(fw.id)
    );
    let mut spec = SensorSpec::new("s1", div);
    spec.firmware_id = Some(fw.id);
    let sensor = srv.store.create_sensor(&spec).await.unwrap();
    assert_eq!(sensor.spec.firmware_id, Some(fw.id));

    // Deleting the revision resets both and removes its blob.
    admin.delete_firmware(fw.id).await.unwrap();
    assert_eq!(
        srv.store
            .get_sensor(sensor.id)
            .await
            .unwrap()
            .spec
            .firmware_id,
        None
    );
    assert_eq!(
        admin
            .get_platform(platform.id)
            .await
            .unwrap()
            .default_firmware,
        None
    );
    assert_eq!(srv.state.blobs.stat(&digest).await.unwrap(), None);
    assert_eq!(
        api_error(admin.get_firmware(fw.id).await.unwrap_err()),
        (404, "firmware.not_found".into())
    );
    assert_eq!(
        api_error(admin.download_firmware(fw.id).await.unwrap_err()),
        (404, "firmware.not_found".into())
    );
    assert_eq!(
        api_error(admin.delete_firmware(fw.id).await.unwrap_err()),
        (404, "firmware.not_found".into())
    );

    // Every change is audited.
    let actions: Vec<String> = admin
        .list_audit(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    for a in [
        "platform.create",
        "firmware.upload",
        "firmware.set_default",
        "firmware.delete",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing in {actions:?}");
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.as_str() == "firmware.upload")
            .count(),
        2
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_blob_survives_until_its_last_revision_is_deleted() {
    let srv = TestServer::start(&[]).await;
    srv.user("admin", Role::Admin, vec![]).await;
    let admin = srv.login("admin").await;
    let mut ids = Vec::new();
    for name in ["bbb", "rpi"] {
        let p = admin
            .create_platform(&PlatformSpec {
                name: name.into(),
                title: name.into(),
                description: String::new(),
            })
            .await
            .unwrap();
        ids.push(p.id);
    }
    // The same bytes for two platforms: one blob.
    let bytes = image(9, 4096);
    let digest = hex::encode(Sha256::digest(&bytes));
    let a = admin
        .upload_firmware(ids[0], &meta("1.0", None), bytes.clone())
        .await
        .unwrap();
    let b = admin
        .upload_firmware(ids[1], &meta("1.0", None), bytes.clone())
        .await
        .unwrap();
    assert_eq!(a.spec.sha256, b.spec.sha256);

    // A failed insert (duplicate version) must not take the shared blob with it.
    let e = admin
        .upload_firmware(ids[0], &meta("1.0", None), bytes.clone())
        .await
        .unwrap_err();
    assert_eq!(api_error(e).0, 409);
    assert!(srv.state.blobs.stat(&digest).await.unwrap().is_some());

    admin.delete_firmware(a.id).await.unwrap();
    assert!(srv.state.blobs.stat(&digest).await.unwrap().is_some());
    assert_eq!(admin.download_firmware(b.id).await.unwrap(), bytes);
    admin.delete_firmware(b.id).await.unwrap();
    assert_eq!(srv.state.blobs.stat(&digest).await.unwrap(), None);
    srv.stop().await;
}
