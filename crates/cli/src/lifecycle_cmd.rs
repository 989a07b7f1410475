//! `roster provision marketo`, `roster offboard marketo`, `roster tombstones` and
//! `roster restore marketo`: front ends of the engine's lifecycle operations.

use anyhow::Result;
use roster_domain::access::RoleAssignment;
use roster_engine::connect::{MarketoSession, open_state, parse_date};
use roster_engine::lifecycle::{self, check_pending_invites, provision_one, restore_one};
use roster_engine::{Confirm, Globals, MarketoConn};
use roster_marketo::Invitation;
use serde_json::json;

use crate::args::{Output, ProvisionCommand, TombstonesArgs};
use crate::output::{Table, rfc3339 as when};

pub async fn provision(cmd: ProvisionCommand, g: &Globals) -> Result<()> {
    let ProvisionCommand::Marketo {
        conn,
        email,
        first,
        last,
        roles,
        api_only,
        expires_at,
        wait,
        wait_timeout,
        poll_interval,
        resend,
        check_pending,
    } = cmd
    else {
        unreachable!("main routes Magento provisioning to magento_cmd");
    };
    let mut s = MarketoSession::open(&conn, g).await?;
    let result = if check_pending {
        print_checks(&s, resend).await
    } else {
        let email = email.expect("clap requires --email without --check-pending");
        let invitation = Invitation {
            email: email.clone(),
            first_name: first.expect("clap requires --first with --email"),
            last_name: last.expect("clap requires --last with --email"),
            userid: None,
            roles: Vec::new(),
            api_only,
            expires_at: expires_at.as_deref().map(parse_date).transpose()?,
            reason: Some("Provisioned by Roster".into()),
        };
        provision_one(
            &s,
            invitation,
            &roles,
            resend,
            wait.then_some((wait_timeout, poll_interval)),
        )
        .await
    };
    s.record_usage().await?;
    eprintln!("{}", s.cost_line());
    result
}

/// `--check-pending`: one row per tracked invitation.
async fn print_checks(s: &MarketoSession, resend: bool) -> Result<()> {
    let checked = check_pending_invites(s, resend).await?;
    if checked.is_empty() {
        return Ok(());
    }
    let mut t = Table::new(&["email", "invited at", "status", "action"]);
    for c in checked {
        t.push(vec![
            json!(c.email),
            json!(when(c.invited_at)),
            json!(c.status),
            json!(c.action),
        ]);
    }
    t.print(Output::Table)
}

pub async fn offboard_cmd(
    conn: &MarketoConn,
    email: &str,
    include_api_only: bool,
    confirm: &Confirm,
    g: &Globals,
) -> Result<()> {
    let mut s = MarketoSession::open(conn, g).await?;
    let result = lifecycle::offboard(&s, email, false, include_api_only, confirm).await;
    s.record_usage().await?;
    eprintln!("{}", s.cost_line());
    result
}

pub async fn tombstones(args: TombstonesArgs, g: &Globals) -> Result<()> {
    let state = open_state(g.state.as_deref(), g.database.as_deref()).await?;
    let mut t = Table::new(&[
        "id",
        "app",
        "email",
        "name",
        "deleted at",
        "deleted by",
        "status",
        "roles",
        "reason",
        "restored at",
        "instance",
    ]);
    for ts in state.tombstones(args.app.as_deref()).await? {
        let roles: Vec<String> = ts.roles.iter().map(RoleAssignment::spec).collect();
        t.push(vec![
            json!(ts.id),
            json!(ts.app),
            json!(ts.email),
            json!(format!("{} {}", ts.first_name, ts.last_name)),
            json!(when(ts.deleted_at)),
            json!(ts.deleted_by),
            // Once restored, that is what a reader needs to know first; restored_at says when.
            json!(if ts.restored_at.is_some() {
                "restored"
            } else {
                ts.status.as_str()
            }),
            if args.output.is_document() {
                json!(ts.roles)
            } else {
                json!(roles.join("; "))
            },
            json!(ts.reason),
            json!(ts.restored_at.map(when)),
            json!(ts.instance),
        ]);
    }
    if t.rows.is_empty() && args.output.is_table() {
        eprintln!("no tombstones in {}", state.path().display());
    }
    t.print(args.output)
}

pub async fn restore(conn: &MarketoConn, email: &str, g: &Globals) -> Result<()> {
    let mut s = MarketoSession::open(conn, g).await?;
    let result = restore_one(&s, email).await;
    s.record_usage().await?;
    eprintln!("{}", s.cost_line());
    result
}
