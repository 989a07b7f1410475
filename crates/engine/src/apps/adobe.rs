//! The Adobe Admin Console as an app of its own: the product profiles and user groups the
//! roster names (`access: { adobe: { profiles, groups } }`), read group by group, given and
//! taken through UMAPI's action command, leavers offboarded with a tombstone and restored
//! from it.
//!
//! A Marketo subscription on Adobe Identity reaches the same organization through its own
//! link (`adobe_ops::ImsLink`); its product profiles are Marketo's, so this app neither
//! reads nor plans them (`reserved`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use roster_adobe::{AdobeUser, Client, IdentityType, Step};
use roster_domain::desired::{AdobeLeaver, App, Roster};
use roster_domain::live::{AdobeAccount, AdobeLive, Live};
use roster_domain::plan::{self, Action};
use roster_store::{NewTombstone, StateStore, TombstoneStatus};

use super::{Connector, Fut, StepContext};
use crate::Globals;
use crate::adobe_ops::{ADOBE, run_command};
use crate::conn::{AdobeConn, Confirm};
use crate::events::{Event, Events};

/// How people new to the organization are created: the `[adobe]` section's (or the
/// service instance's) identity type and country.
#[derive(Debug, Clone, Default)]
pub struct NewPeople {
    pub identity_type: Option<String>,
    pub country: Option<String>,
}

/// One Adobe organization, as plans and applies reach it.
pub struct AdobeSession {
    pub client: Client,
    pub state: StateStore,
    /// The organization id: what tombstones, exceptions and log lines name it by.
    pub instance: String,
    pub events: Events,
    identity_type: IdentityType,
    country: Option<String>,
    /// The product profiles a Marketo subscription on Adobe Identity gives: left to Marketo.
    pub reserved: Vec<String>,
    /// The organization's groups, read once per session: Adobe allows a client five group
    /// listings a minute, and a plan, its apply and a restore in one process need one.
    groups: tokio::sync::OnceCell<Vec<roster_adobe::AdobeGroup>>,
    _lock: Option<crate::lock::Held>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl AdobeSession {
    /// The CLI's Adobe app, when an organization is configured (`ROSTER_ADOBE_ORG_ID` or
    /// `org_id` in `[adobe]`).
    pub async fn configured(g: &Globals) -> Result<Option<Self>> {
        if g.no_config_file {
            return Ok(None);
        }
        let file = g.config_file()?.adobe;
        if env("ROSTER_ADOBE_ORG_ID").is_none() && file.org_id.is_none() {
            return Ok(None);
        }
        let people = NewPeople {
            identity_type: env("ROSTER_ADOBE_IDENTITY_TYPE").or(file.identity_type.clone()),
            country: env("ROSTER_ADOBE_COUNTRY").or(file.country.clone()),
        };
        Self::open(&AdobeConn::from_env(), &people, g)
            .await
            .map(Some)
    }

    pub async fn open(conn: &AdobeConn, people: &NewPeople, g: &Globals) -> Result<Self> {
        let identity_type = people
            .identity_type
            .as_deref()
            .unwrap_or("federatedID")
            .parse::<IdentityType>()
            .map_err(|e| anyhow::anyhow!("[adobe] identity_type: {e}"))?;
        let client = crate::adobe_ops::connect(conn, g).await?;
        let instance = client.org_id().to_string();
        let lock = crate::lock::instance(
            &crate::connect::state_dir(g.state.as_deref()),
            ADOBE,
            &instance,
        )?;
        Ok(Self {
            client,
            state: crate::connect::open_state(g.state.as_deref(), g.database.as_deref()).await?,
            instance,
            events: g.events.clone(),
            identity_type,
            country: people.country.clone(),
            reserved: Vec::new(),
            groups: tokio::sync::OnceCell::new(),
            _lock: lock,
        })
    }

    /// The organization's product profiles, user groups and admin groups (read on first
    /// need).
    async fn org_groups(&self) -> Result<&[roster_adobe::AdobeGroup]> {
        let groups = self
            .groups
            .get_or_try_init(|| self.client.groups())
            .await
            .context("reading the Adobe organization's groups")?;
        Ok(groups)
    }

    /// The cost line a run prints.
    pub fn cost_line(&self) -> String {
        let s = self.client.stats();
        format!("{} calls to the Adobe User Management API", s.calls)
    }

    /// Who holds the profiles and groups `roster` names, directly: one group listing and
    /// one paged read per managed name, whatever the size of the organization.
    pub async fn read_holders(&self, roster: &Roster) -> Result<AdobeLive> {
        let groups = self.org_groups().await?;
        let reserved = |name: &str| self.reserved.iter().any(|r| r.eq_ignore_ascii_case(name));
        let mut profiles = Vec::new();
        let mut user_groups = Vec::new();
        for g in groups {
            if g.is_product_profile() {
                profiles.push(g.group_name.clone());
            } else if g.kind == "USER_GROUP" {
                user_groups.push(g.group_name.clone());
            }
        }
        let named: BTreeSet<String> = roster
            .people
            .iter()
            .map(|p| &p.access.adobe)
            .chain(roster.rules.iter().map(|r| &r.access.adobe))
            .flat_map(|a| a.profiles.iter().chain(&a.groups))
            .map(|n| n.trim().to_lowercase())
            .collect();
        let managed: BTreeSet<String> = profiles
            .iter()
            .chain(&user_groups)
            .filter(|n| named.contains(&n.to_lowercase()) && !reserved(n))
            .cloned()
            .collect();
        let mut users: BTreeMap<String, AdobeAccount> = BTreeMap::new();
        for name in &managed {
            let members = self
                .client
                .group_members(name)
                .await
                .with_context(|| format!("reading who holds {name:?}"))?
                .unwrap_or_default();
            for m in members {
                account_of(&mut users, &m).holds.insert(name.clone());
            }
        }
        Ok(AdobeLive {
            org_id: self.instance.clone(),
            profiles,
            groups: user_groups,
            reserved: self.reserved.clone(),
            managed,
            identity_type: self.identity_type.as_str().to_string(),
            country: self.country.clone(),
            users,
        })
    }

    /// Gives `email` the names, creating their account first if the organization has none
    /// (an existing one, of any type, is kept as it is). Adding what is held already is
    /// success, so a rerun after a crash is safe.
    pub async fn grant(
        &self,
        email: &str,
        first_name: &str,
        last_name: &str,
        names: &[String],
    ) -> Result<Option<String>> {
        let mut steps = Vec::new();
        let absent = self.client.user(email).await?.is_none();
        if absent {
            steps.push(Step::Create {
                kind: self.identity_type,
                firstname: first_name.to_string(),
                lastname: last_name.to_string(),
                country: self.country.clone(),
            });
        }
        steps.push(Step::Add(names.to_vec()));
        run_command(&self.client, email, steps).await?;
        Ok(absent.then(|| {
            format!(
                "created a {} for them in the Adobe organization",
                self.identity_type.as_str()
            )
        }))
    }

    pub async fn revoke(&self, email: &str, names: &[String]) -> Result<()> {
        run_command(&self.client, email, vec![Step::Remove(names.to_vec())]).await
    }

    /// Offboards a leaver: a tombstone of what they held (their names, identity type and
    /// the Admin Console's record), then the names taken away and the account left, removed
    /// or deleted as `leave` says. An organization admin is never removed from it. A rerun
    /// after an interruption keeps the open tombstone instead of writing a second one.
    pub async fn offboard(
        &self,
        email: &str,
        names: &[String],
        leave: AdobeLeaver,
        confirm: &Confirm,
    ) -> Result<()> {
        let user = self.client.user(email).await?;
        // First, so an organization admin is refused before any tombstone is written.
        let steps = crate::adobe_ops::offboard_steps(user.as_ref(), email, names, leave)?;
        let open = crate::lifecycle::unfinished_deletion(&self.state, ADOBE, &self.instance, email)
            .await?;
        let id = match open {
            Some(t) => t.id,
            None => {
                let (first, last, kind, raw) = match &user {
                    Some(u) => (
                        u.firstname.clone().unwrap_or_default(),
                        u.lastname.clone().unwrap_or_default(),
                        u.kind.as_str(),
                        serde_json::to_value(u)?,
                    ),
                    None => (
                        String::new(),
                        String::new(),
                        self.identity_type.as_str(),
                        serde_json::Value::Null,
                    ),
                };
                let id = self
                    .state
                    .add_tombstone(&NewTombstone {
                        app: ADOBE.into(),
                        instance: self.instance.clone(),
                        userid: email.to_lowercase(),
                        email: email.to_lowercase(),
                        first_name: first,
                        last_name: last,
                        api_only: false,
                        roles: Vec::new(),
                        account: serde_json::json!({
                            "adobe_app": {
                                "org_id": self.instance,
                                "names": names,
                                "identity_type": kind,
                                "leave": leave,
                            },
                            "user": raw,
                        }),
                        deleted_at: time::OffsetDateTime::now_utc(),
                        deleted_by: crate::connect::actor(confirm.by.as_deref()),
                        reason: confirm.reason.clone(),
                        status: TombstoneStatus::Deleting,
                    })
                    .await?;
                self.events.emit(Event::TombstoneSaved { id });
                id
            }
        };
        let result = run_command(&self.client, email, steps).await;
        crate::lifecycle::settle_tombstone(&self.state, id, result, || {
            format!(
                "offboarding {email} from the Adobe organization stopped; tombstone #{id} keeps what they held, and running the apply again finishes it"
            )
        })
        .await
    }

    /// Gives back what the newest tombstone of `email` recorded (the account made again,
    /// with the identity type it had, if it was deleted), and keeps it for the restore's 30
    /// days whatever the roster says. Names the organization no longer has are refused
    /// before anything changes.
    pub async fn restore(&self, email: &str) -> Result<()> {
        let found = self
            .state
            .restorable_tombstone(ADOBE, &self.instance, email)
            .await?;
        let t = crate::lifecycle::restorable(
            found,
            email,
            &self.instance,
            "roster tombstones",
            "look at the account with `roster audit adobe`",
        )?;
        self.restore_from(&t).await
    }

    /// [`AdobeSession::restore`] from tombstone `t` (of this organization).
    pub async fn restore_from(&self, t: &roster_store::Tombstone) -> Result<()> {
        let email = t.email.as_str();
        if t.status != TombstoneStatus::Deleted {
            bail!(
                "tombstone #{} of {email} says the offboarding did not finish ({}); run the apply again to finish it, or look at the account with `roster audit adobe`",
                t.id,
                t.status
            );
        }
        self.state.verify_tombstone(t.id).await.with_context(|| {
            format!("tombstone #{} of {email} was changed in the database after Roster wrote it; nothing was restored", t.id)
        })?;
        let record = &t.account["adobe_app"];
        let names = crate::adobe_ops::names_in(&record["names"]);
        if names.is_empty() {
            bail!(
                "tombstone #{} of {email} records no product profile or user group; nothing was restored",
                t.id
            );
        }
        let known: Vec<String> = self
            .org_groups()
            .await?
            .iter()
            .map(|g| g.group_name.to_lowercase())
            .collect();
        let gone: Vec<&String> = names
            .iter()
            .filter(|n| !known.contains(&n.to_lowercase()))
            .collect();
        if !gone.is_empty() {
            bail!(
                "the organization no longer has {} that tombstone #{} recorded for {email}; give them current access through the roster instead",
                gone.iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.id
            );
        }
        let mut steps = Vec::new();
        if self.client.user(email).await?.is_none() {
            let kind = record["identity_type"]
                .as_str()
                .and_then(|k| k.parse::<IdentityType>().ok())
                .unwrap_or(self.identity_type);
            steps.push(Step::Create {
                kind,
                firstname: t.first_name.clone(),
                lastname: t.last_name.clone(),
                country: self.country.clone(),
            });
        }
        steps.push(Step::Add(names.clone()));
        run_command(&self.client, email, steps).await?;
        self.state
            .mark_restored(t.id, time::OffsetDateTime::now_utc())
            .await?;
        crate::lifecycle::keep_restored(&self.state, App::Adobe, &self.instance, email, t.id)
            .await?;
        self.events.emit(Event::Said(format!(
            "gave {email} {} again in the Adobe Admin Console from tombstone #{}; kept 30 days whatever the roster says",
            names.join(", "),
            t.id
        )));
        Ok(())
    }
}

/// The account `m` in `users`, added on first sight.
fn account_of<'a>(
    users: &'a mut BTreeMap<String, AdobeAccount>,
    m: &AdobeUser,
) -> &'a mut AdobeAccount {
    let email = m.email.trim().to_lowercase();
    users.entry(email.clone()).or_insert_with(|| AdobeAccount {
        email,
        first_name: m.firstname.clone().unwrap_or_default(),
        last_name: m.lastname.clone().unwrap_or_default(),
        identity_type: m.kind.as_str().to_string(),
        holds: BTreeSet::new(),
        org_admin: m.is_org_admin(),
    })
}

impl Connector for AdobeSession {
    session_basics!(App::Adobe);

    /// Nothing is read when the roster asks nothing of the organization.
    fn read<'a>(&'a self, roster: &'a Roster) -> Fut<'a, Live> {
        Box::pin(async move {
            if !roster.mentions(App::Adobe) {
                return Ok(Live::default());
            }
            Ok(Live {
                adobe: Some(self.read_holders(roster).await?),
                ..Live::default()
            })
        })
    }

    fn execute<'a>(
        &'a self,
        step: &'a plan::Step,
        ctx: &'a StepContext<'a>,
    ) -> Fut<'a, Option<String>> {
        Box::pin(execute(self, step, ctx))
    }

    fn tombstoned(&self, action: &Action) -> Option<String> {
        match action {
            Action::AdobeOffboard { email, .. } => Some(email.to_lowercase()),
            _ => None,
        }
    }

    fn restore<'a>(&'a self, t: &'a roster_store::Tombstone) -> Fut<'a, ()> {
        Box::pin(self.restore_from(t))
    }
}

async fn execute(
    s: &AdobeSession,
    step: &plan::Step,
    ctx: &StepContext<'_>,
) -> Result<Option<String>> {
    match &step.action {
        Action::AdobeGrant {
            email,
            first_name,
            last_name,
            names,
            ..
        } => s.grant(email, first_name, last_name, names).await,
        Action::AdobeRevoke { email, names } => {
            s.revoke(email, names).await?;
            Ok(None)
        }
        Action::AdobeOffboard {
            email,
            names,
            leave,
        } => {
            s.offboard(email, names, *leave, &ctx.confirm(step)).await?;
            Ok(None)
        }
        other => bail!("{} is not an Adobe Admin Console step", other.describe()),
    }
}
