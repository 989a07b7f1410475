//! Exceptions: an account kept until a time whatever the roster says (an approved restore
//! of someone the roster still lists as a leaver). The planner reads the live ones into
//! `Roster::exceptions`; once `until` passes, removal is planned again.

use roster_domain::desired::{App, Exception};
use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, StateStore, from_ms, ms};

impl StateStore {
    /// Keeps `email`'s account of `app` on `instance` until `until` (a later call for the
    /// same account replaces the earlier exception).
    pub async fn add_exception(
        &self,
        app: App,
        instance: &str,
        email: &str,
        until: OffsetDateTime,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO exceptions (app, instance, email, until, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (app, instance, email) DO UPDATE SET until = excluded.until, reason = excluded.reason, created_at = excluded.created_at",
        )
        .bind(app.name())
        .bind(instance)
        .bind(email.to_lowercase())
        .bind(ms(until))
        .bind(reason)
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The exceptions of `app` on `instance` still in force at `now`.
    pub async fn exceptions(
        &self,
        app: App,
        instance: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Exception>> {
        let rows = sqlx::query(
            "SELECT email, until, reason FROM exceptions WHERE app = $1 AND instance = $2 AND until > $3 ORDER BY email",
        )
        .bind(app.name())
        .bind(instance)
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Exception {
                app,
                email: r.get(0),
                until: from_ms(r.get(1)),
                reason: r.get(2),
            })
            .collect())
    }
}
