//! Who is calling the management API: the [`Principal`] extractor (session cookie or API
//! token), CSRF protection for cookie requests, and the authorisation helpers.
//!
//! Authorisation rule for division-scoped objects: admins pass; others must be members of the
//! object's division. A non-member gets 404 `<entity>.not_found`, exactly as for an object that
//! does not exist, so ids of other divisions cannot be probed.

use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use base64::Engine;
use honeysens_core::ids::{ApiTokenId, DivisionId, UserId};
use honeysens_core::model::{Role, User};
use honeysens_core::time::{Timestamp, now};
use honeysens_core::{Error, ErrorKind};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hs_session";

/// Header carrying the CSRF token on unsafe cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Prefix of API token secrets, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "hst_";

/// Idle time after which a session ends (sliding: each request extends it).
pub const SESSION_IDLE: chrono::Duration = chrono::Duration::hours(8);

/// Activity is written back at most this often per session, sparing a write per request.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Paths a user who must change their password may still use.
const PASSWORD_CHANGE_PATHS: &[&str] = &["/api/auth/password", "/api/auth/logout", "/api/users/me"];

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVia {
    /// A session cookie; holds the SHA-256 hex of the session token.
    Session {
        /// Session id (hash of the cookie value).
        id_hash: String,
    },
    /// An API token.
    Token {
        /// The token.
        id: ApiTokenId,
    },
}

/// The authenticated caller of a management endpoint.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// Login name (for audit entries).
    pub name: String,
    /// Effective role: the user's role, capped by the token scope for token requests.
    pub role: Role,
    /// Divisions the user is a member of.
    pub divisions: Vec<DivisionId>,
    /// Whether the user is an admin and so sees every division. Visibility follows the user,
    /// not the token scope: a read token of an admin reads everything a division-scoped
    /// endpoint shows, but admin-only endpoints still need an effective admin role.
    pub all_divisions: bool,
    /// How the request authenticated.
    pub via: AuthVia,
    /// The stored user as loaded for this request.
    pub user: User,
}

impl Principal {
    /// Whether the principal may see data of `division`.
    pub fn sees(&self, division: DivisionId) -> bool {
        self.all_divisions || self.divisions.contains(&division)
    }
}

/// 403 `auth.forbidden` unless the principal's effective role is at least `role`.
pub fn require_role(p: &Principal, role: Role) -> Result<(), ApiError> {
    if p.role >= role {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "auth.forbidden",
            "your role does not allow this",
        ))
    }
}

/// 404 `division.not_found` unless the principal's user is an admin or a member of
/// `division` (non-members must not learn that the division exists).
pub fn require_division(p: &Principal, division: DivisionId) -> Result<(), ApiError> {
    if p.sees(division) {
        Ok(())
    } else {
        Err(Error::not_found("division").into())
    }
}

/// SHA-256 hex of a secret; what the store keeps instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes, URL-safe base64 without padding (43 characters).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares in time independent of where the inputs differ, so the CSRF token cannot be
/// guessed byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn required() -> ApiError {
    ApiError::unauthorized("auth.required", "log in or send an API token")
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Loads the user; a user deleted since the credential was issued is "not authenticated".
async fn load_user(st: &AppState, id: UserId) -> Result<User, ApiError> {
    match st.store.get_user(id).await {
        Ok(u) => Ok(u),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(required()),
        Err(e) => Err(e.into()),
    }
}

async fn from_token(st: &AppState, value: &str, at: Timestamp) -> Result<Principal, ApiError> {
    let Some(secret) = value.strip_prefix("Bearer ").map(str::trim) else {
        return Err(ApiError::unauthorized(
            "auth.invalid_token",
            "use Authorization: Bearer hst_…",
        ));
    };
    if !secret.starts_with(TOKEN_PREFIX) {
        return Err(ApiError::unauthorized(
            "auth.invalid_token",
            "not a HoneySens API token",
        ));
    }
    let token = match st.store.get_api_token_by_hash(&hash_secret(secret)).await {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(ApiError::unauthorized(
                "auth.invalid_token",
                "unknown API token",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if token.revoked_at.is_some() {
        return Err(ApiError::unauthorized(
            "auth.token_revoked",
            "the API token was revoked",
        ));
    }
    if !token.is_usable(at) {
        return Err(ApiError::unauthorized(
            "auth.token_expired",
            "the API token has expired",
        ));
    }
    let user = load_user(st, token.user_id).await?;
    if token.last_used_at.is_none_or(|t| at - t >= TOUCH_EVERY)
        && let Err(e) = st.store.touch_api_token(token.id, at).await
    {
        // Bookkeeping only: the request itself may proceed.
        tracing::warn!(token = token.id.0, error = %e, "recording token use failed");
    }
    Ok(Principal {
        user_id: user.id,
        name: user.spec.name.clone(),
        role: token.scope.effective_role(user.spec.role),
        divisions: user.spec.divisions.clone(),
        all_divisions: user.spec.role == Role::Admin,
        via: AuthVia::Token { id: token.id },
        user,
    })
}

async fn from_session(
    st: &AppState,
    parts: &Parts,
    secret: &str,
    at: Timestamp,
) -> Result<Principal, ApiError> {
    let id_hash = hash_secret(secret);
    let session = match st.store.get_session(&id_hash).await {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(required()),
        Err(e) => return Err(e.into()),
    };
    if is_unsafe(&parts.method) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(sent, session.csrf_token.as_bytes()) {
            return Err(ApiError::forbidden(
                "auth.csrf",
                "missing or wrong X-CSRF-Token header",
            ));
        }
    }
    if at - session.last_seen_at >= TOUCH_EVERY
        && let Err(e) = st
            .store
            .touch_session(&id_hash, at, at + SESSION_IDLE)
            .await
    {
        tracing::warn!(error = %e, "extending the session failed");
    }
    let user = load_user(st, session.user_id).await?;
    Ok(Principal {
        user_id: user.id,
        name: user.spec.name.clone(),
        role: user.spec.role,
        divisions: user.spec.divisions.clone(),
        all_divisions: user.spec.role == Role::Admin,
        via: AuthVia::Session { id_hash },
        user,
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let at = now();
        // A token wins over a cookie: scripts never carry cookies, and a browser that sends an
        // Authorization header chose to.
        let principal = if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
            let v = v.to_str().map_err(|_| {
                ApiError::unauthorized("auth.invalid_token", "malformed Authorization header")
            })?;
            from_token(st, v, at).await?
        } else if let Some(secret) = cookie(parts, SESSION_COOKIE) {
            from_session(st, parts, secret, at).await?
        } else {
            return Err(required());
        };
        if principal.user.must_change_password && !PASSWORD_CHANGE_PATHS.contains(&parts.uri.path())
        {
            return Err(ApiError::forbidden(
                "auth.password_change_required",
                "change your password first (POST /api/auth/password)",
            ));
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_distinct() {
        let a = random_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_secret());
        assert_eq!(hash_secret("x").len(), 64);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
