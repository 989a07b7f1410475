//! The asynchronous bulk API: `POST /async/bulk/V1/customers` (create),
//! `PUT /async/bulk/V1/customers/byCustomerId` (update) and `DELETE
//! /async/bulk/V1/customers/byCustomerId` (delete, Adobe's bulk-endpoints page's example)
//! take an array of ordinary request bodies, answer 202 with a bulk uuid at once, and
//! process the operations in the background. `GET /V1/bulk/{uuid}/status` and
//! `/detailed-status` report each operation: 1 complete, 2 retriably failed, 3 failed,
//! 4 open, 5 rejected; `GET /V1/bulk/{uuid}/operation-status/{status}` answers how many
//! are in that status (AsynchronousOperations `etc/webapi.xml`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{Value, json};
use sqlx::Row;

use super::auth;
use super::customers::{self, MANAGE};
use super::error::{MagentoError, Result};
use super::seed::magento_time;
use super::server::{App, Scope};
use super::store::{CUSTOMER_COLUMNS, customer_from, update_customers_on};

pub const OPEN: i64 = 4;
pub const COMPLETE: i64 = 1;
pub const FAILED: i64 = 3;
pub const REJECTED: i64 = 5;

const TOPIC_CREATE: &str =
    "async.magento.customer.api.accountmanagementinterface.createaccount.post";
const TOPIC_UPDATE: &str = "async.magento.customer.api.customerrepositoryinterface.save.put";
const TOPIC_DELETE: &str =
    "async.magento.customer.api.customerrepositoryinterface.deletebyid.delete";

/// What a bulk does to each customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkKind {
    Create,
    Update,
    Delete,
}

fn data_hash(item: &Value) -> String {
    // A stable digest of the item, as Magento reports one per request item.
    let text = item.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Accepts the operations and starts processing them; answers Magento's 202 body.
pub async fn submit(
    app: &Arc<App>,
    scope: &Scope,
    headers: &HeaderMap,
    body: &Value,
    kind: BulkKind,
) -> Result<Value> {
    let update = kind == BulkKind::Update;
    auth::require_admin(app, headers, MANAGE).await?;
    let Some(items) = body.as_array() else {
        return Err(MagentoError::bad_request(
            "The \"%1\" value's type is invalid. The \"%2\" type was expected. Verify and try again.",
        )
        .with(json!(["body", "array"])));
    };
    if items.is_empty() {
        return Err(MagentoError::bad_request(
            "The request is empty: send an array of operations.",
        ));
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let topic = match kind {
        BulkKind::Create => TOPIC_CREATE,
        BulkKind::Update => TOPIC_UPDATE,
        BulkKind::Delete => TOPIC_DELETE,
    };
    let now = app.clock.now_ms();
    let mut request_items = Vec::with_capacity(items.len());
    let mut any_rejected = false;
    let mut rows = Vec::with_capacity(items.len());
    for (id, item) in items.iter().enumerate() {
        let has_id = item.get("customerId").is_some_and(|v| v.as_i64().is_some());
        let valid = match kind {
            BulkKind::Delete => has_id,
            _ => item.get("customer").is_some_and(Value::is_object) && (!update || has_id),
        };
        let status = if valid { OPEN } else { REJECTED };
        any_rejected |= !valid;
        let message = (!valid).then(|| {
            if kind == BulkKind::Delete {
                "Each item needs \"customerId\" (an integer).".to_string()
            } else if update {
                "Each item needs \"customerId\" (an integer) and a \"customer\" object.".to_string()
            } else {
                "Each item needs a \"customer\" object.".to_string()
            }
        });
        let mut entry = json!({"id": id, "data_hash": data_hash(item), "status": if valid { "accepted" } else { "rejected" }});
        if let Some(m) = &message {
            entry["error_message"] = json!(m);
        }
        request_items.push(entry);
        rows.push((id as i64, item.to_string(), status, message, valid));
    }
    // All the operations in one statement per 1,000 (one round trip to SQLite each).
    let mut tx = app.store.pool.begin().await?;
    for chunk in rows.chunks(1000) {
        let sql = format!(
            "INSERT INTO bulk_operations (bulk_uuid, id, topic, payload, status, result_message, error_code, created_at, scope_website) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, payload, status, message, valid) in chunk {
            q = q
                .bind(&uuid)
                .bind(id)
                .bind(topic)
                .bind(payload)
                .bind(status)
                .bind(message.as_deref())
                .bind((!valid).then_some(400))
                .bind(now)
                .bind(scope.website_id);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    spawn_processing(app.clone(), uuid.clone());
    Ok(json!({"bulk_uuid": uuid, "request_items": request_items, "errors": any_rejected}))
}

/// Queues a bulk for the consumer (which, when it is off, never takes it: the operations
/// stay open).
pub fn spawn_processing(app: Arc<App>, uuid: String) {
    // The consumer lives as long as the sandbox; a send after it stopped changes nothing.
    let _ = app.bulk_queue.send(uuid);
}

/// The store's consumer: one bulk at a time, first in, first out, at the configured rate.
pub async fn consume(app: Arc<App>, mut queue: tokio::sync::mpsc::UnboundedReceiver<String>) {
    let mut pace = Pace::new(app.config.bulk_rate);
    while let Some(uuid) = queue.recv().await {
        if let Err(e) = process(&app, &uuid, &mut pace).await {
            tracing::warn!(bulk = %uuid, error = %e.message, "bulk processing stopped; it resumes on restart");
        }
    }
}

/// Keeps the consumer at `rate` operations per second, in slices of about 200 ms.
struct Pace {
    rate: Option<f64>,
    started: tokio::time::Instant,
    done: u64,
}

impl Pace {
    fn new(rate: Option<f64>) -> Self {
        Self {
            rate: rate.filter(|r| *r > 0.0),
            started: tokio::time::Instant::now(),
            done: 0,
        }
    }

    /// How many operations the next slice takes, after waiting for its turn.
    async fn next_slice(&mut self) -> usize {
        let Some(rate) = self.rate else {
            return 500;
        };
        let due = self.started + std::time::Duration::from_secs_f64(self.done as f64 / rate);
        let now = tokio::time::Instant::now();
        if due < now {
            // Idle time earns no credit: a consumer that waited for work is not faster after.
            self.started = now;
            self.done = 0;
        } else {
            tokio::time::sleep_until(due).await;
        }
        ((rate * 0.2).ceil() as usize).max(1)
    }

    fn record(&mut self, n: usize) {
        self.done += n as u64;
    }
}

async fn process(app: &App, uuid: &str, pace: &mut Pace) -> Result<()> {
    let rows = sqlx::query("SELECT id, topic, payload, scope_website FROM bulk_operations WHERE bulk_uuid = ? AND status = ? ORDER BY id")
        .bind(uuid)
        .bind(OPEN)
        .fetch_all(&app.store.pool)
        .await?;
    let ops: Vec<Op> = rows
        .iter()
        .map(|row| Op {
            id: row.get(0),
            topic: row.get(1),
            payload: serde_json::from_str(&row.get::<String, _>(2)).unwrap_or(Value::Null),
            website: row.get(3),
        })
        .collect();
    let mut rest = ops.as_slice();
    while !rest.is_empty() {
        let take = pace.next_slice().await.min(rest.len());
        let (slice, after) = rest.split_at(take);
        if slice[0].topic == TOPIC_UPDATE {
            update_slice(app, uuid, slice).await?;
        } else if slice[0].topic == TOPIC_DELETE {
            for op in slice {
                let outcome = delete_one(app, op).await;
                let mut conn = app.store.pool.acquire().await?;
                record_all(&mut conn, uuid, std::slice::from_ref(op), vec![outcome]).await?;
            }
        } else {
            for op in slice {
                let scope = Scope {
                    store_id: 0,
                    website_id: op.website,
                };
                let outcome = customers::create_customer(app, &scope, &op.payload).await;
                let mut conn = app.store.pool.acquire().await?;
                record_all(&mut conn, uuid, std::slice::from_ref(op), vec![outcome]).await?;
            }
        }
        pace.record(slice.len());
        rest = after;
    }
    Ok(())
}

/// Deletes one customer, in the scope the bulk was sent to; a customer that is not there
/// (deleted since, or another website's) fails the operation as the REST call would.
async fn delete_one(app: &App, op: &Op) -> Result<Value> {
    let id = op.customer_id();
    let _w = app.store.write_guard().await;
    let scope = Scope {
        store_id: 0,
        website_id: op.website,
    };
    customers::in_scope(app, &scope, id).await?;
    app.store.delete_customer(id).await?;
    Ok(json!(true))
}

/// One queued operation.
struct Op {
    id: i64,
    topic: String,
    payload: Value,
    website: Option<i64>,
}

/// Customer updates, a slice at a time, in one transaction with the reference data read
/// once: what the REST path does per call (merge, validation, email uniqueness, addresses),
/// but with the slice's customers read in one statement and written in another, and one
/// commit, instead of several statements, a commit and the write lock per operation.
async fn update_slice(app: &App, uuid: &str, ops: &[Op]) -> Result<()> {
    let _w = app.store.write_guard().await;
    let reference = customers::Reference::load(app).await?;
    let mut tx = app.store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let first_address: i64 =
        sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = 'next_address_id'")
            .fetch_optional(&mut *tx)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
    let mut next_address = first_address;
    let now = magento_time(app.clock.now_ms());
    let ids: Vec<i64> = ops.iter().map(Op::customer_id).collect();
    let mut current: HashMap<i64, Value> = HashMap::new();
    if !ids.is_empty() {
        let sql = format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id IN ({})",
            vec!["?"; ids.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *tx).await? {
            let c = customer_from(&row);
            current.insert(c["id"].as_i64().unwrap_or(0), c);
        }
    }
    let mut outcomes = Vec::with_capacity(ops.len());
    let mut changed: Vec<i64> = Vec::new();
    for op in ops {
        let outcome = update_one(
            &mut tx,
            &reference,
            op,
            &mut current,
            &now,
            &mut next_address,
        )
        .await;
        if outcome.is_ok() && !changed.contains(&op.customer_id()) {
            changed.push(op.customer_id());
        }
        outcomes.push(outcome);
    }
    let written: Vec<&Value> = changed.iter().filter_map(|id| current.get(id)).collect();
    update_customers_on(&mut tx, &written).await?;
    record_all(&mut tx, uuid, ops, outcomes).await?;
    if next_address != first_address {
        sqlx::query("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_address_id', ?)")
            .bind(next_address.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Op {
    fn customer_id(&self) -> i64 {
        self.payload
            .get("customerId")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }
}

/// One update applied to the slice's customers in memory (written with the rest).
async fn update_one(
    tx: &mut sqlx::SqliteConnection,
    reference: &customers::Reference,
    op: &Op,
    current: &mut HashMap<i64, Value>,
    now: &str,
    next_address: &mut i64,
) -> Result<Value> {
    let id = op.customer_id();
    let given = customers::object(&op.payload, "customer")?.clone();
    let mut c = match current.get(&id) {
        Some(c) if op.website.is_none_or(|w| c["website_id"] == w) => c.clone(),
        _ => return Err(MagentoError::no_such("customerId", id)),
    };
    let owned = customers::owned_ids(&c);
    let before = (c["email"].clone(), c["website_id"].clone());
    customers::merge_over(&mut c, given);
    customers::validate_with(reference, &c)?;
    // Email and website unchanged: the pair is unique already (as the table enforces).
    if (c["email"].clone(), c["website_id"].clone()) != before {
        let email = c["email"].as_str().unwrap_or_default();
        let website = c["website_id"].as_i64().unwrap_or(1);
        let other: Option<i64> =
            sqlx::query_scalar("SELECT id FROM customers WHERE email = ? AND website_id = ?")
                .bind(email)
                .bind(website)
                .fetch_optional(&mut *tx)
                .await?;
        let taken_here = current.values().any(|o| {
            o["id"].as_i64() != Some(id)
                && o["email"].as_str() == Some(email)
                && o["website_id"].as_i64() == Some(website)
        });
        if other.is_some_and(|o| o != id) || taken_here {
            return Err(MagentoError::bad_request(
                "A customer with the same email address already exists in an associated website.",
            ));
        }
    }
    customers::number_addresses_with(&mut c, Some(id), &owned, next_address)?;
    c["updated_at"] = json!(now);
    current.insert(id, c.clone());
    Ok(c)
}

/// The outcomes of operations, as the status endpoint reports them, written in one statement.
async fn record_all(
    tx: &mut sqlx::SqliteConnection,
    uuid: &str,
    ops: &[Op],
    outcomes: Vec<Result<Value>>,
) -> Result<()> {
    let sql = format!(
        "UPDATE bulk_operations SET status = v.column2, result_message = v.column3, error_code = v.column4, result = v.column5 \
         FROM (VALUES {}) AS v WHERE bulk_operations.bulk_uuid = ? AND bulk_operations.id = v.column1",
        vec!["(?, ?, ?, ?, ?)"; ops.len()].join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (op, outcome) in ops.iter().zip(outcomes) {
        let (status, message, code, result) = outcome_columns(&op.topic, outcome);
        q = q
            .bind(op.id)
            .bind(status)
            .bind(message)
            .bind(code)
            .bind(result);
    }
    q.bind(uuid).execute(&mut *tx).await?;
    Ok(())
}

fn outcome_columns(
    topic: &str,
    outcome: Result<Value>,
) -> (i64, String, Option<i64>, Option<String>) {
    match outcome {
        Ok(customer) => (
            COMPLETE,
            "Service execution success ".to_string() + topic,
            None,
            Some(customer.to_string()),
        ),
        Err(e) => (FAILED, render(&e), Some(i64::from(e.status.as_u16())), None),
    }
}

/// A failure's message with its parameters filled in, as the status endpoint shows it.
fn render(e: &MagentoError) -> String {
    let mut text = e.message.clone();
    match &e.parameters {
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                text = text.replace(&format!("%{k}"), &v);
            }
        }
        Some(Value::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                text = text.replace(&format!("%{}", i + 1), &v);
            }
        }
        _ => {}
    }
    text
}

pub async fn status(app: &App, headers: &HeaderMap, uuid: &str, detailed: bool) -> Result<Value> {
    auth::require_admin(
        app,
        headers,
        "Magento_Logging::system_magento_logging_bulk_operations",
    )
    .await?;
    let rows = sqlx::query("SELECT id, topic, payload, status, result_message, error_code, created_at, result FROM bulk_operations WHERE bulk_uuid = ? ORDER BY id")
        .bind(uuid)
        .fetch_all(&app.store.pool)
        .await?;
    if rows.is_empty() {
        return Err(MagentoError::new(
            axum::http::StatusCode::NOT_FOUND,
            "Bulk uuid %bulkUuid not exist",
        )
        .with(json!({"bulkUuid": uuid})));
    }
    let topic: String = rows[0].get(1);
    let start: i64 = rows[0].get(6);
    let operations: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut op = json!({
                "id": r.get::<i64, _>(0),
                "status": r.get::<i64, _>(3),
                "result_message": r.get::<Option<String>, _>(4),
                "error_code": r.get::<Option<i64>, _>(5),
            });
            if detailed {
                op["topic_name"] = json!(r.get::<String, _>(1));
                op["bulk_uuid"] = json!(uuid);
                op["serialized_data"] = json!(r.get::<String, _>(2));
                op["result_serialized_data"] = json!(r.get::<Option<String>, _>(7));
            }
            op
        })
        .collect();
    Ok(json!({
        "operations_list": operations,
        "user_type": 2,
        "bulk_id": uuid,
        "description": format!("Topic {topic}"),
        "start_time": magento_time(start),
        "user_id": 1,
        "operation_count": rows.len(),
    }))
}

/// How many of a bulk's operations are in `status` (a number from 1 to 5).
pub async fn count(app: &App, headers: &HeaderMap, uuid: &str, status: &str) -> Result<Value> {
    auth::require_admin(
        app,
        headers,
        "Magento_Logging::system_magento_logging_bulk_operations",
    )
    .await?;
    let status: i64 = status.parse().map_err(|_| {
        MagentoError::bad_request("The \"%1\" value's type is invalid. The \"%2\" type was expected. Verify and try again.")
            .with(json!([status, "int"]))
    })?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM bulk_operations WHERE bulk_uuid = ? AND status = ?",
    )
    .bind(uuid)
    .bind(status)
    .fetch_one(&app.store.pool)
    .await?;
    Ok(json!(n))
}

/// Bulks with open operations when the sandbox stopped: processing resumes at start.
pub async fn unfinished(app: &App) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT bulk_uuid FROM bulk_operations WHERE status = ?")
            .bind(OPEN)
            .fetch_all(&app.store.pool)
            .await?,
    )
}
