//! Planning Marketo: invitations for joiners (or, on Adobe Identity, the subscription's
//! product profile in the Admin Console), roles and names for movers, login expiry from
//! end dates, pending invitations followed, leavers deleted (or taken out of the profile).

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn marketo(&mut self, live: &MarketoLive) {
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
                let by_review: BTreeSet<&str> = roster
                    .revoked(&person.email)
                    .filter(|r| {
                        revoke.iter().any(|w| {
                            r.role.eq_ignore_ascii_case(&w.role)
                                && r.scope.eq_ignore_ascii_case(&w.workspace)
                        })
                    })
                    .map(|r| r.reason.as_str())
                    .collect();
                self.step(
                    Action::MarketoRevoke {
                        userid: u.userid.clone(),
                        roles: revoke,
                    },
                    if by_review.is_empty() {
                        format!(
                            "the roster (line {line}) no longer gives {} these roles",
                            person.email
                        )
                    } else {
                        format!(
                            "{} (the roster, line {line}, may still give them: a revocation stands until it is lifted)",
                            by_review.into_iter().collect::<Vec<_>>().join("; ")
                        )
                    },
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
        // A review's revocation takes the roles away whatever the unlisted policy says; all
        // of them gone leaves no user (Marketo keeps none without a role).
        let roster: &'a Roster = self.roster;
        let revoked: Vec<(RoleRef, &str)> = u
            .roles
            .iter()
            .filter_map(|role| {
                roster
                    .revoked(&u.email)
                    .find(|r| {
                        matches!(
                            r.account_kind,
                            AccountKind::MarketoUser | AccountKind::MarketoInvite
                        ) && r.role.eq_ignore_ascii_case(&role.role)
                            && r.scope.eq_ignore_ascii_case(&role.workspace)
                    })
                    .map(|r| (role.clone(), r.reason.as_str()))
            })
            .collect();
        if !revoked.is_empty() {
            let reasons: BTreeSet<&str> = revoked.iter().map(|(_, why)| *why).collect();
            let reason = reasons.into_iter().collect::<Vec<_>>().join("; ");
            if revoked.len() == u.roles.len() {
                self.offboard_marketo(
                    live,
                    u,
                    &format!(
                        "{reason}: every role of {} (no role, no Marketo user)",
                        u.email
                    ),
                );
            } else {
                self.step(
                    Action::MarketoRevoke {
                        userid: u.userid.clone(),
                        roles: revoked.into_iter().map(|(r, _)| r).collect(),
                    },
                    format!("{reason} ({})", u.email),
                );
            }
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
}

/// What a Marketo step (or, on Adobe Identity, an Admin Console step of the subscription)
/// leaves in the snapshot.
pub(super) fn simulate(live: &mut Live, action: &Action, now: OffsetDateTime) {
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
        _ => {}
    }
}

fn marketo_user<'a>(live: &'a mut Live, userid: &str) -> Option<&'a mut MarketoUser> {
    live.marketo
        .as_mut()?
        .users
        .iter_mut()
        .find(|u| u.userid.eq_ignore_ascii_case(userid))
}
