//! What can go wrong, each saying what to do about it. No variant carries a secret.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AdobeError {
    #[error("cannot pace with the other Roster processes using this Adobe client: {0}")]
    Pacing(String),
    #[error("cannot reach {what}: {source}; check the URL and the network")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "Adobe IMS refused the sign-in ({status}, {error}: {description}); check the client id and secret of the OAuth Server-to-Server credential and that it has the User Management API"
    )]
    SignIn {
        status: u16,
        error: String,
        description: String,
    },
    #[error(
        "UMAPI refused the access token (401: {message}); the credential may lack the User Management API or the organization id may be wrong"
    )]
    Unauthorized { message: String },
    #[error(
        "UMAPI refused the call (403: {message}); the API key is missing or not permitted, or the organization is migrating"
    )]
    Forbidden { message: String },
    #[error("UMAPI answered {status} to {what}: {result}: {message}")]
    Api {
        what: String,
        status: u16,
        result: String,
        message: String,
    },
    #[error(
        "UMAPI is unavailable: {what} failed {attempts} times (last: {last}) over {}s; try again later",
        elapsed.as_secs()
    )]
    Unavailable {
        what: String,
        attempts: u32,
        last: String,
        elapsed: Duration,
    },
    #[error(
        "UMAPI asks this client to wait {}s before {what} (Adobe throttles clients that run too often); run again after that",
        wait.as_secs()
    )]
    Throttled { what: String, wait: Duration },
    #[error("UMAPI's answer to {what} was not what its documentation describes: {detail}")]
    Decode { what: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}
