//! `roster marketo ...`: thin, scriptable commands over the client.

use anyhow::{Result, bail};
use roster_domain::access::RoleAssignment;
use roster_marketo::{Client, Invitation, User, UserUpdate};
use serde_json::{Value, json};

use roster_engine::Globals;
use roster_engine::connect::{MARKETO, MarketoSession, parse_date};
use roster_engine::lifecycle;
use roster_engine::marketo_ops::{holds, invite_and_record, report_invited, resolve, specs};

use crate::args::{MarketoCommand, NewPerson, Output};
use crate::output::Table;

pub async fn run(cmd: MarketoCommand, g: &Globals) -> Result<()> {
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
    let mut session = MarketoSession::open(&conn.conn, g).await?;
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
            report_invited(s, &invitation);
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
    if output.is_table() {
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
        if output.is_document() {
            print!(
                "{}",
                crate::output::document(output, &crate::output::snake_keys(user_json(&user)))?
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
    if output.is_document() {
        let mut v = serde_json::to_value(&invite)?;
        v["roles"] = serde_json::to_value(&roles)?;
        print!(
            "{}",
            crate::output::document(output, &crate::output::snake_keys(v.clone()))?
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
