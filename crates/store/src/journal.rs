//! Plans, the journal of their steps, and the audit log.
//!
//! A step is journaled `started` before its call and `done` or `failed` after, under a key
//! unique to that step of that plan. A rerun skips `done` steps and re-runs the others with
//! "already done" counted as success, so a crash at any moment loses nothing and repeats
//! nothing. The audit log is append-only: SQLite triggers refuse UPDATE and DELETE.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, StateStore, StoreError, from_ms, ms};

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
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    pub plan_id: Option<String>,
    pub step_key: Option<String>,
    pub app: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
}

/// A new audit-log line (the id and time are assigned when it is written).
#[derive(Debug, Clone, Default)]
pub struct NewLogEntry {
    pub actor: String,
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
    pub async fn save_plan(&self, id: &str, created_at: OffsetDateTime, body: &str) -> Result<()> {
        sqlx::query("INSERT OR IGNORE INTO plans (id, created_at, body) VALUES (?, ?, ?)")
            .bind(id)
            .bind(ms(created_at))
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn approve_plan(&self, id: &str, by: &str, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE plans SET approved_by = ?, approved_at = ? WHERE id = ?")
            .bind(by)
            .bind(ms(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn approval(&self, id: &str) -> Result<Option<Approval>> {
        let row = sqlx::query(
            "SELECT approved_by, approved_at FROM plans WHERE id = ? AND approved_by IS NOT NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Approval {
            by: r.get(0),
            at: from_ms(r.get(1)),
        }))
    }

    pub async fn journal(&self, plan_id: &str) -> Result<Vec<JournalEntry>> {
        let rows = sqlx::query(
            "SELECT step, key, status, detail FROM journal WHERE plan_id = ? ORDER BY step",
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
            "INSERT INTO journal (plan_id, step, key, status, started_at) VALUES (?, ?, ?, 'started', ?) \
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE journal SET status = ?, detail = ?, finished_at = ? WHERE plan_id = ? AND step = ?")
            .bind(status.as_str())
            .bind(detail)
            .bind(ms(at))
            .bind(plan_id)
            .bind(step as i64)
            .execute(&mut *tx)
            .await?;
        insert_log(&mut tx, log, at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn append_log(&self, entry: &NewLogEntry, at: OffsetDateTime) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_log(&mut tx, entry, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit log, oldest first, optionally for one plan.
    pub async fn log(&self, plan_id: Option<&str>) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, plan_id, step_key, app, action, target, outcome, detail FROM audit_log \
             WHERE (?1 IS NULL OR plan_id = ?1) ORDER BY id",
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
                plan_id: r.get(3),
                step_key: r.get(4),
                app: r.get(5),
                action: r.get(6),
                target: r.get(7),
                outcome: r.get(8),
                detail: r.get(9),
            })
            .collect())
    }
}

async fn insert_log(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    entry: &NewLogEntry,
    at: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, plan_id, step_key, app, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ms(at))
    .bind(&entry.actor)
    .bind(&entry.plan_id)
    .bind(&entry.step_key)
    .bind(&entry.app)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.outcome)
    .bind(&entry.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
