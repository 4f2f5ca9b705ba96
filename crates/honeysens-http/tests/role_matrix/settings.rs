//! Matrix cases of the settings and notification test endpoints.

use crate::{Case, World, case};
use reqwest::Method;
use serde_json::json;

pub async fn cases(_w: &World, _i: usize, _via: &str) -> Vec<Case> {
    let body = json!({
        "smtp": { "enabled": false, "host": "", "port": 25, "security": "none", "from": "" },
        "update_interval": 5,
        "service_network": "10.10.10.0/24",
        "sensor_timeout_threshold": 1,
        "archive_after_days": 0,
        "delete_archived_after_days": 0,
        "require_event_comment": false,
        "require_filter_description": false,
        "managers_may_delete_events": true,
        "managers_may_delete_sensors": true
    });
    vec![
        case(
            Method::GET,
            "/api/settings",
            "/api/settings",
            None,
            [200, 403, 403],
        ),
        case(
            Method::PUT,
            "/api/settings",
            "/api/settings",
            Some(body),
            [200, 403, 403],
        ),
        // Syslog test sends are for admins; with the output off the admin learns that
        // (400) instead of a connection attempt.
        case(
            Method::POST,
            "/api/notifications/test",
            "/api/notifications/test",
            Some(json!({ "target": "syslog" })),
            [400, 403, 403],
        ),
    ]
}
