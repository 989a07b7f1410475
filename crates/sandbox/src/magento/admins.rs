//! Admin users and roles (`/V1/users`, `/V1/roles`), as the integration guide describes them.
//! Core Magento has no such endpoints, so they exist only with `--admin-users-api` (an
//! extension); without it these paths answer "Request does not match any route." like core.

use axum::http::HeaderMap;
use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::auth;
use super::customers::parse_id;
use super::error::{MagentoError, Result};
use super::search;
use super::seed::magento_time;
use super::server::App;

const USERS: &str = "Magento_User::acl_users";
const ROLES: &str = "Magento_User::acl_roles";
const COLUMNS: &str = "id, username, firstname, lastname, email, role_id, is_active, created_at";

fn user_json(r: &SqliteRow) -> Value {
    json!({
        "id": r.get::<i64, _>(0),
        "username": r.get::<String, _>(1),
        "firstname": r.get::<String, _>(2),
        "lastname": r.get::<String, _>(3),
        "email": r.get::<String, _>(4),
        "role_id": r.get::<i64, _>(5),
        "is_active": r.get::<bool, _>(6),
        "created": r.get::<String, _>(7),
    })
}

async fn user(app: &App, id: i64) -> Result<Value> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM admins WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(&app.store.pool)
    .await?;
    row.as_ref()
        .map(user_json)
        .ok_or_else(|| MagentoError::no_such("userId", id))
}

/// Admin passwords: at least 7 characters, with letters and digits.
fn check_password(p: &str) -> Result<()> {
    if p.chars().count() < 7 {
        return Err(MagentoError::bad_request(
            "Your password must be at least 7 characters.",
        ));
    }
    if !(p.chars().any(char::is_alphabetic) && p.chars().any(|c| c.is_ascii_digit())) {
        return Err(MagentoError::bad_request(
            "Your password must include both numeric and alphabetic characters.",
        ));
    }
    Ok(())
}

async fn validate(app: &App, u: &Map<String, Value>, id: Option<i64>) -> Result<()> {
    for field in ["username", "firstname", "lastname", "email"] {
        if u.get(field)
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(MagentoError::required(field));
        }
    }
    let role = u
        .get("role_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| MagentoError::required("role_id"))?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM admin_roles WHERE id = ?")
        .bind(role)
        .fetch_optional(&app.store.pool)
        .await?;
    if exists.is_none() {
        let mut e = MagentoError::no_such("roleId", role);
        e.status = axum::http::StatusCode::BAD_REQUEST;
        return Err(e);
    }
    let clash: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM admins WHERE (username = ? OR email = ? COLLATE NOCASE) AND id != ?",
    )
    .bind(u["username"].as_str())
    .bind(u["email"].as_str())
    .bind(id.unwrap_or(-1))
    .fetch_optional(&app.store.pool)
    .await?;
    if clash.is_some() {
        return Err(MagentoError::bad_request(
            "A user with the same user name or email already exists.",
        ));
    }
    Ok(())
}

fn user_object(body: &Value) -> Result<Map<String, Value>> {
    match body.get("user") {
        Some(Value::Object(o)) => Ok(o.clone()),
        _ => Err(MagentoError::required("user")),
    }
}

pub async fn route(
    app: &App,
    method: &str,
    parts: &[&str],
    query: &str,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<Value> {
    let caller = auth::require_admin(
        app,
        headers,
        if parts[0] == "roles" { ROLES } else { USERS },
    )
    .await?;
    match (method, parts) {
        ("GET", ["roles"]) => {
            let rows = sqlx::query("SELECT id, name FROM admin_roles ORDER BY id")
                .fetch_all(&app.store.pool)
                .await?;
            let items: Vec<Value> = rows
                .iter()
                .map(|r| json!({"id": r.get::<i64, _>(0), "name": r.get::<String, _>(1)}))
                .collect();
            Ok(json!({"total_count": items.len(), "items": items}))
        }
        ("GET", ["users"]) => {
            let criteria = search::parse(query)?.unwrap_or_default();
            let (where_sql, binds, order) = criteria.sql(&[
                "id",
                "username",
                "firstname",
                "lastname",
                "email",
                "role_id",
                "is_active",
            ])?;
            let mut sql =
                format!("SELECT {COLUMNS} FROM admins WHERE {where_sql} ORDER BY {order}");
            if let Some((size, offset)) = criteria.limit() {
                sql.push_str(&format!(" LIMIT {size} OFFSET {offset}"));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in &binds {
                q = q.bind(b);
            }
            let rows = q.fetch_all(&app.store.pool).await?;
            let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM admins WHERE {where_sql}"
            )));
            for b in &binds {
                count = count.bind(b);
            }
            let total = count.fetch_one(&app.store.pool).await?;
            Ok(
                json!({"items": rows.iter().map(user_json).collect::<Vec<_>>(), "search_criteria": criteria.echo(), "total_count": total}),
            )
        }
        ("GET", ["users", id]) => user(app, parse_id(id)?).await,
        ("POST", ["users"]) => {
            let u = user_object(body.unwrap_or(&Value::Null))?;
            let password = u
                .get("password")
                .and_then(Value::as_str)
                .ok_or_else(|| MagentoError::required("password"))?;
            check_password(password)?;
            let _w = app.store.write_guard().await;
            validate(app, &u, None).await?;
            let id = sqlx::query("INSERT INTO admins (username, firstname, lastname, email, password_hash, role_id, is_active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                .bind(u["username"].as_str())
                .bind(u["firstname"].as_str())
                .bind(u["lastname"].as_str())
                .bind(u["email"].as_str())
                .bind(auth::hash_password(password))
                .bind(u["role_id"].as_i64())
                .bind(u.get("is_active").and_then(Value::as_bool).unwrap_or(true))
                .bind(magento_time(app.clock.now_ms()))
                .execute(&app.store.pool)
                .await?
                .last_insert_rowid();
            user(app, id).await
        }
        ("PUT", ["users", id]) => {
            let id = parse_id(id)?;
            let given = user_object(body.unwrap_or(&Value::Null))?;
            let _w = app.store.write_guard().await;
            let mut u = user(app, id)
                .await?
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, v) in &given {
                if k != "id" && k != "created" {
                    u.insert(k.clone(), v.clone());
                }
            }
            validate(app, &u, Some(id)).await?;
            if let Some(p) = given.get("password").and_then(Value::as_str) {
                check_password(p)?;
                sqlx::query("UPDATE admins SET password_hash = ? WHERE id = ?")
                    .bind(auth::hash_password(p))
                    .bind(id)
                    .execute(&app.store.pool)
                    .await?;
            }
            sqlx::query("UPDATE admins SET username = ?, firstname = ?, lastname = ?, email = ?, role_id = ?, is_active = ? WHERE id = ?")
                .bind(u["username"].as_str())
                .bind(u["firstname"].as_str())
                .bind(u["lastname"].as_str())
                .bind(u["email"].as_str())
                .bind(u["role_id"].as_i64())
                .bind(u.get("is_active").and_then(Value::as_bool).unwrap_or(true))
                .bind(id)
                .execute(&app.store.pool)
                .await?;
            user(app, id).await
        }
        ("DELETE", ["users", id]) => {
            let id = parse_id(id)?;
            if id == caller {
                return Err(MagentoError::bad_request(
                    "You cannot delete your own account.",
                ));
            }
            user(app, id).await?;
            sqlx::query("DELETE FROM tokens WHERE kind = 'admin' AND subject_id = ?")
                .bind(id)
                .execute(&app.store.pool)
                .await?;
            sqlx::query("DELETE FROM admins WHERE id = ?")
                .bind(id)
                .execute(&app.store.pool)
                .await?;
            Ok(json!(true))
        }
        _ => Err(MagentoError::no_route()),
    }
}
