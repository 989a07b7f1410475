//! `roster magento ...`, `roster audit magento`, and Magento's provision and offboard.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use roster_domain::access::RoleAssignment;
use roster_magento::{AdminUsers, Client, Condition, Criteria};
use serde_json::{Value, json};

use roster_engine::connect::actor;
use roster_engine::magento_ops::{
    MAGENTO, MagentoSession, find_website, finish, restore_admin, restore_customer, same_id,
    tombstone,
};

use crate::args::{Confirm, MagentoCommand, MagentoConn, Output};
use crate::output::Table;
use roster_engine::Globals;

fn criteria(filters: &[String]) -> Result<Criteria> {
    let mut c = Criteria::new();
    for f in filters {
        let (field, cond, value) = Criteria::parse_filter(f).map_err(anyhow::Error::msg)?;
        c = c.and(&field, cond, value);
    }
    Ok(c)
}

/// A group by name (any case) or id.
fn find_group<'a>(groups: &'a [Value], wanted: &str) -> Result<&'a Value> {
    groups
        .iter()
        .find(|g| {
            g["code"]
                .as_str()
                .is_some_and(|c| c.eq_ignore_ascii_case(wanted))
                || same_id(&g["id"], wanted)
        })
        .ok_or_else(|| {
            let names: Vec<&str> = groups.iter().filter_map(|g| g["code"].as_str()).collect();
            anyhow::anyhow!("no customer group {wanted:?}; groups: {}", names.join(", "))
        })
}

fn names<'a>(items: &'a [Value], key: &str) -> BTreeMap<i64, &'a str> {
    items
        .iter()
        .filter_map(|x| Some((x["id"].as_i64()?, x[key].as_str()?)))
        .collect()
}

fn customer_table(customers: &[Value], groups: &[Value], websites: &[Value]) -> Table {
    let g = names(groups, "code");
    let w = names(websites, "code");
    let mut t = Table::new(&[
        "id",
        "email",
        "first name",
        "last name",
        "website",
        "group",
        "created at",
        "addresses",
    ]);
    for c in customers {
        let lookup = |m: &BTreeMap<i64, &str>, k: &str| {
            c[k].as_i64()
                .and_then(|id| m.get(&id).copied())
                .map_or(c[k].clone(), |n| json!(n))
        };
        t.push(vec![
            c["id"].clone(),
            c["email"].clone(),
            c["firstname"].clone(),
            c["lastname"].clone(),
            lookup(&w, "website_id"),
            lookup(&g, "group_id"),
            c["created_at"].clone(),
            json!(c["addresses"].as_array().map_or(0, Vec::len)),
        ]);
    }
    t
}

pub async fn run(cmd: MagentoCommand, g: &Globals) -> Result<()> {
    match cmd {
        MagentoCommand::Customers {
            conn,
            filters,
            output,
        } => {
            let s = MagentoSession::open(&conn, g).await?;
            let found = s.client.customers(&criteria(&filters)?, |_, _| {}).await?;
            if output.is_document() {
                print!("{}", crate::output::document(output, &found)?);
            } else {
                let (groups, websites) = tokio::try_join!(s.client.groups(), s.client.websites())?;
                customer_table(&found, &groups, &websites).print(output)?;
            }
            tracing::info!("{}", s.cost_line());
            Ok(())
        }
        MagentoCommand::Customer {
            conn,
            customer,
            output,
        } => {
            let s = MagentoSession::open(&conn, g).await?;
            let found = match customer.parse::<i64>() {
                Ok(id) => vec![s.client.customer(id).await?],
                Err(_) => s.client.customers_by_email(&customer).await?,
            };
            if found.is_empty() {
                bail!(
                    "no customer {customer}; `roster magento customers --filter email:like:%{}` searches",
                    customer.split('@').next().unwrap_or("")
                );
            }
            if output.is_document() {
                // One customer as an object; an email used in several websites as an array.
                let shown = if found.len() == 1 {
                    found[0].clone()
                } else {
                    Value::Array(found)
                };
                print!("{}", crate::output::document(output, &shown)?);
                return Ok(());
            }
            let (groups, websites) = tokio::try_join!(s.client.groups(), s.client.websites())?;
            customer_table(&found, &groups, &websites).print(output)
        }
        MagentoCommand::Groups { conn, output } => {
            let s = MagentoSession::open(&conn, g).await?;
            let mut t = Table::new(&["id", "code", "tax class"]);
            for x in s.client.groups().await? {
                t.push(vec![
                    x["id"].clone(),
                    x["code"].clone(),
                    x["tax_class_name"].clone(),
                ]);
            }
            t.print(output)
        }
        MagentoCommand::Admins { conn, output } => {
            let s = MagentoSession::open(&conn, g).await?;
            match s.client.admin_users().await? {
                AdminUsers::Available(users) => admin_table(&users).print(output),
                AdminUsers::Unavailable => bail!("{}", roster_magento::MagentoError::NoAdminApi),
            }
        }
        MagentoCommand::Roles { conn, output } => {
            let s = MagentoSession::open(&conn, g).await?;
            let mut t = Table::new(&["id", "name"]);
            for r in s.client.admin_roles().await? {
                t.push(vec![r["id"].clone(), r["name"].clone()]);
            }
            t.print(output)
        }
        MagentoCommand::Regroup {
            conn,
            from,
            to,
            filters,
            chunk,
            bulk_timeout,
            yes,
        } => {
            let bulk = BulkSettings {
                chunk,
                stall_timeout: bulk_timeout,
            };
            regroup(&conn, &from, &to, &filters, bulk, yes, g).await
        }
    }
}

fn admin_table(users: &[Value]) -> Table {
    let mut t = Table::new(&[
        "id",
        "username",
        "email",
        "first name",
        "last name",
        "role id",
        "active",
    ]);
    for u in users {
        t.push(vec![
            u["id"].clone(),
            u["username"].clone(),
            u["email"].clone(),
            u["firstname"].clone(),
            u["lastname"].clone(),
            u["role_id"].clone(),
            u["is_active"].clone(),
        ]);
    }
    t
}

/// How `regroup` submits and waits for bulks.
struct BulkSettings {
    chunk: usize,
    stall_timeout: std::time::Duration,
}

async fn regroup(
    conn: &MagentoConn,
    from: &str,
    to: &str,
    filters: &[String],
    bulk: BulkSettings,
    yes: bool,
    g: &Globals,
) -> Result<()> {
    let mut s = MagentoSession::open(conn, g).await?;
    let groups = s.client.groups().await?;
    let (from_g, to_g) = (
        find_group(&groups, from)?.clone(),
        find_group(&groups, to)?.clone(),
    );
    if from_g["id"] == to_g["id"] {
        bail!("--from and --to are the same group ({})", from_g["code"]);
    }
    let mut c = criteria(filters)?;
    c = c.and("group_id", Condition::Eq, from_g["id"].clone());
    let (from_code, to_code) = (
        from_g["code"].as_str().unwrap_or("?"),
        to_g["code"].as_str().unwrap_or("?"),
    );
    if !yes {
        let bar = crate::audit_cmd::progress_bar("reading customers");
        let members = s
            .client
            .customers(&c, |got, total| {
                bar.set_length(total as u64);
                bar.set_position(got as u64);
            })
            .await?;
        bar.finish_and_clear();
        println!(
            "{} customer(s) in {from_code} match; they would move to {to_code}",
            members.len()
        );
        for m in members.iter().take(10) {
            println!("  {} {}", m["id"], m["email"].as_str().unwrap_or(""));
        }
        if members.len() > 10 {
            println!("  ... and {} more", members.len() - 10);
        }
        println!(
            "dry run: nothing was changed; run again with --yes to submit them through the async bulk API"
        );
        return Ok(());
    }
    {
        // Each page of the search is submitted as one bulk as soon as it is read.
        let mut config = s.client.config().clone();
        config.page_size = bulk.chunk.clamp(1, 300);
        config.bulk_chunk = bulk.chunk.max(1);
        config.bulk_stall_timeout = bulk.stall_timeout;
        s.client = Client::new(config)?;
    }
    let bar = crate::audit_cmd::progress_bar("bulk operations final");
    let to_id = to_g["id"].clone();
    let outcome = s
        .client
        .bulk_update_matching(
            &c,
            |m| m["group_id"] = to_id.clone(),
            |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        )
        .await?;
    println!(
        "{} customer(s) in {from_code} matched; submitted to move to {to_code}",
        outcome.operations
    );
    bar.finish_and_clear();
    println!(
        "{} of {} operations complete in {} bulk(s)",
        outcome.complete,
        outcome.operations,
        outcome.bulk_uuids.len()
    );
    for (id, why) in &outcome.failed {
        println!("  customer {id}: {why}");
    }
    eprintln!("{}", s.cost_line());
    if !outcome.failed.is_empty() {
        bail!(
            "{} operation(s) failed; see the list above (bulk uuids: {})",
            outcome.failed.len(),
            outcome.bulk_uuids.join(", ")
        );
    }
    Ok(())
}

/// The fields of a customer the audit uses: Magento sends only these.
const AUDIT_FIELDS: [&str; 8] = [
    "id",
    "email",
    "firstname",
    "lastname",
    "website_id",
    "group_id",
    "created_at",
    "updated_at",
];

/// Every customer of the store, read four pages at a time with only the fields the audit
/// uses, counted by (website, group) as the pages arrive; with `-o jsonl` each customer is
/// also written out as its page arrives, so a store of millions is never held in memory.
/// A progress bar with an ETA shows on a terminal (its total comes from the first page).
async fn customer_counts(
    s: &MagentoSession,
    output: Output,
    gname: &BTreeMap<i64, &str>,
    wname: &BTreeMap<i64, &str>,
) -> Result<(BTreeMap<(i64, i64), usize>, usize)> {
    use std::io::Write;
    let bar = crate::audit_cmd::progress_bar("customers");
    let counts = std::sync::Mutex::new(BTreeMap::<(i64, i64), usize>::new());
    let stdout = std::sync::Mutex::new(std::io::BufWriter::new(std::io::stdout().lock()));
    let read = s
        .client
        .customers_mapped(
            &Criteria::new(),
            Some(&AUDIT_FIELDS),
            4,
            |c| {
                let (w, gid) = (
                    c["website_id"].as_i64().unwrap_or(0),
                    c["group_id"].as_i64().unwrap_or(0),
                );
                *counts.lock().expect("counts").entry((w, gid)).or_default() += 1;
                if output == Output::Jsonl {
                    let line = json!({
                        "id": c["id"],
                        "email": c["email"],
                        "firstname": c["firstname"],
                        "lastname": c["lastname"],
                        "website": wname.get(&w),
                        "group": gname.get(&gid),
                        "created_at": c["created_at"],
                        "updated_at": c["updated_at"],
                    });
                    let _ = writeln!(stdout.lock().expect("stdout"), "{line}");
                }
            },
            |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        )
        .await?;
    bar.finish_and_clear();
    stdout.lock().expect("stdout").flush()?;
    Ok((counts.into_inner().expect("counts"), read.len()))
}

/// `audit magento --html FILE`: the printable audit report, from a fresh read.
pub async fn audit_html(
    conn: &MagentoConn,
    file: &std::path::Path,
    roster: Option<&std::path::Path>,
    g: &Globals,
) -> Result<()> {
    let roster = match roster {
        Some(path) => Some(roster_engine::live_read::load_roster(path)?),
        None => None,
    };
    let mut sessions =
        roster_engine::live_read::Sessions::connect(None, Some(conn.clone()), g).await?;
    let live =
        roster_engine::live_read::read(&sessions, &roster.clone().unwrap_or_default()).await?;
    let now = time::OffsetDateTime::now_utc();
    let instance = sessions
        .magento
        .as_ref()
        .map(|s| s.instance.clone())
        .unwrap_or_default();
    let inv = roster_domain::inventory::Inventory::from_live(
        roster_domain::desired::App::Magento,
        &instance,
        &live,
        now,
    );
    // The log's head where this state has one: the report names where the log stood.
    let head =
        match roster_engine::connect::open_state(g.state.as_deref(), g.database.as_deref()).await {
            Ok(state) => state.log_head(now).await.ok(),
            Err(_) => None,
        };
    let by = roster_engine::actor::Actor::resolve(g.actor.as_deref()).name;
    let html = roster_engine::audit_report::html(&inv, roster.as_ref(), &by, head.as_ref(), now)?;
    std::fs::write(file, html).with_context(|| format!("cannot write {}", file.display()))?;
    sessions.finish().await?;
    eprintln!(
        "wrote the audit report of {} account(s) to {}",
        inv.accounts.len(),
        file.display()
    );
    Ok(())
}

pub async fn audit(conn: &MagentoConn, output: Output, g: &Globals) -> Result<()> {
    let s = MagentoSession::open(conn, g).await?;
    let (groups, websites) = tokio::try_join!(s.client.groups(), s.client.websites())?;
    let admins = s.client.admin_users().await?;
    let roles = match &admins {
        AdminUsers::Available(_) => s.client.admin_roles().await?,
        AdminUsers::Unavailable => Vec::new(),
    };
    let gname = names(&groups, "code");
    let wname = names(&websites, "name");
    let (counts, customers) = customer_counts(&s, output, &gname, &wname).await?;
    let rname = names(&roles, "name");
    if output == Output::Jsonl {
        eprintln!(
            "audited {customers} customers in {} websites; {}",
            websites.len().saturating_sub(1),
            s.cost_line()
        );
        return Ok(());
    }
    if output.is_document() {
        let admins_json = match &admins {
            AdminUsers::Available(users) => json!(
                users
                    .iter()
                    .map(|u| {
                        let mut u = u.clone();
                        u["role_name"] =
                            json!(u["role_id"].as_i64().and_then(|r| rname.get(&r).copied()));
                        u
                    })
                    .collect::<Vec<_>>()
            ),
            AdminUsers::Unavailable => Value::Null,
        };
        print!(
            "{}",
            crate::output::document(
                output,
                &crate::output::snake_keys(json!({
                    "app": MAGENTO,
                    "instance": s.instance,
                    "customers": customers,
                    "byWebsiteAndGroup": counts.iter().map(|((w, gid), n)| json!({"websiteId": w, "website": wname.get(w), "groupId": gid, "group": gname.get(gid), "customers": n})).collect::<Vec<_>>(),
                    "adminUsers": admins_json,
                    "adminUsersNote": matches!(admins, AdminUsers::Unavailable).then(|| roster_magento::MagentoError::NoAdminApi.to_string()),
                    "calls": s.client.stats().calls,
                }))
            )?
        );
        return Ok(());
    }
    let mut t = Table::new(&["website", "group", "customers"]);
    for ((w, gid), n) in &counts {
        t.push(vec![
            json!(wname.get(w).copied().unwrap_or("?")),
            json!(gname.get(gid).copied().unwrap_or("?")),
            json!(n),
        ]);
    }
    t.print(output)?;
    match admins {
        AdminUsers::Available(users) => {
            if output.is_table() {
                println!();
            }
            let mut t = Table::new(&["admin user", "email", "role", "active"]);
            for u in &users {
                t.push(vec![
                    u["username"].clone(),
                    u["email"].clone(),
                    json!(u["role_id"].as_i64().and_then(|r| rname.get(&r).copied())),
                    u["is_active"].clone(),
                ]);
            }
            t.print(output)?;
        }
        AdminUsers::Unavailable => {
            eprintln!("admin users: {}", roster_magento::MagentoError::NoAdminApi)
        }
    }
    eprintln!(
        "audited {customers} customers in {} websites; {}",
        websites.len().saturating_sub(1),
        s.cost_line()
    );
    Ok(())
}

fn assignment(c: &Value, groups: &[Value], websites: &[Value]) -> RoleAssignment {
    let g = names(groups, "code");
    let w = names(websites, "code");
    let (wid, gid) = (
        c["website_id"].as_i64().unwrap_or(0),
        c["group_id"].as_i64().unwrap_or(0),
    );
    RoleAssignment {
        workspace_id: wid,
        workspace_name: w.get(&wid).copied().unwrap_or("?").into(),
        role_id: gid,
        role_name: g.get(&gid).copied().unwrap_or("?").into(),
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn provision(
    conn: &MagentoConn,
    email: &str,
    first: &str,
    last: &str,
    website: Option<&str>,
    group: Option<&str>,
    admin: Option<&str>,
    role: Option<&str>,
    g: &Globals,
) -> Result<()> {
    let s = MagentoSession::open(conn, g).await?;
    if let Some(username) = admin {
        let roles = s.client.admin_roles().await?;
        let role = role.unwrap_or_default();
        let r = roles
            .iter()
            .find(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(role))
                    || same_id(&r["id"], role)
            })
            .with_context(|| {
                format!("no admin role {role:?}; `roster magento roles` lists them")
            })?;
        let password = std::env::var("ROSTER_MAGENTO_NEW_ADMIN_PASSWORD").context("set ROSTER_MAGENTO_NEW_ADMIN_PASSWORD to the new admin's first password (7+ characters, letters and digits); Roster never prints passwords")?;
        if let AdminUsers::Available(users) = s.client.admin_users().await?
            && users.iter().any(|u| {
                u["username"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(username))
            })
        {
            println!("admin user {username} already exists; nothing to do");
            return Ok(());
        }
        let made = s.client.create_admin_user(json!({"username": username, "firstname": first, "lastname": last, "email": email, "password": password, "role_id": r["id"], "is_active": true})).await?;
        println!(
            "created admin user {username} (id {}) with role {}",
            made["id"], r["name"]
        );
        return Ok(());
    }
    let (groups, websites) = tokio::try_join!(s.client.groups(), s.client.websites())?;
    let website_id = match website {
        Some(code) => find_website(&websites, code)?,
        None => websites
            .iter()
            .filter_map(|w| w["id"].as_i64())
            .find(|id| *id != 0)
            .unwrap_or(1),
    };
    let group_id = find_group(&groups, group.unwrap_or("General"))?["id"].clone();
    let existing = s.client.customers_by_email(email).await?;
    if let Some(c) = existing.iter().find(|c| c["website_id"] == website_id) {
        if c["group_id"] == group_id {
            println!(
                "{email} is already a customer (id {}) in that website and group; nothing to do",
                c["id"]
            );
        } else {
            let mut changes = serde_json::Map::new();
            changes.insert("group_id".into(), group_id.clone());
            s.client
                .update_customer(c["id"].as_i64().unwrap_or(0), &changes)
                .await?;
            println!(
                "{email} is already a customer (id {}); moved to group {}",
                c["id"],
                group.unwrap_or("General")
            );
        }
        return Ok(());
    }
    let made = s.client.create_customer(json!({"email": email, "firstname": first, "lastname": last, "website_id": website_id, "group_id": group_id}), None).await?;
    println!(
        "created customer {email} (id {}); Magento emailed them a link to set a password",
        made["id"]
    );
    eprintln!("{}", s.cost_line());
    Ok(())
}

pub async fn offboard(
    conn: &MagentoConn,
    email: Option<&str>,
    website: Option<&str>,
    admin: Option<&str>,
    confirm: &Confirm,
    g: &Globals,
) -> Result<()> {
    let s = MagentoSession::open(conn, g).await?;
    let by = actor(confirm.by.as_deref());
    if let Some(username) = admin {
        let AdminUsers::Available(users) = s.client.admin_users().await? else {
            bail!("{}", roster_magento::MagentoError::NoAdminApi);
        };
        let Some(u) = users.iter().find(|u| {
            u["username"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(username))
        }) else {
            println!("nothing to do: no admin user {username}");
            return Ok(());
        };
        if !confirm.yes {
            println!(
                "dry run: nothing was changed. With --yes, Roster would:\n  1. save a tombstone of admin user {username} (id {})\n  2. delete admin user {username}",
                u["id"]
            );
            return Ok(());
        }
        let id = tombstone(
            &s,
            u["id"].to_string(),
            u["email"].as_str().unwrap_or(""),
            u,
            Vec::new(),
            &by,
            confirm,
        )
        .await?;
        let result = s
            .client
            .delete_admin_user(u["id"].as_i64().unwrap_or(0))
            .await;
        return finish(
            &s,
            id,
            result.map_err(Into::into),
            &format!("admin user {username}"),
        )
        .await;
    }
    let email = email.expect("clap requires --email or --admin");
    let (groups, websites) = tokio::try_join!(s.client.groups(), s.client.websites())?;
    let mut found = s.client.customers_by_email(email).await?;
    if let Some(code) = website {
        let wid = find_website(&websites, code)?;
        found.retain(|c| c["website_id"] == wid);
    }
    match found.len() {
        0 => {
            println!(
                "nothing to do: no customer {email}{}",
                website
                    .map(|w| format!(" in website {w}"))
                    .unwrap_or_default()
            );
            return Ok(());
        }
        1 => {}
        n => bail!("{email} is a customer in {n} websites; say which with --website CODE"),
    }
    let c = &found[0];
    let a = assignment(c, &groups, &websites);
    if !confirm.yes {
        println!(
            "dry run: nothing was changed. With --yes, Roster would:\n  1. save a tombstone of customer {email} (id {}, {} in {}, {} address(es))\n  2. delete customer {} (permanent)",
            c["id"],
            a.role_name,
            a.workspace_name,
            c["addresses"].as_array().map_or(0, Vec::len),
            c["id"]
        );
        return Ok(());
    }
    let id = tombstone(&s, c["id"].to_string(), email, c, vec![a], &by, confirm).await?;
    let result = s
        .client
        .delete_customer(c["id"].as_i64().unwrap_or(0))
        .await;
    finish(
        &s,
        id,
        result.map_err(Into::into),
        &format!("customer {email}"),
    )
    .await
}

// ---- restore ----

/// `roster restore magento`: a customer (with addresses, group and attributes) or an admin
/// user (with its role) created again from the newest tombstone not restored yet.
pub async fn restore(
    conn: &MagentoConn,
    email: Option<String>,
    website: Option<String>,
    admin: Option<String>,
    g: &Globals,
) -> Result<()> {
    let s = MagentoSession::open(conn, g).await?;
    let result = match (&email, &admin) {
        (_, Some(username)) => restore_admin(&s, username).await,
        (Some(email), None) => {
            let website_id = match website.as_deref() {
                Some(code) => Some(find_website(&s.client.websites().await?, code)?),
                None => None,
            };
            restore_customer(&s, email, website_id).await
        }
        (None, None) => bail!("give --email EMAIL (a customer) or --admin USERNAME"),
    };
    eprintln!("{}", s.cost_line());
    result
}
