//! Typed failures that say what failed and what to do.

#[derive(Debug, thiserror::Error)]
pub enum MagentoError {
    #[error(
        "{operation}: the store answered HTTP {status}, a redirect to {location}. Roster does not follow redirects on calls that carry the admin password or token (they would go to another address); set ROSTER_MAGENTO_URL to the address the store really serves"
    )]
    Redirected {
        operation: String,
        status: u16,
        location: String,
    },
    #[error("{operation} failed: HTTP {status}: {message}")]
    Api {
        operation: String,
        status: u16,
        /// Magento's message with its `%name` / `%1` parameters filled in.
        message: String,
    },
    #[error(
        "Magento refused the admin sign-in ({message}); check ROSTER_MAGENTO_USERNAME and ROSTER_MAGENTO_PASSWORD. After 6 failures Magento locks the account for 30 minutes"
    )]
    SignIn { message: String },
    #[error(
        "this store requires two-factor authentication for admins (providers: {providers}). Give the admin's Google Authenticator secret as ROSTER_MAGENTO_TOTP_SECRET (or ROSTER_MAGENTO_TOTP_SECRET_FILE) so Roster computes each code, or use an integration instead of an admin (ROSTER_MAGENTO_TOKEN, or the four ROSTER_MAGENTO_CONSUMER_KEY/_CONSUMER_SECRET/_ACCESS_TOKEN/_ACCESS_TOKEN_SECRET values)"
    )]
    TwoFactorRequired { providers: String },
    #[error(
        "Magento refused the admin sign-in: {message}. The admin has not set up two-factor authentication yet: sign in to the Magento Admin once as this user to configure Google Authenticator, then give its secret as ROSTER_MAGENTO_TOTP_SECRET"
    )]
    TwoFactorNotSetUp { message: String },
    #[error(
        "Magento refused the two-factor code Roster computed from ROSTER_MAGENTO_TOTP_SECRET ({message}); check that it is this admin's Google Authenticator secret and that this machine's clock is right (codes change every 30 s)"
    )]
    TwoFactorCode { message: String },
    #[error(
        "{operation}: the store refused the integration's access token as a bearer token ({message}). Since Magento 2.4.4 that needs Stores > Configuration > Services > OAuth > Consumer Settings > \"Allow OAuth Access Tokens to be used as standalone Bearer tokens\" = Yes; or give the integration's four values (ROSTER_MAGENTO_CONSUMER_KEY, _CONSUMER_SECRET, _ACCESS_TOKEN, _ACCESS_TOKEN_SECRET) and Roster signs each call with OAuth 1.0a instead"
    )]
    BearerRefused { operation: String, message: String },
    #[error(
        "cannot reach Magento at {base_url} for {operation}: {detail}; check ROSTER_MAGENTO_URL (or --url) and the network"
    )]
    Transport {
        base_url: String,
        operation: String,
        detail: String,
    },
    #[error(
        "bulk {uuid}: {open} of {total} operations still open after {waited_seconds} s without progress. The store's consumer of asynchronous operations is probably not running: on the store, run `bin/magento queue:consumers:start async.operations.all` (or check its cron and message queue). The operations stay queued and run when it starts; GET /V1/bulk/{uuid}/status shows them"
    )]
    BulkStalled {
        uuid: String,
        open: usize,
        total: usize,
        waited_seconds: u64,
    },
    #[error(
        "{operation}: HTTP {status} from a proxy or web server in front of Magento ({what}, not Magento's JSON); {}",
        if *status >= 500 { "the store or its gateway is unavailable; try again later" } else { "check ROSTER_MAGENTO_URL: Magento's REST API must answer under that address's /rest" }
    )]
    Proxy {
        operation: String,
        status: u16,
        what: String,
    },
    #[error("Magento answered {operation} with a body Roster cannot read ({detail})")]
    Decode { operation: String, detail: String },
    #[error(
        "this Magento has no REST endpoints for admin users (core Magento has none; an extension adds /V1/users). Manage admin users in the Magento Admin (System > Permissions > All Users) or with `bin/magento admin:user:create`"
    )]
    NoAdminApi,
    #[error("{0}")]
    Invalid(String),
}

impl MagentoError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Worth another attempt: the network, or a 5xx from the store or a proxy in front of it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Api { status, .. } | Self::Proxy { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Fills Magento's `%name` and `%1` placeholders from its `parameters`.
pub(crate) fn render(message: &str, parameters: Option<&serde_json::Value>) -> String {
    let mut text = message.to_string();
    let text_of = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    match parameters {
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                text = text.replace(&format!("%{k}"), &text_of(v));
            }
        }
        Some(serde_json::Value::Array(list)) => {
            // Replace %10 before %1.
            for (i, v) in list.iter().enumerate().rev() {
                text = text.replace(&format!("%{}", i + 1), &text_of(v));
            }
        }
        _ => {}
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            super::render(
                "No such entity with %fieldName = %fieldValue",
                Some(&json!({"fieldName": "customerId", "fieldValue": 7}))
            ),
            "No such entity with customerId = 7"
        );
        assert_eq!(
            super::render("needs %1 of %2", Some(&json!(["8", 3]))),
            "needs 8 of 3"
        );
    }
}
