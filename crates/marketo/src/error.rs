//! Typed failures, each saying what failed, why, and what to do.

/// A non-2xx answer from the User Management API.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// What the client was doing, e.g. `invite new.hire@acme.example`.
    pub operation: String,
    pub status: u16,
    /// Marketo's error code (`"610"`), when the body carried one.
    pub code: Option<String>,
    pub message: String,
    /// An earlier attempt of this call failed in a way that leaves open whether it ran
    /// (a timeout, a 604, a lost connection). A write answered "already exists" or "not
    /// found" after such an attempt most likely succeeded the first time.
    pub earlier_attempt_may_have_run: bool,
}

impl ApiFailure {
    pub fn code_is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: HTTP {}", self.operation, self.status)?;
        if let Some(code) = &self.code {
            write!(f, ", Marketo error {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = self.code.as_deref().and_then(hint) {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "603" => {
            "the API-only user's role needs the \"Access Users\" and \"Access User Management Api\" permissions"
        }
        "607" => "the subscription's daily quota is spent; it resets at midnight US Central",
        "610" => "no such user; `roster marketo users` lists them",
        "612" => "a client bug: the request's content type was refused",
        "701" | "1003" => "check the values given",
        "704" => "give dates as ISO-8601, e.g. 2027-06-30T00:00:00Z",
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MarketoError {
    #[error("{0}")]
    Api(ApiFailure),
    #[error(
        "Marketo refused the client id or secret ({detail}); check ROSTER_MARKETO_CLIENT_ID and ROSTER_MARKETO_CLIENT_SECRET (or --client-id/--client-secret)"
    )]
    Credentials { detail: String },
    #[error(
        "the access token was refused again right after a refresh ({detail}); check that the custom service is still active"
    )]
    TokenRefused { detail: String },
    #[error(
        "cannot reach Marketo at {base_url} for {operation}: {detail}; check ROSTER_MARKETO_URL (or --url) and the network"
    )]
    Transport {
        base_url: String,
        operation: String,
        detail: String,
    },
    #[error(
        "nothing accepts connections at {base_url} on this machine ({operation}: {detail}); is the sandbox or service running on this port? Check ROSTER_MARKETO_URL (or --url). Roster did not retry"
    )]
    Unreachable {
        base_url: String,
        operation: String,
        detail: String,
    },
    #[error(
        "{base_url} presented a certificate Roster does not trust ({operation}: {detail}); check that ROSTER_MARKETO_URL (or --url) names the right host and that its certificate is valid. Roster did not retry: a certificate does not heal on its own"
    )]
    Certificate {
        base_url: String,
        operation: String,
        detail: String,
    },
    #[error("{operation} gave up after {attempts} attempts; the last failure: {last}")]
    GaveUp {
        operation: String,
        attempts: usize,
        last: Box<MarketoError>,
        /// Some attempt reached Marketo and may have run (a 604 time-out, a 5xx after the
        /// write, a time-out after sending): the write may have happened.
        may_have_run: bool,
    },
    #[error(
        "Marketo answered {operation} with a body Roster cannot read ({detail}); body starts: {snippet}"
    )]
    Decode {
        operation: String,
        detail: String,
        snippet: String,
    },
    #[error(
        "{job} needs {needed} calls but only {remaining} of today's {limit} are left in the daily quota budget; wait for the reset at midnight US Central or raise --daily-quota if the subscription allows more"
    )]
    QuotaBudget {
        job: String,
        needed: u64,
        remaining: u64,
        limit: u64,
    },
    #[error("invalid Marketo configuration: {0}")]
    Config(String),
    #[error(
        "{operation}: Marketo's address answered HTTP {status}, a redirect to {location}. Roster does not follow redirects on calls that carry the client secret or a token (they would go to another address); set ROSTER_MARKETO_URL to the REST endpoint shown in Admin > Web Services"
    )]
    Redirected {
        operation: String,
        status: u16,
        location: String,
    },
    #[error(
        "refused to {operation} {userid}: it is the API-only user Roster signs in as; without its role every call would be refused (603) and Roster would lock itself out. Nothing was sent"
    )]
    OwnUser { operation: String, userid: String },
}

impl MarketoError {
    /// The API failure underneath, if that is what this is.
    pub fn api(&self) -> Option<&ApiFailure> {
        match self {
            Self::Api(f) => Some(f),
            Self::GaveUp { last, .. } => last.api(),
            _ => None,
        }
    }

    /// The call failed, but an attempt may have run on Marketo's side all the same.
    pub fn may_have_run(&self) -> bool {
        match self {
            Self::GaveUp { may_have_run, .. } => *may_have_run,
            Self::Api(f) => f.earlier_attempt_may_have_run,
            _ => false,
        }
    }

    /// Marketo said 610: the user (or invitation) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(|f| f.code_is("610"))
    }
}
