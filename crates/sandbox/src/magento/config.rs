//! What a Magento sandbox is started with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use roster_domain::Secret;

#[derive(Debug, Clone)]
pub struct MagentoConfig {
    pub listen: SocketAddr,
    /// Directory of `magento.sqlite` (created and seeded if new).
    pub data_dir: PathBuf,
    /// The admin account clients log in with; generated on first start if not given.
    pub admin_user: Option<String>,
    pub admin_password: Option<Secret>,
    /// How many customers a new sandbox is seeded with.
    pub customers: usize,
    pub admin_token_ttl: Duration,
    pub customer_token_ttl: Duration,
    /// Failed sign-ins before an account is locked, and for how long.
    pub lock_after: u32,
    pub lock_for: Duration,
    /// Offer `/V1/users` and `/V1/roles` (admin users), which core Magento lacks and an
    /// extension adds.
    pub admin_users_api: bool,
    /// Run the consumer of asynchronous operations (`bin/magento queue:consumers:start
    /// async.operations.all`). Off, bulks are accepted and stay open, as on a store whose
    /// consumer or cron is not running.
    pub bulk_consumer: bool,
    /// Operations per second the consumer processes, modelling a real store's
    /// `async.operations.all` consumer (each operation is a full repository save in PHP;
    /// one consumer process typically manages tens per second). None: as fast as SQLite can.
    pub bulk_rate: Option<f64>,
    /// Two-factor authentication for admins (`Magento_TwoFactorAuth`, on by default in 2.4):
    /// admin tokens only through `/V1/tfa/provider/google/authenticate`.
    pub tfa: bool,
    /// Stores > Configuration > Services > OAuth > "Allow OAuth Access Tokens to be used as
    /// standalone Bearer tokens" (off by default since 2.4.4).
    pub integration_as_bearer: bool,
    pub faults: MagentoFaults,
}

/// Faults injected in front of the REST API, as a real store's stack shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MagentoFaults {
    /// Every REST call answers no sooner than this after it arrived (a real store spends
    /// about 100 ms bootstrapping PHP per call).
    pub latency: Duration,
    /// Fraction (0..=1) of REST calls answered by "the proxy in front" with an HTML 502, 503
    /// or 504 page before they reach the store, as nginx, a CDN or a load balancer does.
    pub html_error_rate: f64,
    /// The first this many REST calls get that page whatever the rate: a test that must see
    /// faults sees them, not only most of the time.
    pub html_errors_first: u64,
}

impl MagentoConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8720)),
            data_dir: data_dir.into(),
            admin_user: None,
            admin_password: None,
            customers: 300,
            admin_token_ttl: Duration::from_secs(4 * 3600),
            customer_token_ttl: Duration::from_secs(3600),
            lock_after: 6,
            lock_for: Duration::from_secs(1800),
            admin_users_api: false,
            bulk_consumer: true,
            bulk_rate: None,
            tfa: false,
            integration_as_bearer: false,
            faults: MagentoFaults::default(),
        }
    }
}
