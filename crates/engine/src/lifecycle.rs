//! Joiners and leavers: provisioning (and following the invitation until it is accepted),
//! offboarding with a tombstone, and restoring from one.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use roster_domain::access::RoleAssignment;
use roster_marketo::{Invitation, User};
use roster_store::{InviteStatus, NewTombstone, PendingInvite, TombstoneStatus};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::conn::Confirm;
use crate::connect::{MARKETO, MarketoSession, actor};
use crate::events::{Event, Events};
use crate::marketo_ops::{holds, invite_and_record, report_invited, resolve, specs};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn when(at: OffsetDateTime) -> String {
    crate::text::rfc3339(at)
}

// ---- provision ----

pub async fn provision_one(
    s: &MarketoSession,
    mut invitation: Invitation,
    role_specs: &[String],
    resend: bool,
    wait: Option<(Duration, Duration)>,
) -> Result<()> {
    let c = &s.client;
    let email = invitation.email.clone();
    // Roles and workspaces, two lookups, the invitation and a role grant at most.
    c.quota().ensure(6, &format!("provisioning {email}"))?;
    let dir = c.directory().await?;
    invitation.roles = resolve(&dir, role_specs)?;
    if let Some(user) = c.find_user(&email).await? {
        s.events.emit(Event::Note(format!(
            "{email} already has an account (id {}); making sure it has the roles asked for",
            user.id
        )));
        converge_roles(s, &user, &invitation.roles).await?;
        return Ok(());
    }
    if let Some(pending) = c.invitation(&email).await? {
        if pending.is_expired() {
            if !resend {
                bail!(
                    "the invitation of {email} expired unaccepted{}; run again with --resend to send a new one",
                    pending
                        .expires_at
                        .map(|t| format!(" on {}", when(t)))
                        .unwrap_or_default()
                );
            }
            c.delete_invitation(&email).await?;
            s.events.emit(Event::Note(format!(
                "deleted the expired invitation of {email}; inviting again"
            )));
        } else {
            s.events.emit(Event::Note(format!(
                "{email} already has a pending invitation{}; not inviting twice",
                pending
                    .expires_at
                    .map(|t| format!(" (valid until {})", when(t)))
                    .unwrap_or_default()
            )));
            if s.state
                .invite(MARKETO, &s.instance, &email)
                .await?
                .is_none()
            {
                // Sent by someone else: track it from now on, with the roles asked for here.
                let at = now();
                s.state
                    .record_invite(&PendingInvite {
                        app: MARKETO.into(),
                        instance: s.instance.clone(),
                        userid: pending.userid.clone(),
                        email: email.clone(),
                        first_name: invitation.first_name.clone(),
                        last_name: invitation.last_name.clone(),
                        api_only: false,
                        roles: invitation.roles.clone(),
                        invited_at: pending.created_at.unwrap_or(at),
                        invited_by: "unknown (not sent by Roster)".into(),
                        status: InviteStatus::Pending,
                        status_at: at,
                    })
                    .await?;
            }
            return match wait {
                Some((timeout, every)) => wait_for_acceptance(s, &email, timeout, every).await,
                None => Ok(()),
            };
        }
    }
    invite_and_record(s, &invitation).await?;
    report_invited(s, &invitation);
    if invitation.api_only {
        return Ok(());
    }
    match wait {
        Some((timeout, every)) => wait_for_acceptance(s, &email, timeout, every).await,
        None => {
            s.events.emit(Event::Note(
                "run `roster provision marketo --check-pending` later (or pass --wait) to grant any role that did not persist once they accept".into(),
            ));
            Ok(())
        }
    }
}

/// Grants whatever `wanted` role is missing. The API may drop roles given to a pending
/// invitation, so this runs again once the invitation is accepted.
async fn converge_roles(
    s: &MarketoSession,
    user: &User,
    wanted: &[RoleAssignment],
) -> Result<Vec<RoleAssignment>> {
    let missing: Vec<RoleAssignment> = wanted
        .iter()
        .filter(|w| !holds(&user.roles, w))
        .cloned()
        .collect();
    if missing.is_empty() {
        s.events.emit(Event::Note(format!(
            "{} has every role asked for: {}",
            user.userid,
            specs(wanted)
        )));
        return Ok(missing);
    }
    s.client.add_roles(&user.userid, &missing).await?;
    s.events.emit(Event::Note(format!(
        "granted {} to {}",
        specs(&missing),
        user.userid
    )));
    Ok(missing)
}

async fn accepted(s: &MarketoSession, record: &PendingInvite, user: &User) -> Result<()> {
    s.events.emit(Event::Note(format!(
        "{} accepted the invitation",
        record.email
    )));
    converge_roles(s, user, &record.roles).await?;
    s.state
        .set_invite_status(
            MARKETO,
            &s.instance,
            &record.userid,
            InviteStatus::Accepted,
            now(),
        )
        .await?;
    Ok(())
}

async fn wait_for_acceptance(
    s: &MarketoSession,
    email: &str,
    timeout: Duration,
    every: Duration,
) -> Result<()> {
    let record = s
        .state
        .invite(MARKETO, &s.instance, email)
        .await?
        .context("the invitation was not recorded in Roster's state")?;
    let deadline = Instant::now() + timeout;
    s.events.emit(Event::Note(format!(
        "waiting up to {timeout:?} for {email} to accept (checking every {every:?})"
    )));
    loop {
        if let Some(user) = s.client.find_user(email).await? {
            return accepted(s, &record, &user).await;
        }
        if Instant::now() + every > deadline {
            bail!(
                "{email} has not accepted the invitation within {timeout:?}; it stays pending and `roster provision marketo --check-pending` will finish the job once they do"
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// What `--check-pending` found for one tracked invitation and what it did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCheck {
    pub email: String,
    pub invited_at: OffsetDateTime,
    pub status: &'static str,
    pub action: &'static str,
}

/// Follows every invitation Roster tracks: accepted ones get the roles that did not persist,
/// expired ones are re-sent when `resend`, unconfirmed ones are settled.
pub async fn check_pending_invites(s: &MarketoSession, resend: bool) -> Result<Vec<InviteCheck>> {
    let records = crate::marketo_ops::tracked_invites(s).await?;
    if records.is_empty() {
        s.events.emit(Event::Note(format!(
            "Roster is tracking no pending invitation on {}",
            s.instance
        )));
        return Ok(Vec::new());
    }
    let mut checked = Vec::new();
    for record in records {
        let (status, action) = if let Some(user) = s.client.find_user(&record.userid).await? {
            accepted(s, &record, &user).await?;
            ("accepted", "roles checked")
        } else {
            match s.client.invitation(&record.userid).await? {
                Some(p) if p.is_expired() && resend => {
                    s.client.delete_invitation(&record.userid).await?;
                    let invitation = Invitation {
                        email: record.email.clone(),
                        first_name: record.first_name.clone(),
                        last_name: record.last_name.clone(),
                        userid: None,
                        roles: record.roles.clone(),
                        api_only: false,
                        expires_at: None,
                        reason: Some("Re-sent by Roster".into()),
                    };
                    invite_and_record(s, &invitation).await?;
                    ("expired", "re-sent")
                }
                Some(p) if p.is_expired() => {
                    s.state
                        .set_invite_status(
                            MARKETO,
                            &s.instance,
                            &record.userid,
                            InviteStatus::Expired,
                            now(),
                        )
                        .await?;
                    ("expired", "none (--resend sends a new one)")
                }
                Some(p) => {
                    let confirmed = record.status == InviteStatus::Unconfirmed;
                    if confirmed {
                        s.state
                            .set_invite_status(
                                MARKETO,
                                &s.instance,
                                &record.userid,
                                InviteStatus::Pending,
                                now(),
                            )
                            .await?;
                    }
                    let soon = p
                        .expires_at
                        .is_some_and(|t| t - now() < time::Duration::days(1));
                    (
                        "pending",
                        match (confirmed, soon) {
                            (true, _) => "confirmed: the invitation that timed out was sent",
                            (false, true) => "expires within a day",
                            (false, false) => "none",
                        },
                    )
                }
                None if record.status == InviteStatus::Unconfirmed => {
                    s.state
                        .set_invite_status(
                            MARKETO,
                            &s.instance,
                            &record.userid,
                            InviteStatus::NotSent,
                            now(),
                        )
                        .await?;
                    (
                        "not sent",
                        "the attempt that timed out never arrived; invite again (roster provision or plan)",
                    )
                }
                None => {
                    s.state
                        .set_invite_status(
                            MARKETO,
                            &s.instance,
                            &record.userid,
                            InviteStatus::Deleted,
                            now(),
                        )
                        .await?;
                    ("gone", "no longer tracked (deleted outside Roster)")
                }
            }
        };
        checked.push(InviteCheck {
            email: record.email.clone(),
            invited_at: record.invited_at,
            status,
            action,
        });
    }
    Ok(checked)
}

// ---- offboard ----

/// Offboards one account. `direct_delete` skips removing roles first (`roster marketo delete`).
pub async fn offboard(
    s: &MarketoSession,
    email: &str,
    direct_delete: bool,
    include_api_only: bool,
    confirm: &Confirm,
) -> Result<()> {
    let c = &s.client;
    let by = actor(confirm.by.as_deref());
    // Two lookups, the role removal and the deletion at most.
    c.quota().ensure(4, &format!("offboarding {email}"))?;
    if let Some(user) = c.find_user(email).await? {
        if user.api_only && !include_api_only && !direct_delete {
            bail!(
                "{email} is an API-only user: integrations sign in with it and would stop working; pass --include-api-only if that is intended"
            );
        }
        let mut steps = vec![format!(
            "save a tombstone of {email} (id {}) with {}",
            user.id,
            specs(&user.roles)
        )];
        if !direct_delete && !user.roles.is_empty() {
            steps.push(format!(
                "remove {} role(s): {}",
                user.roles.len(),
                specs(&user.roles)
            ));
        }
        steps.push(format!("delete the user {email} (permanent)"));
        if !confirm.yes {
            return dry_run(s, steps);
        }
        let id = s
            .state
            .add_tombstone(&NewTombstone {
                app: MARKETO.into(),
                instance: s.instance.clone(),
                userid: user.userid.clone(),
                email: user.email_address.clone(),
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
                api_only: user.api_only,
                roles: user.roles.clone(),
                account: user.raw.clone(),
                deleted_at: now(),
                deleted_by: by,
                reason: confirm.reason.clone(),
                status: TombstoneStatus::Deleting,
            })
            .await?;
        s.events.emit(Event::TombstoneSaved { id });
        let removal = async {
            if !direct_delete && !user.roles.is_empty() {
                c.remove_roles(&user.userid, &user.roles).await?;
                s.events
                    .emit(Event::Note(format!("removed {}", specs(&user.roles))));
            }
            c.delete(&user.userid).await?;
            if std::env::var_os("ROSTER_TEST_CRASH_AFTER_DELETE").is_some() {
                // Test hook: die in the window between the deletion and its record.
                eprintln!("ROSTER_TEST_CRASH_AFTER_DELETE: stopping after deleting {email}");
                std::process::abort();
            }
            Ok::<_, roster_marketo::MarketoError>(())
        };
        if let Err(e) = removal.await {
            s.state
                .set_tombstone_status(id, TombstoneStatus::Failed)
                .await?;
            return Err(anyhow::Error::new(e).context(format!(
                "offboarding {email} stopped part-way; tombstone #{id} keeps the account and its roles, and running the command again finishes it"
            )));
        }
        s.state
            .set_tombstone_status(id, TombstoneStatus::Deleted)
            .await?;
        s.events.emit(Event::Said(format!(
            "deleted {email}; `roster restore marketo --email {email}` re-invites them with the same roles"
        )));
        return Ok(());
    }
    if let Some(pending) = c.invitation(email).await? {
        let record = s.state.invite(MARKETO, &s.instance, email).await?;
        let roles = record.as_ref().map(|r| r.roles.clone()).unwrap_or_default();
        let steps = vec![
            format!(
                "save a tombstone of the invitation of {email} ({})",
                pending.status
            ),
            format!("delete the pending invitation of {email}"),
        ];
        if !confirm.yes {
            return dry_run(s, steps);
        }
        let id = s
            .state
            .add_tombstone(&NewTombstone {
                app: MARKETO.into(),
                instance: s.instance.clone(),
                userid: pending.userid.clone(),
                email: pending.email_address.clone(),
                first_name: pending.first_name.clone(),
                last_name: pending.last_name.clone(),
                api_only: false,
                roles,
                account: pending.raw.clone(),
                deleted_at: now(),
                deleted_by: by,
                reason: confirm.reason.clone(),
                status: TombstoneStatus::Deleting,
            })
            .await?;
        if let Err(e) = c.delete_invitation(&pending.userid).await {
            s.state
                .set_tombstone_status(id, TombstoneStatus::Failed)
                .await?;
            return Err(e.into());
        }
        s.state
            .set_tombstone_status(id, TombstoneStatus::Deleted)
            .await?;
        if record.is_some() {
            s.state
                .set_invite_status(
                    MARKETO,
                    &s.instance,
                    &pending.userid,
                    InviteStatus::Deleted,
                    now(),
                )
                .await?;
        }
        s.events.emit(Event::Said(format!(
            "deleted the pending invitation of {email} (tombstone #{id})"
        )));
        return Ok(());
    }
    // Nothing there: already offboarded counts as done.
    close_finished_deletions(&s.events, &s.state, MARKETO, &s.instance, email).await?;
    let previous = s
        .state
        .latest_tombstone(MARKETO, &s.instance, email)
        .await?;
    match previous {
        Some(t) => s.events.emit(Event::Said(format!(
            "nothing to do: {email} has no account or invitation; Roster deleted it on {} (by {})",
            when(t.deleted_at),
            t.deleted_by
        ))),
        None => s.events.emit(Event::Said(format!(
            "nothing to do: {email} has no account or pending invitation on {}",
            s.instance
        ))),
    }
    Ok(())
}

fn dry_run(s: &MarketoSession, steps: Vec<String>) -> Result<()> {
    s.events.emit(Event::DryRun { steps });
    Ok(())
}

/// Restores someone who left through the Adobe Admin Console: the product profiles their
/// tombstone recorded given back (their Adobe account made again if it was deleted), kept
/// for the restore's 30 days whatever the roster says, and their Marketo roles granted by
/// the plan once Marketo's sync shows them.
async fn restore_ims(
    s: &MarketoSession,
    t: &roster_store::Tombstone,
    adobe: &serde_json::Value,
) -> Result<()> {
    let email = t.email.as_str();
    let link = s.ims.as_ref().with_context(|| {
        format!(
            "{email} left through the Adobe Admin Console (tombstone #{}), but this Marketo subscription is not configured as on Adobe Identity (identity = \"adobe\" in [marketo])",
            t.id
        )
    })?;
    let profiles = crate::adobe_ops::names_in(&adobe["profiles"]);
    if profiles.is_empty() {
        bail!(
            "tombstone #{} of {email} records no product profile; nothing was restored",
            t.id
        );
    }
    if s.client.find_user(email).await?.is_some() {
        bail!("{email} already has a Marketo account; nothing to restore");
    }
    link.add_profiles(
        &s.state,
        &s.instance,
        email,
        &t.first_name,
        &t.last_name,
        &profiles,
    )
    .await?;
    let roles: Vec<roster_domain::desired::RoleRef> = t
        .roles
        .iter()
        .map(|r| roster_domain::desired::RoleRef::new(&r.role_name, &r.workspace_name))
        .collect();
    crate::adobe_ops::set_restoring(&s.state, &s.instance, email, roles).await?;
    s.state.mark_restored(t.id, now()).await?;
    keep_restored(
        &s.state,
        roster_domain::desired::App::Marketo,
        &s.instance,
        email,
        t.id,
    )
    .await?;
    s.events.emit(Event::Said(format!(
        "gave {email} {} again in the Adobe Admin Console; Marketo adds them at its sync, and the next plan grants the roles tombstone #{} recorded ({}); kept 30 days whatever the roster says",
        profiles.join(", "),
        t.id,
        specs(&t.roles)
    )));
    Ok(())
}

/// Offboards a standard user of a subscription on Adobe Identity: a tombstone of their
/// Marketo roles and the product profiles, then the profiles taken away in the Admin
/// Console (Marketo refuses to delete them; it removes them itself at its sync). A rerun
/// after an interruption keeps the open tombstone instead of writing a second one.
pub async fn offboard_ims(
    s: &MarketoSession,
    email: &str,
    profiles: &[String],
    leave: roster_domain::desired::AdobeLeaver,
    confirm: &Confirm,
) -> Result<()> {
    let link = s
        .ims
        .as_ref()
        .context("the Marketo subscription is not configured as on Adobe Identity")?;
    let by = actor(confirm.by.as_deref());
    let open = unfinished_deletion(&s.state, MARKETO, &s.instance, email)
        .await?
        .filter(|t| t.account.get("adobe").is_some());
    let id = match open {
        Some(t) => t.id,
        None => {
            let user = s.client.find_user(email).await?;
            let (first, last, roles, raw) = match &user {
                Some(u) => (
                    u.first_name.clone(),
                    u.last_name.clone(),
                    u.roles.clone(),
                    u.raw.clone(),
                ),
                None => (
                    String::new(),
                    String::new(),
                    Vec::new(),
                    serde_json::Value::Null,
                ),
            };
            let id = s
                .state
                .add_tombstone(&NewTombstone {
                    app: MARKETO.into(),
                    instance: s.instance.clone(),
                    userid: email.to_string(),
                    email: email.to_string(),
                    first_name: first,
                    last_name: last,
                    api_only: false,
                    roles,
                    account: serde_json::json!({
                        "marketo": raw,
                        "adobe": {"org_id": link.client.org_id(), "profiles": profiles, "leave": leave},
                    }),
                    deleted_at: now(),
                    deleted_by: by,
                    reason: confirm.reason.clone(),
                    status: TombstoneStatus::Deleting,
                })
                .await?;
            s.events.emit(Event::TombstoneSaved { id });
            id
        }
    };
    let result = link.remove_profiles(email, profiles, leave).await;
    settle_tombstone(&s.state, id, result, || {
        format!(
            "offboarding {email} stopped; tombstone #{id} keeps their roles and profiles, and running the apply again finishes it"
        )
    })
    .await
}

/// The newest tombstone of `email` whose deletion did not finish (`deleting`, or `failed`)
/// and that is not restored: a rerun finishes that deletion instead of writing another.
pub async fn unfinished_deletion(
    state: &roster_store::StateStore,
    app: &str,
    instance: &str,
    email: &str,
) -> Result<Option<roster_store::Tombstone>> {
    Ok(state
        .latest_tombstone(app, instance, email)
        .await?
        .filter(|t| {
            t.restored_at.is_none()
                && matches!(
                    t.status,
                    TombstoneStatus::Deleting | TombstoneStatus::Failed
                )
        }))
}

/// Records how the deletion tombstone `id` was written for ended: `deleted`, or `failed`
/// with the error given `stopped`'s context (a rerun finds the open tombstone and finishes).
pub async fn settle_tombstone(
    state: &roster_store::StateStore,
    id: i64,
    result: Result<()>,
    stopped: impl FnOnce() -> String,
) -> Result<()> {
    match result {
        Ok(()) => {
            state
                .set_tombstone_status(id, TombstoneStatus::Deleted)
                .await?;
            Ok(())
        }
        Err(e) => {
            state
                .set_tombstone_status(id, TombstoneStatus::Failed)
                .await?;
            Err(e.context(stopped()))
        }
    }
}

// ---- tombstones and restore ----

/// The account `userid` is gone: a deletion interrupted after it happened left its tombstone
/// open (`deleting`, or `failed` when the answer was lost); mark it deleted, and say so.
pub async fn close_finished_deletions(
    events: &Events,
    state: &roster_store::StateStore,
    app: &str,
    instance: &str,
    userid: &str,
) -> Result<()> {
    for id in state.finish_open_tombstones(app, instance, userid).await? {
        events.emit(Event::Note(format!(
            "tombstone #{id}: the deletion had finished before an interruption; marked deleted"
        )));
    }
    Ok(())
}

/// Where restoring from a tombstone may start: `found` is the one to restore `what` on
/// `instance` from, and its deletion finished. `list` is the command that lists tombstones,
/// `check` says how to look at the account when the deletion did not finish.
pub fn restorable(
    found: Option<roster_store::Tombstone>,
    what: &str,
    instance: &str,
    list: &str,
    check: &str,
) -> Result<roster_store::Tombstone> {
    let Some(t) = found else {
        bail!(
            "Roster has no tombstone of {what} on {instance} that is not restored yet; `{list}` lists what it deleted"
        );
    };
    if t.status != TombstoneStatus::Deleted {
        bail!(
            "tombstone #{} of {what} says the deletion did not finish ({}); {check}",
            t.id,
            t.status
        );
    }
    Ok(t)
}

pub async fn restore_one(s: &MarketoSession, email: &str) -> Result<()> {
    let found = s
        .state
        .restorable_tombstone(MARKETO, &s.instance, email)
        .await?;
    let t = restorable(
        found,
        email,
        &s.instance,
        "roster tombstones",
        &format!("check the account with `roster marketo user {email}`"),
    )?;
    s.state.verify_tombstone(t.id).await.with_context(|| {
        format!("tombstone #{} of {email} was changed in the database after Roster wrote it; nothing was restored", t.id)
    })?;
    if let Some(adobe) = t.account.get("adobe") {
        return restore_ims(s, &t, adobe).await;
    }
    let c = &s.client;
    if c.find_user(&t.userid).await?.is_some() || c.invitation(&t.userid).await?.is_some() {
        bail!("{email} already has an account or a pending invitation; nothing to restore");
    }
    let dir = c.directory().await?;
    let gone: Vec<_> = t.roles.iter().filter(|r| !dir.still_exists(r)).collect();
    if !gone.is_empty() {
        let names: Vec<String> = gone.iter().map(|r| r.spec()).collect();
        bail!(
            "the roles or workspaces of {} no longer exist: {}; provision {email} with `roster provision marketo` and current roles instead",
            email,
            names.join(", ")
        );
    }
    let invitation = Invitation {
        email: t.email.clone(),
        first_name: t.first_name.clone(),
        last_name: t.last_name.clone(),
        userid: (!t.userid.eq_ignore_ascii_case(&t.email)).then(|| t.userid.clone()),
        roles: t.roles.clone(),
        api_only: t.api_only,
        expires_at: None,
        reason: Some(format!("Restored by Roster from tombstone #{}", t.id)),
    };
    invite_and_record(s, &invitation).await?;
    s.state.mark_restored(t.id, now()).await?;
    keep_restored(
        &s.state,
        roster_domain::desired::App::Marketo,
        &s.instance,
        &t.email,
        t.id,
    )
    .await?;
    report_invited(s, &invitation);
    Ok(())
}

/// How long a restored account is kept against a roster that still lists its owner as a
/// leaver (or not at all): time to put the roster right.
pub const RESTORE_KEEPS: time::Duration = time::Duration::days(30);

/// Records that the account restored from tombstone `tombstone` is kept for
/// [`RESTORE_KEEPS`]: the next runs do not take it away again behind the restore's
/// approval, and say until when; after that its removal is planned, as a destructive step.
pub async fn keep_restored(
    state: &roster_store::StateStore,
    app: roster_domain::desired::App,
    instance: &str,
    email: &str,
    tombstone: i64,
) -> Result<()> {
    let at = now();
    state
        .add_exception(
            app,
            instance,
            email,
            at + RESTORE_KEEPS,
            &format!("restored from tombstone #{tombstone}"),
            at,
        )
        .await?;
    Ok(())
}

/// Refuses to restore from `t` when a newer tombstone of the same account is open: an older
/// one would bring back stale access.
async fn only_newest(
    state: &roster_store::StateStore,
    app: &str,
    instance: &str,
    t: &roster_store::Tombstone,
) -> Result<()> {
    let newest = state.restorable_tombstone(app, instance, &t.email).await?;
    if let Some(n) = newest
        && n.id != t.id
    {
        bail!(
            "tombstone #{} of {} is newer than #{}; restore that one",
            n.id,
            t.email,
            t.id
        );
    }
    Ok(())
}

/// Restores the account kept by tombstone `id`, through the session of its app (which must
/// be the instance it was deleted from). Only the newest tombstone of an account can be
/// restored: an older one would bring back stale access.
pub async fn restore_tombstone(sessions: &crate::live_read::Sessions, id: i64) -> Result<()> {
    let Some(any) = sessions.apps().next() else {
        bail!("no connection to restore tombstone #{id} through");
    };
    let t = any
        .state()
        .tombstone(id)
        .await?
        .with_context(|| format!("no tombstone #{id}"))?;
    let c = roster_domain::desired::App::parse(&t.app)
        .and_then(|app| sessions.app(app))
        .with_context(|| {
            format!(
                "tombstone #{id} is of {} in {}, which this connection does not reach",
                t.email, t.app
            )
        })?;
    if t.instance != c.instance() {
        bail!(
            "tombstone #{id} is of {} on {}, not of this instance ({})",
            t.email,
            t.instance,
            c.instance()
        );
    }
    only_newest(c.state(), c.app().name(), c.instance(), &t).await?;
    c.restore(&t).await
}
