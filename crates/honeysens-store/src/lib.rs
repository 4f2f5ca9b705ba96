//! # honeysens-store
//!
//! Interchangeable persistence for HoneySens: the [`honeysens_core::Store`] trait implemented on
//! embedded SQLite (the default), PostgreSQL and MySQL/MariaDB, with sqlx runtime queries and
//! one migrations folder per backend (`migrations/{sqlite,postgres,mysql}`, matching file stems).
//! The backend is chosen at run time from the URL. SQLite's bulk event insert steps one prepared
//! statement per row on sqlx's own connection handle (through rusqlite), and all SQLite write
//! transactions share one writer connection; PostgreSQL's inserts a chunk from one array per
//! column. Each event batch's sensors are checked once per batch, not by a foreign key per row.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use honeysens_core::model::DivisionSpec;
//!
//! let store = honeysens_store::open("sqlite::memory:", &Default::default()).await.unwrap();
//! let div = store.create_division(&DivisionSpec { name: "IT".into() }).await.unwrap();
//! assert_eq!(store.get_division(div.id).await.unwrap().name, "IT");
//! # });
//! ```

#[doc(hidden)]
pub mod blobs;
mod error;
pub mod imp;
mod mysql;
mod postgres;
mod rows;
mod sqlite;

pub use blobs::FsBlobStore;
pub use error::OpenError;
pub use mysql::MySqlStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use honeysens_core::Store;
use std::sync::Arc;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Pool size (SQLite in-memory databases always use one connection).
    pub max_connections: u32,
    /// Apply pending migrations after connecting.
    pub migrate: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_connections: 8,
            migrate: true,
        }
    }
}

/// Opens the store named by `url`: `sqlite://path/to/file.db` (created if missing),
/// `sqlite::memory:`, `postgres://…` / `postgresql://…`, or `mysql://…` / `mariadb://…`.
pub async fn open(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>, OpenError> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let store: Arc<dyn Store> = match scheme.as_str() {
        "sqlite" => Arc::new(SqliteStore::connect(url, options.max_connections).await?),
        "postgres" | "postgresql" => {
            Arc::new(PostgresStore::connect(url, options.max_connections).await?)
        }
        "mysql" | "mariadb" => {
            let url = match url.strip_prefix("mariadb:") {
                Some(rest) => format!("mysql:{rest}"),
                None => url.to_owned(),
            };
            Arc::new(MySqlStore::connect(&url, options.max_connections).await?)
        }
        other => return Err(OpenError::UnsupportedScheme(other.to_owned())),
    };
    if options.migrate {
        store.migrate().await.map_err(OpenError::Store)?;
    }
    Ok(store)
}
