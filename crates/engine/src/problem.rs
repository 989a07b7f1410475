//! What kind of problem an error is, named where it is made, so the CLI can exit with a
//! code a script tells apart (see the CLI's `exit` module): the roster is invalid, or a
//! setting is missing. The apps' own failures (unreachable, refused) are typed by their
//! connector crates.

/// A problem of the input or the setup, not of an app.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A roster, configuration or other input Roster was given is not valid.
    #[error("{0}")]
    Invalid(String),
    /// A setting or credential is missing: nothing was tried.
    #[error("{0}")]
    NotConfigured(String),
}

impl Problem {
    pub fn invalid(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Problem::Invalid(message.into()))
    }

    pub fn not_configured(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Problem::NotConfigured(message.into()))
    }
}
