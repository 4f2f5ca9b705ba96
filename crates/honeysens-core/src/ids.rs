//! Typed identifiers, so a sensor id can never be passed where a division id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                Self(v)
            }
        }
    )*};
}

id_type! {
    /// Identifies a [`crate::model::Division`].
    DivisionId;
    /// Identifies a [`crate::model::User`].
    UserId;
    /// Identifies a [`crate::model::Contact`].
    ContactId;
    /// Identifies a [`crate::model::Sensor`].
    SensorId;
    /// Identifies a [`crate::model::Platform`].
    PlatformId;
    /// Identifies a [`crate::model::FirmwareRevision`].
    FirmwareId;
    /// Identifies a [`crate::model::Service`].
    ServiceId;
    /// Identifies a [`crate::model::ServiceRevision`].
    ServiceRevisionId;
    /// Identifies a stored [`crate::model::Event`] (server-assigned, ordered by arrival).
    EventId;
    /// Identifies a [`crate::model::EventFilter`].
    FilterId;
    /// Identifies an [`crate::model::Incident`].
    IncidentId;
    /// Identifies a [`crate::model::Job`].
    JobId;
    /// Identifies a [`crate::model::ApiToken`].
    ApiTokenId;
    /// Identifies an [`crate::model::AuditEntry`] (server-assigned, ordered by arrival).
    AuditId;
}
