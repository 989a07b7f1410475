//! The service's configuration file (TOML): where it listens, and the app instances it
//! keeps in line, each with its credentials (from an environment variable or a file, never
//! written in the file itself), its limits, its budget and the roster it follows.
//!
//! ```toml
//! [service]
//! listen = "127.0.0.1:8420"
//! interval = "15m"
//! four_eyes = true
//! parallel_runs = 8
//!
//! [marketo.prod]
//! url = "https://123-ABC-456.mktorest.com"
//! client_id = "…"
//! client_secret_env = "ROSTER_MARKETO_PROD_SECRET"
//! roster = "roster.yaml"
//! auto_apply = "safe"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roster_domain::desired::App;
use roster_engine::{MagentoConn, MarketoConn, parse_duration};
use serde::Deserialize;

/// What a service instance may apply without anyone's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoApply {
    /// Nothing: every plan waits for approval.
    None,
    /// Non-destructive steps (invitations, grants, updates); destructive ones wait.
    Safe,
    /// Everything the roster's policies allow, destructive steps included.
    All,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the service configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the service configuration {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    service: RawService,
    #[serde(default)]
    marketo: BTreeMap<String, RawMarketo>,
    #[serde(default)]
    magento: BTreeMap<String, RawMagento>,
    /// Adobe organizations that Marketo subscriptions on Adobe Identity name.
    #[serde(default)]
    adobe: BTreeMap<String, RawAdobe>,
    #[serde(default)]
    webhook: BTreeMap<String, RawWebhook>,
    #[serde(default)]
    console: RawConsole,
    #[serde(default)]
    scim: RawScim,
    slack: Option<RawSlack>,
}

/// `[slack]`: approvals from Slack messages (the app's interactivity endpoint is this
/// service's `/slack/actions`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    signing_secret: Option<String>,
    signing_secret_env: Option<String>,
    signing_secret_file: Option<PathBuf>,
    /// Slack user id -> the Roster console account that acts for them.
    #[serde(default)]
    users: BTreeMap<String, String>,
}

/// Approving and rejecting from Slack: requests are signed by Slack with the app's signing
/// secret; each Slack user acts as the Roster account named for them (its role and
/// four-eyes hold).
#[derive(Clone)]
pub struct SlackConfig {
    pub signing_secret: roster_domain::Secret,
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("signing_secret", &"(secret)")
            .field("users", &self.users)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScim {
    debounce: Option<String>,
    #[serde(default)]
    groups: BTreeMap<String, toml::Value>,
}

/// What SCIM pushes turn into: each group's access, and how long after a change the
/// affected instances reconcile.
#[derive(Debug, Clone)]
pub struct ScimConfig {
    /// Changes within this time of each other start one reconcile.
    pub debounce: Duration,
    /// A SCIM group's displayName -> the access its members get (the roster's `access`
    /// keys: `marketo`, `magento`, `marketo.NAME`, `magento.NAME`).
    pub groups: BTreeMap<String, roster_domain::desired::Access>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    idle: Option<String>,
    absolute: Option<String>,
    lockout_after: Option<u32>,
    lockout: Option<String>,
    oidc: Option<RawOidc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    redirect_url: String,
    scopes: Option<String>,
    role_claim: Option<String>,
    name_claim: Option<String>,
    #[serde(default)]
    roles: BTreeMap<String, String>,
    default_role: Option<String>,
    label: Option<String>,
}

/// Sign-in through an OpenID Connect provider (authorization code flow with PKCE).
#[derive(Clone)]
pub struct OidcConfig {
    /// The issuer URL, exactly as the provider's ID tokens name it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: roster_domain::Secret,
    /// This service's callback, as registered with the provider
    /// (`https://HOST/console/oidc/callback`).
    pub redirect_url: String,
    pub scopes: String,
    /// The claim whose value(s) map to roles (`groups` by default).
    pub role_claim: String,
    /// The claim that names the person in Roster (`email` by default).
    pub name_claim: String,
    /// Claim value -> role; a person with several gets the highest.
    pub roles: Vec<(String, crate::tokens::Role)>,
    /// The role of someone whose claim maps to none; `None` refuses them.
    pub default_role: Option<crate::tokens::Role>,
    /// What the sign-in button says.
    pub label: String,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .field("role_claim", &self.role_claim)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Plain http is only for a provider on this machine (tests, a local sandbox).
pub fn loopback_or_https(url: &str) -> bool {
    url.starts_with("https://")
        || ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| url.starts_with(p) && url[p.len()..].starts_with([':', '/']) || url == *p)
}

fn oidc(raw: &RawOidc, base: &Path) -> Result<OidcConfig, String> {
    use crate::tokens::Role;
    let name = "console.oidc";
    for (field, url) in [("issuer", &raw.issuer), ("redirect_url", &raw.redirect_url)] {
        if !loopback_or_https(url) {
            return Err(format!(
                "[{name}] {field} must be an https URL (plain http only for 127.0.0.1 or localhost): {url}"
            ));
        }
    }
    if !raw.redirect_url.ends_with("/console/oidc/callback") {
        return Err(format!(
            "[{name}] redirect_url must be this service's /console/oidc/callback address, as registered with the provider (got {})",
            raw.redirect_url
        ));
    }
    let client_secret = secret(
        name,
        "client_secret",
        raw.client_secret.as_ref(),
        raw.client_secret_env.as_ref(),
        raw.client_secret_file.as_ref(),
        base,
    )?
    .ok_or_else(|| format!("[{name}] needs client_secret_env or client_secret_file"))?;
    let role = |field: &str, v: &str| {
        Role::parse(v).ok_or_else(|| {
            format!(
                "[{name}] {field}: {v:?} is not a role; use viewer, operator, approver or admin"
            )
        })
    };
    let mut roles = Vec::new();
    for (claim, r) in &raw.roles {
        roles.push((claim.clone(), role(&format!("roles.{claim}"), r)?));
    }
    let default_role = raw
        .default_role
        .as_deref()
        .map(|r| role("default_role", r))
        .transpose()?;
    if roles.is_empty() && default_role.is_none() {
        return Err(format!(
            "[{name}] maps no claim value to a role: add [console.oidc.roles] (\"GROUP\" = \"approver\") or default_role"
        ));
    }
    Ok(OidcConfig {
        issuer: raw.issuer.trim_end_matches('/').to_string(),
        client_id: raw.client_id.clone(),
        client_secret: roster_domain::Secret::new(client_secret),
        redirect_url: raw.redirect_url.clone(),
        scopes: raw
            .scopes
            .clone()
            .unwrap_or_else(|| "openid email profile".into()),
        role_claim: raw.role_claim.clone().unwrap_or_else(|| "groups".into()),
        name_claim: raw.name_claim.clone().unwrap_or_else(|| "email".into()),
        roles,
        default_role,
        label: raw.label.clone().unwrap_or_else(|| "single sign-on".into()),
    })
}

/// The web console's session and sign-in rules.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// Failed sign-ins in a row that lock an account ...
    pub lockout_after: u32,
    /// ... for this long.
    pub lockout: Duration,
    /// Sign-in through an OpenID Connect provider, beside local accounts.
    pub oidc: Option<OidcConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    listen: Option<String>,
    state: Option<PathBuf>,
    interval: Option<String>,
    four_eyes: Option<bool>,
    json_logs: Option<bool>,
    parallel_runs: Option<usize>,
    log_head_interval: Option<String>,
    roster_watch: Option<String>,
    #[serde(default)]
    retention: RawRetention,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    public_url: Option<String>,
    approval_expiry: Option<String>,
}

/// `[service.retention]`: how long what the service keeps for operators is kept; "off"
/// keeps it for good. The audit log, tombstones, plans and approvals are evidence and are
/// never pruned.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    runs: Option<String>,
    run_events: Option<String>,
    sessions: Option<String>,
    deliveries: Option<String>,
    access_history: Option<String>,
}

/// Settings every instance has (serde cannot flatten them into a struct that denies
/// unknown fields, so each section repeats them).
struct RawCommon<'a> {
    roster: Option<&'a PathBuf>,
    interval: Option<&'a String>,
    auto_apply: Option<AutoApply>,
    resend_invites: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarketo {
    url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    max_in_flight: Option<usize>,
    rate_limit: Option<u32>,
    rate_window: Option<String>,
    daily_quota: Option<u64>,
    daily_budget: Option<u64>,
    max_retries: Option<usize>,
    /// `adobe.NAME`: the subscription is on Adobe Identity, its standard users come from
    /// the product profiles of the `[adobe.NAME]` organization.
    identity: Option<String>,
    product_profiles: Option<Vec<String>>,
    sync_timeout: Option<String>,
    roster: Option<PathBuf>,
    interval: Option<String>,
    auto_apply: Option<AutoApply>,
    /// Who owns the instance: reviews its access when nobody else does (`owner = "it@acme.example"`).
    owner: Option<String>,
    resend_invites: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdobe {
    url: Option<String>,
    ims_url: Option<String>,
    org_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    identity_type: Option<String>,
    country: Option<String>,
    /// Given: the organization is an instance of its own (`access: { adobe: ... }`).
    roster: Option<PathBuf>,
    interval: Option<String>,
    auto_apply: Option<AutoApply>,
    /// Who owns the instance: reviews its access when nobody else does (`owner = "it@acme.example"`).
    owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMagento {
    url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    scope: Option<String>,
    totp_secret_env: Option<String>,
    totp_secret_file: Option<PathBuf>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    consumer_key: Option<String>,
    consumer_secret_env: Option<String>,
    consumer_secret_file: Option<PathBuf>,
    access_token_env: Option<String>,
    access_token_file: Option<PathBuf>,
    access_token_secret_env: Option<String>,
    access_token_secret_file: Option<PathBuf>,
    /// Between full reads, how often to look for customers changed since (`off`: never).
    changes_every: Option<String>,
    roster: Option<PathBuf>,
    interval: Option<String>,
    auto_apply: Option<AutoApply>,
    /// Who owns the instance: reviews its access when nobody else does (`owner = "it@acme.example"`).
    owner: Option<String>,
    resend_invites: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    events: Option<Vec<String>>,
    format: Option<WebhookFormat>,
}

/// How a webhook's body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Roster's own JSON: `{"event", "at", "instance", "data"}`.
    Json,
    /// A Slack incoming-webhook message: `{"text": "..."}`.
    Slack,
}

/// The events a webhook can ask for.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "plan.pending",
    "plan.expired",
    "run.failed",
    "account.created",
    "account.removed",
    "invitation.expiring",
    "quota.low",
    "scim.conflict",
    "review.due",
    "review.overdue",
    "review.escalated",
    "review.closed",
    "log.head",
];

/// The events a webhook gets when it names none: all but `log.head`, which is for a
/// receiver that keeps the log's heads, not for people.
fn default_events() -> Vec<String> {
    WEBHOOK_EVENTS
        .iter()
        .filter(|e| **e != "log.head")
        .map(|e| e.to_string())
        .collect()
}

/// One notification endpoint.
#[derive(Clone)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    /// The HMAC-SHA256 key the signature header is made with.
    pub secret: roster_domain::Secret,
    pub events: Vec<String>,
    pub format: WebhookFormat,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// The connection of one instance.
#[derive(Debug, Clone)]
pub enum Connection {
    Marketo(MarketoConn),
    Magento(MagentoConn),
    Adobe {
        conn: roster_engine::AdobeConn,
        people: roster_engine::apps::adobe::NewPeople,
        /// The product profiles Marketo instances on this organization give: theirs.
        reserved: Vec<String>,
    },
}

/// One app instance the service keeps in line.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `marketo.prod`, `magento.b2b`: the app and the name given in the file.
    pub name: String,
    pub app: App,
    pub connection: Connection,
    /// The roster it follows (absolute).
    pub roster: PathBuf,
    pub interval: Duration,
    pub auto_apply: AutoApply,
    pub resend_invites: bool,
    /// Marketo calls per day this instance's runs may use: a run that would go past it is
    /// deferred. The subscription's daily quota when not given.
    pub daily_budget: Option<u64>,
    /// A Magento instance: between full reads, how often customers changed since the last
    /// look (`updated_at`) are searched for and planned for (a targeted run).
    pub changes_every: Option<Duration>,
    /// Who owns it (`owner`): reviews what no manager reviews in an access review, and
    /// the fallback reviewer.
    pub owner: Option<String>,
}

impl Instance {
    /// The name after the app: `emea` of `marketo.emea` (what a roster's `marketo.emea:`
    /// access names).
    pub fn short_name(&self) -> &str {
        self.name
            .split_once('.')
            .map_or(self.name.as_str(), |(_, n)| n)
    }

    /// The key Roster's state knows this instance by (tombstones, quota, invitations): the
    /// normalised URL, as the connectors compute it.
    pub fn state_key(&self) -> String {
        match &self.connection {
            Connection::Marketo(c) => roster_marketo::ClientConfig::new(
                c.url.clone().unwrap_or_default(),
                "",
                roster_domain::Secret::new(""),
            )
            .instance_key()
            .to_string(),
            Connection::Magento(c) => c
                .url
                .clone()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            Connection::Adobe { conn, .. } => conn.org_id.clone().unwrap_or_default(),
        }
    }
}

/// The whole service configuration, checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub state: Option<PathBuf>,
    /// The PostgreSQL database holding the state (`--database` / `ROSTER_DATABASE_URL`;
    /// never in the file, as a URL may carry a password); the SQLite file when `None`.
    pub database: Option<roster_store::DatabaseUrl>,
    pub four_eyes: bool,
    pub json_logs: bool,
    /// Runs this process works on at once (different instances; an instance's runs are
    /// one at a time anyway). Each running instance holds a database connection for its
    /// lock on PostgreSQL, so this is sized to the server's connection limit. On
    /// PostgreSQL, webhook deliveries are jobs that take these slots too.
    pub parallel_runs: usize,
    /// How often the audit log's signed head is published (gauge, and a `log.head`
    /// webhook when it moved on), besides after each run: lines written outside runs
    /// (approvals, tokens, restores) reach a copy outside this host too.
    pub log_head_interval: Duration,
    /// How long runs, their events, console sessions and webhook deliveries are kept.
    pub retention: RetentionConfig,
    /// HTTPS on the service itself: the certificate chain and key (PEM), read again on
    /// SIGHUP. `None`: plain HTTP (behind a proxy that terminates TLS).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How often workers look at their roster files for edits, each planned for at once
    /// for the people it touched; `None` (`roster_watch = "off"`): only scheduled runs
    /// read the file.
    pub roster_watch: Option<Duration>,
    /// Where people reach the service (`https://roster.example.com`): messages link into
    /// the console with it. `None`: messages carry no links.
    pub public_url: Option<String>,
    /// How long a held plan waits for a decision before it expires (`None`: for good).
    pub approval_expiry: Option<Duration>,
    pub instances: Vec<Instance>,
    pub webhooks: Vec<Webhook>,
    pub console: ConsoleConfig,
    pub scim: ScimConfig,
    pub slack: Option<SlackConfig>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_PARALLEL_RUNS: usize = 8;
pub const DEFAULT_LOG_HEAD_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// A bound against a slip of the keyboard: on PostgreSQL a process holds up to 15 + this
/// many connections (8 for the state, 4 and a listener for the job queue, 2 session
/// locks, one per running instance), and a default server allows 100 in all.
pub const MAX_PARALLEL_RUNS: usize = 64;

/// A secret given by the name of an environment variable or a file, never inline.
/// The Adobe link of a Marketo instance whose `identity = "adobe.NAME"`, from `[adobe.NAME]`.
fn ims_settings(
    name: &str,
    m: &RawMarketo,
    adobe: &BTreeMap<String, RawAdobe>,
    base: &Path,
) -> Result<Option<roster_engine::ImsSettings>, String> {
    let Some(identity) = &m.identity else {
        if m.product_profiles.is_some() || m.sync_timeout.is_some() {
            return Err(format!(
                "[{name}] names product_profiles or sync_timeout but no identity: add identity = \"adobe.NAME\" for a subscription on Adobe Identity"
            ));
        }
        return Ok(None);
    };
    let known = || {
        adobe
            .keys()
            .map(|k| format!("adobe.{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(org) = identity.strip_prefix("adobe.") else {
        return Err(format!(
            "[{name}] identity = {identity:?}: give \"adobe.NAME\", naming an [adobe.NAME] section"
        ));
    };
    let Some(a) = adobe.get(org) else {
        return Err(format!(
            "[{name}] identity = {identity:?}, but there is no [adobe.{org}] section (there are: {})",
            if adobe.is_empty() {
                "none".to_string()
            } else {
                known()
            }
        ));
    };
    let section = format!("adobe.{org}");
    let profiles: Vec<String> = m
        .product_profiles
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect();
    if profiles.is_empty() {
        return Err(format!(
            "[{name}] is on Adobe Identity but names no product profile: give product_profiles = [\"Marketo Engage - Production\"], the profiles that give this subscription"
        ));
    }
    Ok(Some(roster_engine::ImsSettings {
        adobe: adobe_conn(&section, a, base)?,
        profiles,
        identity_type: a.identity_type.clone(),
        country: a.country.clone(),
        sync_timeout: duration(name, "sync_timeout", m.sync_timeout.as_ref())?,
    }))
}

/// The connection of the organization `[section]` describes.
fn adobe_conn(
    section: &str,
    a: &RawAdobe,
    base: &Path,
) -> Result<roster_engine::AdobeConn, String> {
    if let Some(t) = &a.identity_type
        && !["federatedID", "enterpriseID", "adobeID"].contains(&t.as_str())
    {
        return Err(format!(
            "[{section}] identity_type = {t:?}: give federatedID, enterpriseID or adobeID"
        ));
    }
    let client_secret = secret(
        section,
        "client_secret",
        a.client_secret.as_ref(),
        a.client_secret_env.as_ref(),
        a.client_secret_file.as_ref(),
        base,
    )?
    .ok_or_else(|| format!("[{section}] has no client_secret_env or client_secret_file"))?;
    Ok(roster_engine::AdobeConn {
        url: a.url.clone(),
        ims_url: a.ims_url.clone(),
        org_id: Some(
            a.org_id
                .clone()
                .ok_or_else(|| format!("[{section}] has no org_id (...@AdobeOrg)"))?,
        ),
        client_id: Some(
            a.client_id
                .clone()
                .ok_or_else(|| format!("[{section}] has no client_id"))?,
        ),
        client_secret: Some(client_secret),
    })
}

thread_local! {
    /// Set while `roster validate` parses a configuration: secrets are checked to be named,
    /// not read (no credentials where a pull request is checked).
    static OFFLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn secret(
    name: &str,
    field: &str,
    inline: Option<&String>,
    env: Option<&String>,
    file: Option<&PathBuf>,
    base: &Path,
) -> Result<Option<String>, String> {
    if inline.is_some() {
        return Err(format!(
            "[{name}] {field}: secrets are not written in the configuration file; give {field}_env = \"VARIABLE\" or {field}_file = \"PATH\""
        ));
    }
    match (env, file) {
        (Some(_), Some(_)) => Err(format!(
            "[{name}] gives both {field}_env and {field}_file; keep one"
        )),
        (Some(_), None) | (None, Some(_)) if OFFLINE.with(std::cell::Cell::get) => {
            Ok(Some("(named, not read: roster validate)".into()))
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(format!(
                "[{name}] {field}_env names {var}, which is not set (or empty) in the service's environment"
            )),
        },
        (None, Some(path)) => {
            let path = base.join(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!("[{name}] {field}_file: cannot read {}: {e}", path.display())
            })?;
            let v = text.trim();
            if v.is_empty() {
                return Err(format!(
                    "[{name}] {field}_file: {} is empty",
                    path.display()
                ));
            }
            Ok(Some(v.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// How long each kind of record is kept (`None`: for good).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    pub runs: Option<Duration>,
    pub run_events: Option<Duration>,
    pub sessions: Option<Duration>,
    pub deliveries: Option<Duration>,
    /// Access that ended longer ago than this leaves the history ("who had X on date D").
    pub access_history: Option<Duration>,
}

impl RetentionConfig {
    /// The cut-off times at `now`.
    pub fn at(&self, now: time::OffsetDateTime) -> roster_store::Retention {
        let before = |d: Option<Duration>| {
            d.and_then(|d| time::Duration::try_from(d).ok())
                .and_then(|d| now.checked_sub(d))
        };
        roster_store::Retention {
            runs: before(self.runs),
            run_events: before(self.run_events),
            sessions: before(self.sessions),
            deliveries: before(self.deliveries),
            access_history: before(self.access_history),
        }
    }
}

const DAY: u64 = 86_400;

fn retention(raw: &RawRetention) -> Result<RetentionConfig, String> {
    let one = |field: &str,
               text: &Option<String>,
               default: u64|
     -> Result<Option<Duration>, String> {
        match text.as_deref() {
            Some("off") => Ok(None),
            Some(_) => {
                let d = duration("service.retention", field, text.as_ref())?.expect("given");
                if d < Duration::from_secs(3600) {
                    return Err(format!(
                        "[service.retention] {field}: {} is too short; keep at least 1h, or \"off\" for good",
                        text.as_deref().unwrap_or_default()
                    ));
                }
                Ok(Some(d))
            }
            None => Ok(Some(Duration::from_secs(default * DAY))),
        }
    };
    Ok(RetentionConfig {
        runs: one("runs", &raw.runs, 365)?,
        run_events: one("run_events", &raw.run_events, 90)?,
        sessions: one("sessions", &raw.sessions, 30)?,
        deliveries: one("deliveries", &raw.deliveries, 90)?,
        access_history: one("access_history", &raw.access_history, 400)?,
    })
}

/// How often a Magento instance looks for changed customers between full reads.
pub const DEFAULT_CHANGES_EVERY: Duration = Duration::from_secs(60);

fn duration(name: &str, field: &str, text: Option<&String>) -> Result<Option<Duration>, String> {
    text.map(|t| parse_duration(t).map_err(|e| format!("[{name}] {field}: {e}")))
        .transpose()
}

/// Instance names go into URLs, metrics labels and file names: keep them plain.
fn check_name(app: &str, name: &str) -> Result<(), String> {
    if roster_domain::roster_file::instance_name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "[{app}.{name}]: an instance name is 1 to 64 letters, digits, '-' or '_'"
        ))
    }
}

impl ServeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// [`ServeConfig::parse`] without reading a secret: each must be named (`NAME_env` or
    /// `NAME_file`), none is read, so a file can be checked where its secrets are not.
    pub fn parse_offline(path: &Path, text: &str) -> Result<Self, String> {
        OFFLINE.with(|o| o.set(true));
        let parsed = Self::parse(path, text);
        OFFLINE.with(|o| o.set(false));
        parsed
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute.parent().unwrap_or(Path::new(".")).to_path_buf();
        let default_interval = duration("service", "interval", raw.service.interval.as_ref())?
            .unwrap_or(DEFAULT_INTERVAL);
        let listen_text = raw.service.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            format!("[service] listen: {listen_text:?} is not an address such as 127.0.0.1:8420")
        })?;
        let log_head_interval = duration(
            "service",
            "log_head_interval",
            raw.service.log_head_interval.as_ref(),
        )?
        .unwrap_or(DEFAULT_LOG_HEAD_INTERVAL);
        if log_head_interval < Duration::from_millis(100) {
            return Err(format!(
                "[service] log_head_interval: {} is too short; give at least 100ms (default 15m)",
                raw.service.log_head_interval.as_deref().unwrap_or_default()
            ));
        }
        let roster_watch = match raw.service.roster_watch.as_deref() {
            Some("off") => None,
            _ => {
                let every = duration("service", "roster_watch", raw.service.roster_watch.as_ref())?
                    .unwrap_or(crate::roster_watch::POLL);
                if every < Duration::from_millis(100) {
                    return Err(format!(
                        "[service] roster_watch: {} is too short; give at least 100ms (default 5s), or \"off\"",
                        raw.service.roster_watch.as_deref().unwrap_or_default()
                    ));
                }
                Some(every)
            }
        };
        let parallel_runs = match raw.service.parallel_runs {
            None => DEFAULT_PARALLEL_RUNS,
            Some(n) if (1..=MAX_PARALLEL_RUNS).contains(&n) => n,
            Some(n) => {
                return Err(format!(
                    "[service] parallel_runs = {n}: give a number from 1 to {MAX_PARALLEL_RUNS} (the runs of different instances this process works on at once; default {DEFAULT_PARALLEL_RUNS})"
                ));
            }
        };
        let common =
            |name: &str, c: RawCommon| -> Result<(PathBuf, Duration, AutoApply, bool), String> {
                let roster = c.roster.ok_or_else(|| {
                format!(
                    "[{name}] has no roster: give roster = \"PATH\" (the roster file it follows)"
                )
            })?;
                let interval = duration(name, "interval", c.interval)?.unwrap_or(default_interval);
                if interval < Duration::from_secs(1) {
                    return Err(format!("[{name}] interval: at least 1s"));
                }
                Ok((
                    base.join(roster),
                    interval,
                    c.auto_apply.unwrap_or(AutoApply::Safe),
                    c.resend_invites.unwrap_or(false),
                ))
            };
        let mut instances = Vec::new();
        for (short, m) in &raw.marketo {
            check_name("marketo", short)?;
            let name = format!("marketo.{short}");
            let (roster, interval, auto_apply, resend_invites) = common(
                &name,
                RawCommon {
                    roster: m.roster.as_ref(),
                    interval: m.interval.as_ref(),
                    auto_apply: m.auto_apply,
                    resend_invites: m.resend_invites,
                },
            )?;
            let url = m
                .url
                .clone()
                .ok_or_else(|| format!("[{name}] has no url"))?;
            let client_id = m
                .client_id
                .clone()
                .ok_or_else(|| format!("[{name}] has no client_id"))?;
            let client_secret = secret(
                &name,
                "client_secret",
                m.client_secret.as_ref(),
                m.client_secret_env.as_ref(),
                m.client_secret_file.as_ref(),
                &base,
            )?
            .ok_or_else(|| format!("[{name}] has no client_secret_env or client_secret_file"))?;
            let rate_window = duration(&name, "rate_window", m.rate_window.as_ref())?;
            let ims = ims_settings(&name, m, &raw.adobe, &base)?;
            instances.push(Instance {
                name,
                app: App::Marketo,
                connection: Connection::Marketo(MarketoConn {
                    url: Some(url),
                    client_id: Some(client_id),
                    client_secret: Some(client_secret),
                    max_in_flight: m.max_in_flight,
                    rate_limit: m.rate_limit,
                    rate_window,
                    daily_quota: m.daily_quota,
                    max_retries: m.max_retries,
                    ims,
                    instance: None,
                }),
                roster,
                interval,
                auto_apply,
                resend_invites,
                daily_budget: m.daily_budget,
                changes_every: None,
                owner: m.owner.clone(),
            });
        }
        for (short, a) in &raw.adobe {
            let name = format!("adobe.{short}");
            let used = raw
                .marketo
                .values()
                .any(|m| m.identity.as_deref() == Some(&name));
            if a.roster.is_none() {
                if !used {
                    return Err(format!(
                        "[{name}] is named by no Marketo instance and has no roster: give it roster = \"PATH\" to manage the organization's product profiles and user groups, or name it from a [marketo.NAME] section with identity = \"{name}\""
                    ));
                }
                if a.interval.is_some() || a.auto_apply.is_some() {
                    return Err(format!(
                        "[{name}] gives interval or auto_apply but no roster: give roster = \"PATH\" to make it an instance of its own"
                    ));
                }
                continue;
            }
            check_name("adobe", short)?;
            let (roster, interval, auto_apply, _) = common(
                &name,
                RawCommon {
                    roster: a.roster.as_ref(),
                    interval: a.interval.as_ref(),
                    auto_apply: a.auto_apply,
                    resend_invites: None,
                },
            )?;
            instances.push(Instance {
                name: name.clone(),
                app: App::Adobe,
                connection: Connection::Adobe {
                    conn: adobe_conn(&name, a, &base)?,
                    people: roster_engine::apps::adobe::NewPeople {
                        identity_type: a.identity_type.clone(),
                        country: a.country.clone(),
                    },
                    reserved: raw
                        .marketo
                        .values()
                        .filter(|m| m.identity.as_deref() == Some(&name))
                        .flat_map(|m| m.product_profiles.clone().unwrap_or_default())
                        .collect(),
                },
                roster,
                interval,
                auto_apply,
                resend_invites: false,
                daily_budget: None,
                changes_every: None,
                owner: a.owner.clone(),
            });
        }
        for (short, m) in &raw.magento {
            check_name("magento", short)?;
            let name = format!("magento.{short}");
            let (roster, interval, auto_apply, resend_invites) = common(
                &name,
                RawCommon {
                    roster: m.roster.as_ref(),
                    interval: m.interval.as_ref(),
                    auto_apply: m.auto_apply,
                    resend_invites: m.resend_invites,
                },
            )?;
            let url = m
                .url
                .clone()
                .ok_or_else(|| format!("[{name}] has no url"))?;
            let changes_every = match m.changes_every.as_deref() {
                Some("off") => None,
                _ => {
                    let every = duration(&name, "changes_every", m.changes_every.as_ref())?
                        .unwrap_or(DEFAULT_CHANGES_EVERY);
                    if every < Duration::from_secs(1) {
                        return Err(format!(
                            "[{name}] changes_every: {} is too short; give at least 1s (default 1m), or \"off\"",
                            m.changes_every.as_deref().unwrap_or_default()
                        ));
                    }
                    Some(every)
                }
            };
            let s = |field: &str,
                     inline: Option<&String>,
                     env: Option<&String>,
                     file: Option<&PathBuf>| {
                secret(&name, field, inline, env, file, &base)
            };
            let conn = MagentoConn {
                url: Some(url),
                username: m.username.clone(),
                password: s(
                    "password",
                    m.password.as_ref(),
                    m.password_env.as_ref(),
                    m.password_file.as_ref(),
                )?,
                scope: m.scope.clone().unwrap_or_else(|| "all".into()),
                totp_secret: s(
                    "totp_secret",
                    None,
                    m.totp_secret_env.as_ref(),
                    m.totp_secret_file.as_ref(),
                )?,
                totp_secret_file: None,
                token: s("token", None, m.token_env.as_ref(), m.token_file.as_ref())?,
                consumer_key: m.consumer_key.clone(),
                consumer_secret: s(
                    "consumer_secret",
                    None,
                    m.consumer_secret_env.as_ref(),
                    m.consumer_secret_file.as_ref(),
                )?,
                access_token: s(
                    "access_token",
                    None,
                    m.access_token_env.as_ref(),
                    m.access_token_file.as_ref(),
                )?,
                access_token_secret: s(
                    "access_token_secret",
                    None,
                    m.access_token_secret_env.as_ref(),
                    m.access_token_secret_file.as_ref(),
                )?,
                instance: None,
            };
            if conn.token.is_none()
                && conn.consumer_key.is_none()
                && (conn.username.is_none() || conn.password.is_none())
            {
                return Err(format!(
                    "[{name}] needs a sign-in: username with password_env (or password_file), or token_env, or the integration's four OAuth values"
                ));
            }
            instances.push(Instance {
                name,
                app: App::Magento,
                connection: Connection::Magento(conn),
                roster,
                interval,
                auto_apply,
                resend_invites,
                daily_budget: None,
                changes_every,
                owner: m.owner.clone(),
            });
        }
        if instances.is_empty() {
            return Err(
                "no instances: add a [marketo.NAME] or [magento.NAME] section (see the README's service configuration reference)"
                    .into(),
            );
        }
        let mut webhooks = Vec::new();
        for (name, w) in &raw.webhook {
            let label = format!("webhook.{name}");
            let secret = secret(&label, "secret", None, w.secret_env.as_ref(), w.secret_file.as_ref(), &base)?
                .ok_or_else(|| format!("[{label}] has no secret_env or secret_file (the key deliveries are signed with)"))?;
            let events = w.events.clone().unwrap_or_else(default_events);
            if let Some(bad) = events
                .iter()
                .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
            {
                return Err(format!(
                    "[{label}] events: unknown event {bad:?}; known: {}",
                    WEBHOOK_EVENTS.join(", ")
                ));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                return Err(format!("[{label}] url must be an http(s) URL"));
            }
            webhooks.push(Webhook {
                name: name.clone(),
                url: w.url.clone(),
                secret: roster_domain::Secret::new(secret),
                events,
                format: w.format.unwrap_or(WebhookFormat::Json),
            });
        }
        let console = ConsoleConfig {
            idle: duration("console", "idle", raw.console.idle.as_ref())?
                .unwrap_or(Duration::from_secs(30 * 60)),
            absolute: duration("console", "absolute", raw.console.absolute.as_ref())?
                .unwrap_or(Duration::from_secs(12 * 3600)),
            lockout_after: raw.console.lockout_after.unwrap_or(5).max(1),
            lockout: duration("console", "lockout", raw.console.lockout.as_ref())?
                .unwrap_or(Duration::from_secs(15 * 60)),
            oidc: raw
                .console
                .oidc
                .as_ref()
                .map(|o| oidc(o, &base))
                .transpose()?,
        };
        let mut groups = BTreeMap::new();
        for (name, value) in raw.scim.groups {
            let what = format!("[scim.groups.{name:?}]");
            let access = roster_domain::roster_file::access_from_toml(&what, value)?;
            let named = access
                .marketo_at
                .keys()
                .map(|n| format!("marketo.{n}"))
                .chain(access.magento_at.keys().map(|n| format!("magento.{n}")));
            for inst in named {
                if !instances.iter().any(|i| i.name == inst) {
                    return Err(format!(
                        "{what} gives access on {inst}, which this configuration does not run"
                    ));
                }
            }
            groups.insert(name, access);
        }
        let scim = ScimConfig {
            debounce: duration("scim", "debounce", raw.scim.debounce.as_ref())?
                .unwrap_or(Duration::from_secs(5)),
            groups,
        };
        let slack = match &raw.slack {
            None => None,
            Some(sl) => {
                let signing_secret = secret(
                    "slack",
                    "signing_secret",
                    sl.signing_secret.as_ref(),
                    sl.signing_secret_env.as_ref(),
                    sl.signing_secret_file.as_ref(),
                    &base,
                )?
                .ok_or("[slack] needs signing_secret_env or signing_secret_file (the Slack app's signing secret)")?;
                for (id, name) in &sl.users {
                    if !id.starts_with(['U', 'W']) || name.trim().is_empty() {
                        return Err(format!(
                            "[slack.users] {id:?} = {name:?}: map a Slack user id (U... or W...) to a Roster console account's name"
                        ));
                    }
                }
                Some(SlackConfig {
                    signing_secret: roster_domain::Secret::new(signing_secret),
                    users: sl.users.clone(),
                })
            }
        };
        Ok(ServeConfig {
            slack,
            scim,
            console,
            path: absolute,
            listen,
            state: raw.service.state.map(|p| base.join(p)),
            database: None,
            four_eyes: raw.service.four_eyes.unwrap_or(true),
            json_logs: raw.service.json_logs.unwrap_or(false),
            parallel_runs,
            log_head_interval,
            retention: retention(&raw.service.retention)?,
            tls: match (&raw.service.tls_cert_file, &raw.service.tls_key_file) {
                (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
                (None, None) => None,
                _ => {
                    return Err(
                        "[service] gives one of tls_cert_file and tls_key_file: give both (PEM files) for HTTPS, or neither for HTTP behind a proxy"
                            .into(),
                    );
                }
            },
            roster_watch,
            public_url: match raw.service.public_url.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                    Some(u.trim_end_matches('/').to_string())
                }
                Some(u) => {
                    return Err(format!(
                        "[service] public_url {u:?} is not an http:// or https:// URL; give the address people open the console at"
                    ));
                }
            },
            approval_expiry: match raw.service.approval_expiry.as_deref().map(str::trim) {
                Some("off") => None,
                None => Some(Duration::from_secs(7 * DAY)),
                Some(_) => {
                    let d = duration(
                        "service",
                        "approval_expiry",
                        raw.service.approval_expiry.as_ref(),
                    )?
                    .expect("given");
                    if d < Duration::from_secs(60) {
                        return Err(format!(
                            "[service] approval_expiry: {} is too short for anyone to decide; give at least 1m (default 7d), or \"off\"",
                            raw.service.approval_expiry.as_deref().unwrap_or_default()
                        ));
                    }
                    Some(d)
                }
            },
            instances,
            webhooks,
        })
    }

    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServeConfig, String> {
        ServeConfig::parse(Path::new("/etc/roster/roster.toml"), text)
    }

    #[test]
    fn instances_take_secrets_from_the_environment_only() {
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("ROSTER_TEST_CFG_SECRET", "s3cret-value") };
        let c = parse(
            "[service]\ninterval = \"5m\"\n[marketo.prod]\nurl = \"https://1.mktorest.com\"\nclient_id = \"id\"\nclient_secret_env = \"ROSTER_TEST_CFG_SECRET\"\nroster = \"people.yaml\"\n[marketo.emea]\nurl = \"https://2.mktorest.com\"\nclient_id = \"id2\"\nclient_secret_env = \"ROSTER_TEST_CFG_SECRET\"\nroster = \"/srv/emea.yaml\"\nauto_apply = \"none\"\ninterval = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(c.instances.len(), 2);
        let prod = c.instance("marketo.prod").unwrap();
        assert_eq!(prod.roster, Path::new("/etc/roster/people.yaml"));
        assert_eq!(prod.interval, Duration::from_secs(300));
        assert_eq!(prod.auto_apply, AutoApply::Safe);
        let emea = c.instance("marketo.emea").unwrap();
        assert_eq!(emea.interval, Duration::from_secs(3600));
        assert_eq!(emea.auto_apply, AutoApply::None);
        assert!(c.four_eyes);
        assert_eq!(c.parallel_runs, DEFAULT_PARALLEL_RUNS);
        assert!(!format!("{c:?}").contains("s3cret-value"));

        let inline = parse("[marketo.prod]\nurl = \"https://1\"\nclient_id = \"id\"\nclient_secret = \"x\"\nroster = \"r.yaml\"\n").unwrap_err();
        assert!(inline.contains("client_secret_env"), "{inline}");
        let unset = parse("[marketo.prod]\nurl = \"https://1\"\nclient_id = \"id\"\nclient_secret_env = \"ROSTER_TEST_CFG_NOT_SET\"\nroster = \"r.yaml\"\n").unwrap_err();
        assert!(unset.contains("ROSTER_TEST_CFG_NOT_SET"), "{unset}");
    }

    #[test]
    fn retention_has_defaults_off_and_a_floor() {
        let section = |retention: &str| {
            ServeConfig::parse_offline(
                Path::new("/etc/roster/roster.toml"),
                &format!(
                    "[service.retention]\n{retention}\n[marketo.prod]\nurl = \"https://1.mktorest.com\"\nclient_id = \"id\"\nclient_secret_env = \"X\"\nroster = \"r.yaml\"\n"
                ),
            )
        };
        let d = section("").unwrap().retention;
        assert_eq!(d.runs, Some(Duration::from_secs(365 * DAY)));
        assert_eq!(d.sessions, Some(Duration::from_secs(30 * DAY)));
        let c = section("runs = \"off\"\nrun_events = \"7d\"")
            .unwrap()
            .retention;
        assert_eq!(c.runs, None);
        assert_eq!(c.run_events, Some(Duration::from_secs(7 * DAY)));
        let short = section("sessions = \"5m\"").unwrap_err();
        assert!(short.contains("[service.retention] sessions"), "{short}");
        let unknown = section("audit_log = \"1d\"").unwrap_err();
        assert!(unknown.contains("audit_log"), "{unknown}");
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("").unwrap_err().contains("no instances"));
        assert!(
            parse("[marketo.\"a b\"]\n")
                .unwrap_err()
                .contains("instance name")
        );
        assert!(
            parse("[service]\nlisten = \"nowhere\"\n")
                .unwrap_err()
                .contains("listen")
        );
        assert!(
            parse("[magento.shop]\nurl = \"http://x\"\nroster = \"r.yaml\"\n")
                .unwrap_err()
                .contains("sign-in")
        );
        assert!(parse("[surprise]\n").unwrap_err().contains("surprise"));
        for n in [0, 65] {
            let err = parse(&format!("[service]\nparallel_runs = {n}\n")).unwrap_err();
            assert!(
                err.contains(&format!("parallel_runs = {n}")) && err.contains("from 1 to 64"),
                "{err}"
            );
        }
    }

    #[test]
    fn scim_groups_map_to_access_checked_like_a_roster() {
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("ROSTER_TEST_SCIM_CFG", "scim-secret-value") };
        let instance = "[marketo.prod]\nurl = \"https://1.mktorest.com\"\nclient_id = \"id\"\nclient_secret_env = \"ROSTER_TEST_SCIM_CFG\"\nroster = \"r.yaml\"\n";
        let c = parse(&format!(
            "{instance}[scim]\ndebounce = \"2s\"\n[scim.groups.\"Marketing Ops\"]\nmarketo = [\"Marketing User@Default\"]\n\"marketo.prod\" = [\"Admin@Default\"]\nmagento = {{ group = \"Wholesale\" }}\nadobe = {{ profiles = [\"Creative Cloud All Apps\"], groups = [\"Designers\"] }}\n"
        ))
        .unwrap();
        let ops = &c.scim.groups["Marketing Ops"];
        assert_eq!(ops.adobe.profiles, ["Creative Cloud All Apps"]);
        assert_eq!(ops.adobe.groups, ["Designers"]);
        let typo = parse(&format!(
            "{instance}[scim.groups.Ops]\nadobe = {{ profile = [\"X\"] }}\n"
        ))
        .unwrap_err();
        assert!(typo.contains("profile"), "{typo}");
        assert_eq!(ops.marketo[0].role, "Marketing User");
        assert_eq!(ops.marketo_at["prod"][0].role, "Admin");
        assert_eq!(ops.magento.group.as_deref(), Some("Wholesale"));
        assert_eq!(c.scim.debounce, Duration::from_secs(2));
        let unknown = parse(&format!(
            "{instance}[scim.groups.Ops]\n\"marketo.emea\" = [\"Admin@Default\"]\n"
        ))
        .unwrap_err();
        assert!(unknown.contains("marketo.emea"), "{unknown}");
        let spec = parse(&format!(
            "{instance}[scim.groups.Ops]\nmarketo = [\"Admin\"]\n"
        ))
        .unwrap_err();
        assert!(spec.contains("ROLE@WORKSPACE"), "{spec}");
        let key = parse(&format!("{instance}[scim.groups.Ops]\nslack = []\n")).unwrap_err();
        assert!(key.contains("slack"), "{key}");
    }

    #[test]
    fn single_sign_on_is_checked_when_loaded() {
        // SAFETY: a variable only this test reads.
        unsafe { std::env::set_var("ROSTER_TEST_OIDC_CFG", "oidc-secret-value") };
        let instance = "[magento.shop]\nurl = \"http://127.0.0.1:1\"\ntoken_env = \"ROSTER_TEST_OIDC_CFG\"\nroster = \"r.yaml\"\n";
        let with = |oidc: &str| parse(&format!("{instance}[console.oidc]\n{oidc}"));
        let good = "issuer = \"https://idp.example/\"\nclient_id = \"roster\"\nclient_secret_env = \"ROSTER_TEST_OIDC_CFG\"\nredirect_url = \"https://roster.example/console/oidc/callback\"\n";
        let c = with(&format!(
            "{good}[console.oidc.roles]\nit-admins = \"admin\"\n"
        ))
        .unwrap();
        let o = c.console.oidc.as_ref().unwrap();
        assert_eq!(o.issuer, "https://idp.example");
        assert_eq!(
            o.roles,
            [("it-admins".to_string(), crate::tokens::Role::Admin)]
        );
        assert_eq!(
            (o.role_claim.as_str(), o.name_claim.as_str()),
            ("groups", "email")
        );
        assert!(!format!("{c:?}").contains("oidc-secret-value"));
        let no_roles = with(good).unwrap_err();
        assert!(no_roles.contains("[console.oidc.roles]"), "{no_roles}");
        let bad_role = with(&format!("{good}default_role = \"boss\"\n")).unwrap_err();
        assert!(bad_role.contains("not a role"), "{bad_role}");
        let plain = with(&good.replace("https://idp.example/", "http://idp.example")).unwrap_err();
        assert!(plain.contains("https"), "{plain}");
        let inline = with(&good.replace(
            "client_secret_env = \"ROSTER_TEST_OIDC_CFG\"",
            "client_secret = \"x\"",
        ))
        .unwrap_err();
        assert!(inline.contains("client_secret_env"), "{inline}");
        let elsewhere = with(&good.replace("/console/oidc/callback", "/callback")).unwrap_err();
        assert!(elsewhere.contains("/console/oidc/callback"), "{elsewhere}");
        assert!(loopback_or_https("http://127.0.0.1:8080/x"));
        assert!(!loopback_or_https("http://127.0.0.1.evil.example/"));
    }
}
