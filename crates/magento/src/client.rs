//! The client: one path for every call (token, scope, retries, counting).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::Method;
use roster_domain::Secret;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{MagentoError, render};
use crate::search::{Condition, Criteria};

/// Admin tokens live 4 h; renew a little before.
const TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600 - 600);
const NO_ROUTE: &str = "Request does not match any route.";

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The store's base URL (the REST API is under `/rest`).
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    /// The admin's Google Authenticator secret (base32), where the store requires
    /// two-factor authentication: each sign-in then sends a TOTP code computed from it.
    pub totp_secret: Option<Secret>,
    /// An integration's credentials instead of an admin sign-in.
    pub token: Option<TokenAuth>,
    /// Store code used in every path; `all` is the admin scope that sees every website.
    pub scope: String,
    /// Customers per search page (Magento allows up to 300).
    pub page_size: usize,
    /// Operations per async bulk request.
    pub bulk_chunk: usize,
    /// How often bulk status is polled at first; the interval doubles (to 5 s at most) while
    /// nothing moves, and starts again when operations finish.
    pub poll_interval: Duration,
    /// How long a bulk may show no progress before Roster stops waiting and says the store's
    /// consumer is probably not running.
    pub bulk_stall_timeout: Duration,
    pub request_timeout: Duration,
    /// Retries after a failed attempt; with backoff from 0.2 s doubling to 5 s, eight take
    /// about 20 s, enough to ride out a gateway that fails most calls for a while.
    pub max_retries: usize,
    /// Allow plain `http://` to another machine (the password and tokens would cross the
    /// network unencrypted). `http://` to a loopback address is always allowed.
    pub allow_insecure_http: bool,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, username: impl Into<String>, password: Secret) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            username: username.into(),
            password,
            totp_secret: None,
            token: None,
            scope: "all".into(),
            page_size: 200,
            bulk_chunk: 500,
            poll_interval: Duration::from_millis(250),
            bulk_stall_timeout: Duration::from_secs(600),
            request_timeout: Duration::from_secs(120),
            max_retries: 8,
            allow_insecure_http: false,
        }
    }
}

/// Bulk submissions in flight at once.
const SUBMITS_IN_FLIGHT: usize = 3;

/// A submitted bulk: its order among the submissions, its uuid, and its customers' ids.
type Submitted = (usize, String, Vec<i64>);

/// Bulk submissions under way: a few in flight at once (each is one PHP request on a real
/// store); the consumer takes the bulks first in, first out whatever order they arrive in.
struct Submits {
    client: Client,
    url: String,
    /// PUT (whole customers written) or DELETE (customers deleted).
    method: Method,
    gate: Arc<tokio::sync::Semaphore>,
    tasks: tokio::task::JoinSet<Result<Submitted, MagentoError>>,
    next: usize,
}

impl Submits {
    fn new(client: &Client) -> Self {
        Self::with_method(client, Method::PUT)
    }

    fn with_method(client: &Client, method: Method) -> Self {
        let c = &client.inner.config;
        Self {
            client: client.clone(),
            url: format!(
                "{}/rest/{}/async/bulk/V1/customers/byCustomerId",
                c.base_url, c.scope
            ),
            method,
            gate: Arc::new(tokio::sync::Semaphore::new(SUBMITS_IN_FLIGHT)),
            tasks: tokio::task::JoinSet::new(),
            next: 0,
        }
    }

    /// Submits whole customer objects as one bulk, in the background.
    fn add(&mut self, chunk: Vec<Value>) {
        let ids: Vec<i64> = chunk
            .iter()
            .map(|c| c["id"].as_i64().unwrap_or(0))
            .collect();
        let items: Vec<Value> = chunk
            .into_iter()
            .map(|c| json!({"customerId": c["id"].clone(), "customer": c}))
            .collect();
        self.submit(ids, items);
    }

    /// Submits the deletion of these customers as one bulk, in the background.
    fn add_deletions(&mut self, ids: &[i64]) {
        let items = ids.iter().map(|id| json!({"customerId": id})).collect();
        self.submit(ids.to_vec(), items);
    }

    fn submit(&mut self, ids: Vec<i64>, items: Vec<Value>) {
        let index = self.next;
        self.next += 1;
        let method = self.method.clone();
        let (client, url, gate) = (self.client.clone(), self.url.clone(), self.gate.clone());
        self.tasks.spawn(async move {
            let _turn = gate.acquire_owned().await.expect("never closed");
            // Retried like any call: each operation writes a whole customer object, so a
            // bulk that did arrive and is submitted again writes the same values twice.
            // A deletion submitted twice deletes nothing twice: the second finds the
            // customer gone and its operation fails, which the caller reads as done.
            let answer = client
                .send_url(
                    method,
                    &url,
                    &[],
                    Some(&Value::Array(items)),
                    "submitting a bulk",
                )
                .await?;
            let uuid = answer["bulk_uuid"]
                .as_str()
                .ok_or_else(|| MagentoError::Decode {
                    operation: "submitting a bulk update".into(),
                    detail: "no bulk_uuid".into(),
                })?
                .to_string();
            Ok((index, uuid, ids))
        });
    }

    /// Every bulk's uuid and customer ids, in submission order.
    async fn finish(mut self) -> Result<Vec<(String, Vec<i64>)>, MagentoError> {
        let mut done = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(submitted)) => done.push(submitted),
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    return Err(MagentoError::Invalid(format!(
                        "a bulk submission stopped unexpectedly: {e}"
                    )));
                }
            }
        }
        done.sort_by_key(|(index, _, _)| *index);
        Ok(done.into_iter().map(|(_, uuid, ids)| (uuid, ids)).collect())
    }
}

/// How an integration (System > Extensions > Integrations) authenticates.
#[derive(Debug, Clone)]
pub enum TokenAuth {
    /// Its access token as a bearer token (Magento 2.4.4+ needs "Allow OAuth Access Tokens
    /// to be used as standalone Bearer tokens").
    Bearer(Secret),
    /// Every call signed with OAuth 1.0a from its four values.
    OAuth1(crate::oauth1::OAuth1Credentials),
}

impl ClientConfig {
    /// A client of an integration: no admin sign-in at all.
    pub fn with_token(base_url: impl Into<String>, token: TokenAuth) -> Self {
        let mut config = Self::new(base_url, "", Secret::new(""));
        config.token = Some(token);
        config
    }
}

/// One page of a search.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    pub total_count: usize,
}

/// Admin users, where the installation offers an API for them.
#[derive(Debug, Clone)]
pub enum AdminUsers {
    Available(Vec<Value>),
    /// Core Magento: no REST endpoint (404 "Request does not match any route.").
    Unavailable,
}

/// What a bulk job did, once every operation is final.
#[derive(Debug, Clone, Default)]
pub struct BulkOutcome {
    pub bulk_uuids: Vec<String>,
    pub operations: usize,
    pub complete: usize,
    /// (customer id, why) for every operation that did not complete.
    pub failed: Vec<(i64, String)>,
}

#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    /// The store is on this machine: a refused connection means nothing listens there, so
    /// it fails at once instead of being retried.
    loopback: bool,
    http: reqwest::Client,
    token: Mutex<Option<(Secret, Instant)>>,
    calls: AtomicU64,
    retries: AtomicU64,
    logins: AtomicU64,
    polls: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url)
            .field("username", &self.inner.config.username)
            .field("password", &self.inner.config.password)
            .finish_non_exhaustive()
    }
}

/// Calls made, retries among them, sign-ins, and bulk status polls (among the calls; their
/// number depends on how fast the store's consumer is, the rest is exact).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub calls: u64,
    pub retries: u64,
    pub logins: u64,
    pub polls: u64,
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "exchange failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, MagentoError> {
        roster_domain::endpoint::check_transport(&config.base_url, config.allow_insecure_http)
            .map_err(MagentoError::Invalid)?;
        if config.token.is_none()
            && (config.username.is_empty() || config.password.expose().is_empty())
        {
            return Err(MagentoError::Invalid(
                "an admin user name and password are both needed; set ROSTER_MAGENTO_USERNAME and ROSTER_MAGENTO_PASSWORD".into(),
            ));
        }
        let http = roster_http::client_builder()
            // Every call carries the password or the admin token: never re-send it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MagentoError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                loopback: roster_domain::endpoint::is_local(&config.base_url),
                config,
                http,
                token: Mutex::new(None),
                calls: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                logins: AtomicU64::new(0),
                polls: AtomicU64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> Stats {
        Stats {
            calls: self.inner.calls.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            logins: self.inner.logins.load(Ordering::Relaxed),
            polls: self.inner.polls.load(Ordering::Relaxed),
        }
    }

    fn transport(&self, operation: &str, e: &reqwest::Error) -> MagentoError {
        MagentoError::Transport {
            base_url: self.inner.config.base_url.clone(),
            operation: operation.to_string(),
            detail: describe(e),
        }
    }

    /// The bearer token of every call: an integration's access token as it is, or the admin
    /// token, cached, shared, renewed before it lapses (one sign-in for all callers).
    async fn token(&self, stale: Option<&Secret>) -> Result<Secret, MagentoError> {
        if let Some(TokenAuth::Bearer(token)) = &self.inner.config.token {
            return Ok(token.clone());
        }
        let mut current = self.inner.token.lock().await;
        if let Some((token, at)) = current.as_ref()
            && at.elapsed() < TOKEN_LIFETIME
            && stale.is_none_or(|s| s.expose() != token.expose())
        {
            return Ok(token.clone());
        }
        let c = &self.inner.config;
        // With two-factor authentication, the token comes from the provider's endpoint with a
        // code computed now (Magento_TwoFactorAuth's Google Authenticator).
        let url = match c.totp_secret {
            Some(_) => format!("{}/rest/V1/tfa/provider/google/authenticate", c.base_url),
            None => format!("{}/rest/V1/integration/admin/token", c.base_url),
        };
        let op = "signing in";
        let mut delays = self.backoff();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.inner.logins.fetch_add(1, Ordering::Relaxed);
            let mut body = json!({"username": c.username, "password": c.password.expose()});
            if let Some(secret) = &c.totp_secret {
                body["otp"] = json!(totp_now(secret)?);
            }
            let failure = match self.inner.http.post(&url).json(&body).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    redirected(op, &resp)?;
                    let bytes = resp.bytes().await.map_err(|e| self.transport(op, &e))?;
                    match answer(op, status, &bytes) {
                        Ok(body) if status.as_u16() == 401 || is_tfa_answer(&body) => {
                            return Err(sign_in_refused(&body, c.totp_secret.is_some()));
                        }
                        Ok(body) => match body.as_str().filter(|_| status.is_success()) {
                            Some(token) => {
                                let token = Secret::new(token);
                                *current = Some((token.clone(), Instant::now()));
                                return Ok(token);
                            }
                            // Final, or retried below when the store failed (5xx).
                            None => MagentoError::Api {
                                operation: op.into(),
                                status: status.as_u16(),
                                message: message_of(&body),
                            },
                        },
                        Err(e) => e,
                    }
                }
                Err(e) => self.transport_failure(op, &e)?,
            };
            if !failure.is_retryable() {
                return Err(failure);
            }
            self.retry_or_fail(&mut delays, attempt, op, failure)
                .await?;
        }
    }

    /// Exponential backoff with jitter, up to `max_retries` delays.
    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(self.inner.config.max_retries)
            .with_jitter()
            .build()
    }

    /// Waits for the next delay, saying on stderr what failed and that it retries; or gives
    /// the failure back when the retries are spent.
    async fn retry_or_fail(
        &self,
        delays: &mut impl Iterator<Item = Duration>,
        attempt: usize,
        operation: &str,
        failure: MagentoError,
    ) -> Result<(), MagentoError> {
        let Some(delay) = delays.next() else {
            return Err(failure);
        };
        tracing::warn!(
            "{operation}: attempt {attempt} failed ({failure}); retrying in {:.1}s ({} of {} retries)",
            delay.as_secs_f64(),
            attempt,
            self.inner.config.max_retries
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// A transport failure to retry, or (a connection refused on this machine, where nothing
    /// listens) one to report at once.
    fn transport_failure(
        &self,
        operation: &str,
        e: &reqwest::Error,
    ) -> Result<MagentoError, MagentoError> {
        if e.is_connect() && self.inner.loopback {
            return Err(MagentoError::Transport {
                base_url: self.inner.config.base_url.clone(),
                operation: operation.to_string(),
                detail: format!(
                    "{}; nothing accepts connections there on this machine (is the store or sandbox running, on this port? check ROSTER_MAGENTO_URL), so Roster did not retry",
                    describe(e)
                ),
            });
        }
        Ok(self.transport(operation, e))
    }

    /// Sends one call with retries; `path` is relative to `/rest/{scope}/`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Value, MagentoError> {
        let url = format!(
            "{}/rest/{}/{path}",
            self.inner.config.base_url, self.inner.config.scope
        );
        self.send_url(method, &url, query, body, operation).await
    }

    /// Sends one call to `url` with retries: transport failures and 5xx answers, whether
    /// Magento's JSON or a proxy's HTML page, are retried with backoff; a 401 signs in again
    /// once; other answers are final.
    async fn send_url(
        &self,
        method: Method,
        url: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Value, MagentoError> {
        let mut delays = self.backoff();
        let mut stale: Option<Secret> = None;
        let mut signed_in_again = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.inner.http.request(method.clone(), url).query(query);
            let token = match &self.inner.config.token {
                Some(TokenAuth::OAuth1(creds)) => {
                    let nonce: String = (0..32).map(|_| fastrand::alphanumeric()).collect();
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let header = crate::oauth1::authorization(
                        creds,
                        method.as_str(),
                        url,
                        query,
                        &nonce,
                        now,
                    );
                    req = req.header(reqwest::header::AUTHORIZATION, header);
                    None
                }
                _ => {
                    let token = self.token(stale.as_ref()).await?;
                    req = req.bearer_auth(token.expose());
                    Some(token)
                }
            };
            self.inner.calls.fetch_add(1, Ordering::Relaxed);
            if attempt > 1 {
                self.inner.retries.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    redirected(operation, &resp)?;
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| self.transport(operation, &e))?;
                    match answer(operation, status, &bytes) {
                        Ok(value) if status.is_success() => return Ok(value),
                        Ok(value)
                            if status.as_u16() == 401
                                && matches!(
                                    self.inner.config.token,
                                    Some(TokenAuth::Bearer(_))
                                ) =>
                        {
                            return Err(MagentoError::BearerRefused {
                                operation: operation.into(),
                                message: message_of(&value),
                            });
                        }
                        Ok(_)
                            if status.as_u16() == 401
                                && !signed_in_again
                                && self.inner.config.token.is_none() =>
                        {
                            // The token lapsed or was revoked: sign in again, once.
                            signed_in_again = true;
                            stale = token;
                            continue;
                        }
                        Ok(value) => MagentoError::Api {
                            operation: operation.into(),
                            status: status.as_u16(),
                            message: message_of(&value),
                        },
                        Err(e) => e,
                    }
                }
                Err(e) => self.transport_failure(operation, &e)?,
            };
            if !failure.is_retryable() {
                return Err(failure);
            }
            self.retry_or_fail(&mut delays, attempt, operation, failure)
                .await?;
        }
    }

    pub async fn websites(&self) -> Result<Vec<Value>, MagentoError> {
        list(
            self.send(
                Method::GET,
                "V1/store/websites",
                &[],
                None,
                "listing websites",
            )
            .await?,
        )
    }

    pub async fn store_views(&self) -> Result<Vec<Value>, MagentoError> {
        list(
            self.send(
                Method::GET,
                "V1/store/storeViews",
                &[],
                None,
                "listing store views",
            )
            .await?,
        )
    }

    pub async fn groups(&self) -> Result<Vec<Value>, MagentoError> {
        let q = vec![("searchCriteria[pageSize]".to_string(), "300".to_string())];
        let page = self
            .send(
                Method::GET,
                "V1/customerGroups/search",
                &q,
                None,
                "listing customer groups",
            )
            .await?;
        list(page.get("items").cloned().unwrap_or(Value::Null))
    }

    pub async fn customers_page(
        &self,
        criteria: &Criteria,
        page: usize,
    ) -> Result<Page, MagentoError> {
        self.customers_page_with(criteria, page, None).await
    }

    /// One page; with `fields`, only those fields of each customer (Magento's partial
    /// responses: `items[...]` and `total_count` are asked for).
    async fn customers_page_with(
        &self,
        criteria: &Criteria,
        page: usize,
        fields: Option<&[&str]>,
    ) -> Result<Page, MagentoError> {
        let mut q = criteria.query(self.inner.config.page_size, page);
        if let Some(fields) = fields {
            q.push((
                "fields".into(),
                format!("items[{}],total_count", fields.join(",")),
            ));
        }
        let v = self
            .send(
                Method::GET,
                "V1/customers/search",
                &q,
                None,
                &format!("searching customers (page {page})"),
            )
            .await?;
        Ok(Page {
            items: list(v.get("items").cloned().unwrap_or(Value::Null))?,
            total_count: v.get("total_count").and_then(Value::as_u64).unwrap_or(0) as usize,
        })
    }

    /// Every customer matching `criteria`: pages until `total_count` is reached (or a page
    /// comes back empty, when customers were deleted meanwhile).
    pub async fn customers(
        &self,
        criteria: &Criteria,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Value>, MagentoError> {
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let p = self.customers_page(criteria, page).await?;
            let empty = p.items.is_empty();
            all.extend(p.items);
            progress(all.len(), p.total_count);
            if empty || all.len() >= p.total_count {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// Every customer matching `criteria`, each turned into `T` by `map` as its page
    /// arrives (the JSON is not kept), with only `fields` of each sent when given. The
    /// first page says how many there are; the rest are read `concurrency` at a time, in
    /// order (sorted by id). A customer seen twice, on pages read while the store
    /// changed, is kept once.
    pub async fn customers_mapped<T>(
        &self,
        criteria: &Criteria,
        fields: Option<&[&str]>,
        concurrency: usize,
        map: impl Fn(&Value) -> T,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<T>, MagentoError> {
        use futures_util::StreamExt;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut keep = |items: Vec<Value>, out: &mut Vec<T>| {
            for v in &items {
                if seen.insert(v.get("id").and_then(Value::as_i64)) || v.get("id").is_none() {
                    out.push(map(v));
                }
            }
        };
        let first = self.customers_page_with(criteria, 1, fields).await?;
        let total = first.total_count;
        let size = self.inner.config.page_size.max(1);
        keep(first.items, &mut out);
        progress(out.len(), total);
        let pages = total.div_ceil(size);
        let mut rest = futures_util::stream::iter(2..=pages)
            .map(|page| self.customers_page_with(criteria, page, fields))
            .buffered(concurrency.max(1));
        while let Some(page) = rest.next().await {
            let page = page?;
            if page.items.is_empty() {
                break;
            }
            keep(page.items, &mut out);
            progress(out.len(), total);
        }
        Ok(out)
    }

    /// How many customers match `criteria`: one call answering `total_count` alone.
    pub async fn count_customers(&self, criteria: &Criteria) -> Result<usize, MagentoError> {
        let mut q = criteria.query(1, 1);
        q.push(("fields".into(), "total_count".into()));
        let v = self
            .send(
                Method::GET,
                "V1/customers/search",
                &q,
                None,
                "counting customers",
            )
            .await?;
        Ok(v.get("total_count").and_then(Value::as_u64).unwrap_or(0) as usize)
    }

    pub async fn customer(&self, id: i64) -> Result<Value, MagentoError> {
        self.send(
            Method::GET,
            &format!("V1/customers/{id}"),
            &[],
            None,
            &format!("reading customer {id}"),
        )
        .await
    }

    /// Customers with this email (one per website at most).
    pub async fn customers_by_email(&self, email: &str) -> Result<Vec<Value>, MagentoError> {
        self.customers(
            &Criteria::new().and("email", Condition::Eq, email),
            |_, _| {},
        )
        .await
    }

    /// Creates a customer; without a password Magento emails a link to set one.
    pub async fn create_customer(
        &self,
        customer: Value,
        password: Option<&Secret>,
    ) -> Result<Value, MagentoError> {
        let mut body = json!({ "customer": customer });
        if let Some(p) = password {
            body["password"] = json!(p.expose());
        }
        let email = customer_email(&body["customer"]);
        self.send(
            Method::POST,
            "V1/customers",
            &[],
            Some(&body),
            &format!("creating customer {email}"),
        )
        .await
    }

    /// Fetches the customer, merges `changes` over it, and writes the whole object back, so
    /// no field or address is lost whether the server merges (2.4) or replaces (older).
    pub async fn update_customer(
        &self,
        id: i64,
        changes: &Map<String, Value>,
    ) -> Result<Value, MagentoError> {
        let mut current = self.customer(id).await?;
        for (k, v) in changes {
            current[k.as_str()] = v.clone();
        }
        self.put_customer(id, current).await
    }

    /// Writes a whole customer object as read (a search result, say) with changes made:
    /// no field or address is lost, whatever the version's PUT semantics.
    pub async fn put_customer(&self, id: i64, current: Value) -> Result<Value, MagentoError> {
        self.send(
            Method::PUT,
            &format!("V1/customers/{id}"),
            &[],
            Some(&json!({ "customer": current })),
            &format!("updating customer {id}"),
        )
        .await
    }

    pub async fn delete_customer(&self, id: i64) -> Result<(), MagentoError> {
        match self
            .send(
                Method::DELETE,
                &format!("V1/customers/{id}"),
                &[],
                None,
                &format!("deleting customer {id}"),
            )
            .await?
        {
            Value::Bool(true) => Ok(()),
            other => Err(MagentoError::Decode {
                operation: format!("deleting customer {id}"),
                detail: format!("expected true, got {other}"),
            }),
        }
    }

    /// Writes whole customer objects through the async bulk API in chunks, then polls every
    /// bulk until each operation is final. `progress(final, total)` is told as they finish.
    pub async fn bulk_update(
        &self,
        customers: &[Value],
        progress: impl FnMut(usize, usize),
    ) -> Result<BulkOutcome, MagentoError> {
        let mut submits = Submits::new(self);
        for chunk in customers.chunks(self.inner.config.bulk_chunk.max(1)) {
            submits.add(chunk.to_vec());
        }
        let pending = submits.finish().await?;
        self.wait_for_bulks(pending, customers.len(), progress)
            .await
    }

    /// Changes every customer matching `criteria` with `change` and writes them through the
    /// async bulk API, submitting each page as soon as it is read, so the store's consumer
    /// works while the search goes on. Pages are read by id (`entity_id` greater than the
    /// last one seen), not by page number: the bulks change the very customers the search
    /// selects, and numbered pages would then skip some.
    pub async fn bulk_update_matching(
        &self,
        criteria: &Criteria,
        change: impl Fn(&mut Value),
        progress: impl FnMut(usize, usize),
    ) -> Result<BulkOutcome, MagentoError> {
        let mut submits = Submits::new(self);
        let mut last_id = 0i64;
        let mut total = 0;
        loop {
            let page = self
                .customers_page(
                    &criteria.clone().and("entity_id", Condition::Gt, last_id),
                    1,
                )
                .await?;
            let full = page.items.len() >= self.inner.config.page_size;
            let mut items = page.items;
            for item in &mut items {
                last_id = last_id.max(item["id"].as_i64().unwrap_or(0));
                change(item);
            }
            total += items.len();
            if !items.is_empty() {
                submits.add(items);
            }
            if !full {
                break;
            }
        }
        let pending = submits.finish().await?;
        self.wait_for_bulks(pending, total, progress).await
    }

    /// Deletes customers through the async bulk API (`DELETE
    /// /async/bulk/V1/customers/byCustomerId`) in chunks, then waits for every operation.
    /// A customer already gone fails its operation ("No such entity"); the outcome says so.
    pub async fn bulk_delete(
        &self,
        ids: &[i64],
        progress: impl FnMut(usize, usize),
    ) -> Result<BulkOutcome, MagentoError> {
        let mut submits = Submits::with_method(self, Method::DELETE);
        for chunk in ids.chunks(self.inner.config.bulk_chunk.max(1)) {
            submits.add_deletions(chunk);
        }
        let pending = submits.finish().await?;
        self.wait_for_bulks(pending, ids.len(), progress).await
    }

    /// How many operations of bulk `uuid` are still open: one small answer per poll
    /// (`GET /V1/bulk/{uuid}/operation-status/4`), instead of every operation's status.
    async fn open_operations(&self, uuid: &str) -> Result<usize, MagentoError> {
        let n = self
            .send(
                Method::GET,
                &format!("V1/bulk/{uuid}/operation-status/4"),
                &[],
                None,
                &format!("counting the open operations of bulk {uuid}"),
            )
            .await?;
        n.as_u64()
            .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            .map(|n| n as usize)
            .ok_or_else(|| MagentoError::Decode {
                operation: format!("counting the open operations of bulk {uuid}"),
                detail: format!("expected a number, got {n}"),
            })
    }

    /// Polls each bulk until every operation is final.
    async fn wait_for_bulks(
        &self,
        pending: Vec<(String, Vec<i64>)>,
        operations: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<BulkOutcome, MagentoError> {
        let mut outcome = BulkOutcome {
            operations,
            bulk_uuids: pending.iter().map(|(uuid, _)| uuid.clone()).collect(),
            ..BulkOutcome::default()
        };
        let mut finished = 0;
        for (uuid, ids) in pending {
            let mut wait = self.inner.config.poll_interval;
            let mut fewest_open = usize::MAX;
            let mut moved_at = Instant::now();
            loop {
                self.inner.polls.fetch_add(1, Ordering::Relaxed);
                // While it runs, the count of open operations; once none is, every
                // operation's outcome, read once.
                let open = self.open_operations(&uuid).await?;
                if open > 0 {
                    if open < fewest_open {
                        fewest_open = open;
                        moved_at = Instant::now();
                        wait = self.inner.config.poll_interval;
                    } else {
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    let still = moved_at.elapsed();
                    if still >= self.inner.config.bulk_stall_timeout {
                        return Err(MagentoError::BulkStalled {
                            uuid,
                            open,
                            total: ids.len(),
                            waited_seconds: still.as_secs(),
                        });
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let status = self
                    .send(
                        Method::GET,
                        &format!("V1/bulk/{uuid}/status"),
                        &[],
                        None,
                        &format!("reading bulk {uuid}"),
                    )
                    .await?;
                let ops = list(
                    status
                        .get("operations_list")
                        .cloned()
                        .unwrap_or(Value::Null),
                )?;
                for op in &ops {
                    let index = op["id"].as_u64().unwrap_or(0) as usize;
                    let customer = ids.get(index).copied().unwrap_or(0);
                    if op["status"] == 1 {
                        outcome.complete += 1;
                    } else {
                        let why = op["result_message"]
                            .as_str()
                            .unwrap_or("no message")
                            .to_string();
                        let kind = match op["status"].as_i64() {
                            Some(2) => "retriably failed",
                            Some(5) => "rejected",
                            _ => "failed",
                        };
                        outcome.failed.push((customer, format!("{kind}: {why}")));
                    }
                }
                finished += ops.len();
                progress(finished, outcome.operations);
                break;
            }
        }
        Ok(outcome)
    }

    /// Admin users, or `Unavailable` when the installation has no API for them.
    pub async fn admin_users(&self) -> Result<AdminUsers, MagentoError> {
        let q = vec![("searchCriteria[pageSize]".to_string(), "300".to_string())];
        match self
            .send(Method::GET, "V1/users", &q, None, "listing admin users")
            .await
        {
            Ok(v) => Ok(AdminUsers::Available(list(
                v.get("items").cloned().unwrap_or(Value::Null),
            )?)),
            Err(MagentoError::Api {
                status: 404,
                message,
                ..
            }) if message == NO_ROUTE => Ok(AdminUsers::Unavailable),
            Err(e) => Err(e),
        }
    }

    pub async fn admin_roles(&self) -> Result<Vec<Value>, MagentoError> {
        match self
            .send(Method::GET, "V1/roles", &[], None, "listing admin roles")
            .await
        {
            Ok(v) => list(v.get("items").cloned().unwrap_or(Value::Null)),
            Err(MagentoError::Api {
                status: 404,
                message,
                ..
            }) if message == NO_ROUTE => Err(MagentoError::NoAdminApi),
            Err(e) => Err(e),
        }
    }

    pub async fn create_admin_user(&self, user: Value) -> Result<Value, MagentoError> {
        self.send(
            Method::POST,
            "V1/users",
            &[],
            Some(&json!({ "user": user })),
            "creating an admin user",
        )
        .await
        .map_err(no_admin_api)
    }

    /// Changes the given fields of an admin user (the extension merges them over the user).
    pub async fn update_admin_user(&self, id: i64, fields: Value) -> Result<Value, MagentoError> {
        self.send(
            Method::PUT,
            &format!("V1/users/{id}"),
            &[],
            Some(&json!({ "user": fields })),
            &format!("updating admin user {id}"),
        )
        .await
        .map_err(no_admin_api)
    }

    pub async fn delete_admin_user(&self, id: i64) -> Result<(), MagentoError> {
        self.send(
            Method::DELETE,
            &format!("V1/users/{id}"),
            &[],
            None,
            &format!("deleting admin user {id}"),
        )
        .await
        .map(|_| ())
        .map_err(no_admin_api)
    }
}

fn no_admin_api(e: MagentoError) -> MagentoError {
    match e {
        MagentoError::Api {
            status: 404,
            ref message,
            ..
        } if message == NO_ROUTE => MagentoError::NoAdminApi,
        e => e,
    }
}

fn customer_email(c: &Value) -> String {
    c.get("email")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string()
}

/// The current Google Authenticator code (RFC 6238: SHA-1, 6 digits, 30 s) of a base32
/// secret, through the maintained `totp-rs`. The secret is never printed.
fn totp_now(secret: &Secret) -> Result<String, MagentoError> {
    let cleaned: String = secret
        .expose()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    let secret = totp_rs::Secret::try_from_base32(cleaned.trim_end_matches('=')).map_err(|_| {
        MagentoError::Invalid(
            "ROSTER_MAGENTO_TOTP_SECRET is not a base32 secret (letters A-Z and digits 2-7, as Magento shows it under the QR code)".into(),
        )
    })?;
    let totp = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret)
        .build_noncompliant();
    Ok(totp.generate_current().to_string())
}

/// Whether a sign-in answer is Magento_TwoFactorAuth's (some versions answer 400).
fn is_tfa_answer(body: &Value) -> bool {
    body.get("message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.contains("2fa provider-specific") || m.contains("configure 2FA"))
}

/// Why the store refused a sign-in, with what to do about it.
fn sign_in_refused(body: &Value, with_code: bool) -> MagentoError {
    let message = message_of(body);
    if message.contains("2fa provider-specific") {
        let providers = body["parameters"]["active_providers"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "not listed".into());
        return MagentoError::TwoFactorRequired { providers };
    }
    if message.contains("configure 2FA") {
        return MagentoError::TwoFactorNotSetUp { message };
    }
    if with_code && message.contains("Invalid code") {
        return MagentoError::TwoFactorCode { message };
    }
    MagentoError::SignIn { message }
}

/// A body as JSON, or, when it is not JSON and the status is not a success, what a proxy
/// or web server in front of the store answered (an nginx, CDN or load balancer page).
fn answer(
    operation: &str,
    status: reqwest::StatusCode,
    bytes: &[u8],
) -> Result<Value, MagentoError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(e) if status.is_success() => Err(MagentoError::Decode {
            operation: operation.into(),
            detail: format!("HTTP {}: {e}", status.as_u16()),
        }),
        Err(_) => {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_lowercase();
            let what = if head.contains("<html") || head.contains("<!doctype") {
                "an HTML page"
            } else {
                "a body that is not JSON"
            };
            Err(MagentoError::Proxy {
                operation: operation.into(),
                status: status.as_u16(),
                what: what.into(),
            })
        }
    }
}

fn message_of(body: &Value) -> String {
    match body.get("message").and_then(Value::as_str) {
        Some(m) => render(m, body.get("parameters")),
        None => body.to_string(),
    }
}

fn list(v: Value) -> Result<Vec<Value>, MagentoError> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Err(MagentoError::Decode {
            operation: "reading a list".into(),
            detail: format!("expected an array, got {other}"),
        }),
    }
}

/// A 3xx answer is an error, saying where it pointed: following it would send the
/// credentials to an address nobody configured.
fn redirected(operation: &str, resp: &reqwest::Response) -> Result<(), MagentoError> {
    if !resp.status().is_redirection() {
        return Ok(());
    }
    Err(MagentoError::Redirected {
        operation: operation.into(),
        status: resp.status().as_u16(),
        location: resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("(no Location header)")
            .to_string(),
    })
}
