//! Roster's own state, kept in one SQLite file (`roster.sqlite` in the state directory) or,
//! when several processes share it, in a PostgreSQL database. The same statements serve
//! both (through sqlx's `Any` driver; `$N` parameters, which SQLite accepts too; PostgreSQL
//! gets a collation named `nocase`); where the dialects still differ the code says so with
//! [`Backend`].
//!
//! It holds what the apps cannot tell us: how much of Marketo's daily quota Roster has used,
//! which invitations Roster sent (the API cannot list pending invites), and a tombstone for
//! every account Roster deleted, so it can be re-provisioned.

mod console;
mod exceptions;
mod inventories;
mod journal;
mod leadership;
mod pacing;
mod records;
mod reviews;
mod schema;
mod scim;
mod service;
pub mod testing;
mod tls;
mod transfer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use roster_domain::access::RoleAssignment;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor, Row};
use time::{Date, OffsetDateTime};

pub use console::{ConsoleSession, ConsoleUser, OIDC_ACCOUNT};
pub use inventories::{HeldAccess, InventorySummary};
pub use journal::{
    Approval, ChainBreak, GENESIS, JournalEntry, LogEntry, LogHead, NewLogEntry, PlanSignature,
    StepStatus, Unfinished, row_hash, verify_entries, verify_row,
};
pub use leadership::SessionLock;
pub use pacing::{Admission, PacingLimits};
pub use records::{InviteStatus, NewTombstone, PendingInvite, Tombstone, TombstoneStatus};
pub use reviews::{
    NewDecision, NewReview, Review, ReviewCounts, ReviewItem, ReviewTallies, Snapshot,
};
pub use roster_keys::{KeyError, Keyring};
pub use scim::{ScimConnection, ScimKey, ScimResource, ScimWriteError};
pub use service::{
    ApiToken, Delivery, JOB_SCHEMA, Pruned, QueuedJobs, RestoreRequest, Retention, Run, RunEnd,
    ServicePlan,
};
pub use tls::PgTls;
pub use transfer::{FORMAT as EXPORT_FORMAT, Moved};

pub const STATE_FILE: &str = "roster.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the state directory {path}: {source}; pass another with --state or ROSTER_STATE"
    )]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open Roster's state file {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error(
        "cannot connect to the PostgreSQL database {url}: {reason}; check --database / ROSTER_DATABASE_URL, that the server runs and that the user may connect{tls_hint}"
    )]
    Connect {
        url: String,
        /// Said in the message, not chained as a source (it would be said twice).
        reason: sqlx::Error,
        /// What to check of TLS too ([`PgTls::hint`]).
        tls_hint: &'static str,
    },
    #[error("{url}: {why}")]
    BadTls { url: String, why: String },
    #[error(
        "{url:?} is not a database Roster can use: give postgres://USER@HOST:PORT/DATABASE (or leave --database out for the SQLite file in the state directory)"
    )]
    BadUrl { url: String },
    #[error(
        "the state in {place} was written by a newer Roster (schema {found}, this one knows {known}); upgrade Roster or use another --state / --database"
    )]
    TooNew {
        place: String,
        found: i64,
        known: i64,
    },
    #[error("Roster's state file: {0}")]
    Query(#[from] sqlx::Error),
    #[error(
        "there is already an {what} named {name:?}; choose another name or revoke the old one first"
    )]
    Duplicate { what: &'static str, name: String },
    #[error(
        "the state in {place} already holds records ({table} is not empty); an import goes into an empty state only: give another --state or --database"
    )]
    NotEmpty { place: String, table: String },
    #[error(
        "the export does not verify ({what}): {why}; nothing was imported. If the export is untouched, this state is signing with another key than its source did: give it the source's key (copy signing.key, and signing.key.retired if there is one, from the source's state folder to {key_file}, or point ROSTER_SIGNING_KEY_FILE at it) before importing; otherwise the export was edited, or its source was already broken (`roster log verify` there)"
    )]
    UnverifiedImport {
        what: String,
        why: String,
        key_file: String,
    },
    #[error(
        "the state folder {} is open to other accounts (mode {mode:o}) and Roster cannot narrow it to 0700 ({source}): `chmod 700` it as its owner, or give another --state",
        path.display()
    )]
    OpenDir {
        path: PathBuf,
        mode: u32,
        source: std::io::Error,
    },
    #[error("Roster's state file holds a record it cannot read ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error(
        "Roster's state was opened without its signing key, which signs and checks the audit log, plans and approvals; this is a bug in the caller"
    )]
    NoKeys,
    #[error(transparent)]
    Key(#[from] KeyError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Roster's state: cheap to clone, one connection pool underneath.
#[derive(Clone)]
pub struct StateStore {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite file, or the database's URL without its password.
    path: PathBuf,
    /// The signing key (and the retired public keys) that sign and check the audit log
    /// and approvals. Kept outside the database: see `roster_keys`.
    keys: Option<Keyring>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("backend", &self.backend)
            .field("at", &self.path)
            .finish()
    }
}

/// A database URL as given, which may hold a password: `Debug` shows it as
/// [`redact_url`] does, so a configuration or arguments printed with `{:?}` keep it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl From<&str> for DatabaseUrl {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({:?})", redact_url(&self.0))
    }
}

/// A database URL fit to show: the password replaced, whether after the user name or in
/// the query (`?password=`, which libpq and both our clients accept too).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if !u.query_pairs().any(|(k, _)| k == "password") {
                return u.to_string();
            }
            tls::rewrite_query(u.as_str(), |pairs| {
                for (k, v) in pairs {
                    if k == "password" {
                        *v = "***".into();
                    }
                }
            })
        }
        Err(_) => "(an unparseable URL)".into(),
    }
}

/// Transaction-level advisory lock every writing transaction on PostgreSQL takes, so writers
/// are serialised as SQLite's `BEGIN IMMEDIATE` serialises them (the audit log's chain and
/// the read-then-write steps rely on it). The key is arbitrary but fixed: "roster" in ASCII.
const PG_WRITE_LOCK: i64 = 0x726f_7374_6572;

fn ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn roles_json(roles: &[RoleAssignment]) -> String {
    serde_json::to_string(roles).expect("role assignments always serialise")
}

fn roles_from(raw: &str) -> Result<Vec<RoleAssignment>> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt {
        what: "roles",
        detail: e.to_string(),
    })
}

impl StateStore {
    /// Opens (creating if needed) the state in `dir` and brings its schema up to date.
    ///
    /// The state holds personal data (names, emails, deleted accounts), so a directory
    /// this creates is 0700 and the SQLite files are 0600, whatever the umask.
    pub async fn open(dir: &Path) -> Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        if !dir.is_dir() {
            builder
                .create(dir)
                .map_err(|source| StoreError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        // A folder made before (by hand, or by an older Roster, under a loose umask) is
        // narrowed too: it holds personal data and the signing key.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o777);
            if let Ok(mode) = mode
                && mode & 0o077 != 0
                && let Err(source) =
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            {
                return Err(StoreError::OpenDir {
                    path: dir.to_path_buf(),
                    mode,
                    source,
                });
            }
        }
        // Opening a new state switches it to WAL and creates the schema, which several
        // processes starting at once must not do together (SQLite answers "database is
        // locked" to the loser whatever the busy timeout). They take turns on a file lock.
        let opening = dir.join("open.lock");
        let mut lock_file = std::fs::OpenOptions::new();
        lock_file
            .read(true)
            .write(true)
            .create(true)
            .truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut lock_file, 0o600);
        let lock_err = |source| StoreError::CreateDir {
            path: opening.clone(),
            source,
        };
        let guard = lock_file.open(&opening).map_err(lock_err)?;
        // Waited for off the async threads: the holder may be this process's own task,
        // which needs a thread to connect and migrate before it lets go.
        let guard = tokio::task::spawn_blocking(move || guard.lock().map(|()| guard))
            .await
            .map_err(|e| lock_err(std::io::Error::other(e)))?
            .map_err(lock_err)?;
        let path = dir.join(STATE_FILE);
        let mut create = std::fs::OpenOptions::new();
        create.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
        create.open(&path).map_err(|source| StoreError::CreateDir {
            path: path.clone(),
            source,
        })?;
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        // Through the Any driver, so options travel as a URL; what a URL cannot say (the
        // journal mode, the busy timeout, foreign keys) each connection sets when it opens.
        sqlx::any::install_default_drivers();
        let url = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(&path)
            .to_url_lossy();
        let options = AnyConnectOptions::from_url(&url).map_err(open_err)?;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::raw_sql("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(open_err)?;
        let store = Self {
            pool,
            backend: Backend::Sqlite,
            path,
            keys: None,
        };
        store.migrate().await?;
        drop(guard);
        #[cfg(unix)]
        for suffix in ["", "-wal", "-shm"] {
            use std::os::unix::fs::PermissionsExt;
            let file = PathBuf::from(format!("{}{suffix}", store.path.display()));
            if file.exists() {
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(store)
    }

    /// Connects to the PostgreSQL database at `url` and brings its schema up to date.
    /// Several processes may share it; they take turns at migrating (an advisory lock).
    pub async fn connect(url: &str) -> Result<Self> {
        let shown = redact_url(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::BadUrl { url: shown });
        }
        let tls = PgTls::of(url)?;
        let connect_err = |reason| StoreError::Connect {
            url: shown.clone(),
            reason,
            tls_hint: tls.hint(),
        };
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(&tls.sqlx_url(url)).map_err(connect_err)?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        let store = Self {
            pool,
            backend: Backend::Postgres,
            path: PathBuf::from(&shown),
            keys: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the state `database` names (a `postgres://` URL), else the SQLite file in `dir`.
    pub async fn open_at(dir: &Path, database: Option<&str>) -> Result<Self> {
        match database {
            Some(url) => Self::connect(url).await,
            None => Self::open(dir).await,
        }
    }

    /// The same state, signing and checking with `keys`. Every write of the audit log or
    /// of an approval needs a key ring that signs.
    pub fn with_keys(mut self, keys: Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The key ring this state was opened with.
    pub fn keys(&self) -> Result<&Keyring> {
        self.keys.as_ref().ok_or(StoreError::NoKeys)
    }

    /// The SQLite file, or the PostgreSQL URL (without its password).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How many schema steps this state has had (SQLite's and PostgreSQL's count apart).
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar("PRAGMA user_version")
                    .fetch_one(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM roster_schema")
                    .fetch_one(&self.pool)
                    .await?
            }
        })
    }

    /// A transaction that writes: it holds the write lock from its first statement, so what
    /// it reads stays true until it commits (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an
    /// advisory lock for the transaction).
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    async fn migrate(&self) -> Result<()> {
        let steps = match self.backend {
            Backend::Sqlite => schema::STEPS,
            Backend::Postgres => schema::PG_STEPS,
        };
        let known = steps.len() as i64;
        // SQLite: IMMEDIATE takes the write lock before the version is read, so processes
        // opening a new state at once wait for each other (busy timeout) instead of the
        // second failing to upgrade its read ("database is locked"). PostgreSQL: the same
        // through the advisory lock, with the version in a table of its own.
        let mut tx = self.write_tx().await?;
        let found: i64 = match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar("PRAGMA user_version")
                    .fetch_one(&mut *tx)
                    .await?
            }
            Backend::Postgres => {
                sqlx::raw_sql("CREATE TABLE IF NOT EXISTS roster_schema (version BIGINT NOT NULL)")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM roster_schema")
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        if found > known {
            return Err(StoreError::TooNew {
                place: self.path.display().to_string(),
                found,
                known,
            });
        }
        for step in &steps[found as usize..] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*step))
                .execute(&mut *tx)
                .await?;
        }
        if self.backend == Backend::Sqlite && found < 4 {
            journal::backfill_chain(&mut tx).await?;
        }
        if found < known {
            match self.backend {
                // PRAGMA takes no bound parameters; `known` is a number we computed.
                Backend::Sqlite => {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "PRAGMA user_version = {known}"
                    )))
                    .execute(&mut *tx)
                    .await?;
                }
                Backend::Postgres => {
                    sqlx::query("DELETE FROM roster_schema")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO roster_schema (version) VALUES ($1)")
                        .bind(known)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- daily quota ----

    /// Calls Roster has recorded against `instance` on quota day `day`.
    pub async fn quota_used(&self, app: &str, instance: &str, day: Date) -> Result<u64> {
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT calls FROM quota_usage WHERE app = $1 AND instance = $2 AND day = $3",
        )
        .bind(app)
        .bind(instance)
        .bind(day.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(used.unwrap_or(0).max(0) as u64)
    }

    pub async fn add_quota_used(
        &self,
        app: &str,
        instance: &str,
        day: Date,
        calls: u64,
    ) -> Result<()> {
        if calls == 0 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO quota_usage (app, instance, day, calls) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app, instance, day) DO UPDATE SET calls = quota_usage.calls + excluded.calls",
        )
        .bind(app)
        .bind(instance)
        .bind(day.to_string())
        .bind(calls as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- facts ----

    pub async fn fact(&self, app: &str, instance: &str, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM instance_facts WHERE app = $1 AND instance = $2 AND key = $3",
        )
        .bind(app)
        .bind(instance)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Remembers that the people `emails` name changed for `instance` (a SCIM push, a roster
    /// edit, an API request): the next targeted run of that instance plans for them.
    pub async fn add_targets(&self, instance: &str, emails: &[String]) -> Result<()> {
        for email in emails {
            let key = format!("{TARGET_PREFIX}{}", email.trim().to_lowercase());
            self.set_fact(TARGETS_APP, instance, &key, "").await?;
        }
        Ok(())
    }

    /// Takes every person waiting for a targeted run of `instance`, in one statement: people
    /// added meanwhile wait for the next run instead of being lost.
    pub async fn take_targets(&self, instance: &str) -> Result<std::collections::BTreeSet<String>> {
        let keys: Vec<String> = sqlx::query_scalar(
            "DELETE FROM instance_facts WHERE app = $1 AND instance = $2 RETURNING key",
        )
        .bind(TARGETS_APP)
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(TARGET_PREFIX).map(String::from))
            .collect())
    }

    pub async fn set_fact(&self, app: &str, instance: &str, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO instance_facts (app, instance, key, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app, instance, key) DO UPDATE SET value = excluded.value",
        )
        .bind(app)
        .bind(instance)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- pending invitations ----

    /// Records (or replaces) an invitation Roster sent.
    pub async fn record_invite(&self, invite: &PendingInvite) -> Result<()> {
        sqlx::query(
            "INSERT INTO pending_invites
             (app, instance, userid, email, first_name, last_name, api_only, roles_json, invited_at, invited_by, status, status_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (app, instance, userid) DO UPDATE SET userid = excluded.userid,
             email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name,
             api_only = excluded.api_only, roles_json = excluded.roles_json, invited_at = excluded.invited_at,
             invited_by = excluded.invited_by, status = excluded.status, status_at = excluded.status_at",
        )
        .bind(&invite.app)
        .bind(&invite.instance)
        .bind(&invite.userid)
        .bind(&invite.email)
        .bind(&invite.first_name)
        .bind(&invite.last_name)
        .bind(i64::from(invite.api_only))
        .bind(roles_json(&invite.roles))
        .bind(ms(invite.invited_at))
        .bind(&invite.invited_by)
        .bind(invite.status.as_str())
        .bind(ms(invite.status_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn invite(
        &self,
        app: &str,
        instance: &str,
        userid: &str,
    ) -> Result<Option<PendingInvite>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            records::invite_columns!(),
            " FROM pending_invites WHERE app = $1 AND instance = $2 AND userid = $3"
        ))
        .bind(app)
        .bind(instance)
        .bind(userid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invite_from).transpose()
    }

    /// Invitations of `instance` with the given status, oldest first.
    /// Every invitation still followed (pending or unconfirmed), on every instance, oldest
    /// first.
    pub async fn open_invites(&self) -> Result<Vec<PendingInvite>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            records::invite_columns!(),
            " FROM pending_invites WHERE status IN ('pending', 'unconfirmed') ORDER BY invited_at, userid"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invite_from).collect()
    }

    pub async fn invites(
        &self,
        app: &str,
        instance: &str,
        status: InviteStatus,
    ) -> Result<Vec<PendingInvite>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            records::invite_columns!(),
            " FROM pending_invites WHERE app = $1 AND instance = $2 AND status = $3 ORDER BY invited_at, userid"
        ))
        .bind(app)
        .bind(instance)
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invite_from).collect()
    }

    pub async fn set_invite_status(
        &self,
        app: &str,
        instance: &str,
        userid: &str,
        status: InviteStatus,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE pending_invites SET status = $1, status_at = $2 WHERE app = $3 AND instance = $4 AND userid = $5",
        )
        .bind(status.as_str())
        .bind(ms(at))
        .bind(app)
        .bind(instance)
        .bind(userid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- tombstones ----

    /// Saves a tombstone before anything is removed; its status says how far the removal got.
    ///
    /// If an earlier attempt on the same account was interrupted (a tombstone still
    /// `deleting` or `failed`), that tombstone is resumed instead of a second one written:
    /// it was saved before anything was removed, so it holds the roles; a rerun that finds
    /// them already stripped never overwrites them with an empty list.
    pub async fn add_tombstone(&self, t: &NewTombstone) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let open: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, roles_json FROM tombstones WHERE app = $1 AND instance = $2 AND userid = $3 COLLATE NOCASE \
             AND status IN ('deleting', 'failed') AND restored_at IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(&t.app)
        .bind(&t.instance)
        .bind(&t.userid)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match open {
            Some((id, roles)) => {
                let keep_old = !roles_from(&roles)?.is_empty() || t.roles.is_empty();
                sqlx::query(
                    "UPDATE tombstones SET status = $1, roles_json = CASE WHEN $2 THEN roles_json ELSE $3 END WHERE id = $4",
                )
                .bind(t.status.as_str())
                .bind(keep_old)
                .bind(roles_json(&t.roles))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => sqlx::query_scalar::<_, i64>(
                "INSERT INTO tombstones
                 (app, instance, userid, email, first_name, last_name, api_only, roles_json, account_json, deleted_at, deleted_by, reason, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            )
            .bind(&t.app)
            .bind(&t.instance)
            .bind(&t.userid)
            .bind(&t.email)
            .bind(&t.first_name)
            .bind(&t.last_name)
            .bind(i64::from(t.api_only))
            .bind(roles_json(&t.roles))
            .bind(t.account.to_string())
            .bind(ms(t.deleted_at))
            .bind(&t.deleted_by)
            .bind(t.reason.as_deref())
            .bind(t.status.as_str())
            .fetch_one(&mut *tx)
            .await?,
        };
        // Signed as written (again after a resumed one's roles changed): a restore brings
        // back only what Roster recorded.
        if let Some(keys) = &self.keys {
            sign_tombstone(&mut tx, keys, id).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Checks tombstone `id` against its signature before a restore acts on it: roles or an
    /// account written into the database by hand are refused, not brought back.
    pub async fn verify_tombstone(&self, id: i64) -> Result<()> {
        let row = sqlx::query(TOMBSTONE_CONTENT)
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        let sig: Option<String> = row.get("sig");
        self.keys()?.verify(
            roster_keys::Purpose::Tombstone,
            tombstone_body(&row).as_bytes(),
            sig.as_deref(),
            &format!("tombstone #{id}"),
        )?;
        Ok(())
    }

    /// Signs the tombstones written before they were signed: once, when the state's key is
    /// made (as the log's rows are).
    pub async fn sign_unsigned_tombstones(&self) -> Result<usize> {
        let keys = self.keys()?.clone();
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM tombstones WHERE sig IS NULL")
            .fetch_all(&self.pool)
            .await?;
        let mut conn = self.pool.acquire().await?;
        for id in &ids {
            sign_tombstone(&mut conn, &keys, *id).await?;
        }
        Ok(ids.len())
    }

    pub async fn set_tombstone_status(&self, id: i64, status: TombstoneStatus) -> Result<()> {
        sqlx::query("UPDATE tombstones SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks the open (deleting or failed) tombstones of an account deleted, once the app
    /// shows the account gone: the deletion they record finished, though the process that
    /// made it died before it could say so. Returns their ids.
    pub async fn finish_open_tombstones(
        &self,
        app: &str,
        instance: &str,
        userid: &str,
    ) -> Result<Vec<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE tombstones SET status = 'deleted' WHERE app = $1 AND instance = $2 AND userid = $3 COLLATE NOCASE \
             AND status IN ('deleting', 'failed') AND restored_at IS NULL RETURNING id",
        )
        .bind(app)
        .bind(instance)
        .bind(userid)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    pub async fn mark_restored(&self, id: i64, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE tombstones SET restored_at = $1 WHERE id = $2")
            .bind(ms(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every tombstone, newest first; only `app`'s when given.
    pub async fn tombstones(&self, app: Option<&str>) -> Result<Vec<Tombstone>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            records::tombstone_columns!(),
            " FROM tombstones WHERE $1 IS NULL OR app = $1 ORDER BY deleted_at DESC, id DESC"
        ))
        .bind(app)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tombstone_from).collect()
    }

    /// Tombstone `id`, if there is one.
    pub async fn tombstone(&self, id: i64) -> Result<Option<Tombstone>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            records::tombstone_columns!(),
            " FROM tombstones WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tombstone_from).transpose()
    }

    /// The tombstone to restore `email` from: not restored yet, and among those the newest
    /// that holds roles (an interrupted offboard of an older Roster may have left a second,
    /// role-less one).
    pub async fn restorable_tombstone(
        &self,
        app: &str,
        instance: &str,
        email: &str,
    ) -> Result<Option<Tombstone>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            records::tombstone_columns!(),
            " FROM tombstones WHERE app = $1 AND instance = $2 AND (email = $3 COLLATE NOCASE OR userid = $4 COLLATE NOCASE)
              AND restored_at IS NULL
              ORDER BY roles_json != '[]' DESC, deleted_at DESC, id DESC LIMIT 1"
        ))
        .bind(app)
        .bind(instance)
        .bind(email)
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tombstone_from).transpose()
    }

    /// The newest tombstone of `email` on `instance`.
    pub async fn latest_tombstone(
        &self,
        app: &str,
        instance: &str,
        email: &str,
    ) -> Result<Option<Tombstone>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            records::tombstone_columns!(),
            " FROM tombstones WHERE app = $1 AND instance = $2 AND (email = $3 COLLATE NOCASE OR userid = $4 COLLATE NOCASE)
              ORDER BY deleted_at DESC, id DESC LIMIT 1"
        ))
        .bind(app)
        .bind(instance)
        .bind(email)
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tombstone_from).transpose()
    }
}

fn invite_from(row: &AnyRow) -> Result<PendingInvite> {
    let status: String = row.get("status");
    Ok(PendingInvite {
        app: row.get("app"),
        instance: row.get("instance"),
        userid: row.get("userid"),
        email: row.get("email"),
        first_name: row.get("first_name"),
        last_name: row.get("last_name"),
        api_only: row.get::<i64, _>("api_only") != 0,
        roles: roles_from(row.get("roles_json"))?,
        invited_at: from_ms(row.get("invited_at")),
        invited_by: row.get("invited_by"),
        status: InviteStatus::parse(&status).ok_or(StoreError::Corrupt {
            what: "invite status",
            detail: status.clone(),
        })?,
        status_at: from_ms(row.get("status_at")),
    })
}

/// A tombstone's signed content: what a restore brings back, not its status.
const TOMBSTONE_CONTENT: &str = "SELECT id, app, instance, userid, email, first_name, last_name, api_only, \
     roles_json, account_json, deleted_at, deleted_by, sig FROM tombstones WHERE id = $1";

/// Signs tombstone `id`'s content as it now stands.
async fn sign_tombstone(conn: &mut sqlx::AnyConnection, keys: &Keyring, id: i64) -> Result<()> {
    let row = sqlx::query(TOMBSTONE_CONTENT)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let sig = keys.sign(
        roster_keys::Purpose::Tombstone,
        tombstone_body(&row).as_bytes(),
    )?;
    sqlx::query("UPDATE tombstones SET sig = $1 WHERE id = $2")
        .bind(sig)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn tombstone_body(row: &AnyRow) -> String {
    serde_json::json!([
        row.get::<i64, _>("id"),
        row.get::<String, _>("app"),
        row.get::<String, _>("instance"),
        row.get::<String, _>("userid"),
        row.get::<String, _>("email"),
        row.get::<String, _>("first_name"),
        row.get::<String, _>("last_name"),
        row.get::<i64, _>("api_only"),
        row.get::<String, _>("roles_json"),
        row.get::<String, _>("account_json"),
        row.get::<i64, _>("deleted_at"),
        row.get::<String, _>("deleted_by"),
    ])
    .to_string()
}

fn tombstone_from(row: &AnyRow) -> Result<Tombstone> {
    let status: String = row.get("status");
    let account: String = row.get("account_json");
    Ok(Tombstone {
        id: row.get("id"),
        app: row.get("app"),
        instance: row.get("instance"),
        userid: row.get("userid"),
        email: row.get("email"),
        first_name: row.get("first_name"),
        last_name: row.get("last_name"),
        api_only: row.get::<i64, _>("api_only") != 0,
        roles: roles_from(row.get("roles_json"))?,
        account: serde_json::from_str(&account).map_err(|e| StoreError::Corrupt {
            what: "account",
            detail: e.to_string(),
        })?,
        deleted_at: from_ms(row.get("deleted_at")),
        deleted_by: row.get("deleted_by"),
        reason: row.get("reason"),
        status: TombstoneStatus::parse(&status).ok_or(StoreError::Corrupt {
            what: "tombstone status",
            detail: status.clone(),
        })?,
        restored_at: row.get::<Option<i64>, _>("restored_at").map(from_ms),
    })
}

/// The `instance_facts` rows that hold the people waiting for a targeted run.
const TARGETS_APP: &str = "service-targets";
const TARGET_PREFIX: &str = "person:";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[tokio::test]
    async fn retention_prunes_old_runs_and_events_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![StateStore::open(dir.path()).await.unwrap()];
        let db = testing::TestDatabase::create("retention").await;
        if let Some(db) = &db {
            stores.push(db.store().await.unwrap());
        }
        let now = datetime!(2026-12-01 00:00 UTC);
        let end = |events: serde_json::Value| RunEnd {
            outcome: "done".into(),
            plan_id: None,
            summary: Some("ok".into()),
            error: None,
            events,
        };
        for store in stores {
            let mut ids = Vec::new();
            for days in [400, 100, 1] {
                let at = now - time::Duration::days(days);
                let id = store.start_run("marketo.a", "schedule", at).await.unwrap();
                store
                    .finish_run(id, &end(serde_json::json!([{"kind": "note"}])), at)
                    .await
                    .unwrap();
                ids.push(id);
            }
            // Running: never pruned, however old.
            let running = store
                .start_run("marketo.a", "schedule", now - time::Duration::days(500))
                .await
                .unwrap();
            let cutoffs = Retention {
                runs: Some(now - time::Duration::days(365)),
                run_events: Some(now - time::Duration::days(90)),
                ..Retention::default()
            };
            let pruned = store.prune(&cutoffs).await.unwrap();
            assert_eq!((pruned.runs, pruned.run_events), (1, 1));
            assert!(store.run(ids[0]).await.unwrap().is_none());
            let kept = store.run(ids[1]).await.unwrap().unwrap();
            assert_eq!(kept.events, serde_json::json!([]));
            assert_eq!(kept.summary.as_deref(), Some("ok"));
            let recent = store.run(ids[2]).await.unwrap().unwrap();
            assert_eq!(recent.events.as_array().unwrap().len(), 1);
            assert!(store.run(running).await.unwrap().is_some());
            // Again: nothing more to do.
            assert_eq!(store.prune(&cutoffs).await.unwrap(), Pruned::default());
        }
    }

    #[tokio::test]
    async fn people_waiting_for_a_targeted_run_are_taken_once_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![StateStore::open(dir.path()).await.unwrap()];
        let db = testing::TestDatabase::create("targets").await;
        if let Some(db) = &db {
            stores.push(db.store().await.unwrap());
        }
        for store in stores {
            store
                .add_targets(
                    "marketo.a",
                    &["Ada@X.example".into(), "bo@x.example".into()],
                )
                .await
                .unwrap();
            store
                .add_targets("marketo.a", &["ada@x.example".into()])
                .await
                .unwrap();
            store
                .add_targets("marketo.b", &["cy@x.example".into()])
                .await
                .unwrap();
            let taken = store.take_targets("marketo.a").await.unwrap();
            assert_eq!(
                taken.into_iter().collect::<Vec<_>>(),
                ["ada@x.example", "bo@x.example"]
            );
            assert!(store.take_targets("marketo.a").await.unwrap().is_empty());
            // Another instance's stay, and other facts are not taken.
            store
                .set_fact("service", "marketo.a", "budget", "{}")
                .await
                .unwrap();
            assert_eq!(store.take_targets("marketo.b").await.unwrap().len(), 1);
            assert!(
                store
                    .fact("service", "marketo.a", "budget")
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }

    #[tokio::test]
    async fn exceptions_hold_until_they_lapse_on_both_backends() {
        use roster_domain::desired::App;
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![StateStore::open(dir.path()).await.unwrap()];
        let db = testing::TestDatabase::create("exceptions").await;
        if let Some(db) = &db {
            stores.push(db.store().await.unwrap());
        }
        let now = datetime!(2026-12-01 00:00 UTC);
        for store in stores {
            let later = now + time::Duration::days(30);
            store
                .add_exception(
                    App::Marketo,
                    "i1",
                    "Nia@Acme.example",
                    later,
                    "restored",
                    now,
                )
                .await
                .unwrap();
            // The same account again replaces it; another instance is apart.
            store
                .add_exception(
                    App::Marketo,
                    "i1",
                    "nia@acme.example",
                    later,
                    "restored again",
                    now,
                )
                .await
                .unwrap();
            let live = store.exceptions(App::Marketo, "i1", now).await.unwrap();
            assert_eq!(live.len(), 1, "{live:?}");
            assert_eq!(
                (
                    live[0].email.as_str(),
                    live[0].reason.as_str(),
                    live[0].until
                ),
                ("nia@acme.example", "restored again", later)
            );
            assert!(
                store
                    .exceptions(App::Marketo, "i2", now)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .exceptions(App::Magento, "i1", now)
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Lapsed: gone from what the planner is given.
            assert!(
                store
                    .exceptions(App::Marketo, "i1", later)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_state_folder_open_to_others_is_narrowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        StateStore::open(&state).await.unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    /// More openers than runtime threads, at once: waiting for the open lock must not hold
    /// a thread the lock's holder needs to finish (it did, and three service instances
    /// starting together on two cores hung). The runtime runs on a thread of its own, so a
    /// regression fails here after a minute instead of hanging the suite.
    #[test]
    fn many_opens_at_once_do_not_starve_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let result = rt.block_on(async move {
                let opens: Vec<_> = (0..6)
                    .map(|_| {
                        let dir = path.clone();
                        tokio::spawn(async move { StateStore::open(&dir).await.map(|_| ()) })
                    })
                    .collect();
                for o in opens {
                    o.await.unwrap()?;
                }
                Ok::<_, StoreError>(())
            });
            let _ = done.send(result.map_err(|e| e.to_string()));
        });
        let result = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("six opens at once on two threads finish within a minute");
        result.unwrap();
    }

    /// Where a test's state lives: a SQLite file, or a PostgreSQL database of its own.
    enum Place {
        Sqlite(tempfile::TempDir),
        Postgres(testing::TestDatabase),
    }

    impl Place {
        async fn open(&self) -> StateStore {
            match self {
                Place::Sqlite(dir) => StateStore::open(dir.path())
                    .await
                    .unwrap()
                    .with_keys(testing::keys()),
                Place::Postgres(db) => db.store().await.unwrap(),
            }
        }
    }

    /// Runs `test` on SQLite, then on PostgreSQL where a test server is configured.
    async fn on_both<F>(label: &str, test: impl Fn(std::sync::Arc<Place>) -> F)
    where
        F: std::future::Future<Output = ()>,
    {
        let dir = tempfile::tempdir().unwrap();
        test(std::sync::Arc::new(Place::Sqlite(dir))).await;
        if let Some(db) = testing::TestDatabase::create(label).await {
            let place = std::sync::Arc::new(Place::Postgres(db));
            test(std::sync::Arc::clone(&place)).await;
            drop(place);
        }
    }

    fn role(ws: i64, role: i64) -> RoleAssignment {
        RoleAssignment {
            workspace_id: ws,
            workspace_name: format!("ws{ws}"),
            role_id: role,
            role_name: format!("role{role}"),
        }
    }

    #[tokio::test]
    async fn quota_accumulates_per_day_and_survives_reopening() {
        on_both(
            "quota_accumulates_per_day_and_survives_reopening",
            |place| async move {
                let store = place.open().await;
                let day = date!(2026 - 11 - 23);
                store.add_quota_used("marketo", "i1", day, 5).await.unwrap();
                store.add_quota_used("marketo", "i1", day, 7).await.unwrap();
                store
                    .add_quota_used("marketo", "i1", date!(2026 - 11 - 24), 1)
                    .await
                    .unwrap();
                drop(store);
                let store = place.open().await;
                assert_eq!(store.quota_used("marketo", "i1", day).await.unwrap(), 12);
                assert_eq!(store.quota_used("marketo", "i2", day).await.unwrap(), 0);
                store
                    .set_fact("marketo", "i1", "users", "12")
                    .await
                    .unwrap();
                store
                    .set_fact("marketo", "i1", "users", "13")
                    .await
                    .unwrap();
                assert_eq!(
                    store
                        .fact("marketo", "i1", "users")
                        .await
                        .unwrap()
                        .as_deref(),
                    Some("13")
                );
                assert_eq!(store.fact("marketo", "i2", "users").await.unwrap(), None);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn invites_are_listed_by_status_and_updated() {
        on_both(
            "invites_are_listed_by_status_and_updated",
            |place| async move {
                let store = place.open().await;
                let at = datetime!(2026-11-23 10:00 UTC);
                let invite = PendingInvite {
                    app: "marketo".into(),
                    instance: "i1".into(),
                    userid: "A@x.example".into(),
                    email: "A@x.example".into(),
                    first_name: "A".into(),
                    last_name: "B".into(),
                    api_only: false,
                    roles: vec![role(1, 2), role(1008, 102)],
                    invited_at: at,
                    invited_by: "tester".into(),
                    status: InviteStatus::Pending,
                    status_at: at,
                };
                store.record_invite(&invite).await.unwrap();
                let listed = store
                    .invites("marketo", "i1", InviteStatus::Pending)
                    .await
                    .unwrap();
                assert_eq!(listed, vec![invite.clone()]);
                store
                    .set_invite_status("marketo", "i1", "a@X.example", InviteStatus::Accepted, at)
                    .await
                    .unwrap();
                assert!(
                    store
                        .invites("marketo", "i1", InviteStatus::Pending)
                        .await
                        .unwrap()
                        .is_empty()
                );
                let found = store.invite("marketo", "i1", "a@x.example").await.unwrap();
                assert_eq!(found.unwrap().status, InviteStatus::Accepted);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn tombstones_keep_roles_and_the_account() {
        on_both(
            "tombstones_keep_roles_and_the_account",
            |place| async move {
                let store = place.open().await;
                let mut t = NewTombstone {
                    app: "marketo".into(),
                    instance: "i1".into(),
                    userid: "gone@x.example".into(),
                    email: "gone@x.example".into(),
                    first_name: "G".into(),
                    last_name: "One".into(),
                    api_only: false,
                    roles: vec![role(1, 2)],
                    account: serde_json::json!({"id": 7, "emailAddress": "gone@x.example"}),
                    deleted_at: datetime!(2026-11-20 10:00 UTC),
                    deleted_by: "ops".into(),
                    reason: Some("leaver".into()),
                    status: TombstoneStatus::Deleting,
                };
                let first = store.add_tombstone(&t).await.unwrap();
                // Finished, so a later offboard of the same person writes a tombstone of its own.
                store
                    .set_tombstone_status(first, TombstoneStatus::Deleted)
                    .await
                    .unwrap();
                t.deleted_at = datetime!(2026-11-21 10:00 UTC);
                t.roles = vec![role(1008, 102)];
                let second = store.add_tombstone(&t).await.unwrap();
                store
                    .set_tombstone_status(second, TombstoneStatus::Deleted)
                    .await
                    .unwrap();
                let latest = store
                    .latest_tombstone("marketo", "i1", "GONE@x.example")
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(latest.id, second);
                assert_eq!(latest.status, TombstoneStatus::Deleted);
                assert_eq!(latest.roles, vec![role(1008, 102)]);
                assert_eq!(latest.account["id"], 7);
                store
                    .mark_restored(first, datetime!(2026-11-22 10:00 UTC))
                    .await
                    .unwrap();
                let all = store.tombstones(Some("marketo")).await.unwrap();
                assert_eq!(all.len(), 2);
                assert_eq!(all[1].restored_at, Some(datetime!(2026-11-22 10:00 UTC)));
                assert!(store.tombstones(Some("magento")).await.unwrap().is_empty());
            },
        )
        .await;
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        on_both("a_newer_schema_is_refused", |place| async move {
            let store = place.open().await;
            let newer = match store.backend {
                Backend::Sqlite => "PRAGMA user_version = 99",
                Backend::Postgres => "UPDATE roster_schema SET version = 99",
            };
            sqlx::raw_sql(newer).execute(&store.pool).await.unwrap();
            drop(store);
            let err = match &*place {
                Place::Sqlite(dir) => StateStore::open(dir.path()).await.unwrap_err(),
                Place::Postgres(db) => db.store().await.unwrap_err(),
            };
            assert!(err.to_string().contains("newer Roster"), "{err}");
        })
        .await;
    }

    #[tokio::test]
    async fn the_journal_tracks_steps_and_the_log_is_append_only() {
        on_both(
            "the_journal_tracks_steps_and_the_log_is_append_only",
            |place| async move {
                let store = place.open().await;
                let at = datetime!(2026-11-23 10:00 UTC);
                store.save_plan("plan-1", at, "{}").await.unwrap();
                store
                    .save_plan("plan-1", at, "{\"again\":1}")
                    .await
                    .unwrap();
                assert_eq!(store.approval("plan-1", "digest-a").await.unwrap(), None);
                store
                    .step_started("plan-1", 1, "plan-1/1/a", at)
                    .await
                    .unwrap();
                store
                    .step_started("plan-1", 2, "plan-1/2/b", at)
                    .await
                    .unwrap();
                let line = NewLogEntry {
                    actor: "ana".into(),
                    app: "marketo".into(),
                    ..NewLogEntry::default()
                };
                store
                    .finish_step("plan-1", 1, StepStatus::Done, None, &line, at)
                    .await
                    .unwrap();
                let journal = store.journal("plan-1").await.unwrap();
                assert_eq!(
                    journal.iter().map(|e| e.status).collect::<Vec<_>>(),
                    vec![StepStatus::Done, StepStatus::Started]
                );
                // Restarting a failed or started step keeps one row per step.
                store
                    .step_started("plan-1", 2, "plan-1/2/b", at)
                    .await
                    .unwrap();
                assert_eq!(store.journal("plan-1").await.unwrap().len(), 2);
                let approval = Approval {
                    by: "ana".into(),
                    os_user: "root".into(),
                    at,
                };
                store
                    .approve_plan("plan-1", "digest-a", &approval, &line)
                    .await
                    .unwrap();
                assert_eq!(
                    store
                        .approval("plan-1", "digest-a")
                        .await
                        .unwrap()
                        .unwrap()
                        .by,
                    "ana"
                );
                // An approval covers that content only.
                assert_eq!(store.approval("plan-1", "digest-b").await.unwrap(), None);

                let entry = NewLogEntry {
                    actor: "ana".into(),
                    plan_id: Some("plan-1".into()),
                    app: "marketo".into(),
                    action: "delete".into(),
                    target: "bob@acme.example".into(),
                    outcome: "done".into(),
                    ..NewLogEntry::default()
                };
                store.append_log(&entry, at).await.unwrap();
                assert_eq!(store.log(Some("plan-1")).await.unwrap().len(), 1);
                assert_eq!(store.log(None).await.unwrap().len(), 3);
                assert_eq!(store.verify_log().await.unwrap(), Ok(3));
                assert_eq!(store.log(Some("plan-2")).await.unwrap().len(), 0);
                let erase = sqlx::query("DELETE FROM audit_log")
                    .execute(&store.pool)
                    .await;
                assert!(erase.unwrap_err().to_string().contains("append-only"));
                let edit = sqlx::query("UPDATE audit_log SET outcome = 'x'")
                    .execute(&store.pool)
                    .await;
                assert!(edit.is_err());
                assert_eq!(store.log(Some("plan-1")).await.unwrap()[0].outcome, "done");
            },
        )
        .await;
    }

    #[tokio::test]
    async fn the_chain_names_an_edited_or_removed_row() {
        on_both(
            "the_chain_names_an_edited_or_removed_row",
            |place| async move {
                let store = place.open().await;
                let at = datetime!(2026-11-23 10:00 UTC);
                for n in 0..4 {
                    let entry = NewLogEntry {
                        actor: "ana".into(),
                        target: format!("user{n}@acme.example"),
                        outcome: "done".into(),
                        ..NewLogEntry::default()
                    };
                    store.append_log(&entry, at).await.unwrap();
                }
                assert_eq!(store.verify_log().await.unwrap(), Ok(4));
                // An append whose transaction rolls back (its process killed mid-write)
                // gives its id back: the next row follows on, with no gap to read as a
                // deleted row.
                let mut tx = store.write_tx().await.unwrap();
                journal::insert_log(&store, &mut tx, &NewLogEntry::default(), at)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                store.append_log(&NewLogEntry::default(), at).await.unwrap();
                assert_eq!(store.verify_log().await.unwrap(), Ok(5));
                // Someone with the database's own rights takes the guard off.
                let unguard = match store.backend {
                    Backend::Sqlite => {
                        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
                    }
                    Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER",
                };
                sqlx::raw_sql(unguard).execute(&store.pool).await.unwrap();
                sqlx::query("UPDATE audit_log SET detail = 'quiet' WHERE id = 2")
                    .execute(&store.pool)
                    .await
                    .unwrap();
                let broken = store.verify_log().await.unwrap().unwrap_err();
                assert_eq!(broken.id, 2);
                assert!(broken.why.contains("edited"), "{}", broken.why);
                sqlx::query("UPDATE audit_log SET detail = NULL WHERE id = 2")
                    .execute(&store.pool)
                    .await
                    .unwrap();
                assert_eq!(store.verify_log().await.unwrap(), Ok(5));
                sqlx::query("DELETE FROM audit_log WHERE id = 3")
                    .execute(&store.pool)
                    .await
                    .unwrap();
                let broken = store.verify_log().await.unwrap().unwrap_err();
                assert_eq!(broken.id, 4);
                assert!(broken.why.contains("missing"), "{}", broken.why);
            },
        )
        .await;
    }

    /// The chain is keyed: with the triggers off, an edit whose hashes are recomputed with
    /// the public formula, a stripped signature, a cut tail (against a saved head) and a
    /// forged approval row are each caught; the instance is inside what is signed.
    #[tokio::test]
    async fn the_keyed_log_catches_recomputed_hashes_cut_tails_and_forged_approvals() {
        on_both(
            "the_keyed_log_catches_recomputed_hashes_cut_tails",
            |place| async move {
                let store = place.open().await;
                let at = datetime!(2026-11-23 10:00 UTC);
                for n in 0..4 {
                    let entry = NewLogEntry {
                        actor: "ana".into(),
                        target: format!("user{n}@acme.example"),
                        outcome: "done".into(),
                        instance: Some("https://acme.mktorest.example".into()),
                        ..NewLogEntry::default()
                    };
                    store.append_log(&entry, at).await.unwrap();
                }
                assert_eq!(store.verify_log().await.unwrap(), Ok(4));
                let head = store.log_head(at).await.unwrap();
                assert_eq!(head.id, 4);
                assert!(head.verify(&testing::keys()).is_ok());
                let unguard = match store.backend {
                    Backend::Sqlite => {
                        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
                    }
                    Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER",
                };
                sqlx::raw_sql(unguard).execute(&store.pool).await.unwrap();
                let original = store.log(None).await.unwrap();
                // Rewrite row 2's instance and recompute every hash from it on, as the
                // public formula allows.
                let recompute = |instance: &'static str| {
                    let store = store.clone();
                    let original = original.clone();
                    async move {
                        let mut prev = original[0].hash.clone();
                        for e in &original[1..] {
                            let mut new = journal::LogEntry { ..e.clone() };
                            if e.id == 2 {
                                new.instance = Some(instance.into());
                            }
                            let hash = row_hash(&prev, e.id, e.at, &NewLogEntry {
                                actor: new.actor.clone(),
                                os_user: new.os_user.clone(),
                                plan_id: new.plan_id.clone(),
                                step_key: new.step_key.clone(),
                                app: new.app.clone(),
                                action: new.action.clone(),
                                target: new.target.clone(),
                                outcome: new.outcome.clone(),
                                detail: new.detail.clone(),
                                instance: new.instance.clone(),
                            });
                            sqlx::query("UPDATE audit_log SET instance = $1, prev_hash = $2, hash = $3 WHERE id = $4")
                                .bind(&new.instance)
                                .bind(&prev)
                                .bind(&hash)
                                .bind(e.id)
                                .execute(&store.pool)
                                .await
                                .unwrap();
                            prev = hash;
                        }
                    }
                };
                recompute("https://evil.example").await;
                let broken = store.verify_log().await.unwrap().unwrap_err();
                assert_eq!(broken.id, 2);
                assert!(broken.why.contains("signature"), "{}", broken.why);
                recompute("https://acme.mktorest.example").await;
                assert_eq!(store.verify_log().await.unwrap(), Ok(4));
                // A stripped signature is never taken for a row from before the key.
                sqlx::query("UPDATE audit_log SET sig = NULL WHERE id = 3")
                    .execute(&store.pool)
                    .await
                    .unwrap();
                let broken = store.verify_log().await.unwrap().unwrap_err();
                assert_eq!(broken.id, 3);
                assert!(broken.why.contains("not signed"), "{}", broken.why);
                sqlx::query("UPDATE audit_log SET sig = $1 WHERE id = 3")
                    .bind(&original[2].signature)
                    .execute(&store.pool)
                    .await
                    .unwrap();
                // A cut tail leaves a valid chain; the saved head catches it.
                sqlx::query("DELETE FROM audit_log WHERE id = 4")
                    .execute(&store.pool)
                    .await
                    .unwrap();
                let keys = testing::keys();
                assert_eq!(store.verify_log_with(&keys, None).await.unwrap(), Ok(3));
                let broken = store.verify_log_with(&keys, Some(&head)).await.unwrap().unwrap_err();
                assert!(broken.why.contains("removed from its end"), "{}", broken.why);
                // A head edited to name an earlier row does not verify.
                let mut forged = head.clone();
                forged.id = 3;
                forged.hash = original[2].hash.clone();
                let broken = store.verify_log_with(&keys, Some(&forged)).await.unwrap().unwrap_err();
                assert!(broken.why.contains("cannot be trusted"), "{}", broken.why);
                // An approval row written without the key is refused, not taken.
                sqlx::query(
                    "INSERT INTO approvals (plan_id, digest, approved_by, os_user, approved_at, sig) VALUES ('plan-x', 'd', 'mallory', 'root', 0, NULL)",
                )
                .execute(&store.pool)
                .await
                .unwrap();
                let err = store.approval("plan-x", "d").await.unwrap_err();
                assert!(err.to_string().contains("no signature"), "{err}");
                // Another key's state: a different key ring does not verify these rows.
                let other = store.clone().with_keys(Keyring::ephemeral());
                let broken = other.verify_log().await.unwrap().unwrap_err();
                assert_eq!(broken.id, 1);
                assert!(broken.why.contains("neither"), "{}", broken.why);
            },
        )
        .await;
    }

    #[tokio::test]
    async fn an_interrupted_offboard_resumes_its_tombstone_and_keeps_the_roles() {
        on_both(
            "an_interrupted_offboard_resumes_its_tombstone_and_keeps_the_roles",
            |place| async move {
                let store = place.open().await;
                let role = RoleAssignment {
                    role_id: 2,
                    role_name: "Standard User".into(),
                    workspace_id: 1,
                    workspace_name: "Default".into(),
                };
                let mut t = NewTombstone {
                    app: "marketo".into(),
                    instance: "i".into(),
                    userid: "Bob@acme.example".into(),
                    email: "bob@acme.example".into(),
                    first_name: "Bob".into(),
                    last_name: "B".into(),
                    api_only: false,
                    roles: vec![role.clone()],
                    account: serde_json::json!({}),
                    deleted_at: datetime!(2026-11-23 10:00 UTC),
                    deleted_by: "ana".into(),
                    reason: None,
                    status: TombstoneStatus::Deleting,
                };
                let first = store.add_tombstone(&t).await.unwrap();
                store
                    .set_tombstone_status(first, TombstoneStatus::Failed)
                    .await
                    .unwrap();
                // The rerun finds the roles already stripped: same tombstone, roles kept.
                t.roles.clear();
                t.userid = "bob@acme.example".into();
                let again = store.add_tombstone(&t).await.unwrap();
                assert_eq!(again, first);
                store
                    .set_tombstone_status(again, TombstoneStatus::Deleted)
                    .await
                    .unwrap();
                let all = store.tombstones(None).await.unwrap();
                assert_eq!(all.len(), 1);
                assert_eq!(all[0].roles, vec![role.clone()]);
                assert_eq!(all[0].status, TombstoneStatus::Deleted);

                // A finished tombstone is not resumed: a later offboard writes a new one, and
                // restore prefers the one that holds roles.
                let later = store.add_tombstone(&t).await.unwrap();
                assert_ne!(later, first);
                // That one is interrupted after the account went: the next run, finding the account
                // gone, closes it (and only the open one).
                let closed = store
                    .finish_open_tombstones("marketo", "i", "BOB@acme.example")
                    .await
                    .unwrap();
                assert_eq!(closed, vec![later]);
                assert!(
                    store
                        .finish_open_tombstones("marketo", "i", "bob@acme.example")
                        .await
                        .unwrap()
                        .is_empty()
                );
                let pick = store
                    .restorable_tombstone("marketo", "i", "bob@acme.example")
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(pick.id, first);
                store
                    .mark_restored(first, datetime!(2026-11-24 10:00 UTC))
                    .await
                    .unwrap();
                let pick = store
                    .restorable_tombstone("marketo", "i", "bob@acme.example")
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(pick.id, later);
            },
        )
        .await;
    }

    /// A state moved through `export` and `import` (SQLite to SQLite, and SQLite to
    /// PostgreSQL and back where a server is configured) keeps every row, its ids and the
    /// log's chain; new rows continue after the moved ones; a state that holds anything
    /// refuses an import, and a bad line leaves the target empty.
    #[tokio::test]
    async fn an_export_imports_whole_into_an_empty_state_of_either_kind() {
        let dir = tempfile::tempdir().unwrap();
        let source = StateStore::open(&dir.path().join("a"))
            .await
            .unwrap()
            .with_keys(testing::keys());
        let at = datetime!(2026-11-23 10:00 UTC);
        source
            .add_quota_used("marketo", "i1", date!(2026 - 11 - 23), 42)
            .await
            .unwrap();
        for n in 0..3 {
            let entry = NewLogEntry {
                actor: "ana".into(),
                target: format!("user{n}@acme.example"),
                outcome: "done".into(),
                ..NewLogEntry::default()
            };
            source.append_log(&entry, at).await.unwrap();
        }
        let t = NewTombstone {
            app: "marketo".into(),
            instance: "i1".into(),
            userid: "Gone@x.example".into(),
            email: "gone@x.example".into(),
            first_name: "G".into(),
            last_name: "One".into(),
            api_only: true,
            roles: vec![role(1, 2)],
            account: serde_json::json!({"id": 7}),
            deleted_at: at,
            deleted_by: "ops".into(),
            reason: None,
            status: TombstoneStatus::Deleted,
        };
        let tomb = source.add_tombstone(&t).await.unwrap();
        let mut file = Vec::new();
        let out = source.export(&mut file).await.unwrap();
        assert_eq!(out.rows(), 5, "{out:?}");

        async fn check(
            file: &[u8],
            t: &NewTombstone,
            tomb: i64,
            at: OffsetDateTime,
            target: StateStore,
        ) -> StateStore {
            let moved = target.import(file).await.unwrap();
            assert_eq!(moved.rows(), 5);
            assert_eq!(
                target
                    .quota_used("marketo", "i1", date!(2026 - 11 - 23))
                    .await
                    .unwrap(),
                42
            );
            assert_eq!(target.verify_log().await.unwrap(), Ok(3));
            let moved_tomb = target
                .latest_tombstone("marketo", "i1", "GONE@x.example")
                .await
                .unwrap()
                .unwrap();
            assert_eq!((moved_tomb.id, moved_tomb.api_only), (tomb, true));
            // New rows continue after the moved ones, and the chain with them.
            let entry = NewLogEntry {
                actor: "bo".into(),
                outcome: "done".into(),
                ..NewLogEntry::default()
            };
            target.append_log(&entry, at).await.unwrap();
            assert_eq!(target.verify_log().await.unwrap(), Ok(4));
            assert!(target.add_tombstone(t).await.unwrap() > tomb);
            // Now it holds records: a second import is refused.
            let err = target.import(file).await.unwrap_err();
            assert!(err.to_string().contains("empty state only"), "{err}");
            target
        }
        let sqlite = StateStore::open(&dir.path().join("b"))
            .await
            .unwrap()
            .with_keys(testing::keys());
        check(&file, &t, tomb, at, sqlite).await;
        if let Some(db) = testing::TestDatabase::create("transfer").await {
            let pg = check(&file, &t, tomb, at, db.store().await.unwrap()).await;
            // And back: PostgreSQL to a new SQLite file.
            let mut again = Vec::new();
            assert_eq!(pg.export(&mut again).await.unwrap().rows(), 7);
            let back = StateStore::open(&dir.path().join("c"))
                .await
                .unwrap()
                .with_keys(testing::keys());
            assert_eq!(back.import(&again[..]).await.unwrap().rows(), 7);
            assert_eq!(back.verify_log().await.unwrap(), Ok(4));
        }
        // A bad line: nothing of the file goes in.
        let empty = StateStore::open(&dir.path().join("d"))
            .await
            .unwrap()
            .with_keys(testing::keys());
        // (Before the signed last line, which would refuse it otherwise.)
        let text = String::from_utf8(file.clone()).unwrap();
        let (body, seal) = text.trim_end().rsplit_once('\n').unwrap();
        let broken =
            format!("{body}\n{{\"table\": \"nope\", \"row\": {{}}}}\n{seal}\n").into_bytes();
        let err = empty.import(&broken[..]).await.unwrap_err();
        assert!(err.to_string().contains("no table \"nope\""), "{err}");
        assert!(empty.tombstones(None).await.unwrap().is_empty());
        assert_eq!(empty.verify_log().await.unwrap(), Ok(0));
        // A line after the seal, a seal gone, a row changed: refused, nothing kept.
        let after = [
            file.clone(),
            b"{\"table\": \"plans\", \"row\": {}}\n".to_vec(),
        ]
        .concat();
        let err = empty.import(&after[..]).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("after the export's signed last line"),
            "{err}"
        );
        let err = empty
            .import(format!("{body}\n").as_bytes())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("ends before its signed last line"),
            "{err}"
        );
        let edited = text.replace("gone@x.example", "kept@x.example");
        assert_ne!(edited, text);
        let err = empty.import(edited.as_bytes()).await.unwrap_err();
        assert!(
            err.to_string().contains("not the ones it was signed with"),
            "{err}"
        );
        assert!(empty.tombstones(None).await.unwrap().is_empty());
        assert_eq!(empty.verify_log().await.unwrap(), Ok(0));
    }

    /// The shared pacing table keeps a subscription's limits for every process: calls in
    /// flight, calls in the window (with when the oldest leaves it), instances apart, and an
    /// open call of a dead process stops counting as in flight after the stale time.
    #[tokio::test]
    async fn calls_are_admitted_within_the_shared_limits() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = StateStore::open(dir.path()).await.unwrap();
        let l = PacingLimits {
            limit: 3,
            window_ms: 1_000,
            max_in_flight: 2,
            stale_ms: 500,
        };
        assert!(sqlite.pacing_admit("i", "a", l, 0).await.is_err());
        let Some(db) = testing::TestDatabase::create("pacing").await else {
            return;
        };
        let store = db.store().await.unwrap();
        let t0 = 1_000_000;
        let admitted = |a: Admission| match a {
            Admission::Admitted(id) => id,
            other => panic!("not admitted: {other:?}"),
        };
        let first = admitted(store.pacing_admit("i", "a", l, t0).await.unwrap());
        let second = admitted(store.pacing_admit("i", "b", l, t0).await.unwrap());
        // Two in flight: a third waits for an answer, which only asking again sees.
        assert_eq!(
            store.pacing_admit("i", "c", l, t0 + 1).await.unwrap(),
            Admission::Wait(None)
        );
        // Another subscription has limits of its own.
        admitted(store.pacing_admit("j", "c", l, t0 + 1).await.unwrap());
        store.pacing_release(first, t0 + 10).await.unwrap();
        let third = admitted(store.pacing_admit("i", "c", l, t0 + 11).await.unwrap());
        store.pacing_release(second, t0 + 12).await.unwrap();
        store.pacing_release(third, t0 + 13).await.unwrap();
        // Three in the window: the next waits until the oldest answer leaves it.
        assert_eq!(
            store.pacing_admit("i", "d", l, t0 + 20).await.unwrap(),
            Admission::Wait(Some(990))
        );
        // The first answer (t0 + 10) has left the window at t0 + 1_011.
        admitted(store.pacing_admit("i", "d", l, t0 + 1_011).await.unwrap());
        // A process dies with its call open: after the stale time it no longer counts as in
        // flight (it stays in the window a while, as if answered then).
        let one = PacingLimits {
            limit: 100,
            max_in_flight: 1,
            ..l
        };
        admitted(store.pacing_admit("k", "dead", one, t0).await.unwrap());
        assert_eq!(
            store.pacing_admit("k", "g", one, t0 + 100).await.unwrap(),
            Admission::Wait(None)
        );
        admitted(store.pacing_admit("k", "g", one, t0 + 501).await.unwrap());
    }

    /// The writer lock on a shared PostgreSQL state: one holder at a time, named to the
    /// others, free again when its holder goes.
    #[tokio::test]
    async fn one_process_at_a_time_holds_the_writer_lock() {
        let Some(db) = testing::TestDatabase::create("writer").await else {
            return;
        };
        let a = db.store().await.unwrap();
        let b = db.store().await.unwrap();
        // A holder in another database on the same server is not this state's.
        let other = testing::TestDatabase::create("writer2").await.unwrap();
        let _elsewhere = other
            .store()
            .await
            .unwrap()
            .try_writer_lock("roster serve (other-state:9)")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.writer_lock_holder().await.unwrap(), None);
        let mut held = a
            .try_writer_lock("roster serve (host-a:1)")
            .await
            .unwrap()
            .unwrap();
        assert!(held.held().await);
        assert!(
            b.try_writer_lock("roster serve (host-b:2)")
                .await
                .unwrap()
                .is_none()
        );
        let (who, since) = b.writer_lock_holder().await.unwrap().unwrap();
        assert_eq!(who, "roster serve (host-a:1)");
        assert!(since.ends_with('Z') && since.len() == 20, "{since}");
        // Plain writes go on meanwhile: the lock is not the transactions' write lock.
        b.add_quota_used("marketo", "i", date!(2026 - 11 - 23), 1)
            .await
            .unwrap();
        drop(held);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut taken = None;
        while taken.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock was never freed"
            );
            taken = b.try_writer_lock("roster serve (host-b:2)").await.unwrap();
            if taken.is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }

    /// `roster serve` processes share the writer lock (a CLI writer, alone, waits for them
    /// all, and they for it); one of them schedules; an instance's lock is one at a time,
    /// and the next holder waits for it rather than being refused.
    #[tokio::test]
    async fn services_share_the_writer_lock_and_take_turns_at_an_instance() {
        let Some(db) = testing::TestDatabase::create("shared-locks").await else {
            return;
        };
        let a = db.store().await.unwrap();
        let b = db.store().await.unwrap();
        let sa = a
            .try_shared_writer_lock("roster serve (a:1)")
            .await
            .unwrap();
        let sb = b
            .try_shared_writer_lock("roster serve (b:2)")
            .await
            .unwrap();
        assert!(sa.is_some() && sb.is_some(), "two services side by side");
        assert!(
            a.try_writer_lock("roster apply (c:3)")
                .await
                .unwrap()
                .is_none(),
            "a CLI writer waits for the services"
        );
        drop((sa, sb));
        let mut alone = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while alone.is_none() {
            assert!(std::time::Instant::now() < deadline, "never freed");
            alone = a.try_writer_lock("roster apply (c:3)").await.unwrap();
        }
        assert!(
            b.try_shared_writer_lock("roster serve (b:2)")
                .await
                .unwrap()
                .is_none(),
            "a service waits for a CLI writer"
        );
        drop(alone);

        let first = a.try_scheduler_lock("scheduler (a:1)").await.unwrap();
        assert!(first.is_some());
        assert!(
            b.try_scheduler_lock("scheduler (b:2)")
                .await
                .unwrap()
                .is_none()
        );

        let held = a.lock_instance("run (a:1)", "marketo.acme").await.unwrap();
        // Another instance's lock is free; this one's waits until the holder lets go.
        let other = b.lock_instance("run (b:2)", "marketo.beta").await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn(async move {
            let got = b.lock_instance("run (b:2)", "marketo.acme").await.unwrap();
            let _ = tx.send(());
            got
        });
        let mut rx = rx;
        // Still waiting while the holder holds (a second is plenty for a free lock).
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(1), &mut rx)
                .await
                .is_err(),
            "the instance's lock was given twice"
        );
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(10), rx)
            .await
            .expect("the waiter gets the lock once it is let go")
            .unwrap();
        drop((waiter.await.unwrap(), other));
    }
}
