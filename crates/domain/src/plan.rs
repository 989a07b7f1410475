//! The planner: from a roster and a live snapshot to the ordered steps that make the apps
//! match the roster, each with its reason. Pure: the CLI reads the snapshot and runs the
//! steps; `simulate` predicts the state after them, which the property tests and `apply`'s
//! drift check rely on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time};

use crate::desired::{AdobeLeaver, App, Person, RoleRef, Roster, Unlisted};
use crate::inventory::AccountKind;
use crate::live::{
    ImsLive, ImsUser, Live, MagentoAdmin, MagentoCustomer, MagentoLive, MarketoLive, MarketoUser,
    PendingInvite, admin_key, adobe_key, customer_key, digest, ims_key, marketo_key,
};
use crate::safety::{self, protected_admin, protected_customer, protected_user};

mod adobe;
mod magento;
mod marketo;

/// How long Marketo keeps an invitation open.
pub const INVITE_LIFETIME: Duration = Duration::days(7);
/// Invitations closer than this to expiring are reported (and re-sent when asked).
pub const INVITE_WARNING: Duration = Duration::days(7);

#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub now: OffsetDateTime,
    /// Re-send invitations that expired or expire within a week.
    pub resend_invites: bool,
}

/// The order steps run in: creations first, deletions last, so a mover never passes
/// through a state with less access than either end, and nothing is deleted before every
/// other step has had its chance to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Invite,
    Update,
    Grant,
    Revoke,
    Expiry,
    DeleteInvite,
    Delete,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Invite => "invite",
            Stage::Update => "update",
            Stage::Grant => "grant",
            Stage::Revoke => "revoke",
            Stage::Expiry => "expiry",
            Stage::DeleteInvite => "delete invite",
            Stage::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    MarketoInvite {
        email: String,
        first_name: String,
        last_name: String,
        roles: Vec<RoleRef>,
        #[serde(with = "time::serde::rfc3339::option", default)]
        expires_at: Option<OffsetDateTime>,
    },
    /// Withdraw an expired (or expiring) invitation and send a new one.
    MarketoResendInvite {
        userid: String,
        email: String,
        first_name: String,
        last_name: String,
        roles: Vec<RoleRef>,
        #[serde(with = "time::serde::rfc3339::option", default)]
        expires_at: Option<OffsetDateTime>,
    },
    MarketoUpdate {
        userid: String,
        first_name: String,
        last_name: String,
    },
    MarketoGrant {
        userid: String,
        roles: Vec<RoleRef>,
    },
    MarketoRevoke {
        userid: String,
        roles: Vec<RoleRef>,
    },
    MarketoSetExpiry {
        userid: String,
        #[serde(with = "time::serde::rfc3339::option", default)]
        expires_at: Option<OffsetDateTime>,
    },
    MarketoDeleteInvite {
        userid: String,
    },
    MarketoDelete {
        userid: String,
    },
    /// On a subscription on Adobe Identity: give a person the subscription's product
    /// profile in the Adobe Admin Console, creating their Adobe account if there is none.
    /// Marketo adds them at its next sync, with `Standard User` in `Default`; the roster's
    /// roles are granted by the plan after that.
    AdobeAddProfile {
        email: String,
        first_name: String,
        last_name: String,
        identity_type: String,
        #[serde(default)]
        country: Option<String>,
        profiles: Vec<String>,
    },
    /// On a subscription on Adobe Identity: take the subscription's product profiles away
    /// in the Admin Console; Marketo removes the user at its next sync.
    AdobeRemoveProfile {
        email: String,
        profiles: Vec<String>,
        /// Then, per `policies.marketo.adobe_leaver`, out of the organization too.
        #[serde(default, skip_serializing_if = "AdobeLeaver::is_keep")]
        leave: AdobeLeaver,
    },
    /// The Adobe app: give a person product profiles and user groups, creating their
    /// Adobe account first if the organization has none.
    AdobeGrant {
        email: String,
        first_name: String,
        last_name: String,
        identity_type: String,
        #[serde(default)]
        country: Option<String>,
        /// Product profiles and user groups (UMAPI adds both the same way).
        names: Vec<String>,
    },
    /// The Adobe app: take product profiles and user groups away; the account stays.
    AdobeRevoke {
        email: String,
        names: Vec<String>,
    },
    /// The Adobe app: a leaver loses every managed profile and group, then their account
    /// as `leave` says.
    AdobeOffboard {
        email: String,
        names: Vec<String>,
        leave: AdobeLeaver,
    },
    MagentoCreateCustomer {
        email: String,
        first_name: String,
        last_name: String,
        group_id: i64,
        group: String,
        website_id: i64,
    },
    MagentoUpdateCustomer {
        id: i64,
        email: String,
        first_name: String,
        last_name: String,
        group_id: i64,
        group: String,
    },
    MagentoDeleteCustomer {
        id: i64,
        email: String,
    },
    MagentoCreateAdmin {
        username: String,
        email: String,
        first_name: String,
        last_name: String,
        role_id: i64,
        role: String,
    },
    MagentoUpdateAdmin {
        id: i64,
        username: String,
        first_name: String,
        last_name: String,
        role_id: Option<i64>,
        role: String,
        is_active: bool,
    },
    MagentoDeleteAdmin {
        id: i64,
        username: String,
    },
}

impl Action {
    pub fn app(&self) -> App {
        match self {
            Action::MarketoInvite { .. }
            | Action::MarketoResendInvite { .. }
            | Action::MarketoUpdate { .. }
            | Action::MarketoGrant { .. }
            | Action::MarketoRevoke { .. }
            | Action::MarketoSetExpiry { .. }
            | Action::MarketoDeleteInvite { .. }
            | Action::MarketoDelete { .. }
            | Action::AdobeAddProfile { .. }
            | Action::AdobeRemoveProfile { .. } => App::Marketo,
            Action::AdobeGrant { .. }
            | Action::AdobeRevoke { .. }
            | Action::AdobeOffboard { .. } => App::Adobe,
            _ => App::Magento,
        }
    }

    pub fn stage(&self) -> Stage {
        match self {
            Action::MarketoInvite { .. }
            | Action::MarketoResendInvite { .. }
            | Action::AdobeAddProfile { .. }
            | Action::MagentoCreateCustomer { .. }
            | Action::MagentoCreateAdmin { .. } => Stage::Invite,
            Action::MarketoUpdate { .. }
            | Action::MagentoUpdateCustomer { .. }
            | Action::MagentoUpdateAdmin { .. } => Stage::Update,
            Action::MarketoGrant { .. } | Action::AdobeGrant { .. } => Stage::Grant,
            Action::MarketoRevoke { .. } | Action::AdobeRevoke { .. } => Stage::Revoke,
            Action::MarketoSetExpiry { .. } => Stage::Expiry,
            Action::MarketoDeleteInvite { .. } => Stage::DeleteInvite,
            Action::MarketoDelete { .. }
            | Action::AdobeRemoveProfile { .. }
            | Action::AdobeOffboard { .. }
            | Action::MagentoDeleteCustomer { .. }
            | Action::MagentoDeleteAdmin { .. } => Stage::Delete,
        }
    }

    /// The account this action changes (see `live::Live::accounts`).
    pub fn account_key(&self) -> String {
        match self {
            Action::MarketoInvite { email, .. } => marketo_key(email),
            Action::MarketoResendInvite { userid, .. }
            | Action::MarketoUpdate { userid, .. }
            | Action::MarketoGrant { userid, .. }
            | Action::MarketoRevoke { userid, .. }
            | Action::MarketoSetExpiry { userid, .. }
            | Action::MarketoDeleteInvite { userid }
            | Action::MarketoDelete { userid } => marketo_key(userid),
            Action::AdobeAddProfile { email, .. } | Action::AdobeRemoveProfile { email, .. } => {
                ims_key(email)
            }
            Action::AdobeGrant { email, .. }
            | Action::AdobeRevoke { email, .. }
            | Action::AdobeOffboard { email, .. } => adobe_key(email),
            Action::MagentoCreateCustomer { email, .. }
            | Action::MagentoUpdateCustomer { email, .. }
            | Action::MagentoDeleteCustomer { email, .. } => customer_key(email),
            Action::MagentoCreateAdmin { username, .. }
            | Action::MagentoUpdateAdmin { username, .. }
            | Action::MagentoDeleteAdmin { username, .. } => admin_key(username),
        }
    }

    /// One line for people: what will happen.
    pub fn describe(&self) -> String {
        let list = |roles: &[RoleRef]| {
            roles
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let when =
            |t: &Option<OffsetDateTime>| t.map_or("never".to_string(), |t| t.date().to_string());
        match self {
            Action::MarketoInvite {
                email,
                roles,
                expires_at,
                ..
            } => format!(
                "invite {email} to Marketo with {}{}",
                list(roles),
                expires_at.map_or(String::new(), |t| format!(", login expires {}", t.date()))
            ),
            Action::MarketoResendInvite { userid, .. } => {
                format!("re-send the Marketo invitation of {userid}")
            }
            Action::MarketoUpdate {
                userid,
                first_name,
                last_name,
            } => format!("rename Marketo user {userid} to {first_name} {last_name}"),
            Action::MarketoGrant { userid, roles } => {
                format!("grant {} to Marketo user {userid}", list(roles))
            }
            Action::MarketoRevoke { userid, roles } => {
                format!("revoke {} from Marketo user {userid}", list(roles))
            }
            Action::MarketoSetExpiry { userid, expires_at } => {
                format!(
                    "set the login expiry of Marketo user {userid} to {}",
                    when(expires_at)
                )
            }
            Action::MarketoDeleteInvite { userid } => {
                format!("withdraw the Marketo invitation of {userid}")
            }
            Action::MarketoDelete { userid } => format!("delete Marketo user {userid}"),
            Action::AdobeAddProfile {
                email,
                identity_type,
                profiles,
                ..
            } => format!(
                "give {email} the Adobe product profile {} (a {identity_type} is created if they have no Adobe account); Marketo adds them at its sync",
                profiles.join(", ")
            ),
            Action::AdobeRemoveProfile {
                email,
                profiles,
                leave,
            } => format!(
                "take the Adobe product profile {} from {email}{}; Marketo removes them at its sync",
                profiles.join(", "),
                match leave {
                    AdobeLeaver::KeepAccount => "",
                    AdobeLeaver::RemoveFromOrg =>
                        " and remove them from the Adobe organization (every Adobe product of theirs there)",
                    AdobeLeaver::DeleteAccount =>
                        " and remove them from the Adobe organization, deleting the account if the organization owns it",
                }
            ),
            Action::AdobeGrant {
                email,
                identity_type,
                names,
                ..
            } => format!(
                "give {email} {} in the Adobe Admin Console (a {identity_type} is created if the organization has no account for them)",
                names.join(", ")
            ),
            Action::AdobeRevoke { email, names } => {
                format!(
                    "take {} from {email} in the Adobe Admin Console",
                    names.join(", ")
                )
            }
            Action::AdobeOffboard {
                email,
                names,
                leave,
            } => format!(
                "take {} from {email} in the Adobe Admin Console{}",
                names.join(", "),
                adobe::leave_words(*leave)
            ),
            Action::MagentoCreateCustomer { email, group, .. } => {
                format!("create Magento customer {email} in group {group}")
            }
            Action::MagentoUpdateCustomer {
                email,
                first_name,
                last_name,
                group,
                ..
            } => {
                format!("update Magento customer {email}: {first_name} {last_name}, group {group}")
            }
            Action::MagentoDeleteCustomer { id, email } => {
                format!("delete Magento customer {email} (#{id})")
            }
            Action::MagentoCreateAdmin { username, role, .. } => {
                format!("create Magento admin user {username} with role {role}")
            }
            Action::MagentoUpdateAdmin {
                username,
                role,
                is_active,
                ..
            } => format!(
                "update Magento admin user {username}: role {role}, {}",
                if *is_active { "active" } else { "inactive" }
            ),
            Action::MagentoDeleteAdmin { id, username } => {
                format!("delete Magento admin user {username} (#{id})")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Position in the plan, from 1.
    pub index: usize,
    /// Unique to this step of this plan: what the journal records it under.
    pub key: String,
    pub app: App,
    pub stage: Stage,
    /// Takes access or data away: needs approval and counts against the cap.
    pub destructive: bool,
    pub reason: String,
    pub action: Action,
}

/// Something the plan does not change but a person should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub app: App,
    pub account: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The roster file it was computed for.
    pub roster: String,
    /// The roster's content digest (`Roster::digest`): `apply` reloads the roster and
    /// refuses the plan if it changed, because its policies decide what is safe.
    #[serde(default)]
    pub roster_digest: String,
    /// Who made it (`roster plan --out`'s actor): when the roster's policy lists approvers,
    /// someone other than its author must sign it (see `Policies::approvers`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// A digest of the live state it was computed from (`Live::fingerprint`).
    pub fingerprint: String,
    pub live: Live,
    pub steps: Vec<Step>,
    pub notes: Vec<Note>,
    /// Why `apply` will refuse this plan (a cap exceeded), if it will.
    pub blocked: Vec<String>,
    /// SHA-256 of everything above (`Plan::content_digest`). An approval is bound to it,
    /// and `apply` refuses a plan file whose content no longer matches it.
    #[serde(default)]
    pub digest: String,
    /// The state's signing key over `digest` (`ed25519:KEY-ID:BASE64`): the digest alone
    /// can be recomputed by whoever edits the file, the signature cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Set when the plan is about some people only (see [`Targeted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targeted: Option<Targeted>,
}

/// What a targeted plan is about and what it left alone: a SCIM change, a roster edit or
/// an API request about some people plans for them only, and reads only what they need
/// (on Marketo: the user list, and the roles of these people's users alone). The service's
/// full reconciles keep verifying everyone on their own schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targeted {
    /// The people it is about, lower-cased emails.
    pub people: Vec<String>,
    /// The other accounts: listed, nothing planned for them.
    pub left_alone: usize,
    /// Of those, how many were listed without their access being read (Marketo roles).
    pub unread: usize,
}

impl Targeted {
    /// One line for a plan's reader.
    pub fn describe(&self) -> String {
        let shown: Vec<&str> = self.people.iter().take(5).map(String::as_str).collect();
        format!(
            "targeted at {} {} ({}{}): {} other account{} left alone{}; a full reconcile verifies everyone",
            self.people.len(),
            if self.people.len() == 1 {
                "person"
            } else {
                "people"
            },
            shown.join(", "),
            if self.people.len() > shown.len() {
                ", ..."
            } else {
                ""
            },
            self.left_alone,
            if self.left_alone == 1 { "" } else { "s" },
            if self.unread > 0 {
                format!(
                    " ({} of them listed without reading their roles)",
                    self.unread
                )
            } else {
                String::new()
            }
        )
    }
}

/// The parts of a plan its digest covers: all of it but the digest.
#[derive(Serialize)]
struct Content<'a> {
    id: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    roster: &'a str,
    roster_digest: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    created_by: &'a str,
    fingerprint: &'a str,
    live: &'a Live,
    steps: &'a [Step],
    notes: &'a [Note],
    blocked: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    targeted: &'a Option<Targeted>,
}

impl Plan {
    /// SHA-256 (hex) of the plan's content: id, time, roster and its digest, snapshot,
    /// steps, notes and caps. Any edit changes it.
    pub fn content_digest(&self) -> String {
        let content = Content {
            id: &self.id,
            created_at: self.created_at,
            roster: &self.roster,
            roster_digest: &self.roster_digest,
            created_by: &self.created_by,
            fingerprint: &self.fingerprint,
            live: &self.live,
            steps: &self.steps,
            notes: &self.notes,
            blocked: &self.blocked,
            targeted: &self.targeted,
        };
        let mut hasher = crate::sha256::Writer::default();
        serde_json::to_writer(&mut hasher, &content).expect("a plan serialises");
        hasher.hex()
    }

    pub fn destructive(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.destructive)
    }

    /// The part of this plan that needs nobody's approval: its non-destructive steps, as a
    /// plan of their own (id `ID-safe`). What a service applies unattended under
    /// `auto_apply = "safe"`.
    pub fn without_destructive(&self) -> Plan {
        let mut plan = self.subset("safe", |s| !s.destructive);
        plan.blocked.clear();
        plan.digest = plan.content_digest();
        plan
    }

    /// The part that waits for an approval: its destructive steps (id `ID-held`), with the
    /// caps they exceed, if any.
    pub fn only_destructive(&self) -> Plan {
        self.subset("held", |s| s.destructive)
    }

    /// The steps `keep` keeps, numbered again, under a new id and a fresh digest.
    fn subset(&self, suffix: &str, keep: impl Fn(&Step) -> bool) -> Plan {
        let id = format!("{}-{suffix}", self.id);
        let steps = self
            .steps
            .iter()
            .filter(|s| keep(s))
            .enumerate()
            .map(|(i, s)| {
                let action_digest = digest(
                    serde_json::to_string(&s.action)
                        .unwrap_or_default()
                        .as_bytes(),
                );
                Step {
                    index: i + 1,
                    key: format!("{id}/{}/{}", i + 1, &action_digest[..12]),
                    ..s.clone()
                }
            })
            .collect();
        let mut plan = Plan {
            id,
            steps,
            digest: String::new(),
            signature: None,
            ..self.clone()
        };
        plan.digest = plan.content_digest();
        plan
    }
}

impl fmt::Display for Plan {
    /// Text from the apps and the roster is sanitised: a name cannot forge a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::sanitize;
        if self.steps.is_empty() {
            writeln!(
                f,
                "Nothing to do: the apps match {}.",
                sanitize(&self.roster)
            )?;
        }
        for s in &self.steps {
            writeln!(
                f,
                "{:>4}. [{}] {:<13} {}{}",
                s.index,
                s.app,
                s.stage.label(),
                sanitize(&s.action.describe()),
                if s.destructive { "  (destructive)" } else { "" }
            )?;
            if let Some(change) = self.before_after(&s.action) {
                writeln!(f, "        {}", sanitize(&change))?;
            }
            writeln!(f, "        because {}", sanitize(&s.reason))?;
        }
        for n in &self.notes {
            writeln!(
                f,
                "note [{}] {}: {}",
                n.app,
                sanitize(&n.account),
                sanitize(&n.message)
            )?;
        }
        for b in &self.blocked {
            writeln!(f, "BLOCKED: {}", sanitize(b))?;
        }
        if let Some(t) = &self.targeted {
            writeln!(
                f,
                "{}",
                sanitize(&format!("This plan is {}.", t.describe()))
            )?;
        }
        Ok(())
    }
}

impl Plan {
    /// What an update changes, as `field: before -> after` against the saved snapshot.
    pub fn before_after(&self, action: &Action) -> Option<String> {
        let mut changes: Vec<String> = Vec::new();
        let mut field = |name: &str, before: String, after: String| {
            if before != after {
                changes.push(format!("{name}: {before} -> {after}"));
            }
        };
        let when = |t: Option<OffsetDateTime>| {
            t.and_then(|t| {
                t.to_offset(time::UtcOffset::UTC)
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| "never".into())
        };
        match action {
            Action::MarketoUpdate {
                userid,
                first_name,
                last_name,
            } => {
                let u = self
                    .live
                    .marketo
                    .as_ref()?
                    .users
                    .iter()
                    .find(|u| u.userid.eq_ignore_ascii_case(userid))?;
                field(
                    "name",
                    format!("{} {}", u.first_name, u.last_name),
                    format!("{first_name} {last_name}"),
                );
            }
            Action::MarketoSetExpiry { userid, expires_at } => {
                let u = self
                    .live
                    .marketo
                    .as_ref()?
                    .users
                    .iter()
                    .find(|u| u.userid.eq_ignore_ascii_case(userid))?;
                field("login expiry", when(u.expires_at), when(*expires_at));
            }
            Action::MagentoUpdateCustomer {
                id,
                first_name,
                last_name,
                group,
                ..
            } => {
                let m = self.live.magento.as_ref()?;
                let c = m.customers.iter().find(|c| c.id == *id)?;
                field(
                    "name",
                    format!("{} {}", c.first_name, c.last_name),
                    format!("{first_name} {last_name}"),
                );
                field("group", m.group_name(c.group_id), group.clone());
            }
            Action::MagentoUpdateAdmin {
                id,
                first_name,
                last_name,
                role,
                is_active,
                ..
            } => {
                let m = self.live.magento.as_ref()?;
                let a = m.admins.as_ref()?.iter().find(|a| a.id == *id)?;
                field(
                    "name",
                    format!("{} {}", a.first_name, a.last_name),
                    format!("{first_name} {last_name}"),
                );
                field("role", m.role_name(a.role_id), role.clone());
                let state = |on: bool| if on { "active" } else { "inactive" }.to_string();
                field("state", state(a.is_active), state(*is_active));
            }
            _ => return None,
        }
        (!changes.is_empty()).then(|| changes.join("; "))
    }
}

/// A contractor's login lasts until the end of their last day (UTC).
pub fn expiry_for(end_date: Option<Date>) -> Option<OffsetDateTime> {
    end_date.map(|d| {
        d.with_time(Time::from_hms(23, 59, 59).expect("valid time"))
            .assume_utc()
    })
}

/// The account a plan's note about what Magento's "disable" does is filed under.
const DISABLE_NOTE_KEY: &str = "customers moved by unlisted=disable";

struct Planner<'a> {
    roster: &'a Roster,
    options: PlanOptions,
    steps: Vec<(Action, String)>,
    notes: Vec<Note>,
}

impl<'a> Planner<'a> {
    fn step(&mut self, action: Action, reason: impl Into<String>) {
        self.steps.push((action, reason.into()));
    }

    fn note(&mut self, app: App, account: &str, message: impl Into<String>) {
        self.notes.push(Note {
            app,
            account: account.to_string(),
            message: message.into(),
        });
    }

    /// The reason of a review's revocation of `role` on `email`'s account of `kind`, in
    /// `scope` when the account has one of several (a customer's website): a revocation
    /// on one website never takes an account on another.
    fn revoked(
        &self,
        email: &str,
        kind: AccountKind,
        role: &str,
        scope: Option<&str>,
    ) -> Option<&'a str> {
        let roster: &'a Roster = self.roster;
        roster
            .revoked(email)
            .find(|r| {
                r.account_kind == kind
                    && r.role.eq_ignore_ascii_case(role)
                    && scope.is_none_or(|s| r.scope.eq_ignore_ascii_case(s))
            })
            .map(|r| r.reason.as_str())
    }

    fn today(&self) -> Date {
        self.options.now.date()
    }

    /// Whether an exception (an approved restore) keeps this account for now: then a note
    /// says until when, instead of a step that would take it away again.
    fn kept(&mut self, app: App, email: &str, account: &str) -> bool {
        let Some(e) = self.roster.exception(app, email, self.options.now) else {
            return false;
        };
        let until = e
            .until
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let message = format!(
            "kept until {until} ({}); after that its removal is planned again, as a destructive step",
            e.reason
        );
        self.note(app, account, message);
        true
    }
}

fn leaver_reason(person: &Person) -> String {
    match person.end_date {
        Some(end) if person.status == crate::desired::Status::Active => {
            format!("{} left on {end} (line {})", person.email, person.line)
        }
        _ => format!("{} is a leaver (line {})", person.email, person.line),
    }
}

/// Computes the plan. The roster must be resolved against `live.names()` first, so names
/// are spelled as the apps spell them.
pub fn plan(roster: &Roster, live: &Live, options: PlanOptions) -> Plan {
    let mut planner = Planner {
        roster,
        options,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    // A targeted plan looks at its people's accounts only; caps and what is destructive
    // are still judged against everything read.
    let scoped = roster
        .target
        .as_ref()
        .map(|_| live.scoped(|e| roster.targets(e)));
    let view = scoped.as_ref().unwrap_or(live);
    if let Some(m) = &view.marketo {
        planner.marketo(m);
    }
    if let Some(m) = &view.magento {
        planner.magento(m);
    }
    if let Some(a) = &view.adobe {
        planner.adobe(a);
    }
    let targeted = roster.target.as_ref().map(|people| {
        let all = live.accounts().len();
        let unread = live.marketo.as_ref().map_or(0, |m| m.unread.len());
        Targeted {
            people: people.iter().cloned().collect(),
            left_alone: all.saturating_sub(view.accounts().len()) + unread,
            unread,
        }
    });
    let Planner {
        mut steps, notes, ..
    } = planner;
    // Stable: within a stage, the roster's order (then the live order) is kept.
    steps.sort_by_key(|(action, _)| (action.stage(), action.app()));
    let fingerprint = live.fingerprint();
    let destructive: Vec<bool> = steps
        .iter()
        .map(|(a, _)| safety::destructive(a, live, &roster.policies, options.now))
        .collect();
    let mut blocked = Vec::new();
    for app in App::ALL {
        let count = steps
            .iter()
            .zip(&destructive)
            .filter(|((a, _), d)| **d && a.app() == app)
            .count();
        blocked.extend(safety::cap_exceeded(&roster.policies, live, app, count));
    }
    let body = serde_json::to_string(&steps).unwrap_or_default();
    let id = format!(
        "plan-{}",
        &digest(format!("{fingerprint}{body}{}", options.now.unix_timestamp_nanos()).as_bytes())
            [..16]
    );
    let steps = steps
        .into_iter()
        .zip(destructive)
        .enumerate()
        .map(|(i, ((action, reason), destructive))| {
            let action_digest = digest(
                serde_json::to_string(&action)
                    .unwrap_or_default()
                    .as_bytes(),
            );
            Step {
                index: i + 1,
                key: format!("{id}/{}/{}", i + 1, &action_digest[..12]),
                app: action.app(),
                stage: action.stage(),
                destructive,
                reason,
                action,
            }
        })
        .collect();
    let mut plan = Plan {
        id,
        created_at: options.now,
        roster: roster.source.clone(),
        roster_digest: roster.digest.clone(),
        created_by: String::new(),
        fingerprint,
        live: live.clone(),
        steps,
        notes,
        blocked,
        digest: String::new(),
        signature: None,
        targeted,
    };
    plan.digest = plan.content_digest();
    plan
}

/// Each step's account as the plan found it and as the whole plan leaves it (`None`: no
/// such account), in the words of `Live::accounts`: what a reviewer compares.
pub fn before_after(plan: &Plan) -> Vec<(Option<String>, Option<String>)> {
    let before = plan.live.accounts();
    let after = simulate(
        &plan.live,
        plan.steps.iter().map(|s| &s.action),
        plan.created_at,
    )
    .accounts();
    plan.steps
        .iter()
        .map(|s| {
            let key = s.action.account_key();
            (before.get(&key).cloned(), after.get(&key).cloned())
        })
        .collect()
}

/// The id of an account `simulate` created: the app assigns ids, so it is not known until
/// the app is read again.
pub const UNKNOWN_ID: i64 = 0;

/// The state the apps are in after `actions` run on `live`, as far as planning can tell
/// (ids the apps assign are [`UNKNOWN_ID`]).
pub fn simulate<'a>(
    live: &Live,
    actions: impl IntoIterator<Item = &'a Action>,
    now: OffsetDateTime,
) -> Live {
    let mut live = live.clone();
    for action in actions {
        apply_one(&mut live, action, now);
    }
    live
}

/// What one step leaves in the snapshot, as its app's planner predicts it.
fn apply_one(live: &mut Live, action: &Action, now: OffsetDateTime) {
    match action.app() {
        App::Marketo => marketo::simulate(live, action, now),
        App::Magento => magento::simulate(live, action),
        App::Adobe => adobe::simulate(live, action),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use time::macros::{date, datetime};

    use super::*;
    use crate::desired::{Access, Cap, MagentoAccess, Person, Policies, Policy, Status};
    use crate::live::Named;

    const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);
    const EMAILS: [&str; 8] = [
        "ada@acme.example",
        "bob@acme.example",
        "cy@acme.example",
        "di@acme.example",
        "ed@acme.example",
        "fay@acme.example",
        "gus@other.example",
        "hal@other.example",
    ];
    const ROLES: [&str; 2] = ["Standard User", "Admin"];
    const WORKSPACES: [&str; 2] = ["Default", "Europe"];
    const GROUPS: [&str; 3] = ["General", "Wholesale", "Retailer"];
    const ADMIN_ROLES: [&str; 2] = ["Administrators", "Support"];

    fn role_set() -> impl Strategy<Value = BTreeSet<RoleRef>> {
        proptest::collection::btree_set((0..2usize, 0..2usize), 0..3).prop_map(|s| {
            s.into_iter()
                .map(|(r, w)| RoleRef::new(ROLES[r], WORKSPACES[w]))
                .collect()
        })
    }

    fn named(list: &[&str]) -> Vec<Named> {
        list.iter()
            .enumerate()
            .map(|(i, n)| Named {
                id: i as i64 + 1,
                name: n.to_string(),
            })
            .collect()
    }

    prop_compose! {
        fn person(email: &'static str)(
            status in prop_oneof![4 => Just(Status::Active), 1 => Just(Status::Leaver)],
            end in prop_oneof![3 => Just(None), 1 => Just(Some(date!(2026-11-01))), 1 => Just(Some(date!(2027-03-31)))],
            roles in role_set(),
            group in proptest::option::of(0..3usize),
            admin in proptest::option::of(0..2usize),
            renamed in any::<bool>(),
        ) -> Person {
            Person {
                email: email.to_string(),
                first_name: if renamed { "New".into() } else { "First".into() },
                last_name: "Last".into(),
                status,
                end_date: end,
                department: None,
                title: None,
                access: Access {
                    marketo: roles.into_iter().collect(),
                    magento: MagentoAccess {
                        group: group.map(|g| GROUPS[g].to_string()),
                        admin_role: admin.map(|a| ADMIN_ROLES[a].to_string()),
                    },
                    ..Access::default()
                },
                manager: None,
                line: 1,
            }
        }
    }

    fn unlisted() -> impl Strategy<Value = Unlisted> {
        prop_oneof![
            Just(Unlisted::Report),
            Just(Unlisted::Disable),
            Just(Unlisted::Delete)
        ]
    }

    prop_compose! {
        fn policy()(
            unlisted in unlisted(),
            protected in proptest::collection::btree_set(0..8usize, 0..3),
            scoped in any::<bool>(),
        ) -> Policy {
            Policy {
                managed_domains: if scoped { vec!["acme.example".into()] } else { vec![] },
                protected: protected.into_iter().map(|i| EMAILS[i].to_string()).collect(),
                unlisted,
                max_destructive: Cap::Count(1000),
                disabled_group: Some("General".into()),
                ..Policy::default()
            }
        }
    }

    prop_compose! {
        fn roster()(
            listed in proptest::collection::btree_set(0..8usize, 0..8),
            marketo in policy(),
            magento in policy(),
            persons in (person(EMAILS[0]), person(EMAILS[1]), person(EMAILS[2]), person(EMAILS[3]), person(EMAILS[4]), person(EMAILS[5]), person(EMAILS[6]), person(EMAILS[7])),
        ) -> Roster {
            let all = [persons.0, persons.1, persons.2, persons.3, persons.4, persons.5, persons.6, persons.7];
            Roster {
                source: "roster.yaml".into(),
                digest: String::new(),
                people: all.into_iter().enumerate().filter(|(i, _)| listed.contains(i)).map(|(_, p)| p).collect(),
                rules: vec![],
                policies: Policies {
                    marketo,
                    magento,
                    adobe: Default::default(),
                    approvers: Vec::new(),
                },
                exceptions: vec![],
                target: None,
                revocations: Vec::new(),
            }
        }
    }

    prop_compose! {
        fn marketo_user(email: &'static str)(
            roles in role_set(),
            api_only in prop_oneof![5 => Just(false), 1 => Just(true)],
            pending in prop_oneof![4 => Just(None), 1 => Just(Some(PendingInvite { expires_at: Some(NOW + Duration::days(5)) }))],
            expires in prop_oneof![3 => Just(None), 1 => Just(Some(datetime!(2027-03-31 23:59:59 UTC)))],
            renamed in any::<bool>(),
        ) -> MarketoUser {
            MarketoUser {
                userid: email.into(),
                email: email.into(),
                first_name: if renamed { "Old".into() } else { "First".into() },
                last_name: "Last".into(),
                api_only: api_only && pending.is_none(),
                roles,
                expires_at: expires,
                pending,
                facts: Default::default(),
            }
        }
    }

    prop_compose! {
        fn live()(
            users in (marketo_user(EMAILS[0]), marketo_user(EMAILS[1]), marketo_user(EMAILS[2]), marketo_user(EMAILS[3]), marketo_user(EMAILS[4]), marketo_user(EMAILS[5]), marketo_user(EMAILS[6]), marketo_user(EMAILS[7])),
            with_user in proptest::collection::btree_set(0..8usize, 0..8),
            customers in proptest::collection::btree_map(0..8usize, (0..3usize, any::<bool>()), 0..8),
            admins in proptest::collection::btree_map(0..8usize, (0..2usize, any::<bool>()), 0..8),
        ) -> Live {
            let all = [users.0, users.1, users.2, users.3, users.4, users.5, users.6, users.7];
            Live {
                adobe: None,
                marketo: Some(MarketoLive {
                    roles: ROLES.iter().map(ToString::to_string).collect(),
                    workspaces: WORKSPACES.iter().map(ToString::to_string).collect(),
                    users: all.into_iter().enumerate().filter(|(i, _)| with_user.contains(i)).map(|(_, u)| u).collect(),
                    unread: Vec::new(),
                    ims: None,
                }),
                magento: Some(MagentoLive {
                    domains: Vec::new(),
                    unread: 0,
                    groups: named(&GROUPS),
                    websites: named(&["base"]),
                    admin_roles: Some(named(&ADMIN_ROLES)),
                    website: "base".into(),
                    customers: customers.into_iter().map(|(i, (g, renamed))| MagentoCustomer {
                        id: i as i64 + 100,
                        email: EMAILS[i].into(),
                        first_name: if renamed { "Old".into() } else { "First".into() },
                        last_name: "Last".into(),
                        group_id: g as i64 + 1,
                        website_id: 1,
                        facts: Default::default(),
                    }).collect(),
                    admins: Some(admins.into_iter().map(|(i, (r, active))| MagentoAdmin {
                        id: i as i64 + 1,
                        username: EMAILS[i].into(),
                        email: EMAILS[i].into(),
                        first_name: "First".into(),
                        last_name: "Last".into(),
                        role_id: Some(r as i64 + 1),
                        is_active: active,
                        facts: Default::default(),
                    }).collect()),
                }),
            }
        }
    }

    fn options() -> PlanOptions {
        PlanOptions {
            now: NOW,
            resend_invites: false,
        }
    }

    fn protected_keys(roster: &Roster, live: &Live) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let p = &roster.policies;
        for u in &live.marketo.as_ref().unwrap().users {
            if (p.marketo.protect_api_only && u.api_only) || p.marketo.protects([u.email.as_str()])
            {
                keys.insert(marketo_key(&u.userid));
            }
        }
        let m = live.magento.as_ref().unwrap();
        for c in &m.customers {
            if p.magento.protects([c.email.as_str()]) {
                keys.insert(customer_key(&c.email));
            }
        }
        for a in m.admins.iter().flatten() {
            if p.magento.protects([a.email.as_str()]) {
                keys.insert(admin_key(&a.username));
            }
        }
        keys
    }

    /// A review's revocation of a customer's group is for the website it was reviewed on:
    /// the same email and group on another website is not taken with it.
    #[test]
    fn a_customer_revocation_holds_on_its_own_website_only() {
        let customer = MagentoCustomer {
            id: 7,
            email: "ann@acme.example".into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            group_id: 2,
            website_id: 1,
            facts: Default::default(),
        };
        let live = Live {
            adobe: None,
            marketo: None,
            magento: Some(MagentoLive {
                domains: Vec::new(),
                unread: 0,
                groups: named(&GROUPS),
                websites: named(&["base", "wholesale"]),
                admin_roles: None,
                website: "base".into(),
                customers: vec![customer],
                admins: None,
            }),
        };
        let revoked_on = |scope: &str| {
            let mut roster = Roster {
                source: "r.yaml".into(),
                ..Roster::default()
            };
            roster.revocations = vec![crate::review::Revocation {
                app: App::Magento,
                email: "ann@acme.example".into(),
                account_kind: AccountKind::MagentoCustomer,
                role: "wholesale".into(),
                scope: scope.into(),
                review: 3,
                item: 9,
                reason: "review 3 (decided by mia@acme.example)".into(),
            }];
            plan(&roster, &live, options())
        };
        let here = revoked_on("base");
        assert!(
            matches!(&here.steps[..], [s] if matches!(s.action, Action::MagentoDeleteCustomer { id: 7, .. })
                && s.reason.starts_with("review 3")),
            "{here}"
        );
        let elsewhere = revoked_on("wholesale");
        assert!(
            !elsewhere
                .steps
                .iter()
                .any(|s| matches!(s.action, Action::MagentoDeleteCustomer { .. })),
            "{elsewhere}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn a_targeted_plan_is_the_full_plan_of_its_people(roster in roster(), live in live(), target in proptest::collection::btree_set(0..8usize, 0..4)) {
            let full = plan(&roster, &live, options());
            let emails: Vec<String> = target.iter().map(|i| EMAILS[*i].to_string()).collect();
            let mut narrowed = roster.clone();
            narrowed.target(emails.clone());
            let targeted = plan(&narrowed, &live, options());
            let about = |step: &Step| emails.iter().any(|e| step.action.account_key().ends_with(&format!(" {e}")));
            let expected: Vec<&Action> = full.steps.iter().filter(|s| about(s)).map(|s| &s.action).collect();
            let got: Vec<&Action> = targeted.steps.iter().map(|s| &s.action).collect();
            prop_assert_eq!(got, expected, "targeted plan:\n{}", targeted);
            let t = targeted.targeted.as_ref().expect("the plan says it is targeted");
            prop_assert_eq!(&t.people, &emails);
            // The caps judge the same whole: a plan blocked in full is blocked targeted only
            // if its people's steps alone exceed the cap, never because fewer were counted.
            prop_assert_eq!(targeted.fingerprint, full.fingerprint);
        }

        #[test]
        fn applying_the_plan_yields_the_roster_and_spares_protected_accounts(roster in roster(), live in live()) {
            let plan = plan(&roster, &live, options());
            let protected = protected_keys(&roster, &live);
            for step in &plan.steps {
                prop_assert!(!protected.contains(&step.action.account_key()), "step {} touches a protected account", step.action.describe());
            }
            let after = simulate(&live, plan.steps.iter().map(|s| &s.action), NOW);
            let (before_accounts, after_accounts) = (live.accounts(), after.accounts());
            for key in &protected {
                prop_assert_eq!(before_accounts.get(key), after_accounts.get(key));
            }
            // Converged: planning again finds nothing to do.
            let again = super::plan(&roster, &after, options());
            prop_assert!(again.steps.is_empty(), "second plan: {}", again);

            // Every managed person has what the roster says, where their account is Roster's.
            let today = NOW.date();
            let m = after.marketo.as_ref().unwrap();
            let g = after.magento.as_ref().unwrap();
            for person in &roster.people {
                let wanted = roster.wanted(person);
                if roster.policies.marketo.manages(&person.email) && !protected.contains(&marketo_key(&person.email)) {
                    let account = m.users.iter().find(|u| u.email == person.email);
                    if person.is_leaver(today) {
                        prop_assert!(account.is_none(), "leaver {} keeps a Marketo account", person.email);
                    } else if !wanted.marketo.is_empty() {
                        let u = account.expect("an account or an invitation");
                        // A pending invitation cannot be edited: its roles are settled once
                        // it is accepted (the next plan grants or revokes the difference).
                        if u.pending.is_none() {
                            prop_assert_eq!(&u.roles, &wanted.marketo);
                            prop_assert_eq!(u.expires_at, expiry_for(person.end_date));
                        }
                    }
                }
                if roster.policies.magento.manages(&person.email) && !protected.contains(&customer_key(&person.email)) {
                    let customer = g.customers.iter().find(|c| c.email == person.email);
                    match (&wanted.magento_group, person.is_leaver(today)) {
                        (_, true) => prop_assert!(customer.is_none()),
                        (Some(group), false) => prop_assert_eq!(g.group_name(customer.expect("a customer").group_id), group.clone()),
                        (None, false) => {}
                    }
                }
                if roster.policies.magento.manages(&person.email) && !protected.contains(&admin_key(&person.email)) {
                    let admin = g.admins.iter().flatten().find(|a| a.email == person.email);
                    match (&wanted.magento_admin_role, person.is_leaver(today)) {
                        (_, true) => prop_assert!(admin.is_none()),
                        (Some(role), false) => {
                            let a = admin.expect("an admin user");
                            prop_assert_eq!(g.role_name(a.role_id), role.clone());
                            prop_assert!(a.is_active);
                        }
                        (None, false) => {}
                    }
                }
            }
            // Unlisted, managed, unprotected accounts follow the policy.
            if roster.policies.marketo.unlisted == Unlisted::Delete {
                for u in &m.users {
                    let listed = roster.people.iter().any(|p| p.email == u.email && !roster.wanted(p).marketo.is_empty());
                    if roster.policies.marketo.manages(&u.email) && !protected.contains(&marketo_key(&u.userid)) {
                        prop_assert!(listed, "{} should have been deleted", u.email);
                    }
                }
            }
        }

        #[test]
        fn caps_block_plans_that_destroy_too_much(live in live()) {
            let mut roster = Roster { source: "r.yaml".into(), ..Roster::default() };
            roster.policies.marketo.unlisted = Unlisted::Delete;
            roster.policies.marketo.max_destructive = Cap::Count(1);
            let plan = plan(&roster, &live, options());
            let deletions = plan.steps.iter().filter(|s| s.destructive && s.app == App::Marketo).count();
            prop_assert_eq!(deletions > 1, plan.blocked.iter().any(|b| b.starts_with("marketo:")));
        }
    }

    #[test]
    fn steps_come_in_stage_order_with_reasons() {
        let roster = Roster {
            source: "r.yaml".into(),
            digest: String::new(),
            people: vec![Person {
                email: "ada@acme.example".into(),
                first_name: "Ada".into(),
                last_name: "Lovelace".into(),
                status: Status::Active,
                end_date: Some(date!(2027 - 01 - 31)),
                department: None,
                title: None,
                access: Access {
                    marketo: vec![RoleRef::new("Admin", "Default")],
                    magento: MagentoAccess {
                        group: Some("Wholesale".into()),
                        admin_role: None,
                    },
                    ..Access::default()
                },
                manager: None,
                line: 7,
            }],
            rules: vec![],
            exceptions: vec![],
            target: None,
            revocations: Vec::new(),
            policies: Policies {
                marketo: Policy {
                    unlisted: Unlisted::Delete,
                    max_destructive: Cap::Count(5),
                    ..Policy::default()
                },
                ..Policies::default()
            },
        };
        let mut live = Live {
            adobe: None,
            marketo: Some(MarketoLive {
                roles: vec![],
                workspaces: vec![],
                users: vec![MarketoUser {
                    userid: "old@acme.example".into(),
                    email: "old@acme.example".into(),
                    first_name: "O".into(),
                    last_name: "L".into(),
                    api_only: false,
                    roles: BTreeSet::new(),
                    expires_at: None,
                    pending: None,
                    facts: Default::default(),
                }],
                unread: Vec::new(),
                ims: None,
            }),
            magento: None,
        };
        let p = plan(&roster, &live, options());
        let kinds: Vec<(Stage, &str)> = p
            .steps
            .iter()
            .map(|s| (s.stage, s.reason.as_str()))
            .collect();
        assert_eq!(kinds.len(), 2, "{p}");
        assert_eq!(kinds[0].0, Stage::Invite);
        assert!(kinds[0].1.contains("line 7"), "{p}");
        assert_eq!(kinds[1].0, Stage::Delete);
        assert!(p.steps[1].destructive);
        assert!(p.steps[0].key.starts_with(&p.id));
        assert!(p.blocked.is_empty());
        // What a reviewer compares: the invitee had no account, the leaver will have none.
        let changes = before_after(&p);
        assert_eq!(changes[0].0, None);
        assert!(
            changes[0]
                .1
                .as_deref()
                .is_some_and(|a| a.starts_with("ada@acme.example"))
        );
        assert!(
            changes[1]
                .0
                .as_deref()
                .is_some_and(|a| a.starts_with("old@acme.example"))
        );
        assert_eq!(changes[1].1, None);
        // The unattended part: the invitation alone, numbered again, with its own digest.
        let safe = p.without_destructive();
        assert_eq!(safe.steps.len(), 1);
        assert_eq!(safe.steps[0].index, 1);
        assert_eq!(safe.steps[0].stage, Stage::Invite);
        assert!(safe.steps[0].key.starts_with(&safe.id));
        assert_ne!(safe.steps[0].key, p.steps[0].key);
        assert_ne!(safe.id, p.id);
        assert_eq!(safe.digest, safe.content_digest());
        assert_ne!(safe.digest, p.digest);
        // The rest: the deletion alone, numbered from 1.
        let held = p.only_destructive();
        assert_eq!(held.steps.len(), 1);
        assert_eq!(
            (held.steps[0].index, held.steps[0].stage),
            (1, Stage::Delete)
        );
        assert_eq!(held.steps[0].action, p.steps[1].action);
        assert_eq!(held.digest, held.content_digest());
        assert_ne!(held.id, safe.id);
        // The fingerprint follows the state.
        let before = live.fingerprint();
        live.marketo.as_mut().unwrap().users[0].first_name = "Other".into();
        assert_ne!(before, live.fingerprint());
    }

    #[test]
    fn on_adobe_identity_people_come_and_go_through_the_product_profile() {
        let person = |email: &str, status: Status| Person {
            email: email.into(),
            first_name: "Pat".into(),
            last_name: "Doe".into(),
            status,
            end_date: None,
            department: None,
            title: None,
            access: Access {
                marketo: vec![RoleRef::new("Standard User", "EMEA")],
                ..Access::default()
            },
            manager: None,
            line: 3,
        };
        let user = |email: &str, api_only: bool| MarketoUser {
            userid: email.into(),
            email: email.into(),
            first_name: "Pat".into(),
            last_name: "Doe".into(),
            api_only,
            roles: [RoleRef::new("Standard User", "Default")].into(),
            expires_at: None,
            pending: None,
            facts: Default::default(),
        };
        let held = |email: &str| ImsUser {
            email: email.into(),
            identity_type: "federatedID".into(),
            profiles: ["Prod".to_string()].into(),
            org_admin: false,
            added_at: None,
        };
        let mut roster = Roster {
            source: "r.yaml".into(),
            people: vec![
                person("joiner@acme.example", Status::Active),
                person("synced@acme.example", Status::Active),
                person("leaver@acme.example", Status::Leaver),
                person("gone@acme.example", Status::Leaver),
                person("bot@acme.example", Status::Leaver),
            ],
            ..Roster::default()
        };
        roster.policies.marketo.protect_api_only = false;
        roster.policies.marketo.adobe_leaver = AdobeLeaver::RemoveFromOrg;
        let live = Live {
            adobe: None,
            marketo: Some(MarketoLive {
                roles: vec![],
                workspaces: vec![],
                users: vec![
                    user("leaver@acme.example", false),
                    user("gone@acme.example", false),
                    user("bot@acme.example", true),
                ],
                unread: Vec::new(),
                ims: Some(ImsLive {
                    profiles: vec!["Prod".into()],
                    identity_type: "federatedID".into(),
                    country: Some("US".into()),
                    users: [
                        held("synced@acme.example"),
                        ImsUser {
                            org_admin: true,
                            ..held("leaver@acme.example")
                        },
                    ]
                    .into_iter()
                    .map(|u| (u.email.clone(), u))
                    .collect(),
                    sync_timeout_seconds: 3600,
                    restoring: Default::default(),
                }),
            }),
            magento: None,
        };
        let p = plan(&roster, &live, options());
        let kinds: Vec<(String, String)> = p
            .steps
            .iter()
            .map(|s| (s.action.describe(), s.action.account_key()))
            .collect();
        // The joiner gets the profile; the one who holds it waits for Marketo's sync.
        assert!(
            matches!(
                &p.steps[0].action,
                Action::AdobeAddProfile { email, profiles, country, .. }
                    if email == "joiner@acme.example" && profiles == &vec!["Prod".to_string()] && country.as_deref() == Some("US")
            ),
            "{p}"
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.account == "synced@acme.example" && n.message.contains("waiting")),
            "{p}"
        );
        // The leaver loses it; one who holds none directly is explained, not deleted; an
        // API-only user is Marketo's own and deleted there as before.
        // (An organization admin stays in the organization, whatever adobe_leaver says.)
        assert!(
            p.steps.iter().any(|s| matches!(
                &s.action,
                Action::AdobeRemoveProfile { email, leave: AdobeLeaver::KeepAccount, .. } if email == "leaver@acme.example"
            ) && s.destructive),
            "{kinds:?}"
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.account == "leaver@acme.example" && n.message.contains("_org_admin")),
            "{p}"
        );
        // And a step that would remove one is refused where it runs, however it was made.
        let forged = Action::AdobeRemoveProfile {
            email: "leaver@acme.example".into(),
            profiles: vec!["Prod".into()],
            leave: AdobeLeaver::DeleteAccount,
        };
        let why = crate::safety::refusal(&forged, &live, &roster.policies, &Default::default());
        assert!(why.is_some_and(|w| w.contains("_org_admin")));
        assert!(
            p.notes
                .iter()
                .any(|n| n.account == "gone@acme.example" && n.message.contains("user group")),
            "{p}"
        );
        assert!(
            p.steps.iter().any(|s| matches!(
                &s.action,
                Action::MarketoDelete { userid } if userid == "bot@acme.example"
            )),
            "{kinds:?}"
        );
        assert!(
            !p.steps
                .iter()
                .any(|s| matches!(&s.action, Action::MarketoInvite { .. }))
        );
        assert_eq!(p.steps.len(), 3, "{kinds:?}");
        // What the plan predicts is what the Admin Console will show.
        let after = simulate(&live, p.steps.iter().map(|s| &s.action), NOW);
        let ims = after.marketo.unwrap().ims.unwrap();
        assert!(ims.user("joiner@acme.example").is_some());
        assert!(ims.user("leaver@acme.example").is_none());
    }

    #[test]
    fn expiring_invitations_are_reported_and_resent_when_asked() {
        let person = Person {
            email: "nia@acme.example".into(),
            first_name: "Nia".into(),
            last_name: "Okafor".into(),
            status: Status::Active,
            end_date: None,
            department: None,
            title: None,
            access: Access {
                marketo: vec![RoleRef::new("Standard User", "Default")],
                magento: MagentoAccess::default(),
                ..Access::default()
            },
            manager: None,
            line: 3,
        };
        let roster = Roster {
            source: "r.yaml".into(),
            people: vec![person],
            ..Roster::default()
        };
        let invite = |days: i64| Live {
            adobe: None,
            marketo: Some(MarketoLive {
                roles: vec![],
                workspaces: vec![],
                users: vec![MarketoUser {
                    userid: "nia@acme.example".into(),
                    email: "nia@acme.example".into(),
                    first_name: "Nia".into(),
                    last_name: "Okafor".into(),
                    api_only: false,
                    roles: BTreeSet::new(),
                    expires_at: None,
                    pending: Some(PendingInvite {
                        expires_at: Some(NOW + Duration::days(days)),
                    }),
                    facts: Default::default(),
                }],
                unread: Vec::new(),
                ims: None,
            }),
            magento: None,
        };
        // Fresh: nothing to say. Two days left: a note. Expired: a note, or a re-send.
        let fresh = plan(&roster, &invite(10), options());
        assert!(fresh.steps.is_empty() && fresh.notes.is_empty(), "{fresh}");
        let soon = plan(&roster, &invite(2), options());
        assert!(soon.steps.is_empty());
        assert!(
            soon.notes[0].message.contains("expires on 2026-11-25"),
            "{soon}"
        );
        let expired = plan(&roster, &invite(-1), options());
        assert!(
            expired.notes[0].message.contains("--resend-invites"),
            "{expired}"
        );
        let resend = plan(
            &roster,
            &invite(-1),
            PlanOptions {
                now: NOW,
                resend_invites: true,
            },
        );
        assert!(matches!(
            &resend.steps[0].action,
            Action::MarketoResendInvite { roles, .. } if roles == &vec![RoleRef::new("Standard User", "Default")]
        ));

        // A leaver's pending invitation (perhaps one a restore sent) is withdrawn only with
        // an approval: taking it back is destructive, like a deletion.
        let mut leaving = roster.clone();
        leaving.people[0].status = Status::Leaver;
        let withdrawn = plan(&leaving, &invite(10), options());
        let step = &withdrawn.steps[0];
        assert!(
            matches!(&step.action, Action::MarketoDeleteInvite { .. }) && step.destructive,
            "{withdrawn}"
        );
        // An approved restore keeps it until its exception lapses, and says so; after
        // that, its withdrawal is planned again, destructive as before.
        leaving.exceptions.push(crate::desired::Exception {
            app: App::Marketo,
            email: "NIA@acme.example".into(),
            until: NOW + Duration::days(30),
            reason: "restored by request 3, approved by bo".into(),
        });
        let kept = plan(&leaving, &invite(10), options());
        assert!(kept.steps.is_empty(), "{kept}");
        assert!(
            kept.notes[0].message.contains("kept until 2026-12-23")
                && kept.notes[0].message.contains("approved by bo"),
            "{kept}"
        );
        let later = PlanOptions {
            now: NOW + Duration::days(31),
            resend_invites: false,
        };
        let lapsed = plan(&leaving, &invite(40), later);
        assert!(
            matches!(&lapsed.steps[0].action, Action::MarketoDeleteInvite { .. })
                && lapsed.steps[0].destructive,
            "{lapsed}"
        );
    }
}
