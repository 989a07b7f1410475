//! The web console: server-rendered pages (askama, plain forms, no script) to review plans,
//! approve or reject them, and follow runs.
//!
//! Sign-in is by local account (`roster serve user add`, argon2). A session is a random
//! 256-bit cookie (`HttpOnly; SameSite=Strict; Path=/console`, `Secure` behind https), stored
//! as its SHA-256, ending after `idle` unused or `absolute` after sign-in. Every form that
//! changes something carries the session's CSRF token; the sign-in form carries one bound to
//! a pre-session cookie. Failed sign-ins lock the account after `lockout_after` in a row, and
//! an address that fails too often in a minute is slowed to a stop. Every action checks the
//! role on the server; pages only leave out the buttons a role cannot use.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use roster_domain::plan::Plan;
use roster_engine::text::{csv_cell, rfc3339};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::Shared;
use crate::api::{self, Caller};
use crate::tokens::Role;
use crate::views::Decision;

mod access;
mod admin;
mod oidc;
mod reports;
mod reviews;
mod scim;

const SESSION: &str = "roster_session";
const PRE_SESSION: &str = "roster_signin";
/// Failed sign-ins an address may make in a minute before it is refused outright.
const ADDRESS_FAILURES_PER_MINUTE: usize = 10;

/// Failed sign-ins per client address, over the last minute.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Throttle {
    fn recent(&self, ip: IpAddr) -> usize {
        let mut map = self.failures.lock().expect("throttle lock");
        let q = map.entry(ip).or_default();
        while q
            .front()
            .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
        {
            q.pop_front();
        }
        q.len()
    }

    fn failed(&self, ip: IpAddr) {
        self.failures
            .lock()
            .expect("throttle lock")
            .entry(ip)
            .or_default()
            .push_back(Instant::now());
    }
}

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/console", get(overview))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/plans", get(plans))
        .route("/console/plans/{id}", get(plan))
        .route("/console/plans/{id}/approve", post(approve))
        .route("/console/plans/{id}/reject", post(reject))
        .route("/console/runs", get(runs))
        .route("/console/tombstones", get(tombstones))
        .route("/console/tombstones/{id}/restore", post(ask_restore))
        .route("/console/restores/{id}/approve", post(approve_restore))
        .route("/console/restores/{id}/reject", post(reject_restore))
        .route("/console/log", get(log))
        .route("/console/runs/{id}", get(run))
        .route("/console/invitations", get(invitations))
        .route("/console/webhooks", get(webhooks))
        .route("/console/instances/{name}/reconcile", post(reconcile))
        .merge(access::routes())
        .merge(admin::routes())
        .merge(oidc::routes())
        .merge(scim::routes())
        .merge(reviews::routes())
        .merge(reports::routes())
}

pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .expect("argon2 hashes any password")
}

fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Checked for unknown names too, so a sign-in takes as long whether the name exists or not.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::tokens::generate()))
}

fn random() -> String {
    let t = crate::tokens::generate();
    t.trim_start_matches("roster_").to_string()
}

/// The value of the request's cookie `name` (every `Cookie` header read, as the cookie
/// crate parses them).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// Behind a proxy that terminates TLS, cookies must not travel in the clear.
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> HeaderValue {
    let mut c = cookie::Cookie::build((name, value))
        .path("/console")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure);
    if let Some(age) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(age as i64));
    }
    HeaderValue::from_str(&c.to_string()).expect("cookie values are plain ASCII")
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A CSV document as every console export writes it: optional `#` comment lines, the
/// header, then one line per row, each cell quoted as RFC 4180 says with formulas defused
/// (`csv_cell`), every line ended with CRLF.
fn csv_document<R, C>(comment: Option<&str>, header: &str, rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator,
    C::Item: AsRef<str>,
{
    let mut out = String::new();
    if let Some(c) = comment {
        out.push_str(&format!("# {c}\r\n"));
    }
    out.push_str(header);
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = row.into_iter().map(|c| csv_cell(c.as_ref())).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A file to download, never cached: `filename` is made safe for the header (letters,
/// digits, `.`, `-`; anything else becomes `_`).
fn download(body: String, content_type: &'static str, filename: &str) -> Response {
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A page, with the headers every console page carries.
fn page(status: StatusCode, html: String) -> Response {
    let mut r = (status, axum::response::Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => page(status, roster_domain::text::sanitize_document(&html)),
        Err(e) => {
            tracing::error!("a console page did not render: {e}");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<p>This page could not be shown; the service's log says why.</p>".into(),
            )
        }
    }
}

fn to_sign_in() -> Response {
    Redirect::to("/console/sign-in").into_response()
}

/// The signed-in user of a request.
struct Signed {
    caller: Caller,
    csrf: String,
}

async fn signed(shared: &Shared, headers: &HeaderMap) -> Option<Signed> {
    let id = cookie(headers, SESSION)?;
    let c = &shared.config.console;
    let session = shared
        .store
        .live_session(
            &roster_domain::sha256::hex(id.as_bytes()),
            time::Duration::try_from(c.idle).ok()?,
            time::Duration::try_from(c.absolute).ok()?,
            OffsetDateTime::now_utc(),
        )
        .await
        .ok()??;
    Some(Signed {
        caller: Caller {
            name: session.user.name,
            role: Role::parse(&session.user.role)?,
            via: "console",
        },
        csrf: session.csrf,
    })
}

/// The navigation bar's values.
struct Nav {
    page: &'static str,
    user: String,
    role: &'static str,
    csrf: String,
    generated_at: String,
    version: &'static str,
}

fn nav(s: &Signed, page: &'static str) -> Nav {
    Nav {
        page,
        user: s.caller.name.clone(),
        role: s.caller.role.as_str(),
        csrf: s.csrf.clone(),
        generated_at: rfc3339(OffsetDateTime::now_utc()),
        version: env!("CARGO_PKG_VERSION"),
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    csrf: String,
    message: Option<String>,
    /// The single sign-on button's label, when OpenID Connect is configured.
    sso: Option<String>,
}

/// How long a sign-in form may be filled in.
const SIGN_IN_FORM_SECONDS: i64 = 600;

/// A sign-in form's token: when it was served and a nonce, signed with the service's key.
/// The double-submit check alone (cookie equals field) lets someone who can set the
/// cookie (a sibling subdomain) pick both and sign a victim in to an account of theirs;
/// a token only this service can have made closes that.
fn sign_in_token(shared: &Shared) -> String {
    let nonce = format!(
        "{}.{}",
        OffsetDateTime::now_utc().unix_timestamp(),
        random()
    );
    match shared
        .store
        .keys()
        .and_then(|k| Ok(k.sign(roster_keys::Purpose::SignIn, nonce.as_bytes())?))
    {
        Ok(sig) => format!("{nonce}|{sig}"),
        // No key, no token that verifies: the sign-in then says the form expired.
        Err(e) => {
            tracing::error!("sign-in form: {e}");
            nonce
        }
    }
}

/// Whether `token` is one [`sign_in_token`] made, in the last ten minutes.
fn sign_in_token_is_ours(shared: &Shared, token: &str) -> bool {
    let Some((nonce, sig)) = token.split_once('|') else {
        return false;
    };
    let fresh = nonce
        .split_once('.')
        .and_then(|(t, _)| t.parse::<i64>().ok())
        .is_some_and(|t| {
            let age = OffsetDateTime::now_utc().unix_timestamp() - t;
            (0..=SIGN_IN_FORM_SECONDS).contains(&age)
        });
    fresh
        && shared.store.keys().is_ok_and(|k| {
            k.verify(
                roster_keys::Purpose::SignIn,
                nonce.as_bytes(),
                Some(sig),
                "the sign-in form",
            )
            .is_ok()
        })
}

fn sign_in_form(
    shared: &Shared,
    status: StatusCode,
    headers: &HeaderMap,
    message: Option<String>,
) -> Response {
    let csrf = sign_in_token(shared);
    let mut r = render(
        status,
        &SignInPage {
            csrf: csrf.clone(),
            message,
            sso: shared.config.console.oidc.as_ref().map(|o| o.label.clone()),
        },
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            PRE_SESSION,
            &csrf,
            secure(headers),
            Some(SIGN_IN_FORM_SECONDS as u64),
        ),
    );
    r
}

async fn sign_in_page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if signed(&shared, &headers).await.is_some() {
        return Redirect::to("/console").into_response();
    }
    sign_in_form(&shared, StatusCode::OK, &headers, None)
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

async fn sign_in(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let refused =
        |status, why: &str| sign_in_form(&shared, status, &headers, Some(why.to_string()));
    if !cookie(&headers, PRE_SESSION).is_some_and(|c| same(&c, &f.csrf))
        || !sign_in_token_is_ours(&shared, &f.csrf)
    {
        return refused(
            StatusCode::FORBIDDEN,
            "The sign-in form expired. Sign in again.",
        );
    }
    let ip = peer.ip();
    if shared.console_throttle.recent(ip) >= ADDRESS_FAILURES_PER_MINUTE {
        return refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins from this address. Wait a minute and try again.",
        );
    }
    let user = match shared.store.console_user(f.name.trim()).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!("sign-in: {e}");
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in is not available; the service's log says why.",
            );
        }
    };
    let now = OffsetDateTime::now_utc();
    let hash = user
        .as_ref()
        .map_or(decoy_hash().to_string(), |u| u.password_hash.clone());
    let password = f.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    // One answer for an unknown name, a wrong password and a locked account: a different
    // one for any of them would tell a guesser which names exist.
    let wrong = "Wrong name or password, or the account is locked after repeated failed sign-ins. Try again later, or ask an administrator.";
    let Some(user) = user else {
        shared.console_throttle.failed(ip);
        return refused(StatusCode::UNAUTHORIZED, wrong);
    };
    if user.locked_until.is_some_and(|t| t > now) {
        shared.console_throttle.failed(ip);
        tracing::warn!(user = %user.name, %ip, "console sign-in refused: the account is locked");
        return refused(StatusCode::UNAUTHORIZED, wrong);
    }
    if !ok {
        shared.console_throttle.failed(ip);
        let c = &shared.config.console;
        let until =
            now + time::Duration::try_from(c.lockout).unwrap_or(time::Duration::minutes(15));
        if let Err(e) = shared
            .store
            .sign_in_failed(user.id, i64::from(c.lockout_after), until)
            .await
        {
            tracing::error!("sign-in: {e}");
        }
        tracing::warn!(user = %user.name, %ip, "console sign-in failed");
        return refused(StatusCode::UNAUTHORIZED, wrong);
    }
    let id = random();
    let csrf = random();
    if let Err(e) = shared
        .store
        .start_session(
            user.id,
            &roster_domain::sha256::hex(id.as_bytes()),
            &csrf,
            now,
        )
        .await
    {
        tracing::error!("sign-in: {e}");
        return refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in is not available; the service's log says why.",
        );
    }
    tracing::info!(user = %user.name, %ip, "console sign-in");
    let mut r = Redirect::to("/console").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION, &id, secure(&headers), None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(PRE_SESSION, "", secure(&headers), Some(0)),
    );
    r
}

/// A form's CSRF token; a form without one is refused like one with a wrong one.
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A page that only says why a request went nowhere, with a way back.
#[derive(Template)]
#[template(
    source = "<!doctype html><title>{{ title }}</title><p id=\"refused\">{{ text }}</p>{% if let Some((href, label)) = back %}<p><a href=\"{{ href }}\">{{ label }}</a></p>{% endif %}",
    ext = "html"
)]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
    back: Option<(&'a str, &'a str)>,
}

fn message_page(
    status: StatusCode,
    title: &str,
    text: &str,
    back: Option<(&str, &str)>,
) -> Response {
    render(status, &MessagePage { title, text, back })
}

fn csrf_refused() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was refused: it did not carry this session's token. Go back, reload the page and try again.",
        None,
    )
}

/// The signed-in user of a form's request, its CSRF token checked; else the response to
/// send instead (the sign-in page, or the refusal).
async fn signed_form(shared: &Shared, headers: &HeaderMap, csrf: &str) -> Result<Signed, Response> {
    let Some(s) = signed(shared, headers).await else {
        return Err(to_sign_in());
    };
    if !same(&s.csrf, csrf) {
        return Err(csrf_refused());
    }
    Ok(s)
}

async fn sign_out(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = signed_form(&shared, &headers, &f.csrf).await {
        return refused;
    }
    if let Some(id) = cookie(&headers, SESSION) {
        let _ = shared
            .store
            .end_session(&roster_domain::sha256::hex(id.as_bytes()))
            .await;
    }
    let mut r = to_sign_in();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION, "", secure(&headers), Some(0)),
    );
    r
}

struct InstanceRow {
    name: String,
    last_finished: String,
    last_outcome: String,
    next_run: String,
    pending: usize,
    running: String,
    /// From the last inventory: `None` before the first read.
    accounts: Option<i64>,
    quota_left: String,
    /// A Marketo instance's full runs as the budget allows them: "2013 calls a full run;
    /// 7 fit today, every 3h".
    full_runs: Option<String>,
    failures: i64,
    expiring_invitations: usize,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    nav: Nav,
    instances: Vec<InstanceRow>,
    can_reconcile: bool,
    message: Option<String>,
}

/// One row per instance, from a fixed number of queries however many instances there are.
async fn overview_rows(shared: &Shared) -> Vec<InstanceRow> {
    let now = OffsetDateTime::now_utc();
    let store = &shared.store;
    let pending = store.held_plans(Some("pending")).await.unwrap_or_default();
    let inventories = store.inventory_summaries().await.unwrap_or_default();
    let failures = store
        .failed_runs_since(now - time::Duration::days(1))
        .await
        .unwrap_or_default();
    let quota_used = store
        .quota_used_by_instance(
            roster_engine::connect::MARKETO,
            roster_domain::marketo_time::quota_day(now),
        )
        .await
        .unwrap_or_default();
    let invites = store.open_invites().await.unwrap_or_default();
    let mut statuses = shared.statuses().await;
    let mut budgets = std::collections::BTreeMap::new();
    for w in shared.workers.values() {
        if let Some(b) = crate::budget::view(shared, &w.instance).await {
            budgets.insert(w.instance.name.clone(), b);
        }
    }
    shared
        .workers
        .values()
        .map(|w| {
            let st = statuses.remove(&w.instance.name).unwrap_or_default();
            let inst = &w.instance;
            let key = inst.state_key();
            let quota_left = match &inst.connection {
                crate::config::Connection::Marketo(c) => {
                    let limit = c.daily_quota.unwrap_or(roster_marketo::DEFAULT_DAILY_QUOTA);
                    let budget = inst.daily_budget.unwrap_or(limit).min(limit);
                    let used = quota_used.get(&key).copied().unwrap_or(0);
                    format!("{} of {budget}", budget.saturating_sub(used))
                }
                crate::config::Connection::Magento(_) | crate::config::Connection::Adobe { .. } => {
                    "no daily quota".into()
                }
            };
            InstanceRow {
                name: inst.name.clone(),
                last_finished: when(st.last_finished_at),
                last_outcome: st.last_outcome.unwrap_or_else(|| "—".into()),
                next_run: when(st.next_run_at),
                pending: pending.iter().filter(|p| p.instance == inst.name).count(),
                running: st
                    .running
                    .map(|t| format!("running ({t})"))
                    .unwrap_or_default(),
                accounts: inventories
                    .iter()
                    .find(|i| i.instance == inst.name)
                    .map(|i| i.accounts),
                quota_left,
                full_runs: budgets.get(&inst.name).map(|b| {
                    let every = b.full_interval_seconds;
                    format!(
                        "{} calls a full run; {} more fit today, one every {}h{:02}m",
                        b.full_run_calls,
                        b.full_runs_fit_today,
                        every / 3600,
                        every % 3600 / 60
                    )
                }),
                failures: failures.get(&inst.name).copied().unwrap_or(0),
                // Marketo's invitation links last 7 days; one with a day left is about to go.
                expiring_invitations: invites
                    .iter()
                    .filter(|i| i.instance == key && i.invited_at + time::Duration::days(6) <= now)
                    .count(),
            }
        })
        .collect()
}

/// A moment as pages show it (to the second, and how long ago), or a dash.
fn when(at: Option<OffsetDateTime>) -> String {
    at.map(roster_engine::text::moment)
        .unwrap_or_else(|| "—".into())
}

async fn overview(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let instances = overview_rows(&shared).await;
    let message = (done.done.as_deref() == Some("queued"))
        .then(|| "Reconcile queued: it runs after the job in progress; Runs shows it.".to_string());
    render(
        StatusCode::OK,
        &OverviewPage {
            nav: nav(&s, "overview"),
            instances,
            can_reconcile: s.caller.role >= Role::Operator,
            message,
        },
    )
}

struct PlanRow {
    plan_id: String,
    instance: String,
    status: String,
    destructive: i64,
    created_at: String,
    decided_by: Option<String>,
}

#[derive(Template)]
#[template(path = "console/plans.html")]
struct PlansPage {
    nav: Nav,
    plans: Vec<PlanRow>,
}

async fn plans(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let plans = shared
        .store
        .held_plans(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .take(200)
        .map(|p| PlanRow {
            plan_id: p.plan_id,
            instance: p.instance,
            status: p.status,
            destructive: p.destructive,
            created_at: rfc3339(p.created_at),
            decided_by: p.decided_by,
        })
        .collect();
    render(
        StatusCode::OK,
        &PlansPage {
            nav: nav(&s, "plans"),
            plans,
        },
    )
}

struct StepRow {
    index: usize,
    description: String,
    reason: String,
    destructive: bool,
    before: Vec<Piece>,
    after: Vec<Piece>,
}

/// A part of a before or after text, `changed` when the other side lacks it.
struct Piece {
    text: String,
    changed: bool,
}

/// `text` cut into words and separators, each word marked changed when `other` does not
/// have it (as many times): what the plan page highlights in before → after.
fn marked(text: &str, other: &str) -> Vec<Piece> {
    fn words(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if matches!(c, ',' | ';' | ' ' | '(' | ')' | '[' | ']') {
                if start < i {
                    out.push(&s[start..i]);
                }
                out.push(&s[i..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        if start < s.len() {
            out.push(&s[start..]);
        }
        out
    }
    let mut left: Vec<&str> = words(other);
    let mut pieces: Vec<Piece> = Vec::new();
    for w in words(text) {
        let separator = w.chars().count() == 1 && !w.chars().any(char::is_alphanumeric);
        let changed = !separator
            && match left.iter().position(|o| *o == w) {
                Some(i) => {
                    left.swap_remove(i);
                    false
                }
                None => true,
            };
        match pieces.last_mut() {
            Some(last) if last.changed == changed => last.text.push_str(w),
            _ => pieces.push(Piece {
                text: w.to_string(),
                changed,
            }),
        }
    }
    pieces
}

#[derive(Template)]
#[template(path = "console/plan.html")]
struct PlanPage {
    nav: Nav,
    id: String,
    instance: String,
    status: String,
    requested_by: String,
    created_at: String,
    decided_by: Option<String>,
    /// The decision's comment.
    comment: Option<String>,
    /// When a pending plan stops accepting a decision (`[service] approval_expiry`).
    expires: Option<String>,
    summary_line: String,
    blocked: Vec<String>,
    steps: Vec<StepRow>,
    /// Destructive steps: approving them needs a ticked box.
    destructive: usize,
    can_decide: bool,
    /// Four-eyes keeps the signed-in approver from approving it (they asked for it).
    own_request: bool,
    message: Option<String>,
    failed: bool,
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

async fn plan_page(
    shared: &Shared,
    s: &Signed,
    id: &str,
    status: StatusCode,
    message: Option<String>,
    failed: bool,
) -> Response {
    let (held, plan): (roster_store::ServicePlan, Plan) = match api::held(shared, id).await {
        Ok(x) => x,
        Err(e) => {
            let title = if e.status() == StatusCode::NOT_FOUND {
                "Not found"
            } else {
                "This plan cannot be trusted"
            };
            return message_page(
                e.status(),
                title,
                e.message(),
                Some(("/console/plans", "Plans")),
            );
        }
    };
    let expires = shared
        .config
        .approval_expiry
        .and_then(|d| time::Duration::try_from(d).ok())
        .filter(|_| held.status == "pending")
        .map(|d| rfc3339(held.created_at + d));
    let own_request = api::four_eyes_applies(shared, &held.requested_by, &s.caller).await;
    let t = PlanPage {
        nav: nav(s, "plans"),
        id: plan.id.clone(),
        instance: held.instance,
        can_decide: held.status == "pending" && s.caller.role >= Role::Approver,
        own_request,
        status: held.status,
        requested_by: held.requested_by,
        created_at: roster_engine::text::moment(held.created_at),
        expires,
        decided_by: held.decided_by,
        comment: held.comment,
        destructive: plan.steps.iter().filter(|s| s.destructive).count(),
        summary_line: roster_engine::planning::summary_line(&plan),
        blocked: plan.blocked.clone(),
        steps: plan
            .steps
            .iter()
            .zip(roster_domain::plan::before_after(&plan))
            .map(|(st, (before, after))| {
                let shown = |v: Option<String>| {
                    v.map_or_else(|| "(none)".into(), |l| roster_engine::text::sanitize(&l))
                };
                let (before, after) = (shown(before), shown(after));
                StepRow {
                    index: st.index,
                    description: roster_engine::text::sanitize(&st.action.describe()),
                    reason: st.reason.clone(),
                    destructive: st.destructive,
                    before: marked(&before, &after),
                    after: marked(&after, &before),
                }
            })
            .collect(),
        message,
        failed,
    };
    render(status, &t)
}

async fn plan(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let message = match done.done.as_deref() {
        Some("approved") => {
            Some("Approved: the service plans again and applies it now.".to_string())
        }
        Some("rejected") => Some("Rejected: nothing of it runs.".to_string()),
        _ => None,
    };
    plan_page(&shared, &s, &id, StatusCode::OK, message, false).await
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    comment: Option<String>,
    /// The ticked box of a plan with destructive steps.
    confirm: Option<String>,
}

async fn decide(
    shared: Arc<Shared>,
    headers: HeaderMap,
    id: String,
    f: DecisionForm,
    approve: bool,
) -> Response {
    let s = match signed_form(&shared, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let d = Decision {
        comment: f.comment.filter(|c| !c.trim().is_empty()),
    };
    if d.comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return plan_page(
            &shared,
            &s,
            &id,
            StatusCode::BAD_REQUEST,
            Some("The comment is longer than 2,000 characters.".into()),
            true,
        )
        .await;
    }
    if approve && s.caller.role >= Role::Approver && f.confirm.as_deref() != Some("yes") {
        // A destructive approval is never one stray click: the page's box must be ticked.
        let destructive = api::held(&shared, &id)
            .await
            .map(|(_, plan)| plan.steps.iter().any(|s| s.destructive))
            .unwrap_or(false);
        if destructive {
            return plan_page(
                &shared,
                &s,
                &id,
                StatusCode::CONFLICT,
                Some("Tick the box to confirm you have checked the destructive steps; nothing was approved.".into()),
                true,
            )
            .await;
        }
    }
    let result = if approve {
        api::approve_plan(&shared, &s.caller, &id, &d).await
    } else {
        api::reject_plan(&shared, &s.caller, &id, &d).await
    };
    match result {
        Ok(decided) => {
            Redirect::to(&format!("/console/plans/{id}?done={}", decided.status)).into_response()
        }
        Err(e) => {
            plan_page(
                &shared,
                &s,
                &id,
                e.status(),
                Some(e.message().to_string()),
                true,
            )
            .await
        }
    }
}

async fn approve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    decide(shared, headers, id, f, true).await
}

async fn reject(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    decide(shared, headers, id, f, false).await
}

struct RunRow {
    id: i64,
    instance: String,
    trigger: String,
    started_at: String,
    outcome: String,
    summary: String,
    error: Option<String>,
    /// Older runs just like this one folded into its row (same instance, trigger,
    /// outcome and summary, one after another): a quiet schedule is one row, not fifty.
    repeats: usize,
    /// When the oldest of them started.
    since: String,
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    nav: Nav,
    runs: Vec<RunRow>,
}

async fn runs(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let mut runs: Vec<RunRow> = Vec::new();
    for r in shared.store.runs(None, 200).await.unwrap_or_default() {
        let summary = r.summary.unwrap_or_default();
        if let Some(last) = runs.last_mut()
            && last.error.is_none()
            && r.error.is_none()
            && last.instance == r.instance
            && last.trigger == r.trigger
            && last.outcome == r.outcome
            && last.summary == summary
        {
            last.repeats += 1;
            last.since = roster_engine::text::moment(r.started_at);
            continue;
        }
        runs.push(RunRow {
            id: r.id,
            instance: r.instance,
            trigger: r.trigger,
            started_at: roster_engine::text::moment(r.started_at),
            outcome: r.outcome,
            summary,
            error: r.error,
            repeats: 0,
            since: String::new(),
        });
    }
    render(
        StatusCode::OK,
        &RunsPage {
            nav: nav(&s, "runs"),
            runs,
        },
    )
}

struct TombstoneRow {
    id: i64,
    email: String,
    name: String,
    app: String,
    roles: String,
    deleted_at: String,
    deleted_by: String,
    reason: String,
    status: String,
    restorable: bool,
}

struct RestoreRow {
    id: i64,
    tombstone_id: i64,
    instance: String,
    status: String,
    requested_by: String,
    outcome: String,
}

#[derive(Template)]
#[template(path = "console/tombstones.html")]
struct TombstonesPage {
    nav: Nav,
    tombstones: Vec<TombstoneRow>,
    requests: Vec<RestoreRow>,
    can_ask: bool,
    can_approve: bool,
    message: Option<String>,
    failed: bool,
}

async fn tombstones_page(
    shared: &Shared,
    s: &Signed,
    status: StatusCode,
    message: Option<String>,
    failed: bool,
) -> Response {
    let tombstones = shared
        .store
        .tombstones(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|t| TombstoneRow {
            id: t.id,
            restorable: t.restored_at.is_none()
                && t.status == roster_store::TombstoneStatus::Deleted,
            name: format!("{} {}", t.first_name, t.last_name),
            roles: t
                .roles
                .iter()
                .map(|r| r.spec())
                .collect::<Vec<_>>()
                .join(", "),
            status: if t.restored_at.is_some() {
                "restored".into()
            } else {
                t.status.as_str().into()
            },
            email: t.email,
            app: t.app,
            deleted_at: rfc3339(t.deleted_at),
            deleted_by: t.deleted_by,
            reason: t.reason.unwrap_or_default(),
        })
        .collect();
    let requests = shared
        .store
        .restore_requests(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .take(100)
        .map(|r| RestoreRow {
            id: r.id,
            tombstone_id: r.tombstone_id,
            instance: r.instance,
            status: r.status,
            requested_by: r.requested_by,
            outcome: r.outcome.unwrap_or_default(),
        })
        .collect();
    let t = TombstonesPage {
        nav: nav(s, "tombstones"),
        tombstones,
        requests,
        can_ask: s.caller.role >= Role::Operator,
        can_approve: s.caller.role >= Role::Approver,
        message,
        failed,
    };
    render(status, &t)
}

async fn tombstones(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let message = match done.done.as_deref() {
        Some("asked") => Some("Restore asked for: it waits for an approver.".to_string()),
        Some("approved") => Some("Approved: the account is being restored.".to_string()),
        Some("rejected") => Some("Rejected: nothing is restored.".to_string()),
        _ => None,
    };
    tombstones_page(&shared, &s, StatusCode::OK, message, false).await
}

/// A tombstones-page action: session and CSRF checked, then `act`; back to the page.
async fn tombstone_action<F, Fut>(
    shared: Arc<Shared>,
    headers: HeaderMap,
    csrf: String,
    done: &str,
    act: F,
) -> Response
where
    F: FnOnce(Arc<Shared>, Caller) -> Fut,
    Fut: std::future::Future<Output = Result<(), api::ApiError>>,
{
    let s = match signed_form(&shared, &headers, &csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match act(Arc::clone(&shared), s.caller.clone()).await {
        Ok(()) => Redirect::to(&format!("/console/tombstones?done={done}")).into_response(),
        Err(e) => {
            tombstones_page(&shared, &s, e.status(), Some(e.message().to_string()), true).await
        }
    }
}

async fn ask_restore(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    tombstone_action(shared, headers, f.csrf, "asked", move |shared, caller| async move {
        api::ask_restore(&shared, &caller, id).await.map(|_| ())
    })
    .await
}

async fn approve_restore(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    tombstone_action(
        shared,
        headers,
        f.csrf,
        "approved",
        move |shared, caller| async move {
            api::approve_restore_request(&shared, &caller, id, &Decision::default())
                .await
                .map(|_| ())
        },
    )
    .await
}

async fn reject_restore(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    tombstone_action(
        shared,
        headers,
        f.csrf,
        "rejected",
        move |shared, caller| async move {
            api::reject_restore_request(&shared, &caller, id, &Decision::default())
                .await
                .map(|_| ())
        },
    )
    .await
}

struct LogRow {
    id: i64,
    at: String,
    actor: String,
    os_user: String,
    app: String,
    /// The app instance the line was made on (its base URL), when it names one.
    instance: String,
    plan: Option<String>,
    action: String,
    target: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/log.html")]
struct LogPage {
    nav: Nav,
    q: String,
    lines: Vec<LogRow>,
    shown: usize,
    matching: usize,
}

#[derive(Deserialize)]
struct LogQuery {
    q: Option<String>,
    format: Option<String>,
}

const LOG_PAGE_LINES: usize = 500;

async fn log(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let needle = q.q.clone().unwrap_or_default().trim().to_lowercase();
    let mut lines = shared.store.log(None).await.unwrap_or_default();
    lines.reverse();
    let matching: Vec<roster_store::LogEntry> = lines
        .into_iter()
        .filter(|l| {
            needle.is_empty()
                || [&l.actor, &l.app, &l.action, &l.target, &l.outcome]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&needle))
                || l.plan_id
                    .as_deref()
                    .is_some_and(|p| p.to_lowercase().contains(&needle))
                || l.detail
                    .as_deref()
                    .is_some_and(|d| d.to_lowercase().contains(&needle))
        })
        .collect();
    if q.format.as_deref() == Some("csv") {
        let rows = matching.iter().map(|l| {
            [
                l.id.to_string(),
                rfc3339(l.at),
                l.actor.clone(),
                l.os_user.clone(),
                l.plan_id.clone().unwrap_or_default(),
                l.app.clone(),
                l.action.clone(),
                l.target.clone(),
                l.outcome.clone(),
                l.detail.clone().unwrap_or_default(),
                l.hash.clone(),
            ]
        });
        let body = csv_document(
            None,
            "id,at,actor,os_user,plan,app,action,target,outcome,detail,hash",
            rows,
        );
        return download(body, "text/csv; charset=utf-8", "roster-audit-log.csv");
    }
    let count = matching.len();
    let rows: Vec<LogRow> = matching
        .into_iter()
        .take(LOG_PAGE_LINES)
        .map(|l| LogRow {
            id: l.id,
            at: roster_engine::text::moment(l.at),
            actor: l.actor,
            os_user: l.os_user,
            app: l.app,
            instance: l.instance.unwrap_or_default(),
            plan: l.plan_id,
            action: l.action,
            target: l.target,
            outcome: l.outcome,
            detail: l.detail.unwrap_or_default(),
        })
        .collect();
    render(
        StatusCode::OK,
        &LogPage {
            nav: nav(&s, "log"),
            q: q.q.unwrap_or_default(),
            shown: rows.len(),
            lines: rows,
            matching: count,
        },
    )
}

async fn reconcile(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let s = match signed_form(&shared, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = s.caller.must_be(Role::Operator, "asking for a reconcile") {
        return message_page(e.status(), "Refused", e.message(), None);
    }
    let Some(worker) = shared.workers.get(&name) else {
        return message_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such instance.",
            Some(("/console", "Overview")),
        );
    };
    let job = crate::workers::Job::Reconcile {
        trigger: s.caller.key(),
        targeted: false,
    };
    if let Err(e) = shared.submit(&worker.instance.name, job).await {
        tracing::error!("{e:#}");
        return message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not queued",
            "The run could not be queued; the service's log says why. Try again shortly.",
            Some(("/console", "Overview")),
        );
    }
    Redirect::to("/console?done=queued").into_response()
}

struct EventRow {
    at: String,
    text: String,
}

/// One recorded event, in words.
fn event_text(e: &serde_json::Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    match e["kind"].as_str().unwrap_or_default() {
        "step" => format!(
            "[{}/{}] {}{}: {}{}",
            e["index"],
            e["total"],
            if e["destructive"] == true { "⚠ " } else { "" },
            s("action"),
            s("outcome"),
            e["detail"]
                .as_str()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        "applied" => format!(
            "{}: {} done now, {} before, {} failed, {} skipped",
            s("plan"),
            e["ran"],
            e["before"],
            e["failed"],
            e["skipped"]
        ),
        "planned" => format!("planned {}: {}", s("plan"), s("summary")),
        "resuming" => format!(
            "resuming {}: {} of {} steps done before",
            s("plan"),
            e["done"],
            e["total"]
        ),
        "invited" => format!("invited {} with {}", s("email"), s("roles")),
        "tombstone" => format!("saved tombstone #{}", e["id"]),
        "dry_run" => "dry run".to_string(),
        _ => s("text"),
    }
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    nav: Nav,
    id: i64,
    instance: String,
    trigger: String,
    started_at: String,
    finished_at: String,
    outcome: String,
    summary: String,
    error: Option<String>,
    plan_id: Option<String>,
    events: Vec<EventRow>,
}

async fn run(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let Some(r) = shared.store.run(id).await.ok().flatten() else {
        return message_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "No such run.",
            Some(("/console/runs", "Runs")),
        );
    };
    let events = r
        .events
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| EventRow {
                    at: e["at"].as_str().unwrap_or_default().to_string(),
                    text: event_text(e),
                })
                .collect()
        })
        .unwrap_or_default();
    let t = RunPage {
        nav: nav(&s, "runs"),
        id: r.id,
        instance: r.instance,
        trigger: r.trigger,
        started_at: rfc3339(r.started_at),
        finished_at: when(r.finished_at),
        outcome: r.outcome,
        summary: r.summary.unwrap_or_default(),
        error: r.error,
        plan_id: r.plan_id,
        events,
    };
    render(StatusCode::OK, &t)
}

struct InvitationRow {
    email: String,
    instance: String,
    invited_at: String,
    invited_by: String,
    age: String,
    expires: String,
    expiring: bool,
    status: String,
    roles: String,
}

#[derive(Template)]
#[template(path = "console/invitations.html")]
struct InvitationsPage {
    nav: Nav,
    invitations: Vec<InvitationRow>,
}

async fn invitations(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let now = OffsetDateTime::now_utc();
    let invitations = shared
        .store
        .open_invites()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            // Marketo's invitation links last 7 days from the invitation.
            let expires = i.invited_at + time::Duration::days(7);
            let age = now - i.invited_at;
            InvitationRow {
                age: if age.whole_days() > 0 {
                    format!("{} d", age.whole_days())
                } else {
                    format!("{} h", age.whole_hours())
                },
                expiring: expires - now < time::Duration::days(1),
                expires: rfc3339(expires),
                email: i.email,
                instance: i.instance,
                invited_at: rfc3339(i.invited_at),
                invited_by: i.invited_by,
                status: i.status.as_str().to_string(),
                roles: i
                    .roles
                    .iter()
                    .map(|r| r.spec())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &InvitationsPage {
            nav: nav(&s, "invitations"),
            invitations,
        },
    )
}

struct DeliveryRow {
    id: i64,
    hook: String,
    event: String,
    created_at: String,
    attempts: i64,
    status: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    deliveries: Vec<DeliveryRow>,
}

async fn webhooks(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let deliveries = shared
        .store
        .deliveries(200)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| DeliveryRow {
            id: d.id,
            hook: d.hook,
            event: d.event,
            created_at: rfc3339(d.created_at),
            attempts: d.attempts,
            status: d.status,
            last_error: d.last_error.unwrap_or_default(),
        })
        .collect();
    render(
        StatusCode::OK,
        &WebhooksPage {
            nav: nav(&s, "webhooks"),
            deliveries,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::marked;

    fn shown(pieces: &[super::Piece]) -> String {
        pieces
            .iter()
            .map(|p| {
                if p.changed {
                    format!("[{}]", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    #[test]
    fn every_export_is_the_same_csv() {
        let body = super::csv_document(
            Some("privileged | marketo.acme"),
            "email,why",
            [
                ["a@x.example", "=SUM(A1)"],
                ["b@x.example", "says \"hi\", twice"],
            ],
        );
        assert_eq!(
            body,
            "# privileged | marketo.acme\r\nemail,why\r\na@x.example,'=SUM(A1)\r\nb@x.example,\"says \"\"hi\"\", twice\"\r\n"
        );
    }

    #[test]
    fn before_and_after_mark_only_what_differs() {
        let before = "roles=[Standard User@Default, Admin@EMEA] | active";
        let after = "roles=[Standard User@Default, Analytics User@EMEA] | active";
        assert_eq!(
            shown(&marked(before, after)),
            "roles=[Standard User@Default, [Admin@EMEA]] | active"
        );
        assert_eq!(
            shown(&marked(after, before)),
            "roles=[Standard User@Default, [Analytics] [User@EMEA]] | active"
        );
        // The text itself is kept: only marks are added.
        let plain: String = marked(before, after)
            .iter()
            .map(|p| p.text.as_str())
            .collect();
        assert_eq!(plain, before);
        assert!(marked("(none)", "a b").iter().any(|p| p.changed));
        assert!(marked("same", "same").iter().all(|p| !p.changed));
    }
}
