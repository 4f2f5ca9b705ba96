//! Test sends: an admin or manager checks that mail, a webhook or the SIEM output really
//! arrives, with the settings and templates in force, before an attack depends on it.
//!
//! Sends synchronously and answers what the receiver said: 200 `{delivered: true}`, or 502
//! `notification.failed` with the delivery error (connection refused, authentication
//! rejected, HTTP status) — never the SMTP password or webhook secret.

use super::openapi::ErrorResponses;
use super::principal::{Principal, require_role};
use super::{JsonBody, audit};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use honeysens_core::Error;
use honeysens_core::ids::{ContactId, DivisionId, EventId, SensorId};
use honeysens_core::model::{
    Classification, ContactTarget, Event, EventData, EventStatus, Protocol, Role, Severity,
};
use honeysens_core::time::now;
use honeysens_notify::{Mailer, Message, SyslogForwarder, TestMessage, WebhookClient};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(test_notification))
}

/// Where a test message goes.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum TestTarget {
    /// A contact (mail, user or webhook) of one of the caller's divisions.
    Contact {
        /// The contact.
        contact_id: ContactId,
    },
    /// Any mail address (admins).
    Email {
        /// The address.
        address: String,
    },
    /// The SIEM syslog output (admins): one `notify.test` line.
    Syslog,
}

/// Answer of a successful test send.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    /// Always true (failures answer 502).
    pub delivered: bool,
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "notification.failed",
        format!("delivery failed: {e}"),
    )
}

/// `POST /api/notifications/test` (admin; manager for contacts of their divisions).
#[utoipa::path(post, path = "/api/notifications/test", tag = "notifications", request_body = TestTarget, responses((status = 200, description = "Delivered", body = TestResult), (status = 502, description = "The receiver refused or could not be reached (`notification.failed`)"), ErrorResponses))]
pub async fn test_notification(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(target): JsonBody<TestTarget>,
) -> Result<Json<TestResult>, ApiError> {
    require_role(&p, Role::Manager)?;
    let settings = crate::pipeline::settings(&st).await?;
    let extra_root = st.pipeline.options.extra_root_pem.as_deref();
    let msg = Message::Test(TestMessage {
        requested_by: p.name.clone(),
        at: now(),
    });
    let mail = |to: Vec<String>| {
        let settings = settings.clone();
        let msg = msg.clone();
        async move {
            if !settings.smtp.enabled {
                return Err(ApiError::bad_request(
                    "notification.smtp_disabled",
                    "mail delivery is switched off in the settings",
                ));
            }
            let r = honeysens_notify::render(&msg, &settings.templates).map_err(failed)?;
            let mailer = Mailer::new(&settings.smtp, extra_root).map_err(failed)?;
            mailer.send(&to, &r).await.map_err(failed)
        }
    };
    let what = match &target {
        TestTarget::Contact { contact_id } => {
            let c = st.store.get_contact(*contact_id).await?;
            if !p.sees(c.spec.division_id) {
                return Err(Error::not_found("contact").into());
            }
            match c.spec.target {
                ContactTarget::Email { address } => mail(vec![address]).await?,
                ContactTarget::User { user_id } => {
                    let user = st.store.get_user(user_id).await?;
                    let Some(address) = user.spec.email else {
                        return Err(ApiError::bad_request(
                            "notification.no_address",
                            "the user has no e-mail address",
                        ));
                    };
                    mail(vec![address]).await?;
                }
                ContactTarget::Webhook { url, secret } => {
                    let client =
                        WebhookClient::new(Duration::from_secs(10), extra_root).map_err(failed)?;
                    client
                        .post(&url, secret.as_deref(), &msg)
                        .await
                        .map_err(failed)?;
                }
            }
            format!("contact:{contact_id}")
        }
        TestTarget::Email { address } => {
            require_role(&p, Role::Admin)?;
            let mut e = honeysens_core::error::ValidationErrors::default();
            honeysens_core::validate::email(&mut e, "address", address);
            e.into_result()?;
            mail(vec![address.clone()]).await?;
            "email".to_owned()
        }
        TestTarget::Syslog => {
            require_role(&p, Role::Admin)?;
            if !settings.syslog.enabled {
                return Err(ApiError::bad_request(
                    "notification.syslog_disabled",
                    "syslog output is switched off in the settings",
                ));
            }
            let mut fwd = SyslogForwarder::connect(&settings.syslog, "honeysens")
                .await
                .map_err(failed)?;
            fwd.send_events(&[test_event(&p.name)])
                .await
                .map_err(failed)?;
            "syslog".to_owned()
        }
    };
    audit(
        &st,
        &p,
        "notification.test",
        what,
        serde_json::to_value(&target).unwrap_or_default(),
    )
    .await?;
    Ok(Json(TestResult { delivered: true }))
}

/// The line a syslog test sends: a `notify.test` event that is never stored.
fn test_event(by: &str) -> Event {
    Event {
        id: EventId(0),
        division_id: DivisionId(0),
        received_at: now(),
        status: EventStatus::New,
        comment: None,
        archived: false,
        incident_id: None,
        data: EventData {
            uid: uuid::Uuid::new_v4(),
            sensor_id: SensorId(0),
            service: None,
            timestamp: now(),
            source_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            source_port: None,
            dest_ip: None,
            dest_port: None,
            protocol: Protocol::Unknown,
            type_code: "notify.test".into(),
            classification: Classification::Unknown,
            severity: Severity::Info,
            summary: format!("HoneySens syslog test requested by {by}"),
        },
    }
}
