//! How an Adobe sandbox is started: where its state lives, its organization, its limits and
//! its faults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use roster_domain::Secret;

/// The organization a new sandbox is seeded as unless told otherwise: 24 hex digits and
/// `@AdobeOrg`, the shape of a real org id.
pub const DEFAULT_ORG_ID: &str = "0A1B2C3D4E5F60718293A4B5@AdobeOrg";

/// Everything `roster sandbox adobe` can be told.
#[derive(Debug, Clone)]
pub struct AdobeConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory holding `adobe.sqlite`; created if missing.
    pub data_dir: PathBuf,
    /// The organization's id (seeded on first start; later starts must agree or omit it).
    pub org_id: Option<String>,
    /// Credentials of the seeded OAuth Server-to-Server client; generated when absent.
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Lifetime of an access token: Adobe's is 86,399 seconds.
    pub token_ttl: Duration,
    /// Users per page of `GET /users/{org}/{page}` (Adobe's is 2,000 today).
    pub page_size: usize,
    /// Groups per page of `GET /groups/{org}/{page}` (Adobe's is 400 today).
    pub group_page_size: usize,
    pub limits: AdobeLimits,
    pub faults: AdobeFaults,
}

impl AdobeConfig {
    /// Defaults matching the real service, listening on a free loopback port.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            org_id: None,
            client_id: None,
            client_secret: None,
            token_ttl: Duration::from_secs(86_399),
            page_size: 2_000,
            group_page_size: 400,
            limits: AdobeLimits::default(),
            faults: AdobeFaults::default(),
        }
    }
}

/// Calls per client per window before 429, per endpoint family (Adobe's throttling page:
/// action 10, user reads 25, group reads 5 per minute).
#[derive(Debug, Clone, PartialEq)]
pub struct AdobeLimits {
    pub action: u32,
    pub users: u32,
    pub groups: u32,
    pub window: Duration,
}

impl Default for AdobeLimits {
    fn default() -> Self {
        Self {
            action: 10,
            users: 25,
            groups: 5,
            window: Duration::from_secs(60),
        }
    }
}

impl AdobeLimits {
    /// No effective limit: for benchmarks and tests that are not about limits.
    pub fn unlimited() -> Self {
        Self {
            action: u32::MAX,
            users: u32::MAX,
            groups: u32::MAX,
            window: Duration::from_secs(1),
        }
    }
}

/// Faults injected into UMAPI calls so clients can prove their retries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdobeFaults {
    /// Every UMAPI answer leaves no sooner than this after the call arrived.
    pub latency: Duration,
    /// Fraction (0..=1) of UMAPI calls answered 502, 503 or 504 before they run.
    pub error_rate: f64,
    /// When set, every throttled call is told to wait this long (Adobe has answered early
    /// re-runs with waits of 30 to 55 minutes); otherwise the wait is what the window needs.
    pub retry_after: Option<Duration>,
}
