//! The web console's local accounts and sessions.

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::{Result, StateStore, StoreError, from_ms, ms};

/// A console account. The password hash is argon2's PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub failed_attempts: i64,
    pub locked_until: Option<OffsetDateTime>,
}

impl std::fmt::Debug for ConsoleUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleUser")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("failed_attempts", &self.failed_attempts)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

/// A signed-in session, found by the hash of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub user: ConsoleUser,
    /// The token every state-changing form must carry.
    pub csrf: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

fn user_from(r: &AnyRow) -> ConsoleUser {
    ConsoleUser {
        id: r.get("id"),
        name: r.get("name"),
        role: r.get("role"),
        password_hash: r.get("password_hash"),
        created_at: from_ms(r.get("created_at")),
        failed_attempts: r.get("failed_attempts"),
        locked_until: r.get::<Option<i64>, _>("locked_until").map(from_ms),
    }
}

impl StateStore {
    /// Adds a console account; a name in use (any case) is refused.
    pub async fn add_console_user(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
        at: OffsetDateTime,
    ) -> Result<i64> {
        if self.console_user(name).await?.is_some() {
            return Err(StoreError::Duplicate {
                what: "console user",
                name: name.to_string(),
            });
        }
        Ok(sqlx::query_scalar::<_, i64>(
            "INSERT INTO console_users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(role)
        .bind(password_hash)
        .bind(ms(at))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Removes an account and its sessions (its API tokens stop working: they act for an
    /// account that no longer exists). False if there is none of that name.
    pub async fn remove_console_user(&self, name: &str) -> Result<bool> {
        let Some(user) = self.console_user(name).await? else {
            return Ok(false);
        };
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM console_users WHERE id = $1")
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A new password (its hash) for an account, which also unlocks it and ends its
    /// sessions (whoever knew the old one is signed out).
    pub async fn set_console_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        let Some(user) = self.console_user(name).await? else {
            return Ok(false);
        };
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE console_users SET password_hash = $1, failed_attempts = 0, locked_until = NULL WHERE id = $2",
        )
        .bind(password_hash)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
            .bind(user.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Lifts a lock that failed sign-ins put on an account.
    pub async fn unlock_console_user(&self, name: &str) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE console_users SET failed_attempts = 0, locked_until = NULL WHERE name = $1",
        )
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// A new role for an account (its tokens never act above it).
    pub async fn set_console_role(&self, name: &str, role: &str) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE console_users SET role = $1 WHERE name = $2")
                .bind(role)
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    pub async fn console_user(&self, name: &str) -> Result<Option<ConsoleUser>> {
        let row = sqlx::query("SELECT * FROM console_users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from))
    }

    pub async fn console_users(&self) -> Result<Vec<ConsoleUser>> {
        let rows = sqlx::query("SELECT * FROM console_users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user_from).collect())
    }

    /// Records a failed sign-in; after `limit` in a row the account is locked until `until`.
    /// Returns the failures counted so far.
    pub async fn sign_in_failed(&self, id: i64, limit: i64, until: OffsetDateTime) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let failures: i64 = sqlx::query_scalar(
            "UPDATE console_users SET failed_attempts = failed_attempts + 1 WHERE id = $1 RETURNING failed_attempts",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if failures >= limit {
            sqlx::query(
                "UPDATE console_users SET locked_until = $1, failed_attempts = 0 WHERE id = $2",
            )
            .bind(ms(until))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(failures)
    }

    /// A successful sign-in: failures forgotten, and a new session (by the hash of its id).
    pub async fn start_session(
        &self,
        user_id: i64,
        id_hash: &str,
        csrf: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE console_users SET failed_attempts = 0, locked_until = NULL WHERE id = $1",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_id, csrf, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(ms(at))
        .bind(ms(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session with this id hash, if it is alive: used within `idle` and started within
    /// `absolute`. A live one is marked seen; an expired one is removed.
    pub async fn live_session(
        &self,
        id_hash: &str,
        idle: time::Duration,
        absolute: time::Duration,
        now: OffsetDateTime,
    ) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT u.*, s.csrf, s.created_at AS s_created, s.last_seen_at FROM console_sessions s \
             JOIN console_users u ON u.id = s.user_id WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let created = from_ms(row.get("s_created"));
        let seen = from_ms(row.get("last_seen_at"));
        if now - seen > idle || now - created > absolute {
            self.end_session(id_hash).await?;
            return Ok(None);
        }
        // A page view need not be a write: the last-seen time moves once a tenth of the idle
        // limit has passed (a session may so outlive its idle limit by a tenth, no more).
        let last_seen = if now - seen >= idle / 10 {
            sqlx::query("UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(ms(now))
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
            now
        } else {
            seen
        };
        Ok(Some(ConsoleSession {
            user: user_from(&row),
            csrf: row.get("csrf"),
            created_at: created,
            last_seen_at: last_seen,
        }))
    }

    pub async fn end_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The password hash of an account that signs in through OpenID Connect: no password
/// verifies against it.
pub const OIDC_ACCOUNT: &str = "!oidc";

impl StateStore {
    /// The account of a person signed in through OpenID Connect, made at their first
    /// sign-in, its role set from the provider's claims at each. A local account (one with
    /// a password) of the same name is never taken over.
    pub async fn oidc_user(
        &self,
        name: &str,
        role: &str,
        at: OffsetDateTime,
    ) -> Result<ConsoleUser> {
        let mut tx = self.write_tx().await?;
        let found = sqlx::query("SELECT * FROM console_users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| user_from(&r));
        match found {
            Some(u) if u.password_hash != OIDC_ACCOUNT => {
                return Err(StoreError::Duplicate {
                    what: "local console account",
                    name: u.name,
                });
            }
            Some(u) => {
                sqlx::query("UPDATE console_users SET role = $1 WHERE id = $2")
                    .bind(role)
                    .bind(u.id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO console_users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(name)
                .bind(role)
                .bind(OIDC_ACCOUNT)
                .bind(ms(at))
                .execute(&mut *tx)
                .await?;
            }
        }
        let user = sqlx::query("SELECT * FROM console_users WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map(|r| user_from(&r))?;
        tx.commit().await?;
        Ok(user)
    }
}
