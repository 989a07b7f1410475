//! The reports an auditor asks for beside a review, computed from an instance's inventory
//! and its roster: privileged access, dormant accounts (no sign-in for N days, where the app
//! gives the last sign-in), orphaned accounts (nobody in the roster), and leavers whose
//! account still exists. Pure: the service and the console feed them what they stored.

use std::collections::BTreeMap;

use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::desired::{App, Roster};
use crate::inventory::{Account, AccountKind, Inventory, Status};

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Privileged,
    Dormant,
    Orphaned,
    Leavers,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Privileged,
        Kind::Dormant,
        Kind::Orphaned,
        Kind::Leavers,
    ];

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Privileged => "privileged",
            Kind::Dormant => "dormant",
            Kind::Orphaned => "orphaned",
            Kind::Leavers => "leavers",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Privileged => "Privileged access",
            Kind::Dormant => "Dormant accounts",
            Kind::Orphaned => "Orphaned accounts",
            Kind::Leavers => "Leavers still active",
        }
    }
}

/// One account in a report, with why it is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub email: String,
    pub name: String,
    pub account_kind: String,
    pub account_id: String,
    pub status: String,
    /// `ROLE@SCOPE` (or `ROLE`), as the app shows them.
    pub roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    pub why: String,
}

fn row(a: &Account, why: String) -> Row {
    Row {
        email: a.email.clone(),
        name: a.name.clone(),
        account_kind: a.kind.as_str().into(),
        account_id: a.id.clone(),
        status: a.status.as_str().into(),
        roles: a
            .grants
            .iter()
            .map(|g| {
                if g.scope.is_empty() {
                    g.role.clone()
                } else {
                    format!("{}@{}", g.role, g.scope)
                }
            })
            .collect(),
        last_login_at: a.facts.last_login_at,
        why,
    }
}

/// Whether the app tells when this kind of account last signed in.
pub fn gives_last_login(kind: AccountKind) -> bool {
    matches!(kind, AccountKind::MarketoUser | AccountKind::MagentoAdmin)
}

/// Accounts with privileged access (see [`crate::review::privileged`]).
pub fn privileged(inv: &Inventory) -> Vec<Row> {
    inv.accounts
        .iter()
        .filter_map(|a| {
            let roles: Vec<String> = a
                .grants
                .iter()
                .filter(|g| crate::review::privileged(inv.app, a, g))
                .map(|g| {
                    if g.scope.is_empty() {
                        g.role.clone()
                    } else {
                        format!("{}@{}", g.role, g.scope)
                    }
                })
                .collect();
            let why = match (a.api_only, inv.app, a.kind) {
                (true, _, _) => "API-only user".to_string(),
                (_, App::Magento, AccountKind::MagentoAdmin) => "Magento admin user".to_string(),
                _ if !roles.is_empty() => format!("holds {}", roles.join(", ")),
                _ => return None,
            };
            Some(row(a, why))
        })
        .collect()
}

/// Active or locked accounts that have not signed in for `days` days (or never), of the
/// kinds whose app gives the last sign-in.
pub fn dormant(inv: &Inventory, now: OffsetDateTime, days: u32) -> Vec<Row> {
    let cutoff = now - time::Duration::days(i64::from(days));
    inv.accounts
        .iter()
        .filter(|a| gives_last_login(a.kind) && !a.api_only)
        .filter(|a| matches!(a.status, Status::Active | Status::Locked))
        .filter_map(|a| match a.facts.last_login_at {
            None => Some(row(a, "never signed in".into())),
            Some(at) if at < cutoff => Some(row(
                a,
                format!("last signed in {} days ago", (now - at).whole_days()),
            )),
            Some(_) => None,
        })
        .collect()
}

/// Accounts of people the roster does not list (within the app's `managed_domains`; for
/// Magento, customers outside them are shoppers, not staff).
pub fn orphaned(inv: &Inventory, roster: &Roster) -> Vec<Row> {
    let listed: BTreeMap<String, ()> = roster
        .people
        .iter()
        .map(|p| (p.email.to_lowercase(), ()))
        .collect();
    let policy = match inv.app {
        App::Marketo => &roster.policies.marketo,
        App::Magento => &roster.policies.magento,
        App::Adobe => &roster.policies.adobe,
    };
    inv.accounts
        .iter()
        .filter(|a| !listed.contains_key(&a.email.to_lowercase()))
        .filter(|a| a.kind == AccountKind::MagentoAdmin || policy.manages(&a.email))
        .filter(|a| a.status != Status::Pending)
        .map(|a| {
            row(
                a,
                if a.api_only {
                    "API-only user nobody in the roster owns".into()
                } else {
                    "nobody in the roster has this email".into()
                },
            )
        })
        .collect()
}

/// Accounts of people the roster calls leavers (status, or an end date before `today`;
/// SCIM's `active: false` arrives as a leaver) that still exist.
pub fn leavers(inv: &Inventory, roster: &Roster, today: Date) -> Vec<Row> {
    let leavers: BTreeMap<String, String> = roster
        .people
        .iter()
        .filter(|p| p.is_leaver(today))
        .map(|p| {
            (
                p.email.to_lowercase(),
                match p.end_date {
                    Some(end) if end < today => format!("left on {end} (roster line {})", p.line),
                    _ => format!("a leaver in the roster (line {})", p.line),
                },
            )
        })
        .collect();
    inv.accounts
        .iter()
        .filter(|a| a.status != Status::Inactive)
        .filter_map(|a| {
            leavers
                .get(&a.email.to_lowercase())
                .map(|why| row(a, why.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Grant;
    use crate::live::Facts;

    fn account(email: &str, roles: &[&str], last: Option<i64>, api_only: bool) -> Account {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000);
        Account {
            kind: AccountKind::MarketoUser,
            id: email.into(),
            email: email.into(),
            name: email.into(),
            status: Status::Active,
            api_only,
            grants: roles
                .iter()
                .map(|r| {
                    let (role, scope) = r.split_once('@').unwrap();
                    Grant {
                        role: role.into(),
                        scope: scope.into(),
                    }
                })
                .collect(),
            expires_at: None,
            facts: Facts {
                last_login_at: last.map(|d| now - time::Duration::days(d)),
                ..Facts::default()
            },
        }
    }

    #[test]
    fn reports_pick_the_accounts_they_are_about() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1000);
        let inv = Inventory {
            app: App::Marketo,
            instance: "marketo".into(),
            read_at: now,
            scope: "all".into(),
            accounts: vec![
                account("admin@acme.example", &["Admin@AllZones"], Some(1), false),
                account("api@acme.example", &["API Role@Default"], None, true),
                account("idle@acme.example", &["Standard User@US"], Some(200), false),
                account("never@acme.example", &["Standard User@US"], None, false),
                account("gone@acme.example", &["Standard User@US"], Some(3), false),
                account(
                    "shopper@elsewhere.example",
                    &["Standard User@US"],
                    Some(3),
                    false,
                ),
            ],
            changes_since_read: 0,
        };
        let roster = crate::roster_file::parse(
            "people.yaml",
            "policies:\n  marketo:\n    managed_domains: [acme.example]\npeople:\n  - email: admin@acme.example\n    first_name: A\n    last_name: B\n  - email: idle@acme.example\n    first_name: I\n    last_name: D\n  - email: never@acme.example\n    first_name: N\n    last_name: V\n    status: leaver\n",
            crate::roster_file::Format::Yaml,
        )
        .unwrap()
        .roster;
        let emails = |rows: Vec<Row>| rows.into_iter().map(|r| r.email).collect::<Vec<_>>();
        assert_eq!(
            emails(privileged(&inv)),
            ["admin@acme.example", "api@acme.example"]
        );
        assert_eq!(
            emails(dormant(&inv, now, 90)),
            ["idle@acme.example", "never@acme.example"]
        );
        assert_eq!(
            emails(orphaned(&inv, &roster)),
            ["api@acme.example", "gone@acme.example"],
            "a shopper outside managed_domains is not an orphan"
        );
        assert_eq!(
            emails(leavers(&inv, &roster, now.date())),
            ["never@acme.example"]
        );
        assert_eq!(Kind::parse("dormant"), Some(Kind::Dormant));
    }
}
