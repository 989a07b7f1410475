//! What the client needs to know: where IMS and UMAPI are, the organization, the credential,
//! and how patient to be.

use std::time::Duration;

use roster_domain::Secret;

/// The production hosts, used unless told otherwise.
pub const IMS_URL: &str = "https://ims-na1.adobelogin.com";
pub const UMAPI_URL: &str = "https://usermanagement.adobe.io";

#[derive(Debug, Clone)]
pub struct AdobeConfig {
    /// IMS, without a path: the token is asked of `{ims_url}/ims/token/v3`.
    pub ims_url: String,
    /// UMAPI's host, without a path: calls go to `{umapi_url}/v2/usermanagement/...`.
    pub umapi_url: String,
    /// `…@AdobeOrg`.
    pub org_id: String,
    /// The OAuth Server-to-Server credential's client id (also its API key).
    pub client_id: String,
    pub client_secret: Secret,
    /// How long one HTTP call may take (Adobe's client allows 120 s).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Calls per client per minute, per family, as Adobe documents them.
    pub limits: Limits,
    /// Where other Roster processes count their calls with the same client, per family:
    /// Adobe's limits are per client, whichever process sends.
    pub shared: Option<SharedFamilies>,
}

/// The shared pacers of the three call families (see [`Limits`]).
#[derive(Clone)]
pub struct SharedFamilies {
    pub action: std::sync::Arc<dyn roster_pacing::SharedPacing>,
    pub users: std::sync::Arc<dyn roster_pacing::SharedPacing>,
    pub groups: std::sync::Arc<dyn roster_pacing::SharedPacing>,
}

impl std::fmt::Debug for SharedFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFamilies").finish_non_exhaustive()
    }
}

impl SharedFamilies {
    /// Ledger files `{prefix}-action.ledger`, `-users`, `-groups` in `dir`, for the
    /// processes of one machine.
    pub fn ledgers(
        dir: &std::path::Path,
        prefix: &str,
        limits: &Limits,
        request_timeout: Duration,
    ) -> std::io::Result<Self> {
        let ledger = |family: &str,
                      limit: u32|
         -> std::io::Result<std::sync::Arc<dyn roster_pacing::SharedPacing>> {
            Ok(std::sync::Arc::new(roster_pacing::Ledger::new(
                &dir.join(format!("{prefix}-{family}.ledger")),
                limit,
                limits.window,
                limit as usize,
                request_timeout,
            )?))
        };
        Ok(Self {
            action: ledger("action", limits.action)?,
            users: ledger("users", limits.users)?,
            groups: ledger("groups", limits.groups)?,
        })
    }
}

impl AdobeConfig {
    pub fn new(
        org_id: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            ims_url: IMS_URL.into(),
            umapi_url: UMAPI_URL.into(),
            org_id: org_id.into(),
            client_id: client_id.into(),
            client_secret,
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            shared: None,
        }
    }
}

/// How transient failures are retried: as umapi-client does by default (4 attempts in all,
/// a first wait of 15 s doubling each time plus up to 5 s of jitter), with one addition: a
/// `Retry-After` longer than `max_wait` is not slept through but reported, since Adobe
/// answers clients that sync too often with waits of up to an hour.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub jitter: Duration,
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            first_delay: Duration::from_secs(15),
            jitter: Duration::from_secs(5),
            max_wait: Duration::from_secs(600),
        }
    }
}

/// Adobe's per-client limits (DOC partials/throttling.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub action: u32,
    pub users: u32,
    pub groups: u32,
    pub window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            action: 10,
            users: 25,
            groups: 5,
            window: Duration::from_secs(60),
        }
    }
}
