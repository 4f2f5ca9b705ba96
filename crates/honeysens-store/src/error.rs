//! Errors of opening a store, and the mapping of database errors onto domain errors.

use honeysens_core::Error;
use sqlx::error::ErrorKind as DbKind;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL names no supported database (`sqlite:`, `postgres:`, `mysql:`/`mariadb:`).
    #[error("unsupported database URL scheme {0:?}; use sqlite://, postgres:// or mysql://")]
    UnsupportedScheme(String),
    /// The URL could not be parsed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Connecting failed.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A store operation during opening failed.
    #[error("store operation failed while opening")]
    Store(#[source] honeysens_core::Error),
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        Error::Storage(Box::new(e))
    }
}

/// Maps a failed write of `entity` whose foreign keys point at `parent`.
pub(crate) fn write_err(
    entity: &'static str,
    parent: &'static str,
) -> impl Fn(sqlx::Error) -> Error {
    move |e| match kind(&e) {
        Some(DbKind::UniqueViolation) => {
            Error::conflict(entity, format!("{entity} already exists"))
        }
        Some(DbKind::ForeignKeyViolation) => Error::not_found(parent),
        _ => other(entity, e),
    }
}

/// Maps a failed delete of `entity`: a foreign-key violation means it is still in use.
pub(crate) fn delete_err(entity: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| match kind(&e) {
        Some(DbKind::ForeignKeyViolation) => {
            Error::conflict(entity, format!("{entity} is still in use"))
        }
        _ => other(entity, e),
    }
}

/// Maps a failed read of `entity`.
pub(crate) fn read_err(entity: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| other(entity, e)
}

fn kind(e: &sqlx::Error) -> Option<DbKind> {
    match e {
        sqlx::Error::Database(db) => Some(db.kind()),
        _ => None,
    }
}

fn other(entity: &'static str, e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::RowNotFound => Error::not_found(entity),
        e => Error::Storage(Box::new(e)),
    }
}

/// A row that the schema allowed but the domain cannot read (e.g. an unknown enum value).
#[derive(Debug, thiserror::Error)]
#[error("corrupt {entity} row: {detail}")]
pub struct CorruptRow {
    entity: &'static str,
    detail: String,
}

pub(crate) fn corrupt(entity: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::Storage(Box::new(CorruptRow {
        entity,
        detail: detail.to_string(),
    }))
}

/// A concurrent ingest stored one of a batch's events after the batch looked it up, so the
/// grouping decided from that lookup no longer holds: the transaction is rolled back and run
/// again (the retry sees the event as stored).
#[derive(Debug, thiserror::Error)]
#[error("a concurrent ingest stored an event of this batch")]
pub(crate) struct IngestRace;

/// Maps a failed event insert that ran without a conflict clause: a unique violation means a
/// concurrent ingest stored one of the events after this one looked (an [`IngestRace`]: run
/// the ingest again); anything else as [`write_err`] maps it.
pub(crate) fn event_insert_err(e: sqlx::Error) -> Error {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => Error::Storage(Box::new(IngestRace)),
        _ => write_err("event", "sensor")(e),
    }
}

/// Whether `e` is an [`IngestRace`]: an event of the batch was already stored.
pub(crate) fn is_ingest_race(e: &Error) -> bool {
    matches!(e, Error::Storage(src) if src.is::<IngestRace>())
}

/// Whether `e` is a transient conflict (deadlock, serialisation failure, busy database) after
/// which the same transaction may simply be run again.
pub(crate) fn is_retryable(e: &Error) -> bool {
    if is_ingest_race(e) {
        return true;
    }
    let Error::Storage(src) = e else { return false };
    match src.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => {
            matches!(
                db.code().as_deref(),
                Some("40001" | "40P01" | "5" | "6" | "517")
            )
        }
        _ => false,
    }
}
