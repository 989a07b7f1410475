//! One writer at a time on a shared PostgreSQL state, across machines: the state's writer
//! lock is a session-level advisory lock held by a connection of its own. It is released
//! when the holder lets it go, and when its process dies however it dies: the server ends
//! the session as the connection closes (at once after `kill -9`; after the TCP keepalive
//! below when a machine vanishes). The connection carries the holder's name, so a process
//! refused the lock can say who has it. (With the SQLite state, a lock file does this.)

use sqlx::{Acquire, Connection, Executor};

use crate::{Backend, Result, StateStore, StoreError};

/// The session lock's key; a transaction's write lock (`PG_WRITE_LOCK`) is another, as a
/// session holding this one must not stop every other process's writes.
const WRITER_KEY: i64 = 0x726f_7374_6572_0001;

/// The writer lock, held while this lives.
#[derive(Debug)]
pub struct WriterLock {
    conn: sqlx::AnyConnection,
}

impl WriterLock {
    /// Whether the lock is still held: its session answers. A holder that finds it lost
    /// (the server ended the session, so another process may hold the lock now) must stop
    /// writing.
    pub async fn held(&mut self) -> bool {
        self.conn.ping().await.is_ok()
    }
}

impl StateStore {
    /// Takes the state's writer lock for `holder` (a name other processes are told), or
    /// `None` if another process has it. PostgreSQL only.
    pub async fn try_writer_lock(&self, holder: &str) -> Result<Option<WriterLock>> {
        if self.backend != Backend::Postgres {
            return Err(StoreError::Corrupt {
                what: "writer lock",
                detail: "the database writer lock is PostgreSQL's; SQLite uses a lock file".into(),
            });
        }
        let mut conn = self.pool.acquire().await?.detach();
        // Who holds it, for others' messages; and keepalives so that a vanished machine's
        // session ends within about 25 s.
        let name: String = holder
            .chars()
            .filter(|c| !c.is_control())
            .take(60)
            .collect();
        sqlx::query("SELECT set_config('application_name', $1, false)")
            .bind(name)
            .execute(conn.acquire().await?)
            .await?;
        conn.execute(
            "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3;",
        )
        .await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(WRITER_KEY)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then_some(WriterLock { conn }))
    }

    /// Who holds the writer lock, as it named itself, and since when (RFC 3339). Advisory
    /// locks are kept per database, and so is this answer: another Roster state on the same
    /// server has a holder of its own.
    pub async fn writer_lock_holder(&self) -> Result<Option<(String, String)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT a.application_name,
                    to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::text::bigint = $1 AND l.objid::text::bigint = $2 AND l.objsubid = 1",
        )
        .bind(WRITER_KEY >> 32)
        .bind(WRITER_KEY & 0xffff_ffff)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }
}
