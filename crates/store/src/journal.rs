//! Plans, the journal of their steps, and the audit log.
//!
//! A step is journaled `started` before its call and `done` or `failed` after, under a key
//! unique to that step of that plan. A rerun skips `done` steps and re-runs the others with
//! "already done" counted as success, so a crash at any moment loses nothing and repeats
//! nothing. The audit log is append-only: SQLite triggers refuse UPDATE and DELETE.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Backend, Result, StateStore, StoreError, from_ms, ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Begun; whether its call reached the app is unknown.
    Started,
    Done,
    Failed,
}

impl StepStatus {
    fn as_str(self) -> &'static str {
        match self {
            StepStatus::Started => "started",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "started" => Some(StepStatus::Started),
            "done" => Some(StepStatus::Done),
            "failed" => Some(StepStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub step: usize,
    pub key: String,
    pub status: StepStatus,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub by: String,
    pub os_user: String,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: i64,
    pub at: OffsetDateTime,
    /// Who Roster was told is acting (`--actor`, `ROSTER_ACTOR`), else the OS account.
    pub actor: String,
    /// The operating-system account the process ran as.
    pub os_user: String,
    pub plan_id: Option<String>,
    pub step_key: Option<String>,
    pub app: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
    /// The instance of `app` the line's plan was applied to (its Marketo or Magento base
    /// URL), from the plan's recorded scope: several instances share one state, and the
    /// same account can be on each. `None` for lines without a plan, or from before the
    /// scope was recorded. Not part of the line's hash: it is read from the plan.
    pub instance: Option<String>,
    /// The hash of the row before (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this row's content: see [`row_hash`].
    pub hash: String,
}

/// A new audit-log line (the id and time are assigned when it is written).
#[derive(Debug, Clone, Default)]
pub struct NewLogEntry {
    pub actor: String,
    pub os_user: String,
    pub plan_id: Option<String>,
    pub step_key: Option<String>,
    pub app: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
}

impl StateStore {
    /// Records a plan (once; saving it again changes nothing).
    /// Records which app instances plan `id` is applied to (the first answer stands): see
    /// [`Unfinished::scope`].
    pub async fn set_plan_scope(&self, id: &str, scope: &str) -> Result<()> {
        sqlx::query("UPDATE plans SET scope = $1 WHERE id = $2 AND scope IS NULL")
            .bind(scope)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn save_plan(&self, id: &str, created_at: OffsetDateTime, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO plans (id, created_at, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
            .bind(id)
            .bind(ms(created_at))
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an approval of the plan whose content has `digest`, with its audit-log
    /// line, in one transaction. An approval covers that content only: an edited plan has
    /// another digest and no approval.
    pub async fn approve_plan(
        &self,
        id: &str,
        digest: &str,
        approval: &Approval,
        log: &NewLogEntry,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO approvals (plan_id, digest, approved_by, os_user, approved_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (plan_id, digest) DO NOTHING",
        )
        .bind(id)
        .bind(digest)
        .bind(&approval.by)
        .bind(&approval.os_user)
        .bind(ms(approval.at))
        .execute(&mut *tx)
        .await?;
        insert_log(self.backend, &mut tx, log, approval.at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The approval of the plan `id` with content `digest`, if there is one.
    pub async fn approval(&self, id: &str, digest: &str) -> Result<Option<Approval>> {
        let row = sqlx::query(
            "SELECT approved_by, os_user, approved_at FROM approvals WHERE plan_id = $1 AND digest = $2",
        )
        .bind(id)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Approval {
            by: r.get(0),
            os_user: r.get(1),
            at: from_ms(r.get(2)),
        }))
    }

    /// Steps of any plan that started and never finished: a crash between the call and
    /// its record. Oldest first.
    pub async fn unfinished_steps(&self) -> Result<Vec<Unfinished>> {
        let rows = sqlx::query(
            "SELECT j.plan_id, j.step, j.key, p.body, p.scope FROM journal j JOIN plans p ON p.id = j.plan_id \
             WHERE j.status = 'started' ORDER BY j.started_at, j.plan_id, j.step",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Unfinished {
                plan_id: r.get(0),
                step: r.get::<i64, _>(1) as usize,
                key: r.get(2),
                plan_body: r.get(3),
                scope: r.get(4),
            })
            .collect())
    }

    pub async fn journal(&self, plan_id: &str) -> Result<Vec<JournalEntry>> {
        let rows = sqlx::query(
            "SELECT step, key, status, detail FROM journal WHERE plan_id = $1 ORDER BY step",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.get(2);
                Ok(JournalEntry {
                    step: r.get::<i64, _>(0) as usize,
                    key: r.get(1),
                    status: StepStatus::parse(&status).ok_or(StoreError::Corrupt {
                        what: "journal status",
                        detail: status.clone(),
                    })?,
                    detail: r.get(3),
                })
            })
            .collect()
    }

    /// Marks a step begun, before anything is sent for it.
    pub async fn step_started(
        &self,
        plan_id: &str,
        step: usize,
        key: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO journal (plan_id, step, key, status, started_at) VALUES ($1, $2, $3, 'started', $4) \
             ON CONFLICT (plan_id, step) DO UPDATE SET status = 'started', started_at = excluded.started_at, finished_at = NULL",
        )
        .bind(plan_id)
        .bind(step as i64)
        .bind(key)
        .bind(ms(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a step ended and its audit-log line in one transaction, so a crash
    /// never leaves one without the other.
    pub async fn finish_step(
        &self,
        plan_id: &str,
        step: usize,
        status: StepStatus,
        detail: Option<&str>,
        log: &NewLogEntry,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE journal SET status = $1, detail = $2, finished_at = $3 WHERE plan_id = $4 AND step = $5")
            .bind(status.as_str())
            .bind(detail)
            .bind(ms(at))
            .bind(plan_id)
            .bind(step as i64)
            .execute(&mut *tx)
            .await?;
        insert_log(self.backend, &mut tx, log, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a step left `started` by a crash never ran: no write happened, so no
    /// audit-log line; a rerun of its plan runs it.
    pub async fn step_not_run(
        &self,
        plan_id: &str,
        step: usize,
        detail: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("UPDATE journal SET status = 'failed', detail = $1, finished_at = $2 WHERE plan_id = $3 AND step = $4 AND status = 'started'")
            .bind(detail)
            .bind(ms(at))
            .bind(plan_id)
            .bind(step as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn append_log(&self, entry: &NewLogEntry, at: OffsetDateTime) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_log(self.backend, &mut tx, entry, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit log, oldest first, optionally for one plan.
    pub async fn log(&self, plan_id: Option<&str>) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(
            "SELECT a.id, a.at, a.actor, a.os_user, a.plan_id, a.step_key, a.app, a.action, a.target, \
                    a.outcome, a.detail, a.prev_hash, a.hash, p.scope \
             FROM audit_log a LEFT JOIN plans p ON p.id = a.plan_id \
             WHERE ($1 IS NULL OR a.plan_id = $1) ORDER BY a.id",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| LogEntry {
                id: r.get(0),
                at: from_ms(r.get(1)),
                actor: r.get(2),
                os_user: r.get(3),
                plan_id: r.get(4),
                step_key: r.get(5),
                app: r.get(6),
                action: r.get(7),
                target: r.get(8),
                outcome: r.get(9),
                detail: r.get(10),
                instance: r.get::<Option<String>, _>(13).and_then(|scope| {
                    scope_instance(&scope, &r.get::<String, _>(6)).map(String::from)
                }),
                prev_hash: r.get::<Option<String>, _>(11).unwrap_or_default(),
                hash: r.get::<Option<String>, _>(12).unwrap_or_default(),
            })
            .collect())
    }

    /// Checks the whole log's hash chain. `Ok(rows)` when every row chains to the one
    /// before and its hash matches its content; otherwise where the chain first breaks.
    pub async fn verify_log(&self) -> Result<std::result::Result<usize, ChainBreak>> {
        let entries = self.log(None).await?;
        let mut prev = GENESIS.to_string();
        let mut prev_id = 0;
        for e in &entries {
            if e.id != prev_id + 1 {
                return Ok(Err(ChainBreak {
                    id: e.id,
                    why: format!(
                        "rows {} to {} are missing (deleted) before row {}",
                        prev_id + 1,
                        e.id - 1,
                        e.id
                    ),
                }));
            }
            prev_id = e.id;
            if e.prev_hash != prev {
                return Ok(Err(ChainBreak {
                    id: e.id,
                    why: format!(
                        "row {} does not chain to the row before it (a row was removed, inserted or reordered before it)",
                        e.id
                    ),
                }));
            }
            if row_hash(&prev, e.id, e.at, &as_new(e)) != e.hash {
                return Ok(Err(ChainBreak {
                    id: e.id,
                    why: format!(
                        "row {}'s content does not match its hash (the row was edited)",
                        e.id
                    ),
                }));
            }
            prev = e.hash.clone();
        }
        Ok(Ok(entries.len()))
    }
}

/// Where a log's hash chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub id: i64,
    pub why: String,
}

/// A journal row whose step started and never finished.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub plan_id: String,
    pub step: usize,
    pub key: String,
    pub plan_body: String,
    /// The app instances the plan was applied to, `app=instance` pairs joined by `;`
    /// (`None` for plans applied before Roster recorded it). Instances share the state, and
    /// a step is settled against its own instance only: another's accounts say nothing
    /// about whether it ran.
    pub scope: Option<String>,
}

impl Unfinished {
    /// The instance of `app` the plan was applied to, if recorded.
    pub fn instance_of(&self, app: &str) -> Option<&str> {
        scope_instance(self.scope.as_deref()?, app)
    }
}

/// The instance of `app` in a plan's scope (`app=instance` pairs joined by `;`).
fn scope_instance<'a>(scope: &'a str, app: &str) -> Option<&'a str> {
    scope.split(';').find_map(|pair| {
        let (a, instance) = pair.split_once('=')?;
        (a == app).then_some(instance)
    })
}

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn as_new(e: &LogEntry) -> NewLogEntry {
    NewLogEntry {
        actor: e.actor.clone(),
        os_user: e.os_user.clone(),
        plan_id: e.plan_id.clone(),
        step_key: e.step_key.clone(),
        app: e.app.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        outcome: e.outcome.clone(),
        detail: e.detail.clone(),
    }
}

/// SHA-256 over the previous row's hash and this row's fields, encoded as one JSON array
/// so no two different rows serialise alike.
pub fn row_hash(prev: &str, id: i64, at: OffsetDateTime, e: &NewLogEntry) -> String {
    let text = serde_json::json!([
        prev,
        id,
        ms(at),
        e.actor,
        e.os_user,
        e.plan_id,
        e.step_key,
        e.app,
        e.action,
        e.target,
        e.outcome,
        e.detail
    ])
    .to_string();
    roster_domain::sha256::hex(text.as_bytes())
}

/// Fills in the chain for rows written before the log was chained (schema step 4).
pub(crate) async fn backfill_chain(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    let rows = sqlx::query(
        "SELECT id, at, actor, os_user, plan_id, step_key, app, action, target, outcome, detail, hash FROM audit_log ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    if rows
        .iter()
        .all(|r| r.get::<Option<String>, _>(11).is_some())
    {
        return Ok(());
    }
    sqlx::raw_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        .execute(&mut **tx)
        .await?;
    let mut prev = GENESIS.to_string();
    for r in &rows {
        let id: i64 = r.get(0);
        let entry = NewLogEntry {
            actor: r.get(2),
            os_user: r.get(3),
            plan_id: r.get(4),
            step_key: r.get(5),
            app: r.get(6),
            action: r.get(7),
            target: r.get(8),
            outcome: r.get(9),
            detail: r.get(10),
        };
        let hash = row_hash(&prev, id, from_ms(r.get(1)), &entry);
        sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE id = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        prev = hash;
    }
    sqlx::raw_sql(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends a row chained to the last one. Callers hold an IMMEDIATE transaction, so no
/// other writer can slip a row in between reading the last hash and writing this one.
pub(crate) async fn insert_log(
    backend: Backend,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry: &NewLogEntry,
    at: OffsetDateTime,
) -> Result<()> {
    let last = sqlx::query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let (id, prev) = match last {
        Some(r) => (
            r.get::<i64, _>(0) + 1,
            r.get::<Option<String>, _>(1).unwrap_or_default(),
        ),
        None => (1, GENESIS.to_string()),
    };
    // Row ids are never reused (SQLite's AUTOINCREMENT, PostgreSQL's `audit_log_head`), so
    // a deleted last row leaves a gap the next id would hide; take the larger. Both counters
    // are rows written in this transaction: an append that rolls back (a process killed
    // mid-write) gives its id back instead of leaving a gap that reads as a deletion.
    let next: i64 = match backend {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0) + 1",
        )
        .fetch_one(&mut **tx)
        .await?,
        Backend::Postgres => {
            sqlx::query_scalar("SELECT last_id + 1 FROM audit_log_head")
                .fetch_one(&mut **tx)
                .await?
        }
    };
    let id = id.max(next);
    if backend == Backend::Postgres {
        sqlx::query("UPDATE audit_log_head SET last_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    let hash = row_hash(&prev, id, at, entry);
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, os_user, plan_id, step_key, app, action, target, outcome, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(ms(at))
    .bind(&entry.actor)
    .bind(&entry.os_user)
    .bind(&entry.plan_id)
    .bind(&entry.step_key)
    .bind(&entry.app)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.outcome)
    .bind(&entry.detail)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
