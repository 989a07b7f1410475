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
        }
    }
}
