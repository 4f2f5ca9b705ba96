//! Matrix cases of platforms and firmware revisions: everyone reads (platforms are not
//! division-scoped), only admins write.

use crate::{Body, Case, ROLES, World, case};
use honeysens_core::ids::{FirmwareId, PlatformId};
use honeysens_core::model::{FirmwareSpec, PlatformSpec};
use honeysens_http::mgmt::platforms::FirmwareMetadata;
use honeysens_http::mgmt_client::ManagementClient;
use reqwest::Method;
use serde_json::json;

/// A revision stored directly (blob and row), as a target the case may consume.
async fn firmware(w: &World, platform: PlatformId, version: &str) -> FirmwareId {
    let bytes = format!("image {platform} {version}").into_bytes();
    let mut up = w.srv.state.blobs.begin(1024).await.unwrap();
    up.write(&bytes).await.unwrap();
    let blob = up.finish(None).await.unwrap();
    w.srv
        .store
        .add_firmware(&FirmwareSpec {
            platform_id: platform,
            version: version.into(),
            description: String::new(),
            changelog: vec![],
            sha256: blob.sha256.clone(),
            size: blob.size,
            storage_key: blob.sha256,
        })
        .await
        .unwrap()
        .id
}

pub async fn cases(w: &World, i: usize, via: &str) -> Vec<Case> {
    let role = ROLES[i];
    // Fresh objects per call, so one role's delete or upload does not change the next answer.
    let platform = w
        .srv
        .store
        .create_platform(&PlatformSpec {
            name: format!("matrix-{via}-{role}"),
            title: "Matrix".into(),
            description: String::new(),
        })
        .await
        .unwrap()
        .id;
    let kept = firmware(w, platform, "1.0").await;
    let victim = firmware(w, platform, "0.9").await;
    let meta = FirmwareMetadata {
        version: "2.0".into(),
        description: String::new(),
        changelog: vec!["matrix".into()],
        sha256: None,
    };
    let (form, content_type) =
        ManagementClient::firmware_form(&meta, format!("uploaded {via} {role}").as_bytes())
            .unwrap();
    vec![
        case(
            Method::GET,
            "/api/platforms",
            "/api/platforms",
            None,
            [200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/platforms",
            "/api/platforms",
            Some(json!({ "name": format!("new-{via}-{role}"), "title": "New" })),
            [201, 403, 403],
        ),
        case(
            Method::GET,
            "/api/platforms/{id}",
            format!("/api/platforms/{platform}"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/platforms/{id}",
            "/api/platforms/424242",
            None,
            [404, 404, 404],
        ),
        case(
            Method::GET,
            "/api/platforms/{id}/firmware",
            format!("/api/platforms/{platform}/firmware"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/platforms/{id}/firmware",
            "/api/platforms/424242/firmware",
            None,
            [404, 404, 404],
        ),
        Case {
            method: Method::POST,
            template: "/api/platforms/{id}/firmware",
            path: format!("/api/platforms/{platform}/firmware"),
            body: Body::Raw(form, content_type),
            expect: [201, 403, 403],
        },
        case(
            Method::GET,
            "/api/firmware/{id}",
            format!("/api/firmware/{kept}"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/firmware/{id}",
            "/api/firmware/424242",
            None,
            [404, 404, 404],
        ),
        case(
            Method::GET,
            "/api/firmware/{id}/image",
            format!("/api/firmware/{kept}/image"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::PUT,
            "/api/firmware/{id}/default",
            format!("/api/firmware/{kept}/default"),
            None,
            [204, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/firmware/{id}",
            format!("/api/firmware/{victim}"),
            None,
            [204, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/firmware/{id}",
            "/api/firmware/424242",
            None,
            [404, 403, 403],
        ),
    ]
}
