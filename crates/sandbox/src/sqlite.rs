//! The SQLite file behind each sandbox: opened the same way for every API, with a schema
//! version recorded in `PRAGMA user_version`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::marketo::SandboxError;

/// The one schema version each sandbox knows so far.
const SCHEMA_VERSION: i64 = 1;

/// Opens (creating if needed) `DIR/FILE`; a new database gets `schema`. Returns the pool,
/// the file's path and whether the database was new. A file written by a newer sandbox is
/// refused rather than misread.
pub(crate) async fn open(
    data_dir: &Path,
    file: &str,
    schema: &str,
) -> Result<(SqlitePool, PathBuf, bool), SandboxError> {
    std::fs::create_dir_all(data_dir).map_err(|source| SandboxError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;
    let path = data_dir.join(file);
    let db_err = |source| SandboxError::Database {
        path: path.display().to_string(),
        source,
    };
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(db_err)?
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(db_err)?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&pool)
        .await
        .map_err(db_err)?;
    if version > SCHEMA_VERSION {
        return Err(SandboxError::SchemaTooNew {
            path: path.display().to_string(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    let fresh = version == 0;
    if fresh {
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema))
            .execute(&pool)
            .await
            .map_err(db_err)?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {SCHEMA_VERSION}"
        )))
        .execute(&pool)
        .await
        .map_err(db_err)?;
    }
    Ok((pool, path, fresh))
}

/// A value of the `meta` table every sandbox keeps (clock offsets, quota counts, the org id).
pub(crate) async fn meta(pool: &SqlitePool, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
        .bind(key)
        .fetch_optional(pool)
        .await
}

pub(crate) async fn set_meta(pool: &SqlitePool, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(pool)
        .await?;
    Ok(())
}
