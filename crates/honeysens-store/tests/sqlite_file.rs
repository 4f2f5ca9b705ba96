//! SQLite-specific behaviour: the database file holds secrets and must be private.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[cfg(unix)]
#[tokio::test]
async fn new_database_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("hs-mode-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("honeysens.db");
    let store = honeysens_store::open(&format!("sqlite://{}", path.display()), &Default::default())
        .await
        .unwrap();
    store.ping().await.unwrap();
    for file in [path.clone(), dir.join("honeysens.db-wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
