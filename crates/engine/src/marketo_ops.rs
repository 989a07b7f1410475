//! Marketo operations shared by commands, plans and the service: resolving roles, inviting
//! (and tracking the invitation, which the API cannot list), and what its refusals mean.

use anyhow::Result;
use roster_domain::access::RoleAssignment;
use roster_marketo::{Directory, Invitation, Invited, MarketoError};
use roster_store::{InviteStatus, PendingInvite};
use time::OffsetDateTime;

use crate::connect::{MARKETO, MarketoSession, actor};
use crate::events::Event;

pub fn holds(held: &[RoleAssignment], r: &RoleAssignment) -> bool {
    held.iter()
        .any(|h| h.role_id == r.role_id && h.workspace_id == r.workspace_id)
}

pub fn specs(roles: &[RoleAssignment]) -> String {
    if roles.is_empty() {
        return "no roles".into();
    }
    roles
        .iter()
        .map(RoleAssignment::spec)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves every ROLE@WORKSPACE, reporting all the bad ones at once.
pub fn resolve(dir: &Directory, specs: &[String]) -> Result<Vec<RoleAssignment>> {
    dir.resolve_all(specs).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!("cannot use the roles given:\n{}", lines.join("\n"))
    })
}

/// Invites, turning Marketo's refusals into what to do, and records the invitation in
/// Roster's state (the API cannot list pending invitations).
pub async fn invite_and_record(s: &MarketoSession, invitation: &Invitation) -> Result<Invited> {
    let outcome = match s.client.invite(invitation).await {
        Ok(outcome) => outcome,
        Err(e) if e.may_have_run() && !invitation.api_only => {
            return Err(unconfirmed_invitation(s, invitation, &actor(None), e).await);
        }
        Err(e) => return Err(explain_invite_error(e, invitation)),
    };
    if !invitation.api_only {
        record_invitation(s, invitation, &actor(None)).await?;
    }
    Ok(outcome)
}

/// An invitation whose every attempt failed after reaching Marketo (a 604 time-out, say):
/// the email may have gone out. It is tracked as unconfirmed, so the next run asks
/// `invite.json` whether it exists instead of inviting twice or forgetting it.
pub async fn unconfirmed_invitation(
    s: &MarketoSession,
    invitation: &Invitation,
    by: &str,
    error: MarketoError,
) -> anyhow::Error {
    let email = &invitation.email;
    if let Err(e) = record_invitation_as(s, invitation, by, InviteStatus::Unconfirmed).await {
        return e.context(format!(
            "the invitation of {email} may have been sent, and Roster could not record it: {error}"
        ));
    }
    anyhow::Error::new(error).context(format!(
        "the invitation of {email} may have been sent (Marketo timed out after receiving it); Roster tracks it as unconfirmed and checks invite.json on the next run (`roster plan`, `roster provision marketo --check-pending`), so it is neither lost nor sent twice"
    ))
}

/// The invitations Roster follows: pending ones, and unconfirmed ones to settle.
pub async fn tracked_invites(s: &MarketoSession) -> Result<Vec<PendingInvite>> {
    let mut all = s
        .state
        .invites(MARKETO, &s.instance, InviteStatus::Pending)
        .await?;
    all.extend(
        s.state
            .invites(MARKETO, &s.instance, InviteStatus::Unconfirmed)
            .await?,
    );
    Ok(all)
}

/// Tracks an invitation in Roster's state (the API cannot list pending invitations), so
/// later commands can follow it until it is accepted.
pub async fn record_invitation(
    s: &MarketoSession,
    invitation: &Invitation,
    by: &str,
) -> Result<()> {
    record_invitation_as(s, invitation, by, InviteStatus::Pending).await
}

async fn record_invitation_as(
    s: &MarketoSession,
    invitation: &Invitation,
    by: &str,
    status: InviteStatus,
) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    s.state
        .record_invite(&PendingInvite {
            app: MARKETO.into(),
            instance: s.instance.clone(),
            userid: invitation
                .userid
                .clone()
                .unwrap_or_else(|| invitation.email.clone()),
            email: invitation.email.clone(),
            first_name: invitation.first_name.clone(),
            last_name: invitation.last_name.clone(),
            api_only: false,
            roles: invitation.roles.clone(),
            invited_at: now,
            invited_by: by.to_string(),
            status,
            status_at: now,
        })
        .await?;
    Ok(())
}

fn explain_invite_error(e: MarketoError, invitation: &Invitation) -> anyhow::Error {
    let email = &invitation.email;
    if let Some(f) = e.api()
        && f.code_is("709")
    {
        let m = f.message.to_lowercase();
        if m.contains("ims") || m.contains("adobe identity") || m.contains("admin console") {
            return anyhow::anyhow!(
                "this Marketo subscription is managed by Adobe Identity (IMS): standard users are added in the Adobe Admin Console, not through this API; Roster can only create API-only users here (--api-only). Marketo said: {}",
                f.message
            );
        }
        if m.contains("already been invited") || m.contains("pending") {
            return anyhow::anyhow!(
                "{email} already has a pending invitation; `roster provision marketo --email {email} ... --resend` re-sends it once it has expired, `roster offboard marketo --email {email} --yes` withdraws it. Marketo said: {}",
                f.message
            );
        }
        if m.contains("already exists") {
            return anyhow::anyhow!(
                "{email} already has a Marketo account; use `roster marketo grant {email} --role ...` to change its roles. Marketo said: {}",
                f.message
            );
        }
    }
    e.into()
}

/// Says who was invited, with which roles.
pub fn report_invited(s: &MarketoSession, invitation: &Invitation) {
    s.events.emit(Event::Invited {
        email: invitation.email.clone(),
        roles: specs(&invitation.roles),
        api_only: invitation.api_only,
    });
}
