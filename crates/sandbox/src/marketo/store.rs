//! The sandbox's SQLite state and every query against it.
//!
//! SQLite is the single source of truth, so `roster sandbox marketo admin ...` can change a
//! running sandbox's data and the server sees it on the next call. Writes are serialised
//! in-process by a mutex (SQLite has one writer anyway) so read-then-write sequences such as
//! "invite unless already invited" are atomic.

use std::path::{Path, PathBuf};

use roster_domain::Secret;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use tokio::sync::{Mutex, MutexGuard};

use super::error::SandboxError;

const SCHEMA: &str = include_str!("schema.sql");
pub const DB_FILE: &str = "marketo.sqlite";

pub struct Store {
    pub pool: SqlitePool,
    write_lock: Mutex<()>,
    pub path: PathBuf,
    /// The hot reads, from memory while the database does not change.
    cache: super::read_cache::ReadCache,
}

/// The client id and secret of a custom service, as printed at start-up.
#[derive(Debug, Clone)]
pub struct ServiceCredentials {
    pub service: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub api_user: String,
}

#[derive(Debug, Clone)]
pub struct RoleRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub hidden: bool,
    pub only_all_zones: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct WorkspaceRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub global_viz: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub userid: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub api_only: bool,
    pub pending: bool,
    pub expires_at: Option<i64>,
    pub last_login_at: Option<i64>,
    pub failed_logins: i64,
    pub is_locked: bool,
    pub locked_reason: Option<String>,
    pub opted_in: bool,
    pub invite_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A role held in a workspace, with both names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role_id: i64,
    pub role_name: String,
    pub workspace_id: i64,
    pub workspace_name: String,
}

/// Who is calling: the API-only user behind the token's custom service.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    /// Shared, so a caller read from memory is cloned for each request without copying.
    pub email: std::sync::Arc<str>,
    pub permissions: std::sync::Arc<[String]>,
    pub all_permissions: bool,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub token: String,
    pub expires_at: i64,
}

pub struct NewUser<'a> {
    pub userid: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub api_only: bool,
    pub pending: bool,
    pub expires_at: Option<i64>,
    pub reason: Option<&'a str>,
    pub invite_token: Option<&'a str>,
    pub invite_expires_at: Option<i64>,
    pub now: i64,
}

/// One entry of `allusers.json`, serialised in the documented field order.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub userid: String,
    pub first_name: String,
    pub last_name: String,
    pub email_address: String,
    pub id: i64,
    pub api_only: bool,
}

#[derive(Debug, Clone)]
pub struct MailRow {
    pub id: i64,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub body: String,
    pub invite_token: Option<String>,
    pub sent_at: i64,
}

/// The user columns every user query selects, as a literal so the SQL stays static.
macro_rules! user_columns {
    () => {
        "id, userid, email, first_name, last_name, api_only, status, expires_at, last_login_at, \
         failed_logins, is_locked, locked_reason, opted_in, invite_token, invite_expires_at, created_at, updated_at"
    };
}

fn user_from_row(row: &SqliteRow) -> UserRow {
    UserRow {
        id: row.get("id"),
        userid: row.get("userid"),
        email: row.get("email"),
        first_name: row.get("first_name"),
        last_name: row.get("last_name"),
        api_only: row.get("api_only"),
        pending: row.get::<String, _>("status") == "pending",
        expires_at: row.get("expires_at"),
        last_login_at: row.get("last_login_at"),
        failed_logins: row.get("failed_logins"),
        is_locked: row.get("is_locked"),
        locked_reason: row.get("locked_reason"),
        opted_in: row.get("opted_in"),
        invite_expires_at: row.get("invite_expires_at"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

fn role_from_row(row: &SqliteRow) -> RoleRow {
    RoleRow {
        id: row.get("id"),
        name: row.get("name"),
        description: row.get("description"),
        kind: row.get("type"),
        hidden: row.get("hidden"),
        only_all_zones: row.get("only_all_zones"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

impl Store {
    /// Opens (creating if needed) `DIR/marketo.sqlite` and brings its schema up to date.
    /// Returns the store and whether the database was new.
    pub async fn open(data_dir: &Path) -> Result<(Self, bool), SandboxError> {
        let (pool, path, fresh) = crate::sqlite::open(data_dir, DB_FILE, SCHEMA).await?;
        Ok((
            Self {
                pool,
                write_lock: Mutex::new(()),
                cache: super::read_cache::ReadCache::new(&path),
                path,
            },
            fresh,
        ))
    }

    /// Serialises a read-then-write sequence against other writers of this process.
    pub async fn write_guard(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- meta ----

    pub async fn meta(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        crate::sqlite::meta(&self.pool, key).await
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), sqlx::Error> {
        crate::sqlite::set_meta(&self.pool, key, value).await
    }

    // ---- reference data ----

    pub async fn roles(&self) -> Result<Vec<RoleRow>, sqlx::Error> {
        let rows = sqlx::query("SELECT * FROM roles ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(role_from_row).collect())
    }

    pub async fn role(&self, id: i64) -> Result<Option<RoleRow>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM roles WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(role_from_row))
    }

    pub async fn role_by_name(&self, name: &str) -> Result<Option<RoleRow>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM roles WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(role_from_row))
    }

    pub async fn workspaces(&self) -> Result<Vec<WorkspaceRow>, sqlx::Error> {
        let rows = sqlx::query("SELECT * FROM workspaces ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| WorkspaceRow {
                id: row.get("id"),
                name: row.get("name"),
                description: row.get("description"),
                global_viz: row.get("global_viz"),
                status: row.get("status"),
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
            })
            .collect())
    }

    pub async fn workspace_name(&self, id: i64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT name FROM workspaces WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn workspace_id_by_name(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM workspaces WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn insert_role(
        &self,
        role: &RoleRow,
        all_permissions: bool,
        permissions: &[String],
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO roles (id, name, description, type, hidden, only_all_zones, all_permissions, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(if role.id > 0 { Some(role.id) } else { None })
        .bind(&role.name)
        .bind(&role.description)
        .bind(&role.kind)
        .bind(role.hidden)
        .bind(role.only_all_zones)
        .bind(all_permissions)
        .bind(role.created_at)
        .bind(role.updated_at)
        .fetch_one(&mut *tx)
        .await?;
        for permission in permissions {
            sqlx::query(
                "INSERT OR IGNORE INTO role_permissions (role_id, permission) VALUES (?, ?)",
            )
            .bind(id)
            .bind(permission)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn insert_workspace(&self, ws: &WorkspaceRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO workspaces (id, name, description, global_viz, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ws.id)
        .bind(&ws.name)
        .bind(&ws.description)
        .bind(ws.global_viz)
        .bind(&ws.status)
        .bind(ws.created_at)
        .bind(ws.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- users ----

    /// The database's committed state now, for reads that should all see the same one.
    pub fn read_stamp(&self) -> Option<super::read_cache::Stamp> {
        self.cache.stamp()
    }

    pub async fn user(&self, userid: &str) -> Result<Option<UserRow>, sqlx::Error> {
        self.user_as_of(self.cache.stamp(), userid).await
    }

    /// A user as of `stamp` (from [`Store::read_stamp`]): from memory if nothing changed.
    pub async fn user_as_of(
        &self,
        stamp: Option<super::read_cache::Stamp>,
        userid: &str,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        if let Some(hit) = self.cache.user(stamp, userid) {
            return Ok(hit);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE userid = ?"
        ))
        .bind(userid)
        .fetch_optional(&self.pool)
        .await?;
        let user = row.as_ref().map(user_from_row);
        self.cache.keep_user(stamp, userid, &user);
        Ok(user)
    }

    pub async fn user_by_invite_token(&self, token: &str) -> Result<Option<UserRow>, sqlx::Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE invite_token = ?"
        ))
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from_row))
    }

    /// Accepted users in id order, with only the columns `allusers.json` shows.
    pub async fn active_user_summaries(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<UserSummary>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT userid, first_name, last_name, email, id, api_only FROM users WHERE status = 'active' ORDER BY id LIMIT ? OFFSET ?",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        // Columns by position: name lookups cost more than the rest of the decoding.
        Ok(rows
            .iter()
            .map(|row| UserSummary {
                userid: row.get(0),
                first_name: row.get(1),
                last_name: row.get(2),
                email_address: row.get(3),
                id: row.get(4),
                api_only: row.get(5),
            })
            .collect())
    }

    pub async fn grants(&self, user_id: i64) -> Result<Vec<Grant>, sqlx::Error> {
        self.grants_as_of(self.cache.stamp(), user_id).await
    }

    pub async fn grants_as_of(
        &self,
        stamp: Option<super::read_cache::Stamp>,
        user_id: i64,
    ) -> Result<Vec<Grant>, sqlx::Error> {
        if let Some(hit) = self.cache.grants(stamp, user_id) {
            return Ok(hit);
        }
        let grants = self.grants_from_db(user_id).await?;
        self.cache.keep_grants(stamp, user_id, &grants);
        Ok(grants)
    }

    async fn grants_from_db(&self, user_id: i64) -> Result<Vec<Grant>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT r.id AS role_id, r.name AS role_name, w.id AS workspace_id, w.name AS workspace_name \
             FROM user_roles ur JOIN roles r ON r.id = ur.role_id JOIN workspaces w ON w.id = ur.workspace_id \
             WHERE ur.user_id = ? ORDER BY w.id, r.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| Grant {
                role_id: row.get("role_id"),
                role_name: row.get("role_name"),
                workspace_id: row.get("workspace_id"),
                workspace_name: row.get("workspace_name"),
            })
            .collect())
    }

    /// Inserts a user and its grants in one transaction; returns the new id.
    pub async fn insert_user(
        &self,
        user: &NewUser<'_>,
        grants: &[(i64, i64)],
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (userid, email, first_name, last_name, api_only, status, expires_at, reason, \
             invite_token, invite_expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(user.userid)
        .bind(user.email)
        .bind(user.first_name)
        .bind(user.last_name)
        .bind(user.api_only)
        .bind(if user.pending { "pending" } else { "active" })
        .bind(user.expires_at)
        .bind(user.reason)
        .bind(user.invite_token)
        .bind(user.invite_expires_at)
        .bind(user.now)
        .bind(user.now)
        .fetch_one(&mut *tx)
        .await?;
        for (role_id, workspace_id) in grants {
            sqlx::query("INSERT OR IGNORE INTO user_roles (user_id, role_id, workspace_id) VALUES (?, ?, ?)")
                .bind(id)
                .bind(role_id)
                .bind(workspace_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn delete_user(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update_user(
        &self,
        id: i64,
        email: &str,
        first_name: &str,
        last_name: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE users SET email = ?, first_name = ?, last_name = ?, expires_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(email)
        .bind(first_name)
        .bind(last_name)
        .bind(expires_at)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn add_grants(
        &self,
        user_id: i64,
        grants: &[(i64, i64)],
        now: i64,
    ) -> Result<(), sqlx::Error> {
        self.change_grants(
            user_id,
            grants,
            now,
            "INSERT OR IGNORE INTO user_roles (user_id, role_id, workspace_id) VALUES (?, ?, ?)",
        )
        .await
    }

    pub async fn remove_grants(
        &self,
        user_id: i64,
        grants: &[(i64, i64)],
        now: i64,
    ) -> Result<(), sqlx::Error> {
        self.change_grants(
            user_id,
            grants,
            now,
            "DELETE FROM user_roles WHERE user_id = ? AND role_id = ? AND workspace_id = ?",
        )
        .await
    }

    /// Runs `sql` (binding user, role, workspace) for each pair and touches the user, atomically.
    async fn change_grants(
        &self,
        user_id: i64,
        grants: &[(i64, i64)],
        now: i64,
        sql: &'static str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for (role_id, workspace_id) in grants {
            sqlx::query(sql)
                .bind(user_id)
                .bind(role_id)
                .bind(workspace_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE users SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Marks a pending invitation accepted: the user becomes active with a password.
    pub async fn accept_invite(
        &self,
        id: i64,
        password_hash: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            // The token stays, so its page can say "already accepted" rather than "not valid".
            "UPDATE users SET status = 'active', password_hash = ?, invite_expires_at = NULL, \
             opted_in = 1, updated_at = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- services and tokens ----

    pub async fn insert_service(
        &self,
        name: &str,
        description: &str,
        client_id: &str,
        client_secret: &Secret,
        user_id: i64,
        now: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO services (name, description, client_id, client_secret, user_id, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(description)
        .bind(client_id)
        .bind(client_secret.expose())
        .bind(user_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn set_service_secret(
        &self,
        client_id: &str,
        secret: &Secret,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE services SET client_secret = ? WHERE client_id = ?")
            .bind(secret.expose())
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        // A new secret invalidates the tokens issued under the old one.
        sqlx::query(
            "DELETE FROM tokens WHERE service_id = (SELECT id FROM services WHERE client_id = ?)",
        )
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn services(&self) -> Result<Vec<ServiceCredentials>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT s.name, s.client_id, s.client_secret, u.email FROM services s JOIN users u ON u.id = s.user_id ORDER BY s.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| ServiceCredentials {
                service: row.get("name"),
                client_id: row.get("client_id"),
                client_secret: Secret::new(row.get::<String, _>("client_secret")),
                api_user: row.get("email"),
            })
            .collect())
    }

    /// The service a client id and secret identify, with its API user's email, or `None`.
    pub async fn authenticate_service(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Option<(i64, String)>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT s.id, s.client_secret, u.email, u.api_only FROM services s JOIN users u ON u.id = s.user_id WHERE s.client_id = ?",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|row| {
            let stored: String = row.get("client_secret");
            let api_only: bool = row.get("api_only");
            (constant_time_eq(stored.as_bytes(), secret.as_bytes()) && api_only)
                .then(|| (row.get("id"), row.get("email")))
        }))
    }

    pub async fn live_token(
        &self,
        service_id: i64,
        now: i64,
    ) -> Result<Option<TokenRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT token, expires_at FROM tokens WHERE service_id = ? AND expires_at > ? ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(service_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| TokenRow {
            token: row.get("token"),
            expires_at: row.get("expires_at"),
        }))
    }

    pub async fn insert_token(
        &self,
        token: &str,
        service_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        // Expired tokens of the service are of no further use.
        sqlx::query("DELETE FROM tokens WHERE service_id = ? AND expires_at <= ?")
            .bind(service_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO tokens (token, service_id, issued_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(token)
        .bind(service_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn expire_token(&self, token: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE tokens SET expires_at = ? WHERE token = ?")
            .bind(now)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Resolves a bearer token to its expiry and the calling API user with its permissions.
    pub async fn caller_as_of(
        &self,
        stamp: Option<super::read_cache::Stamp>,
        token: &str,
    ) -> Result<Option<(i64, Caller)>, sqlx::Error> {
        if let Some(hit) = self.cache.caller(stamp, token) {
            return Ok(hit);
        }
        let caller = self.caller_from_db(token).await?;
        self.cache.keep_caller(stamp, token, &caller);
        Ok(caller)
    }

    async fn caller_from_db(&self, token: &str) -> Result<Option<(i64, Caller)>, sqlx::Error> {
        let Some(row) = sqlx::query(
            "SELECT t.expires_at, u.id AS user_id, u.email FROM tokens t JOIN services s ON s.id = t.service_id \
             JOIN users u ON u.id = s.user_id WHERE t.token = ?",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let user_id: i64 = row.get("user_id");
        let perms = sqlx::query(
            "SELECT r.all_permissions, p.permission FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
             LEFT JOIN role_permissions p ON p.role_id = r.id WHERE ur.user_id = ?",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let all_permissions = perms.iter().any(|p| p.get::<bool, _>("all_permissions"));
        let mut permissions: Vec<String> = perms
            .iter()
            .filter_map(|p| p.get::<Option<String>, _>("permission"))
            .collect();
        permissions.sort();
        permissions.dedup();
        Ok(Some((
            row.get("expires_at"),
            Caller {
                user_id,
                email: row.get::<String, _>("email").into(),
                permissions: permissions.into(),
                all_permissions,
            },
        )))
    }

    // ---- mailbox ----

    pub async fn send_mail(
        &self,
        to: &str,
        from: &str,
        subject: &str,
        body: &str,
        invite_token: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO mailbox (to_addr, from_addr, subject, body, invite_token, sent_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(to)
            .bind(from)
            .bind(subject)
            .bind(body)
            .bind(invite_token)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mailbox(&self, to: Option<&str>) -> Result<Vec<MailRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM mailbox WHERE (?1 IS NULL OR to_addr = ?1 COLLATE NOCASE) ORDER BY id",
        )
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| MailRow {
                id: row.get("id"),
                to: row.get("to_addr"),
                from: row.get("from_addr"),
                subject: row.get("subject"),
                body: row.get("body"),
                invite_token: row.get("invite_token"),
                sent_at: row.get("sent_at"),
            })
            .collect())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
