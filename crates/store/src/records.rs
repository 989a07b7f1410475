//! The records kept in Roster's state.

use roster_domain::access::RoleAssignment;
use time::OffsetDateTime;

/// Column lists as macros, so `concat!` can build static SQL from them.
macro_rules! invite_columns {
    () => {
        "app, instance, userid, email, first_name, last_name, api_only, roles_json, invited_at, invited_by, status, status_at"
    };
}
pub(crate) use invite_columns;
macro_rules! tombstone_columns {
    () => {
        "id, app, instance, userid, email, first_name, last_name, api_only, roles_json, account_json, deleted_at, deleted_by, reason, status, restored_at"
    };
}
pub(crate) use tombstone_columns;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Where an invitation Roster sent stands, as far as Roster last saw. `Unconfirmed`:
    /// every attempt failed after reaching Marketo (604 and the like), so the email may have
    /// gone out; the next run asks `invite.json` and settles it as `Pending` or `NotSent`.
    InviteStatus {
        Pending => "pending",
        Unconfirmed => "unconfirmed",
        NotSent => "not_sent",
        Accepted => "accepted",
        Expired => "expired",
        Deleted => "deleted",
    }
}

string_enum! {
    /// How far an offboarding got. A tombstone is written as `Deleting` before the first
    /// change, so a crash mid-way leaves a record that says so.
    TombstoneStatus {
        Deleting => "deleting",
        Deleted => "deleted",
        Failed => "failed",
    }
}

/// An invitation Roster sent (the API has no way to list pending invitations).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingInvite {
    pub app: String,
    pub instance: String,
    pub userid: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub api_only: bool,
    /// The roles asked for: granted again after acceptance if they did not persist.
    pub roles: Vec<RoleAssignment>,
    pub invited_at: OffsetDateTime,
    pub invited_by: String,
    pub status: InviteStatus,
    pub status_at: OffsetDateTime,
}

/// What is saved before an account is removed.
#[derive(Debug, Clone)]
pub struct NewTombstone {
    pub app: String,
    pub instance: String,
    pub userid: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub api_only: bool,
    pub roles: Vec<RoleAssignment>,
    /// The account exactly as the API returned it.
    pub account: serde_json::Value,
    pub deleted_at: OffsetDateTime,
    pub deleted_by: String,
    pub reason: Option<String>,
    pub status: TombstoneStatus,
}

#[derive(Debug, Clone)]
pub struct Tombstone {
    pub id: i64,
    pub app: String,
    pub instance: String,
    pub userid: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub api_only: bool,
    pub roles: Vec<RoleAssignment>,
    pub account: serde_json::Value,
    pub deleted_at: OffsetDateTime,
    pub deleted_by: String,
    pub reason: Option<String>,
    pub status: TombstoneStatus,
    pub restored_at: Option<OffsetDateTime>,
}
