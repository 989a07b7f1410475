//! Marketo's error answers, and the sandbox's own start-up errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed User Management call: an HTTP status and `{"errors":[{"code","message"}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        let status = match code {
            601 | 602 => StatusCode::UNAUTHORIZED,
            603 => StatusCode::FORBIDDEN,
            604 => StatusCode::GATEWAY_TIMEOUT,
            606 | 607 | 615 => StatusCode::TOO_MANY_REQUESTS,
            608 => StatusCode::SERVICE_UNAVAILABLE,
            610 => StatusCode::NOT_FOUND,
            611 => StatusCode::INTERNAL_SERVER_ERROR,
            612 => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn blank(field: &str) -> Self {
        Self::new(701, format!("{field} cannot be blank"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(1003, message)
    }

    pub fn rule(message: impl Into<String>) -> Self {
        Self::new(709, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(610, message)
    }

    /// A storage failure. Never caused by the request, so it is a 611 system error.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "sandbox storage failure");
        Self::new(611, "System error")
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code.to_string(), "message": self.message }]
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Why a sandbox could not start or an administrative command failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot create the data directory {path}: {source}; check the path and its permissions"
    )]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the sandbox database {path}: {source}")]
    Database { path: String, source: sqlx::Error },
    #[error("sandbox database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot listen on {addr}: {source}; pick another address with --listen")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "the sandbox database {path} was written by a newer Roster (schema {found}, this build knows {known}); upgrade Roster"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Invalid(String),
}
