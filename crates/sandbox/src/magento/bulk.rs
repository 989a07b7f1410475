//! The asynchronous bulk API: `POST /async/bulk/V1/customers` (create) and
//! `PUT /async/bulk/V1/customers/byCustomerId` (update) take an array of ordinary request
//! bodies, answer 202 with a bulk uuid at once, and process the operations in the
//! background. `GET /V1/bulk/{uuid}/status` and `/detailed-status` report each operation:
//! 1 complete, 2 retriably failed, 3 failed, 4 open, 5 rejected.

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{Value, json};
use sqlx::Row;

use super::auth;
use super::customers::{self, MANAGE};
use super::error::{MagentoError, Result};
use super::seed::magento_time;
use super::server::{App, Scope};

pub const OPEN: i64 = 4;
pub const COMPLETE: i64 = 1;
pub const FAILED: i64 = 3;
pub const REJECTED: i64 = 5;

const TOPIC_CREATE: &str =
    "async.magento.customer.api.accountmanagementinterface.createaccount.post";
const TOPIC_UPDATE: &str = "async.magento.customer.api.customerrepositoryinterface.save.put";

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
    update: bool,
) -> Result<Value> {
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
    let topic = if update { TOPIC_UPDATE } else { TOPIC_CREATE };
    let now = app.clock.now_ms();
    let mut request_items = Vec::with_capacity(items.len());
    let mut any_rejected = false;
    let mut tx = app.store.pool.begin().await?;
    for (id, item) in items.iter().enumerate() {
        let valid = item.get("customer").is_some_and(Value::is_object)
            && (!update || item.get("customerId").is_some_and(|v| v.as_i64().is_some()));
        let status = if valid { OPEN } else { REJECTED };
        any_rejected |= !valid;
        let message = (!valid).then(|| {
            if update {
                "Each item needs \"customerId\" (an integer) and a \"customer\" object.".to_string()
            } else {
                "Each item needs a \"customer\" object.".to_string()
            }
        });
        sqlx::query(
            "INSERT INTO bulk_operations (bulk_uuid, id, topic, payload, status, result_message, error_code, created_at, scope_website)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&uuid)
        .bind(id as i64)
        .bind(topic)
        .bind(item.to_string())
        .bind(status)
        .bind(message.as_deref())
        .bind((!valid).then_some(400))
        .bind(now)
        .bind(scope.website_id)
        .execute(&mut *tx)
        .await?;
        let mut entry = json!({"id": id, "data_hash": data_hash(item), "status": if valid { "accepted" } else { "rejected" }});
        if let Some(m) = message {
            entry["error_message"] = json!(m);
        }
        request_items.push(entry);
    }
    tx.commit().await?;
    spawn_processing(app.clone(), uuid.clone());
    Ok(json!({"bulk_uuid": uuid, "request_items": request_items, "errors": any_rejected}))
}

/// Processes a bulk's open operations in order, in the background (unless the consumer is
/// off: then they stay open).
pub fn spawn_processing(app: Arc<App>, uuid: String) {
    if !app.config.bulk_consumer {
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = process(&app, &uuid).await {
            tracing::warn!(bulk = %uuid, error = %e.message, "bulk processing stopped; it resumes on restart");
        }
    });
}

async fn process(app: &App, uuid: &str) -> Result<()> {
    let rows = sqlx::query("SELECT id, topic, payload, scope_website FROM bulk_operations WHERE bulk_uuid = ? AND status = ? ORDER BY id")
        .bind(uuid)
        .bind(OPEN)
        .fetch_all(&app.store.pool)
        .await?;
    for row in rows {
        let id: i64 = row.get(0);
        let topic: String = row.get(1);
        let payload: Value = serde_json::from_str(&row.get::<String, _>(2)).unwrap_or(Value::Null);
        let scope = Scope {
            store_id: 0,
            website_id: row.get(3),
        };
        let outcome = if topic == TOPIC_UPDATE {
            let customer_id = payload
                .get("customerId")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            customers::update_customer(app, &scope, customer_id, &payload).await
        } else {
            customers::create_customer(app, &scope, &payload).await
        };
        let (status, message, code, result) = match outcome {
            Ok(customer) => (
                COMPLETE,
                "Service execution success ".to_string() + &topic,
                None,
                Some(customer.to_string()),
            ),
            Err(e) => (FAILED, render(&e), Some(i64::from(e.status.as_u16())), None),
        };
        sqlx::query("UPDATE bulk_operations SET status = ?, result_message = ?, error_code = ?, result = ? WHERE bulk_uuid = ? AND id = ?")
            .bind(status)
            .bind(message)
            .bind(code)
            .bind(result)
            .bind(uuid)
            .bind(id)
            .execute(&app.store.pool)
            .await?;
    }
    Ok(())
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

/// Bulks with open operations when the sandbox stopped: processing resumes at start.
pub async fn unfinished(app: &App) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT bulk_uuid FROM bulk_operations WHERE status = ?")
            .bind(OPEN)
            .fetch_all(&app.store.pool)
            .await?,
    )
}
