//! Divisions, users and the audit log.
//!
//! Divisions: everybody reads the divisions they belong to (admins all); only admins write.
//! Users: admins only, except `GET /api/users/me`. Audit log: admins only.

use super::principal::{Principal, require_division, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use honeysens_core::Error;
use honeysens_core::ids::{AuditId, DivisionId, UserId};
use honeysens_core::model::{AuditEntry, Division, DivisionSpec, Role, User, UserSpec};
use honeysens_core::password;
use serde::{Deserialize, Serialize};

/// Most audit entries per page.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// `GET /api/divisions`: the caller's divisions (admins: all), by name.
pub async fn list_divisions(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<Division>>, ApiError> {
    let mut all = st.store.list_divisions().await?;
    all.retain(|d| p.sees(d.id));
    Ok(Json(all))
}

/// `POST /api/divisions` (admin).
pub async fn create_division(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(spec): JsonBody<DivisionSpec>,
) -> Result<(StatusCode, Json<Division>), ApiError> {
    require_role(&p, Role::Admin)?;
    spec.validate()?;
    let d = st.store.create_division(&spec).await?;
    audit(
        &st,
        &p,
        "division.create",
        format!("division:{}", d.id),
        serde_json::json!({ "name": d.name }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(d)))
}

/// `GET /api/divisions/{id}` (members and admins; others 404).
pub async fn get_division(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Division>, ApiError> {
    let id = DivisionId(parse_id(&raw, "division")?);
    require_division(&p, id)?;
    Ok(Json(st.store.get_division(id).await?))
}

/// `PUT /api/divisions/{id}` (admin).
pub async fn update_division(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    JsonBody(spec): JsonBody<DivisionSpec>,
) -> Result<Json<Division>, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = DivisionId(parse_id(&raw, "division")?);
    spec.validate()?;
    let d = st.store.update_division(id, &spec).await?;
    audit(
        &st,
        &p,
        "division.update",
        format!("division:{id}"),
        serde_json::json!({ "name": d.name }),
    )
    .await?;
    Ok(Json(d))
}

/// `DELETE /api/divisions/{id}` (admin); 409 while it owns sensors.
pub async fn delete_division(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = DivisionId(parse_id(&raw, "division")?);
    let d = st.store.get_division(id).await?;
    st.store.delete_division(id).await?;
    audit(
        &st,
        &p,
        "division.delete",
        format!("division:{id}"),
        serde_json::json!({ "name": d.name }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/users` body: the user's fields and optionally an initial password.
#[derive(Debug, Deserialize)]
pub struct CreateUser {
    /// The user's fields.
    #[serde(flatten)]
    pub spec: UserSpec,
    /// Initial password; absent: one is generated and returned once. Either way the user must
    /// change it at first login, because someone else knows it.
    #[serde(default)]
    pub password: Option<String>,
}

/// `POST /api/users` answer.
#[derive(Debug, Serialize)]
pub struct CreatedUser {
    /// The new user.
    pub user: User,
    /// The generated initial password, when none was given; shown only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `GET /api/users` (admin).
pub async fn list_users(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<User>>, ApiError> {
    require_role(&p, Role::Admin)?;
    Ok(Json(st.store.list_users(None).await?))
}

/// `GET /api/users/me`: the caller.
pub async fn me(p: Principal) -> Json<User> {
    Json(p.user)
}

/// `POST /api/users` (admin).
pub async fn create_user(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(req): JsonBody<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    require_role(&p, Role::Admin)?;
    req.spec.validate()?;
    let (initial, generated) = match req.password {
        Some(pw) => {
            password::check_password(&pw)?;
            (pw, false)
        }
        None => (password::generate_password(), true),
    };
    let to_hash = initial.clone();
    let phc = tokio::task::spawn_blocking(move || password::hash_password(&to_hash))
        .await
        .map_err(|_| ApiError::internal())??;
    let mut user = st.store.create_user(&req.spec, &phc).await?;
    st.store.set_password_hash(user.id, &phc, true).await?;
    user.must_change_password = true;
    audit(
        &st,
        &p,
        "user.create",
        format!("user:{}", user.id),
        serde_json::json!({ "name": user.spec.name, "role": user.spec.role, "divisions": user.spec.divisions }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user,
            password: generated.then_some(initial),
        }),
    ))
}

/// `GET /api/users/{id}` (admin).
pub async fn get_user(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<User>, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = UserId(parse_id(&raw, "user")?);
    Ok(Json(st.store.get_user(id).await?))
}

/// `PUT /api/users/{id}` (admin). Role and division changes apply to the user's sessions and
/// tokens at their next request, because the principal is loaded per request.
pub async fn update_user(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    JsonBody(spec): JsonBody<UserSpec>,
) -> Result<Json<User>, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = UserId(parse_id(&raw, "user")?);
    spec.validate()?;
    if id == p.user_id && spec.role != Role::Admin {
        // Would lock the last admin out in the worst case; another admin must do it.
        return Err(Error::conflict("user", "you cannot demote yourself").into());
    }
    let user = st.store.update_user(id, &spec).await?;
    audit(
        &st,
        &p,
        "user.update",
        format!("user:{id}"),
        serde_json::json!({ "name": user.spec.name, "role": user.spec.role, "divisions": user.spec.divisions }),
    )
    .await?;
    Ok(Json(user))
}

/// `DELETE /api/users/{id}` (admin; not oneself). Ends the user's sessions and tokens.
pub async fn delete_user(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = UserId(parse_id(&raw, "user")?);
    if id == p.user_id {
        return Err(Error::conflict("user", "you cannot delete yourself").into());
    }
    let user = st.store.get_user(id).await?;
    st.store.delete_user(id).await?;
    audit(
        &st,
        &p,
        "user.delete",
        format!("user:{id}"),
        serde_json::json!({ "name": user.spec.name }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/audit` query.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Page size, 1 to [`MAX_AUDIT_PAGE`] (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only entries older than this id (the last id of the previous page).
    #[serde(default)]
    pub before: Option<i64>,
}

/// `GET /api/audit` (admin): newest first.
pub async fn list_audit(
    State(st): State<AppState>,
    p: Principal,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    require_role(&p, Role::Admin)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("request.malformed", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            "out_of_range",
            format!("must be 1 to {MAX_AUDIT_PAGE}"),
        )
        .into());
    }
    Ok(Json(
        st.store.list_audit(limit, q.before.map(AuditId)).await?,
    ))
}
