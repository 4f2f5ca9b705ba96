//! Contacts: who in a division is notified of what (critical events, sensor timeouts, the
//! weekly summary), by e-mail or webhook.
//!
//! Everybody reads the contacts of their divisions (admins: all); admins and managers of the
//! division write. Contacts of other divisions answer 404.
//!
//! A webhook's signing secret is write-only: answers never carry it; an update without a
//! secret keeps the stored one, an empty string removes it.

use super::openapi::ErrorResponses;
use super::page::{DivisionPageQuery, Paged, QueryParams};
use super::principal::{Principal, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use honeysens_core::Error;
use honeysens_core::ids::{ContactId, DivisionId};
use honeysens_core::model::{Contact, ContactSpec, ContactTarget, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(get_contact, update_contact, delete_contact))
}

/// `GET /api/contacts` query.
pub type ContactQuery = DivisionPageQuery;

/// The contact as answered: without the webhook secret.
fn redact(mut c: Contact) -> Contact {
    if let ContactTarget::Webhook { secret, .. } = &mut c.spec.target {
        *secret = None;
    }
    c
}

async fn visible_contact(st: &AppState, p: &Principal, id: ContactId) -> Result<Contact, ApiError> {
    let c = st.store.get_contact(id).await?;
    if !p.sees(c.spec.division_id) {
        return Err(Error::not_found("contact").into());
    }
    Ok(c)
}

/// Checks a spec the caller wants to store: valid, in one of their divisions, and a user
/// target is a member of that division (so nobody mails people of other divisions).
async fn check_spec(st: &AppState, p: &Principal, spec: &ContactSpec) -> Result<(), ApiError> {
    spec.validate()?;
    super::target_division(st, p, spec.division_id).await?;
    if let ContactTarget::User { user_id } = spec.target {
        let member = match st.store.get_user(user_id).await {
            Ok(u) => u.spec.role == Role::Admin || u.spec.divisions.contains(&spec.division_id),
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !member {
            return Err(Error::invalid(
                "target.user_id",
                "not_found",
                "no such user in this division",
            )
            .into());
        }
    }
    Ok(())
}

/// `GET /api/contacts`.
#[utoipa::path(get, path = "/api/contacts", tag = "contacts", params(DivisionPageQuery), responses((status = 200, description = "The caller's divisions' contacts", body = Paged<Contact>), ErrorResponses))]
pub async fn list_contacts(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<ContactQuery>,
) -> Result<Json<Paged<Contact>>, ApiError> {
    let mut all = st
        .store
        .list_contacts(q.division_id.map(DivisionId))
        .await?;
    all.retain(|c| p.sees(c.spec.division_id));
    let all = all.into_iter().map(redact).collect();
    Ok(Json(q.page().apply(all, |c| c.id.0)?))
}

/// `POST /api/contacts` (admin; manager of the division).
#[utoipa::path(post, path = "/api/contacts", tag = "contacts", request_body = ContactSpec, responses((status = 201, description = "Created", body = Contact), ErrorResponses))]
pub async fn create_contact(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(mut spec): JsonBody<ContactSpec>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    require_role(&p, Role::Manager)?;
    if let ContactTarget::Webhook { secret, .. } = &mut spec.target
        && secret.as_deref() == Some("")
    {
        *secret = None;
    }
    check_spec(&st, &p, &spec).await?;
    let c = st.store.create_contact(&spec).await?;
    audit(
        &st,
        &p,
        "contact.create",
        format!("contact:{}", c.id),
        serde_json::json!({ "division_id": c.spec.division_id, "notify": c.spec.notify }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(redact(c))))
}

/// `GET /api/contacts/{id}`.
#[utoipa::path(get, path = "/api/contacts/{id}", tag = "contacts", params(("id" = i64, Path, description = "contact id")), responses((status = 200, description = "The contact", body = Contact), ErrorResponses))]
pub async fn get_contact(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Contact>, ApiError> {
    let id = ContactId(parse_id(&raw, "contact")?);
    Ok(Json(redact(visible_contact(&st, &p, id).await?)))
}

/// `PUT /api/contacts/{id}` (admin; manager of its division and of the target division).
#[utoipa::path(put, path = "/api/contacts/{id}", tag = "contacts", params(("id" = i64, Path, description = "contact id")), request_body = ContactSpec, responses((status = 200, description = "Updated", body = Contact), ErrorResponses))]
pub async fn update_contact(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    JsonBody(mut spec): JsonBody<ContactSpec>,
) -> Result<Json<Contact>, ApiError> {
    require_role(&p, Role::Manager)?;
    let id = ContactId(parse_id(&raw, "contact")?);
    let old = visible_contact(&st, &p, id).await?;
    if let ContactTarget::Webhook { secret, .. } = &mut spec.target {
        match secret.as_deref() {
            None => {
                if let ContactTarget::Webhook { secret: kept, .. } = old.spec.target {
                    *secret = kept;
                }
            }
            Some("") => *secret = None,
            Some(_) => {}
        }
    }
    check_spec(&st, &p, &spec).await?;
    let c = st.store.update_contact(id, &spec).await?;
    audit(
        &st,
        &p,
        "contact.update",
        format!("contact:{id}"),
        serde_json::json!({ "division_id": c.spec.division_id, "notify": c.spec.notify }),
    )
    .await?;
    Ok(Json(redact(c)))
}

/// `DELETE /api/contacts/{id}` (admin; manager of its division).
#[utoipa::path(delete, path = "/api/contacts/{id}", tag = "contacts", params(("id" = i64, Path, description = "contact id")), responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete_contact(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Manager)?;
    let id = ContactId(parse_id(&raw, "contact")?);
    let c = visible_contact(&st, &p, id).await?;
    st.store.delete_contact(id).await?;
    audit(
        &st,
        &p,
        "contact.delete",
        format!("contact:{id}"),
        serde_json::json!({ "division_id": c.spec.division_id }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
