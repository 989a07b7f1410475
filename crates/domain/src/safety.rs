//! The safety facts of a plan, computed from the actions themselves, the live state and the
//! roster's policies: which steps are destructive, which are refused outright (protected,
//! unmanaged, API-only, Roster's own account), and which caps a plan exceeds.
//!
//! The planner flags its steps with these same functions, and `apply` runs them again on
//! the steps it is about to execute, against the state it has just read. Nothing here
//! trusts a field a person could edit in a saved plan: `destructive` and `blocked` in a plan
//! file are informational, and an action naming an account by id is checked against what
//! that id is in the app now.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::desired::{App, Policies, Policy};
use crate::live::{AdobeAccount, Live, MagentoAdmin, MagentoCustomer, MarketoUser};
use crate::plan::{Action, Step};

/// Accounts Roster itself signs in with. They can never lose access or be deleted, whatever
/// a roster or a plan says: doing so would lock Roster out half-way through a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnAccounts {
    /// The Marketo API-only user that owns Roster's custom service (the token's `scope`).
    pub marketo_api_user: Option<String>,
    /// The Magento admin username Roster signs in with.
    pub magento_admin: Option<String>,
}

impl OwnAccounts {
    fn is_marketo(&self, names: &[&str]) -> bool {
        self.marketo_api_user
            .as_deref()
            .is_some_and(|me| names.iter().any(|n| n.trim().eq_ignore_ascii_case(me)))
    }

    fn is_magento_admin(&self, names: &[&str]) -> bool {
        self.magento_admin
            .as_deref()
            .is_some_and(|me| names.iter().any(|n| n.trim().eq_ignore_ascii_case(me)))
    }
}

// Whether a policy keeps Roster's hands off an account: one place, so planning, the cap's
// count of managed accounts and `apply`'s checks agree.

pub fn protected_user(policy: &Policy, u: &MarketoUser) -> bool {
    (policy.protect_api_only && u.api_only)
        || policy.protects([u.userid.as_str(), u.email.as_str()])
}

pub fn protected_customer(policy: &Policy, c: &MagentoCustomer) -> bool {
    policy.protects([c.email.as_str()])
}

pub fn protected_admin(policy: &Policy, a: &MagentoAdmin) -> bool {
    policy.protects([a.username.as_str(), a.email.as_str()])
}

/// An Adobe account Roster takes nothing from: listed as protected, or an organization
/// admin while `protect_org_admins` holds.
pub fn protected_adobe(policy: &Policy, a: &AdobeAccount) -> bool {
    policy.protects([a.email.as_str()]) || (a.org_admin && policy.protect_org_admins)
}

/// Managed, unprotected accounts per app: what a percentage cap is a percentage of.
pub fn managed_accounts(policies: &Policies, live: &Live, app: App) -> usize {
    let policy = policies.of(app);
    match app {
        App::Marketo => live.marketo.as_ref().map_or(0, |m| {
            let read = m
                .users
                .iter()
                .filter(|u| policy.manages(&u.email) && !protected_user(policy, u))
                .count();
            // A targeted read's other users count too: a cap is a share of everyone.
            read + m.unread.iter().filter(|e| policy.manages(e)).count()
        }),
        App::Magento => live.magento.as_ref().map_or(0, |m| {
            let customers = m
                .customers
                .iter()
                .filter(|c| policy.manages(&c.email) && !protected_customer(policy, c))
                .count();
            let admins = m
                .admins
                .iter()
                .flatten()
                .filter(|a| policy.manages(&a.email) && !protected_admin(policy, a))
                .count();
            customers + m.unread + admins
        }),
        App::Adobe => live.adobe.as_ref().map_or(0, |a| {
            a.users
                .values()
                .filter(|u| policy.manages(&u.email) && !protected_adobe(policy, u))
                .count()
        }),
    }
}

fn marketo_user<'a>(live: &'a Live, userid: &str) -> Option<&'a MarketoUser> {
    live.marketo
        .as_ref()?
        .users
        .iter()
        .find(|u| u.userid.eq_ignore_ascii_case(userid))
}

fn customer(live: &Live, id: i64) -> Option<&MagentoCustomer> {
    live.magento.as_ref()?.customers.iter().find(|c| c.id == id)
}

fn admin(live: &Live, id: i64) -> Option<&MagentoAdmin> {
    live.magento
        .as_ref()?
        .admins
        .as_ref()?
        .iter()
        .find(|a| a.id == id)
}

/// Whether an action takes access or data away, judged against the state it acts on:
/// revokes and deletions always; an update when it moves a customer into the policy's
/// disabled group, deactivates an admin user, or sets a login expiry that has passed.
pub fn destructive(action: &Action, live: &Live, policies: &Policies, now: OffsetDateTime) -> bool {
    match action {
        // Withdrawing an invitation takes access away as a deletion does (it may be one an
        // approved restore sent): it waits for an approval like the rest.
        Action::MarketoRevoke { .. }
        | Action::MarketoDelete { .. }
        | Action::MarketoDeleteInvite { .. }
        | Action::AdobeRemoveProfile { .. }
        | Action::AdobeRevoke { .. }
        | Action::AdobeOffboard { .. }
        | Action::MagentoDeleteCustomer { .. }
        | Action::MagentoDeleteAdmin { .. } => true,
        Action::MarketoSetExpiry { expires_at, .. } => expires_at.is_some_and(|t| t <= now),
        Action::MagentoUpdateCustomer { id, group_id, .. } => {
            let disabled = live.magento.as_ref().and_then(|m| {
                policies
                    .magento
                    .disabled_group
                    .as_deref()
                    .and_then(|g| m.group_id(g))
            });
            let current = customer(live, *id).map(|c| c.group_id);
            disabled == Some(*group_id) && current != Some(*group_id)
        }
        Action::MagentoUpdateAdmin { id, is_active, .. } => {
            !is_active && admin(live, *id).is_none_or(|a| a.is_active)
        }
        Action::MarketoInvite { .. }
        | Action::MarketoResendInvite { .. }
        | Action::MarketoUpdate { .. }
        | Action::MarketoGrant { .. }
        | Action::AdobeAddProfile { .. }
        | Action::AdobeGrant { .. }
        | Action::MagentoCreateCustomer { .. }
        | Action::MagentoCreateAdmin { .. } => false,
    }
}

/// Why an action may never run, whatever approval it has: it touches an account the policy
/// protects or does not manage, an API-only user, Roster's own account, or names an
/// account by an id that is someone else in the app now.
pub fn refusal(
    action: &Action,
    live: &Live,
    policies: &Policies,
    own: &OwnAccounts,
) -> Option<String> {
    let app = action.app();
    let policy = policies.of(app);
    let unmanaged = |email: &str| {
        (!policy.manages(email)).then(|| {
            format!(
                "{email} is outside policies.{app}.managed_domains ({}): Roster does not manage it",
                policy.managed_domains.join(", ")
            )
        })
    };
    let protected_name = |names: &[&str]| {
        policy
            .protects(names.iter().copied())
            .then(|| format!("{} is protected by policies.{app}.protected", names[0]))
    };
    match action {
        Action::MarketoInvite { email, .. }
        | Action::AdobeAddProfile { email, .. }
        | Action::AdobeRemoveProfile { email, .. } => {
            if own.is_marketo(&[email]) {
                return Some(format!("{email} is Roster's own API user"));
            }
            if let Action::AdobeRemoveProfile { leave, .. } = action
                && !leave.is_keep()
                && live
                    .marketo
                    .as_ref()
                    .and_then(|m| m.ims.as_ref())
                    .and_then(|i| i.user(email))
                    .is_some_and(|u| u.org_admin)
            {
                return Some(format!(
                    "{email} holds _org_admin in the Adobe organization: Roster never removes an organization admin from it"
                ));
            }
            if let Action::AdobeRemoveProfile { .. } = action
                && policy.protect_api_only
                && let Some(u) = live
                    .marketo
                    .as_ref()
                    .and_then(|m| m.users.iter().find(|u| u.email.eq_ignore_ascii_case(email)))
                && u.api_only
            {
                return Some(format!(
                    "{email} is an API-only user: integrations sign in with it (policies.marketo.protect_api_only)"
                ));
            }
            protected_name(&[email]).or_else(|| unmanaged(email))
        }
        Action::MarketoResendInvite { userid, .. }
        | Action::MarketoUpdate { userid, .. }
        | Action::MarketoGrant { userid, .. }
        | Action::MarketoRevoke { userid, .. }
        | Action::MarketoSetExpiry { userid, .. }
        | Action::MarketoDeleteInvite { userid }
        | Action::MarketoDelete { userid } => {
            let user = marketo_user(live, userid);
            let email = user.map_or(userid.as_str(), |u| u.email.as_str());
            let names = [userid.as_str(), email];
            if own.is_marketo(&names) {
                return Some(format!(
                    "{userid} is Roster's own API user: without its role every call would be refused (603)"
                ));
            }
            if policy.protect_api_only && user.is_some_and(|u| u.api_only) {
                return Some(format!(
                    "{userid} is an API-only user: integrations sign in with it (policies.marketo.protect_api_only)"
                ));
            }
            protected_name(&names).or_else(|| unmanaged(email))
        }
        Action::AdobeGrant { email, .. } => protected_name(&[email]).or_else(|| unmanaged(email)),
        Action::AdobeRevoke { email, .. } | Action::AdobeOffboard { email, .. } => {
            let account = live.adobe.as_ref().and_then(|a| a.user(email));
            if let Action::AdobeOffboard { leave, .. } = action
                && !leave.is_keep()
                && account.is_some_and(|a| a.org_admin)
            {
                return Some(format!(
                    "{email} holds _org_admin in the Adobe organization: Roster never removes an organization admin from it"
                ));
            }
            if account.is_some_and(|a| a.org_admin) && policy.protect_org_admins {
                return Some(format!(
                    "{email} holds _org_admin in the Adobe organization (policies.adobe.protect_org_admins)"
                ));
            }
            protected_name(&[email]).or_else(|| unmanaged(email))
        }
        Action::MagentoCreateCustomer { email, .. } => {
            protected_name(&[email]).or_else(|| unmanaged(email))
        }
        Action::MagentoUpdateCustomer { id, email, .. }
        | Action::MagentoDeleteCustomer { id, email } => {
            let found = customer(live, *id);
            if let Some(c) = found
                && !c.email.eq_ignore_ascii_case(email)
            {
                return Some(format!(
                    "the step names customer #{id} as {email}, but #{id} is {} in the store",
                    c.email
                ));
            }
            protected_name(&[email]).or_else(|| unmanaged(email))
        }
        Action::MagentoCreateAdmin {
            username, email, ..
        } => {
            if own.is_magento_admin(&[username, email]) {
                return Some(format!("{username} is Roster's own Magento admin"));
            }
            protected_name(&[username, email]).or_else(|| unmanaged(email))
        }
        Action::MagentoUpdateAdmin { id, username, .. }
        | Action::MagentoDeleteAdmin { id, username } => {
            let found = admin(live, *id);
            if let Some(a) = found
                && !a.username.eq_ignore_ascii_case(username)
            {
                return Some(format!(
                    "the step names admin user #{id} as {username}, but #{id} is {} in the store",
                    a.username
                ));
            }
            let email = found.map_or(username.as_str(), |a| a.email.as_str());
            let names = [username.as_str(), email];
            if own.is_magento_admin(&names) {
                return Some(format!(
                    "{username} is Roster's own Magento admin: Roster would lock itself out"
                ));
            }
            protected_name(&names).or_else(|| unmanaged(email))
        }
    }
}

/// The safety facts of the steps about to run, recomputed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Indexes of the destructive steps.
    pub destructive: Vec<usize>,
    /// Steps refused outright: (index, why).
    pub refused: Vec<(usize, String)>,
    /// Caps exceeded, one message per app.
    pub blocked: Vec<String>,
}

impl Verdict {
    pub fn is_destructive(&self, index: usize) -> bool {
        self.destructive.contains(&index)
    }
}

/// The cap message for one app, if `destructive` steps exceed it.
pub fn cap_exceeded(
    policies: &Policies,
    live: &Live,
    app: App,
    destructive: usize,
) -> Option<String> {
    let cap = policies.of(app).max_destructive;
    let managed = managed_accounts(policies, live, app);
    let allowed = cap.allowed(managed);
    (destructive > allowed).then(|| {
        format!(
            "{app}: {destructive} destructive steps, above the cap of {allowed} ({cap} of {managed} managed accounts, policies.{app}.max_destructive). Nothing will run: check the roster and the live state, then raise the cap if this is intended"
        )
    })
}

/// Checks `steps` against `live` (the state just read) and the roster's policies.
pub fn verdict<'a>(
    steps: impl IntoIterator<Item = &'a Step>,
    live: &Live,
    policies: &Policies,
    own: &OwnAccounts,
    now: OffsetDateTime,
) -> Verdict {
    let mut v = Verdict::default();
    let mut per_app: BTreeMap<App, usize> = BTreeMap::new();
    for step in steps {
        if let Some(why) = refusal(&step.action, live, policies, own) {
            v.refused.push((step.index, why));
        }
        if destructive(&step.action, live, policies, now) {
            v.destructive.push(step.index);
            *per_app.entry(step.action.app()).or_default() += 1;
        }
    }
    for (app, count) in per_app {
        if let Some(message) = cap_exceeded(policies, live, app, count) {
            v.blocked.push(message);
        }
    }
    v
}
