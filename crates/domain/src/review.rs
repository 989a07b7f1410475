//! Access reviews: a campaign freezes one instance's access (an [`Inventory`] read for it)
//! into items, one per person x account x entitlement; reviewers decide each item; closing
//! turns every revoke and reduce into [`Revocation`]s that the planner honours from then
//! on. A revocation changes the desired state: without it the next reconcile would grant
//! the roster's access again.
//!
//! Pure: the service keeps campaigns and decisions, signs them into the audit log and
//! re-reads the app to mark items remediated.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::desired::{App, Roster};
use crate::inventory::{Account, AccountKind, Grant, Inventory, Status};

/// Which access a campaign covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    All,
    /// Admin roles, API-only users, Magento admin users, Adobe `_org_admin`.
    Privileged,
    /// One role (`ROLE@SCOPE`, or a role in every scope).
    Role {
        role: String,
        scope: Option<String>,
    },
    /// One Magento customer group (or any grant whose role is that name).
    Group(String),
}

impl Scope {
    /// `all`, `privileged`, `role=ROLE[@SCOPE]`, `group=NAME`.
    pub fn parse(text: &str) -> Result<Scope, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "scope {t:?} is not all, privileged, role=ROLE@WORKSPACE or group=NAME; write for example role=Admin@All Zones"
            )
        };
        if t.eq_ignore_ascii_case("all") || t.is_empty() {
            return Ok(Scope::All);
        }
        if t.eq_ignore_ascii_case("privileged") {
            return Ok(Scope::Privileged);
        }
        let (key, value) = t.split_once('=').ok_or_else(bad)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(bad());
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "role" => Ok(match value.rsplit_once('@') {
                Some((r, s)) if !r.trim().is_empty() && !s.trim().is_empty() => Scope::Role {
                    role: r.trim().into(),
                    scope: Some(s.trim().into()),
                },
                _ => Scope::Role {
                    role: value.into(),
                    scope: None,
                },
            }),
            "group" => Ok(Scope::Group(value.into())),
            _ => Err(bad()),
        }
    }

    fn covers(&self, app: App, account: &Account, grant: &Grant) -> bool {
        match self {
            Scope::All => true,
            Scope::Privileged => privileged(app, account, grant),
            Scope::Role { role, scope } => {
                grant.role.eq_ignore_ascii_case(role)
                    && scope
                        .as_ref()
                        .is_none_or(|s| grant.scope.eq_ignore_ascii_case(s))
            }
            Scope::Group(name) => grant.role.eq_ignore_ascii_case(name),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Privileged => f.write_str("privileged"),
            Scope::Role {
                role,
                scope: Some(s),
            } => write!(f, "role={role}@{s}"),
            Scope::Role { role, scope: None } => write!(f, "role={role}"),
            Scope::Group(g) => write!(f, "group={g}"),
        }
    }
}

/// Whether a grant is privileged access: a keep of it needs a comment, and
/// `scope = privileged` reviews only these.
pub fn privileged(app: App, account: &Account, grant: &Grant) -> bool {
    account.api_only
        || match app {
            App::Marketo => grant.role.to_ascii_lowercase().contains("admin"),
            App::Magento => account.kind == AccountKind::MagentoAdmin,
            App::Adobe => grant.role == "_org_admin" || grant.role.to_lowercase().contains("admin"),
        }
}

/// Who reviews an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reviewers {
    /// The person's manager (roster `manager`, SCIM enterprise `manager`), else the owner.
    Manager,
    /// The instance's owner (`owner` in the service configuration).
    Owner,
    /// One named reviewer for every item.
    Named(String),
}

impl Reviewers {
    pub fn parse(text: &str) -> Reviewers {
        match text.trim() {
            t if t.eq_ignore_ascii_case("manager") || t.is_empty() => Reviewers::Manager,
            t if t.eq_ignore_ascii_case("owner") => Reviewers::Owner,
            t => Reviewers::Named(t.to_lowercase()),
        }
    }
}

impl fmt::Display for Reviewers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reviewers::Manager => f.write_str("manager"),
            Reviewers::Owner => f.write_str("owner"),
            Reviewers::Named(n) => f.write_str(n),
        }
    }
}

/// One person's one entitlement on one account, as the snapshot found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// 1-based, in snapshot order: stable for the campaign's life.
    pub id: i64,
    pub email: String,
    pub name: String,
    pub account_kind: AccountKind,
    pub account_id: String,
    pub role: String,
    pub scope: String,
    pub status: Status,
    pub privileged: bool,
    pub api_only: bool,
    /// Whether the roster (file or SCIM) lists the person at all.
    pub listed: bool,
    /// Lower-cased name or email of who reviews it.
    pub reviewer: String,
    /// Why them: `manager`, `owner`, `named`, or `fallback (...)`.
    pub reviewer_because: String,
}

/// Everything needed to turn a snapshot into items.
pub struct Assign<'a> {
    pub roster: &'a Roster,
    pub reviewers: &'a Reviewers,
    /// The instance's owner, if the configuration names one.
    pub owner: Option<&'a str>,
    /// Who reviews when nobody else may (the campaign's starter, say).
    pub fallback: &'a str,
}

/// The items of a campaign over `inventory`: one per account x grant in `scope` (an
/// account with no grant at all is an item of its own, role `(no role)`), each with a
/// reviewer who is never the person whose access it is.
pub fn items(inventory: &Inventory, scope: &Scope, assign: &Assign<'_>) -> Vec<Item> {
    let managers: BTreeMap<&str, Option<&str>> = assign
        .roster
        .people
        .iter()
        .map(|p| (p.email.as_str(), p.manager.as_deref()))
        .collect();
    let mut out = Vec::new();
    for account in &inventory.accounts {
        let none = [Grant {
            role: "(no role)".into(),
            scope: String::new(),
        }];
        let grants: &[Grant] = if account.grants.is_empty() {
            &none
        } else {
            &account.grants
        };
        for grant in grants {
            if !scope.covers(inventory.app, account, grant) {
                continue;
            }
            let listed = managers.contains_key(account.email.as_str());
            let (reviewer, because) = reviewer_for(
                &account.email,
                managers.get(account.email.as_str()).copied().flatten(),
                assign,
            );
            out.push(Item {
                id: out.len() as i64 + 1,
                email: account.email.clone(),
                name: account.name.clone(),
                account_kind: account.kind,
                account_id: account.id.clone(),
                role: grant.role.clone(),
                scope: grant.scope.clone(),
                status: account.status,
                privileged: privileged(inventory.app, account, grant),
                api_only: account.api_only,
                listed,
                reviewer,
                reviewer_because: because,
            });
        }
    }
    out
}

fn reviewer_for(email: &str, manager: Option<&str>, a: &Assign<'_>) -> (String, String) {
    let first = match a.reviewers {
        Reviewers::Manager => manager.map(|m| (m.to_string(), "manager")),
        Reviewers::Owner => None,
        Reviewers::Named(n) => Some((n.clone(), "named")),
    };
    let chain = first
        .into_iter()
        .chain(a.owner.map(|o| (o.to_lowercase(), "owner")))
        .chain(std::iter::once((a.fallback.to_lowercase(), "fallback")));
    let mut skipped = Vec::new();
    for (who, why) in chain {
        if who.eq_ignore_ascii_case(email) {
            skipped.push(why);
            continue;
        }
        let because = match (why, skipped.is_empty(), a.reviewers, manager) {
            ("owner", true, Reviewers::Manager, None) => "owner (no manager named)".to_string(),
            (w, true, _, _) => w.to_string(),
            (w, false, _, _) => format!("{w} (the {} is the person)", skipped.join(" and ")),
        };
        return (who, because);
    }
    // Everyone in the chain is the person: nobody may review it until an admin delegates.
    (
        String::new(),
        "nobody: every reviewer in line is the person".into(),
    )
}

/// A reviewer's decision on one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Keep,
    Revoke,
    /// Keep some of the account's roles (`keep_roles`), revoke the rest.
    Reduce,
    NotDecided,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Keep => "keep",
            Decision::Revoke => "revoke",
            Decision::Reduce => "reduce",
            Decision::NotDecided => "not_decided",
        }
    }

    pub fn parse(text: &str) -> Option<Decision> {
        [
            Decision::Keep,
            Decision::Revoke,
            Decision::Reduce,
            Decision::NotDecided,
        ]
        .into_iter()
        .find(|d| d.as_str() == text.trim())
    }
}

/// A role as `ROLE@SCOPE` (scope empty: the role alone), how `keep_roles` names them.
pub fn role_label(role: &str, scope: &str) -> String {
    if scope.is_empty() {
        role.to_string()
    } else {
        format!("{role}@{scope}")
    }
}

/// A decided item as the campaign keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub item: Item,
    pub decision: Decision,
    /// For `reduce`: the roles of the account to keep, as `ROLE@SCOPE`.
    #[serde(default)]
    pub keep_roles: Vec<String>,
}

/// Why a decision cannot be recorded, in words for the reviewer.
pub fn check_decision(
    item: &Item,
    siblings: &[&Item],
    decision: Decision,
    keep_roles: &[String],
    comment: &str,
) -> Result<(), String> {
    if decision == Decision::Keep && item.privileged && comment.trim().is_empty() {
        return Err(format!(
            "keeping {} for {} needs a comment: it is privileged access, and an auditor asks why it stays",
            role_label(&item.role, &item.scope),
            item.email
        ));
    }
    if decision == Decision::Reduce {
        let held: BTreeSet<String> = siblings
            .iter()
            .map(|s| role_label(&s.role, &s.scope).to_lowercase())
            .collect();
        if keep_roles.is_empty() {
            return Err("reduce needs keep_roles: the roles of the account that stay (ROLE@WORKSPACE); to take them all, revoke".into());
        }
        for k in keep_roles {
            if !held.contains(&k.trim().to_lowercase()) {
                return Err(format!(
                    "keep_roles names {k:?}, which {}'s account {} does not hold; it holds {}",
                    item.email,
                    item.account_id,
                    held.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if held.len() <= keep_roles.len() {
            return Err("reduce keeps every role the account holds; that is keep".into());
        }
    }
    Ok(())
}

/// An entitlement a closed review took away: the planner removes it where it finds it and
/// never grants it again, whatever the roster says, until the revocation is lifted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Revocation {
    pub app: App,
    /// Lower-cased.
    pub email: String,
    pub account_kind: AccountKind,
    pub role: String,
    pub scope: String,
    pub review: i64,
    pub item: i64,
    /// For plan notes and reasons: "review 3 (decided by mia@acme.example)".
    pub reason: String,
}

/// The revocations a campaign's decisions make: an item revoked; for a reduce, every role
/// of that account not in `keep_roles` (the reduce covers the account, whichever of its
/// items it was recorded on).
pub fn revocations(app: App, review: i64, decided: &[Decided]) -> Vec<Revocation> {
    let mut out: BTreeMap<(String, String, String, String), Revocation> = BTreeMap::new();
    let mut add = |item: &Item, reason: String| {
        if item.role == "(no role)" && item.scope.is_empty() {
            return;
        }
        let key = (
            item.email.clone(),
            item.account_id.clone(),
            item.role.clone(),
            item.scope.clone(),
        );
        out.entry(key).or_insert_with(|| Revocation {
            app,
            email: item.email.clone(),
            account_kind: item.account_kind,
            role: item.role.clone(),
            scope: item.scope.clone(),
            review,
            item: item.id,
            reason,
        });
    };
    for d in decided {
        match d.decision {
            Decision::Revoke => add(&d.item, format!("review {review} revoked it")),
            Decision::Reduce => {
                let keep: BTreeSet<String> = d
                    .keep_roles
                    .iter()
                    .map(|k| k.trim().to_lowercase())
                    .collect();
                for sibling in decided.iter().filter(|s| {
                    s.item.email == d.item.email && s.item.account_id == d.item.account_id
                }) {
                    let label = role_label(&sibling.item.role, &sibling.item.scope).to_lowercase();
                    if !keep.contains(&label) {
                        add(
                            &sibling.item,
                            format!(
                                "review {review} reduced the account to {}",
                                d.keep_roles.join(", ")
                            ),
                        );
                    }
                }
            }
            Decision::Keep | Decision::NotDecided => {}
        }
    }
    out.into_values().collect()
}

/// Whether a revoked entitlement is gone from a fresh read of the person's accounts: no
/// account of that kind holds the role in that scope (an inactive Magento admin user, which
/// cannot sign in, holds nothing).
pub fn gone(revocation: &Revocation, accounts: &[Account]) -> bool {
    !accounts.iter().any(|a| {
        a.email == revocation.email
            && a.kind == revocation.account_kind
            && a.status != Status::Inactive
            && a.grants.iter().any(|g| {
                g.role.eq_ignore_ascii_case(&revocation.role)
                    && g.scope.eq_ignore_ascii_case(&revocation.scope)
            })
    })
}

/// What a snapshot's read covered, so the evidence shows it is the whole population.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    /// The read's own description of what it covered.
    pub scope: String,
    pub accounts: usize,
    /// Accounts by kind (`user`, `invitation`, `customer`, `admin`, ...).
    pub by_kind: BTreeMap<String, usize>,
    pub pending_invitations: usize,
    pub api_only: usize,
    pub grants: usize,
    /// Accounts the read counted but did not list (0 for a full read).
    pub unread: usize,
    /// Calls the read made to the app.
    pub calls: u64,
}

impl Completeness {
    pub fn of(inventory: &Inventory, calls: u64) -> Completeness {
        let mut by_kind = BTreeMap::new();
        for a in &inventory.accounts {
            *by_kind.entry(a.kind.as_str().to_string()).or_insert(0) += 1;
        }
        Completeness {
            scope: inventory.scope.clone(),
            accounts: inventory.accounts.len(),
            pending_invitations: inventory
                .accounts
                .iter()
                .filter(|a| a.status == Status::Pending)
                .count(),
            api_only: inventory.accounts.iter().filter(|a| a.api_only).count(),
            grants: inventory.accounts.iter().map(|a| a.grants.len()).sum(),
            by_kind,
            unread: 0,
            calls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{Access, Person, Status as PersonStatus};
    use crate::live::Facts;
    use time::macros::datetime;

    fn account(email: &str, kind: AccountKind, grants: &[(&str, &str)], api_only: bool) -> Account {
        Account {
            kind,
            id: format!("id-{email}"),
            email: email.into(),
            name: email.into(),
            status: Status::Active,
            api_only,
            grants: grants
                .iter()
                .map(|(r, s)| Grant {
                    role: (*r).into(),
                    scope: (*s).into(),
                })
                .collect(),
            expires_at: None,
            facts: Facts::default(),
        }
    }

    fn person(email: &str, manager: Option<&str>) -> Person {
        Person {
            email: email.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            status: PersonStatus::Active,
            end_date: None,
            department: None,
            title: None,
            manager: manager.map(String::from),
            access: Access::default(),
            line: 1,
        }
    }

    fn inventory() -> Inventory {
        Inventory {
            app: App::Marketo,
            instance: "marketo".into(),
            read_at: datetime!(2026-12-06 10:00 UTC),
            scope: "every user".into(),
            accounts: vec![
                account(
                    "ada@acme.example",
                    AccountKind::MarketoUser,
                    &[("Admin", "All Zones"), ("Standard User", "Default")],
                    false,
                ),
                account(
                    "boss@acme.example",
                    AccountKind::MarketoUser,
                    &[("Admin", "All Zones")],
                    false,
                ),
                account(
                    "api@acme.example",
                    AccountKind::MarketoUser,
                    &[("API", "Default")],
                    true,
                ),
            ],
            changes_since_read: 0,
        }
    }

    #[test]
    fn items_go_to_the_manager_and_never_to_the_person_themselves() {
        let roster = Roster {
            people: vec![
                person("ada@acme.example", Some("boss@acme.example")),
                person("boss@acme.example", None),
            ],
            ..Roster::default()
        };
        let assign = Assign {
            roster: &roster,
            reviewers: &Reviewers::Manager,
            owner: Some("boss@acme.example"),
            fallback: "it@acme.example",
        };
        let items = items(&inventory(), &Scope::All, &assign);
        assert_eq!(items.len(), 4);
        let by = |email: &str| -> Vec<(&str, &str)> {
            items
                .iter()
                .filter(|i| i.email == email)
                .map(|i| (i.reviewer.as_str(), i.reviewer_because.as_str()))
                .collect()
        };
        assert_eq!(
            by("ada@acme.example"),
            vec![("boss@acme.example", "manager"); 2]
        );
        // The boss owns the instance but may not review their own admin role.
        assert_eq!(
            by("boss@acme.example"),
            vec![("it@acme.example", "fallback (the owner is the person)")]
        );
        assert_eq!(
            by("api@acme.example"),
            vec![("boss@acme.example", "owner (no manager named)")]
        );
        assert!(
            items.iter().filter(|i| i.privileged).count() == 3,
            "{items:?}"
        );
        let privileged_only = super::items(&inventory(), &Scope::Privileged, &assign);
        assert_eq!(privileged_only.len(), 3);
        let one_role = super::items(
            &inventory(),
            &Scope::parse("role=standard user@default").unwrap(),
            &assign,
        );
        assert_eq!(one_role.len(), 1);
        assert_eq!(one_role[0].email, "ada@acme.example");
    }

    #[test]
    fn scopes_parse_or_say_how_to_write_them() {
        assert_eq!(Scope::parse("privileged"), Ok(Scope::Privileged));
        assert_eq!(
            Scope::parse("role=Admin@All Zones"),
            Ok(Scope::Role {
                role: "Admin".into(),
                scope: Some("All Zones".into())
            })
        );
        assert_eq!(
            Scope::parse("group=Wholesale"),
            Ok(Scope::Group("Wholesale".into()))
        );
        assert!(
            Scope::parse("team=x")
                .unwrap_err()
                .contains("role=ROLE@WORKSPACE")
        );
        for s in [
            "all",
            "privileged",
            "role=Admin@All Zones",
            "role=Admin",
            "group=Retail",
        ] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn decisions_become_revocations_and_privileged_keeps_need_a_comment() {
        let roster = Roster::default();
        let assign = Assign {
            roster: &roster,
            reviewers: &Reviewers::Owner,
            owner: Some("it@acme.example"),
            fallback: "it@acme.example",
        };
        let items = items(&inventory(), &Scope::All, &assign);
        let ada: Vec<&Item> = items
            .iter()
            .filter(|i| i.email == "ada@acme.example")
            .collect();
        let admin = ada.iter().find(|i| i.role == "Admin").unwrap();
        assert!(
            check_decision(admin, &ada, Decision::Keep, &[], " ")
                .unwrap_err()
                .contains("needs a comment")
        );
        assert!(check_decision(admin, &ada, Decision::Keep, &[], "runs the instance").is_ok());
        assert!(
            check_decision(admin, &ada, Decision::Reduce, &["Owner@Default".into()], "")
                .unwrap_err()
                .contains("does not hold")
        );
        assert!(
            check_decision(
                admin,
                &ada,
                Decision::Reduce,
                &["Admin@All Zones".into(), "Standard User@Default".into()],
                ""
            )
            .unwrap_err()
            .contains("that is keep")
        );
        let reduce = Decided {
            item: (*admin).clone(),
            decision: Decision::Reduce,
            keep_roles: vec!["standard user@default".into()],
        };
        let siblings: Vec<Decided> = ada
            .iter()
            .filter(|i| i.role != "Admin")
            .map(|i| Decided {
                item: (*i).clone(),
                decision: Decision::NotDecided,
                keep_roles: vec![],
            })
            .chain([reduce])
            .collect();
        let boss = items
            .iter()
            .find(|i| i.email == "boss@acme.example")
            .unwrap();
        let mut all = siblings.clone();
        all.push(Decided {
            item: boss.clone(),
            decision: Decision::Revoke,
            keep_roles: vec![],
        });
        let r = revocations(App::Marketo, 7, &all);
        let got: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.email.as_str(), r.role.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ada@acme.example", "Admin"),
                ("boss@acme.example", "Admin")
            ]
        );
        let inv = inventory();
        assert!(!gone(&r[0], &inv.accounts));
        let mut after = inv.accounts.clone();
        after[0].grants.retain(|g| g.role != "Admin");
        assert!(gone(&r[0], &after));
    }
}
