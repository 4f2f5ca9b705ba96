//! Steps shared by several subcommands: opening the store, loading the CA, finding divisions.

use crate::CA_NAME;
use crate::config::{Settings, redacted, url_password};
use crate::error::AppError;
use crate::files;
use honeysens_core::Store;
use honeysens_core::model::{Division, DivisionSpec};
use honeysens_core::pki::CertificateAuthority;
use honeysens_store::OpenOptions;
use std::sync::Arc;

/// The division the first admin and, by default, new sensors and users belong to.
pub const DEFAULT_DIVISION: &str = "Default";

/// Opens the configured store and applies pending migrations (an empty database is
/// initialised). Creates the data directory first when the database lives in it.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, AppError> {
    if settings.database_in_data_dir() {
        files::ensure_private_dir(&settings.data_dir)?;
    }
    let url = settings.database_url();
    let store = honeysens_store::open(&url, &OpenOptions::default())
        .await
        .map_err(|e| {
            AppError::with(format!("cannot open database {}", redacted(&url)), &e)
                .scrub(url_password(&url))
        })?;
    tracing::info!(database = %redacted(&url), backend = ?store.backend(), "database ready");
    Ok(store)
}

/// Loads the CA from the store, creating it on first use.
pub async fn load_ca(store: &dyn Store) -> Result<CertificateAuthority, AppError> {
    CertificateAuthority::load_or_create(store, CA_NAME)
        .await
        .map_err(|e| AppError::with("cannot load or create the certificate authority", &e))
}

/// The division called `name`, created if missing (also when another process creates it at
/// the same moment).
pub async fn division_named(store: &dyn Store, name: &str) -> Result<Division, AppError> {
    let find = || async {
        Ok::<_, AppError>(
            store
                .list_divisions()
                .await?
                .into_iter()
                .find(|d| d.name == name),
        )
    };
    if let Some(d) = find().await? {
        return Ok(d);
    }
    let spec = DivisionSpec {
        name: name.to_owned(),
    };
    spec.validate()?;
    match store.create_division(&spec).await {
        Ok(d) => {
            tracing::info!(division = %d.name, "created division");
            Ok(d)
        }
        Err(e) if e.kind() == honeysens_core::ErrorKind::Conflict => find()
            .await?
            .ok_or_else(|| AppError::runtime(format!("division {name:?} vanished"))),
        Err(e) => Err(e.into()),
    }
}
