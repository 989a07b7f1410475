//! What a [`crate::Client`] needs to know: where, who, and how hard it may push.

use std::time::Duration;

use roster_domain::Secret;

/// Marketo's documented limits are the defaults; they are shared by every service of the
/// subscription, so lower them if other integrations run at the same time.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The instance's base URL, e.g. `https://123-ABC-456.mktorest.com`.
    pub base_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Calls in flight at once (Marketo refuses an 11th with 615).
    pub max_in_flight: usize,
    /// Calls per `rate_window` (Marketo refuses the 101st in 20 s with 606).
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// The subscription's daily quota (607 when spent); 50,000 by default.
    pub daily_quota: u64,
    /// How long one HTTP exchange may take before it is abandoned (and retried).
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Allow plain `http://` to another machine (credentials would cross the network
    /// unencrypted). `http://` to a loopback address is always allowed.
    pub allow_insecure_http: bool,
    /// A ledger file through which every Roster process on this machine shares the
    /// subscription's limits (see `ledger.rs`); None keeps them per process.
    pub shared_ledger: Option<std::path::PathBuf>,
    /// Another place to share the limits through (Roster's PostgreSQL state, for processes
    /// on several machines); preferred to `shared_ledger` when set.
    pub shared_pacing: Option<std::sync::Arc<dyn crate::SharedPacing>>,
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 6,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// Marketo's default daily call quota per subscription.
pub const DEFAULT_DAILY_QUOTA: u64 = 50_000;

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>, secret: Secret) -> Self {
        Self {
            base_url: instance_url(&base_url.into()),
            client_id: client_id.into(),
            client_secret: secret,
            max_in_flight: 10,
            rate_limit: 100,
            rate_window: Duration::from_secs(20),
            daily_quota: DEFAULT_DAILY_QUOTA,
            request_timeout: Duration::from_secs(60),
            allow_insecure_http: false,
            shared_ledger: None,
            shared_pacing: None,
            retry: RetryPolicy::default(),
        }
    }

    /// The key under which Roster's state records this instance (its base URL).
    pub fn instance_key(&self) -> &str {
        &self.base_url
    }
}

/// The instance's base URL from what an admin pastes. Marketo's Admin > Web Services page
/// shows the REST API's "Endpoint" as `https://123-ABC-456.mktorest.com/rest` and its
/// "Identity" as `.../identity`; the User Management API lives beside `/rest`
/// (`/userservice/...`) and tokens under `/identity/oauth/token`, so either is cut back to
/// the host. Trailing slashes go too.
pub fn instance_url(pasted: &str) -> String {
    let mut url = pasted.trim().trim_end_matches('/');
    for suffix in ["/rest", "/identity"] {
        if url.len() > suffix.len() && url[url.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        {
            url = url[..url.len() - suffix.len()].trim_end_matches('/');
            break;
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::instance_url;

    #[test]
    fn urls_from_the_web_services_page_are_cut_back_to_the_instance() {
        for pasted in [
            "https://123-ABC-456.mktorest.com",
            "https://123-ABC-456.mktorest.com/",
            "https://123-ABC-456.mktorest.com/rest",
            "https://123-ABC-456.mktorest.com/rest/",
            "https://123-ABC-456.mktorest.com/identity",
            " https://123-ABC-456.mktorest.com/REST ",
        ] {
            assert_eq!(
                instance_url(pasted),
                "https://123-ABC-456.mktorest.com",
                "{pasted:?}"
            );
        }
        assert_eq!(
            instance_url("http://127.0.0.1:8710/rest"),
            "http://127.0.0.1:8710"
        );
        assert_eq!(instance_url("https://rest.example"), "https://rest.example");
    }
}
