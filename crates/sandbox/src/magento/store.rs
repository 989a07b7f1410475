//! The Magento sandbox's SQLite state.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use tokio::sync::{Mutex, MutexGuard};

use crate::marketo::SandboxError;

const SCHEMA: &str = include_str!("schema.sql");
pub const DB_FILE: &str = "magento.sqlite";

pub struct Store {
    pub pool: SqlitePool,
    write_lock: Mutex<()>,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Website {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub default_group_id: i64,
}

#[derive(Debug, Clone)]
pub struct StoreView {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub website_id: i64,
    pub store_group_id: i64,
    pub is_active: bool,
}

/// The columns of `customers`, in the order [`customer_from`] reads them.
pub const CUSTOMER_COLUMNS: &str = "id, email, firstname, lastname, middlename, group_id, website_id, store_id, created_in, dob, gender, created_at, updated_at, extra_json, addresses_json";

impl Store {
    pub async fn open(data_dir: &Path) -> Result<(Self, bool), SandboxError> {
        let (pool, path, fresh) = crate::sqlite::open(data_dir, DB_FILE, SCHEMA).await?;
        sqlx::raw_sql(super::integrations::SCHEMA)
            .execute(&pool)
            .await
            .map_err(|source| SandboxError::Database {
                path: path.display().to_string(),
                source,
            })?;
        Ok((
            Self {
                pool,
                write_lock: Mutex::new(()),
                path,
            },
            fresh,
        ))
    }

    /// Serialises read-then-write sequences (email uniqueness, merges).
    pub async fn write_guard(&self) -> MutexGuard<'_, ()> {
        self.write_lock.lock().await
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

    pub async fn websites(&self) -> Result<Vec<Website>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, code, name, default_group_id FROM websites ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Website {
                id: r.get(0),
                code: r.get(1),
                name: r.get(2),
                default_group_id: r.get(3),
            })
            .collect())
    }

    pub async fn store_views(&self) -> Result<Vec<StoreView>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, code, name, website_id, store_group_id, is_active FROM stores ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| StoreView {
                id: r.get(0),
                code: r.get(1),
                name: r.get(2),
                website_id: r.get(3),
                store_group_id: r.get(4),
                is_active: r.get(5),
            })
            .collect())
    }

    pub async fn group(&self, id: i64) -> Result<Option<Value>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT id, code, tax_class_id, tax_class_name FROM customer_groups WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(group_json))
    }

    pub async fn customer(&self, id: i64) -> Result<Option<Value>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(customer_from))
    }

    /// The id of the customer with `email` in `website_id`, if any.
    pub async fn customer_id_by_email(
        &self,
        email: &str,
        website_id: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM customers WHERE email = ? AND website_id = ?")
            .bind(email)
            .bind(website_id)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn password_hash(&self, customer_id: i64) -> Result<Option<String>, sqlx::Error> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT password_hash FROM customers WHERE id = ?",
        )
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// Writes a whole customer object (as [`customer_from`] builds it) into its row.
    pub async fn save_customer(
        &self,
        c: &Value,
        password_hash: Option<&str>,
    ) -> Result<i64, sqlx::Error> {
        let id = c.get("id").and_then(Value::as_i64);
        let query = if id.is_some() {
            "UPDATE customers SET email = ?, firstname = ?, lastname = ?, middlename = ?, group_id = ?, website_id = ?, store_id = ?, created_in = ?, dob = ?, gender = ?, created_at = ?, updated_at = ?, extra_json = ?, addresses_json = ? WHERE id = ?"
        } else {
            "INSERT INTO customers (email, firstname, lastname, middlename, group_id, website_id, store_id, created_in, dob, gender, created_at, updated_at, extra_json, addresses_json, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        };
        let q = bind_customer(sqlx::query(query), c);
        match id {
            Some(id) => {
                q.bind(id).execute(&self.pool).await?;
                Ok(id)
            }
            None => Ok(q
                .bind(password_hash)
                .execute(&self.pool)
                .await?
                .last_insert_rowid()),
        }
    }

    pub async fn delete_customer(&self, id: i64) -> Result<bool, sqlx::Error> {
        sqlx::query("DELETE FROM tokens WHERE kind = 'customer' AND subject_id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query("DELETE FROM customers WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    pub async fn send_mail(
        &self,
        to: &str,
        subject: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO mailbox (to_address, subject, body, sent_at) VALUES (?, ?, ?, ?)")
            .bind(to)
            .bind(subject)
            .bind(body)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mailbox(&self) -> Result<Vec<Value>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT to_address, subject, body, sent_at FROM mailbox ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({"to": r.get::<String, _>(0), "subject": r.get::<String, _>(1), "body": r.get::<String, _>(2), "sentAt": r.get::<i64, _>(3)})
            })
            .collect())
    }
}

/// Updates many existing customers in one statement (an upsert on their ids), for the bulk
/// consumer: one round trip to SQLite instead of one per customer.
pub async fn update_customers_on(
    conn: &mut sqlx::SqliteConnection,
    customers: &[&Value],
) -> Result<(), sqlx::Error> {
    const COLUMNS: &str = "id, email, firstname, lastname, middlename, group_id, website_id, store_id, created_in, dob, gender, created_at, updated_at, extra_json, addresses_json";
    if customers.is_empty() {
        return Ok(());
    }
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let sql = format!(
        "INSERT INTO customers ({COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET email = excluded.email, firstname = excluded.firstname, lastname = excluded.lastname, middlename = excluded.middlename, group_id = excluded.group_id, website_id = excluded.website_id, store_id = excluded.store_id, created_in = excluded.created_in, dob = excluded.dob, gender = excluded.gender, created_at = excluded.created_at, updated_at = excluded.updated_at, extra_json = excluded.extra_json, addresses_json = excluded.addresses_json",
        vec![row; customers.len()].join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in customers {
        q = bind_customer(q.bind(c.get("id").and_then(Value::as_i64)), c);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds a customer's columns, from `email` to `addresses_json`, in table order.
fn bind_customer<'q>(q: Query<'q>, c: &Value) -> Query<'q> {
    let (extra, addresses) = split_customer(c);
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    let i = |k: &str| c.get(k).and_then(Value::as_i64);
    q.bind(s("email").unwrap_or_default())
        .bind(s("firstname").unwrap_or_default())
        .bind(s("lastname").unwrap_or_default())
        .bind(s("middlename"))
        .bind(i("group_id").unwrap_or(1))
        .bind(i("website_id").unwrap_or(1))
        .bind(i("store_id").unwrap_or(1))
        .bind(s("created_in").unwrap_or_default())
        .bind(s("dob"))
        .bind(i("gender"))
        .bind(s("created_at").unwrap_or_default())
        .bind(s("updated_at").unwrap_or_default())
        .bind(extra.to_string())
        .bind(addresses.to_string())
}

pub fn group_json(r: &SqliteRow) -> Value {
    json!({
        "id": r.get::<i64, _>(0),
        "code": r.get::<String, _>(1),
        "tax_class_id": r.get::<i64, _>(2),
        "tax_class_name": r.get::<String, _>(3),
    })
}

/// Fields kept in columns (everything else goes to `extra_json`).
const COLUMN_FIELDS: &[&str] = &[
    "id",
    "email",
    "firstname",
    "lastname",
    "middlename",
    "group_id",
    "website_id",
    "store_id",
    "created_in",
    "dob",
    "gender",
    "created_at",
    "updated_at",
    "addresses",
    "default_billing",
    "default_shipping",
];

fn split_customer(c: &Value) -> (Value, Value) {
    let mut extra = Map::new();
    if let Some(obj) = c.as_object() {
        for (k, v) in obj {
            if !COLUMN_FIELDS.contains(&k.as_str()) {
                extra.insert(k.clone(), v.clone());
            }
        }
    }
    let addresses = c.get("addresses").cloned().unwrap_or_else(|| json!([]));
    (Value::Object(extra), addresses)
}

/// A customer row as Magento's customer object, in its field order.
pub fn customer_from(r: &SqliteRow) -> Value {
    let id: i64 = r.get(0);
    let addresses: Value = serde_json::from_str(&r.get::<String, _>(14)).unwrap_or(json!([]));
    let default_of = |flag: &str| {
        addresses.as_array().and_then(|a| {
            a.iter()
                .find(|x| x.get(flag).and_then(Value::as_bool) == Some(true))
                .and_then(|x| x.get("id"))
                .map(|id| Value::String(id.to_string()))
        })
    };
    let mut c = Map::new();
    c.insert("id".into(), json!(id));
    c.insert("group_id".into(), json!(r.get::<i64, _>(5)));
    if let Some(v) = default_of("default_billing") {
        c.insert("default_billing".into(), v);
    }
    if let Some(v) = default_of("default_shipping") {
        c.insert("default_shipping".into(), v);
    }
    c.insert("created_at".into(), json!(r.get::<String, _>(11)));
    c.insert("updated_at".into(), json!(r.get::<String, _>(12)));
    c.insert("created_in".into(), json!(r.get::<String, _>(8)));
    if let Some(dob) = r.get::<Option<String>, _>(9) {
        c.insert("dob".into(), json!(dob));
    }
    c.insert("email".into(), json!(r.get::<String, _>(1)));
    c.insert("firstname".into(), json!(r.get::<String, _>(2)));
    c.insert("lastname".into(), json!(r.get::<String, _>(3)));
    if let Some(m) = r.get::<Option<String>, _>(4) {
        c.insert("middlename".into(), json!(m));
    }
    if let Some(g) = r.get::<Option<i64>, _>(10) {
        c.insert("gender".into(), json!(g));
    }
    c.insert("store_id".into(), json!(r.get::<i64, _>(7)));
    c.insert("website_id".into(), json!(r.get::<i64, _>(6)));
    c.insert("addresses".into(), addresses);
    c.insert("disable_auto_group_change".into(), json!(0));
    let extra: Value = serde_json::from_str(&r.get::<String, _>(13)).unwrap_or(json!({}));
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c.entry("extension_attributes")
        .or_insert_with(|| json!({"is_subscribed": false}));
    Value::Object(c)
}
