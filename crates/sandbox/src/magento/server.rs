//! Starting and stopping a Magento sandbox, and routing `/rest[/{store_code}][/async/bulk]/V1/...`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use roster_domain::Secret;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::MagentoConfig;
use super::error::{MagentoError, Result};
use super::store::Store;
use super::{admins, auth, bulk, customers, integrations, seed};
use crate::clock::Clock;
use crate::marketo::SandboxError;

/// Bodies up to this size are read (bulk requests carry thousands of customers).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

pub struct App {
    pub store: Store,
    pub clock: Clock,
    pub config: MagentoConfig,
    pub base_url: String,
    /// Bulks waiting for the consumer, first in, first out.
    pub bulk_queue: tokio::sync::mpsc::UnboundedSender<String>,
    /// REST calls answered so far (for `html_errors_first`).
    pub rest_calls: std::sync::atomic::AtomicU64,
    /// Customers returned by searches and reads so far (`GET /sandbox/stats`): what a test
    /// checks a filtered read against.
    pub customers_served: std::sync::atomic::AtomicU64,
}

/// Which customers a request sees: `all` (admin scope) sees every website.
#[derive(Debug, Clone)]
pub struct Scope {
    pub store_id: i64,
    pub website_id: Option<i64>,
}

/// A Magento sandbox serving in the background; call [`RunningMagento::shutdown`] to stop it.
pub struct RunningMagento {
    base_url: String,
    admin_user: String,
    admin_password: Secret,
    totp_secret: Option<Secret>,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    fresh: bool,
}

impl RunningMagento {
    /// `http://127.0.0.1:PORT`; the REST API is under `/rest`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn admin_user(&self) -> &str {
        &self.admin_user
    }

    pub fn admin_password(&self) -> &Secret {
        &self.admin_password
    }

    /// The seeded admin's Google Authenticator secret (base32), with `tfa`.
    pub fn totp_secret(&self) -> Option<&Secret> {
        self.totp_secret.as_ref()
    }

    /// Creates and activates an integration on the running store.
    pub async fn create_integration(
        &self,
        name: &str,
    ) -> std::result::Result<integrations::Integration, SandboxError> {
        integrations::create(&self.app.store, name, self.app.clock.now_ms())
            .await
            .map_err(|e| SandboxError::Invalid(e.message))
    }

    pub fn was_seeded(&self) -> bool {
        self.fresh
    }

    pub fn database_path(&self) -> &std::path::Path {
        &self.app.store.path
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.app.store.close().await;
    }
}

fn generated_password() -> String {
    // Letters and digits, as Magento's admin password rule asks.
    let mut p: String = (0..14)
        .map(|_| char::from_digit(fastrand::u32(10..36), 36).expect("a letter"))
        .collect();
    p.push_str(&fastrand::u32(10..100).to_string());
    p
}

/// Makes sure the admin account exists with the given (or stored, or a new) password.
async fn ensure_admin(
    store: &Store,
    config: &MagentoConfig,
    now_ms: i64,
) -> std::result::Result<(String, Secret), SandboxError> {
    let user = config
        .admin_user
        .clone()
        .or(store.meta("admin_user").await?)
        .unwrap_or_else(|| "admin".into());
    let password = match &config.admin_password {
        Some(p) => p.expose().to_string(),
        None => match store.meta("admin_password").await? {
            Some(p) => p,
            None => generated_password(),
        },
    };
    sqlx::query(
        "INSERT INTO admins (username, firstname, lastname, email, password_hash, role_id, is_active, created_at)
         VALUES (?, 'Store', 'Admin', 'admin@example.com', ?, 1, 1, ?)
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, is_active = 1",
    )
    .bind(&user)
    .bind(auth::hash_password(&password))
    .bind(seed::magento_time(now_ms))
    .execute(&store.pool)
    .await?;
    store.set_meta("admin_user", &user).await?;
    store.set_meta("admin_password", &password).await?;
    Ok((user, Secret::new(password)))
}

pub async fn start(config: MagentoConfig) -> std::result::Result<RunningMagento, SandboxError> {
    let (store, fresh) = Store::open(&config.data_dir).await?;
    let clock = Clock::with_offset_ms(
        store
            .meta("clock_offset_ms")
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    if fresh {
        seed::seed(&store, config.customers, clock.now_ms()).await?;
        if let Some(id) = store.customer_id_by_email(seed::SAMPLE_CUSTOMER, 1).await? {
            sqlx::query("UPDATE customers SET password_hash = ? WHERE id = ?")
                .bind(auth::hash_password(seed::SAMPLE_CUSTOMER_PASSWORD))
                .bind(id)
                .execute(&store.pool)
                .await?;
        }
    }
    let (admin_user, admin_password) = ensure_admin(&store, &config, clock.now_ms()).await?;
    let totp_secret = if config.tfa {
        let id: i64 = sqlx::query_scalar("SELECT id FROM admins WHERE username = ?")
            .bind(&admin_user)
            .fetch_one(&store.pool)
            .await?;
        let secret = integrations::ensure_secret(&store, id)
            .await
            .map_err(|e| SandboxError::Invalid(e.message))?;
        Some(Secret::new(secret))
    } else {
        None
    };
    let (listener, base_url) = crate::listen(config.listen).await?;
    let (bulk_queue, bulk_rx) = tokio::sync::mpsc::unbounded_channel();
    let app = Arc::new(App {
        store,
        clock,
        config,
        base_url: base_url.clone(),
        bulk_queue,
        rest_calls: std::sync::atomic::AtomicU64::new(0),
        customers_served: std::sync::atomic::AtomicU64::new(0),
    });
    if app.config.bulk_consumer {
        tokio::spawn(bulk::consume(app.clone(), bulk_rx));
    }
    let router = Router::new()
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            MagentoError::internal("a handler panicked").into_response()
        }))
        .with_state(app.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        roster_http::serve(listener, router, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    for uuid in bulk::unfinished(&app)
        .await
        .map_err(|e| SandboxError::Invalid(e.message))?
    {
        bulk::spawn_processing(app.clone(), uuid);
    }
    tracing::info!(%base_url, "magento sandbox listening");
    Ok(RunningMagento {
        base_url,
        admin_user,
        admin_password,
        totp_secret,
        app,
        stop: Some(stop_tx),
        task,
        fresh,
    })
}

/// Splits `/rest[/{code}][/async/bulk]/V1/rest...` into (store code, async, the rest).
fn split_path(path: &str) -> Option<(Option<&str>, bool, &str)> {
    let rest = path.strip_prefix("/rest/")?;
    let (code, rest) = match rest.split_once('/') {
        Some(("V1", tail)) => return Some((None, false, tail)),
        Some(("async", tail)) => return tail.strip_prefix("bulk/V1/").map(|t| (None, true, t)),
        Some((code, tail)) => (Some(code), tail),
        None => return None,
    };
    if let Some(tail) = rest.strip_prefix("V1/") {
        return Some((code, false, tail));
    }
    rest.strip_prefix("async/bulk/V1/").map(|t| (code, true, t))
}

async fn scope(app: &App, code: Option<&str>) -> Result<Scope> {
    let views = app.store.store_views().await?;
    match code {
        Some("all") => Ok(Scope {
            store_id: 0,
            website_id: None,
        }),
        None | Some("default") => Ok(Scope {
            store_id: 1,
            website_id: Some(1),
        }),
        Some(code) => views
            .iter()
            .find(|s| s.code == code && s.id != 0)
            .map(|s| Scope {
                store_id: s.id,
                website_id: Some(s.website_id),
            })
            .ok_or_else(|| {
                MagentoError::new(
                    StatusCode::NOT_FOUND,
                    "The store that was requested wasn't found. Verify the store and try again.",
                )
            }),
    }
}

/// The request's data as Magento's `Rest\Request::getRequestData` makes it: the JSON body
/// (an empty one is no data, not an error), with the query string's parameters merged over
/// its top level. A body that is not JSON answers 400 `Decoding error.`, as production mode
/// does (developer mode adds the parser's message and a trace).
fn json_body(headers: &HeaderMap, body: &Bytes, query: &str) -> Result<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.to_ascii_lowercase().contains("json") {
        return Err(MagentoError::bad_request(
            "Server cannot understand Content-Type HTTP header media type %1",
        )
        .with(json!([content_type])));
    }
    let mut data = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| MagentoError::bad_request("Decoding error."))?
    };
    if let Value::Object(map) = &mut data {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            // searchCriteria and fields shape the answer; they are not request data here.
            if k != "fields" {
                map.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    Ok(data)
}

async fn dispatch(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Only the dispatcher may say a signature was verified.
    headers.remove(integrations::VERIFIED_INTEGRATION);
    let path = uri.path();
    if let Some(tail) = path.strip_prefix("/sandbox/") {
        return sandbox_route(&app, &method, tail, &body).await;
    }
    // Latency counts from arrival, so the injected delay is the whole cost of a call, not
    // a cost added after the work.
    let answer_at = tokio::time::Instant::now() + app.config.faults.latency;
    let rate = app.config.faults.html_error_rate;
    let nth = app
        .rest_calls
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if nth < app.config.faults.html_errors_first || (rate > 0.0 && fastrand::f64() < rate) {
        tokio::time::sleep_until(answer_at).await;
        return gateway_page();
    }
    let oauth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("OAuth "))
        .map(str::to_string);
    if let Some(authorization) = oauth {
        match integrations::verify_oauth(&app, &method, &uri, &headers, &authorization).await {
            Ok(id) => {
                headers.insert(
                    integrations::VERIFIED_INTEGRATION,
                    id.to_string().parse().expect("digits are a header value"),
                );
            }
            Err(e) => {
                tokio::time::sleep_until(answer_at).await;
                return e.into_response();
            }
        }
    }
    let response = rest(&app, &method, &uri, &headers, &body).await;
    tokio::time::sleep_until(answer_at).await;
    response
}

/// What nginx answers when the application behind it fails: an HTML page, not JSON.
fn gateway_page() -> Response {
    let (status, title) = match fastrand::u8(0..3) {
        0 => (StatusCode::BAD_GATEWAY, "502 Bad Gateway"),
        1 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Temporarily Unavailable",
        ),
        _ => (StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out"),
    };
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

async fn rest(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let query = uri.query().unwrap_or("");
    let result = match split_path(uri.path()) {
        None => Err(MagentoError::no_route()),
        Some((code, true, tail)) => async_route(app, method, code, tail, headers, body)
            .await
            .map(|v| (StatusCode::ACCEPTED, v)),
        Some((code, false, tail)) => route(app, method, code, tail, query, headers, body)
            .await
            .map(|v| (StatusCode::OK, v)),
    };
    match result {
        Ok((status, value)) => {
            let value = match requested_fields(query) {
                Some(fields) => super::fields::apply(value, &fields),
                None => value,
            };
            (status, axum::Json(value)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The `fields` query parameter, parsed (see `fields`).
fn requested_fields(query: &str) -> Option<Vec<super::fields::Field>> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fields")
        .and_then(|(_, v)| super::fields::parse(&v))
}

/// `/rest[/{code}]/async/bulk/V1/...`: accepted at once, processed in the background.
async fn async_route(
    app: &Arc<App>,
    method: &Method,
    code: Option<&str>,
    tail: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value> {
    let scope = scope(app, code).await?;
    match (method.as_str(), tail.trim_end_matches('/')) {
        ("POST", "customers") => {
            let body = json_body(headers, body, "")?;
            bulk::submit(app, &scope, headers, &body, bulk::BulkKind::Create).await
        }
        ("PUT", "customers/byCustomerId") => {
            let body = json_body(headers, body, "")?;
            bulk::submit(app, &scope, headers, &body, bulk::BulkKind::Update).await
        }
        ("DELETE", "customers/byCustomerId") => {
            let body = json_body(headers, body, "")?;
            bulk::submit(app, &scope, headers, &body, bulk::BulkKind::Delete).await
        }
        _ => Err(MagentoError::no_route()),
    }
}

async fn route(
    app: &App,
    method: &Method,
    code: Option<&str>,
    tail: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value> {
    let scope = scope(app, code).await?;
    let parts: Vec<&str> = tail.trim_end_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["integration", "admin", "token"]) => {
            auth::admin_token(app, &json_body(headers, body, query)?)
                .await
                .map(Value::String)
        }
        ("POST", ["tfa", "provider", "google", "authenticate"]) if app.config.tfa => {
            integrations::google_authenticate(app, &json_body(headers, body, query)?)
                .await
                .map(Value::String)
        }
        ("POST", ["integration", "customer", "token"]) => auth::customer_token(
            app,
            &json_body(headers, body, query)?,
            scope.website_id.unwrap_or(1),
        )
        .await
        .map(Value::String),
        ("GET", ["customers", "search"]) => customers::search(app, &scope, headers, query).await,
        ("GET", ["customers", "me"]) => customers::me(app, headers, None).await,
        ("PUT", ["customers", "me"]) => {
            customers::me(app, headers, Some(&json_body(headers, body, query)?)).await
        }
        ("POST", ["customers"]) => {
            customers::create(app, &scope, headers, &json_body(headers, body, query)?).await
        }
        ("GET", ["customers", id]) => customers::get(app, &scope, headers, id).await,
        ("PUT", ["customers", id]) => {
            customers::update(app, &scope, headers, id, &json_body(headers, body, query)?).await
        }
        ("DELETE", ["customers", id]) => customers::delete(app, &scope, headers, id).await,
        ("GET", ["customerGroups", "search"]) => customers::group_search(app, headers, query).await,
        ("GET", ["customerGroups", id]) => customers::group(app, headers, id).await,
        ("GET", ["store", "websites"]) => customers::websites(app, headers).await,
        ("GET", ["store", "storeViews"]) => customers::store_views(app, headers).await,
        ("GET", ["bulk", uuid, "status"]) => bulk::status(app, headers, uuid, false).await,
        ("GET", ["bulk", uuid, "detailed-status"]) => bulk::status(app, headers, uuid, true).await,
        ("GET", ["bulk", uuid, "operation-status", status]) => {
            bulk::count(app, headers, uuid, status).await
        }
        (m, ["users", ..] | ["roles"]) if app.config.admin_users_api => {
            let body = if m == "POST" || m == "PUT" {
                Some(json_body(headers, body, query)?)
            } else {
                None
            };
            admins::route(app, m, &parts, query, headers, body.as_ref()).await
        }
        _ => Err(MagentoError::no_route()),
    }
}

async fn sandbox_route(app: &App, method: &Method, tail: &str, body: &Bytes) -> Response {
    let result: Result<Value> = match (method.as_str(), tail) {
        ("GET", "health") => Ok(json!({"status": "ok"})),
        ("GET", "mailbox") => app
            .store
            .mailbox()
            .await
            .map(Value::Array)
            .map_err(Into::into),
        ("GET", "stats") => customers::count(app).await.map(|n| {
            json!({
                "customers": n,
                "customers_served": app.customers_served.load(std::sync::atomic::Ordering::SeqCst),
                "rest_calls": app.rest_calls.load(std::sync::atomic::Ordering::SeqCst),
            })
        }),
        ("POST", "clock") => {
            let seconds = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("advanceSeconds").and_then(Value::as_i64))
                .filter(|s| (0..=10 * 365 * 86_400).contains(s));
            match seconds {
                Some(s) => {
                    let offset = app.clock.advance_ms(s * 1000);
                    match app
                        .store
                        .set_meta("clock_offset_ms", &offset.to_string())
                        .await
                    {
                        Ok(()) => Ok(json!({"offsetSeconds": offset / 1000})),
                        Err(e) => Err(e.into()),
                    }
                }
                None => Err(MagentoError::bad_request(
                    "send {\"advanceSeconds\": N} with N >= 0",
                )),
            }
        }
        _ => Err(MagentoError::no_route()),
    };
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn paths_split_into_store_code_async_and_route() {
        assert_eq!(
            split_path("/rest/V1/customers/1"),
            Some((None, false, "customers/1"))
        );
        assert_eq!(
            split_path("/rest/all/V1/customers"),
            Some((Some("all"), false, "customers"))
        );
        assert_eq!(
            split_path("/rest/async/bulk/V1/customers"),
            Some((None, true, "customers"))
        );
        assert_eq!(
            split_path("/rest/fr/async/bulk/V1/customers"),
            Some((Some("fr"), true, "customers"))
        );
        assert_eq!(split_path("/rest/fr/V2/customers"), None);
        assert_eq!(split_path("/api/V1/customers"), None);
    }
}
