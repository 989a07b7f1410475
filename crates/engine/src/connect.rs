//! From flags, environment and the configuration file to a Marketo client and Roster's
//! state; and, when a command ends, the calls it made recorded against the daily quota.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use roster_domain::Secret;
use roster_domain::marketo_time::quota_day;
use roster_marketo::{Client, ClientConfig};
use roster_store::StateStore;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::Globals;
use crate::conn::MarketoConn;
use crate::events::Events;

pub const MARKETO: &str = "marketo";

static ALLOW_INSECURE_HTTP: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `--allow-insecure-http`, set once from the command line for every connection it opens.
pub fn set_allow_insecure_http(allow: bool) {
    ALLOW_INSECURE_HTTP.store(allow, std::sync::atomic::Ordering::Relaxed);
}

static CALL_TIMEOUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The CLI's `--timeout`: how long one call to an app may take, for every connection this
/// process makes (the service leaves it unset and keeps the connectors' defaults).
pub fn set_call_timeout(timeout: std::time::Duration) {
    CALL_TIMEOUT_MS.store(
        timeout.as_millis().max(1) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

pub(crate) fn call_timeout() -> Option<std::time::Duration> {
    match CALL_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        ms => Some(std::time::Duration::from_millis(ms)),
    }
}

pub fn allow_insecure_http() -> bool {
    ALLOW_INSECURE_HTTP.load(std::sync::atomic::Ordering::Relaxed)
}

/// The parts of the configuration file Roster reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub marketo: MarketoSection,
    #[serde(default)]
    pub magento: MagentoSection,
    #[serde(default)]
    pub adobe: AdobeSection,
}

/// `[adobe]`: the Admin Console's organization and credential. The secret is read from a
/// variable or a file it names (`client_secret_env`, `client_secret_file`), or given inline.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdobeSection {
    pub url: Option<String>,
    pub ims_url: Option<String>,
    pub org_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// The identity type people new to the organization get: federatedID (default),
    /// enterpriseID or adobeID.
    pub identity_type: Option<String>,
    /// The country new people get (Federated and Enterprise IDs need one).
    pub country: Option<String>,
}

impl std::fmt::Debug for AdobeSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdobeSection")
            .field("url", &self.url)
            .field("org_id", &self.org_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret_file", &self.client_secret_file)
            .finish_non_exhaustive()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagentoSection {
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub scope: Option<String>,
    pub totp_secret: Option<String>,
    pub totp_secret_file: Option<PathBuf>,
    pub token: Option<String>,
    pub consumer_key: Option<String>,
    pub consumer_secret: Option<String>,
    pub access_token: Option<String>,
    pub access_token_secret: Option<String>,
}

impl std::fmt::Debug for MagentoSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MagentoSection")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field(
                "totp_secret",
                &self.totp_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("consumer_key", &self.consumer_key)
            .finish_non_exhaustive()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketoSection {
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `adobe` for a subscription on Adobe Identity: standard users are added and removed
    /// through the product profiles of the `[adobe]` organization.
    pub identity: Option<String>,
    /// With `identity = "adobe"`: the product profiles that give this subscription.
    pub product_profiles: Option<Vec<String>>,
    /// With `identity = "adobe"`: how long Marketo may take to show someone given the
    /// profile before plans report them (default "1h").
    pub sync_timeout: Option<String>,
    pub max_in_flight: Option<usize>,
    pub rate_limit: Option<u32>,
    pub rate_window_seconds: Option<u64>,
    pub daily_quota: Option<u64>,
}

impl std::fmt::Debug for MarketoSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketoSection")
            .field("url", &self.url)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home().map(|h| h.join(fallback)))
}

pub fn default_state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state")
        .map(|d| d.join("roster"))
        .unwrap_or_else(|| PathBuf::from("roster-state"))
}

/// Reads the configuration file: the one given (which must exist) or the default (if any).
pub fn load_config(given: Option<&Path>) -> Result<ConfigFile> {
    let (path, required) = match given {
        Some(p) => (p.to_path_buf(), true),
        None => match xdg("XDG_CONFIG_HOME", ".config") {
            Some(dir) => (dir.join("roster/config.toml"), false),
            None => return Ok(ConfigFile::default()),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(ConfigFile::default());
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the configuration file {}", path.display()));
        }
    };
    let config: ConfigFile = toml::from_str(&text)
        .with_context(|| format!("the configuration file {} is not valid", path.display()))?;
    warn_if_readable_by_others(&path, &config);
    Ok(config)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, config: &ConfigFile) {
    use std::os::unix::fs::PermissionsExt;
    let m = &config.magento;
    let magento_secret = m.password.is_some()
        || m.totp_secret.is_some()
        || m.token.is_some()
        || m.consumer_secret.is_some()
        || m.access_token_secret.is_some();
    if (config.marketo.client_secret.is_some() || magento_secret)
        && let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{} holds a client secret and other users can read it; run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &ConfigFile) {}

/// A Marketo client plus Roster's state, for one command.
pub struct MarketoSession {
    pub client: Client,
    pub state: StateStore,
    pub instance: String,
    /// Where this session's operations report what they do.
    pub events: Events,
    quota_day: time::Date,
    recorded: u64,
    /// Set for a subscription on Adobe Identity (`identity = "adobe"`): where its standard
    /// users are added and removed.
    pub ims: Option<crate::adobe_ops::ImsLink>,
    /// The subscription's roles and workspaces, read once per session on first need (an
    /// apply resolves every step's roles against one read).
    pub(crate) directory: tokio::sync::OnceCell<roster_marketo::Directory>,
    /// The instance's lock, while this process changes it.
    _lock: Option<crate::lock::Held>,
}

pub fn state_dir(dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_path_buf).unwrap_or_else(default_state_dir)
}

/// Roster's state: in the PostgreSQL `database` when given, else in `dir` (the default
/// folder when `None`). A process opens each state once and shares it: the service's many
/// instances use one connection pool, not one each.
pub async fn open_state(dir: Option<&Path>, database: Option<&str>) -> Result<StateStore> {
    let dir_arg = dir;
    static OPEN: std::sync::Mutex<Vec<(PathBuf, StateStore)>> = std::sync::Mutex::new(Vec::new());
    let dir = match database {
        Some(url) => PathBuf::from(url),
        None => std::path::absolute(state_dir(dir))?,
    };
    if let Some((_, store)) = OPEN
        .lock()
        .expect("the open states")
        .iter()
        .find(|(d, _)| *d == dir)
    {
        return Ok(store.clone());
    }
    let store = match database {
        Some(url) => StateStore::connect(url).await?,
        None => StateStore::open(&dir).await?,
    };
    let key_dir = std::path::absolute(state_dir(dir_arg))?;
    let store = with_signing_key(store, &key_dir).await?;
    let mut open = OPEN.lock().expect("the open states");
    match open.iter().find(|(d, _)| *d == dir) {
        Some((_, first)) => Ok(first.clone()),
        None => {
            open.push((dir, store.clone()));
            Ok(store)
        }
    }
}

/// Opens the state's signing key (`signing.key` in the state directory, or
/// `ROSTER_SIGNING_KEY_FILE`), making it on first use, and checks that it is the key the
/// state's log was signed with. A key made just now signs the rows written before the log
/// was keyed, once, if their chain verifies.
async fn with_signing_key(store: StateStore, key_dir: &Path) -> Result<StateStore> {
    let path = roster_keys::Keyring::default_path(key_dir);
    let loaded = roster_keys::Keyring::load_or_create(&path).with_context(|| {
        format!(
            "Roster signs its plans, approvals and audit log with the key in {} (set {} to keep it elsewhere)",
            path.display(),
            roster_keys::KEY_FILE_ENV
        )
    })?;
    let keys = loaded.keyring.clone();
    let store = store.with_keys(loaded.keyring);
    if let Some(id) = store.newest_row_key().await?
        && !keys.knows(&id)
    {
        if loaded.created {
            // Made for nothing: leave the place free for the right key to be copied to.
            let _ = std::fs::remove_file(&path);
        }
        bail!(
            "the audit log in {} is signed by key {id}, but the signing key {} is {}{}: give this process the key that signs this state (copy the key file from the host that holds it, or point {} at it); retired keys go in {}",
            store.path().display(),
            path.display(),
            keys.current().map_or("", |k| k.id()),
            if loaded.created {
                " (just made, now removed)"
            } else {
                ""
            },
            roster_keys::KEY_FILE_ENV,
            roster_keys::retired_path(&path).display()
        );
    }
    if loaded.created {
        // Tombstones from before the key: theirs, as the log's rows are, signed once.
        store.sign_unsigned_tombstones().await?;
        let signed = store.sign_unsigned_rows().await?;
        if signed > 0 {
            let mut line = crate::actor::Actor::resolve(None).log(
                "roster",
                "sign log",
                &format!("rows 1 to {signed}"),
                "done",
            );
            line.detail = Some(format!(
                "the {signed} rows written before the log was keyed verified as a chain and were signed with the new key {}",
                keys.current().map_or("", |k| k.id())
            ));
            store
                .append_log(&line, time::OffsetDateTime::now_utc())
                .await?;
        }
    }
    Ok(store)
}

impl MarketoSession {
    pub async fn open(conn: &MarketoConn, g: &Globals) -> Result<Self> {
        // Given the service's configuration, a command connects as the service does.
        let chosen = match conn.url {
            None => g.service_instance(
                roster_domain::desired::App::Marketo,
                conn.instance.as_deref(),
            )?,
            Some(_) => None,
        };
        let conn = chosen
            .as_ref()
            .and_then(|c| c.marketo.as_ref())
            .unwrap_or(conn);
        let state_dir = g.state.as_deref();
        let ConfigFile {
            marketo: file,
            adobe,
            ..
        } = g.config_file()?;
        let ims = match &conn.ims {
            Some(settings) => {
                Some(crate::adobe_ops::ImsLink::from_settings(settings, adobe, g).await?)
            }
            None => crate::adobe_ops::ImsLink::configured(&file, adobe, g).await?,
        };
        use crate::problem::Problem;
        let Some(url) = conn.url.clone().or(file.url) else {
            return Err(Problem::not_configured(
                "no Marketo instance given: set ROSTER_MARKETO_URL (or --url, or url in the [marketo] section of the config file)",
            ));
        };
        let Some(client_id) = conn.client_id.clone().or(file.client_id) else {
            return Err(Problem::not_configured(
                "no client id given: set ROSTER_MARKETO_CLIENT_ID (or --client-id, or client_id in the config file)",
            ));
        };
        let Some(secret) = conn.client_secret.clone().or(file.client_secret) else {
            return Err(Problem::not_configured(
                "no client secret given: set ROSTER_MARKETO_CLIENT_SECRET (or client_secret in the config file)",
            ));
        };
        let mut config = ClientConfig::new(url, client_id, Secret::new(secret));
        config.allow_insecure_http = allow_insecure_http();
        if let Some(n) = conn.max_in_flight.or(file.max_in_flight) {
            config.max_in_flight = n;
        }
        if let Some(n) = conn.rate_limit.or(file.rate_limit) {
            config.rate_limit = n;
        }
        if let Some(w) = conn
            .rate_window
            .or(file.rate_window_seconds.map(std::time::Duration::from_secs))
        {
            config.rate_window = w;
        }
        if let Some(q) = conn.daily_quota.or(file.daily_quota) {
            config.daily_quota = q;
        }
        if let Some(n) = conn.max_retries {
            config.retry.max_retries = n;
        }
        if let Some(t) = call_timeout() {
            config.request_timeout = t;
        }
        let state = open_state(state_dir, g.database.as_deref()).await?;
        let instance = config.instance_key().to_string();
        if state.backend() == roster_store::Backend::Postgres {
            // Every Roster process sharing this database, on any machine, paces this
            // subscription together.
            config.shared_pacing = Some(std::sync::Arc::new(
                crate::shared_pacing::PostgresPacing::new(state.clone(), &instance, &config),
            ));
        } else {
            // Every Roster process on this machine paces this subscription together.
            let ledger =
                crate::lock::pacing_ledger_path(&self::state_dir(state_dir), MARKETO, &instance);
            if let Some(dir) = ledger.parent() {
                crate::private::create_dir(dir)?;
            }
            config.shared_ledger = Some(ledger);
        }
        let lock = crate::lock::instance(&self::state_dir(state_dir), MARKETO, &instance)?;
        let day = quota_day(OffsetDateTime::now_utc());
        let used = state.quota_used(MARKETO, &instance, day).await?;
        let client = Client::new(config, used)?;
        // Calls made by the previous command still count in the subscription's rate window.
        if let Some(saved) = state.fact(MARKETO, &instance, RECENT_CALLS).await? {
            client.remember_recent_calls(&decode_recent(&saved));
        }
        Ok(Self {
            client,
            state,
            instance,
            events: g.events.clone(),
            quota_day: day,
            recorded: 0,
            ims,
            directory: tokio::sync::OnceCell::new(),
            _lock: lock,
        })
    }

    /// Records the calls made so far against today's quota (idempotent).
    pub async fn record_usage(&mut self) -> Result<()> {
        let calls = self.client.stats().calls;
        let new = calls - self.recorded;
        self.state
            .add_quota_used(MARKETO, &self.instance, self.quota_day, new)
            .await?;
        self.recorded = calls;
        let recent = encode_recent(&self.client.recent_calls());
        self.state
            .set_fact(MARKETO, &self.instance, RECENT_CALLS, &recent)
            .await?;
        Ok(())
    }

    /// "N calls (R retries); quota left: X of Y today".
    pub fn cost_line(&self) -> String {
        let s = self.client.stats();
        let q = self.client.quota();
        format!(
            "{} API call{} ({} retr{}, {} rate-limited); daily quota left: {} of {}",
            s.calls,
            if s.calls == 1 { "" } else { "s" },
            s.retries,
            if s.retries == 1 { "y" } else { "ies" },
            s.rate_limited,
            q.remaining(),
            q.limit()
        )
    }
}

const RECENT_CALLS: &str = "recent_calls";

/// Recent calls as absolute unix milliseconds, so the ages are right whenever they are read.
fn encode_recent(ages: &[std::time::Duration]) -> String {
    let now = OffsetDateTime::now_utc();
    let stamps: Vec<String> = ages
        .iter()
        .map(|age| ((now - *age).unix_timestamp_nanos() / 1_000_000).to_string())
        .collect();
    stamps.join(",")
}

fn decode_recent(saved: &str) -> Vec<std::time::Duration> {
    let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    saved
        .split(',')
        .filter_map(|s| s.trim().parse::<i128>().ok())
        .filter_map(|ms| u64::try_from(now_ms - ms).ok())
        .map(std::time::Duration::from_millis)
        .collect()
}

/// Who is acting, for tombstones and invitation records: the name given, else the OS
/// account (from the password database, not `$USER`).
pub fn actor(given: Option<&str>) -> String {
    crate::actor::Actor::resolve(given).name
}

/// Parses a date given on the command line: `YYYY-MM-DD` (midnight UTC) or a Marketo/ISO date-time.
pub fn parse_date(text: &str) -> Result<OffsetDateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text.trim(), format) {
        return Ok(date.midnight().assume_utc());
    }
    roster_domain::marketo_time::parse(text).map_err(|e| {
        anyhow::anyhow!(
            "{text:?} is not a date: {e}; use YYYY-MM-DD or ISO-8601 such as 2027-06-30T17:00:00Z"
        )
    })
}
