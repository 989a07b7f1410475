//! How a Marketo sandbox is started: where its state lives, its limits and its faults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use roster_domain::Secret;

/// Everything `roster sandbox marketo` can be told.
#[derive(Debug, Clone)]
pub struct MarketoConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory holding `marketo.sqlite`; created if missing.
    pub data_dir: PathBuf,
    /// Credentials of the seeded custom service; generated on first start when absent.
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Emulate a subscription migrated to Adobe IMS: invite, update and delete work for
    /// API-only users only.
    pub ims: bool,
    /// With `ims`: the Adobe organization whose Marketo Engage product profiles decide who
    /// the standard users are (see `ims_sync`).
    pub adobe: Option<super::ims_sync::AdobeLink>,
    /// Lifetime of an access token.
    pub token_ttl: Duration,
    /// Which role-body shapes `roles/create.json` and `roles/delete.json` accept.
    pub role_body: RoleBodyShapes,
    pub limits: Limits,
    pub faults: Faults,
}

impl MarketoConfig {
    /// Defaults matching the real service, listening on a free loopback port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            client_id: None,
            client_secret: None,
            ims: false,
            adobe: None,
            token_ttl: Duration::from_secs(3600),
            role_body: RoleBodyShapes::Both,
            limits: Limits::default(),
            faults: Faults::default(),
        }
    }
}

/// The subscription-wide limits. Identity calls are never counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Calls allowed per `rate_window` (606 beyond).
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// Calls in flight at once (615 beyond).
    pub max_concurrent: u32,
    /// Calls per US-Central day (607 beyond).
    pub daily_quota: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_limit: 100,
            rate_window: Duration::from_secs(20),
            max_concurrent: 10,
            daily_quota: 50_000,
        }
    }
}

impl Limits {
    /// No effective limit: for benchmarks and tests that are not about limits.
    pub fn unlimited() -> Self {
        Self {
            rate_limit: u32::MAX,
            rate_window: Duration::from_secs(1),
            max_concurrent: u32::MAX,
            daily_quota: u64::MAX,
        }
    }
}

/// Faults injected into User Management calls so clients can prove their retries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Added to every API call, while it holds a concurrency slot.
    pub latency: Duration,
    /// Fraction (0..=1) of calls answered with a random transient failure: HTTP 502, 611 (500),
    /// 608 (503) before the call runs, or 604 (504) after it ran, as a real gateway time-out does.
    pub error_rate: f64,
    /// Fraction (0..=1) of calls whose token is expired early, answered with 602.
    pub token_expiry_rate: f64,
    /// Fraction (0..=1) of writes (POSTs) answered 604 *after* they ran: the change is made,
    /// the answer lost. At 1 every attempt of a write times out, as during an incident.
    pub write_timeout_rate: f64,
}

/// The vendor's documents disagree on the role body: the developer page shows a bare array,
/// the OpenAPI spec `{"input": [...]}`. The sandbox accepts both by default; restricting it to
/// one lets a client prove that it falls back to the other shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoleBodyShapes {
    #[default]
    Both,
    /// Only `[{"accessRoleId":..,"workspaceId":..}]`.
    BareArray,
    /// Only `{"input": [...]}`.
    InputWrapper,
}
