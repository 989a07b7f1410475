//! API tokens: random, shown once, stored as their SHA-256 (they carry 244 random bits,
//! so a fast hash is enough: there is nothing to brute-force), each with a role.

use serde::Serialize;

/// What a token may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// And ask for a reconcile.
    Operator,
    /// And approve or reject plans.
    Approver,
    /// Everything.
    Admin,
}

impl Role {
    pub const NAMES: &'static [&'static str] = &["viewer", "operator", "approver", "admin"];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "approver" => Role::Approver,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// A new token's text: `roster_` and 61 hex digits of randomness from the OS.
pub fn generate() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("roster_{a}{b}")
}

/// The token of an `Authorization: Bearer TOKEN` header (the API's and SCIM's alike).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

pub fn hash(token: &str) -> String {
    roster_domain::sha256::hex(token.trim().as_bytes())
}

/// The identity a service token acts as: its name, without the mark a rotation leaves on
/// the old token while it still works (`ci#rotated-…` is `ci`), so four-eyes sees one
/// service account through either. Names cannot contain `#`, so none is cut by mistake.
pub fn identity(name: &str) -> &str {
    name.split_once('#').map_or(name, |(n, _)| n)
}

/// Token names appear in the audit log and in `requested_by`: keep them plain.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a token name: use 1 to 64 letters, digits, '-', '_', '.' or '@'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with("roster_") && a.len() == 7 + 64);
        assert_eq!(hash(&a), hash(&format!(" {a}\n")));
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[7..]));
        assert!(Role::Approver > Role::Operator && Role::Admin > Role::Approver);
        assert!(check_name("okta-sync").is_ok() && check_name("a b").is_err());
    }
}
