//! What `roster serve` keeps: its runs, the plans it holds for approval, API tokens (only
//! their SHA-256: a token is shown once and never stored) and webhook deliveries.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::{Result, StateStore, StoreError, from_ms, ms};

/// One reconcile (or apply) of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub id: i64,
    pub instance: String,
    /// What started it: `schedule`, `api:NAME`, `approval:PLAN`.
    pub trigger: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// `running`, `done`, `failed`, `refused`, `deferred`, `awaiting_approval`,
    /// `stopped` (shutdown) or `interrupted` (the process died).
    pub outcome: String,
    pub plan_id: Option<String>,
    pub summary: Option<String>,
    pub error: Option<String>,
    /// The run's events, as JSON.
    pub events: serde_json::Value,
}

/// What the job queue holds for one instance (PostgreSQL).
#[derive(Debug, Clone, Default)]
pub struct QueuedJobs {
    /// Jobs due now and waiting for a free process (or for the instance's run in progress).
    pub waiting: i64,
    pub due: Option<OffsetDateTime>,
}

/// The PostgreSQL schema the job library (graphile_worker) keeps its queue in, beside the
/// state's tables: jobs are work in flight, not history, so export leaves them out.
pub const JOB_SCHEMA: &str = "roster_jobs";

/// How a finished run ended.
#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    pub outcome: String,
    pub plan_id: Option<String>,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub events: serde_json::Value,
}

/// A plan the service computed and holds: pending approval, or decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePlan {
    pub plan_id: String,
    pub instance: String,
    /// `pending`, `approved`, `rejected`, `applied`, `failed` or `superseded`.
    pub status: String,
    /// Who asked for the run that made it (`schedule` or `api:NAME`).
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub destructive: i64,
    pub decided_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub comment: Option<String>,
    pub outcome: Option<String>,
}

/// A restore from a tombstone, asked for through the service: it waits for an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreRequest {
    pub id: i64,
    pub tombstone_id: i64,
    /// The service instance that restores it (`marketo.NAME`, `magento.NAME`).
    pub instance: String,
    /// `pending`, `approved`, `rejected`, `restored` or `failed`.
    pub status: String,
    /// `api:TOKEN-NAME`.
    pub requested_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub decided_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    pub comment: Option<String>,
    pub outcome: Option<String>,
}

fn restore_from(r: &AnyRow) -> RestoreRequest {
    RestoreRequest {
        id: r.get("id"),
        tombstone_id: r.get("tombstone_id"),
        instance: r.get("instance"),
        status: r.get("status"),
        requested_by: r.get("requested_by"),
        created_at: from_ms(r.get("created_at")),
        decided_by: r.get("decided_by"),
        decided_at: r.get::<Option<i64>, _>("decided_at").map(from_ms),
        comment: r.get("comment"),
        outcome: r.get("outcome"),
    }
}

/// An API token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// The console account it acts for; `None` for a service account (CI, a script),
    /// whose identity is the token's name.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// When it stops working, if it was made to expire.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

/// One webhook delivery and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub hook: String,
    pub event: String,
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub attempts: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub response_status: Option<i64>,
    /// The last failed attempt's error (kept once a retry succeeds).
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

fn run_from(r: &AnyRow) -> Result<Run> {
    let events: String = r.get("events");
    Ok(Run {
        id: r.get("id"),
        instance: r.get("instance"),
        trigger: r.get("trigger"),
        started_at: from_ms(r.get("started_at")),
        finished_at: r.get::<Option<i64>, _>("finished_at").map(from_ms),
        outcome: r.get("outcome"),
        plan_id: r.get("plan_id"),
        summary: r.get("summary"),
        error: r.get("error"),
        events: serde_json::from_str(&events).map_err(|e| StoreError::Corrupt {
            what: "run events",
            detail: e.to_string(),
        })?,
    })
}

fn plan_from(r: &AnyRow) -> ServicePlan {
    ServicePlan {
        plan_id: r.get("plan_id"),
        instance: r.get("instance"),
        status: r.get("status"),
        requested_by: r.get("requested_by"),
        created_at: from_ms(r.get("created_at")),
        destructive: r.get("destructive"),
        decided_by: r.get("decided_by"),
        decided_at: r.get::<Option<i64>, _>("decided_at").map(from_ms),
        comment: r.get("comment"),
        outcome: r.get("outcome"),
    }
}

fn token_from(r: &AnyRow) -> ApiToken {
    ApiToken {
        id: r.get("id"),
        name: r.get("name"),
        role: r.get("role"),
        account: r.get("account"),
        created_at: from_ms(r.get("created_at")),
        last_used_at: r.get::<Option<i64>, _>("last_used_at").map(from_ms),
        revoked_at: r.get::<Option<i64>, _>("revoked_at").map(from_ms),
        expires_at: r.get::<Option<i64>, _>("expires_at").map(from_ms),
    }
}

fn delivery_from(r: &AnyRow) -> Delivery {
    Delivery {
        id: r.get("id"),
        hook: r.get("hook"),
        event: r.get("event"),
        body: r.get("body"),
        created_at: from_ms(r.get("created_at")),
        attempts: r.get("attempts"),
        status: r.get("status"),
        response_status: r.get("response_status"),
        last_error: r.get("last_error"),
        delivered_at: r.get::<Option<i64>, _>("delivered_at").map(from_ms),
    }
}

/// The tables of bearer tokens, which keep their use and revocation the same way.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TokenTable {
    Api,
    Scim,
}

impl StateStore {
    // ---- runs ----

    pub async fn start_run(
        &self,
        instance: &str,
        trigger: &str,
        at: OffsetDateTime,
    ) -> Result<i64> {
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO service_runs (instance, trigger, started_at, outcome) VALUES ($1, $2, $3, 'running') RETURNING id",
        )
        .bind(instance)
        .bind(trigger)
        .bind(ms(at))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn finish_run(&self, id: i64, end: &RunEnd, at: OffsetDateTime) -> Result<()> {
        sqlx::query(
            "UPDATE service_runs SET finished_at = $1, outcome = $2, plan_id = $3, summary = $4, error = $5, events = $6 WHERE id = $7",
        )
        .bind(ms(at))
        .bind(&end.outcome)
        .bind(&end.plan_id)
        .bind(&end.summary)
        .bind(&end.error)
        .bind(end.events.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs a process left `running` when it died: they are `interrupted`. Returns how many.
    /// `instance` limits it to one instance's runs: with several processes sharing the
    /// state, only the holder of that instance's lock knows its runs are orphans.
    pub async fn interrupt_running_runs(
        &self,
        instance: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE service_runs SET outcome = 'interrupted', finished_at = $1, \
             error = 'the service stopped during this run; the next run resumes from the journal' \
             WHERE outcome = 'running' AND ($2 IS NULL OR instance = $2)",
        )
        .bind(ms(at))
        .bind(instance)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// The jobs waiting (not running, not given up) whose key starts with `prefix`: each
    /// key and when it is due. The queue's tables are the job library's, in `JOB_SCHEMA` of
    /// this state's PostgreSQL database: call this once it has made them.
    pub async fn waiting_jobs(&self, prefix: &str) -> Result<Vec<(String, OffsetDateTime)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT key, (extract(epoch FROM run_at) * 1000)::bigint FROM {JOB_SCHEMA}.jobs
             WHERE starts_with(key, $1) AND locked_at IS NULL AND attempts < max_attempts"
        )))
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(k, at)| (k, from_ms(at))).collect())
    }

    /// What the job queue holds, by queue (of one queue, or all): jobs due and waiting (not
    /// running, not given up), and when the first waiting one whose key starts with
    /// `prefix` is due. As `waiting_jobs`, once the job library has made its tables.
    pub async fn queued_jobs(
        &self,
        queue: Option<&str>,
        prefix: &str,
    ) -> Result<BTreeMap<String, QueuedJobs>> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT queue_name, count(*) FILTER (WHERE locked_at IS NULL AND run_at <= now()),
                    (extract(epoch FROM min(run_at) FILTER (WHERE starts_with(key, $2) AND locked_at IS NULL)) * 1000)::bigint
             FROM {JOB_SCHEMA}.jobs
             WHERE queue_name IS NOT NULL AND ($1::text IS NULL OR queue_name = $1)
               AND attempts < max_attempts
             GROUP BY queue_name"
        )))
        .bind(queue)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(queue, waiting, due)| {
                let due = due.map(from_ms);
                (queue, QueuedJobs { waiting, due })
            })
            .collect())
    }

    /// The newest `per_instance` runs of each instance (or of one), newest first within each.
    pub async fn recent_runs(&self, instance: Option<&str>, per_instance: i64) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM (
                SELECT *, row_number() OVER (PARTITION BY instance ORDER BY id DESC) AS recent
                FROM service_runs WHERE ($1 IS NULL OR instance = $1)
             ) AS r WHERE recent <= $2 ORDER BY instance, id DESC",
        )
        .bind(instance)
        .bind(per_instance)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    /// The newest runs first, of one instance or all, at most `limit`.
    pub async fn runs(&self, instance: Option<&str>, limit: i64) -> Result<Vec<Run>> {
        self.runs_before(instance, i64::MAX, limit).await
    }

    /// Runs with an id below `before`, newest first: the next page after a page ending at
    /// `before` (a cursor that holds while runs start).
    pub async fn runs_before(
        &self,
        instance: Option<&str>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM service_runs WHERE ($1 IS NULL OR instance = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(instance)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    /// The runs an access review asked for (`review:ID`, `review:ID verification`), oldest
    /// first; also the runs that applied its plan, when `plan_id` names it.
    pub async fn review_runs(&self, review: i64, plan_id: Option<&str>) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM service_runs WHERE trigger = $1 OR trigger LIKE $2 OR ($3 IS NOT NULL AND plan_id = $3) ORDER BY id",
        )
        .bind(format!("review:{review}"))
        .bind(format!("review:{review} %"))
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from).collect()
    }

    pub async fn run(&self, id: i64) -> Result<Option<Run>> {
        let row = sqlx::query("SELECT * FROM service_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from).transpose()
    }

    // ---- plans held by the service ----

    pub async fn hold_plan(&self, p: &ServicePlan) -> Result<()> {
        sqlx::query(
            "INSERT INTO service_plans (plan_id, instance, status, requested_by, created_at, destructive) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.plan_id)
        .bind(&p.instance)
        .bind(&p.status)
        .bind(&p.requested_by)
        .bind(ms(p.created_at))
        .bind(p.destructive)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Held plans, newest first, of one status or all.
    pub async fn held_plans(&self, status: Option<&str>) -> Result<Vec<ServicePlan>> {
        let rows = sqlx::query(
            "SELECT * FROM service_plans WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC, plan_id",
        )
        .bind(status)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(plan_from).collect())
    }

    /// A held plan and the plan itself (its JSON body).
    pub async fn held_plan(&self, plan_id: &str) -> Result<Option<(ServicePlan, String)>> {
        let row = sqlx::query(
            "SELECT s.*, p.body FROM service_plans s JOIN plans p ON p.id = s.plan_id WHERE s.plan_id = $1",
        )
        .bind(plan_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (plan_from(&r), r.get("body"))))
    }

    /// Records a decision or an outcome. `from` is the status it must still have (so two
    /// approvers racing cannot both decide); returns whether it changed.
    pub async fn set_held_plan_status(
        &self,
        plan_id: &str,
        from: &[&str],
        to: &str,
        decided_by: Option<&str>,
        comment: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM service_plans WHERE plan_id = $1")
                .bind(plan_id)
                .fetch_optional(&mut *tx)
                .await?;
        if !status.is_some_and(|s| from.contains(&s.as_str())) {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE service_plans SET status = $1, decided_by = COALESCE($2, decided_by), \
             decided_at = CASE WHEN $3 IS NULL THEN decided_at ELSE $4 END, comment = COALESCE($5, comment) WHERE plan_id = $6",
        )
        .bind(to)
        .bind(decided_by)
        .bind(decided_by)
        .bind(ms(at))
        .bind(comment)
        .bind(plan_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records how applying a held plan ended (`applied` or `failed`, with a message).
    pub async fn set_held_plan_outcome(
        &self,
        plan_id: &str,
        status: &str,
        outcome: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE service_plans SET status = $1, outcome = $2 WHERE plan_id = $3")
            .bind(status)
            .bind(outcome)
            .bind(plan_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- restore requests ----

    /// Records a restore request, unless one for the same tombstone is still open
    /// (`pending` or `approved`): then that one's id comes back with `false`.
    pub async fn request_restore(
        &self,
        tombstone_id: i64,
        instance: &str,
        requested_by: &str,
        at: OffsetDateTime,
    ) -> Result<(i64, bool)> {
        let mut tx = self.write_tx().await?;
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM restore_requests WHERE tombstone_id = $1 AND status IN ('pending', 'approved')",
        )
        .bind(tombstone_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = open {
            return Ok((id, false));
        }
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO restore_requests (tombstone_id, instance, status, requested_by, created_at) VALUES ($1, $2, 'pending', $3, $4) RETURNING id",
        )
        .bind(tombstone_id)
        .bind(instance)
        .bind(requested_by)
        .bind(ms(at))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((id, true))
    }

    pub async fn restore_requests(&self, status: Option<&str>) -> Result<Vec<RestoreRequest>> {
        let rows = sqlx::query(
            "SELECT * FROM restore_requests WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC",
        )
        .bind(status)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(restore_from).collect())
    }

    pub async fn restore_request(&self, id: i64) -> Result<Option<RestoreRequest>> {
        let row = sqlx::query("SELECT * FROM restore_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(restore_from))
    }

    /// Moves a request from one of `from` to `to` (a decision when `decided_by` is given,
    /// an outcome otherwise); returns whether it was in one of `from`.
    pub async fn set_restore_status(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        decided_by: Option<&str>,
        text: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM restore_requests WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if !status.is_some_and(|s| from.contains(&s.as_str())) {
            return Ok(false);
        }
        let query = if decided_by.is_some() {
            "UPDATE restore_requests SET status = $1, decided_by = $2, decided_at = $3, comment = $4 WHERE id = $5"
        } else {
            "UPDATE restore_requests SET status = $1, decided_by = COALESCE($2, decided_by), decided_at = COALESCE(decided_at, $3), outcome = $4 WHERE id = $5"
        };
        sqlx::query(query)
            .bind(to)
            .bind(decided_by)
            .bind(ms(at))
            .bind(text)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- API tokens ----

    /// Adds a token by its hash. A name already in use is refused.
    /// A service account's token: its identity is `name`.
    pub async fn add_token(
        &self,
        name: &str,
        role: &str,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<i64> {
        self.add_token_for(name, role, None, hash, at).await
    }

    /// A token acting for console account `account` (or, with `None`, a service account).
    pub async fn add_token_for(
        &self,
        name: &str,
        role: &str,
        account: Option<&str>,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<i64> {
        self.add_token_until(name, role, account, hash, at, None)
            .await
    }

    /// [`StateStore::add_token_for`] with an expiry.
    pub async fn add_token_until(
        &self,
        name: &str,
        role: &str,
        account: Option<&str>,
        hash: &str,
        at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<i64> {
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Duplicate {
                what: "API token",
                name: name.to_string(),
            });
        }
        Ok(
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO api_tokens (name, role, hash, created_at, account, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(name)
            .bind(role)
            .bind(hash)
            .bind(ms(at))
            .bind(account)
            .bind(expires_at.map(ms))
            .fetch_one(&self.pool)
            .await?,
        )
    }

    /// The live (not revoked) token with this hash, marking it used.
    /// The name of the live token `hash` is and when it expired, if it has: what a refusal
    /// tells its user instead of "unknown".
    pub async fn expired_token(
        &self,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<Option<(String, OffsetDateTime)>> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| token_from(&r))
            .and_then(|t| t.expires_at.filter(|u| *u <= at).map(|u| (t.name, u))))
    }

    /// The live token `hash` is (not revoked, not expired), marked used.
    pub async fn use_token(&self, hash: &str, at: OffsetDateTime) -> Result<Option<ApiToken>> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let token = token_from(&row);
        if token.expires_at.is_some_and(|until| until <= at) {
            return Ok(None);
        }
        self.mark_used(TokenTable::Api, token.id, token.last_used_at, at)
            .await?;
        Ok(Some(token))
    }

    /// Records that a token (an API token or a SCIM connection's) was used at `at`; at most
    /// once a minute, as a busy client should not turn reads into writes.
    pub(crate) async fn mark_used(
        &self,
        table: TokenTable,
        id: i64,
        last_used_at: Option<OffsetDateTime>,
        at: OffsetDateTime,
    ) -> Result<()> {
        if last_used_at.is_none_or(|t| at - t > time::Duration::minutes(1)) {
            let sql = match table {
                TokenTable::Api => "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
                TokenTable::Scim => "UPDATE scim_connections SET last_used_at = $1 WHERE id = $2",
            };
            sqlx::query(sql)
                .bind(ms(at))
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Revokes the live token `name` of `table`; returns whether there was one.
    pub(crate) async fn revoke_named(
        &self,
        table: TokenTable,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let sql = match table {
            TokenTable::Api => {
                "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL"
            }
            TokenTable::Scim => {
                "UPDATE scim_connections SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL"
            }
        };
        Ok(sqlx::query(sql)
            .bind(ms(at))
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// Rotates the live token `name`: the old one is renamed `retired` and works until
    /// `old_until`; a new one (`hash`) takes the name with the same role and holder. One
    /// transaction, so there is never a moment with neither or with two of one name.
    pub async fn rotate_token(
        &self,
        name: &str,
        retired: &str,
        old_until: OffsetDateTime,
        hash: &str,
        at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE api_tokens SET name = $1, expires_at = $2 WHERE name = $3 AND revoked_at IS NULL",
        )
        .bind(retired)
        .bind(ms(old_until))
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO api_tokens (name, role, hash, created_at, account, expires_at) SELECT $1, role, $2, $3, account, $4 FROM api_tokens WHERE name = $5",
        )
        .bind(name)
        .bind(hash)
        .bind(ms(at))
        .bind(expires_at.map(ms))
        .bind(retired)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(token_from).collect())
    }

    /// Revokes the token `name`; returns whether there was a live one.
    pub async fn revoke_token(&self, name: &str, at: OffsetDateTime) -> Result<bool> {
        self.revoke_named(TokenTable::Api, name, at).await
    }

    // ---- webhook deliveries ----

    pub async fn add_delivery(
        &self,
        hook: &str,
        event: &str,
        body: &str,
        at: OffsetDateTime,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "INSERT INTO webhook_deliveries (hook, event, body, created_at, status) VALUES ($1, $2, $3, $4, 'pending') RETURNING id",
        )
        .bind(hook)
        .bind(event)
        .bind(body)
        .bind(ms(at))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records one attempt: `delivered` with the receiver's status, or still `pending` /
    /// finally `failed` with the error.
    pub async fn record_attempt(
        &self,
        id: i64,
        status: &str,
        response_status: Option<u16>,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, response_status = $2, last_error = COALESCE($3, last_error), \
             delivered_at = CASE WHEN $4 = 'delivered' THEN $5 ELSE delivered_at END WHERE id = $6",
        )
        .bind(status)
        .bind(response_status.map(i64::from))
        .bind(error)
        .bind(status)
        .bind(ms(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries still to be made (a process stopped or died before it finished them),
    /// oldest first.
    pub async fn pending_deliveries(&self) -> Result<Vec<Delivery>> {
        let rows =
            sqlx::query("SELECT * FROM webhook_deliveries WHERE status = 'pending' ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(delivery_from).collect())
    }

    pub async fn delivery(&self, id: i64) -> Result<Option<Delivery>> {
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(delivery_from))
    }

    /// Ends a delivery that cannot be made, saying why.
    pub async fn abandon_delivery(&self, id: i64, why: &str) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = $1 WHERE id = $2",
        )
        .bind(why)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries newest first, at most `limit`.
    pub async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>> {
        let rows = sqlx::query("SELECT * FROM webhook_deliveries ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(delivery_from).collect())
    }
}

/// What the service's retention removes: each `Some` is a cut-off time, older is pruned.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Finished runs (with their events).
    pub runs: Option<OffsetDateTime>,
    /// The events of finished runs (the run's row and summary stay).
    pub run_events: Option<OffsetDateTime>,
    /// Console sessions not used since.
    pub sessions: Option<OffsetDateTime>,
    /// Webhook deliveries that are final (delivered or failed).
    pub deliveries: Option<OffsetDateTime>,
    /// Access history that ended before.
    pub access_history: Option<OffsetDateTime>,
}

/// How many rows a prune removed or emptied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub run_events: u64,
    pub sessions: u64,
    pub deliveries: u64,
    pub access_history: u64,
}

impl StateStore {
    /// Applies the retention: never the audit log, tombstones, plans or approvals, which
    /// are the evidence; only what the service keeps for operators.
    pub async fn prune(&self, r: &Retention) -> Result<Pruned> {
        // Each statement with its cut-off, run only when the retention gives one.
        let run = |sql: &'static str, at: Option<OffsetDateTime>| async move {
            let Some(at) = at else { return Ok(0) };
            Ok::<_, crate::StoreError>(
                sqlx::query(sql)
                    .bind(crate::ms(at))
                    .execute(&self.pool)
                    .await?
                    .rows_affected(),
            )
        };
        let out = Pruned {
            runs: run(
                "DELETE FROM service_runs WHERE finished_at IS NOT NULL AND finished_at < $1",
                r.runs,
            )
            .await?,
            run_events: run(
                "UPDATE service_runs SET events = '[]' WHERE finished_at IS NOT NULL AND finished_at < $1 AND events <> '[]'",
                r.run_events,
            )
            .await?,
            sessions: run(
                "DELETE FROM console_sessions WHERE last_seen_at < $1",
                r.sessions,
            )
            .await?,
            deliveries: run(
                "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND created_at < $1",
                r.deliveries,
            )
            .await?,
            access_history: run(
                "DELETE FROM access_history WHERE until IS NOT NULL AND until < $1",
                r.access_history,
            )
            .await?,
        };
        Ok(out)
    }
}
