//! Planning Magento: a customer account in the roster's group on the managed website and,
//! where the store has the admin-user API, an admin user with the roster's role;
//! unlisted accounts reported, moved to the disabled group or deactivated, or deleted.

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn magento(&mut self, live: &MagentoLive) {
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
        if let Some(reason) = self.revoked(
            &c.email,
            AccountKind::MagentoCustomer,
            &live.group_name(c.group_id),
            Some(&live.website_label(c.website_id)),
        ) {
            // Moving to another group would not end the access (see unlisted=disable):
            // a revoked customer account is offboarded, with its tombstone.
            self.step(
                Action::MagentoDeleteCustomer {
                    id: c.id,
                    email: c.email.clone(),
                },
                format!("{reason}: {} loses the customer account", c.email),
            );
            return;
        }
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

    /// An admin user made inactive (its role kept), unless it already is.
    fn deactivate_admin(&mut self, live: &MagentoLive, a: &MagentoAdmin, reason: String) {
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
                reason,
            );
        }
    }

    fn unlisted_admin(&mut self, live: &MagentoLive, a: &MagentoAdmin, why: &str) {
        if self.kept(App::Magento, &a.email, &a.username) {
            return;
        }
        if let Some(reason) = self.revoked(
            &a.email,
            AccountKind::MagentoAdmin,
            &live.role_name(a.role_id),
            None,
        ) {
            // Deactivated, not deleted: the admin user cannot sign in, and its history
            // (orders it touched, its ACL) stays for whoever looks into it.
            let reason = format!("{reason}: admin user {} is deactivated", a.username);
            self.deactivate_admin(live, a, reason);
            return;
        }
        match self.roster.policies.magento.unlisted {
            Unlisted::Report => self.note(
                App::Magento,
                &a.username,
                format!("admin user: {why}; policy unlisted=report leaves it alone"),
            ),
            Unlisted::Disable => {
                self.deactivate_admin(live, a, format!("{why} (policy unlisted=disable)"))
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

/// What a Magento step leaves in the snapshot (ids the store assigns are [`UNKNOWN_ID`]).
pub(super) fn simulate(live: &mut Live, action: &Action) {
    match action {
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
        _ => {}
    }
}
