//! The Adobe Admin Console as Roster reaches it: the connection (flags, environment, the
//! `[adobe]` section) and the read behind `roster audit adobe`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use roster_adobe::{
    AdobeConfig, AdobeGroup, AdobeUser, Client, IdentityType, SharedFamilies, Step, UserCommand,
};
use roster_domain::Secret;
use roster_domain::live::{ImsLive, ImsUser};

use crate::Globals;
use crate::conn::{AdobeConn, ImsSettings};
use crate::connect::{AdobeSection, MarketoSection};

/// The name the audit log and messages give the app.
pub const ADOBE: &str = "adobe";

/// Signs in nowhere yet: builds the client from flags, environment and config file, and
/// checks the transport (https, or http to this machine) before any secret is sent.
pub async fn connect(conn: &AdobeConn, g: &Globals) -> Result<Client> {
    connect_with(conn, g.config_file()?.adobe, g).await
}

/// [`connect`] with the `[adobe]` section already read (a Marketo session reads the
/// configuration file once for both).
async fn connect_with(conn: &AdobeConn, file: AdobeSection, g: &Globals) -> Result<Client> {
    let Some(org_id) = conn.org_id.clone().or(file.org_id) else {
        bail!(
            "no Adobe organization given: set ROSTER_ADOBE_ORG_ID (or --org-id, or org_id in the [adobe] section of the config file) to the ...@AdobeOrg id the Admin Console shows"
        );
    };
    let Some(client_id) = conn.client_id.clone().or(file.client_id) else {
        bail!(
            "no Adobe client id given: set ROSTER_ADOBE_CLIENT_ID (or client_id in [adobe]) to the OAuth Server-to-Server credential's client id"
        );
    };
    let secret = match (
        &conn.client_secret,
        &file.client_secret_env,
        &file.client_secret_file,
    ) {
        (Some(s), _, _) => s.clone(),
        (None, Some(var), _) => std::env::var(var).map_err(|_| {
            anyhow::anyhow!("[adobe] client_secret_env names {var}, which is not set")
        })?,
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| {
                format!(
                    "cannot read the Adobe client secret file {} ([adobe] client_secret_file)",
                    path.display()
                )
            })?
            .trim()
            .to_string(),
        (None, None, None) => match file.client_secret {
            Some(s) => s,
            None => bail!(
                "no Adobe client secret given: set ROSTER_ADOBE_CLIENT_SECRET (or client_secret_env / client_secret_file in [adobe])"
            ),
        },
    };
    let mut config = AdobeConfig::new(org_id, client_id, Secret::new(secret));
    if let Some(url) = conn.url.clone().or(file.url) {
        config.umapi_url = url.trim_end_matches('/').to_string();
    }
    if let Some(url) = conn.ims_url.clone().or(file.ims_url) {
        config.ims_url = url.trim_end_matches('/').to_string();
    }
    for url in [&config.umapi_url, &config.ims_url] {
        roster_domain::endpoint::check_transport(url, crate::connect::allow_insecure_http())
            .map_err(|e| anyhow::anyhow!("Adobe: {e}"))?;
    }
    if let Some(t) = crate::connect::call_timeout() {
        config.timeout = t;
    }
    config.shared = Some(shared_pacing(&config, g).await?);
    Ok(Client::new(config)?)
}

/// Adobe's limits are per client: every Roster process using this client counts its calls
/// with the others', in the PostgreSQL state when there is one, else in ledger files in
/// the state folder (the processes of this machine).
async fn shared_pacing(config: &AdobeConfig, g: &Globals) -> Result<SharedFamilies> {
    let key = format!("{ADOBE}:{}:{}", config.org_id, config.client_id);
    let limits = &config.limits;
    if g.database.is_some() {
        let state = crate::connect::open_state(g.state.as_deref(), g.database.as_deref()).await?;
        if state.backend() == roster_store::Backend::Postgres {
            let family =
                |name: &str, limit: u32| -> std::sync::Arc<dyn roster_pacing::SharedPacing> {
                    std::sync::Arc::new(crate::shared_pacing::PostgresPacing::with_limits(
                        state.clone(),
                        &format!("{key}:{name}"),
                        limit,
                        limits.window,
                        limit as usize,
                        config.timeout,
                    ))
                };
            return Ok(SharedFamilies {
                action: family("action", limits.action),
                users: family("users", limits.users),
                groups: family("groups", limits.groups),
            });
        }
    }
    let dir = crate::connect::state_dir(g.state.as_deref());
    let ledger = crate::lock::pacing_ledger_path(&dir, ADOBE, &key);
    let folder = ledger.parent().expect("a ledger is in a folder");
    crate::private::create_dir(folder)?;
    let prefix = ledger
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(ADOBE)
        .to_string();
    SharedFamilies::ledgers(folder, &prefix, limits, config.timeout).with_context(|| {
        format!(
            "cannot open the Adobe pacing ledgers in {}",
            folder.display()
        )
    })
}

/// The organization as an audit shows it: every user with the groups they hold, directly
/// or through a user group, and the groups.
pub struct AdobeAudit {
    pub org_id: String,
    /// With every product profile they hold (`directOnly=false`).
    pub users: Vec<AdobeUser>,
    /// Each user's direct groups, by lowercased email: a profile held but not listed here
    /// comes through a user group.
    pub direct: BTreeMap<String, Vec<String>>,
    pub groups: Vec<AdobeGroup>,
}

impl AdobeAudit {
    /// Users by product profile (profiles with no users included), in the groups' order.
    pub fn by_profile(&self) -> BTreeMap<String, Vec<&AdobeUser>> {
        let mut out: BTreeMap<String, Vec<&AdobeUser>> = self
            .groups
            .iter()
            .filter(|g| g.is_product_profile())
            .map(|g| (g.group_name.clone(), Vec::new()))
            .collect();
        for u in &self.users {
            for g in &u.groups {
                if let Some(list) = out.get_mut(g) {
                    list.push(u);
                }
            }
        }
        out
    }

    /// Whether `user` holds `group` only through a user group.
    pub fn indirect(&self, user: &AdobeUser, group: &str) -> bool {
        self.direct
            .get(&user.email.to_lowercase())
            .is_some_and(|d| !d.iter().any(|g| g.eq_ignore_ascii_case(group)))
    }

    /// The kind of each group by name (`PRODUCT_PROFILE`, `USER_GROUP`, admin groups).
    pub fn kind_of(&self, group: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.group_name.eq_ignore_ascii_case(group))
            .map(|g| g.kind.as_str())
    }
}

/// Reads every group and every user twice (pages of 2,000): with the product profiles user
/// groups give (the access people have), and with their direct groups (what the Admin
/// Console assigns to them), so the audit can say which access comes through a group.
pub async fn audit(client: &Client) -> Result<AdobeAudit> {
    let groups = client.groups().await?;
    let mut users = client.users_with_indirect().await?;
    users.sort_by_key(|u| u.email.to_lowercase());
    let direct = client
        .users()
        .await?
        .into_iter()
        .map(|u| (u.email.to_lowercase(), u.groups))
        .collect();
    Ok(AdobeAudit {
        org_id: client.org_id().to_string(),
        users,
        direct,
        groups,
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AdobeConn {
    /// The connection as the environment gives it (`ROSTER_ADOBE_*`), for commands whose
    /// flags are another app's.
    pub fn from_env() -> Self {
        Self {
            url: env("ROSTER_ADOBE_URL"),
            ims_url: env("ROSTER_ADOBE_IMS_URL"),
            org_id: env("ROSTER_ADOBE_ORG_ID"),
            client_id: env("ROSTER_ADOBE_CLIENT_ID"),
            client_secret: env("ROSTER_ADOBE_CLIENT_SECRET"),
        }
    }
}

/// A Marketo subscription on Adobe Identity: the organization its standard users come
/// from, the product profiles that give it, and how new people are created.
pub struct ImsLink {
    pub client: Client,
    pub profiles: Vec<String>,
    pub identity_type: IdentityType,
    pub country: Option<String>,
    pub sync_timeout: std::time::Duration,
}

/// The instance fact holding the roles restored people get once Marketo shows them.
const RESTORING: &str = "ims-restoring";

/// The roles restores on Adobe Identity wait to grant, by lower-cased email.
pub async fn restoring(
    state: &roster_store::StateStore,
    instance: &str,
) -> Result<BTreeMap<String, Vec<roster_domain::desired::RoleRef>>> {
    Ok(state
        .fact(crate::connect::MARKETO, instance, RESTORING)
        .await?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

/// Records the roles `email`'s restore waits to grant.
pub async fn set_restoring(
    state: &roster_store::StateStore,
    instance: &str,
    email: &str,
    roles: Vec<roster_domain::desired::RoleRef>,
) -> Result<()> {
    let mut all = restoring(state, instance).await?;
    all.insert(email.to_lowercase(), roles);
    save_restoring(state, instance, &all).await
}

async fn save_restoring(
    state: &roster_store::StateStore,
    instance: &str,
    all: &BTreeMap<String, Vec<roster_domain::desired::RoleRef>>,
) -> Result<()> {
    state
        .set_fact(
            crate::connect::MARKETO,
            instance,
            RESTORING,
            &serde_json::to_string(all)?,
        )
        .await?;
    Ok(())
}

/// Forgets the restores of `emails` (lower-cased): Marketo shows them with their roles.
pub async fn forget_restoring(
    state: &roster_store::StateStore,
    instance: &str,
    emails: &[String],
) -> Result<()> {
    let mut all = restoring(state, instance).await?;
    all.retain(|email, _| !emails.contains(email));
    save_restoring(state, instance, &all).await
}

/// The instance fact under which Roster remembers when it gave `email` the profile.
fn added_fact(email: &str) -> String {
    format!("ims-added:{}", email.to_lowercase())
}

impl ImsLink {
    /// The link the configuration asks for: `identity = "adobe"` in `[marketo]` (or
    /// `ROSTER_MARKETO_IDENTITY=adobe`) with its product profiles
    /// (`ROSTER_MARKETO_PRODUCT_PROFILES`, `;`-separated), else none.
    pub async fn configured(
        file: &MarketoSection,
        adobe: AdobeSection,
        g: &Globals,
    ) -> Result<Option<Self>> {
        // The service configures its instances itself, and does not link them to Adobe yet.
        if g.no_config_file {
            return Ok(None);
        }
        let identity = env("ROSTER_MARKETO_IDENTITY").or(file.identity.clone());
        match identity.as_deref().map(str::trim) {
            None | Some("marketo") => return Ok(None),
            Some("adobe") => {}
            Some(other) => bail!(
                "the Marketo identity {other:?} is not known: set identity = \"adobe\" for a subscription on Adobe Identity, or leave it out"
            ),
        }
        let profiles: Vec<String> = match env("ROSTER_MARKETO_PRODUCT_PROFILES") {
            Some(list) => list.split(';').map(|p| p.trim().to_string()).collect(),
            None => file.product_profiles.clone().unwrap_or_default(),
        };
        let profiles: Vec<String> = profiles.into_iter().filter(|p| !p.is_empty()).collect();
        if profiles.is_empty() {
            bail!(
                "the Marketo subscription is on Adobe Identity but names no product profile: set product_profiles = [\"Marketo Engage - Production\"] in [marketo] (or ROSTER_MARKETO_PRODUCT_PROFILES), the profiles in the Admin Console that give this subscription"
            );
        }
        let sync_timeout = match env("ROSTER_MARKETO_SYNC_TIMEOUT").or(file.sync_timeout.clone()) {
            Some(t) => Some(
                crate::conn::parse_duration(&t)
                    .map_err(|e| anyhow::anyhow!("[marketo] sync_timeout: {e}"))?,
            ),
            None => None,
        };
        let settings = ImsSettings {
            adobe: AdobeConn::from_env(),
            profiles,
            identity_type: env("ROSTER_ADOBE_IDENTITY_TYPE").or(adobe.identity_type.clone()),
            country: env("ROSTER_ADOBE_COUNTRY").or(adobe.country.clone()),
            sync_timeout,
        };
        Self::from_settings(&settings, adobe, g).await.map(Some)
    }

    /// The link these settings describe (the Adobe connection completed from `adobe`, the
    /// configuration file's `[adobe]`).
    pub async fn from_settings(
        settings: &ImsSettings,
        adobe: AdobeSection,
        g: &Globals,
    ) -> Result<Self> {
        let identity_type = settings
            .identity_type
            .clone()
            .unwrap_or_else(|| "federatedID".into())
            .parse::<IdentityType>()
            .map_err(|e| anyhow::anyhow!("[adobe] identity_type: {e}"))?;
        let client = connect_with(&settings.adobe, adobe, g)
            .await
            .context("the Marketo subscription is on Adobe Identity (identity = \"adobe\"), so Roster needs the Admin Console too")?;
        Ok(Self {
            client,
            profiles: settings.profiles.clone(),
            identity_type,
            country: settings.country.clone(),
            sync_timeout: settings
                .sync_timeout
                .unwrap_or(std::time::Duration::from_secs(3600)),
        })
    }

    /// Who holds the subscription's product profiles directly: one paged read per profile.
    /// For those Marketo does not show yet (`in_marketo` says who it does, given a
    /// lower-cased email), when Roster gave them the profile, from the state.
    pub async fn read(
        &self,
        state: &roster_store::StateStore,
        instance: &str,
        in_marketo: impl Fn(&str) -> bool,
    ) -> Result<ImsLive> {
        let mut users: BTreeMap<String, ImsUser> = BTreeMap::new();
        for profile in &self.profiles {
            let Some(members) = self.client.group_members(profile).await? else {
                let known: Vec<String> = self
                    .client
                    .groups()
                    .await?
                    .into_iter()
                    .filter(|g| g.is_product_profile())
                    .map(|g| g.group_name)
                    .collect();
                bail!(
                    "the product profile {profile:?} (product_profiles) is not in the Adobe organization {}; its product profiles are: {}",
                    self.client.org_id(),
                    known.join(", ")
                );
            };
            for m in members {
                let email = m.email.to_lowercase();
                users
                    .entry(email.clone())
                    .or_insert_with(|| ImsUser {
                        email,
                        identity_type: m.kind.as_str().to_string(),
                        profiles: Default::default(),
                        org_admin: m.is_org_admin(),
                        added_at: None,
                    })
                    .profiles
                    .insert(profile.clone());
            }
        }
        for u in users.values_mut().filter(|u| !in_marketo(&u.email)) {
            u.added_at = state
                .fact(crate::connect::MARKETO, instance, &added_fact(&u.email))
                .await?
                .and_then(|t| {
                    time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                        .ok()
                });
        }
        Ok(ImsLive {
            profiles: self.profiles.clone(),
            identity_type: self.identity_type.as_str().to_string(),
            country: self.country.clone(),
            users,
            sync_timeout_seconds: self.sync_timeout.as_secs(),
            restoring: restoring(state, instance).await?,
        })
    }

    /// Remembers that Roster gave `email` the profile now, so a plan can say when they have
    /// not appeared in Marketo after the sync timeout.
    async fn remember_added(
        &self,
        state: &roster_store::StateStore,
        instance: &str,
        email: &str,
    ) -> Result<()> {
        let now = crate::text::rfc3339(time::OffsetDateTime::now_utc());
        state
            .set_fact(crate::connect::MARKETO, instance, &added_fact(email), &now)
            .await?;
        Ok(())
    }

    /// Gives `email` the product profiles, creating their Adobe account first if there is
    /// none (an existing one, of any type, is kept as it is), and remembers when in the
    /// state (see [`ImsLink::remember_added`]).
    pub async fn add_profiles(
        &self,
        state: &roster_store::StateStore,
        instance: &str,
        email: &str,
        first_name: &str,
        last_name: &str,
        profiles: &[String],
    ) -> Result<()> {
        let mut steps = Vec::new();
        if self.client.user(email).await?.is_none() {
            steps.push(Step::Create {
                kind: self.identity_type,
                firstname: first_name.to_string(),
                lastname: last_name.to_string(),
                country: self.country.clone(),
            });
        }
        steps.push(Step::Add(profiles.to_vec()));
        self.run(email, steps).await?;
        self.remember_added(state, instance, email).await
    }

    /// Takes the product profiles from `email`; then, as `leave` says, removes them from the
    /// organization (deleting the account only if the organization owns it). An
    /// organization admin is never removed.
    pub async fn remove_profiles(
        &self,
        email: &str,
        profiles: &[String],
        leave: roster_domain::desired::AdobeLeaver,
    ) -> Result<()> {
        let user = match leave.is_keep() {
            true => None,
            false => self.client.user(email).await?,
        };
        let steps = offboard_steps(user.as_ref(), email, profiles, leave)?;
        self.run(email, steps).await
    }

    async fn run(&self, email: &str, steps: Vec<Step>) -> Result<()> {
        run_command(&self.client, email, steps).await
    }
}

/// The names a tombstone's JSON list records (profiles, groups); anything else is left out.
pub fn names_in(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .map(|n| {
            n.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The steps that take `names` from `email` and then end their place in the organization
/// as `leave` says (deleting the account only if the organization owns it), given the
/// account as the Admin Console shows it (read by the caller: only `leave` needs it). An
/// organization admin is never removed from it.
pub fn offboard_steps(
    user: Option<&AdobeUser>,
    email: &str,
    names: &[String],
    leave: roster_domain::desired::AdobeLeaver,
) -> Result<Vec<Step>> {
    use roster_domain::desired::AdobeLeaver;
    let mut steps = vec![Step::Remove(names.to_vec())];
    if !leave.is_keep() {
        if user.is_some_and(AdobeUser::is_org_admin) {
            bail!(
                "{email} holds _org_admin in the Adobe organization: Roster does not remove an organization admin from it"
            );
        }
        let owned = user.is_some_and(|u| u.kind.org_owned());
        steps.push(Step::RemoveFromOrg {
            delete_account: leave == AdobeLeaver::DeleteAccount && owned,
        });
    }
    Ok(steps)
}

/// Sends one person's steps as one action command; any step Adobe refused is an error
/// naming the step and Adobe's code.
pub async fn run_command(client: &Client, email: &str, steps: Vec<Step>) -> Result<()> {
    let command = UserCommand {
        user: email.to_string(),
        steps,
    };
    let outcome = client
        .execute(std::slice::from_ref(&command), false)
        .await?;
    let failures: Vec<String> = outcome
        .iter()
        .flat_map(|o| &o.failures)
        .map(|f| {
            let what = command
                .steps
                .get(f.step)
                .map_or_else(|| "a step".to_string(), Step::describe);
            format!("{what}: {} ({})", f.message, f.code)
        })
        .collect();
    if !failures.is_empty() {
        bail!(
            "the Adobe Admin Console refused {}: {}",
            email,
            failures.join("; ")
        );
    }
    Ok(())
}
