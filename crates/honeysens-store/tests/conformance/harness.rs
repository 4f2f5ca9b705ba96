//! Opens a fresh, empty database per test on each backend.
//!
//! SQLite always runs (a temp file). PostgreSQL and MariaDB run when
//! `HONEYSENS_TEST_POSTGRES_URL` / `HONEYSENS_TEST_MYSQL_URL` are set (a role that may create
//! databases); each test creates its own database and drops it afterwards. Under `CI=true` a
//! missing URL fails the test instead of skipping it.

use honeysens_core::Store;
use honeysens_store::OpenOptions;
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::Arc;

pub struct TestDb {
    pub store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Postgres { admin: String, name: String },
    MySql { admin: String, name: String },
}

fn url_for(kind: &str) -> Option<String> {
    let var = format!("HONEYSENS_TEST_{kind}_URL");
    match std::env::var(&var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set: under CI=true every backend must be tested")
        }
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("valid database URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

fn unique_name() -> String {
    format!("hs_test_{}", uuid::Uuid::new_v4().simple())
}

impl TestDb {
    pub async fn sqlite() -> Option<TestDb> {
        let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
        let store = honeysens_store::open(
            &format!("sqlite://{}", path.display()),
            &OpenOptions::default(),
        )
        .await
        .expect("open sqlite");
        Some(TestDb {
            store,
            cleanup: Cleanup::File(path),
        })
    }

    pub async fn postgres() -> Option<TestDb> {
        let admin = url_for("POSTGRES")?;
        let name = unique_name();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        conn.close().await.ok();
        let store = honeysens_store::open(&with_database(&admin, &name), &OpenOptions::default())
            .await
            .expect("open postgres");
        Some(TestDb {
            store,
            cleanup: Cleanup::Postgres { admin, name },
        })
    }

    pub async fn mysql() -> Option<TestDb> {
        Self::mysql_with(false).await
    }

    /// MariaDB used as MySQL 8 would be: without `INSERT … RETURNING`.
    pub async fn mysql_no_returning() -> Option<TestDb> {
        Self::mysql_with(true).await
    }

    async fn mysql_with(no_returning: bool) -> Option<TestDb> {
        let admin = url_for("MYSQL")?;
        let name = unique_name();
        let mut conn = sqlx::MySqlConnection::connect(&admin)
            .await
            .expect("connect to MariaDB");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut conn)
        .await
        .expect("create database");
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        let store: Arc<dyn Store> = if no_returning {
            let store = honeysens_store::MySqlStore::connect(&url, 8)
                .await
                .expect("open mysql")
                .without_returning();
            store.migrate().await.expect("migrate mysql");
            Arc::new(store)
        } else {
            honeysens_store::open(&url, &OpenOptions::default())
                .await
                .expect("open mysql")
        };
        Some(TestDb {
            store,
            cleanup: Cleanup::MySql { admin, name },
        })
    }

    /// Closes the store and removes its database.
    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin, name } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            }
            Cleanup::MySql { admin, name } => {
                if let Ok(mut conn) = sqlx::MySqlConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            }
        }
    }
}
