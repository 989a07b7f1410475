//! Planning the Adobe app: the product profiles and user groups of the Admin Console that
//! the roster names. Everything else in the organization (other products' profiles, the
//! Marketo subscription's own profile, admin roles) is left as it is.
//!
//! An account the policy protects is never touched. Nothing is taken from a holder of
//! `_org_admin` unless `policies.adobe.protect_org_admins` is false (they may still be
//! given what the roster lists), and an organization admin is never removed from the
//! organization at all.

use std::collections::{BTreeSet, HashSet};

use crate::desired::{AdobeLeaver, App, Unlisted};
use crate::inventory::AccountKind;
use crate::live::{AdobeAccount, AdobeLive, Live};

use super::{Action, Planner, leaver_reason};

/// How a leaver's account ends, in a step's words.
pub(super) fn leave_words(leave: AdobeLeaver) -> &'static str {
    match leave {
        AdobeLeaver::KeepAccount => "; the account stays in the organization",
        AdobeLeaver::RemoveFromOrg => {
            " and remove them from the Adobe organization (every Adobe product of theirs there)"
        }
        AdobeLeaver::DeleteAccount => {
            " and remove them from the Adobe organization, deleting the account if the organization owns it"
        }
    }
}

impl Planner<'_> {
    pub(super) fn adobe(&mut self, live: &AdobeLive) {
        let roster = self.roster;
        let policy = &roster.policies.adobe;
        let mut handled: HashSet<&str> = HashSet::new();
        for person in roster.people.iter().filter(|p| policy.manages(&p.email)) {
            let account = live.user(&person.email);
            if let Some(a) = account {
                handled.insert(a.email.as_str());
            }
            if policy.protects([person.email.as_str()]) {
                self.note(
                    App::Adobe,
                    &person.email,
                    "protected by policies.adobe.protected: not touched",
                );
                continue;
            }
            let wanted = roster.wanted(person);
            let wanted: BTreeSet<String> = wanted
                .adobe_profiles
                .into_iter()
                .chain(wanted.adobe_groups)
                .collect();
            if person.is_leaver(self.today()) {
                if let Some(a) = account
                    && !a.holds.is_empty()
                    && !self.adobe_protected(a)
                    && !self.kept(App::Adobe, &a.email, &a.email)
                {
                    let leave = self.adobe_app_leave(a);
                    self.step(
                        Action::AdobeOffboard {
                            email: a.email.clone(),
                            names: a.holds.iter().cloned().collect(),
                            leave,
                        },
                        leaver_reason(person),
                    );
                }
                continue;
            }
            let empty = BTreeSet::new();
            let held = account.map_or(&empty, |a| &a.holds);
            let grant: Vec<String> = wanted.difference(held).cloned().collect();
            if !grant.is_empty() {
                self.step(
                    Action::AdobeGrant {
                        email: person.email.clone(),
                        first_name: person.first_name.clone(),
                        last_name: person.last_name.clone(),
                        identity_type: live.identity_type.clone(),
                        country: live.country.clone(),
                        names: grant,
                    },
                    format!(
                        "the roster (line {}) gives {} these in the Adobe Admin Console",
                        person.line, person.email
                    ),
                );
            }
            let Some(a) = account else { continue };
            if wanted.is_empty() {
                let why = format!("{} is listed with no Adobe access", person.email);
                self.unlisted_adobe(a, &why);
                continue;
            }
            let revoke: Vec<String> = held.difference(&wanted).cloned().collect();
            if !revoke.is_empty()
                && !self.adobe_protected(a)
                && !self.kept(App::Adobe, &a.email, &a.email)
            {
                self.step(
                    Action::AdobeRevoke {
                        email: a.email.clone(),
                        names: revoke,
                    },
                    format!(
                        "the roster (line {}) no longer gives {} these",
                        person.line, person.email
                    ),
                );
            }
        }
        let unlisted: Vec<&AdobeAccount> = live
            .users
            .values()
            .filter(|u| !handled.contains(u.email.as_str()) && policy.manages(&u.email))
            .collect();
        for u in unlisted {
            self.unlisted_adobe(u, &format!("{} is not in the roster", u.email));
        }
    }

    /// Whether Roster may take nothing from `a` (then a note says why).
    fn adobe_protected(&mut self, a: &AdobeAccount) -> bool {
        let policy = &self.roster.policies.adobe;
        if policy.protects([a.email.as_str()]) {
            self.note(
                App::Adobe,
                &a.email,
                "protected by policies.adobe.protected: not touched",
            );
            return true;
        }
        if a.org_admin && policy.protect_org_admins {
            self.note(
                App::Adobe,
                &a.email,
                "holds _org_admin in the Adobe organization: Roster takes nothing from an organization admin (policies.adobe.protect_org_admins)",
            );
            return true;
        }
        false
    }

    /// What `policies.adobe.adobe_leaver` does with this account; an organization
    /// admin's stays in the organization whatever it says.
    fn adobe_app_leave(&mut self, a: &AdobeAccount) -> AdobeLeaver {
        let leave = self.roster.policies.adobe.adobe_leaver;
        if a.org_admin && !leave.is_keep() {
            self.note(
                App::Adobe,
                &a.email,
                "holds _org_admin in the Adobe organization: their account stays there whatever policies.adobe.adobe_leaver says",
            );
            return AdobeLeaver::KeepAccount;
        }
        leave
    }

    /// An account holding managed profiles or groups that no active person should have.
    fn unlisted_adobe(&mut self, a: &AdobeAccount, why: &str) {
        if self.adobe_protected(a) || self.kept(App::Adobe, &a.email, &a.email) {
            return;
        }
        let names: Vec<String> = a.holds.iter().cloned().collect();
        let revoked: Vec<(String, &str)> = names
            .iter()
            .filter_map(|n| {
                self.revoked(&a.email, AccountKind::AdobeUser, n, None)
                    .map(|why| (n.clone(), why))
            })
            .collect();
        if !revoked.is_empty() {
            let why = revoked[0].1;
            self.step(
                Action::AdobeRevoke {
                    email: a.email.clone(),
                    names: revoked.into_iter().map(|(n, _)| n).collect(),
                },
                format!("{why} ({})", a.email),
            );
            return;
        }
        match self.roster.policies.adobe.unlisted {
            Unlisted::Report => self.note(
                App::Adobe,
                &a.email,
                format!(
                    "{why} but holds {}; policy unlisted=report leaves it alone",
                    names.join(", ")
                ),
            ),
            Unlisted::Disable => self.step(
                Action::AdobeRevoke {
                    email: a.email.clone(),
                    names,
                },
                format!("{why} (policy unlisted=disable: the account stays, without them)"),
            ),
            Unlisted::Delete => {
                let leave = self.adobe_app_leave(a);
                self.step(
                    Action::AdobeOffboard {
                        email: a.email.clone(),
                        names,
                        leave,
                    },
                    format!("{why} (policy unlisted=delete)"),
                );
            }
        }
    }
}

/// What an Adobe step leaves in the snapshot. Only managed names are tracked: an account
/// holding none of them is out of Roster's view, as a fresh read would leave it.
pub(super) fn simulate(live: &mut Live, action: &Action) {
    let Some(adobe) = live.adobe.as_mut() else {
        return;
    };
    match action {
        Action::AdobeGrant {
            email,
            first_name,
            last_name,
            identity_type,
            names,
            ..
        } => {
            let email = email.to_lowercase();
            let managed = &adobe.managed;
            adobe
                .users
                .entry(email.clone())
                .or_insert_with(|| AdobeAccount {
                    email,
                    first_name: first_name.clone(),
                    last_name: last_name.clone(),
                    identity_type: identity_type.clone(),
                    holds: BTreeSet::new(),
                    org_admin: false,
                })
                .holds
                .extend(names.iter().filter(|n| managed.contains(*n)).cloned());
        }
        Action::AdobeRevoke { email, names } | Action::AdobeOffboard { email, names, .. } => {
            if let Some(u) = adobe.users.get_mut(&email.to_lowercase()) {
                for n in names {
                    u.holds.remove(n);
                }
            }
        }
        _ => {}
    }
    adobe.users.retain(|_, u| !u.holds.is_empty());
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use crate::desired::{AdobeAccess, Person, Policy, Roster, Status};
    use crate::plan::{PlanOptions, plan};

    use super::*;

    fn account(email: &str, holds: &[&str], org_admin: bool) -> AdobeAccount {
        AdobeAccount {
            email: email.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            identity_type: "federatedID".into(),
            holds: holds.iter().map(|s| s.to_string()).collect(),
            org_admin,
        }
    }

    fn live(users: Vec<AdobeAccount>) -> Live {
        Live {
            adobe: Some(AdobeLive {
                org_id: "ORG@AdobeOrg".into(),
                profiles: vec!["Creative Cloud - All Apps".into(), "Acrobat Pro".into()],
                groups: vec!["Designers".into()],
                reserved: vec![],
                managed: ["Creative Cloud - All Apps", "Designers"]
                    .map(String::from)
                    .into(),
                identity_type: "federatedID".into(),
                country: Some("US".into()),
                users: users.into_iter().map(|u| (u.email.clone(), u)).collect(),
            }),
            ..Live::default()
        }
    }

    fn person(email: &str, profiles: &[&str], status: Status, line: usize) -> Person {
        Person {
            email: email.into(),
            first_name: "First".into(),
            last_name: "Last".into(),
            status,
            end_date: None,
            department: None,
            title: None,
            access: crate::desired::Access {
                adobe: AdobeAccess {
                    profiles: profiles.iter().map(|s| s.to_string()).collect(),
                    groups: vec![],
                },
                ..Default::default()
            },
            manager: None,
            line,
        }
    }

    fn options() -> PlanOptions {
        PlanOptions {
            now: datetime!(2026-12-06 10:00 UTC),
            resend_invites: false,
        }
    }

    #[test]
    fn joiners_movers_and_leavers_change_only_managed_names_and_admins_keep_theirs() {
        let roster = Roster {
            people: vec![
                person(
                    "new@acme.example",
                    &["Creative Cloud - All Apps"],
                    Status::Active,
                    1,
                ),
                person(
                    "mover@acme.example",
                    &["Creative Cloud - All Apps"],
                    Status::Active,
                    2,
                ),
                person("gone@acme.example", &[], Status::Leaver, 3),
                person("boss@acme.example", &[], Status::Leaver, 4),
            ],
            policies: crate::desired::Policies {
                adobe: Policy {
                    unlisted: Unlisted::Delete,
                    adobe_leaver: AdobeLeaver::RemoveFromOrg,
                    ..Policy::default()
                },
                ..Default::default()
            },
            ..Roster::default()
        };
        let live = live(vec![
            account("mover@acme.example", &["Designers"], false),
            account("gone@acme.example", &["Designers"], false),
            account("boss@acme.example", &["Designers"], true),
            account(
                "stranger@acme.example",
                &["Creative Cloud - All Apps"],
                false,
            ),
        ]);
        let p = plan(&roster, &live, options());
        let described: Vec<String> = p.steps.iter().map(|s| s.action.describe()).collect();
        assert_eq!(p.steps.len(), 5, "{described:#?}");
        assert!(
            matches!(&p.steps[0].action, Action::AdobeGrant { email, names, .. }
            if email == "new@acme.example" && names == &["Creative Cloud - All Apps"])
        );
        assert!(
            matches!(&p.steps[1].action, Action::AdobeGrant { email, .. } if email == "mover@acme.example")
        );
        assert!(
            matches!(&p.steps[2].action, Action::AdobeRevoke { email, names }
            if email == "mover@acme.example" && names == &["Designers"])
        );
        assert!(p.steps[2].destructive);
        assert!(
            matches!(&p.steps[3].action, Action::AdobeOffboard { email, leave: AdobeLeaver::RemoveFromOrg, .. } if email == "gone@acme.example")
        );
        assert!(
            matches!(&p.steps[4].action, Action::AdobeOffboard { email, .. } if email == "stranger@acme.example")
        );
        assert!(p.steps.iter().all(|s| s.app == App::Adobe));
        assert!(
            p.notes
                .iter()
                .any(|n| n.account == "boss@acme.example" && n.message.contains("_org_admin")),
            "{:?}",
            p.notes
        );
        // The predicted state is what the steps say.
        let after = crate::plan::simulate(&live, p.steps.iter().map(|s| &s.action), p.created_at);
        let a = after.adobe.unwrap();
        assert_eq!(
            a.users.keys().cloned().collect::<Vec<_>>(),
            [
                "boss@acme.example",
                "mover@acme.example",
                "new@acme.example"
            ]
        );
        assert_eq!(
            a.users["mover@acme.example"].holds,
            BTreeSet::from(["Creative Cloud - All Apps".to_string()])
        );
    }

    #[test]
    fn unlisted_holders_are_reported_by_default_and_a_second_plan_has_nothing_to_do() {
        let roster = Roster {
            people: vec![person(
                "new@acme.example",
                &["Creative Cloud - All Apps"],
                Status::Active,
                1,
            )],
            ..Roster::default()
        };
        let live = live(vec![account(
            "stranger@acme.example",
            &["Designers"],
            false,
        )]);
        let p = plan(&roster, &live, options());
        assert_eq!(p.steps.len(), 1);
        assert!(
            p.notes
                .iter()
                .any(|n| n.message.contains("unlisted=report"))
        );
        let after = crate::plan::simulate(&live, p.steps.iter().map(|s| &s.action), p.created_at);
        assert!(plan(&roster, &after, options()).steps.is_empty());
    }
}
