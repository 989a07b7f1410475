//! Who may change a shared PostgreSQL state, across machines, as session-level advisory
//! locks each held by a connection of its own: the state's writer lock (a CLI command that
//! changes things holds it alone; `roster serve` processes hold it shared, beside each
//! other), the scheduler's (one `roster serve` queues the scheduled runs), and each
//! instance's (its runs, one at a time). A lock is released when the holder lets it go, and
//! when its process dies however it dies: the server ends the session as the connection
//! closes (at once after `kill -9`; after the TCP keepalive below when a machine vanishes).
//! The connection carries the holder's name, so a process refused the lock can say who has
//! it. (With the SQLite state, a lock file does this.)

use sqlx::{Acquire, Connection, Executor};

use crate::{Backend, Result, StateStore, StoreError};

/// The session lock's key; a transaction's write lock (`PG_WRITE_LOCK`) is another, as a
/// session holding this one must not stop every other process's writes.
const WRITER_KEY: i64 = 0x726f_7374_6572_0001;
/// The scheduler's session lock: whoever holds it queues the scheduled runs.
const SCHEDULER_KEY: i64 = 0x726f_7374_6572_0002;
/// Setting up the job queue's tables.
const JOB_QUEUE_SETUP_KEY: i64 = 0x726f_7374_6572_0003;

/// A session-level advisory lock (the writer lock, the scheduler's, an instance's), held
/// while this lives.
#[derive(Debug)]
pub struct SessionLock {
    conn: sqlx::AnyConnection,
}

impl SessionLock {
    /// Whether the lock is still held: its session answers. A holder that finds it lost
    /// (the server ended the session, so another process may hold the lock now) must stop
    /// acting on it.
    pub async fn held(&mut self) -> bool {
        self.conn.ping().await.is_ok()
    }
}

/// Which of the state's session locks, and how it is taken.
enum Which<'a> {
    /// The writer lock, alone: a CLI command that changes things.
    Writer,
    /// The writer lock, beside other `roster serve` processes: they share the state's work
    /// (each instance's runs serialised by its own lock) and keep CLI writers out.
    SharedWriter,
    /// The scheduler's: the one process that queues scheduled runs.
    Scheduler,
    /// One instance's: its runs, one at a time across processes. Waited for.
    Instance(&'a str),
    /// Setting up the job queue's tables, one process at a time. Waited for.
    JobQueueSetup,
}

impl StateStore {
    /// A connection of its own, named for `holder` (others' messages say who holds what)
    /// and with keepalives so that a vanished machine's session ends within about 25 s.
    async fn lock_session(&self, holder: &str) -> Result<sqlx::AnyConnection> {
        if self.backend != Backend::Postgres {
            return Err(StoreError::Corrupt {
                what: "session lock",
                detail: "session locks are PostgreSQL's; SQLite uses a lock file".into(),
            });
        }
        let mut conn = self.pool.acquire().await?.detach();
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
        Ok(conn)
    }

    async fn session_lock(&self, holder: &str, which: Which<'_>) -> Result<Option<SessionLock>> {
        let mut conn = self.lock_session(holder).await?;
        let got: bool = match which {
            Which::Writer => {
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(WRITER_KEY)
                    .fetch_one(&mut conn)
                    .await?
            }
            Which::SharedWriter => {
                sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1)")
                    .bind(WRITER_KEY)
                    .fetch_one(&mut conn)
                    .await?
            }
            Which::Scheduler => {
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(SCHEDULER_KEY)
                    .fetch_one(&mut conn)
                    .await?
            }
            Which::Instance(name) => {
                sqlx::query_scalar(
                    "SELECT pg_advisory_lock(hashtextextended('roster-instance:' || $1, 0)) IS NOT NULL",
                )
                .bind(name)
                .fetch_one(&mut conn)
                .await?
            }
            Which::JobQueueSetup => {
                sqlx::query_scalar("SELECT pg_advisory_lock($1) IS NOT NULL")
                    .bind(JOB_QUEUE_SETUP_KEY)
                    .fetch_one(&mut conn)
                    .await?
            }
        };
        Ok(got.then_some(SessionLock { conn }))
    }

    /// Takes the state's writer lock for `holder` (a name other processes are told), or
    /// `None` if another process has it. PostgreSQL only.
    pub async fn try_writer_lock(&self, holder: &str) -> Result<Option<SessionLock>> {
        self.session_lock(holder, Which::Writer).await
    }

    /// Takes the writer lock shared with other `roster serve` processes, or `None` while a
    /// CLI command holds it alone.
    pub async fn try_shared_writer_lock(&self, holder: &str) -> Result<Option<SessionLock>> {
        self.session_lock(holder, Which::SharedWriter).await
    }

    /// Takes the scheduler's lock, or `None` if another process schedules.
    pub async fn try_scheduler_lock(&self, holder: &str) -> Result<Option<SessionLock>> {
        self.session_lock(holder, Which::Scheduler).await
    }

    /// Waits for `instance`'s lock: while it is held, no other process runs that instance
    /// (even one whose job the queue handed out again because its heartbeat stalled).
    pub async fn lock_instance(&self, holder: &str, instance: &str) -> Result<SessionLock> {
        self.session_lock(holder, Which::Instance(instance))
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "instance lock",
                detail: "pg_advisory_lock returned without the lock".into(),
            })
    }

    /// Waits for the turn to set up the job queue's tables (processes starting together
    /// would otherwise race at creating them).
    pub async fn lock_job_queue_setup(&self, holder: &str) -> Result<SessionLock> {
        self.session_lock(holder, Which::JobQueueSetup)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                what: "job queue lock",
                detail: "pg_advisory_lock returned without the lock".into(),
            })
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
