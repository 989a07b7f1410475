//! Customers, customer groups, websites and store views.

use serde_json::{Map, Value, json};
use sqlx::Row;

use super::auth::{self, Caller};
use super::error::{MagentoError, Result};
use super::search::{self, Criteria};
use super::seed::magento_time;
use super::server::{App, Scope};
use super::store::{CUSTOMER_COLUMNS, customer_from, group_json};

pub const MANAGE: &str = "Magento_Customer::manage";
/// Reading customers (`GET /V1/customers/:customerId`, `/search`) is the parent resource
/// (Customer `etc/webapi.xml`); writes need `MANAGE`.
pub const READ: &str = "Magento_Customer::customer";
const GROUPS: &str = "Magento_Customer::group";
const SEARCHABLE: &[&str] = &[
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
];
/// Fields a client cannot set: the server owns them.
const READ_ONLY: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "created_in",
    "default_billing",
    "default_shipping",
];

pub fn object<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>> {
    match body.get(key) {
        Some(Value::Object(o)) => Ok(o),
        None | Some(Value::Null) => Err(MagentoError::required(key)),
        Some(_) => Err(MagentoError::bad_request(
            "The \"%1\" value's type is invalid. The \"%2\" type was expected. Verify and try again.",
        )
        .with(json!([key, "object"]))),
    }
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Magento's customer password policy: 8+ characters of at least 3 of 4 classes.
fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(MagentoError::bad_request(
            "The password needs at least %1 characters. Create a new password and try again.",
        )
        .with(json!(["8"])));
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|x| **x).count() < 3 {
        return Err(MagentoError::bad_request(
            "Minimum of different classes of characters in password is %1. Classes of characters: Lower Case, Upper Case, Digits, Special Characters.",
        )
        .with(json!(["3"])));
    }
    Ok(())
}

pub async fn in_scope(app: &App, scope: &Scope, id: i64) -> Result<Value> {
    match app.store.customer(id).await? {
        Some(c) if scope.website_id.is_none_or(|w| c["website_id"] == w) => Ok(c),
        _ => Err(MagentoError::no_such("customerId", id)),
    }
}

pub fn parse_id(raw: &str) -> Result<i64> {
    raw.parse::<i64>().map_err(|_| {
        MagentoError::bad_request(
            "The \"%1\" value's type is invalid. The \"%2\" type was expected. Verify and try again.",
        )
        .with(json!([raw, "int"]))
    })
}

pub async fn get(
    app: &App,
    scope: &Scope,
    headers: &axum::http::HeaderMap,
    id: &str,
) -> Result<Value> {
    auth::require_admin(app, headers, READ).await?;
    in_scope(app, scope, parse_id(id)?).await
}

pub async fn delete(
    app: &App,
    scope: &Scope,
    headers: &axum::http::HeaderMap,
    id: &str,
) -> Result<Value> {
    auth::require_admin(app, headers, MANAGE).await?;
    let id = parse_id(id)?;
    let _w = app.store.write_guard().await;
    in_scope(app, scope, id).await?;
    app.store.delete_customer(id).await?;
    Ok(json!(true))
}

/// The ids a customer may refer to. A bulk reads them once for all its operations.
pub struct Reference {
    groups: std::collections::HashSet<i64>,
    websites: std::collections::HashSet<i64>,
    stores: std::collections::HashSet<i64>,
}

impl Reference {
    pub async fn load(app: &App) -> Result<Self> {
        let groups = sqlx::query_scalar::<_, i64>("SELECT id FROM customer_groups")
            .fetch_all(&app.store.pool)
            .await?
            .into_iter()
            .collect();
        let websites = app
            .store
            .websites()
            .await?
            .iter()
            .map(|w| w.id)
            .filter(|id| *id != 0)
            .collect();
        let stores = app
            .store
            .store_views()
            .await?
            .iter()
            .map(|s| s.id)
            .collect();
        Ok(Self {
            groups,
            websites,
            stores,
        })
    }
}

/// Checks the fields a create or an update may set, against the store's websites and groups.
async fn validate(app: &App, c: &Value) -> Result<()> {
    validate_with(&Reference::load(app).await?, c)
}

/// Required fields, a plausible email, and group, website and store ids that exist.
pub fn validate_with(reference: &Reference, c: &Value) -> Result<()> {
    for field in ["email", "firstname", "lastname"] {
        match c.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            _ => return Err(MagentoError::required(field)),
        }
    }
    let email = c["email"].as_str().unwrap_or_default();
    if !valid_email(email) {
        return Err(MagentoError::bad_request(
            "\"%1\" is not a valid email address. Enter and try again.",
        )
        .with(json!([email])));
    }
    for (field, name, known) in [
        ("group_id", "groupId", &reference.groups),
        ("website_id", "websiteId", &reference.websites),
        ("store_id", "storeId", &reference.stores),
    ] {
        let Some(v) = c.get(field) else { continue };
        let Some(id) = v.as_i64() else {
            return Err(MagentoError::bad_request(
                "The \"%1\" value's type is invalid. The \"%2\" type was expected. Verify and try again.",
            )
            .with(json!([v.to_string(), "int"])));
        };
        if !known.contains(&id) {
            return Err(MagentoError::no_such(name, id).with_status_400());
        }
    }
    Ok(())
}

impl MagentoError {
    fn with_status_400(mut self) -> Self {
        self.status = axum::http::StatusCode::BAD_REQUEST;
        self
    }
}

/// Gives new addresses ids and ties every address to the customer.
async fn number_addresses(
    app: &App,
    c: &mut Value,
    customer_id: Option<i64>,
    owned: &[i64],
) -> Result<()> {
    let first: i64 = app
        .store
        .meta("next_address_id")
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut next = first;
    number_addresses_with(c, customer_id, owned, &mut next)?;
    if next != first {
        app.store
            .set_meta("next_address_id", &next.to_string())
            .await?;
    }
    Ok(())
}

/// Gives new addresses ids from `next` (advancing it) and ties every address to the
/// customer; addresses keep ids the customer already owns.
pub fn number_addresses_with(
    c: &mut Value,
    customer_id: Option<i64>,
    owned: &[i64],
    next: &mut i64,
) -> Result<()> {
    let Some(list) = c.get_mut("addresses") else {
        return Ok(());
    };
    let Some(list) = list.as_array_mut() else {
        return Err(MagentoError::bad_request(
            "The \"%1\" value's type is invalid. The \"%2\" type was expected. Verify and try again.",
        )
        .with(json!(["addresses", "array"])));
    };
    for a in list {
        let Some(obj) = a.as_object_mut() else {
            return Err(MagentoError::bad_request("Each address must be an object."));
        };
        let keep = obj
            .get("id")
            .and_then(Value::as_i64)
            .filter(|id| owned.contains(id));
        let id = match keep {
            Some(id) => id,
            None => {
                let id = *next;
                *next += 1;
                id
            }
        };
        obj.insert("id".into(), json!(id));
        if let Some(cid) = customer_id {
            obj.insert("customer_id".into(), json!(cid));
        }
    }
    Ok(())
}

async fn email_taken(app: &App, email: &str, website_id: i64, except: Option<i64>) -> Result<()> {
    if let Some(other) = app.store.customer_id_by_email(email, website_id).await?
        && Some(other) != except
    {
        return Err(MagentoError::bad_request(
            "A customer with the same email address already exists in an associated website.",
        ));
    }
    Ok(())
}

pub async fn create(
    app: &App,
    scope: &Scope,
    headers: &axum::http::HeaderMap,
    body: &Value,
) -> Result<Value> {
    auth::require_admin(app, headers, MANAGE).await?;
    create_customer(app, scope, body).await
}

/// Creates a customer from `{"customer": {..}, "password": ..}` (also run by bulk operations).
pub async fn create_customer(app: &App, scope: &Scope, body: &Value) -> Result<Value> {
    let given = object(body, "customer")?;
    let password = match body.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(MagentoError::bad_request("The password must be a string.")),
    };
    let mut c = Value::Object(given.clone());
    for k in READ_ONLY {
        c.as_object_mut().expect("an object").remove(*k);
    }
    let views = app.store.store_views().await?;
    let website_id = c
        .get("website_id")
        .and_then(Value::as_i64)
        .unwrap_or(scope.website_id.unwrap_or(1));
    c["website_id"] = json!(website_id);
    // The store of the request's scope, else the website's first store view.
    let store_id = c
        .get("store_id")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| {
            views
                .iter()
                .find(|s| s.id == scope.store_id && s.website_id == website_id && s.id != 0)
                .or_else(|| {
                    views
                        .iter()
                        .find(|s| s.website_id == website_id && s.id != 0)
                })
                .map_or(1, |s| s.id)
        });
    c["store_id"] = json!(store_id);
    if c.get("group_id").is_none() {
        c["group_id"] = json!(1);
    }
    validate(app, &c).await?;
    if let Some(p) = &password {
        check_password(p)?;
    }
    let now = magento_time(app.clock.now_ms());
    c["created_at"] = json!(now);
    c["updated_at"] = json!(now);
    c["created_in"] = json!(
        views
            .iter()
            .find(|s| s.id == store_id)
            .map_or("Default Store View".to_string(), |s| s.name.clone())
    );
    let hash = password.as_deref().map(auth::hash_password);
    let email = c["email"].as_str().unwrap_or_default().to_string();
    let _w = app.store.write_guard().await;
    email_taken(app, &email, website_id, None).await?;
    number_addresses(app, &mut c, None, &[]).await?;
    let id = app.store.save_customer(&c, hash.as_deref()).await?;
    c["id"] = json!(id);
    let owned = owned_ids(&c);
    number_addresses(app, &mut c, Some(id), &owned).await?;
    app.store.save_customer(&c, None).await?;
    if password.is_none() {
        app.store
            .send_mail(
                &email,
                "Welcome to Main Website Store",
                &format!(
                    "To sign in to our site and set a password, click on the link: {}/customer/account/createPassword/?id={id}",
                    app.base_url
                ),
                app.clock.now_ms(),
            )
            .await?;
    }
    Ok(app.store.customer(id).await?.expect("just saved"))
}

/// The body's fields over the stored customer, but for those Magento keeps itself.
pub fn merge_over(c: &mut Value, given: Map<String, Value>) {
    for (k, v) in given {
        if READ_ONLY.contains(&k.as_str()) {
            continue;
        }
        c[k.as_str()] = v;
    }
}

pub fn owned_ids(c: &Value) -> Vec<i64> {
    c.get("addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("id").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default()
}

/// 2.4 behaviour: the body is merged over the stored customer; a present `addresses`
/// replaces the address set (`[]` removes them all).
pub async fn merge_update(app: &App, id: i64, body: &Value) -> Result<Value> {
    let given = object(body, "customer")?.clone();
    let _w = app.store.write_guard().await;
    let mut c = app
        .store
        .customer(id)
        .await?
        .ok_or_else(|| MagentoError::no_such("customerId", id))?;
    let owned = owned_ids(&c);
    merge_over(&mut c, given);
    validate(app, &c).await?;
    let website_id = c["website_id"].as_i64().unwrap_or(1);
    email_taken(
        app,
        c["email"].as_str().unwrap_or_default(),
        website_id,
        Some(id),
    )
    .await?;
    number_addresses(app, &mut c, Some(id), &owned).await?;
    c["updated_at"] = json!(magento_time(app.clock.now_ms()));
    app.store.save_customer(&c, None).await?;
    Ok(app.store.customer(id).await?.expect("just saved"))
}

pub async fn update(
    app: &App,
    scope: &Scope,
    headers: &axum::http::HeaderMap,
    id: &str,
    body: &Value,
) -> Result<Value> {
    auth::require_admin(app, headers, MANAGE).await?;
    update_customer(app, scope, parse_id(id)?, body).await
}

/// Updates customer `id` in `scope` (also run by bulk operations).
pub async fn update_customer(app: &App, scope: &Scope, id: i64, body: &Value) -> Result<Value> {
    in_scope(app, scope, id).await?;
    merge_update(app, id, body).await
}

pub async fn me(app: &App, headers: &axum::http::HeaderMap, body: Option<&Value>) -> Result<Value> {
    let Some(Caller::Customer(id)) = auth::caller(app, headers).await? else {
        return Err(MagentoError::unauthorized("self"));
    };
    match body {
        None => app
            .store
            .customer(id)
            .await?
            .ok_or_else(|| MagentoError::no_such("customerId", id)),
        Some(body) => merge_update(app, id, body).await,
    }
}

async fn run_search(
    app: &App,
    table: &str,
    columns: &[&str],
    select: &str,
    criteria: &Criteria,
    extra: Option<(&str, i64)>,
) -> Result<(Vec<sqlx::sqlite::SqliteRow>, i64)> {
    let (mut where_sql, mut binds, order) = criteria.sql(columns)?;
    if let Some((col, value)) = extra {
        where_sql = format!("({where_sql}) AND {col} = ?");
        binds.push(value.to_string());
    }
    let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE {where_sql}");
    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    for b in &binds {
        q = q.bind(b);
    }
    let total = q.fetch_one(&app.store.pool).await?;
    let mut sql = format!("SELECT {select} FROM {table} WHERE {where_sql} ORDER BY {order}");
    if let Some((size, offset)) = criteria.limit() {
        sql.push_str(&format!(" LIMIT {size} OFFSET {offset}"));
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        q = q.bind(b);
    }
    Ok((q.fetch_all(&app.store.pool).await?, total))
}

fn criteria_or_400(query: &str) -> Result<Criteria> {
    search::parse(query)?.ok_or_else(|| MagentoError::required("searchCriteria"))
}

pub async fn search(
    app: &App,
    scope: &Scope,
    headers: &axum::http::HeaderMap,
    query: &str,
) -> Result<Value> {
    auth::require_admin(app, headers, READ).await?;
    let criteria = criteria_or_400(query)?;
    let (rows, total) = run_search(
        app,
        "customers",
        SEARCHABLE,
        CUSTOMER_COLUMNS,
        &criteria,
        scope.website_id.map(|w| ("website_id", w)),
    )
    .await?;
    app.customers_served
        .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::SeqCst);
    Ok(json!({
        "items": rows.iter().map(customer_from).collect::<Vec<_>>(),
        "search_criteria": criteria.echo(),
        "total_count": total,
    }))
}

pub async fn group(app: &App, headers: &axum::http::HeaderMap, id: &str) -> Result<Value> {
    auth::require_admin(app, headers, GROUPS).await?;
    let id = parse_id(id)?;
    app.store
        .group(id)
        .await?
        .ok_or_else(|| MagentoError::no_such("id", id))
}

pub async fn group_search(
    app: &App,
    headers: &axum::http::HeaderMap,
    query: &str,
) -> Result<Value> {
    auth::require_admin(app, headers, GROUPS).await?;
    let criteria = criteria_or_400(query)?;
    let (rows, total) = run_search(
        app,
        "customer_groups",
        &["id", "code", "tax_class_id"],
        "id, code, tax_class_id, tax_class_name",
        &criteria,
        None,
    )
    .await?;
    Ok(json!({
        "items": rows.iter().map(group_json).collect::<Vec<_>>(),
        "search_criteria": criteria.echo(),
        "total_count": total,
    }))
}

pub async fn websites(app: &App, headers: &axum::http::HeaderMap) -> Result<Value> {
    auth::require_admin(app, headers, "Magento_Backend::store").await?;
    Ok(Value::Array(
        app.store
            .websites()
            .await?
            .into_iter()
            .map(|w| json!({"id": w.id, "code": w.code, "name": w.name, "default_group_id": w.default_group_id}))
            .collect(),
    ))
}

pub async fn store_views(app: &App, headers: &axum::http::HeaderMap) -> Result<Value> {
    auth::require_admin(app, headers, "Magento_Backend::store").await?;
    Ok(Value::Array(
        app.store
            .store_views()
            .await?
            .into_iter()
            .map(|s| json!({"id": s.id, "code": s.code, "name": s.name, "website_id": s.website_id, "store_group_id": s.store_group_id, "is_active": i64::from(s.is_active)}))
            .collect(),
    ))
}

/// Used by the server to count what a sandbox holds.
pub async fn count(app: &App) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) FROM customers")
        .fetch_one(&app.store.pool)
        .await?;
    Ok(row.get(0))
}
