//! The client: one place where every call is paced, authenticated, counted and retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use backon::{BackoffBuilder, ExponentialBuilder};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use roster_domain::access::RoleAssignment;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::config::ClientConfig;
use crate::directory::Directory;
use crate::error::{ApiFailure, MarketoError};
use crate::model::{
    Invitation, PendingInvitation, Role, RolePair, User, UserSummary, UserUpdate, Workspace,
};
use crate::pacing::Pacer;
use crate::quota::QuotaBudget;
use crate::stats::{CallStats, Counters};
use crate::token::{Token, TokenCache};

const USERS: &str = "/userservice/management/v1/users";
/// The largest page `allusers.json` serves.
pub const MAX_PAGE_SIZE: usize = 200;

/// Everything but RFC 3986's unreserved characters is escaped in a path segment: user ids
/// are email addresses and may hold `+`, `%`, `/`, `?`, `#` or any unicode.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Retries with a refreshed token before backing off (the normal case is one).
const MAX_IMMEDIATE_TOKEN_RETRIES: usize = 3;

/// How many times one call waits for the rate window's edge after a 606 before it falls
/// back to the ordinary retries.
const MAX_WINDOW_WAITS: usize = 4;

const SHAPE_UNKNOWN: u8 = 0;
const SHAPE_INPUT: u8 = 1;
const SHAPE_ARRAY: u8 = 2;

/// The outcome of an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invited {
    Sent,
    /// An earlier attempt timed out but had in fact run: the user is already invited.
    SentByEarlierAttempt,
}

/// The outcome of a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// An earlier attempt timed out but had in fact run: the record is already gone.
    DeletedByEarlierAttempt,
}

/// A Marketo User Management client. Cheap to clone; clones share the token, the pacing,
/// the quota budget and the counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    tokens: TokenCache,
    pacer: Arc<Pacer>,
    /// The limits shared with other processes, when configured.
    ledger: Option<Arc<dyn roster_pacing::SharedPacing>>,
    quota: QuotaBudget,
    counters: Counters,
    role_shape: AtomicU8,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.config.base_url)
            .field("client_secret", &self.inner.config.client_secret)
            .finish_non_exhaustive()
    }
}

/// How one exchange failed, before the retry loop decides what to do.
enum Failure {
    /// 601/602: the token must be replaced.
    Token(ApiFailure),
    /// Worth another attempt; `ran` says whether the server may have executed it.
    Transient {
        error: MarketoError,
        ran: bool,
    },
    Final(ApiFailure),
    /// Not worth another attempt, and not an API answer (nothing listens on this machine).
    Stop(MarketoError),
}

/// A failed exchange: `Unreachable` when the connection was refused by this machine (nothing
/// listens there, so retrying only makes the user wait), else `Transport`.
pub(crate) fn transport_error(base_url: &str, operation: &str, e: &reqwest::Error) -> MarketoError {
    let detail = describe_transport(e);
    if is_certificate_failure(&detail) {
        return MarketoError::Certificate {
            base_url: base_url.to_string(),
            operation: operation.to_string(),
            detail,
        };
    }
    if e.is_connect() && roster_domain::endpoint::is_local(base_url) {
        MarketoError::Unreachable {
            base_url: base_url.to_string(),
            operation: operation.to_string(),
            detail,
        }
    } else {
        MarketoError::Transport {
            base_url: base_url.to_string(),
            operation: operation.to_string(),
            detail,
        }
    }
}

/// Whether a transport failure is the TLS handshake refusing the server's certificate
/// (rustls says "invalid peer certificate: ..."): retrying cannot fix that.
fn is_certificate_failure(detail: &str) -> bool {
    detail.contains("invalid peer certificate")
}

pub(crate) fn describe_transport(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "the request timed out".to_string()
    } else if e.is_connect() {
        "the connection failed".to_string()
    } else {
        "the exchange failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn encode(userid: &str) -> String {
    utf8_percent_encode(userid, SEGMENT).to_string()
}

fn iso(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .expect("a UTC date-time always formats")
}

fn pairs_json(roles: &[RoleAssignment]) -> Value {
    Value::Array(
        roles
            .iter()
            .map(|r| json!({"accessRoleId": r.role_id, "workspaceId": r.workspace_id}))
            .collect(),
    )
}

impl Client {
    /// A client whose daily budget starts with `quota_used` calls already spent today.
    pub fn new(config: ClientConfig, quota_used: u64) -> Result<Self, MarketoError> {
        roster_domain::endpoint::check_transport(&config.base_url, config.allow_insecure_http)
            .map_err(MarketoError::Config)?;
        if config.client_id.trim().is_empty() || config.client_secret.expose().is_empty() {
            return Err(MarketoError::Config(
                "a client id and a client secret are both needed; set ROSTER_MARKETO_CLIENT_ID and ROSTER_MARKETO_CLIENT_SECRET".into(),
            ));
        }
        let http = roster_http::client_builder()
            // Calls carry the client secret or a token: never re-send them elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MarketoError::Config(format!("cannot build the HTTP client: {e}")))?;
        let pacer = Pacer::new(config.max_in_flight, config.rate_limit, config.rate_window);
        let ledger: Option<Arc<dyn roster_pacing::SharedPacing>> = match &config.shared_ledger {
            _ if config.shared_pacing.is_some() => config.shared_pacing.clone(),
            Some(path) => Some(Arc::new(
                roster_pacing::Ledger::new(
                    path,
                    config.rate_limit,
                    config.rate_window,
                    config.max_in_flight,
                    config.request_timeout,
                )
                .map_err(|e| {
                    MarketoError::Config(format!(
                        "cannot open the shared pacing ledger {}: {e}",
                        path.display()
                    ))
                })?,
            )),
            None => None,
        };
        let quota = QuotaBudget::new(config.daily_quota, quota_used);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                tokens: TokenCache::default(),
                pacer,
                ledger,
                quota,
                counters: Counters::default(),
                role_shape: AtomicU8::new(SHAPE_UNKNOWN),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> CallStats {
        self.inner.counters.snapshot()
    }

    pub fn quota(&self) -> &QuotaBudget {
        &self.inner.quota
    }

    /// When recent calls were answered, as seconds-ago, so the next run of Roster can keep
    /// the rate window across processes (the limit is per subscription, not per process).
    pub fn recent_calls(&self) -> Vec<std::time::Duration> {
        self.inner.pacer.recent()
    }

    /// Counts calls made by an earlier run against the rate window.
    pub fn remember_recent_calls(&self, ages: &[std::time::Duration]) {
        self.inner.pacer.remember(ages);
    }

    // ---- the one path every call takes ----

    /// How long until the oldest call in the rate window leaves it: from the ledger shared
    /// with other processes, else this process's own calls, else (no call known) a whole
    /// window.
    fn until_window_edge(&self) -> std::time::Duration {
        let margin = std::time::Duration::from_millis(100);
        self.inner
            .ledger
            .as_ref()
            .and_then(|l| l.until_window_edge())
            .or_else(|| self.inner.pacer.until_window_edge())
            .unwrap_or(self.inner.config.rate_window)
            + margin
    }

    async fn token(&self) -> Result<(Token, bool), MarketoError> {
        let c = &self.inner.config;
        self.inner
            .tokens
            .get(
                &self.inner.http,
                &c.base_url,
                &c.client_id,
                &c.client_secret,
                || Counters::bump(&self.inner.counters.token_refreshes),
            )
            .await
    }

    async fn exchange(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: &Token,
        operation: &str,
    ) -> Result<bytes::Bytes, Failure> {
        let url = format!("{}{path}", self.inner.config.base_url);
        let mut request = self
            .inner
            .http
            .request(method.clone(), &url)
            .bearer_auth(token.value.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport =
            |e: reqwest::Error| match transport_error(&self.inner.config.base_url, operation, &e) {
                stop @ (MarketoError::Unreachable { .. } | MarketoError::Certificate { .. }) => {
                    Failure::Stop(stop)
                }
                error => Failure::Transient {
                    // A connection that never opened cannot have run anything.
                    ran: !e.is_connect(),
                    error,
                },
            };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if let Err(MarketoError::Redirected { location, .. }) = redirected(operation, &response) {
            return Err(Failure::Final(ApiFailure {
                operation: operation.to_string(),
                status: status.as_u16(),
                code: None,
                message: format!(
                    "a redirect to {location}, not followed: the call carries a token. Set ROSTER_MARKETO_URL to the REST endpoint shown in Admin > Web Services"
                ),
                earlier_attempt_may_have_run: false,
            }));
        }
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes);
        }
        let (code, message) = parse_error(&bytes);
        let failure = ApiFailure {
            operation: operation.to_string(),
            status: status.as_u16(),
            code: code.clone(),
            message,
            earlier_attempt_may_have_run: false,
        };
        Err(match code.as_deref() {
            Some("601" | "602") => Failure::Token(failure),
            Some("606" | "615" | "608") => Failure::Transient {
                error: MarketoError::Api(failure),
                ran: false,
            },
            Some("604" | "611") => Failure::Transient {
                error: MarketoError::Api(failure),
                ran: true,
            },
            Some("607") => Failure::Final(failure),
            _ if status.is_server_error() => Failure::Transient {
                error: MarketoError::Api(failure),
                ran: true,
            },
            _ => Failure::Final(failure),
        })
    }

    /// Sends one call: budget, token, pacing, retries. Returns the success body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        operation: &str,
    ) -> Result<bytes::Bytes, MarketoError> {
        let retry = &self.inner.config.retry;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(retry.min_delay)
            .with_max_delay(retry.max_delay)
            .with_max_times(retry.max_retries)
            .with_jitter()
            .build();
        let counters = &self.inner.counters;
        let mut attempts = 0usize;
        let mut may_have_run = false;
        let mut token_retries = 0;
        let mut rate_waits = 0;
        let mut backoffs = 0usize;
        loop {
            attempts += 1;
            let failure = match self.token().await {
                Err(e @ MarketoError::Transport { .. }) => Failure::Transient {
                    error: e,
                    ran: false,
                },
                Err(MarketoError::Api(f)) => Failure::Transient {
                    error: MarketoError::Api(f),
                    ran: false,
                },
                Err(e) => return Err(e),
                Ok((token, fetched_now)) => {
                    self.inner.quota.take()?;
                    let (ticket, mut waited) = self.inner.pacer.admit().await;
                    // Then the limits shared with other Roster processes on this machine.
                    let slot = match &self.inner.ledger {
                        Some(ledger) => {
                            let (slot, shared_wait) =
                                roster_pacing::Slot::admit(ledger).await.map_err(|e| {
                                    MarketoError::Config(format!(
                                        "cannot pace with the other Roster processes: {e}"
                                    ))
                                })?;
                            waited |= shared_wait;
                            Some(slot)
                        }
                        None => None,
                    };
                    if waited {
                        Counters::bump(&counters.paced_waits);
                    }
                    Counters::bump(&counters.calls);
                    if attempts > 1 {
                        Counters::bump(&counters.retries);
                    }
                    let result = self.exchange(&method, path, body, &token, operation).await;
                    drop(slot);
                    drop(ticket);
                    match result {
                        Ok(bytes) => return Ok(bytes),
                        Err(Failure::Token(f)) => {
                            let ours = self.inner.tokens.invalidate(&token).await;
                            // A token fetched for this very attempt, refused as invalid and
                            // not replaced by another caller meanwhile, means the credentials
                            // or the service are broken.
                            if f.code_is("601") && fetched_now && ours {
                                return Err(MarketoError::TokenRefused {
                                    detail: f.to_string(),
                                });
                            }
                            // Otherwise the token expired, or another caller replaced it
                            // meanwhile: refresh and retry at once, a few times, then with
                            // backoff.
                            token_retries += 1;
                            if token_retries <= MAX_IMMEDIATE_TOKEN_RETRIES {
                                continue;
                            }
                            Failure::Transient {
                                error: MarketoError::Api(f),
                                ran: false,
                            }
                        }
                        Err(other) => other,
                    }
                }
            };
            match failure {
                Failure::Final(mut f) => {
                    f.earlier_attempt_may_have_run = may_have_run;
                    return Err(MarketoError::Api(f));
                }
                Failure::Token(_) => unreachable!("token failures are resolved above"),
                Failure::Stop(e) => return Err(e),
                Failure::Transient { error, ran } => {
                    may_have_run |= ran;
                    if let Some(f) = error.api()
                        && (f.code_is("606") || f.code_is("615"))
                    {
                        Counters::bump(&counters.rate_limited);
                    }
                    // Over the rate limit (someone else's calls filled the window): a short
                    // backoff only hits it again. Wait for the window's edge, a few times,
                    // before the ordinary retries.
                    if error.api().is_some_and(|f| f.code_is("606"))
                        && rate_waits < MAX_WINDOW_WAITS
                    {
                        rate_waits += 1;
                        let edge = self.until_window_edge();
                        tracing::warn!(
                            "{operation}: Marketo's rate limit is spent (606; other clients share it); waiting {:.1}s for the window to move",
                            edge.as_secs_f64()
                        );
                        tokio::time::sleep(edge).await;
                        continue;
                    }
                    match delays.next() {
                        Some(delay) => {
                            // Counted apart from attempts: refreshed tokens and waits for
                            // the rate window retry too, but do not spend the backoffs.
                            backoffs += 1;
                            // Said on stderr, so a slow run shows what it is waiting for.
                            tracing::warn!(
                                "{operation}: attempt {attempts} failed ({error}); retrying in {:.1}s (retry {backoffs} of {})",
                                delay.as_secs_f64(),
                                retry.max_retries
                            );
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            return Err(MarketoError::GaveUp {
                                operation: operation.to_string(),
                                attempts,
                                last: Box::new(error),
                                may_have_run,
                            });
                        }
                    }
                }
            }
        }
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        operation: &str,
    ) -> Result<(T, Value), MarketoError> {
        let bytes = self.call(Method::GET, path, None, operation).await?;
        decode(&bytes, operation)
    }

    // ---- reads ----

    /// One page of accepted users (`allusers.json`); `size` is capped at 200.
    pub async fn users_page(
        &self,
        offset: usize,
        size: usize,
    ) -> Result<Vec<UserSummary>, MarketoError> {
        let size = size.clamp(1, MAX_PAGE_SIZE);
        let path = format!("{USERS}/allusers.json?pageSize={size}&pageOffset={offset}");
        Ok(self
            .get_json(&path, &format!("listing users from {offset}"))
            .await?
            .0)
    }

    /// Every accepted user, in pages of 200. Pending invitations are not listed by the API.
    pub async fn all_users(&self) -> Result<Vec<UserSummary>, MarketoError> {
        let mut users = Vec::new();
        loop {
            let page = self.users_page(users.len(), MAX_PAGE_SIZE).await?;
            let last = page.len() < MAX_PAGE_SIZE;
            users.extend(page);
            if last {
                return Ok(users);
            }
        }
    }

    /// An accepted user with their roles.
    pub async fn user(&self, userid: &str) -> Result<User, MarketoError> {
        let path = format!("{USERS}/{}/user.json", encode(userid));
        let operation = format!("reading user {userid}");
        let (mut user, raw): (User, Value) = self.get_json(&path, &operation).await?;
        if let Some(pairs) = raw.get("userRoleWorkspaces") {
            let pairs: Vec<RolePair> =
                serde_json::from_value(pairs.clone()).map_err(|e| MarketoError::Decode {
                    operation: operation.clone(),
                    detail: e.to_string(),
                    snippet: snippet(pairs.to_string().as_bytes()),
                })?;
            user.roles = pairs.into_iter().map(Into::into).collect();
        }
        user.raw = raw;
        Ok(user)
    }

    /// The accepted user, or `None` when there is none (a pending invitation included).
    pub async fn find_user(&self, userid: &str) -> Result<Option<User>, MarketoError> {
        match self.user(userid).await {
            Ok(user) => Ok(Some(user)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The pending (or expired) invitation of `userid`, if there is one.
    pub async fn invitation(
        &self,
        userid: &str,
    ) -> Result<Option<PendingInvitation>, MarketoError> {
        let path = format!("{USERS}/{}/invite.json", encode(userid));
        match self
            .get_json::<PendingInvitation>(&path, &format!("reading the invitation of {userid}"))
            .await
        {
            Ok((mut invite, raw)) => {
                invite.raw = raw;
                Ok(Some(invite))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn user_roles(&self, userid: &str) -> Result<Vec<RoleAssignment>, MarketoError> {
        let path = format!("{USERS}/{}/roles.json", encode(userid));
        let (pairs, _): (Vec<RolePair>, _) = self
            .get_json(&path, &format!("reading the roles of {userid}"))
            .await?;
        Ok(pairs.into_iter().map(Into::into).collect())
    }

    pub async fn roles(&self) -> Result<Vec<Role>, MarketoError> {
        Ok(self
            .get_json(&format!("{USERS}/roles.json"), "listing roles")
            .await?
            .0)
    }

    pub async fn workspaces(&self) -> Result<Vec<Workspace>, MarketoError> {
        Ok(self
            .get_json(&format!("{USERS}/workspaces.json"), "listing workspaces")
            .await?
            .0)
    }

    /// Roles and workspaces, fetched together (two calls).
    pub async fn directory(&self) -> Result<Directory, MarketoError> {
        let (roles, workspaces) = tokio::try_join!(self.roles(), self.workspaces())?;
        Ok(Directory { roles, workspaces })
    }

    // ---- writes ----

    /// Invites a user with roles; API-only users are active at once, others get an email.
    pub async fn invite(&self, invitation: &Invitation) -> Result<Invited, MarketoError> {
        let userid = invitation.userid.as_deref().unwrap_or(&invitation.email);
        let mut body = json!({
            "emailAddress": invitation.email,
            "firstName": invitation.first_name,
            "lastName": invitation.last_name,
            "userRoleWorkspaces": pairs_json(&invitation.roles),
        });
        let obj = body.as_object_mut().expect("built as an object");
        if invitation.userid.is_some() {
            obj.insert("userid".into(), json!(userid));
        }
        if invitation.api_only {
            obj.insert("apiOnly".into(), json!(true));
        }
        if let Some(at) = invitation.expires_at {
            obj.insert("expiresAt".into(), json!(iso(at)));
        }
        if let Some(reason) = &invitation.reason {
            obj.insert("reason".into(), json!(reason));
        }
        let path = format!("{USERS}/invite.json");
        match self
            .call(
                Method::POST,
                &path,
                Some(&body),
                &format!("inviting {userid}"),
            )
            .await
        {
            Ok(_) => Ok(Invited::Sent),
            Err(MarketoError::Api(f)) if f.earlier_attempt_may_have_run && f.code_is("709") => {
                tracing::info!(
                    userid,
                    "an earlier invite attempt had run; not inviting twice"
                );
                Ok(Invited::SentByEarlierAttempt)
            }
            Err(e) => Err(e),
        }
    }

    /// Updates the fields given; answers with the updated user.
    pub async fn update(&self, userid: &str, update: &UserUpdate) -> Result<User, MarketoError> {
        if update.is_empty() {
            return Err(MarketoError::Config(
                "nothing to update: give a new email, first name, last name or expiry".into(),
            ));
        }
        let mut body = serde_json::Map::new();
        if let Some(v) = &update.email {
            body.insert("emailAddress".into(), json!(v));
        }
        if let Some(v) = &update.first_name {
            body.insert("firstName".into(), json!(v));
        }
        if let Some(v) = &update.last_name {
            body.insert("lastName".into(), json!(v));
        }
        if let Some(v) = update.expires_at {
            body.insert(
                "expiresAt".into(),
                v.map(iso).map_or(Value::Null, Value::from),
            );
        }
        let path = format!("{USERS}/{}/update.json", encode(userid));
        let operation = format!("updating {userid}");
        let bytes = self
            .call(Method::POST, &path, Some(&Value::Object(body)), &operation)
            .await?;
        let (mut user, raw): (User, Value) = decode(&bytes, &operation)?;
        user.raw = raw;
        Ok(user)
    }

    /// The API-only user Roster's token acts as (the identity endpoint's `scope`), when
    /// the server says. Identity calls are free of the limits.
    pub async fn api_user(&self) -> Result<Option<String>, MarketoError> {
        Ok(self.token().await?.0.scope)
    }

    /// Refuses to take access from the user Roster itself signs in as: the guard sits here,
    /// under every command and plan, so no path can lock Roster out.
    async fn not_self(&self, userid: &str, operation: &str) -> Result<(), MarketoError> {
        match self.api_user().await? {
            Some(me) if me.trim().eq_ignore_ascii_case(userid.trim()) => {
                Err(MarketoError::OwnUser {
                    operation: operation.into(),
                    userid: userid.into(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Deletes an accepted user, permanently.
    pub async fn delete(&self, userid: &str) -> Result<Deleted, MarketoError> {
        self.not_self(userid, "delete").await?;
        let path = format!("{USERS}/{}/delete.json", encode(userid));
        self.delete_at(&path, &format!("deleting {userid}")).await
    }

    /// Deletes a pending invitation.
    pub async fn delete_invitation(&self, userid: &str) -> Result<Deleted, MarketoError> {
        let path = format!("{USERS}/{}/invite/delete.json", encode(userid));
        self.delete_at(&path, &format!("deleting the invitation of {userid}"))
            .await
    }

    async fn delete_at(&self, path: &str, operation: &str) -> Result<Deleted, MarketoError> {
        match self.call(Method::POST, path, None, operation).await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(MarketoError::Api(f)) if f.earlier_attempt_may_have_run && f.code_is("610") => {
                Ok(Deleted::DeletedByEarlierAttempt)
            }
            Err(e) => Err(e),
        }
    }

    /// Grants role/workspace pairs; answers with every pair the user now holds.
    ///
    /// On a pending user the API answers as if it worked but may not keep the change, so
    /// callers re-check after acceptance.
    pub async fn add_roles(
        &self,
        userid: &str,
        roles: &[RoleAssignment],
    ) -> Result<Vec<RoleAssignment>, MarketoError> {
        let path = format!("{USERS}/{}/roles/create.json", encode(userid));
        self.change_roles(&path, roles, &format!("granting roles to {userid}"))
            .await
    }

    /// Removes role/workspace pairs; answers with the pairs left.
    pub async fn remove_roles(
        &self,
        userid: &str,
        roles: &[RoleAssignment],
    ) -> Result<Vec<RoleAssignment>, MarketoError> {
        self.not_self(userid, "remove roles from").await?;
        let path = format!("{USERS}/{}/roles/delete.json", encode(userid));
        self.change_roles(&path, roles, &format!("removing roles from {userid}"))
            .await
    }

    /// The spec's body is `{"input": [...]}`, the developer page's a bare array. Send the
    /// spec's; if the server refuses it as invalid data, send the array and remember.
    async fn change_roles(
        &self,
        path: &str,
        roles: &[RoleAssignment],
        operation: &str,
    ) -> Result<Vec<RoleAssignment>, MarketoError> {
        let array = pairs_json(roles);
        let shape = self.inner.role_shape.load(Ordering::Relaxed);
        let bytes = if shape == SHAPE_ARRAY {
            self.call(Method::POST, path, Some(&array), operation)
                .await?
        } else {
            let wrapped = json!({ "input": array });
            match self
                .call(Method::POST, path, Some(&wrapped), operation)
                .await
            {
                Ok(bytes) => {
                    self.inner.role_shape.store(SHAPE_INPUT, Ordering::Relaxed);
                    bytes
                }
                Err(MarketoError::Api(f)) if shape == SHAPE_UNKNOWN && f.code_is("1003") => {
                    let bytes = self
                        .call(Method::POST, path, Some(&array), operation)
                        .await?;
                    tracing::info!(
                        "this instance refuses {{\"input\": [...]}} role bodies; sending bare arrays from now on"
                    );
                    self.inner.role_shape.store(SHAPE_ARRAY, Ordering::Relaxed);
                    bytes
                }
                Err(e) => return Err(e),
            }
        };
        let (pairs, _): (Vec<RolePair>, _) = decode(&bytes, operation)?;
        Ok(pairs.into_iter().map(Into::into).collect())
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], operation: &str) -> Result<(T, Value), MarketoError> {
    let err = |detail: String| MarketoError::Decode {
        operation: operation.to_string(),
        detail,
        snippet: snippet(bytes),
    };
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    let typed = T::deserialize(&raw).map_err(|e| err(e.to_string()))?;
    Ok((typed, raw))
}

/// Reads `{"errors":[{"code":..,"message":..}]}`; anything else becomes a readable message.
fn parse_error(body: &[u8]) -> (Option<String>, String) {
    let first = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let e = v.get("errors")?.as_array()?.first()?.clone();
        let code = match e.get("code")? {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Some((code, message))
    });
    match first {
        Some((code, message)) => (Some(code), message),
        None if body.is_empty() => (None, "an empty body".into()),
        None => (
            None,
            format!("a body that is not Marketo's error JSON: {}", snippet(body)),
        ),
    }
}

/// A 3xx answer is an error, saying where it pointed: following it would send the
/// credentials to an address nobody configured.
pub(crate) fn redirected(operation: &str, resp: &reqwest::Response) -> Result<(), MarketoError> {
    if !resp.status().is_redirection() {
        return Ok(());
    }
    Err(MarketoError::Redirected {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userids_are_encoded_as_one_segment() {
        assert_eq!(
            encode("o'brien+mkt@acme.example"),
            "o%27brien%2Bmkt%40acme.example"
        );
        assert_eq!(encode("a/b?c#d%e"), "a%2Fb%3Fc%23d%25e");
        assert_eq!(encode("zoë@x.example"), "zo%C3%AB%40x.example");
    }

    #[test]
    fn error_bodies_are_read_in_every_shape() {
        let (code, msg) = parse_error(br#"{"errors":[{"code":"610","message":"User not found"}]}"#);
        assert_eq!(
            (code.as_deref(), msg.as_str()),
            (Some("610"), "User not found")
        );
        let (code, _) = parse_error(br#"{"errors":[{"code":606,"message":"x"}]}"#);
        assert_eq!(code.as_deref(), Some("606"));
        let (code, msg) = parse_error(b"<html>502 Bad Gateway</html>");
        assert!(code.is_none() && msg.contains("502 Bad Gateway"));
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        let config = ClientConfig::new(
            "http://127.0.0.1:1",
            "id",
            roster_domain::Secret::new("hunter2-very-secret"),
        );
        let client = Client::new(config, 0).unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
