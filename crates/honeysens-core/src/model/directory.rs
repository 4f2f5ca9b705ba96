//! Divisions, users and contacts: who owns sensors and who is told about attacks.

use crate::error::{Result, ValidationErrors};
use crate::ids::{ContactId, DivisionId, UserId};
use crate::time::Timestamp;
use crate::validate;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A division (organisational unit) owns sensors, contacts and event filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Division {
    /// Server-assigned id.
    pub id: DivisionId,
    /// Unique display name.
    pub name: String,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// The editable part of a [`Division`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DivisionSpec {
    /// Unique display name.
    pub name: String,
}

impl DivisionSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::name(&mut e, "name", &self.name);
        e.into_result()
    }
}

/// A user's role; roles are cumulative (a manager may do all an observer may).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the data of their divisions.
    Observer,
    /// Also manages sensors, contacts, filters and events of their divisions.
    Manager,
    /// Manages everything, across all divisions.
    Admin,
}

impl Role {
    /// Stable storage and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Observer => "observer",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "observer" => Ok(Role::Observer),
            "manager" => Ok(Role::Manager),
            "admin" => Ok(Role::Admin),
            _ => Err(crate::Error::invalid(
                "role",
                "unknown_value",
                "unknown role",
            )),
        }
    }
}

/// A person who logs in to the console or the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Server-assigned id.
    pub id: UserId,
    /// Editable fields.
    #[serde(flatten)]
    pub spec: UserSpec,
    /// Set when the password was issued by someone else and must be changed at next login.
    pub must_change_password: bool,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// The editable part of a [`User`]; the password hash is handled separately and never serialised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSpec {
    /// Unique login name.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub full_name: Option<String>,
    /// Address for notifications.
    #[serde(default)]
    pub email: Option<String>,
    /// What the user may do.
    pub role: Role,
    /// Divisions whose data the user sees (admins see all regardless).
    #[serde(default)]
    pub divisions: Vec<DivisionId>,
}

impl UserSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::login(&mut e, "name", &self.name);
        if let Some(full) = &self.full_name {
            validate::name(&mut e, "full_name", full);
        }
        if let Some(mail) = &self.email {
            validate::email(&mut e, "email", mail);
        }
        e.into_result()
    }
}

/// Where a contact is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContactTarget {
    /// An e-mail address.
    Email {
        /// The address.
        address: String,
    },
    /// An HTTP endpoint receiving signed JSON.
    Webhook {
        /// The URL.
        url: String,
        /// Key of the `X-HoneySens-Signature` HMAC-SHA256 header; never returned by the API.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// A user of the system (their e-mail address at send time).
    User {
        /// The user.
        user_id: UserId,
    },
}

/// Which notifications a contact receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotifyOn {
    /// Events of high or critical severity.
    #[serde(default)]
    pub critical_events: bool,
    /// Every event.
    #[serde(default)]
    pub all_events: bool,
    /// Sensors missing their heartbeat, and their recovery.
    #[serde(default)]
    pub sensor_timeouts: bool,
    /// The weekly summary.
    #[serde(default)]
    pub weekly_summary: bool,
}

/// Someone in a division who is notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    /// Server-assigned id.
    pub id: ContactId,
    /// Editable fields.
    #[serde(flatten)]
    pub spec: ContactSpec,
}

/// The editable part of a [`Contact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactSpec {
    /// Owning division.
    pub division_id: DivisionId,
    /// Where to send.
    pub target: ContactTarget,
    /// What to send.
    pub notify: NotifyOn,
}

impl ContactSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        match &self.target {
            ContactTarget::Email { address } => validate::email(&mut e, "target.address", address),
            ContactTarget::Webhook { url, secret } => {
                validate::http_url(&mut e, "target.url", url);
                if let Some(secret) = secret {
                    validate::text(&mut e, "target.secret", secret, 256);
                }
            }
            ContactTarget::User { .. } => {}
        }
        e.into_result()
    }
}
