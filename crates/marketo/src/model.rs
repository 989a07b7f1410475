//! The API's records, typed. Field names follow the API (camelCase); dates are parsed
//! tolerantly, whichever of Marketo's shapes they come in.

use roster_domain::access::RoleAssignment;
use roster_domain::marketo_time;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => marketo_time::parse(text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Records are serialised for people and programs reading Roster's output, so dates are
/// RFC 3339 UTC; Marketo's own `...t+0000` shapes stay on the wire.
fn ser_time<S: Serializer>(at: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => {
            let text = at
                .to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .map_err(serde::ser::Error::custom)?;
            s.serialize_str(&text)
        }
        None => s.serialize_none(),
    }
}

/// A user as `allusers.json` lists it (accepted users only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub userid: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email_address: String,
    pub id: i64,
    #[serde(default)]
    pub api_only: bool,
}

/// One role/workspace pair as the role endpoints return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolePair {
    pub access_role_id: i64,
    #[serde(default)]
    pub access_role_name: String,
    pub workspace_id: i64,
    #[serde(default)]
    pub workspace_name: String,
}

impl From<RolePair> for RoleAssignment {
    fn from(p: RolePair) -> Self {
        RoleAssignment {
            workspace_id: p.workspace_id,
            workspace_name: p.workspace_name,
            role_id: p.access_role_id,
            role_name: p.access_role_name,
        }
    }
}

/// An accepted user, as `user.json` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub userid: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email_address: String,
    pub id: i64,
    #[serde(default)]
    pub api_only: bool,
    #[serde(default)]
    pub is_locked: bool,
    #[serde(default, deserialize_with = "de_time", serialize_with = "ser_time")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "de_time", serialize_with = "ser_time")]
    pub last_login_at: Option<OffsetDateTime>,
    #[serde(skip)]
    pub roles: Vec<RoleAssignment>,
    /// The record exactly as the API returned it (kept in tombstones).
    #[serde(skip)]
    pub raw: serde_json::Value,
}

/// A pending invitation, as `invite.json` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingInvitation {
    pub userid: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email_address: String,
    pub id: i64,
    /// `pending` or `expired`.
    pub status: String,
    #[serde(default, deserialize_with = "de_time", serialize_with = "ser_time")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "de_time", serialize_with = "ser_time")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl PendingInvitation {
    pub fn is_expired(&self) -> bool {
        self.status.eq_ignore_ascii_case("expired")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub only_all_zones: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// What `invite.json` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Defaults to the email address.
    pub userid: Option<String>,
    pub roles: Vec<RoleAssignment>,
    pub api_only: bool,
    pub expires_at: Option<OffsetDateTime>,
    pub reason: Option<String>,
}

/// A partial update: only the fields given are sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<OffsetDateTime>>,
}

impl UserUpdate {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_in_marketo_shapes_and_written_as_rfc3339() {
        let wire = serde_json::json!({
            "userid": "ada@acme.example",
            "id": 1,
            "expiresAt": "2027-03-31T00:00:00.000t+0000",
            "lastLoginAt": "2026-11-29T18:33:00.062t+0000",
        });
        let user: User = serde_json::from_value(wire).unwrap();
        let out = serde_json::to_value(&user).unwrap();
        assert_eq!(out["expiresAt"], "2027-03-31T00:00:00Z");
        assert_eq!(out["lastLoginAt"], "2026-11-29T18:33:00.062Z");
        // And what Roster writes reads back the same.
        let again: User = serde_json::from_value(out).unwrap();
        assert_eq!(again.last_login_at, user.last_login_at);
    }
}
