//! The operator's subcommands: `migrate`, `healthcheck`, `ca export`, `user add`,
//! `sensor add`.

use crate::config::{Settings, redacted, show};
use crate::error::{AppError, chain};
use crate::{files, setup};
use honeysens_core::Store;
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::{Role, SensorAuthMode, SensorSpec, UserSpec};
use honeysens_core::password;
use honeysens_core::pki::{self, CertificateAuthority};
use honeysens_http::client::{SensorAuth, SensorClient};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Certificate file of a sensor bundle.
pub const SENSOR_CERT: &str = "sensor.crt";
/// Private key file of a sensor bundle.
pub const SENSOR_KEY: &str = "sensor.key";
/// HMAC secret file of a sensor bundle.
pub const SENSOR_SECRET: &str = "sensor.secret";
/// CA certificate file of a sensor bundle.
pub const CA_CERT: &str = "ca.crt";

/// `migrate`: apply pending migrations and exit.
pub async fn migrate(settings: &Settings) -> Result<(), AppError> {
    let store = setup::open_store(settings).await?;
    store.close().await;
    println!(
        "migrations applied to {}",
        redacted(&settings.database_url())
    );
    Ok(())
}

/// `healthcheck`: `GET <url>/api/system/health`, trusting only the given CA certificate.
pub async fn healthcheck(
    settings: &Settings,
    url: Option<&str>,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<(), AppError> {
    let url = url.map_or_else(|| settings.local_url(), str::to_owned);
    let ca_path = ca.map_or_else(|| settings.ca_cert_path(), Path::to_path_buf);
    let ca_pem = files::read(&ca_path)?;
    let client = SensorClient::new(&url, &ca_pem, SensorAuth::None, None).map_err(|e| {
        AppError::with(
            format!("cannot use the CA certificate {}", show(&ca_path)),
            &e,
        )
    })?;
    let call = client.call(
        honeysens_http::client::Method::GET,
        "/api/system/health",
        None,
    );
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(_)) => {
            println!("ok");
            Ok(())
        }
        Ok(Err(e)) => Err(AppError::runtime(format!(
            "{url} is not healthy: {}",
            chain(&e)
        ))),
        Err(_) => Err(AppError::runtime(format!(
            "{url} did not answer within {} s",
            timeout.as_secs()
        ))),
    }
}

/// `ca export`: the CA certificate (created if there is none yet) to stdout or a file.
pub async fn ca_export(settings: &Settings, out: Option<&Path>) -> Result<(), AppError> {
    let store = setup::open_store(settings).await?;
    let result = setup::load_ca(store.as_ref()).await;
    store.close().await;
    let ca = result?;
    match out {
        Some(path) => files::write_file(path, ca.cert_pem().as_bytes(), files::PUBLIC_MODE)?,
        None => print!("{}", ca.cert_pem()),
    }
    Ok(())
}

/// What `user add` creates.
#[derive(Debug)]
pub struct NewUser {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Division names; `Default` when empty. Missing divisions are created.
    pub divisions: Vec<String>,
    /// Read the password from the first line of stdin instead of generating one.
    pub password_stdin: bool,
}

/// `user add`.
pub async fn user_add(settings: &Settings, new: &NewUser) -> Result<(), AppError> {
    UserSpec {
        name: new.name.clone(),
        full_name: None,
        email: None,
        role: new.role,
        divisions: Vec::new(),
    }
    .validate()?;
    let (password, generated) = if new.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| AppError::with("cannot read the password from stdin", &e))?;
        let pw = line.trim_end_matches(['\n', '\r']).to_owned();
        if pw.is_empty() {
            return Err(AppError::usage("no password on stdin"));
        }
        password::check_password(&pw).map_err(|e| AppError::usage(e.to_string()))?;
        (pw, false)
    } else {
        (password::generate_password(), true)
    };
    let hash = password::hash_password(&password)?;
    let store = setup::open_store(settings).await?;
    let result = create_user(store.as_ref(), new, &hash, generated).await;
    store.close().await;
    let id = result?;
    if generated {
        println!(
            "User {} created (id {id}, role {}); password: {password} (shown once; change it \
             at first login)",
            new.name, new.role
        );
    } else {
        println!("User {} created (id {id}, role {})", new.name, new.role);
    }
    Ok(())
}

async fn create_user(
    store: &dyn Store,
    new: &NewUser,
    hash: &str,
    must_change: bool,
) -> Result<i64, AppError> {
    let names = if new.divisions.is_empty() {
        vec![setup::DEFAULT_DIVISION.to_owned()]
    } else {
        new.divisions.clone()
    };
    let mut divisions: Vec<DivisionId> = Vec::new();
    for name in &names {
        divisions.push(setup::division_named(store, name).await?.id);
    }
    let spec = UserSpec {
        name: new.name.clone(),
        full_name: None,
        email: None,
        role: new.role,
        divisions,
    };
    spec.validate()?;
    let user = match store.create_user(&spec, hash).await {
        Ok(u) => u,
        Err(e) if e.kind() == honeysens_core::ErrorKind::Conflict => {
            return Err(AppError::runtime(format!(
                "user {:?} already exists",
                new.name
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if must_change {
        store.set_password_hash(user.id, hash, true).await?;
    }
    tracing::info!(user = %user.spec.name, role = %user.spec.role, "created user");
    Ok(user.id.0)
}

/// What `sensor add` creates.
#[derive(Debug)]
pub struct NewSensor {
    /// Sensor name, unique in its division.
    pub name: String,
    /// Division name; created if missing.
    pub division: String,
    /// Directory for the sensor's files.
    pub out: PathBuf,
    /// Authenticate with an HMAC secret instead of a client certificate.
    pub hmac: bool,
}

/// `sensor add`: creates the sensor, issues its credentials and writes them to `out`.
/// Existing credential files are never overwritten.
pub async fn sensor_add(settings: &Settings, new: &NewSensor) -> Result<(), AppError> {
    let auth = if new.hmac {
        SensorAuthMode::Hmac
    } else {
        SensorAuthMode::Certificate
    };
    let mut spec = SensorSpec::new(new.name.clone(), DivisionId(0));
    spec.auth = auth;
    spec.validate()?;
    let secret_files: &[&str] = match auth {
        SensorAuthMode::Hmac => &[SENSOR_SECRET],
        SensorAuthMode::Certificate => &[SENSOR_CERT, SENSOR_KEY],
    };
    for f in secret_files {
        let path = new.out.join(f);
        if path.exists() {
            return Err(AppError::usage(format!(
                "{} exists already; choose another --out directory",
                show(&path)
            )));
        }
    }
    files::ensure_private_dir(&new.out)?;

    let store = setup::open_store(settings).await?;
    let result = create_sensor(store.as_ref(), new, spec).await;
    store.close().await;
    let id = result?;
    println!("{id}");
    eprintln!(
        "sensor {:?} (id {id}, {} authentication): credentials written to {}",
        new.name,
        auth.as_str(),
        show(&new.out)
    );
    Ok(())
}

async fn create_sensor(
    store: &dyn Store,
    new: &NewSensor,
    mut spec: SensorSpec,
) -> Result<SensorId, AppError> {
    let ca = setup::load_ca(store).await?;
    let division = setup::division_named(store, &new.division).await?;
    spec.division_id = division.id;
    let sensor = match store.create_sensor(&spec).await {
        Ok(s) => s,
        Err(e) if e.kind() == honeysens_core::ErrorKind::Conflict => {
            return Err(AppError::runtime(format!(
                "a sensor named {:?} exists already in division {:?}",
                new.name, division.name
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = issue_credentials(store, &ca, sensor.id, spec.auth, &new.out).await {
        // Don't leave a sensor behind that nobody has credentials for.
        if let Err(cleanup) = store.delete_sensor(sensor.id).await {
            tracing::warn!(sensor = %sensor.id, error = %cleanup, "could not remove the sensor again");
        }
        return Err(e);
    }
    tracing::info!(sensor = %sensor.id, name = %new.name, division = %division.name, "created sensor");
    Ok(sensor.id)
}

async fn issue_credentials(
    store: &dyn Store,
    ca: &CertificateAuthority,
    id: SensorId,
    auth: SensorAuthMode,
    out: &Path,
) -> Result<(), AppError> {
    match auth {
        SensorAuthMode::Certificate => {
            let issued = ca
                .issue_sensor(id, pki::SENSOR_CERT_DAYS)
                .map_err(|e| AppError::with("cannot issue the sensor certificate", &e))?;
            store.record_certificate(&issued.record).await?;
            files::write_file(
                &out.join(SENSOR_KEY),
                issued.key_pem.as_bytes(),
                files::SECRET_MODE,
            )?;
            files::write_file(
                &out.join(SENSOR_CERT),
                issued.cert_pem.as_bytes(),
                files::PUBLIC_MODE,
            )?;
        }
        SensorAuthMode::Hmac => {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            store.set_sensor_secret(id, Some(&secret)).await?;
            files::write_file(
                &out.join(SENSOR_SECRET),
                secret.as_bytes(),
                files::SECRET_MODE,
            )?;
        }
    }
    files::write_file(
        &out.join(CA_CERT),
        ca.cert_pem().as_bytes(),
        files::PUBLIC_MODE,
    )
}
