//! How people authenticate (sessions, API tokens) and the audit log of their changes.
//!
//! Stores never see the secrets clients hold: sessions are keyed and tokens looked up by the
//! SHA-256 hex of the secret, so a copy of the database yields no usable credential.

use crate::error::{Result, ValidationErrors};
use crate::ids::{ApiTokenId, AuditId, UserId};
use crate::model::Role;
use crate::time::Timestamp;
use crate::validate;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A browser session of a logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 hex of the session token in the client's cookie.
    pub id_hash: String,
    /// Whose session this is.
    pub user_id: UserId,
    /// The token unsafe requests must echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// Login time.
    pub created_at: Timestamp,
    /// When the session stops being accepted.
    pub expires_at: Timestamp,
    /// Last authenticated request.
    pub last_seen_at: Timestamp,
}

/// What an API token may do at most; the effective role is the lower of this and the owner's
/// role, so demoting a user also demotes their tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Read-only: acts as an observer.
    Read,
    /// Acts at most as a manager.
    Manager,
    /// Acts with the owner's full role.
    Admin,
}

impl TokenScope {
    /// Stable storage and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Manager => "manager",
            TokenScope::Admin => "admin",
        }
    }

    /// The highest role this scope allows.
    pub fn max_role(self) -> Role {
        match self {
            TokenScope::Read => Role::Observer,
            TokenScope::Manager => Role::Manager,
            TokenScope::Admin => Role::Admin,
        }
    }

    /// The role a token of this scope acts with for an owner of role `owner`.
    pub fn effective_role(self, owner: Role) -> Role {
        owner.min(self.max_role())
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScope {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(TokenScope::Read),
            "manager" => Ok(TokenScope::Manager),
            "admin" => Ok(TokenScope::Admin),
            _ => Err(crate::Error::invalid(
                "scope",
                "unknown_value",
                "unknown token scope",
            )),
        }
    }
}

/// An API token for scripts; the secret itself is shown once at creation and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    /// Server-assigned id.
    pub id: ApiTokenId,
    /// Owner.
    pub user_id: UserId,
    /// Label chosen by the owner.
    pub name: String,
    /// Upper bound of what the token may do.
    pub scope: TokenScope,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When the token stops working; `None` never.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// When the token was revoked, if it was.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
    /// Last authenticated request.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
}

impl ApiToken {
    /// Whether the token authenticates requests at `at` (not revoked, not expired).
    pub fn is_usable(&self, at: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| at < e)
    }
}

/// What is stored for a new [`ApiToken`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    /// Owner.
    pub user_id: UserId,
    /// Label chosen by the owner.
    pub name: String,
    /// SHA-256 hex of the secret handed to the owner.
    pub token_hash: String,
    /// Upper bound of what the token may do.
    pub scope: TokenScope,
    /// When the token stops working; `None` never.
    pub expires_at: Option<Timestamp>,
}

impl NewApiToken {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::name(&mut e, "name", &self.name);
        e.into_result()
    }
}

/// One recorded change: who did what to which object, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Server-assigned id, increasing with time of recording.
    pub id: AuditId,
    /// When the change happened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// The acting user; `None` for the system or a since deleted user.
    pub user_id: Option<UserId>,
    /// The actor's name at the time (kept when the user is deleted).
    pub actor: String,
    /// What was done, e.g. `sensor.create`.
    pub action: String,
    /// What it was done to, e.g. `sensor:12`.
    pub target: String,
    /// Further detail (changed fields); never secrets.
    pub detail: serde_json::Value,
}

/// What is stored for a new [`AuditEntry`]; the store assigns id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// The acting user; `None` for the system.
    pub user_id: Option<UserId>,
    /// The actor's name.
    pub actor: String,
    /// What was done, e.g. `sensor.create`.
    pub action: String,
    /// What it was done to, e.g. `sensor:12`.
    pub target: String,
    /// Further detail; never secrets.
    pub detail: serde_json::Value,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scope_caps_the_owner_role() {
        assert_eq!(TokenScope::Read.effective_role(Role::Admin), Role::Observer);
        assert_eq!(
            TokenScope::Manager.effective_role(Role::Admin),
            Role::Manager
        );
        assert_eq!(
            TokenScope::Admin.effective_role(Role::Manager),
            Role::Manager
        );
        assert_eq!(
            TokenScope::Admin.effective_role(Role::Observer),
            Role::Observer
        );
        for s in [TokenScope::Read, TokenScope::Manager, TokenScope::Admin] {
            assert_eq!(s.as_str().parse::<TokenScope>().unwrap(), s);
        }
        assert_eq!(
            "root".parse::<TokenScope>().unwrap_err().code(),
            "validation.failed"
        );
    }
}
