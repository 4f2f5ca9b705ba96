//! Divisions, users and the audit log.
//!
//! Divisions: everybody reads the divisions they belong to (admins all); only admins write.
//! Users: admins only, except `GET /api/users/me`. Audit log: admins only.

use super::openapi::ErrorResponses;
use super::page::{PageQuery, Paged, QueryParams};
use super::principal::{Principal, require_division, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use honeysens_core::Error;
use honeysens_core::ids::{AuditId, DivisionId, UserId};
use honeysens_core::model::{AuditEntry, Division, DivisionSpec, Role, User, UserSpec};
use honeysens_core::password;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_divisions, create_division))
        .routes(routes!(get_division, update_division, delete_division))
        .routes(routes!(list_users, create_user))
        .routes(routes!(me))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(list_audit))
}

/// Most audit entries per page.
pub const MAX_AUDIT_PAGE: u32 = 500;

/// `GET /api/divisions`: the caller's divisions (admins: all), by name.
#[utoipa::path(get, path = "/api/divisions", tag = "divisions", params(PageQuery), responses((status = 200, description = "The caller's divisions", body = Paged<Division>), ErrorResponses))]
pub async fn list_divisions(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Paged<Division>>, ApiError> {
    let mut all = st.store.list_divisions().await?;
    all.retain(|d| p.sees(d.id));
    Ok(Json(page.apply(all, |d| d.id.0)?))
}

/// `POST /api/divisions` (admin).
#[utoipa::path(post, path = "/api/divisions", tag = "divisions", request_body = DivisionSpec, responses((status = 201, description = "Created", body = Division), ErrorResponses))]
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
#[utoipa::path(get, path = "/api/divisions/{id}", tag = "divisions", params(("id" = i64, Path, description = "division id")), responses((status = 200, description = "The division", body = Division), ErrorResponses))]
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
#[utoipa::path(put, path = "/api/divisions/{id}", tag = "divisions", params(("id" = i64, Path, description = "division id")), request_body = DivisionSpec, responses((status = 200, description = "Updated", body = Division), ErrorResponses))]
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
#[utoipa::path(delete, path = "/api/divisions/{id}", tag = "divisions", params(("id" = i64, Path, description = "division id")), responses((status = 204, description = "Deleted"), ErrorResponses))]
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
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct CreateUser {
    /// The user's fields.
    #[serde(flatten)]
    pub spec: UserSpec,
    /// Initial password; absent: one is generated and returned once. Either way the user must
    /// change it at first login, because someone else knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub password: Option<String>,
}

/// `POST /api/users` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    /// The new user.
    pub user: User,
    /// The generated initial password, when none was given; shown only here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub password: Option<String>,
}

/// `GET /api/users` (admin).
#[utoipa::path(get, path = "/api/users", tag = "users", params(PageQuery), responses((status = 200, description = "Users", body = Paged<User>), ErrorResponses))]
pub async fn list_users(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Paged<User>>, ApiError> {
    require_role(&p, Role::Admin)?;
    Ok(Json(
        page.apply(st.store.list_users(None).await?, |u| u.id.0)?,
    ))
}

/// `GET /api/users/me`: the caller.
#[utoipa::path(get, path = "/api/users/me", tag = "users", responses((status = 200, description = "The caller", body = User), ErrorResponses))]
pub async fn me(p: Principal) -> Json<User> {
    Json(p.user)
}

/// `POST /api/users` (admin).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = CreateUser, responses((status = 201, description = "Created; `password` only when generated", body = CreatedUser), ErrorResponses))]
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
#[utoipa::path(get, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")), responses((status = 200, description = "The user", body = User), ErrorResponses))]
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
#[utoipa::path(put, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")), request_body = UserSpec, responses((status = 200, description = "Updated", body = User), ErrorResponses))]
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
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")), responses((status = 204, description = "Deleted"), ErrorResponses))]
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
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1 to [`MAX_AUDIT_PAGE`] (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only entries older than this id (the last id of the previous page).
    #[serde(default)]
    pub before: Option<i64>,
}

/// `GET /api/audit` (admin): newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery), responses((status = 200, description = "Entries, newest first", body = Vec<AuditEntry>), ErrorResponses))]
pub async fn list_audit(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    require_role(&p, Role::Admin)?;
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
