//! `honeysens-server`: the reference HoneySens server.
//!
//! Today it initialises the data directory and the database (embedded SQLite by default,
//! PostgreSQL or MySQL/MariaDB by URL), applies migrations and stays up until SIGTERM/Ctrl-C.
//! The HTTPS APIs arrive with the PKI/server issue.

use clap::{Parser, Subcommand};
use honeysens_store::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "honeysens-server", version, about = "HoneySens server")]
struct Cli {
    /// Directory for the embedded database and server state.
    #[arg(
        long,
        env = "HONEYSENS_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// Database URL (sqlite://…, postgres://…, mysql://…); defaults to SQLite in the data dir.
    #[arg(long, env = "HONEYSENS_DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Initialise storage and run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

fn database_url(cli: &Cli) -> String {
    cli.database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", cli.data_dir.join("honeysens.db").display()))
}

/// The URL without its password, safe to log.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    std::fs::create_dir_all(&cli.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", cli.data_dir.display()))?;
    let url = database_url(&cli);
    let store = honeysens_store::open(&url, &OpenOptions::default())
        .await
        .map_err(|e| format!("cannot open database {}: {e}", redacted(&url)))?;
    tracing::info!(database = %redacted(&url), backend = ?store.backend(), "database ready");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            println!("migrations applied to {}", redacted(&url));
        }
        Command::Serve => {
            let users = store.count_users().await.map_err(|e| e.to_string())?;
            println!(
                "honeysens-server: storage ready at {} ({users} users); HTTPS API not yet available",
                redacted(&url)
            );
            shutdown_signal().await;
            tracing::info!("shutting down");
            store.close().await;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("honeysens-server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redacted("postgres://hs:secret@db/hs"),
            "postgres://hs:***@db/hs"
        );
        assert_eq!(
            super::redacted("sqlite://./data/x.db"),
            "sqlite://./data/x.db"
        );
    }
}
