//! Who has which access: the inventories the runs keep (one per instance), held in memory
//! once read and searched there, so a page over 100,000 accounts costs a scan of their
//! lower-cased text rather than a query per filter. The API, the console page and the
//! exports all read through here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use roster_domain::inventory::{Account, AccountKind, Filter, Inventory, Status, search_text};
use roster_engine::text::{csv_cell, rfc3339};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::Shared;
use crate::api::{ApiError, ApiPath, ApiQuery, ApiResult, Caller};

/// The most rows one API page returns.
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 50;

/// An inventory with what a search needs, built once per stored version. The accounts are
/// scattered on the heap (each string its own allocation); a scan that chased those pointers
/// spent its time waiting on memory, so the filterable parts are laid out again here in flat
/// arrays: the search text end to end in one string, roles and scopes as small numbers.
pub struct Indexed {
    pub version: i64,
    pub inventory: Inventory,
    /// `search_text` of every account, one after another; account `i` is
    /// `text[text_at[i]..text_at[i + 1]]`.
    text: String,
    text_at: Vec<usize>,
    /// Account `i`'s grants are `grants[grants_at[i]..grants_at[i + 1]]`, as (role, scope)
    /// positions in `roles` and `scopes`.
    grants: Vec<(u32, u32)>,
    grants_at: Vec<usize>,
    status: Vec<Status>,
    kind: Vec<AccountKind>,
    /// Sorted.
    pub roles: Vec<String>,
    /// Sorted.
    pub scopes: Vec<String>,
}

impl Indexed {
    fn new(version: i64, inventory: Inventory) -> Self {
        let (roles, scopes) = inventory.roles_and_scopes();
        let position = |list: &[String], name: &str| {
            list.binary_search_by(|x| x.as_str().cmp(name))
                .expect("every name is in the list it was taken from") as u32
        };
        let n = inventory.accounts.len();
        let mut text = String::new();
        let mut text_at = Vec::with_capacity(n + 1);
        let mut grants = Vec::new();
        let mut grants_at = Vec::with_capacity(n + 1);
        text_at.push(0);
        grants_at.push(0);
        for a in &inventory.accounts {
            text.push_str(&search_text(a));
            text_at.push(text.len());
            grants.extend(
                a.grants
                    .iter()
                    .map(|g| (position(&roles, &g.role), position(&scopes, &g.scope))),
            );
            grants_at.push(grants.len());
        }
        Indexed {
            version,
            status: inventory.accounts.iter().map(|a| a.status).collect(),
            kind: inventory.accounts.iter().map(|a| a.kind).collect(),
            inventory,
            text,
            text_at,
            grants,
            grants_at,
            roles,
            scopes,
        }
    }

    /// The positions of the accounts that pass `filter`, in email order.
    pub fn matching(&self, filter: &Filter) -> Vec<usize> {
        let n = self.inventory.accounts.len();
        if filter.is_empty() {
            return (0..n).collect();
        }
        let needle = filter.text.trim().to_lowercase();
        // A role or scope no account has matches nothing.
        let id = |list: &[String], name: &str| -> Option<Option<u32>> {
            if name.is_empty() {
                Some(None)
            } else {
                list.binary_search_by(|x| x.as_str().cmp(name))
                    .ok()
                    .map(|i| Some(i as u32))
            }
        };
        let (Some(role), Some(scope)) = (
            id(&self.roles, &filter.role),
            id(&self.scopes, &filter.scope),
        ) else {
            return Vec::new();
        };
        (0..n)
            .filter(|&i| {
                filter.status.is_none_or(|s| self.status[i] == s)
                    && filter.kind.is_none_or(|k| self.kind[i] == k)
                    && (role.is_none() && scope.is_none()
                        || self.grants[self.grants_at[i]..self.grants_at[i + 1]]
                            .iter()
                            .any(|&(r, s)| {
                                role.is_none_or(|x| x == r) && scope.is_none_or(|x| x == s)
                            }))
                    && (needle.is_empty()
                        || self.text[self.text_at[i]..self.text_at[i + 1]].contains(&needle))
            })
            .collect()
    }

    /// The accounts whose email is `email` (the inventory is sorted by email).
    pub fn of_person(&self, email: &str) -> &[Account] {
        let accounts = &self.inventory.accounts;
        let start = accounts.partition_point(|a| a.email.as_str() < email);
        let end = start + accounts[start..].partition_point(|a| a.email == email);
        &accounts[start..end]
    }
}

/// The inventories read so far, by instance name; reloaded when the stored version moves.
#[derive(Default)]
pub struct InventoryCache {
    held: Mutex<HashMap<String, Arc<Indexed>>>,
}

impl InventoryCache {
    /// The instance's newest inventory, or `None` before its first run kept one.
    pub async fn get(
        &self,
        store: &roster_store::StateStore,
        instance: &str,
    ) -> roster_store::Result<Option<Arc<Indexed>>> {
        let Some(version) = store.inventory_version(instance).await? else {
            return Ok(None);
        };
        if let Some(hit) = self.held.lock().expect("inventory cache").get(instance)
            && hit.version == version
        {
            return Ok(Some(hit.clone()));
        }
        let Some((version, inventory)) = store.inventory(instance).await? else {
            return Ok(None);
        };
        // Indexing 100,000 accounts takes a moment: off the async threads.
        let indexed =
            tokio::task::spawn_blocking(move || Arc::new(Indexed::new(version, inventory)))
                .await
                .map_err(|e| roster_store::StoreError::Corrupt {
                    what: "inventory",
                    detail: format!("indexing stopped: {e}"),
                })?;
        self.held
            .lock()
            .expect("inventory cache")
            .insert(instance.to_string(), indexed.clone());
        Ok(Some(indexed))
    }
}

/// The statuses a filter may name (documented as an enumeration; parsed by
/// `Status::parse`, so the console's empty "any" passes too).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    Active,
    Pending,
    Locked,
    Inactive,
    Expired,
}

/// The account kinds a filter may name.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    User,
    Invitation,
    Customer,
    Admin,
}

/// The filter and page a request asks for (the API's query and the console's form).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    /// Text found anywhere in the email, name or id (case-insensitive).
    pub q: Option<String>,
    /// Only accounts with this role (Marketo role, Magento group or admin role).
    pub role: Option<String>,
    /// Only accounts with access in this scope (Marketo workspace, Magento website, `admin`);
    /// with `role`, on the same grant.
    pub scope: Option<String>,
    /// `active`, `pending`, `locked`, `inactive` or `expired`.
    #[param(value_type = Option<StatusName>)]
    pub status: Option<String>,
    /// `user`, `invitation`, `customer` or `admin`.
    #[param(value_type = Option<KindName>)]
    pub kind: Option<String>,
    /// Rows to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i32>,
    /// Rows to return (default 50; more than 1000 returns 1000).
    #[param(minimum = 0)]
    pub limit: Option<i32>,
}

impl AccessQuery {
    /// The filter, or what is wrong with it.
    pub fn filter(&self) -> Result<Filter, String> {
        for (name, v) in [("offset", self.offset), ("limit", self.limit)] {
            if v.is_some_and(|n| n < 0) {
                return Err(format!("{name} is 0 or more"));
            }
        }
        let text = |v: &Option<String>| v.as_deref().unwrap_or_default().trim().to_string();
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| {
                format!(
                    "status {s:?} is not one of {}",
                    Status::ALL.map(Status::as_str).join(", ")
                )
            })?),
        };
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(k) => Some(AccountKind::parse(k).ok_or_else(|| {
                format!("kind {k:?} is not one of user, invitation, customer, admin")
            })?),
        };
        Ok(Filter {
            text: text(&self.q),
            role: text(&self.role),
            scope: text(&self.scope),
            status,
            kind,
        })
    }

    pub fn offset(&self) -> usize {
        self.offset.map_or(0, |n| n.max(0) as usize)
    }

    pub fn limit(&self) -> usize {
        self.limit
            .map_or(DEFAULT_LIMIT, |n| n.max(0) as usize)
            .clamp(1, MAX_LIMIT)
    }
}

/// One account in a report.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub instance: String,
    /// `user`, `invitation`, `customer` or `admin`.
    pub kind: &'static str,
    /// Marketo userid, Magento customer id or admin username.
    pub id: String,
    pub email: String,
    pub name: String,
    /// `active`, `pending`, `locked`, `inactive` or `expired`.
    pub status: &'static str,
    pub api_only: bool,
    pub access: Vec<GrantView>,
    /// Marketo `expiresAt`, or a pending invitation link's expiry (RFC 3339).
    pub expires_at: Option<String>,
    /// Marketo `lastLoginAt`; a Magento admin's `logdate` where given.
    pub last_login_at: Option<String>,
    /// Marketo `isLocked`; a Magento admin's `lock_expires` in the future.
    pub locked: bool,
    /// Magento `created_at`; a Marketo invitation's `createdAt`.
    pub created_at: Option<String>,
    /// Magento `updated_at`.
    pub updated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantView {
    pub role: String,
    /// Marketo workspace, Magento website code, or `admin`.
    pub scope: String,
}

impl AccountView {
    pub fn new(instance: &str, a: &Account) -> Self {
        AccountView {
            instance: instance.to_string(),
            kind: a.kind.as_str(),
            id: a.id.clone(),
            email: a.email.clone(),
            name: a.name.clone(),
            status: a.status.as_str(),
            api_only: a.api_only,
            access: a
                .grants
                .iter()
                .map(|g| GrantView {
                    role: g.role.clone(),
                    scope: g.scope.clone(),
                })
                .collect(),
            expires_at: a.expires_at.map(rfc3339),
            last_login_at: a.facts.last_login_at.map(rfc3339),
            locked: a.facts.locked,
            created_at: a.facts.created_at.map(rfc3339),
            updated_at: a.facts.updated_at.map(rfc3339),
        }
    }
}

/// What makes a report one an auditor can file: who, when, with what, over what.
#[derive(Serialize, ToSchema)]
pub struct Provenance {
    pub generated_by: String,
    /// RFC 3339.
    pub generated_at: String,
    pub roster_version: &'static str,
    /// The instance, or `every instance` for a person's view.
    pub instance: String,
    /// When the app was read (RFC 3339).
    pub read_at: Option<String>,
    /// What the read covered.
    pub scope: String,
    /// Steps Roster applied after the read, included in the accounts.
    pub changes_since_read: usize,
    /// The filter, in words.
    pub filter: String,
}

impl Provenance {
    pub fn new(by: &str, indexed: &Indexed, filter: &Filter) -> Self {
        let inv = &indexed.inventory;
        Provenance {
            generated_by: by.to_string(),
            generated_at: rfc3339(OffsetDateTime::now_utc()),
            roster_version: env!("CARGO_PKG_VERSION"),
            instance: inv.instance.clone(),
            read_at: Some(rfc3339(inv.read_at)),
            scope: inv.scope.clone(),
            changes_since_read: inv.changes_since_read,
            filter: filter.describe(),
        }
    }
}

/// A page (or, exported, all) of one instance's accounts.
#[derive(Serialize, ToSchema)]
pub struct AccessReport {
    pub report: Provenance,
    /// Accounts in the inventory.
    pub total: usize,
    /// Accounts that pass the filter.
    pub matched: usize,
    pub offset: usize,
    pub accounts: Vec<AccountView>,
}

/// One person's accounts across every instance.
#[derive(Serialize, ToSchema)]
pub struct PersonReport {
    pub report: Provenance,
    pub email: String,
    pub accounts: Vec<AccountView>,
    /// Instances with no inventory yet (no run has read them): the person may have access
    /// there that this report cannot show.
    pub not_read: Vec<String>,
}

/// The inventory of a configured instance, or the error to answer with.
pub async fn inventory_of(shared: &Shared, instance: &str) -> ApiResult<Arc<Indexed>> {
    crate::api::instance_worker(shared, instance)?;
    shared
        .inventories
        .get(&shared.store, instance)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_read_yet",
                format!(
                    "{instance} has not been read yet: its first run keeps its inventory (POST /api/v1/instances/{instance}/reconcile to run it now)"
                ),
            )
        })
}

/// A page of an instance's accounts, or all of them with `everything`.
pub fn report(
    by: &str,
    indexed: &Indexed,
    q: &AccessQuery,
    everything: bool,
) -> Result<AccessReport, String> {
    let filter = q.filter()?;
    let hits = indexed.matching(&filter);
    let (offset, limit) = if everything {
        (0, usize::MAX)
    } else {
        (q.offset(), q.limit())
    };
    let accounts = &indexed.inventory.accounts;
    Ok(AccessReport {
        report: Provenance::new(by, indexed, &filter),
        total: accounts.len(),
        matched: hits.len(),
        offset,
        accounts: hits
            .iter()
            .skip(offset)
            .take(limit)
            .map(|&i| AccountView::new(&indexed.inventory.instance, &accounts[i]))
            .collect(),
    })
}

/// One person's accounts on every instance the service runs.
pub async fn person(shared: &Shared, by: &str, email: &str) -> ApiResult<PersonReport> {
    let email = email.trim().to_lowercase();
    let mut accounts = Vec::new();
    let mut not_read = Vec::new();
    let mut oldest: Option<OffsetDateTime> = None;
    for name in shared.workers.keys() {
        match shared.inventories.get(&shared.store, name).await? {
            Some(indexed) => {
                let read_at = indexed.inventory.read_at;
                oldest = Some(oldest.map_or(read_at, |o| o.min(read_at)));
                accounts.extend(
                    indexed
                        .of_person(&email)
                        .iter()
                        .map(|a| AccountView::new(name, a)),
                );
            }
            None => not_read.push(name.clone()),
        }
    }
    Ok(PersonReport {
        report: Provenance {
            generated_by: by.to_string(),
            generated_at: rfc3339(OffsetDateTime::now_utc()),
            roster_version: env!("CARGO_PKG_VERSION"),
            instance: "every instance".into(),
            read_at: oldest.map(rfc3339),
            scope: format!(
                "the accounts of {email} on {} instance{}",
                shared.workers.len(),
                if shared.workers.len() == 1 { "" } else { "s" }
            ),
            changes_since_read: 0,
            filter: format!("email {email}"),
        },
        email,
        accounts,
        not_read,
    })
}

/// People whose email, name or id matches `text` on any instance, each with their accounts,
/// in email order; returns the page and how many people matched.
pub async fn people(
    shared: &Shared,
    text: &str,
    offset: usize,
    limit: usize,
) -> ApiResult<(Vec<(String, Vec<AccountView>)>, usize)> {
    let filter = Filter {
        text: text.trim().to_string(),
        ..Filter::default()
    };
    let mut by_email: BTreeMap<&str, Vec<(&str, &Account)>> = BTreeMap::new();
    let mut held = Vec::new();
    for name in shared.workers.keys() {
        if let Some(indexed) = shared.inventories.get(&shared.store, name).await? {
            held.push((name.as_str(), indexed));
        }
    }
    for (name, indexed) in &held {
        for i in indexed.matching(&filter) {
            let a = &indexed.inventory.accounts[i];
            by_email
                .entry(a.email.as_str())
                .or_default()
                .push((name, a));
        }
    }
    let matched = by_email.len();
    let page = by_email
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(email, accounts)| {
            (
                email.to_string(),
                accounts
                    .into_iter()
                    .map(|(name, a)| AccountView::new(name, a))
                    .collect(),
            )
        })
        .collect();
    Ok((page, matched))
}

/// The report as CSV: one row per account and grant (an account with no access has one row
/// with empty role and scope), cells defused against spreadsheet formulas.
pub fn csv(report: &AccessReport) -> String {
    let mut out = String::from(
        "instance,kind,id,email,name,status,api_only,role,scope,expires_at,last_login_at,locked,created_at,updated_at\n",
    );
    for a in &report.accounts {
        let grants: Vec<(&str, &str)> = if a.access.is_empty() {
            vec![("", "")]
        } else {
            a.access
                .iter()
                .map(|g| (g.role.as_str(), g.scope.as_str()))
                .collect()
        };
        for (role, scope) in grants {
            let cells = [
                a.instance.as_str(),
                a.kind,
                &a.id,
                &a.email,
                &a.name,
                a.status,
                if a.api_only { "true" } else { "false" },
                role,
                scope,
                a.expires_at.as_deref().unwrap_or_default(),
                a.last_login_at.as_deref().unwrap_or_default(),
                if a.locked { "true" } else { "false" },
                a.created_at.as_deref().unwrap_or_default(),
                a.updated_at.as_deref().unwrap_or_default(),
            ];
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
    }
    out
}

/// Who has which access on one instance, as read by its last run, filtered and paged.
#[utoipa::path(get, path = "/api/v1/instances/{name}/access", tag = "access",
    params(("name" = String, Path, description = "the instance"), AccessQuery),
    responses((status = 200, body = AccessReport), (status = 404, body = crate::views::ErrorBody)))]
pub async fn access_api(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> ApiResult<Json<AccessReport>> {
    let indexed = inventory_of(&shared, &name).await?;
    report(&caller.key(), &indexed, &q, false)
        .map(Json)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m))
}

/// One person's accounts on every instance, joined by email.
#[utoipa::path(get, path = "/api/v1/people/{email}", tag = "access",
    params(("email" = String, Path, description = "the person's email")),
    responses((status = 200, body = PersonReport)))]
pub async fn person_api(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(email): ApiPath<String>,
) -> ApiResult<Json<PersonReport>> {
    person(&shared, &caller.key(), &email).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_domain::inventory::Grant;
    use roster_domain::live::Facts;

    /// The documented names are the ones the filter parses.
    #[test]
    fn documented_names_are_the_parsed_ones() {
        let names = |v: Vec<serde_json::Value>| -> Vec<String> {
            v.into_iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        let statuses = names(
            [
                StatusName::Active,
                StatusName::Pending,
                StatusName::Locked,
                StatusName::Inactive,
                StatusName::Expired,
            ]
            .iter()
            .map(|n| serde_json::to_value(n).unwrap())
            .collect(),
        );
        assert_eq!(statuses, Status::ALL.map(|s| s.as_str().to_string()));
        for k in [
            KindName::User,
            KindName::Invitation,
            KindName::Customer,
            KindName::Admin,
        ] {
            let name = serde_json::to_value(&k).unwrap();
            assert!(
                AccountKind::parse(name.as_str().unwrap()).is_some(),
                "{name}"
            );
        }
    }

    /// The flat index answers exactly what the domain's `Filter::matches` says, over every
    /// combination of filters on a varied inventory.
    #[test]
    fn the_index_agrees_with_the_domain_filter() {
        let roles = ["Admin", "Analyst", "Editor"];
        let scopes = ["Default", "EMEA", "US"];
        let accounts: Vec<Account> = (0..300)
            .map(|i| Account {
                kind: if i % 7 == 0 {
                    AccountKind::MarketoInvite
                } else {
                    AccountKind::MarketoUser
                },
                id: format!("u{i}@x.io"),
                email: format!("u{i:03}@x.io"),
                name: format!("Name{} Other", i % 13),
                status: Status::ALL[i % Status::ALL.len()],
                api_only: false,
                grants: (0..i % 4)
                    .map(|k| Grant {
                        role: roles[(i + k) % 3].into(),
                        scope: scopes[(i / 3 + k) % 3].into(),
                    })
                    .collect(),
                expires_at: None,
                facts: Facts::default(),
            })
            .collect();
        let indexed = Indexed::new(
            1,
            Inventory {
                app: roster_domain::desired::App::Marketo,
                instance: "m".into(),
                read_at: OffsetDateTime::UNIX_EPOCH,
                scope: String::new(),
                accounts,
                changes_since_read: 0,
            },
        );
        let mut checked = 0;
        for text in ["", "NAME1", "u00", "nobody"] {
            for role in ["", "Admin", "Editor", "Unknown"] {
                for scope in ["", "EMEA", "US"] {
                    for status in [None, Some(Status::Active), Some(Status::Pending)] {
                        let f = Filter {
                            text: text.into(),
                            role: role.into(),
                            scope: scope.into(),
                            status,
                            kind: None,
                        };
                        let needle = text.to_lowercase();
                        let expected: Vec<usize> = indexed
                            .inventory
                            .accounts
                            .iter()
                            .enumerate()
                            .filter(|(_, a)| f.matches(a, &search_text(a), &needle))
                            .map(|(i, _)| i)
                            .collect();
                        assert_eq!(indexed.matching(&f), expected, "{f:?}");
                        checked += usize::from(!expected.is_empty());
                    }
                }
            }
        }
        assert!(checked > 20, "the filters found something to compare");
    }
}
