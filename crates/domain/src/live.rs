//! The live state of the apps, as the connectors read it, reduced to what planning needs.
//! A plan saves the snapshot it was computed from, so `apply` can tell whether the apps
//! changed since.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::desired::{AdobeNames, LiveNames, MagentoNames, MarketoNames, RoleRef};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub marketo: Option<MarketoLive>,
    pub magento: Option<MagentoLive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adobe: Option<AdobeLive>,
}

/// The Adobe Admin Console as an app: who holds the product profiles and user groups the
/// roster names (read group by group, so a plan costs what Roster manages, not the size
/// of the organization), and every name the organization has, to check a roster against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdobeLive {
    pub org_id: String,
    /// Every product profile of the organization.
    pub profiles: Vec<String>,
    /// Every user group of the organization.
    pub groups: Vec<String>,
    /// The product profiles a Marketo subscription on Adobe Identity gives: Marketo's
    /// access, never the Adobe app's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reserved: Vec<String>,
    /// The profiles and groups Roster manages (the roster names them), whose holders are
    /// in `users`.
    pub managed: BTreeSet<String>,
    /// The identity type and country people new to the organization are created with.
    pub identity_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Everyone holding a managed profile or group directly, by lower-cased email.
    pub users: BTreeMap<String, AdobeAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdobeAccount {
    /// Lower-cased.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub identity_type: String,
    /// The managed profiles and groups they hold directly.
    pub holds: BTreeSet<String>,
    /// Holds `_org_admin`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub org_admin: bool,
}

impl AdobeLive {
    pub fn user(&self, email: &str) -> Option<&AdobeAccount> {
        self.users.get(&email.to_lowercase())
    }

    /// Whether `name` is one of the organization's product profiles (else a user group).
    pub fn is_profile(&self, name: &str) -> bool {
        self.profiles.iter().any(|p| p.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarketoLive {
    pub roles: Vec<String>,
    pub workspaces: Vec<String>,
    /// Accepted users, and the pending invitations Roster is tracking.
    pub users: Vec<MarketoUser>,
    /// Set for a subscription on Adobe Identity: who holds its product profiles in the
    /// Adobe Admin Console, which is where its standard users come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ims: Option<ImsLive>,
    /// A targeted read's other users: listed (by lower-cased email), their roles not read.
    /// They count as managed accounts for the caps, and nothing is planned for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
}

/// A Marketo subscription on Adobe Identity, as the Admin Console shows it: Marketo adds
/// whoever holds one of `profiles` (after its sync, with `Standard User` in `Default`) and
/// removes whoever holds none; invitations, renames and deletions of standard users
/// through Marketo's API are refused there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImsLive {
    /// The product profiles that give access to this subscription (the instance's
    /// configuration).
    pub profiles: Vec<String>,
    /// The identity type people new to the organization are created with.
    pub identity_type: String,
    /// The country new people are created with, where the organization needs one.
    #[serde(default)]
    pub country: Option<String>,
    /// Everyone who holds one of `profiles` directly, by lower-cased email (a plan looks
    /// each person up: a map keeps that logarithmic for large organizations).
    pub users: BTreeMap<String, ImsUser>,
    /// How long after Roster gave someone the profile Marketo may take to show them before
    /// the plan says they have not appeared.
    #[serde(default = "default_sync_timeout")]
    pub sync_timeout_seconds: u64,
    /// People restored from a tombstone (given the profile again): the Marketo roles it
    /// recorded, granted once Marketo shows them, by lower-cased email.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restoring: BTreeMap<String, Vec<RoleRef>>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn default_sync_timeout() -> u64 {
    3600
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImsUser {
    /// Lower-cased.
    pub email: String,
    pub identity_type: String,
    /// Which of the subscription's profiles they hold directly.
    pub profiles: BTreeSet<String>,
    /// Holds `_org_admin`: Roster never removes them from the organization.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub org_admin: bool,
    /// When Roster gave them the profile, if Roster did (its state remembers it until
    /// Marketo shows them).
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub added_at: Option<OffsetDateTime>,
}

impl Default for ImsLive {
    fn default() -> Self {
        Self {
            profiles: Vec::new(),
            identity_type: "federatedID".into(),
            country: None,
            users: BTreeMap::new(),
            sync_timeout_seconds: default_sync_timeout(),
            restoring: BTreeMap::new(),
        }
    }
}

impl ImsLive {
    pub fn user(&self, email: &str) -> Option<&ImsUser> {
        self.users.get(&email.to_lowercase())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketoUser {
    pub userid: String,
    /// Lower-cased.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub api_only: bool,
    /// For a pending invitation: the roles it was sent with.
    pub roles: BTreeSet<RoleRef>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    /// Set while the invitation is not accepted yet.
    pub pending: Option<PendingInvite>,
    #[serde(default)]
    pub facts: Facts,
}

/// What an app says about an account beyond its access: shown in access reports, never
/// planned on (a login does not make a plan stale), so `Live::accounts` leaves it out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Marketo's `isLocked`; a Magento admin whose `lock_expires` is in the future.
    #[serde(default)]
    pub locked: bool,
    /// Marketo's `lastLoginAt`; a Magento admin's `logdate` where the admin API gives it.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_login_at: Option<OffsetDateTime>,
    /// Magento's `created_at`.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub created_at: Option<OffsetDateTime>,
    /// Magento's `updated_at`.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub updated_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingInvite {
    /// When the invitation link stops working (7 days after it was sent).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

/// An id with its name (a group, a website code, an admin role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MagentoLive {
    pub groups: Vec<Named>,
    /// Website codes.
    pub websites: Vec<Named>,
    /// `None` when the installation has no admin-user API.
    pub admin_roles: Option<Vec<Named>>,
    /// The code of the managed website: the one whose customers were read.
    #[serde(default)]
    pub website: String,
    /// The managed domains the read was limited to (`policies.magento.managed_domains`;
    /// with the roster's people outside them by exact email); empty: every customer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// Customers of the managed website.
    pub customers: Vec<MagentoCustomer>,
    /// A targeted read's other managed customers: counted (`total_count`), not read. They
    /// count as managed accounts for the caps, and nothing is planned for them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unread: usize,
    pub admins: Option<Vec<MagentoAdmin>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MagentoCustomer {
    pub id: i64,
    /// Lower-cased.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub group_id: i64,
    pub website_id: i64,
    #[serde(default)]
    pub facts: Facts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MagentoAdmin {
    pub id: i64,
    pub username: String,
    /// Lower-cased.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role_id: Option<i64>,
    pub is_active: bool,
    #[serde(default)]
    pub facts: Facts,
}

impl MagentoLive {
    pub fn group_name(&self, id: i64) -> String {
        name_of(&self.groups, id)
    }

    pub fn group_id(&self, name: &str) -> Option<i64> {
        id_of(&self.groups, name)
    }

    pub fn role_name(&self, id: Option<i64>) -> String {
        match (id, &self.admin_roles) {
            (Some(id), Some(roles)) => name_of(roles, id),
            _ => "(none)".into(),
        }
    }

    pub fn role_id(&self, name: &str) -> Option<i64> {
        self.admin_roles.as_ref().and_then(|r| id_of(r, name))
    }

    pub fn website_id(&self, code: &str) -> Option<i64> {
        id_of(&self.websites, code)
    }

    /// A website as inventories and reviews name a customer's scope: its name, else `#ID`.
    pub fn website_label(&self, id: i64) -> String {
        self.websites
            .iter()
            .find(|w| w.id == id)
            .map_or_else(|| format!("#{id}"), |w| w.name.clone())
    }
}

fn name_of(list: &[Named], id: i64) -> String {
    list.iter()
        .find(|n| n.id == id)
        .map_or_else(|| format!("#{id}"), |n| n.name.clone())
}

fn id_of(list: &[Named], name: &str) -> Option<i64> {
    list.iter()
        .find(|n| n.name.eq_ignore_ascii_case(name.trim()))
        .map(|n| n.id)
}

/// The key of one account across snapshots: which app, which kind, which name.
pub fn marketo_key(userid: &str) -> String {
    format!("marketo user {}", userid.to_lowercase())
}

/// A person's hold on an IMS subscription's product profiles in the Adobe Admin Console.
pub fn ims_key(email: &str) -> String {
    format!("adobe user {}", email.to_lowercase())
}

/// An account in the Adobe app (the Admin Console's profiles and groups Roster manages).
pub fn adobe_key(email: &str) -> String {
    format!("adobe account {}", email.to_lowercase())
}

/// The app an account key (or a difference line starting with one) is of.
pub fn key_app(key: &str) -> Option<crate::desired::App> {
    use crate::desired::App;
    // A person's hold on an IMS subscription's profiles is the Marketo app's business.
    [
        ("marketo user ", App::Marketo),
        ("adobe user ", App::Marketo),
        ("magento ", App::Magento),
        ("adobe account ", App::Adobe),
    ]
    .into_iter()
    .find(|(prefix, _)| key.starts_with(prefix))
    .map(|(_, app)| app)
}

pub fn customer_key(email: &str) -> String {
    format!("magento customer {}", email.to_lowercase())
}

pub fn admin_key(username: &str) -> String {
    format!("magento admin {}", username.to_lowercase())
}

impl Live {
    /// `self` with every app `part` read added: how the connectors' reads (each setting
    /// its own app) make one snapshot.
    pub fn merge(self, part: Live) -> Live {
        Live {
            marketo: part.marketo.or(self.marketo),
            magento: part.magento.or(self.magento),
            adobe: part.adobe.or(self.adobe),
        }
    }

    /// The accounts of the people `keep` accepts only: what a targeted plan looks at (the
    /// names of roles, groups and profiles stay whole).
    pub fn scoped(&self, keep: impl Fn(&str) -> bool) -> Live {
        let mut live = self.clone();
        if let Some(m) = &mut live.marketo {
            m.users.retain(|u| keep(&u.email));
            if let Some(ims) = &mut m.ims {
                ims.users.retain(|email, _| keep(email));
                ims.restoring.retain(|email, _| keep(email));
            }
        }
        if let Some(m) = &mut live.magento {
            m.customers.retain(|c| keep(&c.email));
            if let Some(admins) = &mut m.admins {
                admins.retain(|a| keep(&a.email));
            }
        }
        if let Some(a) = &mut live.adobe {
            a.users.retain(|email, _| keep(email));
        }
        live
    }

    /// Whether `app` was read.
    pub fn has(&self, app: crate::desired::App) -> bool {
        use crate::desired::App;
        match app {
            App::Marketo => self.marketo.is_some(),
            App::Magento => self.magento.is_some(),
            App::Adobe => self.adobe.is_some(),
        }
    }

    /// The names a roster is validated against.
    pub fn names(&self) -> LiveNames {
        LiveNames {
            marketo: self.marketo.as_ref().map(|m| MarketoNames {
                roles: m.roles.clone(),
                workspaces: m.workspaces.clone(),
            }),
            magento: self.magento.as_ref().map(|m| MagentoNames {
                groups: m.groups.iter().map(|g| g.name.clone()).collect(),
                admin_roles: m
                    .admin_roles
                    .as_ref()
                    .map(|r| r.iter().map(|n| n.name.clone()).collect()),
                websites: m.websites.iter().map(|w| w.name.clone()).collect(),
            }),
            adobe: self.adobe.as_ref().map(|a| AdobeNames {
                profiles: a.profiles.clone(),
                groups: a.groups.clone(),
                reserved: a.reserved.clone(),
            }),
        }
    }

    /// Every account as one line of what planning looks at, by account key. Ids that an
    /// app assigns (customer and admin ids) and an invitation's own expiry are left out, so
    /// a snapshot predicted by `plan::simulate` compares equal to the same state read back.
    pub fn accounts(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(m) = &self.marketo {
            for u in &m.users {
                let roles: Vec<String> = u.roles.iter().map(ToString::to_string).collect();
                out.insert(
                    marketo_key(&u.userid),
                    format!(
                        "{} | {} {} | api_only={} | roles=[{}] | expires={} | {}",
                        u.email,
                        u.first_name,
                        u.last_name,
                        u.api_only,
                        roles.join(", "),
                        // RFC 3339 UTC to the second (Marketo's own precision): what a
                        // reviewer reads in a drift message or a before -> after.
                        u.expires_at.map_or("never".into(), |t| {
                            t.to_offset(time::UtcOffset::UTC)
                                .replace_nanosecond(0)
                                .unwrap_or(t)
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_else(|_| t.unix_timestamp().to_string())
                        }),
                        if u.pending.is_some() {
                            "pending"
                        } else {
                            "active"
                        }
                    ),
                );
            }
        }
        if let Some(ims) = self.marketo.as_ref().and_then(|m| m.ims.as_ref()) {
            for u in ims.users.values() {
                let profiles: Vec<&str> = u.profiles.iter().map(String::as_str).collect();
                out.insert(
                    ims_key(&u.email),
                    format!("profiles=[{}]", profiles.join(", ")),
                );
            }
        }
        if let Some(a) = &self.adobe {
            for u in a.users.values() {
                let holds: Vec<&str> = u.holds.iter().map(String::as_str).collect();
                out.insert(
                    adobe_key(&u.email),
                    format!("{} | holds=[{}]", u.identity_type, holds.join(", ")),
                );
            }
        }
        if let Some(m) = &self.magento {
            for c in &m.customers {
                out.insert(
                    customer_key(&c.email),
                    format!(
                        "{} {} | group={} | website={}",
                        c.first_name,
                        c.last_name,
                        m.group_name(c.group_id),
                        c.website_id
                    ),
                );
            }
            for a in m.admins.iter().flatten() {
                out.insert(
                    admin_key(&a.username),
                    format!(
                        "{} | {} {} | role={} | active={}",
                        a.email,
                        a.first_name,
                        a.last_name,
                        m.role_name(a.role_id),
                        a.is_active
                    ),
                );
            }
        }
        out
    }

    /// A short, stable digest of `accounts()`: equal digests, equal states.
    pub fn fingerprint(&self) -> String {
        let mut text = String::new();
        for (k, v) in self.accounts() {
            text.push_str(&k);
            text.push('\t');
            text.push_str(&v);
            text.push('\n');
        }
        digest(text.as_bytes())
    }
}

/// What differs between two snapshots, account by account, skipping the keys in `ignore`.
pub fn differences(expected: &Live, actual: &Live, ignore: &BTreeSet<String>) -> Vec<String> {
    let (a, b) = (expected.accounts(), actual.accounts());
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !ignore.contains(*k))
        .filter_map(|k| match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => None,
            (Some(x), Some(y)) => Some(format!("{k}: was {x}, now {y}")),
            (Some(_), None) => Some(format!("{k}: gone")),
            (None, Some(y)) => Some(format!("{k}: new ({y})")),
            (None, None) => None,
        })
        .collect()
}

/// 128 bits of two FNV-1a passes with different offsets, in hex. Not cryptographic: it
/// names plans and snapshots, it does not protect them.
pub fn digest(bytes: &[u8]) -> String {
    let pass = |mut h: u64| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    format!(
        "{:016x}{:016x}",
        pass(0xcbf2_9ce4_8422_2325),
        pass(0x6c62_272e_07bb_0142)
    )
}
