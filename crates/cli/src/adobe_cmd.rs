//! `roster audit adobe`: the Admin Console's users with their product profiles, user groups
//! and admin roles, and who holds each product profile; `roster restore adobe`.

use anyhow::Result;
use roster_adobe::AdobeUser;
use roster_engine::adobe_ops::{self, AdobeAudit};
use roster_engine::{AdobeConn, Globals};
use serde_json::{Value, json};

use crate::args::Output;
use crate::output::Table;

/// A user's groups split by kind: (product profiles, user groups, admin roles). A product
/// profile held through a user group says so.
fn split(a: &AdobeAudit, user: &AdobeUser) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut profiles, mut user_groups, mut admin) = (Vec::new(), Vec::new(), Vec::new());
    for g in &user.groups {
        match a.kind_of(g) {
            Some("PRODUCT_PROFILE") if a.indirect(user, g) => {
                profiles.push(format!("{g} (through a user group)"))
            }
            Some("PRODUCT_PROFILE") => profiles.push(g.clone()),
            Some("USER_GROUP") => user_groups.push(g.clone()),
            // Admin groups (`_org_admin`, `_product_admin_...`), and names UMAPI lists
            // that are not among the groups read.
            _ if g.starts_with('_') => admin.push(g.clone()),
            _ => user_groups.push(g.clone()),
        }
    }
    (profiles, user_groups, admin)
}

pub async fn audit(conn: &AdobeConn, output: Output, g: &Globals) -> Result<()> {
    let client = adobe_ops::connect(conn, g).await?;
    let a = adobe_ops::audit(&client).await?;
    let by_profile = a.by_profile();
    let users: Vec<Value> = a
        .users
        .iter()
        .map(|u| {
            let (profiles, user_groups, admin) = split(&a, u);
            json!({
                "email": u.email,
                "type": u.kind.as_str(),
                "status": u.status,
                "firstname": u.firstname,
                "lastname": u.lastname,
                "product_profiles": profiles,
                "user_groups": user_groups,
                "admin_roles": admin,
            })
        })
        .collect();
    let profiles: Vec<Value> = a
        .groups
        .iter()
        .filter(|g| g.is_product_profile())
        .map(|g| {
            let members = by_profile.get(&g.group_name).map_or(&[][..], Vec::as_slice);
            json!({
                "product_profile": g.group_name,
                "product": g.product_name,
                "users": members.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    // Who belongs to each user group: its direct members.
    let user_groups: Vec<Value> = a
        .groups
        .iter()
        .filter(|g| g.kind == "USER_GROUP")
        .map(|g| {
            let members: Vec<&str> = a
                .users
                .iter()
                .filter(|u| {
                    a.direct
                        .get(&u.email.to_lowercase())
                        .is_some_and(|d| d.iter().any(|n| n.eq_ignore_ascii_case(&g.group_name)))
                })
                .map(|u| u.email.as_str())
                .collect();
            json!({"user_group": g.group_name, "users": members})
        })
        .collect();
    let stats = client.stats();
    match output {
        Output::Json | Output::Yaml => {
            print!(
                "{}",
                crate::output::document(
                    output,
                    &json!({
                        "app": adobe_ops::ADOBE,
                        "org_id": a.org_id,
                        "users": users,
                        "product_profiles": profiles,
                        "user_groups": user_groups,
                        "calls": stats.calls,
                    })
                )?
            );
        }
        Output::Jsonl => {
            for u in &users {
                println!("{}", serde_json::to_string(u)?);
            }
        }
        Output::Table | Output::Wide | Output::Csv => {
            let join = |v: &Value| {
                json!(
                    v.as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; "))
                        .unwrap_or_default()
                )
            };
            let mut t = Table::new(&[
                "email",
                "type",
                "status",
                "product profiles",
                "user groups",
                "admin roles",
            ]);
            for u in &users {
                t.push(vec![
                    u["email"].clone(),
                    u["type"].clone(),
                    u["status"].clone(),
                    join(&u["product_profiles"]),
                    join(&u["user_groups"]),
                    join(&u["admin_roles"]),
                ]);
            }
            t.print(output)?;
            if output.is_table() {
                println!();
                let mut t = Table::new(&["product profile", "product", "users"]);
                for p in &profiles {
                    t.push(vec![
                        p["product_profile"].clone(),
                        p["product"].clone(),
                        json!(p["users"].as_array().map_or(0, Vec::len)),
                    ]);
                }
                t.print(output)?;
                println!();
                let mut t = Table::new(&["user group", "users"]);
                for g in &user_groups {
                    t.push(vec![
                        g["user_group"].clone(),
                        json!(g["users"].as_array().map_or(0, Vec::len)),
                    ]);
                }
                t.print(output)?;
            }
        }
    }
    eprintln!(
        "audited {} Adobe users and {} product profiles of {}; {} UMAPI calls, {} sign-in{}",
        a.users.len(),
        profiles.len(),
        a.org_id,
        stats.calls,
        stats.sign_ins,
        if stats.sign_ins == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Gives `email` back what their newest Adobe tombstone recorded.
pub async fn restore(conn: &AdobeConn, email: &str, g: &Globals) -> Result<()> {
    let file = g.config_file()?.adobe;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let people = roster_engine::apps::adobe::NewPeople {
        identity_type: env("ROSTER_ADOBE_IDENTITY_TYPE").or(file.identity_type),
        country: env("ROSTER_ADOBE_COUNTRY").or(file.country),
    };
    let s = roster_engine::apps::adobe::AdobeSession::open(conn, &people, g).await?;
    let result = s.restore(email).await;
    eprintln!("{}", s.cost_line());
    result
}
