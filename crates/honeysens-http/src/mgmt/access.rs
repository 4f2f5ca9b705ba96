//! Login, logout, password change and API tokens.

use super::openapi::ErrorResponses;
use super::principal::{
    AuthVia, Principal, SESSION_COOKIE, SESSION_IDLE, TOKEN_PREFIX, hash_secret, random_secret,
};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::{AppState, PeerInfo};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use honeysens_core::ids::ApiTokenId;
use honeysens_core::model::{ApiToken, NewApiToken, Session, TokenScope, User};
use honeysens_core::password;
use honeysens_core::time::now;
use honeysens_core::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(change_password))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Longest token lifetime accepted, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// `POST /api/auth/login` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// `POST /api/auth/login` answer; the session token travels only in the cookie.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The logged-in user.
    pub user: User,
    /// Echo this in `X-CSRF-Token` on every unsafe request of this session.
    pub csrf_token: String,
}

/// `POST /api/auth/password` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct PasswordChange {
    /// The current password.
    pub current: String,
    /// The new password.
    pub new: String,
}

/// `POST /api/tokens` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct CreateToken {
    /// Label.
    pub name: String,
    /// Upper bound of what the token may do.
    pub scope: TokenScope,
    /// Lifetime in days (1 to [`MAX_TOKEN_DAYS`]); absent: no expiry.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// `POST /api/tokens` answer: the only time the secret is shown.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret to send as `Authorization: Bearer …`.
    pub token: String,
    /// The stored token.
    pub api_token: ApiToken,
}

/// A valid Argon2id hash of a random password, verified against for unknown login names so
/// they cost the same time as known ones and do not reveal which names exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY
        .get_or_init(|| password::hash_password(&password::generate_password()).unwrap_or_default())
}

/// Argon2 takes tens of milliseconds of CPU: off the async workers.
async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || password::verify_password(&password, &phc))
        .await
        .unwrap_or(false)
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(ApiError::from)
}

fn client_ip(peer: Option<&PeerInfo>) -> IpAddr {
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.remote.ip())
}

fn throttled(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "auth.throttled",
        "too many failed attempts; try again later",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("auth.invalid_credentials", "wrong user name or password")
}

fn session_cookie(value: &str, max_age: i64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}"
    ))
    .map_err(|_| ApiError::internal())
}

/// `POST /api/auth/login`: verifies the password and starts a session (cookie `hs_session`).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, responses((status = 200, description = "Logged in; the session cookie is set", body = LoginResponse), ErrorResponses), security(()))]
pub async fn login(
    State(st): State<AppState>,
    peer: Option<Extension<PeerInfo>>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let ip = client_ip(peer.as_deref());
    if let Some(wait) = st.login_throttle.check(&req.username, ip) {
        tracing::warn!(%ip, "login throttled");
        return Ok(throttled(wait));
    }
    let found = match st.store.get_user_credentials(&req.username).await {
        Ok(found) => Some(found),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let phc = found
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |(_, h)| h.clone());
    // No stored password is longer than MAX_LEN; refusing longer ones unhashed bounds the work
    // an attacker can demand and reveals nothing about the user.
    let ok = req.password.len() <= password::MAX_LEN && verify(req.password, phc).await;
    let user = match found {
        Some((user, _)) if ok => user,
        _ => {
            st.login_throttle.failure(&req.username, ip);
            tracing::info!(%ip, "failed login");
            return Err(invalid_credentials());
        }
    };
    st.login_throttle.success(&req.username, ip);
    let secret = random_secret();
    let at = now();
    let session = Session {
        id_hash: hash_secret(&secret),
        user_id: user.id,
        csrf_token: random_secret(),
        created_at: at,
        expires_at: at + SESSION_IDLE,
        last_seen_at: at,
    };
    st.store.create_session(&session).await?;
    tracing::info!(user = user.id.0, %ip, "login");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        session_cookie(&secret, SESSION_IDLE.num_seconds())?,
    );
    // Responses carrying credentials must not be cached by anything in between.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((
        headers,
        Json(LoginResponse {
            user,
            csrf_token: session.csrf_token,
        }),
    )
        .into_response())
}

/// `POST /api/auth/logout`: ends the calling session and clears the cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204, description = "Session ended"), ErrorResponses))]
pub async fn logout(State(st): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    if let AuthVia::Session { id_hash } = &p.via {
        st.store.delete_session(id_hash).await?;
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, session_cookie("", 0)?);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// `POST /api/auth/password`: changes the caller's password, clears the must-change flag and
/// ends all their other sessions. Session only: a token (possibly read-only) cannot take over
/// the account.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = PasswordChange, responses((status = 204, description = "Password changed"), ErrorResponses))]
pub async fn change_password(
    State(st): State<AppState>,
    peer: Option<Extension<PeerInfo>>,
    p: Principal,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let AuthVia::Session { id_hash } = &p.via else {
        return Err(ApiError::forbidden(
            "auth.session_required",
            "log in with a password to change it",
        ));
    };
    let ip = client_ip(peer.as_deref());
    // A stolen session must not allow unlimited guessing of the current password.
    if let Some(wait) = st.login_throttle.check(&p.name, ip) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "auth.throttled",
            format!(
                "too many failed attempts; retry in {} s",
                wait.as_secs().max(1)
            ),
        ));
    }
    let (_, phc) = st.store.get_user_credentials(&p.name).await?;
    if !verify(req.current, phc).await {
        st.login_throttle.failure(&p.name, ip);
        return Err(ApiError::forbidden(
            "auth.wrong_password",
            "the current password is wrong",
        ));
    }
    if let Err(Error::Invalid(mut fields)) = password::check_password(&req.new) {
        for f in &mut fields.0 {
            f.field = "new".into();
        }
        return Err(Error::Invalid(fields).into());
    }
    let new_hash = hash(req.new).await?;
    st.store
        .set_password_hash(p.user_id, &new_hash, false)
        .await?;
    let ended = st
        .store
        .delete_user_sessions(p.user_id, Some(id_hash))
        .await?;
    audit(
        &st,
        &p,
        "user.password_change",
        format!("user:{}", p.user_id),
        serde_json::json!({ "ended_sessions": ended }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/tokens`: creates a token for the caller; the secret is in this answer only.
#[utoipa::path(post, path = "/api/tokens", tag = "auth", request_body = CreateToken, responses((status = 201, description = "Token created; the secret is shown only here", body = CreatedToken), ErrorResponses))]
pub async fn create_token(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(req): JsonBody<CreateToken>,
) -> Result<Response, ApiError> {
    // A token may not mint a stronger one, and nobody may ask for more than they have.
    if req.scope.max_role() > p.role {
        return Err(ApiError::forbidden(
            "auth.forbidden",
            "the scope exceeds your role",
        ));
    }
    let expires_at = match req.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => {
            Some(now() + chrono::Duration::days(i64::from(d)))
        }
        Some(_) => {
            return Err(Error::invalid(
                "expires_in_days",
                "out_of_range",
                format!("must be 1 to {MAX_TOKEN_DAYS}"),
            )
            .into());
        }
    };
    let secret = format!("{TOKEN_PREFIX}{}", random_secret());
    let new = NewApiToken {
        user_id: p.user_id,
        name: req.name,
        token_hash: hash_secret(&secret),
        scope: req.scope,
        expires_at,
    };
    new.validate()?;
    let api_token = st.store.create_api_token(&new).await?;
    audit(
        &st,
        &p,
        "token.create",
        format!("api_token:{}", api_token.id),
        serde_json::json!({ "name": api_token.name, "scope": api_token.scope }),
    )
    .await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((
        StatusCode::CREATED,
        headers,
        Json(CreatedToken {
            token: secret,
            api_token,
        }),
    )
        .into_response())
}

/// `GET /api/tokens`: the caller's tokens (never their secrets).
#[utoipa::path(get, path = "/api/tokens", tag = "auth", responses((status = 200, description = "The caller's tokens", body = Vec<ApiToken>), ErrorResponses))]
pub async fn list_tokens(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    Ok(Json(st.store.list_api_tokens(Some(p.user_id)).await?))
}

/// `DELETE /api/tokens/{id}`: revokes one of the caller's tokens (admins: anyone's). Other
/// users' tokens answer 404 for non-admins.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "auth", params(("id" = i64, Path, description = "token id")), responses((status = 204, description = "Revoked"), ErrorResponses))]
pub async fn revoke_token(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = ApiTokenId(parse_id(&raw, "api_token")?);
    let token = st.store.get_api_token(id).await?;
    if token.user_id != p.user_id && p.role != honeysens_core::model::Role::Admin {
        return Err(Error::not_found("api_token").into());
    }
    st.store.revoke_api_token(id, now()).await?;
    audit(
        &st,
        &p,
        "token.revoke",
        format!("api_token:{id}"),
        serde_json::json!({ "owner": token.user_id }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
