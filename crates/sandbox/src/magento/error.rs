//! Magento's error answers: `{"message": "...%1...", "parameters": ...}` with a status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct MagentoError {
    pub status: StatusCode,
    pub message: String,
    pub parameters: Option<Value>,
}

impl MagentoError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            parameters: None,
        }
    }

    pub fn with(mut self, parameters: Value) -> Self {
        self.parameters = Some(parameters);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// `"%fieldName" is required. Enter and try again.`
    pub fn required(field: &str) -> Self {
        Self::bad_request("\"%fieldName\" is required. Enter and try again.")
            .with(json!({ "fieldName": field }))
    }

    /// `No such entity with %fieldName = %fieldValue`
    pub fn no_such(field: &str, value: impl Into<Value>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "No such entity with %fieldName = %fieldValue",
        )
        .with(json!({ "fieldName": field, "fieldValue": value.into() }))
    }

    /// `The consumer isn't authorized to access %resources.`
    pub fn unauthorized(resources: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The consumer isn't authorized to access %resources.",
        )
        .with(json!({ "resources": resources }))
    }

    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Request does not match any route.")
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "magento sandbox internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error occurred on the server. Please try to place the order again.",
        )
    }
}

impl From<sqlx::Error> for MagentoError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for MagentoError {
    fn into_response(self) -> Response {
        let mut body = json!({ "message": self.message });
        if let Some(p) = self.parameters {
            body["parameters"] = p;
        }
        (self.status, axum::Json(body)).into_response()
    }
}

pub type Result<T> = std::result::Result<T, MagentoError>;
