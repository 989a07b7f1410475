//! `roster marketo ...`: thin, scriptable commands over the client.

use std::path::Path;

use anyhow::{Result, bail};
use roster_domain::access::RoleAssignment;
use roster_marketo::{Client, Directory, Invitation, Invited, MarketoError, User, UserUpdate};
use roster_store::{InviteStatus, PendingInvite};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::args::{MarketoCommand, NewPerson, Output};
use crate::connect::{MARKETO, MarketoSession, actor, parse_date};
use crate::lifecycle;
use crate::output::Table;

pub struct Globals<'a> {
    pub state: Option<&'a Path>,
    pub config: Option<&'a Path>,
    /// `--actor` / `ROSTER_ACTOR`, if given.
    pub actor: Option<&'a str>,
}

pub async fn run(cmd: MarketoCommand, g: &Globals<'_>) -> Result<()> {
    let conn = match &cmd {
        MarketoCommand::Users(c) | MarketoCommand::Workspaces(c) => c,
        MarketoCommand::Roles { common, .. }
        | MarketoCommand::User { common, .. }
        | MarketoCommand::Invite { common, .. }
        | MarketoCommand::Update { common, .. }
        | MarketoCommand::Delete { common, .. }
        | MarketoCommand::Grant { common, .. }
        | MarketoCommand::Revoke { common, .. } => common,
    }
    .clone();
    let mut session = MarketoSession::open(&conn.conn, g.state, g.config).await?;
    let result = dispatch(&session, cmd, conn.output).await;
    session.record_usage().await?;
    tracing::info!("{}", session.cost_line());
    result
}

async fn dispatch(s: &MarketoSession, cmd: MarketoCommand, output: Output) -> Result<()> {
    let c = &s.client;
    match cmd {
        MarketoCommand::Users(_) => {
            let mut t = Table::new(&[
                "id",
                "userid",
                "email",
                "first name",
                "last name",
                "api only",
            ]);
            for u in c.all_users().await? {
                t.push(vec![
                    json!(u.id),
                    json!(u.userid),
                    json!(u.email_address),
                    json!(u.first_name),
                    json!(u.last_name),
                    json!(u.api_only),
                ]);
            }
            t.print(output)
        }
        MarketoCommand::Roles { all, .. } => {
            let mut t = Table::new(&[
                "id",
                "name",
                "type",
                "only all zones",
                "hidden",
                "description",
            ]);
            for r in c.roles().await?.into_iter().filter(|r| all || !r.hidden) {
                t.push(vec![
                    json!(r.id),
                    json!(r.name),
                    json!(r.kind),
                    json!(r.only_all_zones),
                    json!(r.hidden),
                    json!(r.description),
                ]);
            }
            t.print(output)
        }
        MarketoCommand::Workspaces(_) => {
            let mut t = Table::new(&["id", "name", "status", "description"]);
            for w in c.workspaces().await? {
                t.push(vec![
                    json!(w.id),
                    json!(w.name),
                    json!(w.status),
                    json!(w.description),
                ]);
            }
            t.print(output)
        }
        MarketoCommand::User { userid, .. } => show_user(s, &userid, output).await,
        MarketoCommand::Invite { person, .. } => {
            let dir = c.directory().await?;
            let roles = resolve(&dir, &person.roles)?;
            let invitation = invitation_from(&person, roles)?;
            invite_and_record(s, &invitation).await?;
            report_invited(&invitation);
            show_after_write(s, &person.email, output).await
        }
        MarketoCommand::Update {
            userid,
            email,
            first,
            last,
            expires_at,
            no_expiry,
            ..
        } => {
            let update = UserUpdate {
                email,
                first_name: first,
                last_name: last,
                expires_at: if no_expiry {
                    Some(None)
                } else {
                    expires_at.as_deref().map(parse_date).transpose()?.map(Some)
                },
            };
            if update.is_empty() {
                bail!(
                    "nothing to update: give --email, --first, --last, --expires-at or --no-expiry"
                );
            }
            let user = match c.update(&userid, &update).await {
                Err(e) if e.is_not_found() => bail!(not_active(s, &userid).await?),
                other => other?,
            };
            eprintln!("updated {}", user.userid);
            show_after_write(s, &user.userid, output).await
        }
        MarketoCommand::Delete {
            userid, confirm, ..
        } => lifecycle::offboard(s, &userid, true, false, &confirm).await,
        MarketoCommand::Grant { userid, roles, .. } => {
            let dir = c.directory().await?;
            let wanted = resolve(&dir, &roles)?;
            let held = user_roles_or_explain(s, &userid).await?;
            let missing: Vec<_> = wanted
                .iter()
                .filter(|w| !holds(&held, w))
                .cloned()
                .collect();
            for w in wanted.iter().filter(|w| holds(&held, w)) {
                eprintln!("{userid} already has {}", w.spec());
            }
            if !missing.is_empty() {
                c.add_roles(&userid, &missing).await?;
                eprintln!("granted {}", specs(&missing));
            }
            show_after_write(s, &userid, output).await
        }
        MarketoCommand::Revoke { userid, roles, .. } => {
            let dir = c.directory().await?;
            let unwanted = resolve(&dir, &roles)?;
            let held = user_roles_or_explain(s, &userid).await?;
            let present: Vec<_> = unwanted
                .iter()
                .filter(|w| holds(&held, w))
                .cloned()
                .collect();
            for w in unwanted.iter().filter(|w| !holds(&held, w)) {
                eprintln!("{userid} does not have {} (already revoked)", w.spec());
            }
            if !present.is_empty() {
                c.remove_roles(&userid, &present).await?;
                eprintln!("revoked {}", specs(&present));
            }
            show_after_write(s, &userid, output).await
        }
    }
}

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

pub fn invitation_from(p: &NewPerson, roles: Vec<RoleAssignment>) -> Result<Invitation> {
    Ok(Invitation {
        email: p.email.clone(),
        first_name: p.first.clone(),
        last_name: p.last.clone(),
        userid: None,
        roles,
        api_only: p.api_only,
        expires_at: p.expires_at.as_deref().map(parse_date).transpose()?,
        reason: p.reason.clone(),
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

pub fn report_invited(invitation: &Invitation) {
    if invitation.api_only {
        eprintln!(
            "created API-only user {} with {} (active now)",
            invitation.email,
            specs(&invitation.roles)
        );
    } else {
        eprintln!(
            "invited {} with {}; Marketo emailed a login link, and the account becomes active once they set a password (the link lasts 7 days)",
            invitation.email,
            specs(&invitation.roles)
        );
    }
}

/// Explains why an update found no active user.
async fn not_active(s: &MarketoSession, userid: &str) -> Result<String> {
    Ok(match s.client.invitation(userid).await? {
        Some(_) => format!(
            "{userid} has not accepted the invitation yet; a pending user cannot be changed"
        ),
        None => format!("no user {userid}; `roster marketo users` lists them"),
    })
}

async fn user_roles_or_explain(s: &MarketoSession, userid: &str) -> Result<Vec<RoleAssignment>> {
    match s.client.user(userid).await {
        Ok(user) => Ok(user.roles),
        Err(e) if e.is_not_found() => bail!(not_active(s, userid).await?),
        Err(e) => Err(e.into()),
    }
}

async fn show_after_write(s: &MarketoSession, userid: &str, output: Output) -> Result<()> {
    if output == Output::Table {
        return Ok(());
    }
    show_user(s, userid, output).await
}

fn user_json(user: &User) -> Value {
    let mut v = serde_json::to_value(user).expect("a user serialises");
    v["status"] = json!("active");
    v["roles"] = serde_json::to_value(&user.roles).expect("roles serialise");
    v
}

/// One user: table and CSV have a row per role; JSON is one object.
async fn show_user(s: &MarketoSession, userid: &str, output: Output) -> Result<()> {
    let c: &Client = &s.client;
    let columns = [
        "userid",
        "email",
        "first name",
        "last name",
        "status",
        "api only",
        "expires at",
        "workspace",
        "role",
    ];
    let mut t = Table::new(&columns);
    if let Some(user) = c.find_user(userid).await? {
        if output == Output::Json {
            println!(
                "{}",
                serde_json::to_string_pretty(&crate::output::snake_keys(user_json(&user)))?
            );
            return Ok(());
        }
        let v = user_json(&user);
        let base = |ws: Value, role: Value| {
            vec![
                v["userid"].clone(),
                v["emailAddress"].clone(),
                v["firstName"].clone(),
                v["lastName"].clone(),
                json!("active"),
                v["apiOnly"].clone(),
                v["expiresAt"].clone(),
                ws,
                role,
            ]
        };
        if user.roles.is_empty() {
            t.push(base(Value::Null, Value::Null));
        }
        for r in &user.roles {
            t.push(base(json!(r.workspace_name), json!(r.role_name)));
        }
        return t.print(output);
    }
    let Some(invite) = c.invitation(userid).await? else {
        bail!("no user or pending invitation {userid}; `roster marketo users` lists the users");
    };
    // The API does not say which roles a pending user was invited with; Roster's record does.
    let recorded = s.state.invite(MARKETO, &s.instance, userid).await?;
    let roles = recorded.map(|r| r.roles).unwrap_or_default();
    if output == Output::Json {
        let mut v = serde_json::to_value(&invite)?;
        v["roles"] = serde_json::to_value(&roles)?;
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::output::snake_keys(v.clone()))?
        );
        return Ok(());
    }
    let base = |ws: Value, role: Value| {
        vec![
            json!(invite.userid),
            json!(invite.email_address),
            json!(invite.first_name),
            json!(invite.last_name),
            json!(format!("invitation {}", invite.status)),
            json!(false),
            Value::Null,
            ws,
            role,
        ]
    };
    if roles.is_empty() {
        t.push(base(Value::Null, Value::Null));
    }
    for r in &roles {
        t.push(base(json!(r.workspace_name), json!(r.role_name)));
    }
    t.print(output)
}
