//! `honeysens-server`: the reference HoneySens server.
//!
//! `serve` (the default) keeps its state in the data directory (default `./data`): the
//! embedded SQLite database unless `--database-url` names PostgreSQL or MySQL/MariaDB, the CA
//! certificate `ca.crt` for sensors and clients, and the generated server certificate
//! `server.crt`/`server.key`. On first start it creates the CA, the division `Default` and the
//! user `admin`. It runs the HTTPS server until SIGTERM or Ctrl-C.
//!
//! Settings are layered: defaults < TOML file (`--config`) < `HONEYSENS_*` environment <
//! flags. Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

mod admin;
mod config;
mod error;
mod files;
mod package;
mod remote;
mod serve;
mod setup;

use clap::{Parser, Subcommand, ValueEnum};
use config::{GlobalArgs, LogFormat, Settings};
use error::AppError;
use honeysens_core::model::Role;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Common name of the CA created on first start.
pub const CA_NAME: &str = "HoneySens CA";

#[derive(Parser)]
#[command(name = "honeysens-server", version, about = "HoneySens server")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Initialise storage, CA and certificates and run the HTTPS server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Check that a running server answers /api/system/health (exit 0 if it does).
    Healthcheck {
        /// Server URL [default: https://<listen address, 0.0.0.0 as 127.0.0.1>].
        #[arg(long)]
        url: Option<String>,
        /// CA certificate to trust [default: <data-dir>/ca.crt].
        #[arg(long, value_name = "PATH")]
        ca: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        timeout: u64,
    },
    /// The internal certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// User accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Sensors.
    #[command(subcommand)]
    Sensor(SensorCommand),
    /// Build a service package from a honeypot binary (no Docker needed).
    ServicePackage(package::PackageArgs),
    /// Manage a running server through its API (token in HONEYSENS_TOKEN).
    Remote {
        /// Server URL [default: https://<listen address, 0.0.0.0 as 127.0.0.1>].
        #[arg(long)]
        url: Option<String>,
        /// CA certificate to trust [default: <data-dir>/ca.crt].
        #[arg(long, value_name = "PATH")]
        ca: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        command: RemoteCommand,
    },
}

#[derive(Subcommand)]
enum RemoteCommand {
    /// Print every visible sensor, one JSON object per line.
    Sensors,
    /// Create a sensor and write its configuration bundle (JSON, mode 0600); prints its id.
    SensorAdd {
        /// Sensor name, unique in its division.
        #[arg(long)]
        name: String,
        /// Division id.
        #[arg(long)]
        division: i64,
        /// Authenticate with an HMAC secret instead of a certificate.
        #[arg(long)]
        hmac: bool,
        /// Where to write the bundle.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Download a new configuration bundle (replaces the sensor's credentials).
    SensorConfig {
        /// Sensor id.
        #[arg(long)]
        id: i64,
        /// Where to write the bundle.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Upload a service package (see `service-package`); prints the result as JSON.
    ServiceUpload {
        /// The package (tar or tar.gz).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Print the CA certificate (PEM), creating the CA if there is none yet.
    Export {
        /// Write it to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; prints a generated password unless --password-stdin is given.
    Add {
        /// Login name.
        #[arg(long)]
        name: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Division (repeatable; created if missing) [default: Default].
        #[arg(long = "division", value_name = "NAME")]
        divisions: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum SensorCommand {
    /// Create a sensor and write its credentials (certificate or HMAC secret) and ca.crt to
    /// --out; prints the sensor id.
    Add {
        /// Sensor name, unique in its division.
        #[arg(long)]
        name: String,
        /// Division (created if missing).
        #[arg(long, default_value = setup::DEFAULT_DIVISION, value_name = "NAME")]
        division: String,
        /// Directory for sensor.crt, sensor.key (or sensor.secret) and ca.crt.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Authenticate with an HMAC secret (for networks whose proxies intercept TLS).
        #[arg(long)]
        hmac: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Manager,
    Observer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Manager => Role::Manager,
            RoleArg::Observer => Role::Observer,
        }
    }
}

/// Logs to stdout for `serve` (the container convention), to stderr for the other commands so
/// their output stays machine-readable. Level from `RUST_LOG`; default `info` for `serve`,
/// `warn` otherwise.
fn init_logging(format: LogFormat, serve: bool) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let default = if serve { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (writer, ansi) = if serve {
        (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        )
    } else {
        (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        )
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    if let Err(e) = result {
        eprintln!("honeysens-server: logging unavailable: {e}");
    }
}

async fn run(cli: Cli) -> Result<(), AppError> {
    if let Some(Command::ServicePackage(args)) = &cli.command {
        // Needs no settings, store or logging: a pure file transformation.
        return package::service_package(args);
    }
    let settings = Settings::load(&cli.global)?;
    let command = cli.command.unwrap_or(Command::Serve);
    init_logging(settings.log_format, matches!(command, Command::Serve));
    match command {
        Command::Serve => serve::serve(&settings).await,
        Command::ServicePackage(args) => package::service_package(&args),
        Command::Migrate => admin::migrate(&settings).await,
        Command::Healthcheck { url, ca, timeout } => {
            let timeout = Duration::from_secs(timeout.max(1));
            admin::healthcheck(&settings, url.as_deref(), ca.as_deref(), timeout).await
        }
        Command::Ca(CaCommand::Export { out }) => admin::ca_export(&settings, out.as_deref()).await,
        Command::User(UserCommand::Add {
            name,
            role,
            divisions,
            password_stdin,
        }) => {
            let new = admin::NewUser {
                name,
                role: role.into(),
                divisions,
                password_stdin,
            };
            admin::user_add(&settings, &new).await
        }
        Command::Sensor(SensorCommand::Add {
            name,
            division,
            out,
            hmac,
        }) => {
            let new = admin::NewSensor {
                name,
                division,
                out,
                hmac,
            };
            admin::sensor_add(&settings, &new).await
        }
        Command::Remote { url, ca, command } => {
            let target = remote::Target {
                url: url.as_deref(),
                ca: ca.as_deref(),
            };
            match command {
                RemoteCommand::Sensors => remote::list_sensors(&settings, &target).await,
                RemoteCommand::SensorAdd {
                    name,
                    division,
                    hmac,
                    out,
                } => remote::add_sensor(&settings, &target, &name, division, hmac, &out).await,
                RemoteCommand::SensorConfig { id, out } => {
                    remote::sensor_config(&settings, &target, id, &out).await
                }
                RemoteCommand::ServiceUpload { file } => {
                    remote::upload_service_package(&settings, &target, &file).await
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("honeysens-server: {e}");
            ExitCode::from(e.exit_code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_before_and_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "honeysens-server",
            "--data-dir",
            "/d",
            "sensor",
            "add",
            "--name",
            "s1",
            "--out",
            "/o",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert_eq!(cli.global.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(cli.global.listen, Some("127.0.0.1:0".parse().unwrap()));
        let Some(Command::Sensor(SensorCommand::Add { division, hmac, .. })) = cli.command else {
            unreachable!()
        };
        assert_eq!(division, "Default");
        assert!(!hmac);
        let cli = Cli::try_parse_from(["honeysens-server", "--hostname", "a,b", "--hostname", "c"])
            .unwrap();
        assert_eq!(cli.global.hostnames, vec!["a", "b", "c"]);
        assert!(cli.command.is_none());
        assert!(Cli::try_parse_from(["honeysens-server", "user", "add", "--name", "x"]).is_err());
    }
}
