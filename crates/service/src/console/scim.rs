//! The SCIM page: each identity-provider connection and what it pushed, each group mapping
//! and how many pushed people it reaches, and the conflicts and problems recent runs noted
//! when they merged SCIM people into the roster.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use roster_domain::desired::Access;
use roster_engine::text::rfc3339;

use super::{Nav, nav, render, signed, to_sign_in, when};
use crate::Shared;

pub(super) fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route("/console/scim", axum::routing::get(page))
}

struct ConnectionRow {
    name: String,
    instances: String,
    created: String,
    last_used: String,
    revoked: bool,
    users: usize,
    inactive: usize,
    groups: usize,
}

struct MappingRow {
    group: String,
    access: String,
    members: usize,
}

struct NoteRow {
    run: i64,
    instance: String,
    at: String,
    text: String,
}

#[derive(Template)]
#[template(path = "console/scim.html")]
struct ScimPage {
    nav: Nav,
    connections: Vec<ConnectionRow>,
    mappings: Vec<MappingRow>,
    notes: Vec<NoteRow>,
}

/// A mapping's access in the roster's own words.
fn describe(a: &Access) -> String {
    let mut parts = Vec::new();
    if !a.marketo.is_empty() {
        let roles: Vec<String> = a
            .marketo
            .iter()
            .map(|r| format!("{}@{}", r.role, r.workspace))
            .collect();
        parts.push(format!("marketo: {}", roles.join(", ")));
    }
    for (name, roles) in &a.marketo_at {
        let roles: Vec<String> = roles
            .iter()
            .map(|r| format!("{}@{}", r.role, r.workspace))
            .collect();
        parts.push(format!("marketo.{name}: {}", roles.join(", ")));
    }
    let magento = |label: String, m: &roster_domain::desired::MagentoAccess| {
        let mut out = Vec::new();
        if let Some(g) = &m.group {
            out.push(format!("group {g}"));
        }
        if let Some(r) = &m.admin_role {
            out.push(format!("admin role {r}"));
        }
        (!out.is_empty()).then(|| format!("{label}: {}", out.join(", ")))
    };
    parts.extend(magento("magento".into(), &a.magento));
    for (name, m) in &a.magento_at {
        parts.extend(magento(format!("magento.{name}"), m));
    }
    if !a.adobe.is_empty() {
        let names: Vec<String> = a
            .adobe
            .profiles
            .iter()
            .map(|p| format!("profile {p}"))
            .chain(a.adobe.groups.iter().map(|g| format!("group {g}")))
            .collect();
        parts.push(format!("adobe: {}", names.join(", ")));
    }
    parts.join("; ")
}

async fn page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let store = &shared.store;
    let mut connections = Vec::new();
    let mut members_of: std::collections::HashMap<String, usize> = Default::default();
    for c in store.scim_connections().await.unwrap_or_default() {
        let users = store
            .scim_resources(&c.name, "User")
            .await
            .unwrap_or_default();
        let groups = store
            .scim_resources(&c.name, "Group")
            .await
            .unwrap_or_default();
        for g in &groups {
            *members_of.entry(g.name.clone()).or_default() +=
                g.body["members"].as_array().map_or(0, Vec::len);
        }
        connections.push(ConnectionRow {
            instances: c.reach(),
            created: rfc3339(c.created_at),
            last_used: when(c.last_used_at),
            revoked: c.revoked_at.is_some(),
            inactive: users.iter().filter(|u| u.body["active"] == false).count(),
            users: users.len(),
            groups: groups.len(),
            name: c.name,
        });
    }
    let mappings = shared
        .config
        .scim
        .groups
        .iter()
        .map(|(group, access)| MappingRow {
            members: members_of.get(group).copied().unwrap_or(0),
            access: describe(access),
            group: group.clone(),
        })
        .collect();
    // What the runs said when they merged SCIM people into the roster.
    let mut notes = Vec::new();
    for run in store.runs(None, 100).await.unwrap_or_default() {
        for e in run.events.as_array().into_iter().flatten() {
            let text = e["text"].as_str().unwrap_or_default();
            if e["kind"] == "note" && (text.contains("SCIM") || text.starts_with("conflict:")) {
                notes.push(NoteRow {
                    run: run.id,
                    instance: run.instance.clone(),
                    at: e["at"].as_str().unwrap_or_default().to_string(),
                    text: text.to_string(),
                });
            }
        }
    }
    render(
        StatusCode::OK,
        &ScimPage {
            nav: nav(&s, "scim"),
            connections,
            mappings,
            notes,
        },
    )
}

#[cfg(test)]
mod tests {
    use roster_domain::desired::{Access, AdobeAccess, RoleRef};

    use super::describe;

    #[test]
    fn a_group_mapping_is_described_app_by_app() {
        let a = Access {
            marketo: vec![RoleRef::new("Analyst", "Default")],
            adobe: AdobeAccess {
                profiles: vec!["Creative Cloud All Apps".into()],
                groups: vec!["Designers".into()],
            },
            ..Access::default()
        };
        assert_eq!(
            describe(&a),
            "marketo: Analyst@Default; adobe: profile Creative Cloud All Apps, group Designers"
        );
    }
}
