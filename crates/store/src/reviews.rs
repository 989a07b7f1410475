//! Access reviews in the state: campaigns, their items and decisions, and the revocations
//! closed campaigns made. Every change that an auditor relies on (the snapshot's digest,
//! each decision, the close) is written with its audit-log row in one transaction: the log
//! row is signed, so evidence checks the rows here against it rather than trusting them.

use roster_domain::desired::App;
use roster_domain::inventory::AccountKind;
use roster_domain::review::{Item, Revocation};
use sqlx::Row;
use time::OffsetDateTime;

use crate::journal::{LogEntry, NewLogEntry, entry_of, insert_log, log_columns};
use crate::{Result, StateStore, StoreError, from_ms, ms};

/// A campaign as stored (its snapshot apart: see [`StateStore::review_snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub id: i64,
    pub instance: String,
    pub app: String,
    pub scope: String,
    pub reviewers: String,
    /// `keep`, `revoke` or `escalate`: what happens to open items at the due date.
    pub on_due: String,
    pub due_at: OffsetDateTime,
    /// `snapshotting`, `open`, `remediating`, `done`, `failed`.
    pub status: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub closed_by: Option<String>,
    pub closed_at: Option<OffsetDateTime>,
    pub snapshot_digest: Option<String>,
    pub plan_id: Option<String>,
    pub note: Option<String>,
    /// When its reminder went out.
    pub reminded_at: Option<OffsetDateTime>,
    /// When its due date was acted on (`review.overdue`, then its `on_due` rule).
    pub due_handled_at: Option<OffsetDateTime>,
}

/// What starting a campaign records.
pub struct NewReview<'a> {
    pub instance: &'a str,
    pub app: App,
    pub scope: &'a str,
    pub reviewers: &'a str,
    pub on_due: &'a str,
    pub due_at: OffsetDateTime,
    pub created_by: &'a str,
}

/// One item with its decision and remediation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub item: Item,
    /// `None` while nobody decided.
    pub decision: Option<String>,
    pub keep_roles: Vec<String>,
    pub comment: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    /// Decided together with other items in one request.
    pub bulk: bool,
    /// Seconds since the same reviewer's previous decision in this campaign (none for the
    /// first): a rubber stamp shows as a run of zeros.
    pub seconds: Option<i64>,
    /// The signed audit-log row that records the decision.
    pub log_id: Option<i64>,
    /// `pending` (revoked, not yet seen gone), `remediated`, or `None`.
    pub remediation: Option<String>,
    pub remediated_at: Option<OffsetDateTime>,
}

/// A campaign's snapshot as kept: its text, SHA-256, and completeness figures (JSON).
pub struct Snapshot<'a> {
    pub text: &'a str,
    pub digest: &'a str,
    pub completeness: &'a str,
}

/// A campaign's items counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewTallies {
    pub items: usize,
    pub decided: usize,
    pub revoked: usize,
    pub remediated: usize,
    pub pending: usize,
}

/// How far a campaign is, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReviewCounts {
    pub items: usize,
    pub decided: usize,
    /// Open items of the reviewer asked about.
    pub mine_open: usize,
}

/// A decision to record.
pub struct NewDecision<'a> {
    pub decision: &'a str,
    pub keep_roles: &'a [String],
    pub comment: Option<&'a str>,
    pub by: &'a str,
    pub bulk: bool,
}

macro_rules! review_columns {
    () => {
        "id, instance, app, scope, reviewers, on_due, due_at, status, created_by, created_at, closed_by, closed_at, snapshot_digest, plan_id, note, reminded_at, due_handled_at"
    };
}
macro_rules! item_columns {
    () => {
        "body, decision, keep_roles, comment, decided_by, decided_at, bulk, seconds, log_id, remediation, remediated_at"
    };
}

fn review_of(r: &sqlx::any::AnyRow) -> Review {
    Review {
        id: r.get(0),
        instance: r.get(1),
        app: r.get(2),
        scope: r.get(3),
        reviewers: r.get(4),
        on_due: r.get(5),
        due_at: from_ms(r.get(6)),
        status: r.get(7),
        created_by: r.get(8),
        created_at: from_ms(r.get(9)),
        closed_by: r.get(10),
        closed_at: r.get::<Option<i64>, _>(11).map(from_ms),
        snapshot_digest: r.get(12),
        plan_id: r.get(13),
        note: r.get(14),
        reminded_at: r.get::<Option<i64>, _>(15).map(from_ms),
        due_handled_at: r.get::<Option<i64>, _>(16).map(from_ms),
    }
}

fn item_of(r: &sqlx::any::AnyRow) -> Result<ReviewItem> {
    let body: String = r.get(0);
    let item: Item = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
        what: "review item",
        detail: e.to_string(),
    })?;
    let keep: Option<String> = r.get(2);
    Ok(ReviewItem {
        item,
        decision: r.get(1),
        keep_roles: keep
            .map(|k| serde_json::from_str(&k).unwrap_or_default())
            .unwrap_or_default(),
        comment: r.get(3),
        decided_by: r.get(4),
        decided_at: r.get::<Option<i64>, _>(5).map(from_ms),
        bulk: r.get::<i64, _>(6) != 0,
        seconds: r.get(7),
        log_id: r.get(8),
        remediation: r.get(9),
        remediated_at: r.get::<Option<i64>, _>(10).map(from_ms),
    })
}

/// Marks a change to a campaign's items (see [`StateStore::review_revision`]).
async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: i64) -> Result<()> {
    sqlx::query("UPDATE reviews SET revision = revision + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl StateStore {
    /// How often the campaign's items changed: equal revisions, equal items.
    pub async fn review_revision(&self, id: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT revision FROM reviews WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The completeness figures of the campaign's snapshot (JSON), without the snapshot.
    pub async fn review_completeness(&self, id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT completeness FROM reviews WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Items and decided items per reviewer, counted in the database.
    pub async fn review_progress(&self, id: i64) -> Result<Vec<(String, usize, usize)>> {
        let rows = sqlx::query(
            "SELECT reviewer, COUNT(*), COUNT(decision) FROM review_items WHERE review_id = $1 GROUP BY reviewer ORDER BY reviewer",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get::<i64, _>(1) as usize,
                    r.get::<i64, _>(2) as usize,
                )
            })
            .collect())
    }

    /// A campaign's items counted: all, decided, revoked (awaiting or remediated),
    /// remediated, pending remediation.
    pub async fn review_tallies(&self, id: i64) -> Result<ReviewTallies> {
        let r = sqlx::query(
            "SELECT COUNT(*), COUNT(decision), COUNT(remediation), \
             COALESCE(SUM(CASE WHEN remediation = 'remediated' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN remediation = 'pending' THEN 1 ELSE 0 END), 0) \
             FROM review_items WHERE review_id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let n = |i: usize| r.get::<i64, _>(i) as usize;
        Ok(ReviewTallies {
            items: n(0),
            decided: n(1),
            revoked: n(2),
            remediated: n(3),
            pending: n(4),
        })
    }

    /// Records a new campaign, `snapshotting` until its read is in.
    pub async fn create_review(&self, new: &NewReview<'_>, at: OffsetDateTime) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "INSERT INTO reviews (instance, app, scope, reviewers, on_due, due_at, status, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'snapshotting', $7, $8) RETURNING id",
        )
        .bind(new.instance)
        .bind(new.app.name())
        .bind(new.scope)
        .bind(new.reviewers)
        .bind(new.on_due)
        .bind(ms(new.due_at))
        .bind(new.created_by)
        .bind(ms(at))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Keeps the campaign's snapshot and its items, and opens it; `log` (whose detail names
    /// the snapshot's digest) is written in the same transaction.
    pub async fn open_review(
        &self,
        id: i64,
        snapshot: &Snapshot<'_>,
        items: &[Item],
        log: &NewLogEntry,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE reviews SET status = 'open', snapshot = $1, snapshot_digest = $2, completeness = $3, revision = revision + 1 WHERE id = $4 AND status = 'snapshotting'",
        )
        .bind(snapshot.text)
        .bind(snapshot.digest)
        .bind(snapshot.completeness)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Corrupt {
                what: "review",
                detail: format!("review {id} is not waiting for its snapshot"),
            });
        }
        for item in items {
            sqlx::query(
                "INSERT INTO review_items (review_id, id, body, email, reviewer) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(item.id)
            .bind(serde_json::to_string(item).map_err(|e| StoreError::Corrupt { what: "review item", detail: e.to_string() })?)
            .bind(&item.email)
            .bind(&item.reviewer)
            .execute(&mut *tx)
            .await?;
        }
        insert_log(self, &mut tx, log, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A campaign whose snapshot could not be taken: `failed`, saying why.
    pub async fn fail_review(&self, id: i64, note: &str) -> Result<()> {
        sqlx::query("UPDATE reviews SET status = 'failed', note = $1 WHERE id = $2")
            .bind(note)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn reviews(&self) -> Result<Vec<Review>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            review_columns!(),
            " FROM reviews ORDER BY id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(review_of).collect())
    }

    pub async fn review(&self, id: i64) -> Result<Option<Review>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            review_columns!(),
            " FROM reviews WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(review_of))
    }

    /// The snapshot as kept (JSON), if taken.
    pub async fn review_snapshot(&self, id: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT snapshot FROM reviews WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// The campaign's items in order, or only those `reviewer` reviews.
    pub async fn review_items(&self, id: i64, reviewer: Option<&str>) -> Result<Vec<ReviewItem>> {
        let rows = match reviewer {
            Some(who) => {
                sqlx::query(concat!(
                    "SELECT ",
                    item_columns!(),
                    " FROM review_items WHERE review_id = $1 AND lower(reviewer) = lower($2) ORDER BY id"
                ))
                .bind(id)
                .bind(who)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    item_columns!(),
                    " FROM review_items WHERE review_id = $1 ORDER BY id"
                ))
                .bind(id)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(item_of).collect()
    }

    /// A campaign's items, those decided, and `reviewer`'s still open: counted in the
    /// database (a list of campaigns need not read every item).
    pub async fn review_counts(&self, id: i64, reviewer: &str) -> Result<ReviewCounts> {
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(decision), COALESCE(SUM(CASE WHEN decision IS NULL AND lower(reviewer) = lower($2) THEN 1 ELSE 0 END), 0) FROM review_items WHERE review_id = $1",
        )
        .bind(id)
        .bind(reviewer)
        .fetch_one(&self.pool)
        .await?;
        Ok(ReviewCounts {
            items: row.get::<i64, _>(0) as usize,
            decided: row.get::<i64, _>(1) as usize,
            mine_open: row.get::<i64, _>(2) as usize,
        })
    }

    /// One item of a campaign.
    pub async fn review_item(&self, id: i64, item: i64) -> Result<Option<ReviewItem>> {
        sqlx::query(concat!(
            "SELECT ",
            item_columns!(),
            " FROM review_items WHERE review_id = $1 AND id = $2"
        ))
        .bind(id)
        .bind(item)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(item_of)
        .transpose()
    }

    /// The items of one person in a campaign (all their accounts' entitlements).
    pub async fn review_items_of(&self, id: i64, email: &str) -> Result<Vec<ReviewItem>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            item_columns!(),
            " FROM review_items WHERE review_id = $1 AND email = $2 ORDER BY id"
        ))
        .bind(id)
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_of).collect()
    }

    /// Records decisions on items of an open campaign, each with its signed log row, all
    /// in one transaction. Gives back false (and records nothing) if the campaign is not
    /// open any more.
    pub async fn decide(
        &self,
        review: i64,
        decisions: &[(i64, NewDecision<'_>, NewLogEntry)],
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM reviews WHERE id = $1")
            .bind(review)
            .fetch_optional(&mut *tx)
            .await?;
        if status.as_deref() != Some("open") {
            return Ok(false);
        }
        for (item, d, log) in decisions {
            let previous: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(decided_at) FROM review_items WHERE review_id = $1 AND lower(decided_by) = lower($2)",
            )
            .bind(review)
            .bind(d.by)
            .fetch_one(&mut *tx)
            .await?;
            let log_id = insert_log(self, &mut tx, log, at).await?;
            sqlx::query(
                "UPDATE review_items SET decision = $1, keep_roles = $2, comment = $3, decided_by = $4, decided_at = $5, bulk = $6, seconds = $7, log_id = $8 WHERE review_id = $9 AND id = $10",
            )
            .bind(d.decision)
            .bind(serde_json::to_string(d.keep_roles).unwrap_or_else(|_| "[]".into()))
            .bind(d.comment)
            .bind(d.by)
            .bind(ms(at))
            .bind(i64::from(d.bulk))
            .bind(previous.map(|p| (ms(at) - p) / 1000))
            .bind(log_id)
            .bind(review)
            .bind(item)
            .execute(&mut *tx)
            .await?;
        }
        bump(&mut tx, review).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Closes an open campaign: its revocations come into force (the planner honours them
    /// from the next plan on), revoked items wait for remediation, and `log` records it.
    /// False if it was not open.
    pub async fn close_review(
        &self,
        id: i64,
        by: &str,
        revocations: &[Revocation],
        instance: &str,
        log: &NewLogEntry,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let status = if revocations.is_empty() {
            "done"
        } else {
            "remediating"
        };
        let changed = sqlx::query(
            "UPDATE reviews SET status = $1, closed_by = $2, closed_at = $3 WHERE id = $4 AND status = 'open'",
        )
        .bind(status)
        .bind(by)
        .bind(ms(at))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        for r in revocations {
            sqlx::query(
                "INSERT INTO revocations (app, instance, email, account_kind, role, scope, review_id, item_id, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (instance, email, account_kind, role, scope) DO UPDATE SET review_id = excluded.review_id, item_id = excluded.item_id, reason = excluded.reason, created_at = excluded.created_at",
            )
            .bind(r.app.name())
            .bind(instance)
            .bind(r.email.to_lowercase())
            .bind(r.account_kind.as_str())
            .bind(&r.role)
            .bind(&r.scope)
            .bind(r.review)
            .bind(r.item)
            .bind(&r.reason)
            .bind(ms(at))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE review_items SET remediation = 'pending' WHERE review_id = $1 AND id = $2",
            )
            .bind(id)
            .bind(r.item)
            .execute(&mut *tx)
            .await?;
        }
        insert_log(self, &mut tx, log, at).await?;
        bump(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Claims an open campaign's reminder: true for the one caller that should send it.
    pub async fn claim_review_reminder(&self, id: i64, at: OffsetDateTime) -> Result<bool> {
        self.claim(
            "UPDATE reviews SET reminded_at = $1 WHERE id = $2 AND status = 'open' AND reminded_at IS NULL",
            id,
            at,
        )
        .await
    }

    /// Claims an open campaign's due date: true for the one caller that should act on it.
    pub async fn claim_review_due(&self, id: i64, at: OffsetDateTime) -> Result<bool> {
        self.claim(
            "UPDATE reviews SET due_handled_at = $1 WHERE id = $2 AND status = 'open' AND due_handled_at IS NULL",
            id,
            at,
        )
        .await
    }

    /// Runs a claim (`sql` sets a time where none is set yet): true if this caller set it.
    async fn claim(&self, sql: &'static str, id: i64, at: OffsetDateTime) -> Result<bool> {
        Ok(sqlx::query(sql)
            .bind(ms(at))
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    /// Gives undecided items of an open campaign another reviewer (delegation, escalation),
    /// with `log` recording it in the same transaction. Items already decided, or of a
    /// campaign no longer open, are left alone; gives back how many moved.
    pub async fn reassign_items(
        &self,
        review: i64,
        moves: &[(i64, String, String)],
        log: &NewLogEntry,
        at: OffsetDateTime,
    ) -> Result<usize> {
        let mut tx = self.write_tx().await?;
        let open: Option<String> = sqlx::query_scalar("SELECT status FROM reviews WHERE id = $1")
            .bind(review)
            .fetch_optional(&mut *tx)
            .await?;
        if open.as_deref() != Some("open") {
            return Ok(0);
        }
        let mut n = 0;
        for (item, reviewer, because) in moves {
            let Some(row) = sqlx::query(
                "SELECT body FROM review_items WHERE review_id = $1 AND id = $2 AND decision IS NULL",
            )
            .bind(review)
            .bind(item)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            let body: String = row.get(0);
            let mut it: Item = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
                what: "review item",
                detail: e.to_string(),
            })?;
            it.reviewer = reviewer.to_lowercase();
            it.reviewer_because = because.clone();
            n += sqlx::query(
                "UPDATE review_items SET body = $1, reviewer = $2 WHERE review_id = $3 AND id = $4",
            )
            .bind(serde_json::to_string(&it).expect("items serialise"))
            .bind(&it.reviewer)
            .bind(review)
            .bind(item)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        if n > 0 {
            insert_log(self, &mut tx, log, at).await?;
            bump(&mut tx, review).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Names the plan that remediates a closed campaign.
    pub async fn set_review_plan(&self, id: i64, plan_id: &str) -> Result<()> {
        sqlx::query("UPDATE reviews SET plan_id = $1 WHERE id = $2")
            .bind(plan_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The revocations in force on `instance`.
    pub async fn revocations(&self, instance: &str) -> Result<Vec<Revocation>> {
        let rows = sqlx::query(
            "SELECT app, email, account_kind, role, scope, review_id, item_id, reason FROM revocations WHERE instance = $1 ORDER BY email, role, scope",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let app: String = r.get(0);
                let kind: String = r.get(2);
                Ok(Revocation {
                    app: App::parse(&app).ok_or_else(|| StoreError::Corrupt {
                        what: "revocation",
                        detail: format!("app {app:?}"),
                    })?,
                    email: r.get(1),
                    account_kind: AccountKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                        what: "revocation",
                        detail: format!("account kind {kind:?}"),
                    })?,
                    role: r.get(3),
                    scope: r.get(4),
                    review: r.get(5),
                    item: r.get(6),
                    reason: r.get(7),
                })
            })
            .collect()
    }

    /// Lifts the revocations of `email`'s `role` in `scope` on `instance` (every account
    /// kind), with `log` recording it in the same transaction: the planner may grant the
    /// role again where the roster gives it. Gives back how many were lifted.
    pub async fn lift_revocation(
        &self,
        instance: &str,
        email: &str,
        role: &str,
        scope: &str,
        log: &NewLogEntry,
        at: OffsetDateTime,
    ) -> Result<usize> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "DELETE FROM revocations WHERE instance = $1 AND email = $2 AND role = $3 AND scope = $4",
        )
        .bind(instance)
        .bind(email.to_lowercase())
        .bind(role)
        .bind(scope)
        .execute(&mut *tx)
        .await?
        .rows_affected() as usize;
        if n > 0 {
            insert_log(self, &mut tx, log, at).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Marks items whose revoked access a fresh read found gone; a campaign with none left
    /// pending is `done`. Gives back how many were marked.
    /// `log` (built with the count of `items`) is written in the same transaction when any
    /// item was marked: the verification read is signed evidence like the decisions.
    pub async fn mark_remediated(
        &self,
        review: i64,
        items: &[i64],
        log: &NewLogEntry,
        at: OffsetDateTime,
    ) -> Result<usize> {
        let mut tx = self.write_tx().await?;
        let mut n = 0;
        for item in items {
            n += sqlx::query(
                "UPDATE review_items SET remediation = 'remediated', remediated_at = $1 WHERE review_id = $2 AND id = $3 AND remediation = 'pending'",
            )
            .bind(ms(at))
            .bind(review)
            .bind(item)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_items WHERE review_id = $1 AND remediation = 'pending'",
        )
        .bind(review)
        .fetch_one(&mut *tx)
        .await?;
        if left == 0 {
            sqlx::query(
                "UPDATE reviews SET status = 'done' WHERE id = $1 AND status = 'remediating'",
            )
            .bind(review)
            .execute(&mut *tx)
            .await?;
        }
        if n > 0 {
            insert_log(self, &mut tx, log, at).await?;
            bump(&mut tx, review).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The audit-log rows of one campaign (its start, decisions, close and verification
    /// reads), oldest first.
    pub async fn review_log(&self, review: i64) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            log_columns!(),
            " FROM audit_log WHERE action LIKE 'review.%' AND (target = $1 OR target LIKE $2) ORDER BY id"
        ))
        .bind(format!("review {review}"))
        .bind(format!("review {review} item %"))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(entry_of).collect())
    }
}

impl StateStore {
    /// The revocations of `instance` whose items still wait to be seen gone.
    pub async fn pending_remediations(&self, instance: &str) -> Result<Vec<Revocation>> {
        let in_force = self.revocations(instance).await?;
        let pending = sqlx::query(
            "SELECT review_id, id FROM review_items WHERE remediation = 'pending' AND review_id IN (SELECT id FROM reviews WHERE instance = $1)",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        let pending: std::collections::BTreeSet<(i64, i64)> =
            pending.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(in_force
            .into_iter()
            .filter(|r| pending.contains(&(r.review, r.item)))
            .collect())
    }
}
