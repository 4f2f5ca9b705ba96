//! The OpenAPI 3 document of the management API, generated from the handlers' annotations
//! and served at `/api/openapi.json`.
//!
//! Every operation documents its success answer and [`ErrorResponses`]: the error statuses
//! every endpoint can give, all with the [`ErrorBody`] schema.

use std::collections::BTreeMap;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// The document's fixed parts; paths are added by the routers in [`super::routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "HoneySens management API",
        description = "Manage divisions, users, contacts, sensors, platforms, services, settings, events, incidents and event filters. \
            Authenticate with a session cookie from `POST /api/auth/login` (unsafe requests \
            also send `X-CSRF-Token`) or with `Authorization: Bearer <API token>`. Errors are \
            `{\"error\": {\"code\", \"message\", \"fields\"?}}` with stable codes."
    ),
    modifiers(&Security),
    security(("token" = []), ("session" = [])),
    tags(
        (name = "auth", description = "Sessions, password, API tokens"),
        (name = "divisions", description = "Divisions (admins write, members read)"),
        (name = "users", description = "Users (admins)"),
        (name = "contacts", description = "Who is notified of what, per division"),
        (name = "sensors", description = "Sensors, their configuration bundle and status history"),
        (name = "platforms", description = "Platforms and firmware revisions"),
        (name = "services", description = "Honeypot services, revisions and assignments"),
        (name = "settings", description = "Global settings (admins)"),
        (name = "notifications", description = "Test sends of mail, webhooks and syslog"),
        (name = "audit", description = "Audit log (admins)"),
        (name = "events", description = "Events: listing, bulk changes, statistics, export"),
        (name = "incidents", description = "Events of one source grouped across sensors"),
        (name = "filters", description = "Event filters per division"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("API token (`hst_…`) from POST /api/tokens"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::principal::SESSION_COOKIE,
            ))),
        );
    }
}

/// The error answer of every endpoint.
#[derive(Debug, ToSchema)]
pub struct ErrorBody {
    /// The error.
    #[schema(inline)]
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, ToSchema)]
pub struct ErrorDetail {
    /// Stable dotted code, e.g. `sensor.not_found`.
    pub code: String,
    /// Human-readable message; never internal detail.
    pub message: String,
    /// Per-field validation failures (422 only).
    #[schema(nullable = false, inline)]
    pub fields: Option<Vec<FieldErrorDoc>>,
}

/// One field that failed validation.
#[derive(Debug, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorDoc {
    /// Field path, e.g. `network.address`.
    pub field: String,
    /// Stable code, e.g. `out_of_range`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// The error statuses any management endpoint may answer, documented once.
pub struct ErrorResponses;

impl utoipa::IntoResponses for ErrorResponses {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("400", "Malformed request (`request.malformed`)"),
            (
                "401",
                "Not authenticated (`auth.required`, `auth.invalid_token`, …)",
            ),
            (
                "403",
                "Not allowed for this role or token scope (`auth.forbidden`)",
            ),
            (
                "404",
                "No such object, or one of a division the caller cannot see",
            ),
            (
                "409",
                "Conflicts with the stored state (`<entity>.conflict`)",
            ),
            ("413", "Request body too large (`request.too_large`)"),
            (
                "422",
                "Validation failed; `fields` says where (`validation.failed`)",
            ),
            ("429", "Too many failed logins (`auth.throttled`)"),
            ("503", "The database is unavailable"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(ErrorBody::schema()))
                        .build(),
                )
                .build();
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
    }
}
