//! Marketo Engage as a connector: users and their roles read with the pending
//! invitations Roster follows (and, on Adobe Identity, who holds the subscription's
//! product profiles), steps run through the User Management API or the Admin Console.

use anyhow::{Context, Result};
use roster_domain::desired::{App, Roster};
use roster_domain::live::{Facts, Live, MarketoLive, MarketoUser, PendingInvite};
use roster_domain::plan::{Action, Step};
use roster_marketo::{Invitation, UserUpdate, audit};
use roster_store::{InviteStatus, Tombstone};
use time::OffsetDateTime;

use super::{Connector, Fut, StepContext};
use crate::connect::{MARKETO, MarketoSession};
use crate::marketo_ops::record_invitation;

impl Connector for MarketoSession {
    session_basics!(App::Marketo);

    fn read<'a>(&'a self, roster: &'a Roster) -> Fut<'a, Live> {
        Box::pin(async move {
            Ok(Live {
                marketo: Some(read(self, roster.target.as_ref()).await?),
                ..Live::default()
            })
        })
    }

    fn execute<'a>(&'a self, step: &'a Step, ctx: &'a StepContext<'a>) -> Fut<'a, Option<String>> {
        Box::pin(execute(self, step, ctx))
    }

    fn tombstoned(&self, action: &Action) -> Option<String> {
        match action {
            Action::MarketoDelete { userid } | Action::MarketoDeleteInvite { userid } => {
                Some(userid.clone())
            }
            // An offboarding on Adobe Identity's tombstone is filed under the email.
            Action::AdobeRemoveProfile { email, .. } => Some(email.clone()),
            _ => None,
        }
    }

    fn restore<'a>(&'a self, t: &'a Tombstone) -> Fut<'a, ()> {
        Box::pin(crate::lifecycle::restore_one(self, &t.email))
    }
}

/// The roles named, as the subscription's ids (its roles and workspaces read once per
/// session, on first need).
async fn role_ids(
    s: &MarketoSession,
    roles: &[roster_domain::desired::RoleRef],
) -> Result<Vec<roster_domain::access::RoleAssignment>> {
    let dir = s.directory.get_or_try_init(|| s.client.directory()).await?;
    let specs: Vec<String> = roles.iter().map(ToString::to_string).collect();
    crate::marketo_ops::resolve(dir, &specs)
}

fn ims(s: &MarketoSession) -> Result<&crate::adobe_ops::ImsLink> {
    s.ims.as_ref().context(
        "the plan has Adobe Admin Console steps but the Marketo subscription is not configured as on Adobe Identity (identity = \"adobe\" in [marketo], with [adobe])",
    )
}

async fn execute(s: &MarketoSession, step: &Step, ctx: &StepContext<'_>) -> Result<Option<String>> {
    match &step.action {
        Action::MarketoInvite {
            email,
            first_name,
            last_name,
            roles,
            expires_at,
        }
        | Action::MarketoResendInvite {
            email,
            first_name,
            last_name,
            roles,
            expires_at,
            ..
        } => {
            if let Action::MarketoResendInvite { userid, .. } = &step.action {
                match s.client.delete_invitation(userid).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let invitation = Invitation {
                email: email.clone(),
                first_name: first_name.clone(),
                last_name: last_name.clone(),
                userid: None,
                roles: role_ids(s, roles).await?,
                api_only: false,
                expires_at: *expires_at,
                reason: Some(step.reason.clone()),
            };
            match s.client.invite(&invitation).await {
                Ok(_) => {}
                Err(e) if e.api().is_some_and(|f| f.code_is("709")) => {
                    // Already invited or already a user (a rerun after a crash, or
                    // someone else): the next plan settles any difference.
                    if s.client.find_user(email).await?.is_some()
                        || s.client.invitation(email).await?.is_some()
                    {
                        record_invitation(s, &invitation, ctx.who).await?;
                        return Ok(Some("already invited".into()));
                    }
                    return Err(e.into());
                }
                Err(e) if e.may_have_run() => {
                    return Err(crate::marketo_ops::unconfirmed_invitation(
                        s,
                        &invitation,
                        ctx.who,
                        e,
                    )
                    .await);
                }
                Err(e) => return Err(e.into()),
            }
            record_invitation(s, &invitation, ctx.who).await?;
            Ok(None)
        }
        Action::MarketoUpdate {
            userid,
            first_name,
            last_name,
        } => {
            let update = UserUpdate {
                first_name: Some(first_name.clone()),
                last_name: Some(last_name.clone()),
                ..UserUpdate::default()
            };
            s.client.update(userid, &update).await?;
            Ok(None)
        }
        Action::MarketoSetExpiry { userid, expires_at } => {
            let update = UserUpdate {
                expires_at: Some(*expires_at),
                ..UserUpdate::default()
            };
            s.client.update(userid, &update).await?;
            Ok(None)
        }
        Action::MarketoGrant { userid, roles } => {
            let roles = role_ids(s, roles).await?;
            s.client.add_roles(userid, &roles).await?;
            Ok(None)
        }
        Action::MarketoRevoke { userid, roles } => {
            let roles = role_ids(s, roles).await?;
            s.client.remove_roles(userid, &roles).await?;
            Ok(None)
        }
        Action::MarketoDeleteInvite { userid } | Action::MarketoDelete { userid } => {
            crate::lifecycle::offboard(s, userid, false, true, &ctx.confirm(step)).await?;
            Ok(None)
        }
        Action::AdobeAddProfile {
            email,
            first_name,
            last_name,
            profiles,
            ..
        } => {
            ims(s)?
                .add_profiles(
                    &s.state,
                    &s.instance,
                    email,
                    first_name,
                    last_name,
                    profiles,
                )
                .await?;
            Ok(Some(
                    "Marketo adds them at its next sync with the Admin Console; the next plan grants their roles"
                        .into(),
                ))
        }
        Action::AdobeRemoveProfile {
            email,
            profiles,
            leave,
        } => {
            crate::lifecycle::offboard_ims(s, email, profiles, *leave, &ctx.confirm(step)).await?;
            Ok(Some(
                "Marketo removes them at its next sync with the Admin Console".into(),
            ))
        }
        other => anyhow::bail!("{} is not a Marketo step", other.describe()),
    }
}

/// Every user with their roles, and the invitations Roster follows.
/// Every user with their roles; for a targeted plan (`target`: lower-cased emails), the
/// user list and the roles of the users those emails name only.
async fn read(
    s: &MarketoSession,
    target: Option<&std::collections::BTreeSet<String>>,
) -> Result<MarketoLive> {
    let quiet = std::sync::Arc::new(audit::Quiet);
    let audit = match target {
        None => audit::run(&s.client, quiet).await,
        Some(t) => {
            let t = t.clone();
            audit::run_only(&s.client, quiet, move |u| {
                t.contains(&u.email_address.trim().to_lowercase())
                    || t.contains(&u.userid.to_lowercase())
            })
            .await
        }
    }
    .context("reading Marketo users")?;
    let mut unread: Vec<String> = audit
        .unread
        .iter()
        .map(|u| u.email_address.trim().to_lowercase())
        .collect();
    let mut users: Vec<MarketoUser> = audit
        .users
        .iter()
        .map(|a| MarketoUser {
            userid: a.user.userid.clone(),
            email: a.user.email_address.trim().to_lowercase(),
            first_name: a.user.first_name.clone(),
            last_name: a.user.last_name.clone(),
            api_only: a.user.api_only,
            roles: a.roles.iter().map(Into::into).collect(),
            expires_at: a.expires_at,
            pending: None,
            facts: Facts {
                locked: a.locked,
                last_login_at: a.last_login_at,
                ..Facts::default()
            },
        })
        .collect();
    // The API cannot list pending invitations: check the ones Roster sent.
    let now = OffsetDateTime::now_utc();
    for invite in crate::marketo_ops::tracked_invites(s).await? {
        if let Some(t) = target
            && !t.contains(&invite.email.trim().to_lowercase())
        {
            // Not checked by a targeted read: still counted for the caps.
            unread.push(invite.email.trim().to_lowercase());
            continue;
        }
        let unconfirmed = invite.status == InviteStatus::Unconfirmed;
        if users
            .iter()
            .any(|u| u.userid.eq_ignore_ascii_case(&invite.userid))
        {
            s.state
                .set_invite_status(
                    MARKETO,
                    &s.instance,
                    &invite.userid,
                    InviteStatus::Accepted,
                    now,
                )
                .await?;
            continue;
        }
        match s.client.invitation(&invite.userid).await? {
            Some(p) => {
                if unconfirmed {
                    // The attempt that timed out did send it.
                    s.state
                        .set_invite_status(
                            MARKETO,
                            &s.instance,
                            &invite.userid,
                            InviteStatus::Pending,
                            now,
                        )
                        .await?;
                }
                users.push(MarketoUser {
                    userid: invite.userid.clone(),
                    email: invite.email.trim().to_lowercase(),
                    first_name: invite.first_name.clone(),
                    last_name: invite.last_name.clone(),
                    api_only: false,
                    roles: invite.roles.iter().map(Into::into).collect(),
                    expires_at: None,
                    pending: Some(PendingInvite {
                        expires_at: p.expires_at,
                    }),
                    facts: Facts {
                        created_at: p.created_at,
                        ..Facts::default()
                    },
                })
            }
            None => {
                // Deleted outside Roster, or (unconfirmed) never made: the plan invites again.
                let status = if unconfirmed {
                    InviteStatus::NotSent
                } else {
                    InviteStatus::Deleted
                };
                s.state
                    .set_invite_status(MARKETO, &s.instance, &invite.userid, status, now)
                    .await?;
            }
        }
    }
    let ims = match &s.ims {
        Some(link) => Some({
            // Marketo's emails are lower-cased as read, as the Admin Console's are.
            // A targeted read's other users are shown too, only not read.
            let shown: std::collections::HashSet<&str> = users
                .iter()
                .map(|u| u.email.as_str())
                .chain(unread.iter().map(String::as_str))
                .collect();
            let mut ims = link
                .read(&s.state, &s.instance, |email| shown.contains(email))
                .await?;
            // A restore is finished once Marketo shows them with every role it recorded:
            // forgotten then, so the roles are not granted again after a later revoke.
            let finished: Vec<String> = ims
                .restoring
                .iter()
                .filter(|(email, roles)| {
                    users
                        .iter()
                        .any(|u| &u.email == *email && roles.iter().all(|r| u.roles.contains(r)))
                })
                .map(|(email, _)| email.clone())
                .collect();
            if !finished.is_empty() {
                crate::adobe_ops::forget_restoring(&s.state, &s.instance, &finished).await?;
                ims.restoring.retain(|email, _| !finished.contains(email));
            }
            ims
        }),
        None => None,
    };
    Ok(MarketoLive {
        roles: audit
            .directory
            .roles
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        workspaces: audit
            .directory
            .workspaces
            .iter()
            .map(|w| w.name.clone())
            .collect(),
        users,
        ims,
        unread,
    })
}
