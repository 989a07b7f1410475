//! Who has which access on one instance, as an auditor reads it: every account with its
//! roles and scopes and the facts the app gives (expiry, last login, locked). Built from the
//! live read a service run makes, stored per instance, and searched by the console's access
//! page and its exports without calling the app again.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::desired::App;
use crate::live::{Facts, Live};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// An accepted Marketo user.
    MarketoUser,
    /// A Marketo invitation Roster sent that is not accepted yet.
    MarketoInvite,
    MagentoCustomer,
    MagentoAdmin,
    /// An Adobe Admin Console user holding a product profile or user group Roster manages.
    AdobeUser,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::MarketoUser => "user",
            AccountKind::MarketoInvite => "invitation",
            AccountKind::MagentoCustomer => "customer",
            AccountKind::MagentoAdmin => "admin",
            AccountKind::AdobeUser => "adobe user",
        }
    }

    /// The kinds of account `app` has.
    pub fn of(app: App) -> &'static [AccountKind] {
        match app {
            App::Marketo => &[AccountKind::MarketoUser, AccountKind::MarketoInvite],
            App::Magento => &[AccountKind::MagentoCustomer, AccountKind::MagentoAdmin],
            App::Adobe => &[AccountKind::AdobeUser],
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AccountKind::MarketoUser,
            AccountKind::MarketoInvite,
            AccountKind::MagentoCustomer,
            AccountKind::MagentoAdmin,
            AccountKind::AdobeUser,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    /// Invited, not accepted.
    Pending,
    Locked,
    /// A Magento admin with `is_active: false`.
    Inactive,
    /// A Marketo login past its `expiresAt`.
    Expired,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Active,
        Status::Pending,
        Status::Locked,
        Status::Inactive,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Locked => "locked",
            Status::Inactive => "inactive",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Status::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a grant's scope is in `app`, as a column heading.
pub fn scope_label(app: App) -> &'static str {
    match app {
        App::Marketo => "Workspace",
        App::Magento => "Website",
        App::Adobe => "Kind",
    }
}

/// One role in one scope: a Marketo role in a workspace, a Magento customer group on a
/// website, a Magento admin role (scope `admin`), an Adobe product profile (scope `product
/// profile`) or user group (scope `user group`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub role: String,
    pub scope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub kind: AccountKind,
    /// Marketo userid, Magento customer id, Magento admin username.
    pub id: String,
    /// Lower-cased; the key that joins one person's accounts across apps.
    pub email: String,
    pub name: String,
    pub status: Status,
    pub api_only: bool,
    pub grants: Vec<Grant>,
    /// A Marketo login's `expiresAt`, or a pending invitation link's expiry.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(flatten)]
    pub facts: Facts,
}

/// Every account of one instance at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub app: App,
    /// The instance's key (`marketo`, `marketo.emea`, ...).
    pub instance: String,
    /// When the app was read.
    #[serde(with = "time::serde::rfc3339")]
    pub read_at: OffsetDateTime,
    /// What the read covered, in words (a Magento read covers one website).
    pub scope: String,
    /// Sorted by email, then id.
    pub accounts: Vec<Account>,
    /// Steps Roster applied after the read, already reflected in `accounts` (so a page does
    /// not show a leaver Roster just deleted until the next read).
    #[serde(default)]
    pub changes_since_read: usize,
}

impl Inventory {
    /// The accounts of `people` (lower-cased emails) replaced by `fresh` (a targeted read's,
    /// which knows only theirs); everyone else's kept as they were.
    pub fn replace_people(
        &mut self,
        people: &std::collections::BTreeSet<String>,
        fresh: Vec<Account>,
    ) {
        self.accounts.retain(|a| !people.contains(&a.email));
        self.accounts
            .extend(fresh.into_iter().filter(|a| people.contains(&a.email)));
        self.accounts
            .sort_by(|a, b| (&a.email, &a.id).cmp(&(&b.email, &b.id)));
    }

    /// The accounts in `live` (the part of it for `app`).
    pub fn from_live(app: App, instance: &str, live: &Live, read_at: OffsetDateTime) -> Inventory {
        let mut accounts = Vec::new();
        let mut scope = String::new();
        match app {
            App::Marketo => {
                if let Some(m) = &live.marketo {
                    scope = format!(
                        "every Marketo user ({} roles, {} workspaces) and the invitations Roster is following",
                        m.roles.len(),
                        m.workspaces.len()
                    );
                    for u in &m.users {
                        let status = if u.pending.is_some() {
                            Status::Pending
                        } else if u.facts.locked {
                            Status::Locked
                        } else if u.expires_at.is_some_and(|t| t <= read_at) {
                            Status::Expired
                        } else {
                            Status::Active
                        };
                        accounts.push(Account {
                            kind: if u.pending.is_some() {
                                AccountKind::MarketoInvite
                            } else {
                                AccountKind::MarketoUser
                            },
                            id: u.userid.clone(),
                            email: u.email.clone(),
                            name: full_name(&u.first_name, &u.last_name),
                            status,
                            api_only: u.api_only,
                            grants: u
                                .roles
                                .iter()
                                .map(|r| Grant {
                                    role: r.role.clone(),
                                    scope: r.workspace.clone(),
                                })
                                .collect(),
                            expires_at: u.pending.as_ref().map_or(u.expires_at, |p| p.expires_at),
                            facts: u.facts.clone(),
                        });
                    }
                }
            }
            App::Magento => {
                if let Some(m) = &live.magento {
                    scope = format!(
                        "the customers of website {}{}{}",
                        if m.website.is_empty() {
                            "(every website)"
                        } else {
                            &m.website
                        },
                        if m.domains.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " with emails in {} (and the roster's people outside them)",
                                m.domains.join(", ")
                            )
                        },
                        if m.admins.is_some() {
                            ", and every admin user"
                        } else {
                            " (this store has no admin-user API)"
                        }
                    );
                    for c in &m.customers {
                        let website = m.website_label(c.website_id);
                        accounts.push(Account {
                            kind: AccountKind::MagentoCustomer,
                            // Made since the read: its id is the store's to say.
                            id: if c.id == crate::plan::UNKNOWN_ID {
                                String::new()
                            } else {
                                c.id.to_string()
                            },
                            email: c.email.clone(),
                            name: full_name(&c.first_name, &c.last_name),
                            status: Status::Active,
                            api_only: false,
                            grants: vec![Grant {
                                role: m.group_name(c.group_id),
                                scope: website,
                            }],
                            expires_at: None,
                            facts: c.facts.clone(),
                        });
                    }
                    for a in m.admins.iter().flatten() {
                        accounts.push(Account {
                            kind: AccountKind::MagentoAdmin,
                            id: a.username.clone(),
                            email: a.email.clone(),
                            name: full_name(&a.first_name, &a.last_name),
                            status: if !a.is_active {
                                Status::Inactive
                            } else if a.facts.locked {
                                Status::Locked
                            } else {
                                Status::Active
                            },
                            api_only: false,
                            grants: vec![Grant {
                                role: m.role_name(a.role_id),
                                scope: "admin".into(),
                            }],
                            expires_at: None,
                            facts: a.facts.clone(),
                        });
                    }
                }
            }
            App::Adobe => {
                if let Some(a) = &live.adobe {
                    scope = format!(
                        "the holders of the {} product profiles and user groups the roster names in Adobe organization {}",
                        a.managed.len(),
                        a.org_id
                    );
                    for u in a.users.values() {
                        accounts.push(Account {
                            kind: AccountKind::AdobeUser,
                            id: u.identity_type.clone(),
                            email: u.email.clone(),
                            name: full_name(&u.first_name, &u.last_name),
                            status: Status::Active,
                            api_only: false,
                            grants: u
                                .holds
                                .iter()
                                .map(|h| Grant {
                                    role: h.clone(),
                                    scope: if a.is_profile(h) {
                                        "product profile"
                                    } else {
                                        "user group"
                                    }
                                    .into(),
                                })
                                .chain(u.org_admin.then(|| Grant {
                                    role: "_org_admin".into(),
                                    scope: "admin role".into(),
                                }))
                                .collect(),
                            expires_at: None,
                            facts: Facts::default(),
                        });
                    }
                }
            }
        }
        accounts.sort_by(|a, b| (&a.email, &a.id, a.kind).cmp(&(&b.email, &b.id, b.kind)));
        Inventory {
            app,
            instance: instance.to_string(),
            read_at,
            scope,
            accounts,
            changes_since_read: 0,
        }
    }

    /// The roles and the scopes (workspaces, websites) that appear, for filter choices and
    /// the matrix's columns.
    pub fn roles_and_scopes(&self) -> (Vec<String>, Vec<String>) {
        let mut roles = BTreeSet::new();
        let mut scopes = BTreeSet::new();
        for g in self.accounts.iter().flat_map(|a| &a.grants) {
            roles.insert(g.role.as_str());
            scopes.insert(g.scope.as_str());
        }
        (
            roles.into_iter().map(String::from).collect(),
            scopes.into_iter().map(String::from).collect(),
        )
    }
}

fn full_name(first: &str, last: &str) -> String {
    format!("{} {}", first.trim(), last.trim())
        .trim()
        .to_string()
}

/// What the access page asks for. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Matched, case-insensitively, anywhere in the email, name or id.
    pub text: String,
    pub role: String,
    pub scope: String,
    pub status: Option<Status>,
    pub kind: Option<AccountKind>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `a` passes, `haystack` being `search_text(a)`.
    pub fn matches(&self, a: &Account, haystack: &str, needle: &str) -> bool {
        (needle.is_empty() || haystack.contains(needle))
            && self.status.is_none_or(|s| a.status == s)
            && self.kind.is_none_or(|k| a.kind == k)
            && (self.role.is_empty() && self.scope.is_empty()
                || a.grants.iter().any(|g| {
                    (self.role.is_empty() || g.role == self.role)
                        && (self.scope.is_empty() || g.scope == self.scope)
                }))
    }

    /// In words, for a report's scope line.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.text.is_empty() {
            parts.push(format!("matching \"{}\"", self.text));
        }
        if !self.role.is_empty() {
            parts.push(format!("role {}", self.role));
        }
        if !self.scope.is_empty() {
            parts.push(format!("in {}", self.scope));
        }
        if let Some(s) = self.status {
            parts.push(format!("status {}", s.as_str()));
        }
        if let Some(k) = self.kind {
            parts.push(format!("kind {}", k.as_str()));
        }
        if parts.is_empty() {
            "all accounts".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The lower-cased text a search looks in: email, name and id.
pub fn search_text(a: &Account) -> String {
    format!("{}\n{}\n{}", a.email, a.name, a.id).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::RoleRef;
    use crate::live::{
        MagentoAdmin, MagentoCustomer, MagentoLive, MarketoLive, MarketoUser, Named, PendingInvite,
    };
    use time::macros::datetime;

    fn marketo_live() -> Live {
        let user = |id: &str, roles: &[(&str, &str)], facts: Facts| MarketoUser {
            userid: id.into(),
            email: id.into(),
            first_name: "Ada".into(),
            last_name: id.into(),
            api_only: false,
            roles: roles.iter().map(|(r, w)| RoleRef::new(*r, *w)).collect(),
            expires_at: None,
            pending: None,
            facts,
        };
        let mut pending = user("zed@x.io", &[("Analyst", "EMEA")], Facts::default());
        pending.pending = Some(PendingInvite {
            expires_at: Some(datetime!(2026-12-07 00:00 UTC)),
        });
        let mut expired = user("old@x.io", &[("Admin", "Default")], Facts::default());
        expired.expires_at = Some(datetime!(2026-01-01 00:00 UTC));
        Live {
            adobe: None,
            marketo: Some(MarketoLive {
                roles: vec!["Admin".into(), "Analyst".into()],
                workspaces: vec!["Default".into(), "EMEA".into()],
                users: vec![
                    pending,
                    user(
                        "bea@x.io",
                        &[("Admin", "Default"), ("Analyst", "EMEA")],
                        Facts {
                            locked: true,
                            last_login_at: Some(datetime!(2026-11-01 09:00 UTC)),
                            ..Facts::default()
                        },
                    ),
                    expired,
                ],
                unread: Vec::new(),
                ims: None,
            }),
            magento: None,
        }
    }

    #[test]
    fn marketo_accounts_carry_status_grants_and_facts_sorted_by_email() {
        let inv = Inventory::from_live(
            App::Marketo,
            "marketo",
            &marketo_live(),
            datetime!(2026-11-30 00:00 UTC),
        );
        let emails: Vec<&str> = inv.accounts.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(emails, ["bea@x.io", "old@x.io", "zed@x.io"]);
        let bea = &inv.accounts[0];
        assert_eq!(bea.status, Status::Locked);
        assert_eq!(bea.grants.len(), 2);
        assert_eq!(
            bea.facts.last_login_at,
            Some(datetime!(2026-11-01 09:00 UTC))
        );
        assert_eq!(inv.accounts[1].status, Status::Expired);
        let zed = &inv.accounts[2];
        assert_eq!(
            (zed.kind, zed.status),
            (AccountKind::MarketoInvite, Status::Pending)
        );
        assert_eq!(zed.expires_at, Some(datetime!(2026-12-07 00:00 UTC)));
        let (roles, scopes) = inv.roles_and_scopes();
        assert_eq!(roles, ["Admin", "Analyst"]);
        assert_eq!(scopes, ["Default", "EMEA"]);
    }

    #[test]
    fn magento_customers_and_admins_name_their_group_website_and_role() {
        let live = Live {
            adobe: None,
            marketo: None,
            magento: Some(MagentoLive {
                domains: Vec::new(),
                unread: 0,
                groups: vec![Named {
                    id: 2,
                    name: "Wholesale".into(),
                }],
                websites: vec![Named {
                    id: 1,
                    name: "base".into(),
                }],
                admin_roles: Some(vec![Named {
                    id: 9,
                    name: "Sales".into(),
                }]),
                website: "base".into(),
                customers: vec![MagentoCustomer {
                    id: 41,
                    email: "c@x.io".into(),
                    first_name: "C".into(),
                    last_name: "D".into(),
                    group_id: 2,
                    website_id: 1,
                    facts: Facts::default(),
                }],
                admins: Some(vec![MagentoAdmin {
                    id: 3,
                    username: "ops".into(),
                    email: "ops@x.io".into(),
                    first_name: "O".into(),
                    last_name: "P".into(),
                    role_id: Some(9),
                    is_active: false,
                    facts: Facts::default(),
                }]),
            }),
        };
        let inv = Inventory::from_live(
            App::Magento,
            "magento",
            &live,
            datetime!(2026-11-30 00:00 UTC),
        );
        assert!(inv.scope.contains("website base"), "{}", inv.scope);
        let c = &inv.accounts[0];
        assert_eq!(
            (c.kind, c.id.as_str()),
            (AccountKind::MagentoCustomer, "41")
        );
        assert_eq!(
            c.grants,
            [Grant {
                role: "Wholesale".into(),
                scope: "base".into()
            }]
        );
        let a = &inv.accounts[1];
        assert_eq!(
            (a.kind, a.status),
            (AccountKind::MagentoAdmin, Status::Inactive)
        );
        assert_eq!(a.grants[0].role, "Sales");

        // A customer created since the read gets no invented id (the highest plus one
        // named another customer): it is blank until the store is read again.
        let created = crate::plan::Action::MagentoCreateCustomer {
            email: "new@x.io".into(),
            first_name: "N".into(),
            last_name: "W".into(),
            group_id: 2,
            group: "Wholesale".into(),
            website_id: 1,
        };
        let after = crate::plan::simulate(&live, [&created], datetime!(2026-11-30 00:00 UTC));
        let inv = Inventory::from_live(
            App::Magento,
            "magento",
            &after,
            datetime!(2026-11-30 00:00 UTC),
        );
        let new = inv.accounts.iter().find(|a| a.email == "new@x.io").unwrap();
        assert_eq!(new.id, "");
        assert!(
            inv.accounts.iter().all(|a| a.id != "42"),
            "{:?}",
            inv.accounts
        );
    }

    #[test]
    fn a_filter_needs_role_and_scope_on_the_same_grant() {
        let inv = Inventory::from_live(
            App::Marketo,
            "marketo",
            &marketo_live(),
            datetime!(2026-11-30 00:00 UTC),
        );
        let hits = |f: &Filter| -> Vec<String> {
            let needle = f.text.to_lowercase();
            inv.accounts
                .iter()
                .filter(|a| f.matches(a, &search_text(a), &needle))
                .map(|a| a.email.clone())
                .collect()
        };
        let role_scope = |role: &str, scope: &str| Filter {
            role: role.into(),
            scope: scope.into(),
            ..Filter::default()
        };
        assert_eq!(
            hits(&role_scope("Admin", "Default")),
            ["bea@x.io", "old@x.io"]
        );
        // bea is Admin in Default and Analyst in EMEA, never Admin in EMEA.
        assert!(hits(&role_scope("Admin", "EMEA")).is_empty());
        assert_eq!(
            hits(&Filter {
                text: "BEA@".into(),
                ..Filter::default()
            }),
            ["bea@x.io"]
        );
        assert_eq!(
            hits(&Filter {
                status: Some(Status::Pending),
                ..Filter::default()
            }),
            ["zed@x.io"]
        );
        assert_eq!(Filter::default().describe(), "all accounts");
        assert_eq!(
            role_scope("Admin", "EMEA").describe(),
            "role Admin, in EMEA"
        );
    }
}
