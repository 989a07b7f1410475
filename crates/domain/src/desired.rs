//! Desired state: who should have which access in which app, and how Roster may act on the
//! accounts it finds. Read from a roster file (see `roster_file`); compared with the live
//! state by the planner.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::inventory::AccountKind;

/// The apps Roster manages. Kept closed so an unknown app in a file is an error, not a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum App {
    Marketo,
    Magento,
    /// The Adobe Admin Console as an app of its own: product profiles and user groups of
    /// other Adobe products (a Marketo subscription's own profile is Marketo's business).
    Adobe,
}

impl App {
    pub const ALL: [App; 3] = [App::Marketo, App::Magento, App::Adobe];

    pub fn name(self) -> &'static str {
        match self {
            App::Marketo => "marketo",
            App::Magento => "magento",
            App::Adobe => "adobe",
        }
    }

    /// The app a name gives (`marketo`, `magento`, `adobe`), any case.
    pub fn parse(name: &str) -> Option<App> {
        App::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Marketo role in a workspace, by name. After `Roster::resolve` the names are spelled
/// exactly as the live subscription spells them, so comparisons are plain equality.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleRef {
    pub role: String,
    pub workspace: String,
}

impl RoleRef {
    pub fn new(role: impl Into<String>, workspace: impl Into<String>) -> Self {
        RoleRef {
            role: role.into(),
            workspace: workspace.into(),
        }
    }
}

/// The names of a role assignment an app returned (its ids are looked up again when needed).
impl From<&crate::access::RoleAssignment> for RoleRef {
    fn from(a: &crate::access::RoleAssignment) -> Self {
        RoleRef::new(&a.role_name, &a.workspace_name)
    }
}

impl fmt::Display for RoleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.role, self.workspace)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Active,
    /// Leaving (or left): every account is offboarded.
    Leaver,
}

/// What one person (or one rule) grants in Magento.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MagentoAccess {
    /// A customer group name: the person should have a customer account in that group.
    pub group: Option<String>,
    /// An admin role name: the person should have an admin user with that role.
    pub admin_role: Option<String>,
}

/// What one person (or one rule) holds in the Adobe Admin Console: product profiles and
/// user groups by name. Only the names some person or rule lists are Roster's to manage;
/// every other profile (Acrobat bought by another team, the Marketo subscription's own)
/// is left as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdobeAccess {
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl AdobeAccess {
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty() && self.groups.is_empty()
    }
}

/// Access requested for one person, before rules are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub marketo: Vec<RoleRef>,
    pub magento: MagentoAccess,
    /// `adobe: { profiles: [...], groups: [...] }`.
    #[serde(default, skip_serializing_if = "AdobeAccess::is_empty")]
    pub adobe: AdobeAccess,
    /// `marketo.NAME: [...]`: the Marketo access on the service instance `marketo.NAME`,
    /// in place of `marketo` there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub marketo_at: BTreeMap<String, Vec<RoleRef>>,
    /// `magento.NAME: {...}`: the Magento access on the service instance `magento.NAME`,
    /// in place of `magento` there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub magento_at: BTreeMap<String, MagentoAccess>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Lower-cased and trimmed: the key that matches accounts in every app.
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub status: Status,
    /// The last working day. After it the person is treated as a leaver.
    pub end_date: Option<Date>,
    pub department: Option<String>,
    pub title: Option<String>,
    /// Their manager's email, lower-cased (`manager:` in the roster, SCIM's enterprise
    /// `manager`): who reviews their access in an access review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    pub access: Access,
    /// Where the person is in the roster file (1-based), for error messages.
    pub line: usize,
}

impl Person {
    /// Leaving today or earlier: explicitly, or because the end date has passed.
    pub fn is_leaver(&self, today: Date) -> bool {
        self.status == Status::Leaver || self.end_date.is_some_and(|end| end < today)
    }
}

/// Access granted to everyone whose department and/or title match (case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub department: Option<String>,
    pub title: Option<String>,
    pub access: Access,
    pub line: usize,
}

impl Rule {
    pub fn matches(&self, person: &Person) -> bool {
        let same = |want: &Option<String>, have: &Option<String>| match (want, have) {
            (None, _) => true,
            (Some(w), Some(h)) => w.trim().eq_ignore_ascii_case(h.trim()),
            (Some(_), None) => false,
        };
        (self.department.is_some() || self.title.is_some())
            && same(&self.department, &person.department)
            && same(&self.title, &person.title)
    }
}

/// What to do with a managed account that no active person should have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlisted {
    /// List it in the plan's notes; change nothing.
    #[default]
    Report,
    /// Keep the account but take its access away (Marketo: every role; Magento: the customer
    /// moves to the policy's `disabled_group`, an admin user is deactivated).
    Disable,
    /// Offboard it: a tombstone, then the deletion.
    Delete,
}

/// The most destructive steps one run may take in one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cap {
    Count(usize),
    /// A percentage of the app's managed accounts, rounded up.
    Percent(u32),
}

impl Default for Cap {
    /// Ten percent: a first run can never wipe an app, and one leaver in a small team passes.
    fn default() -> Self {
        Cap::Percent(10)
    }
}

impl Cap {
    pub fn allowed(self, managed_accounts: usize) -> usize {
        match self {
            Cap::Count(n) => n,
            Cap::Percent(p) => (managed_accounts * p as usize).div_ceil(100),
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Count(n) => write!(f, "{n}"),
            Cap::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What becomes of a leaver's Adobe account, on a Marketo subscription on Adobe Identity,
/// once the subscription's product profile is taken from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdobeLeaver {
    /// The account stays in the organization, with its other Adobe products.
    #[default]
    KeepAccount,
    /// Removed from the organization, with every Adobe product it had there; the account
    /// itself stays.
    RemoveFromOrg,
    /// Removed from the organization, and deleted if the organization owns it (an
    /// Enterprise or Federated ID). An Adobe ID belongs to its person: only removed.
    DeleteAccount,
}

impl AdobeLeaver {
    pub fn is_keep(&self) -> bool {
        *self == AdobeLeaver::KeepAccount
    }
}

/// How Roster may act on one app's accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Only accounts whose email is in one of these domains are Roster's; empty means all.
    pub managed_domains: Vec<String>,
    /// Emails, userids or usernames never touched (lower-cased).
    pub protected: BTreeSet<String>,
    /// Marketo API-only users belong to integrations, not people: never touched by default.
    pub protect_api_only: bool,
    pub unlisted: Unlisted,
    pub max_destructive: Cap,
    /// Magento: the customer group a disabled customer is moved to.
    pub disabled_group: Option<String>,
    /// Magento: the website code customers are created in and matched on.
    pub website: String,
    /// Marketo on Adobe Identity, and the Adobe app: what becomes of a leaver's Adobe
    /// account.
    #[serde(default)]
    pub adobe_leaver: AdobeLeaver,
    /// The Adobe app: holders of `_org_admin` lose nothing to Roster (true unless the
    /// roster says otherwise; even then Roster never removes one from the organization).
    #[serde(default = "yes")]
    pub protect_org_admins: bool,
}

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            managed_domains: Vec::new(),
            protected: BTreeSet::new(),
            protect_api_only: true,
            unlisted: Unlisted::Report,
            max_destructive: Cap::default(),
            disabled_group: None,
            website: "base".into(),
            adobe_leaver: AdobeLeaver::KeepAccount,
            protect_org_admins: true,
        }
    }
}

impl Policy {
    pub fn manages(&self, email: &str) -> bool {
        self.managed_domains.is_empty()
            || email.rsplit_once('@').is_some_and(|(_, domain)| {
                self.managed_domains
                    .iter()
                    .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain))
            })
    }

    /// Whether any of the account's names (email, userid, username) is protected.
    pub fn protects<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> bool {
        names
            .into_iter()
            .any(|n| self.protected.contains(&n.trim().to_lowercase()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    pub marketo: Policy,
    pub magento: Policy,
    #[serde(default)]
    pub adobe: Policy,
    /// People whose SSH signature a destructive plan needs (`policies.approvers`): when
    /// any are listed, `roster apply` runs destructive steps only with a valid signature
    /// of the plan by one of them other than its author. A typed name proves nothing; a
    /// signature made with a key only that person holds does.
    #[serde(default)]
    pub approvers: Vec<Approver>,
}

/// An approver as the roster lists them: a name and an `ssh-ed25519` public key line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub name: String,
    pub key: String,
}

impl Policies {
    pub fn of(&self, app: App) -> &Policy {
        match app {
            App::Marketo => &self.marketo,
            App::Magento => &self.magento,
            App::Adobe => &self.adobe,
        }
    }
}

/// The whole desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// The file it came from, for messages.
    pub source: String,
    /// SHA-256 of the bytes it was read from (the roster file, then its `people_file`), so
    /// a plan can tell whether the roster changed since.
    #[serde(default)]
    pub digest: String,
    pub people: Vec<Person>,
    pub rules: Vec<Rule>,
    pub policies: Policies,
    /// Accounts kept as they are until a time, whatever the roster says: an approved
    /// restore of someone the roster still lists as a leaver. Not from the file: Roster's
    /// state holds them, and the planner honours them until they lapse.
    #[serde(skip)]
    pub exceptions: Vec<Exception>,
    /// Set for a targeted plan: the lower-cased emails of the only people it is about (a
    /// SCIM change, a roster edit, an API request named them). Not from the file: whoever
    /// asks for the plan sets it with [`Roster::target`].
    #[serde(skip)]
    pub target: Option<BTreeSet<String>>,
    /// Entitlements closed access reviews took away: never granted again, removed where
    /// found, whatever the file says. Not from the file: Roster's state holds them.
    #[serde(skip)]
    pub revocations: Vec<crate::review::Revocation>,
}

/// An account kept until `until`: its removal is not planned before then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub app: App,
    /// The account's email, lower-cased.
    pub email: String,
    pub until: time::OffsetDateTime,
    /// Why, for the plan's note (e.g. "restored by request 3, approved by bo").
    pub reason: String,
}

/// What a person should end up with, rules applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    pub marketo: BTreeSet<RoleRef>,
    pub magento_group: Option<String>,
    pub magento_admin_role: Option<String>,
    pub adobe_profiles: BTreeSet<String>,
    pub adobe_groups: BTreeSet<String>,
}

impl Roster {
    /// Narrows the roster to the people `emails` name (a targeted plan): the others are
    /// dropped, and the planner leaves every account outside `emails` alone.
    pub fn target(&mut self, emails: impl IntoIterator<Item = String>) {
        let set: BTreeSet<String> = emails
            .into_iter()
            .map(|e| e.trim().to_lowercase())
            .collect();
        self.people
            .retain(|p| set.contains(&p.email.to_lowercase()));
        self.target = Some(set);
    }

    /// Whether a plan of this roster is about `email`: every account, unless targeted.
    pub fn targets(&self, email: &str) -> bool {
        self.target
            .as_ref()
            .is_none_or(|t| t.contains(&email.to_lowercase()))
    }

    /// The exception that keeps `email`'s account in `app` at `now`, if one does.
    pub fn exception(
        &self,
        app: App,
        email: &str,
        now: time::OffsetDateTime,
    ) -> Option<&Exception> {
        self.exceptions
            .iter()
            .find(|e| e.app == app && e.until > now && e.email.eq_ignore_ascii_case(email))
    }

    /// The person's own access plus every matching rule's. A person's own group or admin
    /// role wins over a rule's; among rules the first wins.
    pub fn wanted(&self, person: &Person) -> Wanted {
        let mut wanted = Wanted {
            marketo: person.access.marketo.iter().cloned().collect(),
            magento_group: person.access.magento.group.clone(),
            magento_admin_role: person.access.magento.admin_role.clone(),
            adobe_profiles: person.access.adobe.profiles.iter().cloned().collect(),
            adobe_groups: person.access.adobe.groups.iter().cloned().collect(),
        };
        for rule in self.rules.iter().filter(|r| r.matches(person)) {
            wanted.marketo.extend(rule.access.marketo.iter().cloned());
            wanted
                .adobe_profiles
                .extend(rule.access.adobe.profiles.iter().cloned());
            wanted
                .adobe_groups
                .extend(rule.access.adobe.groups.iter().cloned());
            if wanted.magento_group.is_none() {
                wanted.magento_group = rule.access.magento.group.clone();
            }
            if wanted.magento_admin_role.is_none() {
                wanted.magento_admin_role = rule.access.magento.admin_role.clone();
            }
        }
        for r in self.revoked(&person.email) {
            let is = |name: &str| r.role.eq_ignore_ascii_case(name);
            match r.account_kind {
                AccountKind::MarketoUser | AccountKind::MarketoInvite => wanted
                    .marketo
                    .retain(|w| !(is(&w.role) && r.scope.eq_ignore_ascii_case(&w.workspace))),
                AccountKind::MagentoCustomer => {
                    if wanted.magento_group.as_deref().is_some_and(is) {
                        wanted.magento_group = None;
                    }
                }
                AccountKind::MagentoAdmin => {
                    if wanted.magento_admin_role.as_deref().is_some_and(is) {
                        wanted.magento_admin_role = None;
                    }
                }
                AccountKind::AdobeUser => {
                    wanted.adobe_profiles.retain(|n| !is(n));
                    wanted.adobe_groups.retain(|n| !is(n));
                }
            }
        }
        wanted
    }

    /// The revocations in force for `email`'s accounts.
    pub fn revoked<'a>(
        &'a self,
        email: &str,
    ) -> impl Iterator<Item = &'a crate::review::Revocation> + use<'a> {
        let email = email.to_lowercase();
        self.revocations
            .iter()
            .filter(move |r| r.email.eq_ignore_ascii_case(&email))
    }

    /// Whether any person or rule asks for access in `app`: an app nobody mentions need not
    /// be configured to plan.
    /// The roster as one instance sees it: the other app's access dropped, and access
    /// named for this instance (`marketo.emea: [...]`) in place of the plain access. A
    /// service instance of Marketo follows a roster that may give Magento access too (the
    /// Magento instances' business) and access on other Marketo instances.
    pub fn for_instance(&mut self, app: App, name: Option<&str>) {
        let narrow = |access: &mut Access| {
            match app {
                App::Marketo => {
                    access.magento = MagentoAccess::default();
                    access.adobe = AdobeAccess::default();
                    if let Some(named) = name.and_then(|n| access.marketo_at.remove(n)) {
                        access.marketo = named;
                    }
                }
                App::Magento => {
                    access.marketo.clear();
                    access.adobe = AdobeAccess::default();
                    if let Some(named) = name.and_then(|n| access.magento_at.remove(n)) {
                        access.magento = named;
                    }
                }
                App::Adobe => {
                    access.marketo.clear();
                    access.magento = MagentoAccess::default();
                }
            }
            access.marketo_at.clear();
            access.magento_at.clear();
        };
        self.people.iter_mut().for_each(|p| narrow(&mut p.access));
        self.rules.iter_mut().for_each(|r| narrow(&mut r.access));
    }

    /// Forgets the access named for instances: what a command without instance names (the
    /// CLI) plans from.
    pub fn drop_named(&mut self) {
        let drop = |access: &mut Access| {
            access.marketo_at.clear();
            access.magento_at.clear();
        };
        self.people.iter_mut().for_each(|p| drop(&mut p.access));
        self.rules.iter_mut().for_each(|r| drop(&mut r.access));
    }

    /// Every instance the roster names (`marketo.emea` gives `(Marketo, "emea")`), with the
    /// line of each first mention.
    pub fn named_instances(&self) -> BTreeMap<(App, String), usize> {
        let mut out = BTreeMap::new();
        let lines = self
            .people
            .iter()
            .map(|p| (&p.access, p.line))
            .chain(self.rules.iter().map(|r| (&r.access, r.line)));
        for (access, line) in lines {
            for name in access.marketo_at.keys() {
                out.entry((App::Marketo, name.clone())).or_insert(line);
            }
            for name in access.magento_at.keys() {
                out.entry((App::Magento, name.clone())).or_insert(line);
            }
        }
        out
    }

    pub fn mentions(&self, app: App) -> bool {
        let uses = |a: &Access| match app {
            App::Marketo => !a.marketo.is_empty(),
            App::Magento => a.magento.group.is_some() || a.magento.admin_role.is_some(),
            App::Adobe => !a.adobe.is_empty(),
        };
        self.people.iter().any(|p| uses(&p.access)) || self.rules.iter().any(|r| uses(&r.access))
    }

    /// Renames every Marketo role, workspace, Magento group and admin role to the live
    /// spelling (names match case-insensitively), reporting each unknown name with its line.
    pub fn resolve(&mut self, names: &LiveNames) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let source = self.source.clone();
        let mut fix = |access: &mut Access, line: usize, whose: &str| {
            for r in &mut access.marketo {
                let Some(names) = &names.marketo else {
                    problems.push(Problem::new(&source, line, format!("{whose} asks for Marketo role {r}, but no Marketo connection is configured; configure [marketo] or remove the Marketo access")));
                    continue;
                };
                match lookup(&names.workspaces, &r.workspace) {
                    Some(w) => r.workspace = w.to_string(),
                    None => problems.push(Problem::new(
                        &source,
                        line,
                        format!(
                            "{whose}: unknown Marketo workspace {:?} in {r}; known workspaces: {}",
                            r.workspace,
                            names.workspaces.join(", ")
                        ),
                    )),
                }
                match lookup(&names.roles, &r.role) {
                    Some(n) => r.role = n.to_string(),
                    None => problems.push(Problem::new(
                        &source,
                        line,
                        format!(
                            "{whose}: unknown Marketo role {:?} in {r}; known roles: {}",
                            r.role,
                            names.roles.join(", ")
                        ),
                    )),
                }
            }
            for (value, kind) in [
                (&mut access.magento.group, "customer group"),
                (&mut access.magento.admin_role, "admin role"),
            ] {
                let Some(v) = value else { continue };
                let known = match (&names.magento, kind) {
                    (None, _) => {
                        problems.push(Problem::new(&source, line, format!("{whose} asks for Magento {kind} {v:?}, but no Magento connection is configured; configure [magento] or remove the Magento access")));
                        continue;
                    }
                    (Some(m), "customer group") => Some(&m.groups),
                    (Some(m), _) => m.admin_roles.as_ref(),
                };
                let Some(known) = known else {
                    problems.push(Problem::new(&source, line, format!("{whose} asks for Magento admin role {v:?}, but this Magento has no admin-user API (/V1/users); install an extension that provides it or remove admin_role")));
                    continue;
                };
                match lookup(known, v) {
                    Some(n) => *v = n.to_string(),
                    None => problems.push(Problem::new(
                        &source,
                        line,
                        format!(
                            "{whose}: unknown Magento {kind} {v:?}; known: {}",
                            known.join(", ")
                        ),
                    )),
                }
            }
            if !access.adobe.is_empty() {
                match &names.adobe {
                    None => problems.push(Problem::new(&source, line, format!("{whose} asks for Adobe access, but no Adobe Admin Console connection is configured; configure [adobe] (org_id, client_id, client_secret) or remove the adobe access"))),
                    Some(adobe) => {
                        for message in adobe.resolve(&mut access.adobe) {
                            problems.push(Problem::new(&source, line, format!("{whose}: {message}")));
                        }
                    }
                }
            }
        };
        for person in &mut self.people {
            let whose = person.email.clone();
            fix(&mut person.access, person.line, &whose);
        }
        for rule in &mut self.rules {
            fix(&mut rule.access, rule.line, "a rule");
        }
        if let (Some(group), Some(m)) = (&mut self.policies.magento.disabled_group, &names.magento)
        {
            match lookup(&m.groups, group) {
                Some(n) => *group = n.to_string(),
                None => problems.push(Problem::new(
                    &source,
                    0,
                    format!(
                        "policies.magento.disabled_group: unknown customer group {group:?}; known: {}",
                        m.groups.join(", ")
                    ),
                )),
            }
        }
        if let Some(m) = &names.magento
            && lookup(&m.websites, &self.policies.magento.website).is_none()
        {
            problems.push(Problem::new(
                &source,
                0,
                format!(
                    "policies.magento.website: unknown website code {:?}; known: {}",
                    self.policies.magento.website,
                    m.websites.join(", ")
                ),
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn lookup<'a>(known: &'a [String], name: &str) -> Option<&'a str> {
    let name = name.trim();
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(String::as_str)
}

/// The names the live apps know, for validating a roster.
#[derive(Debug, Clone, Default)]
pub struct LiveNames {
    pub marketo: Option<MarketoNames>,
    pub magento: Option<MagentoNames>,
    pub adobe: Option<AdobeNames>,
}

/// The Adobe organization's product profiles and user groups, and the profiles a Marketo
/// subscription on Adobe Identity gives (those are planned through Marketo's access).
#[derive(Debug, Clone, Default)]
pub struct AdobeNames {
    pub profiles: Vec<String>,
    pub groups: Vec<String>,
    pub reserved: Vec<String>,
}

impl AdobeNames {
    /// Spells each name as the organization does; says what is wrong with each that
    /// cannot be given (unknown, an admin role, a Marketo subscription's profile).
    pub fn resolve(&self, access: &mut AdobeAccess) -> Vec<String> {
        let mut problems = Vec::new();
        for (names, known, kind) in [
            (&mut access.profiles, &self.profiles, "product profile"),
            (&mut access.groups, &self.groups, "user group"),
        ] {
            for name in names.iter_mut() {
                if name.trim().starts_with('_') {
                    problems.push(format!(
                        "the Adobe {kind} {name:?} is an administrative role (names starting with '_', such as _org_admin), which the User Management API does not assign; give admin roles in the Admin Console"
                    ));
                    continue;
                }
                if lookup(&self.reserved, name).is_some() {
                    problems.push(format!(
                        "the Adobe product profile {name:?} gives the Marketo subscription on Adobe Identity: list Marketo roles under marketo: instead, and Roster gives the profile with them"
                    ));
                    continue;
                }
                match lookup(known, name) {
                    Some(n) => *name = n.to_string(),
                    None => problems.push(format!(
                        "unknown Adobe {kind} {name:?}; known: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )),
                }
            }
        }
        problems
    }
}

#[derive(Debug, Clone, Default)]
pub struct MarketoNames {
    pub roles: Vec<String>,
    pub workspaces: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MagentoNames {
    pub groups: Vec<String>,
    /// `None` when the installation has no admin-user API.
    pub admin_roles: Option<Vec<String>>,
    pub websites: Vec<String>,
}

/// One thing wrong with a roster file: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub file: String,
    /// 1-based; 0 when the problem has no single line.
    pub line: usize,
    pub message: String,
}

impl Problem {
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}
