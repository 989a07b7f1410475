//! Reading request bodies the way Marketo does: JSON only (612 otherwise), 609 for JSON that
//! does not parse, a 1 MB cap, and field validation with the documented 701/704/1003 errors.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use super::error::ApiError;

/// The largest body accepted, as on the real service.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest accepted name or email; longer ones are refused rather than truncated.
pub const MAX_FIELD_CHARS: usize = 255;

/// Parses a required JSON body.
pub fn required_json(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    optional_json(headers, body)?
        .ok_or_else(|| ApiError::new(609, "Invalid JSON: the request body is empty"))
}

/// Parses an optional JSON body: an empty body is `None` and needs no content type.
pub fn optional_json(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<Value>, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::invalid(format!(
                "Request body too large: the limit is {MAX_BODY_BYTES} bytes"
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            ApiError::invalid(format!("Could not read the request body: {rejection}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        let shown = if content_type.is_empty() {
            "none".to_owned()
        } else {
            content_type.chars().take(100).collect()
        };
        return Err(ApiError::new(
            612,
            format!("Invalid Content Type: {shown}; send Content-Type: application/json"),
        ));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::new(609, format!("Invalid JSON: {e}")))
}

/// The body as an object, or 1003.
pub fn object(value: &Value) -> Result<&Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::invalid("Invalid data: the request body must be a JSON object"))
}

/// A required, non-blank string field of at most [`MAX_FIELD_CHARS`] characters.
pub fn required_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    optional_str(obj, field)?.ok_or_else(|| ApiError::blank(field))
}

/// An optional string field: absent or null is `None`; blank is 701; too long or not a
/// string is 1003.
pub fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ApiError::blank(field)),
        Some(Value::String(s)) if s.chars().count() > MAX_FIELD_CHARS => {
            Err(ApiError::invalid(format!(
                "Invalid data: {field} is {} characters long; the limit is {MAX_FIELD_CHARS}",
                s.chars().count()
            )))
        }
        Some(Value::String(s)) => Ok(Some(s.trim())),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid data: {field} must be a string, not {}",
            kind(other)
        ))),
    }
}

pub fn optional_bool(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid data: {field} must be true or false, not {}",
            kind(other)
        ))),
    }
}

/// An email address in the shape Marketo accepts: one `@`, a non-empty local part, a domain
/// with a dot, no spaces or control characters.
pub fn email(field: &str, value: &str) -> Result<(), ApiError> {
    let valid = match value.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid data: {field} {value:?} is not an email address"
        )))
    }
}

/// The role/workspace pairs of a role body or invite. Accepts the developer page's bare array
/// and the OpenAPI spec's `{"input": [...]}`; refuses the `roleId` spelling some guides show.
pub fn role_pairs(value: &Value, field: &str) -> Result<Vec<(i64, i64)>, ApiError> {
    let items = match value {
        Value::Array(items) => items,
        Value::Object(obj) => match obj.get("input") {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => return Err(ApiError::blank(field)),
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "Invalid data: {field} must be an array, not {}",
                    kind(other)
                )));
            }
        },
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid data: expected an array of {{accessRoleId, workspaceId}} or {{\"input\": [...]}}, not {}",
                kind(other)
            )));
        }
    };
    pairs_from(items, field)
}

pub fn pairs_from(items: &[Value], field: &str) -> Result<Vec<(i64, i64)>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::blank(field));
    }
    let mut pairs = Vec::with_capacity(items.len());
    for item in items {
        let obj = item
            .as_object()
            .ok_or_else(|| ApiError::invalid(format!("Invalid data: each {field} entry must be an object with accessRoleId and workspaceId")))?;
        if obj.contains_key("roleId") && !obj.contains_key("accessRoleId") {
            return Err(ApiError::invalid(
                "Invalid data: unknown field roleId; the field is called accessRoleId",
            ));
        }
        let role = id_field(obj, "accessRoleId")?;
        let workspace = id_field(obj, "workspaceId")?;
        if !pairs.contains(&(role, workspace)) {
            pairs.push((role, workspace));
        }
    }
    Ok(pairs)
}

fn id_field(obj: &Map<String, Value>, field: &str) -> Result<i64, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ApiError::blank(field)),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid data: {field} must be a non-negative integer, not {n}"
            ))
        }),
        Some(Value::String(s)) => {
            s.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Invalid data: {field} must be an integer, not {s:?}"
                    ))
                })
        }
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid data: {field} must be an integer, not {}",
            kind(other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_bodies_in_both_shapes() {
        let bare = json!([{"accessRoleId": 2, "workspaceId": 1008}]);
        let wrapped = json!({"input": [{"accessRoleId": 2, "workspaceId": 1008}, {"accessRoleId": 2, "workspaceId": 1008}]});
        assert_eq!(role_pairs(&bare, "input").unwrap(), vec![(2, 1008)]);
        assert_eq!(role_pairs(&wrapped, "input").unwrap(), vec![(2, 1008)]);
        assert_eq!(
            role_pairs(&json!({"roles": []}), "input").unwrap_err().code,
            701
        );
        assert_eq!(
            role_pairs(&json!([{"roleId": 2, "workspaceId": 1}]), "input")
                .unwrap_err()
                .code,
            1003
        );
        assert_eq!(
            role_pairs(&json!([{"workspaceId": 1}]), "input")
                .unwrap_err()
                .message,
            "accessRoleId cannot be blank"
        );
        assert_eq!(role_pairs(&json!([]), "input").unwrap_err().code, 701);
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "o'brien+tag@x.example",
            "ü@bücher.example",
            "\"q\"@x.io",
        ] {
            assert!(email("e", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "a@", "@b.co", "a@b", "a b@c.de", "a@b.", "a@.b"] {
            assert!(email("e", bad).is_err(), "{bad}");
        }
    }
}
