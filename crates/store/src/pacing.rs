//! A Marketo subscription's limits counted across processes on many machines, in the shared
//! PostgreSQL state: every call is a row (sent, then answered), and a call is admitted only
//! when, counting every process's rows, fewer than the limit are in the window and fewer
//! than the maximum are in flight. Each admission holds a lock for its instance for the
//! length of one short transaction. (On one machine with SQLite, processes share a ledger
//! file instead; see the Marketo client.)
//!
//! A process that dies mid-call leaves an open row: after `stale_ms` it no longer counts as
//! in flight, and it leaves the window `window_ms` later, as if answered then.

use crate::{Backend, Result, StateStore, StoreError};

/// The limits an admission keeps, in calls and milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct PacingLimits {
    pub limit: i64,
    pub window_ms: i64,
    pub max_in_flight: i64,
    pub stale_ms: i64,
}

/// What an admission decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Sent now: the call's id, for its answer.
    Admitted(i64),
    /// No room: how long until the oldest call leaves the window, when that is what frees
    /// room (calls in flight free it when answered, which only asking again sees).
    Wait(Option<i64>),
}

impl StateStore {
    /// Admits a call to `instance` at `now_ms` if every process's calls leave room.
    pub async fn pacing_admit(
        &self,
        instance: &str,
        owner: &str,
        l: PacingLimits,
        now_ms: i64,
    ) -> Result<Admission> {
        if self.backend != Backend::Postgres {
            return Err(StoreError::Corrupt {
                what: "pacing",
                detail: "shared pacing is kept in PostgreSQL only".into(),
            });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('roster-pacing:' || $1))")
            .bind(instance)
            .execute(&mut *tx)
            .await?;
        // One statement after the lock: drop what has left the window, count what is in it
        // (the same statement does not see its own deletion, so the count leaves those rows
        // out by the same test), and record the call if there is room.
        let (added, open, in_window, oldest): (Option<i64>, i64, i64, Option<i64>) =
            sqlx::query_as(
                "WITH gone AS (
                    DELETE FROM pacing_calls WHERE instance = $1 AND (
                        (answered_ms > 0 AND answered_ms + $2 < $3)
                        OR (answered_ms = 0 AND sent_ms + $4 + $2 < $3))
                 ),
                 live AS (
                    SELECT
                        COUNT(*) FILTER (WHERE answered_ms = 0 AND sent_ms + $4 >= $3) AS open,
                        COUNT(*) AS in_window,
                        MIN(CASE WHEN answered_ms > 0 THEN answered_ms
                                 WHEN sent_ms + $4 < $3 THEN sent_ms + $4 END) AS oldest
                    FROM pacing_calls WHERE instance = $1 AND NOT (
                        (answered_ms > 0 AND answered_ms + $2 < $3)
                        OR (answered_ms = 0 AND sent_ms + $4 + $2 < $3))
                 ),
                 added AS (
                    INSERT INTO pacing_calls (instance, owner, sent_ms)
                    SELECT $1, $5, $3 FROM live WHERE open < $6 AND in_window < $7
                    RETURNING id
                 )
                 SELECT (SELECT id FROM added), open, in_window, oldest FROM live",
            )
            .bind(instance)
            .bind(l.window_ms)
            .bind(now_ms)
            .bind(l.stale_ms)
            .bind(owner)
            .bind(l.max_in_flight.max(1))
            .bind(l.limit.max(1))
            .fetch_one(&mut *tx)
            .await?;
        let decided = match added {
            Some(id) => Admission::Admitted(id),
            None if in_window >= l.limit && open < l.max_in_flight => {
                Admission::Wait(oldest.map(|at| (at + l.window_ms - now_ms).max(1)))
            }
            None => Admission::Wait(None),
        };
        tx.commit().await?;
        Ok(decided)
    }

    /// Records the answer of the admitted call `id` at `now_ms`.
    pub async fn pacing_release(&self, id: i64, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE pacing_calls SET answered_ms = GREATEST($2, sent_ms) WHERE id = $1")
            .bind(id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
