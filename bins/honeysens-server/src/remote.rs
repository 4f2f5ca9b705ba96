//! `remote …`: management of a running server over its API with the typed client, for
//! scripts and operators away from the server's data directory. Authenticates with an API
//! token from `HONEYSENS_TOKEN` (never a command-line argument, which other users could read
//! from the process list).

use crate::config::{Settings, show};
use crate::error::{AppError, chain};
use crate::files;
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::{SensorAuthMode, SensorSpec};
use honeysens_core::protocol::SensorBundle;
use honeysens_http::mgmt::sensors::SensorQuery;
use honeysens_http::mgmt_client::ManagementClient;
use std::path::Path;

/// Environment variable holding the API token.
pub const TOKEN_ENV: &str = "HONEYSENS_TOKEN";

/// Where and how to reach the server.
pub struct Target<'a> {
    /// Server URL; default: the local listen address.
    pub url: Option<&'a str>,
    /// CA certificate; default: the data directory's.
    pub ca: Option<&'a Path>,
}

fn client(settings: &Settings, target: &Target<'_>) -> Result<ManagementClient, AppError> {
    let url = target
        .url
        .map_or_else(|| settings.local_url(), str::to_owned);
    let ca_path = target
        .ca
        .map_or_else(|| settings.ca_cert_path(), Path::to_path_buf);
    let ca_pem = files::read(&ca_path)?;
    let token = std::env::var(TOKEN_ENV)
        .map_err(|_| AppError::usage(format!("set {TOKEN_ENV} to an API token")))?;
    let c = ManagementClient::new(&url, &ca_pem).map_err(|e| {
        AppError::with(
            format!("cannot use the CA certificate {}", show(&ca_path)),
            &e,
        )
    })?;
    Ok(c.with_token(token))
}

fn failed(what: &str, e: &honeysens_http::client::ClientError) -> AppError {
    AppError::runtime(format!("{what}: {}", chain(e)))
}

/// `remote sensors`: one JSON object per line for every sensor the token may see.
pub async fn list_sensors(settings: &Settings, target: &Target<'_>) -> Result<(), AppError> {
    let c = client(settings, target)?;
    let mut query = SensorQuery::default();
    loop {
        let page = c
            .list_sensors(&query)
            .await
            .map_err(|e| failed("cannot list sensors", &e))?;
        for s in &page.items {
            println!("{}", serde_json::to_string(s).unwrap_or_default());
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(()),
        }
    }
}

/// `remote service-upload`: uploads a service package and prints the answer (service,
/// whether it was created, the new revisions with their image digests) as JSON.
pub async fn upload_service_package(
    settings: &Settings,
    target: &Target<'_>,
    file: &Path,
) -> Result<(), AppError> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| AppError::with(format!("cannot read {}", file.display()), &e))?;
    let c = client(settings, target)?;
    let answer = c
        .upload_service_package(bytes)
        .await
        .map_err(|e| failed("cannot upload the package", &e))?;
    println!("{}", serde_json::to_string(&answer).unwrap_or_default());
    Ok(())
}

/// `remote sensor-add`: creates a sensor and writes its configuration bundle (mode 0600).
pub async fn add_sensor(
    settings: &Settings,
    target: &Target<'_>,
    name: &str,
    division: i64,
    hmac: bool,
    out: &Path,
) -> Result<(), AppError> {
    let c = client(settings, target)?;
    let spec = SensorSpec {
        auth: if hmac {
            SensorAuthMode::Hmac
        } else {
            SensorAuthMode::Certificate
        },
        ..SensorSpec::new(name, DivisionId(division))
    };
    let created = c
        .create_sensor(&spec)
        .await
        .map_err(|e| failed("cannot create the sensor", &e))?;
    write_bundle(out, &created.bundle)?;
    println!("{}", created.sensor.id);
    Ok(())
}

/// `remote sensor-config`: downloads a new configuration bundle (replacing the sensor's
/// credentials) and writes it (mode 0600).
pub async fn sensor_config(
    settings: &Settings,
    target: &Target<'_>,
    id: i64,
    out: &Path,
) -> Result<(), AppError> {
    let c = client(settings, target)?;
    let bundle = c
        .sensor_config(SensorId(id))
        .await
        .map_err(|e| failed("cannot download the bundle", &e))?;
    write_bundle(out, &bundle)
}

fn write_bundle(out: &Path, bundle: &SensorBundle) -> Result<(), AppError> {
    let json = serde_json::to_vec_pretty(bundle)
        .map_err(|e| AppError::with("cannot encode the bundle", &e))?;
    files::write_file(out, &json, files::SECRET_MODE)
}
