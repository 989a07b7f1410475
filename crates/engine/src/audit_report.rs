//! The printable audit report of one instance, for every app: who has which access with
//! what the app says of each account (status, login expiry, last sign-in, locked), set
//! against what the roster gives them, with who made it, when, with which Roster, a content
//! hash tied to the audit log's signed head, and a sign-off block. One template for
//! Marketo, Magento and the Adobe Admin Console, since all three arrive as an inventory.

use std::collections::BTreeSet;

use askama::Template;
use roster_domain::desired::{App, Roster};
use roster_domain::inventory::{Account, AccountKind, Inventory};
use roster_store::LogHead;
use time::OffsetDateTime;

use crate::text::rfc3339;

struct Row {
    person: String,
    email: String,
    account: String,
    status: String,
    roles: Vec<String>,
    privileged: bool,
    expires: String,
    last_login: String,
    locked: bool,
    /// Roster vs actual, in words; `matches` when they agree.
    roster: String,
    differs: bool,
}

#[derive(Template)]
#[template(path = "audit_report.html")]
struct Page {
    app: &'static str,
    instance: String,
    scope: String,
    read_at: String,
    generated_by: String,
    generated_at: String,
    version: &'static str,
    roster_source: String,
    content_sha256: String,
    head: String,
    cards: Vec<(&'static str, usize)>,
    rows: Vec<Row>,
}

fn app_title(app: App) -> &'static str {
    match app {
        App::Marketo => "Marketo",
        App::Magento => "Magento",
        App::Adobe => "Adobe Admin Console",
    }
}

fn role_text(role: &str, scope: &str) -> String {
    if scope.is_empty() {
        role.to_string()
    } else {
        format!("{role}@{scope}")
    }
}

/// What the roster gives the account's person on this app, as the account's grants are
/// written; `None` when the roster does not list the person.
fn wanted(app: App, a: &Account, roster: &Roster) -> Option<BTreeSet<String>> {
    let person = roster
        .people
        .iter()
        .find(|p| p.email.eq_ignore_ascii_case(&a.email))?;
    let w = roster.wanted(person);
    Some(match (app, a.kind) {
        (App::Marketo, _) => w
            .marketo
            .iter()
            .map(|r| role_text(&r.role, &r.workspace))
            .collect(),
        (App::Magento, AccountKind::MagentoAdmin) => w.magento_admin_role.into_iter().collect(),
        (App::Magento, _) => a
            .grants
            .iter()
            .filter_map(|g| {
                w.magento_group
                    .as_ref()
                    .map(|group| role_text(group, &g.scope))
            })
            .collect(),
        (App::Adobe, _) => w.adobe_profiles.into_iter().chain(w.adobe_groups).collect(),
    })
}

/// Roster vs actual for one account.
fn compare(app: App, a: &Account, roster: Option<&Roster>, roles: &[String]) -> (String, bool) {
    let Some(roster) = roster else {
        return ("(no roster given)".into(), false);
    };
    let Some(want) = wanted(app, a, roster) else {
        return ("not in the roster".into(), true);
    };
    let have: BTreeSet<String> = roles.iter().cloned().collect();
    let lower =
        |s: &BTreeSet<String>| -> BTreeSet<String> { s.iter().map(|x| x.to_lowercase()).collect() };
    let (wl, hl) = (lower(&want), lower(&have));
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !hl.contains(&w.to_lowercase()))
        .collect();
    let extra: Vec<&String> = have
        .iter()
        .filter(|h| !wl.contains(&h.to_lowercase()))
        .collect();
    let leaver = roster
        .people
        .iter()
        .find(|p| p.email.eq_ignore_ascii_case(&a.email))
        .is_some_and(|p| p.is_leaver(OffsetDateTime::now_utc().date()));
    if leaver {
        return ("a leaver: the account should be gone".into(), true);
    }
    match (missing.is_empty(), extra.is_empty()) {
        (true, true) => ("matches".into(), false),
        _ => {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!(
                    "roster gives, app lacks: {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !extra.is_empty() {
                parts.push(format!(
                    "app has, roster does not give: {}",
                    extra
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            (parts.join("; "), true)
        }
    }
}

/// The report of `inv`, compared with `roster` when given. `head` is the audit log's signed
/// head at the time: the report names it, so it can be placed in the log's history.
pub fn html(
    inv: &Inventory,
    roster: Option<&Roster>,
    generated_by: &str,
    head: Option<&LogHead>,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let rows: Vec<Row> = inv
        .accounts
        .iter()
        .map(|a| {
            let roles: Vec<String> = a
                .grants
                .iter()
                .map(|g| role_text(&g.role, &g.scope))
                .collect();
            let (text, differs) = compare(inv.app, a, roster, &roles);
            Row {
                person: a.name.clone(),
                email: a.email.clone(),
                account: format!("{} {}", a.kind.as_str(), a.id),
                status: a.status.as_str().into(),
                privileged: a
                    .grants
                    .iter()
                    .any(|g| roster_domain::review::privileged(inv.app, a, g))
                    || a.api_only,
                roles,
                expires: a.expires_at.map(rfc3339).unwrap_or_default(),
                last_login: a.facts.last_login_at.map(rfc3339).unwrap_or_default(),
                locked: a.facts.locked,
                roster: text,
                differs,
            }
        })
        .collect();
    // What the report states, hashed: the inventory it shows and the comparison.
    let content = serde_json::json!({
        "inventory": inv,
        "roster": rows.iter().map(|r| (&r.account, &r.roster)).collect::<Vec<_>>(),
    });
    let content_sha256 = roster_domain::sha256::hex(content.to_string().as_bytes());
    let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
    let page = Page {
        app: app_title(inv.app),
        instance: inv.instance.clone(),
        scope: inv.scope.clone(),
        read_at: rfc3339(inv.read_at),
        generated_by: generated_by.to_string(),
        generated_at: rfc3339(now),
        version: env!("CARGO_PKG_VERSION"),
        roster_source: roster.map_or_else(|| "none given".into(), |r| r.source.clone()),
        content_sha256,
        head: head.map_or_else(
            || "no audit log here".into(),
            |h| {
                format!(
                    "row {} ({}), signed {} by key {}",
                    h.id,
                    h.hash,
                    rfc3339(h.signed_at),
                    h.key_id
                )
            },
        ),
        cards: vec![
            ("accounts", rows.len()),
            ("privileged", count(&|r| r.privileged)),
            ("locked", count(&|r| r.locked)),
            ("not active", count(&|r| r.status != "active")),
            ("differ from the roster", count(&|r| r.differs)),
        ],
        rows,
    };
    Ok(page.render()?)
}
