//! The organization's SQLite file: users, groups and who is in which, the claimed domains,
//! the API client and its tokens. Reads go straight to the file, so `roster sandbox adobe
//! admin` (another process) changes what a running sandbox answers at once.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::marketo::SandboxError;

const SCHEMA: &str = include_str!("schema.sql");
pub const FILE: &str = "adobe.sqlite";

/// Admin groups UMAPI cannot assign or remove (Adobe: "Add/Remove Attributes").
pub const UNASSIGNABLE: &[&str] = &["_org_admin", "_compartment_admin", "_compartment_viewer"];

#[derive(Clone)]
pub struct Store {
    pub pool: SqlitePool,
    pub path: PathBuf,
}

/// One account of the organization.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub username: String,
    pub domain: String,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub country: Option<String>,
    pub kind: String,
    pub status: String,
}

/// A user group, product profile or admin group.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub description: String,
    pub product_name: Option<String>,
    pub license_quota: Option<String>,
    pub marketo_subscription: Option<i64>,
    pub read_only: bool,
}

fn user_from(row: &sqlx::sqlite::SqliteRow) -> UserRow {
    UserRow {
        id: row.get("id"),
        email: row.get("email"),
        username: row.get("username"),
        domain: row.get("domain"),
        firstname: row.get("firstname"),
        lastname: row.get("lastname"),
        country: row.get("country"),
        kind: row.get("type"),
        status: row.get("status"),
    }
}

fn group_from(row: &sqlx::sqlite::SqliteRow) -> GroupRow {
    GroupRow {
        id: row.get("id"),
        name: row.get("name"),
        kind: row.get("type"),
        description: row.get("description"),
        product_name: row.get("product_name"),
        license_quota: row.get("license_quota"),
        marketo_subscription: row.get("marketo_subscription"),
        read_only: row.get::<i64, _>("read_only") != 0,
    }
}

const USER_COLUMNS: &str =
    "id, email, username, domain, firstname, lastname, country, type, status";
/// The member ids of group `?1` (and, when `?2`, of the user groups that give it), each with
/// the order it joined: direct members first.
const MEMBERS: &str = "WITH ids AS (SELECT user_id, MIN(ord) AS ord FROM (
    SELECT user_id, rowid AS ord FROM members WHERE group_id = ?1
    UNION ALL
    SELECT m.user_id, (1 << 40) + m.rowid FROM group_profiles gp JOIN members m ON m.group_id = gp.usergroup_id WHERE gp.profile_id = ?1 AND ?2
) GROUP BY user_id)";
const GROUP_COLUMNS: &str =
    "id, name, type, description, product_name, license_quota, marketo_subscription, read_only";

impl UserRow {
    /// The user as UMAPI shows it; unset properties are left out, as Adobe does.
    pub fn to_json(&self, groups: Option<Vec<String>>) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("email".into(), json!(self.email));
        m.insert("status".into(), json!(self.status));
        if let Some(groups) = groups {
            m.insert("groups".into(), json!(groups));
        }
        m.insert("username".into(), json!(self.username));
        m.insert("domain".into(), json!(self.domain));
        for (key, value) in [
            ("firstname", &self.firstname),
            ("lastname", &self.lastname),
            ("country", &self.country),
        ] {
            if let Some(v) = value {
                m.insert(key.into(), json!(v));
            }
        }
        m.insert("type".into(), json!(self.kind));
        Value::Object(m)
    }
}

impl GroupRow {
    pub fn to_json(&self, member_count: i64) -> Value {
        let mut m = Map::new();
        m.insert("groupId".into(), json!(self.id));
        m.insert("groupName".into(), json!(self.name));
        m.insert("type".into(), json!(self.kind));
        m.insert("memberCount".into(), json!(member_count));
        if self.kind == "USER_GROUP" || self.kind == "PRODUCT_PROFILE" {
            m.insert(
                "adminGroupName".into(),
                json!(format!("_admin_{}", self.name)),
            );
        }
        if let Some(p) = &self.product_name {
            m.insert("productName".into(), json!(p));
        }
        if let Some(q) = &self.license_quota {
            m.insert("licenseQuota".into(), json!(q));
        }
        if self.kind == "USER_GROUP" {
            m.insert("isReadOnly".into(), json!(self.read_only));
        }
        Value::Object(m)
    }
}

impl Store {
    pub async fn open(data_dir: &Path) -> Result<(Self, bool), SandboxError> {
        let (pool, path, fresh) = crate::sqlite::open(data_dir, FILE, SCHEMA).await?;
        Ok((Self { pool, path }, fresh))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        crate::sqlite::meta(&self.pool, key).await
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), sqlx::Error> {
        crate::sqlite::set_meta(&self.pool, key, value).await
    }

    pub async fn client_secret(&self, client_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT client_secret FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn clients(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as("SELECT client_id, client_secret FROM clients ORDER BY rowid")
            .fetch_all(&self.pool)
            .await
    }

    pub async fn put_client(&self, client_id: &str, secret: &str) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO clients (client_id, client_secret) VALUES (?, ?) ON CONFLICT(client_id) DO UPDATE SET client_secret = excluded.client_secret")
            .bind(client_id)
            .bind(secret)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn insert_token(
        &self,
        token: &str,
        client_id: &str,
        expires_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO tokens (token, client_id, expires_ms) VALUES (?, ?, ?)")
            .bind(token)
            .bind(client_id)
            .bind(expires_ms)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// The client a token was issued to and when it expires.
    pub async fn token(&self, token: &str) -> Result<Option<(String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT client_id, expires_ms FROM tokens WHERE token = ?")
            .bind(token)
            .fetch_optional(&self.pool)
            .await
    }

    /// Users in creation order; `domain` keeps those of one domain.
    pub async fn users_page(
        &self,
        offset: usize,
        limit: usize,
        domain: Option<&str>,
    ) -> Result<Vec<UserRow>, sqlx::Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE status = 'active' AND (?1 IS NULL OR domain = ?1) ORDER BY rowid LIMIT ?2 OFFSET ?3"
        )))
        .bind(domain)
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_from).collect())
    }

    pub async fn count_users(&self, domain: Option<&str>) -> Result<usize, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE status = 'active' AND (?1 IS NULL OR domain = ?1)",
        )
        .bind(domain)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as usize)
    }

    /// A page of a group's members in the order they joined it. With `through_groups`, a
    /// product profile's members also include (after its direct members) those of the user
    /// groups that give it. The page is cut in SQL, so a page of a large profile costs a page.
    pub async fn group_members_page(
        &self,
        group_id: i64,
        through_groups: bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<UserRow>, sqlx::Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{MEMBERS} SELECT {} FROM ids JOIN users u ON u.id = ids.user_id WHERE u.status = 'active' ORDER BY ids.ord LIMIT ?3 OFFSET ?4",
            USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        )))
        .bind(group_id)
        .bind(through_groups)
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_from).collect())
    }

    /// How many members [`Store::group_members_page`] pages through.
    pub async fn count_group_members(
        &self,
        group_id: i64,
        through_groups: bool,
    ) -> Result<usize, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "{MEMBERS} SELECT COUNT(*) FROM ids JOIN users u ON u.id = ids.user_id WHERE u.status = 'active'"
        )))
        .bind(group_id)
        .bind(through_groups)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as usize)
    }

    pub async fn user(&self, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        user_by_email(&mut conn, email).await
    }

    pub async fn group(&self, name: &str) -> Result<Option<GroupRow>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        group_by_name(&mut conn, name).await
    }

    pub async fn groups_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(GroupRow, i64)>, sqlx::Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM groups ORDER BY id LIMIT ? OFFSET ?"
        )))
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let g = group_from(row);
            // Everyone the group holds: for a profile, also through user groups.
            let count = self.count_group_members(g.id, true).await?;
            out.push((g, count as i64));
        }
        Ok(out)
    }

    pub async fn count_groups(&self) -> Result<usize, sqlx::Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM groups")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as usize)
    }

    /// The group names of each of these users: with `direct_only`, the groups they were put
    /// in; otherwise also the product profiles their user groups give them.
    pub async fn groups_of(
        &self,
        user_ids: &[String],
        direct_only: bool,
    ) -> Result<std::collections::HashMap<String, Vec<String>>, sqlx::Error> {
        let mut out: std::collections::HashMap<String, Vec<String>> =
            user_ids.iter().map(|id| (id.clone(), Vec::new())).collect();
        for chunk in user_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = if direct_only {
                format!(
                    "SELECT m.user_id, g.name FROM members m JOIN groups g ON g.id = m.group_id WHERE m.user_id IN ({marks}) ORDER BY g.id"
                )
            } else {
                format!(
                    "SELECT user_id, name FROM (SELECT m.user_id, g.id AS gid, g.name FROM members m JOIN groups g ON g.id = m.group_id WHERE m.user_id IN ({marks}) UNION SELECT m.user_id, p.id, p.name FROM members m JOIN group_profiles gp ON gp.usergroup_id = m.group_id JOIN groups p ON p.id = gp.profile_id WHERE m.user_id IN ({marks})) ORDER BY gid"
                )
            };
            let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            if !direct_only {
                for id in chunk {
                    q = q.bind(id);
                }
            }
            for (user, group) in q.fetch_all(&self.pool).await? {
                out.entry(user).or_default().push(group);
            }
        }
        Ok(out)
    }

    /// The email of everyone in the Marketo Engage product profiles of `subscription`, with the
    /// time they were first given one of them (directly or through a user group).
    pub async fn marketo_members(
        &self,
        subscription: i64,
    ) -> Result<Vec<MarketoMember>, sqlx::Error> {
        marketo_members(&self.pool, subscription).await
    }
}

/// The email of everyone in the Marketo Engage product profiles of `subscription`, with the
/// time they were first given one of them (directly or through a user group).
pub async fn marketo_members(
    pool: &sqlx::SqlitePool,
    subscription: i64,
) -> Result<Vec<MarketoMember>, sqlx::Error> {
    let rows: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT u.email, u.firstname, u.lastname, MIN(x.added_ms) FROM (
             SELECT m.user_id, m.added_ms FROM members m JOIN groups g ON g.id = m.group_id
               WHERE g.type = 'PRODUCT_PROFILE' AND g.marketo_subscription = ?1
             UNION ALL
             SELECT m.user_id, m.added_ms FROM members m JOIN group_profiles gp ON gp.usergroup_id = m.group_id
               JOIN groups g ON g.id = gp.profile_id
               WHERE g.type = 'PRODUCT_PROFILE' AND g.marketo_subscription = ?1
         ) x JOIN users u ON u.id = x.user_id WHERE u.status = 'active' GROUP BY u.id",
    )
    .bind(subscription)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(email, first, last, since_ms)| MarketoMember {
            email,
            firstname: first.unwrap_or_default(),
            lastname: last.unwrap_or_default(),
            since_ms,
        })
        .collect())
}

/// Someone a Marketo Engage product profile gives access to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketoMember {
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub since_ms: i64,
}

pub async fn user_by_email(
    conn: &mut SqliteConnection,
    email: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = ?1 OR (username = ?1 AND instr(username, '@') > 0)"
    )))
    .bind(email)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(user_from))
}

pub async fn user_by_username(
    conn: &mut SqliteConnection,
    username: &str,
    domain: &str,
) -> Result<Option<UserRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = ? AND domain = ?"
    )))
    .bind(username)
    .bind(domain)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(user_from))
}

pub async fn group_by_name(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<Option<GroupRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {GROUP_COLUMNS} FROM groups WHERE name = ?"
    )))
    .bind(name)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(group_from))
}

/// The claimed domain's account type, if the organization has claimed it.
pub async fn claimed_domain(
    conn: &mut SqliteConnection,
    domain: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id_type FROM domains WHERE name = ?")
        .bind(domain)
        .fetch_optional(conn)
        .await
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub firstname: Option<&'a str>,
    pub lastname: Option<&'a str>,
    pub country: Option<&'a str>,
    pub kind: &'a str,
}

pub async fn insert_user(
    conn: &mut SqliteConnection,
    user: &NewUser<'_>,
    now_ms: i64,
) -> Result<String, sqlx::Error> {
    let id = format!(
        "{:016X}{:08X}@{:08X}",
        fastrand::u64(..),
        fastrand::u32(..),
        fastrand::u32(..)
    );
    let domain = user.email.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    sqlx::query("INSERT INTO users (id, email, username, domain, firstname, lastname, country, type, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(&id)
        .bind(user.email)
        .bind(user.email)
        .bind(domain)
        .bind(user.firstname)
        .bind(user.lastname)
        .bind(user.country)
        .bind(user.kind)
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(id)
}

pub async fn add_member(
    conn: &mut SqliteConnection,
    group_id: i64,
    user_id: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR IGNORE INTO members (group_id, user_id, added_ms) VALUES (?, ?, ?)")
        .bind(group_id)
        .bind(user_id)
        .bind(now_ms)
        .execute(conn)
        .await
        .map(|_| ())
}

pub async fn remove_member(
    conn: &mut SqliteConnection,
    group_id: i64,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM members WHERE group_id = ? AND user_id = ?")
        .bind(group_id)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Takes the user out of every group but those UMAPI cannot remove (`remove: "all"`).
pub async fn remove_all_memberships(
    conn: &mut SqliteConnection,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    let marks = vec!["?"; UNASSIGNABLE.len()].join(",");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM members WHERE user_id = ? AND group_id NOT IN (SELECT id FROM groups WHERE name IN ({marks}))"
    )))
    .bind(user_id);
    for name in UNASSIGNABLE {
        q = q.bind(*name);
    }
    q.execute(conn).await.map(|_| ())
}

pub async fn insert_group(
    conn: &mut SqliteConnection,
    name: &str,
    kind: &str,
    description: &str,
    product_name: Option<&str>,
    marketo_subscription: Option<i64>,
) -> Result<i64, sqlx::Error> {
    let quota = (kind == "PRODUCT_PROFILE").then_some("UNLIMITED");
    let id: i64 = sqlx::query_scalar("INSERT INTO groups (id, name, type, description, product_name, license_quota, marketo_subscription) VALUES ((SELECT COALESCE(MAX(id), 4000000) + 1 FROM groups), ?, ?, ?, ?, ?, ?) RETURNING id")
        .bind(name)
        .bind(kind)
        .bind(description)
        .bind(product_name)
        .bind(quota)
        .bind(marketo_subscription)
        .fetch_one(conn)
        .await?;
    Ok(id)
}
