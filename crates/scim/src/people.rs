//! SCIM Users as roster people: the email from the primary (or work) email, else the
//! userName; names, department (enterprise extension) and title; `active: false` a leaver;
//! access from the groups they are in, as the service configuration maps them. A person in
//! the roster file and in SCIM with different access is a conflict: reported, and the file's
//! entry kept.

use std::collections::BTreeMap;

use roster_domain::desired::{Access, MagentoAccess, Person, Roster, Status};
use serde_json::Value;

use crate::filter::as_bool;
use crate::value::get;

/// One pushed user with the display names of the groups they are in.
pub struct Pushed<'a> {
    pub connection: &'a str,
    pub user: &'a Value,
    pub groups: Vec<&'a str>,
    /// Their manager's email, where the enterprise extension's `manager.value` names a
    /// user the same connection pushed (the caller looks it up: a SCIM id means nothing
    /// outside its connection).
    pub manager: Option<String>,
}

/// The SCIM id of a user's manager (enterprise extension `manager.value`), if given.
pub fn manager_id(user: &Value) -> Option<&str> {
    get(user, crate::ENTERPRISE_USER)
        .and_then(|e| get(e, "manager"))
        .and_then(|m| text(m, "value"))
}

fn text<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    get(v, name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The email that keys the person: the primary email, a work one, any, else a userName
/// that is an email.
pub fn email_of(user: &Value) -> Option<String> {
    let emails: Vec<&Value> = get(user, "emails")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let pick = |want: &dyn Fn(&Value) -> bool| {
        emails
            .iter()
            .find(|e| want(e))
            .and_then(|e| text(e, "value"))
    };
    pick(&|e| get(e, "primary").and_then(as_bool) == Some(true))
        .or_else(|| pick(&|e| text(e, "type").is_some_and(|t| t.eq_ignore_ascii_case("work"))))
        .or_else(|| pick(&|_| true))
        .or_else(|| text(user, "userName").filter(|u| u.contains('@')))
        .map(|e| e.to_lowercase())
}

/// Access from groups: Marketo roles and Adobe product profiles and user groups together;
/// for Magento, the first group's choice (a second group choosing differently is reported).
fn access_of(
    groups: &[&str],
    mapping: &BTreeMap<String, Access>,
    problems: &mut Vec<String>,
    who: &str,
) -> Access {
    let mut out = Access::default();
    let mut merge_magento = |have: &mut MagentoAccess, more: &MagentoAccess, group: &str| {
        for (slot, add, what) in [
            (&mut have.group, &more.group, "customer group"),
            (&mut have.admin_role, &more.admin_role, "admin role"),
        ] {
            match (slot.as_ref(), add) {
                (None, Some(a)) => *slot = Some(a.clone()),
                (Some(h), Some(a)) if h != a => problems.push(format!(
                    "{who}: SCIM group {group:?} gives Magento {what} {a:?}, another gives {h:?}; the first is used"
                )),
                _ => {}
            }
        }
    };
    let mut names: Vec<&&str> = groups.iter().collect();
    names.sort();
    for g in names {
        let Some(a) = mapping.get(*g) else { continue };
        for r in &a.marketo {
            if !out.marketo.contains(r) {
                out.marketo.push(r.clone());
            }
        }
        for (name, roles) in &a.marketo_at {
            let slot = out.marketo_at.entry(name.clone()).or_default();
            for r in roles {
                if !slot.contains(r) {
                    slot.push(r.clone());
                }
            }
        }
        merge_magento(&mut out.magento, &a.magento, g);
        for (have, more) in [
            (&mut out.adobe.profiles, &a.adobe.profiles),
            (&mut out.adobe.groups, &a.adobe.groups),
        ] {
            for n in more {
                if !have.iter().any(|h| h.eq_ignore_ascii_case(n)) {
                    have.push(n.clone());
                }
            }
        }
        for (name, m) in &a.magento_at {
            let slot = out.magento_at.entry(name.clone()).or_default();
            merge_magento(slot, m, g);
        }
    }
    out
}

/// The person a pushed user is, or why they cannot be one.
pub fn person_of(
    p: &Pushed<'_>,
    mapping: &BTreeMap<String, Access>,
    problems: &mut Vec<String>,
) -> Option<Person> {
    let user = p.user;
    let Some(email) = email_of(user) else {
        problems.push(format!(
            "SCIM user {:?} ({}) has no email and a userName that is not one: left out",
            text(user, "userName").unwrap_or("?"),
            p.connection
        ));
        return None;
    };
    let name = get(user, "name");
    let display = text(user, "displayName").unwrap_or_default();
    let first = name
        .and_then(|n| text(n, "givenName"))
        .map(String::from)
        .unwrap_or_else(|| {
            display
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        });
    let last = name
        .and_then(|n| text(n, "familyName"))
        .map(String::from)
        .unwrap_or_else(|| {
            display
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        });
    let enterprise = get(user, crate::ENTERPRISE_USER);
    let active = get(user, "active").and_then(as_bool).unwrap_or(true);
    let manager = p.manager.clone().filter(|m| *m != email);
    Some(Person {
        access: access_of(&p.groups, mapping, problems, &email),
        email,
        first_name: first,
        last_name: last,
        status: if active {
            Status::Active
        } else {
            Status::Leaver
        },
        end_date: None,
        department: enterprise
            .and_then(|e| text(e, "department"))
            .map(String::from),
        title: text(user, "title").map(String::from),
        manager,
        line: 0,
    })
}

/// Adds the SCIM people to `roster`. Someone already in the file keeps the file's entry; if
/// SCIM says otherwise (access, or a leaver), that is a conflict, returned with the rest of
/// what went wrong. Someone pushed by two connections keeps the first.
pub fn merge(roster: &mut Roster, people: Vec<(String, Person)>) -> Vec<String> {
    let mut problems = Vec::new();
    for (connection, p) in people {
        match roster.people.iter().find(|q| q.email == p.email) {
            Some(q) if q.line == 0 => problems.push(format!(
                "{} is pushed by more than one SCIM connection; {connection}'s is left out",
                p.email
            )),
            Some(q) if q.access != p.access || q.status != p.status => problems.push(format!(
                "conflict: {} is in {}:{} and pushed by SCIM ({connection}) with {}; the file's entry is used until one of them changes",
                p.email,
                roster.source,
                q.line,
                if q.status != p.status {
                    "another status"
                } else {
                    "other access"
                }
            )),
            Some(_) => {}
            None => roster.people.push(p),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_domain::desired::RoleRef;
    use serde_json::json;

    fn mapping() -> BTreeMap<String, Access> {
        let mut m = BTreeMap::new();
        m.insert(
            "Marketing Ops".to_string(),
            Access {
                marketo: vec![RoleRef::new("Marketing User", "Default")],
                magento: MagentoAccess {
                    group: Some("Wholesale".into()),
                    admin_role: None,
                },
                ..Access::default()
            },
        );
        m.insert(
            "Analysts".to_string(),
            Access {
                marketo: vec![RoleRef::new("Analytics User", "US")],
                magento: MagentoAccess {
                    group: Some("Retail".into()),
                    admin_role: None,
                },
                adobe: roster_domain::desired::AdobeAccess {
                    profiles: vec!["Creative Cloud All Apps".into()],
                    groups: vec!["Marketing Ops".into()],
                },
                ..Access::default()
            },
        );
        m
    }

    #[test]
    fn a_pushed_user_becomes_a_person_with_the_access_of_their_groups() {
        let user = json!({
            "userName": "00u1",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann@home.example", "type": "home"}, {"value": "Ann.Lee@Acme.example", "type": "work", "primary": "True"}],
            "title": "Analyst",
            "active": true,
            crate::ENTERPRISE_USER: {"department": "Marketing"}
        });
        let mut problems = Vec::new();
        let p = person_of(
            &Pushed {
                connection: "entra",
                user: &user,
                groups: vec!["Marketing Ops", "Analysts", "Unmapped"],
                manager: None,
            },
            &mapping(),
            &mut problems,
        )
        .unwrap();
        assert_eq!(p.email, "ann.lee@acme.example");
        assert_eq!(
            (p.first_name.as_str(), p.last_name.as_str()),
            ("Ann", "Lee")
        );
        assert_eq!(p.department.as_deref(), Some("Marketing"));
        assert_eq!(p.title.as_deref(), Some("Analyst"));
        assert_eq!(p.access.marketo.len(), 2);
        // A SCIM group gives Adobe product profiles and user groups.
        assert_eq!(p.access.adobe.profiles, ["Creative Cloud All Apps"]);
        assert_eq!(p.access.adobe.groups, ["Marketing Ops"]);
        // Two groups choose different Magento groups: the first (by name) and a report.
        assert_eq!(p.access.magento.group.as_deref(), Some("Retail"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let gone = json!({"userName": "bo@acme.example", "active": "False"});
        let p = person_of(
            &Pushed {
                connection: "okta",
                user: &gone,
                groups: vec![],
                manager: None,
            },
            &mapping(),
            &mut problems,
        )
        .unwrap();
        assert_eq!(
            (p.email.as_str(), p.status),
            ("bo@acme.example", Status::Leaver)
        );
        assert!(
            person_of(
                &Pushed {
                    connection: "okta",
                    user: &json!({"userName": "nomail"}),
                    groups: vec![],
                    manager: None
                },
                &mapping(),
                &mut problems
            )
            .is_none()
        );
    }

    #[test]
    fn the_file_wins_a_conflict_and_says_so() {
        let mut roster = Roster {
            source: "people.yaml".into(),
            digest: String::new(),
            people: vec![Person {
                email: "ann@acme.example".into(),
                first_name: "Ann".into(),
                last_name: "Lee".into(),
                status: Status::Active,
                end_date: None,
                department: None,
                title: None,
                access: Access::default(),
                manager: None,
                line: 7,
            }],
            rules: vec![],
            exceptions: vec![],
            policies: Default::default(),
            target: None,
            revocations: Vec::new(),
        };
        let mut other = roster.people[0].clone();
        other.access.marketo.push(RoleRef::new("Admin", "Default"));
        other.line = 0;
        let mut new = other.clone();
        new.email = "new@acme.example".into();
        let problems = merge(
            &mut roster,
            vec![("entra".into(), other), ("entra".into(), new)],
        );
        assert_eq!(roster.people.len(), 2);
        assert!(
            roster.people[0].access.marketo.is_empty(),
            "the file's entry is kept"
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("people.yaml:7") && problems[0].contains("conflict"),
            "{}",
            problems[0]
        );
    }
}
