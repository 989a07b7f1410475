//! The planner: from a roster and a live snapshot to the ordered steps that make the apps
//! match the roster, each with its reason. Pure: the CLI reads the snapshot and runs the
//! steps; `simulate` predicts the state after them, which the property tests and `apply`'s
//! drift check rely on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time};

use crate::desired::{AdobeLeaver, App, Person, RoleRef, Roster, Unlisted};
use crate::live::{
    ImsLive, ImsUser, Live, MagentoAdmin, MagentoCustomer, MagentoLive, MarketoLive, MarketoUser,
    PendingInvite, admin_key, adobe_key, customer_key, digest, ims_key, marketo_key,
};
use crate::safety::{self, protected_admin, protected_customer, protected_user};

mod adobe;

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

    // ---- Marketo ----

    fn marketo(&mut self, live: &MarketoLive) {
        let roster: &'a Roster = self.roster;
        let policy = &roster.policies.marketo;
        let mut by_email: HashMap<&str, Vec<&MarketoUser>> = HashMap::new();
        for u in &live.users {
            by_email.entry(u.email.as_str()).or_default().push(u);
        }
        let protected = |u: &MarketoUser| protected_user(policy, u);
        let mut handled: HashSet<&str> = HashSet::new();
        let people = roster.people.iter().filter(|p| policy.manages(&p.email));
        for person in people {
            let accounts = by_email
                .get(person.email.as_str())
                .cloned()
                .unwrap_or_default();
            handled.extend(accounts.iter().map(|u| u.userid.as_str()));
            if accounts.len() > 1 {
                let ids: Vec<&str> = accounts.iter().map(|u| u.userid.as_str()).collect();
                self.note(
                    App::Marketo,
                    &person.email,
                    format!(
                        "{} accounts share this email ({}); none is changed until one remains",
                        ids.len(),
                        ids.join(", ")
                    ),
                );
                continue;
            }
            let wanted = self.roster.wanted(person).marketo;
            let account = accounts.first().copied();
            if let Some(u) = account
                && protected(u)
            {
                self.note(App::Marketo, &u.userid, "protected by policy: not touched");
                continue;
            }
            if person.is_leaver(self.today()) {
                if let Some(u) = account
                    && !self.kept(App::Marketo, &u.email, &u.userid)
                {
                    self.offboard_marketo(live, u, &leaver_reason(person));
                } else if let Some(u) = account {
                    self.restore_grants(live, u);
                } else if let Some(ims) = &live.ims
                    && ims.user(&person.email).is_some()
                    && !self.kept(App::Marketo, &person.email, &person.email)
                {
                    // Given the profile, not yet synced into Marketo: take it back.
                    self.ims_offboard(ims, &person.email, &person.email, &leaver_reason(person));
                }
                continue;
            }
            let Some(u) = account else {
                if let Some(ims) = &live.ims {
                    self.ims_joiner(ims, person, &wanted);
                    continue;
                }
                if !wanted.is_empty() {
                    self.step(
                        Action::MarketoInvite {
                            email: person.email.clone(),
                            first_name: person.first_name.clone(),
                            last_name: person.last_name.clone(),
                            roles: wanted.into_iter().collect(),
                            expires_at: expiry_for(person.end_date),
                        },
                        format!(
                            "{} is listed (line {}) and has no Marketo account",
                            person.email, person.line
                        ),
                    );
                }
                continue;
            };
            if wanted.is_empty() {
                self.unlisted_marketo(
                    live,
                    u,
                    &format!("{} is listed with no Marketo access", person.email),
                );
                continue;
            }
            if let Some(pending) = &u.pending {
                self.pending_invite(u, pending, person, &wanted);
                continue;
            }
            let line = person.line;
            // On Adobe Identity a standard user's name and login expiry are the Admin
            // Console's: Marketo's API refuses to change them.
            let ims_user = live.ims.is_some() && !u.api_only;
            if !ims_user && (u.first_name != person.first_name || u.last_name != person.last_name) {
                self.step(
                    Action::MarketoUpdate {
                        userid: u.userid.clone(),
                        first_name: person.first_name.clone(),
                        last_name: person.last_name.clone(),
                    },
                    format!(
                        "the roster (line {line}) names them {} {}, Marketo {} {}",
                        person.first_name, person.last_name, u.first_name, u.last_name
                    ),
                );
            }
            let grant: Vec<RoleRef> = wanted.difference(&u.roles).cloned().collect();
            if !grant.is_empty() {
                self.step(
                    Action::MarketoGrant {
                        userid: u.userid.clone(),
                        roles: grant,
                    },
                    format!(
                        "the roster (line {line}) gives {} these roles",
                        person.email
                    ),
                );
            }
            let revoke: Vec<RoleRef> = u.roles.difference(&wanted).cloned().collect();
            if !revoke.is_empty() {
                self.step(
                    Action::MarketoRevoke {
                        userid: u.userid.clone(),
                        roles: revoke,
                    },
                    format!(
                        "the roster (line {line}) no longer gives {} these roles",
                        person.email
                    ),
                );
            }
            let expires_at = expiry_for(person.end_date);
            if ims_user {
                if let Some(end) = person.end_date {
                    self.note(
                        App::Marketo,
                        &u.userid,
                        format!(
                            "ends on {end} (line {line}); on Adobe Identity Marketo's login expiry cannot be set through its API, so their offboarding is planned after that date"
                        ),
                    );
                }
            } else if u.expires_at != expires_at {
                self.step(
                    Action::MarketoSetExpiry {
                        userid: u.userid.clone(),
                        expires_at,
                    },
                    match person.end_date {
                        Some(end) => format!("{} ends on {end} (line {line})", person.email),
                        None => format!(
                            "{} has no end date in the roster (line {line})",
                            person.email
                        ),
                    },
                );
            }
        }
        let unlisted: Vec<&MarketoUser> = live
            .users
            .iter()
            .filter(|u| !handled.contains(u.userid.as_str()) && policy.manages(&u.email))
            .collect();
        for u in unlisted {
            if protected(u) {
                continue;
            }
            self.unlisted_marketo(live, u, &format!("{} is not in the roster", u.email));
        }
    }

    fn pending_invite(
        &mut self,
        u: &MarketoUser,
        pending: &PendingInvite,
        person: &Person,
        wanted: &BTreeSet<RoleRef>,
    ) {
        let now = self.options.now;
        let Some(expires) = pending.expires_at else {
            return;
        };
        let state = if expires <= now {
            format!("the invitation expired on {}", expires.date())
        } else if expires - now <= INVITE_WARNING {
            format!("the invitation expires on {}", expires.date())
        } else {
            return;
        };
        if self.options.resend_invites {
            self.step(
                Action::MarketoResendInvite {
                    userid: u.userid.clone(),
                    email: person.email.clone(),
                    first_name: person.first_name.clone(),
                    last_name: person.last_name.clone(),
                    roles: wanted.iter().cloned().collect(),
                    expires_at: expiry_for(person.end_date),
                },
                format!("{state} and re-sending was asked for"),
            );
        } else {
            self.note(
                App::Marketo,
                &u.userid,
                format!("{state}; plan with --resend-invites to send a new one"),
            );
        }
    }

    /// A joiner on a subscription on Adobe Identity: Marketo adds whoever holds its
    /// product profile, so the step is in the Admin Console; their roles follow once
    /// Marketo shows them.
    fn ims_joiner(&mut self, ims: &ImsLive, person: &Person, wanted: &BTreeSet<RoleRef>) {
        if wanted.is_empty() {
            return;
        }
        if let Some(held) = ims.user(&person.email) {
            let profiles: Vec<&str> = held.profiles.iter().map(String::as_str).collect();
            let timeout = time::Duration::seconds(ims.sync_timeout_seconds as i64);
            if let Some(added) = held.added_at
                && self.options.now - added > timeout
            {
                let at = added
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                self.note(
                    App::Marketo,
                    &person.email,
                    format!(
                        "has not appeared in Marketo although Roster gave them {} at {at}, longer ago than the sync timeout ({} s): check in the Adobe Admin Console that the profile gives this subscription and that they hold it, then in Marketo",
                        profiles.join(", "),
                        ims.sync_timeout_seconds
                    ),
                );
                return;
            }
            self.note(
                App::Marketo,
                &person.email,
                format!(
                    "waiting for Marketo's sync with the Adobe Admin Console: {} holds {}; the roster's roles are granted once Marketo shows them",
                    person.email,
                    profiles.join(", ")
                ),
            );
            return;
        }
        let Some(profile) = ims.profiles.first() else {
            self.note(
                App::Marketo,
                &person.email,
                "the subscription is on Adobe Identity but no product profile is configured for it (product_profiles): nobody can be added",
            );
            return;
        };
        self.step(
            Action::AdobeAddProfile {
                email: person.email.clone(),
                first_name: person.first_name.clone(),
                last_name: person.last_name.clone(),
                identity_type: ims.identity_type.clone(),
                country: ims.country.clone(),
                profiles: vec![profile.clone()],
            },
            format!(
                "{} is listed (line {}) and has no Marketo account; on Adobe Identity, Marketo adds them once they hold its product profile",
                person.email, person.line
            ),
        );
    }

    /// A person restored on Adobe Identity gets back, once Marketo shows them, the roles
    /// their tombstone recorded (a restore through Marketo's API re-invites with them; here
    /// Marketo adds them with its default role only).
    fn restore_grants(&mut self, live: &MarketoLive, u: &MarketoUser) {
        let Some(roles) = live
            .ims
            .as_ref()
            .and_then(|i| i.restoring.get(&u.email.to_lowercase()))
        else {
            return;
        };
        let missing: Vec<RoleRef> = roles
            .iter()
            .filter(|r| !u.roles.contains(r))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.step(
                Action::MarketoGrant {
                    userid: u.userid.clone(),
                    roles: missing,
                },
                format!(
                    "{} was restored from a tombstone: the roles it recorded",
                    u.email
                ),
            );
        }
    }

    /// Offboards `email` on Adobe Identity: the subscription's product profiles they hold
    /// directly are taken away (their Adobe account as the policy says); holding none, a
    /// note under `account` says what remains to be done.
    fn ims_offboard(&mut self, ims: &ImsLive, email: &str, account: &str, reason: &str) {
        let Some(held) = ims.user(email).filter(|h| !h.profiles.is_empty()) else {
            self.note(
                App::Marketo,
                account,
                format!(
                    "{reason}; they hold none of the subscription's product profiles ({}) directly, so Marketo removes them at its next sync with the Adobe Admin Console, unless a user group gives them one (then take them out of it there)",
                    ims.profiles.join(", ")
                ),
            );
            return;
        };
        let leave = self.adobe_leave(held);
        self.step(
            Action::AdobeRemoveProfile {
                email: email.to_string(),
                profiles: held.profiles.iter().cloned().collect(),
                leave,
            },
            reason,
        );
    }

    /// What the policy does with a leaver's Adobe account; an organization admin's stays.
    fn adobe_leave(&mut self, held: &ImsUser) -> AdobeLeaver {
        let leave = self.roster.policies.marketo.adobe_leaver;
        if held.org_admin && !leave.is_keep() {
            self.note(
                App::Marketo,
                &held.email,
                "holds _org_admin in the Adobe organization: their Adobe account stays there whatever policies.marketo.adobe_leaver says",
            );
            return AdobeLeaver::KeepAccount;
        }
        leave
    }

    fn offboard_marketo(&mut self, live: &MarketoLive, u: &MarketoUser, reason: &str) {
        if let Some(ims) = &live.ims
            && !u.api_only
        {
            // Marketo refuses to delete a standard user here; without the product profile
            // it removes them itself at its sync.
            self.ims_offboard(ims, &u.email, &u.userid, reason);
            return;
        }
        if u.pending.is_some() {
            self.step(
                Action::MarketoDeleteInvite {
                    userid: u.userid.clone(),
                },
                reason,
            );
        } else {
            self.step(
                Action::MarketoDelete {
                    userid: u.userid.clone(),
                },
                reason,
            );
        }
    }

    fn unlisted_marketo(&mut self, live: &MarketoLive, u: &MarketoUser, why: &str) {
        if self.kept(App::Marketo, &u.email, &u.userid) {
            self.restore_grants(live, u);
            return;
        }
        match self.roster.policies.marketo.unlisted {
            Unlisted::Report => self.note(
                App::Marketo,
                &u.userid,
                format!("{why}; policy unlisted=report leaves the account alone"),
            ),
            Unlisted::Disable if u.pending.is_some() => {
                self.step(
                    Action::MarketoDeleteInvite {
                        userid: u.userid.clone(),
                    },
                    format!("{why} (policy unlisted=disable)"),
                );
            }
            Unlisted::Disable => {
                if !u.roles.is_empty() {
                    self.step(
                        Action::MarketoRevoke {
                            userid: u.userid.clone(),
                            roles: u.roles.iter().cloned().collect(),
                        },
                        format!("{why} (policy unlisted=disable)"),
                    );
                }
            }
            Unlisted::Delete => {
                self.offboard_marketo(live, u, &format!("{why} (policy unlisted=delete)"))
            }
        }
    }

    // ---- Magento ----

    fn magento(&mut self, live: &MagentoLive) {
        let roster: &'a Roster = self.roster;
        let policy = &roster.policies.magento;
        let Some(website_id) = live.website_id(&policy.website) else {
            return;
        };
        let customers: HashMap<&str, &MagentoCustomer> = live
            .customers
            .iter()
            .filter(|c| c.website_id == website_id)
            .map(|c| (c.email.as_str(), c))
            .collect();
        let admins: HashMap<&str, &MagentoAdmin> = live
            .admins
            .iter()
            .flatten()
            .map(|a| (a.email.as_str(), a))
            .collect();
        let mut handled_customers: HashSet<&str> = HashSet::new();
        let mut handled_admins: HashSet<&str> = HashSet::new();
        let people = roster.people.iter().filter(|p| policy.manages(&p.email));
        for person in people {
            let wanted = self.roster.wanted(person);
            let leaver = person.is_leaver(self.today());
            let customer = customers.get(person.email.as_str()).copied();
            if let Some(c) = customer {
                handled_customers.insert(&c.email);
            }
            match customer {
                Some(c) if protected_customer(policy, c) => {
                    self.note(App::Magento, &c.email, "protected by policy: not touched");
                }
                Some(c) if leaver && self.kept(App::Magento, &c.email, &c.email) => {}
                Some(c) if leaver => self.step(
                    Action::MagentoDeleteCustomer {
                        id: c.id,
                        email: c.email.clone(),
                    },
                    leaver_reason(person),
                ),
                Some(c) => match &wanted.magento_group {
                    None => self.unlisted_customer(
                        live,
                        c,
                        &format!("{} is listed with no Magento customer group", person.email),
                    ),
                    Some(group) => {
                        let group_id = live.group_id(group).unwrap_or(c.group_id);
                        if c.group_id != group_id
                            || c.first_name != person.first_name
                            || c.last_name != person.last_name
                        {
                            let moved = c.group_id != group_id;
                            self.step(
                                Action::MagentoUpdateCustomer {
                                    id: c.id,
                                    email: c.email.clone(),
                                    first_name: person.first_name.clone(),
                                    last_name: person.last_name.clone(),
                                    group_id,
                                    group: group.clone(),
                                },
                                if moved {
                                    format!("the roster (line {}) puts {} in group {group}, Magento has {}", person.line, person.email, live.group_name(c.group_id))
                                } else {
                                    format!("the roster (line {}) names them {} {}", person.line, person.first_name, person.last_name)
                                },
                            );
                        }
                    }
                },
                None => {
                    if let (false, Some(group)) = (leaver, &wanted.magento_group)
                        && let Some(group_id) = live.group_id(group)
                    {
                        self.step(
                            Action::MagentoCreateCustomer {
                                email: person.email.clone(),
                                first_name: person.first_name.clone(),
                                last_name: person.last_name.clone(),
                                group_id,
                                group: group.clone(),
                                website_id,
                            },
                            format!("{} is listed (line {}) with group {group} and has no customer account", person.email, person.line),
                        );
                    }
                }
            }
            if live.admins.is_none() {
                continue;
            }
            let admin = admins.get(person.email.as_str()).copied();
            if let Some(a) = admin {
                handled_admins.insert(&a.email);
            }
            match admin {
                Some(a) if protected_admin(policy, a) => {
                    self.note(
                        App::Magento,
                        &a.username,
                        "protected by policy: not touched",
                    );
                }
                Some(a) if leaver && self.kept(App::Magento, &a.email, &a.username) => {}
                Some(a) if leaver => self.step(
                    Action::MagentoDeleteAdmin {
                        id: a.id,
                        username: a.username.clone(),
                    },
                    leaver_reason(person),
                ),
                Some(a) => match &wanted.magento_admin_role {
                    None => self.unlisted_admin(
                        live,
                        a,
                        &format!("{} is listed with no Magento admin role", person.email),
                    ),
                    Some(role) => {
                        let role_id = live.role_id(role);
                        if a.role_id != role_id
                            || !a.is_active
                            || a.first_name != person.first_name
                            || a.last_name != person.last_name
                        {
                            self.step(
                                Action::MagentoUpdateAdmin {
                                    id: a.id,
                                    username: a.username.clone(),
                                    first_name: person.first_name.clone(),
                                    last_name: person.last_name.clone(),
                                    role_id,
                                    role: role.clone(),
                                    is_active: true,
                                },
                                format!("the roster (line {}) gives {} the admin role {role}; Magento has {}{}", person.line, person.email, live.role_name(a.role_id), if a.is_active { "" } else { ", inactive" }),
                            );
                        }
                    }
                },
                None => {
                    if let (false, Some(role)) = (leaver, &wanted.magento_admin_role)
                        && let Some(role_id) = live.role_id(role)
                    {
                        self.step(
                            Action::MagentoCreateAdmin {
                                username: person.email.clone(),
                                email: person.email.clone(),
                                first_name: person.first_name.clone(),
                                last_name: person.last_name.clone(),
                                role_id,
                                role: role.clone(),
                            },
                            format!("{} is listed (line {}) with admin role {role} and has no admin user", person.email, person.line),
                        );
                    }
                }
            }
        }
        let unlisted: Vec<&MagentoCustomer> = live
            .customers
            .iter()
            .filter(|c| c.website_id == website_id && !handled_customers.contains(c.email.as_str()))
            .filter(|c| policy.manages(&c.email) && !protected_customer(policy, c))
            .collect();
        for c in unlisted {
            self.unlisted_customer(live, c, &format!("{} is not in the roster", c.email));
        }
        let unlisted: Vec<&MagentoAdmin> = live
            .admins
            .iter()
            .flatten()
            .filter(|a| !handled_admins.contains(a.email.as_str()))
            .filter(|a| policy.manages(&a.email) && !protected_admin(policy, a))
            .collect();
        for a in unlisted {
            self.unlisted_admin(live, a, &format!("{} is not in the roster", a.email));
        }
    }

    fn unlisted_customer(&mut self, live: &MagentoLive, c: &MagentoCustomer, why: &str) {
        if self.kept(App::Magento, &c.email, &c.email) {
            return;
        }
        let roster: &'a Roster = self.roster;
        let policy = &roster.policies.magento;
        match policy.unlisted {
            Unlisted::Report => self.note(
                App::Magento,
                &c.email,
                format!("customer: {why}; policy unlisted=report leaves it alone"),
            ),
            Unlisted::Disable => {
                let Some(group) = policy.disabled_group.clone() else {
                    return;
                };
                let Some(group_id) = live.group_id(&group) else {
                    return;
                };
                if c.group_id != group_id {
                    // Core Magento's REST API has no way for an admin to stop a customer
                    // signing in: `revoke-customer-token` revokes only the caller's own
                    // tokens, and lock/unlock is not exposed. Say so, once per plan.
                    if !self.notes.iter().any(|n| n.account == DISABLE_NOTE_KEY) {
                        self.note(
                            App::Magento,
                            DISABLE_NOTE_KEY,
                            format!(
                                "unlisted=disable moves customers to {group}: it changes their prices and catalog permissions, but they can still sign in and their sessions and tokens stay valid (core Magento's REST API cannot sign another customer out or lock them; POST /V1/integration/customer/revoke-customer-token revokes only the caller's own tokens). To end their access, use unlisted=delete (a tombstone keeps the account for restore)"
                            ),
                        );
                    }
                    self.step(
                        Action::MagentoUpdateCustomer {
                            id: c.id,
                            email: c.email.clone(),
                            first_name: c.first_name.clone(),
                            last_name: c.last_name.clone(),
                            group_id,
                            group: group.clone(),
                        },
                        format!(
                            "{why} (policy unlisted=disable: moved to {group}; they can still sign in)"
                        ),
                    );
                }
            }
            Unlisted::Delete => self.step(
                Action::MagentoDeleteCustomer {
                    id: c.id,
                    email: c.email.clone(),
                },
                format!("{why} (policy unlisted=delete)"),
            ),
        }
    }

    fn unlisted_admin(&mut self, live: &MagentoLive, a: &MagentoAdmin, why: &str) {
        if self.kept(App::Magento, &a.email, &a.username) {
            return;
        }
        match self.roster.policies.magento.unlisted {
            Unlisted::Report => self.note(
                App::Magento,
                &a.username,
                format!("admin user: {why}; policy unlisted=report leaves it alone"),
            ),
            Unlisted::Disable => {
                if a.is_active {
                    self.step(
                        Action::MagentoUpdateAdmin {
                            id: a.id,
                            username: a.username.clone(),
                            first_name: a.first_name.clone(),
                            last_name: a.last_name.clone(),
                            role_id: a.role_id,
                            role: live.role_name(a.role_id),
                            is_active: false,
                        },
                        format!("{why} (policy unlisted=disable)"),
                    );
                }
            }
            Unlisted::Delete => self.step(
                Action::MagentoDeleteAdmin {
                    id: a.id,
                    username: a.username.clone(),
                },
                format!("{why} (policy unlisted=delete)"),
            ),
        }
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
    if let Some(m) = &live.marketo {
        planner.marketo(m);
    }
    if let Some(m) = &live.magento {
        planner.magento(m);
    }
    if let Some(a) = &live.adobe {
        planner.adobe(a);
    }
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

fn apply_one(live: &mut Live, action: &Action, now: OffsetDateTime) {
    match action {
        Action::MarketoInvite {
            email,
            first_name,
            last_name,
            roles,
            expires_at,
        } => {
            let m = live.marketo.get_or_insert_with(MarketoLive::default);
            if !m.users.iter().any(|u| u.userid.eq_ignore_ascii_case(email)) {
                m.users.push(MarketoUser {
                    userid: email.clone(),
                    email: email.clone(),
                    first_name: first_name.clone(),
                    last_name: last_name.clone(),
                    api_only: false,
                    roles: roles.iter().cloned().collect(),
                    expires_at: *expires_at,
                    pending: Some(PendingInvite {
                        expires_at: Some(now + INVITE_LIFETIME),
                    }),
                    facts: Default::default(),
                });
            }
        }
        Action::MarketoResendInvite {
            userid,
            roles,
            expires_at,
            ..
        } => {
            if let Some(u) = marketo_user(live, userid) {
                u.roles = roles.iter().cloned().collect();
                u.expires_at = *expires_at;
                u.pending = Some(PendingInvite {
                    expires_at: Some(now + INVITE_LIFETIME),
                });
            }
        }
        Action::MarketoUpdate {
            userid,
            first_name,
            last_name,
        } => {
            if let Some(u) = marketo_user(live, userid) {
                u.first_name = first_name.clone();
                u.last_name = last_name.clone();
            }
        }
        Action::MarketoGrant { userid, roles } => {
            if let Some(u) = marketo_user(live, userid) {
                u.roles.extend(roles.iter().cloned());
            }
        }
        Action::MarketoRevoke { userid, roles } => {
            if let Some(u) = marketo_user(live, userid) {
                for r in roles {
                    u.roles.remove(r);
                }
            }
        }
        Action::MarketoSetExpiry { userid, expires_at } => {
            if let Some(u) = marketo_user(live, userid) {
                u.expires_at = *expires_at;
            }
        }
        Action::MarketoDeleteInvite { userid } | Action::MarketoDelete { userid } => {
            if let Some(m) = &mut live.marketo {
                m.users.retain(|u| !u.userid.eq_ignore_ascii_case(userid));
            }
        }
        // The Admin Console changes now; Marketo follows at its sync, which a plan does not
        // predict (the next plan reads what Marketo shows by then).
        Action::AdobeAddProfile {
            email,
            identity_type,
            profiles,
            ..
        } => {
            let m = live.marketo.get_or_insert_with(MarketoLive::default);
            let ims = m.ims.get_or_insert_with(ImsLive::default);
            let email = email.to_lowercase();
            ims.users
                .entry(email.clone())
                .or_insert_with(|| ImsUser {
                    email,
                    identity_type: identity_type.clone(),
                    profiles: Default::default(),
                    org_admin: false,
                    added_at: Some(now),
                })
                .profiles
                .extend(profiles.iter().cloned());
        }
        Action::AdobeRemoveProfile {
            email, profiles, ..
        } => {
            if let Some(ims) = live.marketo.as_mut().and_then(|m| m.ims.as_mut()) {
                if let Some(u) = ims.users.get_mut(&email.to_lowercase()) {
                    for p in profiles {
                        u.profiles.remove(p);
                    }
                }
                ims.users.retain(|_, u| !u.profiles.is_empty());
            }
        }
        Action::AdobeGrant { .. } | Action::AdobeRevoke { .. } | Action::AdobeOffboard { .. } => {
            adobe::simulate(live, action)
        }
        Action::MagentoCreateCustomer {
            email,
            first_name,
            last_name,
            group_id,
            website_id,
            ..
        } => {
            let m = live.magento.get_or_insert_with(MagentoLive::default);
            m.customers.push(MagentoCustomer {
                // Magento chooses the id; guessing one (the highest plus one) named
                // another customer in the inventory. Unknown until the store is read.
                id: UNKNOWN_ID,
                email: email.clone(),
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                group_id: *group_id,
                website_id: *website_id,
                facts: Default::default(),
            });
        }
        Action::MagentoUpdateCustomer {
            email,
            first_name,
            last_name,
            group_id,
            ..
        } => {
            if let Some(c) = live
                .magento
                .as_mut()
                .and_then(|m| m.customers.iter_mut().find(|c| c.email == *email))
            {
                c.first_name = first_name.clone();
                c.last_name = last_name.clone();
                c.group_id = *group_id;
            }
        }
        Action::MagentoDeleteCustomer { email, .. } => {
            if let Some(m) = &mut live.magento {
                m.customers.retain(|c| c.email != *email);
            }
        }
        Action::MagentoCreateAdmin {
            username,
            email,
            first_name,
            last_name,
            role_id,
            ..
        } => {
            let m = live.magento.get_or_insert_with(MagentoLive::default);
            let admins = m.admins.get_or_insert_with(Vec::new);
            admins.push(MagentoAdmin {
                id: UNKNOWN_ID,
                username: username.clone(),
                email: email.clone(),
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                role_id: Some(*role_id),
                is_active: true,
                facts: Default::default(),
            });
        }
        Action::MagentoUpdateAdmin {
            username,
            first_name,
            last_name,
            role_id,
            is_active,
            ..
        } => {
            if let Some(a) = live
                .magento
                .as_mut()
                .and_then(|m| m.admins.as_mut())
                .and_then(|admins| admins.iter_mut().find(|a| a.username == *username))
            {
                a.first_name = first_name.clone();
                a.last_name = last_name.clone();
                a.role_id = *role_id;
                a.is_active = *is_active;
            }
        }
        Action::MagentoDeleteAdmin { username, .. } => {
            if let Some(admins) = live.magento.as_mut().and_then(|m| m.admins.as_mut()) {
                admins.retain(|a| a.username != *username);
            }
        }
    }
}

fn marketo_user<'a>(live: &'a mut Live, userid: &str) -> Option<&'a mut MarketoUser> {
    live.marketo
        .as_mut()?
        .users
        .iter_mut()
        .find(|u| u.userid.eq_ignore_ascii_case(userid))
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
                    ims: None,
                }),
                magento: Some(MagentoLive {
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

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
                line: 7,
            }],
            rules: vec![],
            exceptions: vec![],
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
