//! Magento as a connector: the managed website's customers and the admin users (where an
//! extension gives the API), steps through the REST API, deletions tombstoned first.

use anyhow::{Context, Result, bail};
use roster_domain::desired::{App, Roster};
use roster_domain::live::{Facts, Live, MagentoAdmin, MagentoCustomer, MagentoLive, Named};
use roster_domain::plan::{Action, Step};
use roster_magento::{AdminUsers, Condition, Criteria, like_literal};
use roster_store::Tombstone;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{Connector, Fut, StepContext};
use crate::lifecycle::close_finished_deletions;
use crate::magento_ops::{MAGENTO, MagentoSession};

impl Connector for MagentoSession {
    session_basics!(App::Magento);

    fn read<'a>(&'a self, roster: &'a Roster) -> Fut<'a, Live> {
        Box::pin(async move {
            Ok(Live {
                magento: Some(read(self, roster).await?),
                ..Live::default()
            })
        })
    }

    fn execute<'a>(&'a self, step: &'a Step, ctx: &'a StepContext<'a>) -> Fut<'a, Option<String>> {
        Box::pin(execute(self, step, ctx))
    }

    fn bulk(&self, action: &Action) -> bool {
        matches!(action, Action::MagentoDeleteCustomer { .. })
    }

    fn execute_bulk<'a>(
        &'a self,
        steps: &'a [&'a Step],
        ctx: &'a StepContext<'a>,
    ) -> Fut<'a, Vec<(usize, Result<Option<String>>)>> {
        Box::pin(delete_in_bulk(self, steps, ctx))
    }

    fn tombstoned(&self, action: &Action) -> Option<String> {
        match action {
            Action::MagentoDeleteCustomer { id, .. } | Action::MagentoDeleteAdmin { id, .. } => {
                Some(id.to_string())
            }
            _ => None,
        }
    }

    fn restore<'a>(&'a self, t: &'a Tombstone) -> Fut<'a, ()> {
        Box::pin(async move {
            match t.account["username"].as_str() {
                Some(username) => crate::magento_ops::restore_admin(self, username).await,
                None => {
                    crate::magento_ops::restore_customer(
                        self,
                        &t.email,
                        t.account["website_id"].as_i64(),
                    )
                    .await
                }
            }
        })
    }
}

/// Deletes many customers at once, each with its tombstone as a single deletion has: their
/// records read by id (100 per search), a tombstone written for each, then one bulk
/// deletion (`DELETE /async/bulk/V1/customers/byCustomerId`) polled until every operation
/// is final. A customer already gone is done ("already deleted", its open tombstone
/// closed); one whose operation failed keeps its tombstone `failed`, and the step fails.
async fn delete_in_bulk(
    s: &MagentoSession,
    steps: &[&Step],
    ctx: &StepContext<'_>,
) -> Result<Vec<(usize, Result<Option<String>>)>> {
    let wanted: Vec<(&Step, i64, &str)> = steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::MagentoDeleteCustomer { id, email } => Some((*step, *id, email.as_str())),
            _ => None,
        })
        .collect();
    s.events.emit(crate::events::Event::Said(format!(
        "deleting {} customers through Magento's bulk API, each with a tombstone first",
        wanted.len()
    )));
    let mut records: std::collections::HashMap<i64, Value> = std::collections::HashMap::new();
    for chunk in wanted.chunks(100) {
        let ids: Vec<String> = chunk.iter().map(|(_, id, _)| id.to_string()).collect();
        let criteria = Criteria::new().and("entity_id", Condition::In, ids.join(","));
        for c in s.client.customers(&criteria, |_, _| {}).await? {
            if let Some(id) = c["id"].as_i64() {
                records.insert(id, c);
            }
        }
    }
    let mut out = Vec::new();
    let mut tombstones: Vec<(usize, i64, i64, String)> = Vec::new();
    for (step, id, email) in &wanted {
        let Some(record) = records.get(id) else {
            finish_interrupted_deletion(s, *id).await?;
            out.push((step.index, Ok(Some("already deleted".to_string()))));
            continue;
        };
        let t = crate::magento_ops::tombstone(
            s,
            id.to_string(),
            email,
            record,
            Vec::new(),
            ctx.who,
            &ctx.confirm(step),
        )
        .await?;
        tombstones.push((step.index, *id, t, email.to_string()));
    }
    let ids: Vec<i64> = tombstones.iter().map(|(_, id, _, _)| *id).collect();
    let outcome = s.client.bulk_delete(&ids, |_, _| {}).await;
    for (index, id, t, email) in tombstones {
        let what = format!("customer {email}");
        let result = match &outcome {
            Err(e) => Err(anyhow::anyhow!("the bulk deletion failed: {e}")),
            Ok(o) => match o.failed.iter().find(|(c, _)| *c == id) {
                // Gone before its operation ran: what was asked for is so.
                Some((_, why)) if why.contains("No such entity") => Ok(()),
                Some((_, why)) => Err(anyhow::anyhow!("Magento's bulk operation {why}")),
                None => Ok(()),
            },
        };
        let done = crate::magento_ops::finish(s, t, result, &what).await;
        out.push((index, done.map(|()| None)));
    }
    Ok(out)
}

/// A Magento account already gone: a deletion interrupted after it happened left its
/// tombstone open; close it.
async fn finish_interrupted_deletion(s: &MagentoSession, id: i64) -> Result<()> {
    close_finished_deletions(&s.events, &s.state, MAGENTO, &s.instance, &id.to_string()).await
}

async fn execute(s: &MagentoSession, step: &Step, ctx: &StepContext<'_>) -> Result<Option<String>> {
    match &step.action {
        Action::MagentoCreateCustomer {
            email,
            first_name,
            last_name,
            group_id,
            website_id,
            ..
        } => {
            let body = json!({"email": email, "firstname": first_name, "lastname": last_name, "website_id": website_id, "group_id": group_id});
            match s.client.create_customer(body, None).await {
                Ok(_) => Ok(None),
                Err(e) => {
                    let exists = s
                        .client
                        .customers_by_email(email)
                        .await?
                        .iter()
                        .any(|c| c["website_id"].as_i64() == Some(*website_id));
                    if exists {
                        Ok(Some("the customer already exists".into()))
                    } else {
                        Err(e.into())
                    }
                }
            }
        }
        Action::MagentoUpdateCustomer {
            id,
            first_name,
            last_name,
            group_id,
            ..
        } => {
            let mut changes = serde_json::Map::new();
            changes.insert("firstname".into(), json!(first_name));
            changes.insert("lastname".into(), json!(last_name));
            changes.insert("group_id".into(), json!(group_id));
            s.client.update_customer(*id, &changes).await?;
            Ok(None)
        }
        Action::MagentoDeleteCustomer { id, email } => {
            let customer = match s.client.customer(*id).await {
                Ok(c) => c,
                Err(e) if e.is_not_found() => {
                    finish_interrupted_deletion(s, *id).await?;
                    return Ok(Some("already deleted".into()));
                }
                Err(e) => return Err(e.into()),
            };
            let t = crate::magento_ops::tombstone(
                s,
                id.to_string(),
                email,
                &customer,
                Vec::new(),
                ctx.who,
                &ctx.confirm(step),
            )
            .await?;
            let result = s.client.delete_customer(*id).await.map_err(Into::into);
            crate::magento_ops::finish(s, t, result, &format!("customer {email}")).await?;
            Ok(None)
        }
        Action::MagentoCreateAdmin {
            username,
            email,
            first_name,
            last_name,
            role_id,
            ..
        } => {
            if let AdminUsers::Available(users) = s.client.admin_users().await?
                && users.iter().any(|u| {
                    u["username"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(username))
                })
            {
                return Ok(Some("the admin user already exists".into()));
            }
            // A first password nobody knows: the person sets their own through
            // "Forgot your password?" on the admin sign-in page. It is never shown.
            let password = format!("Rr7{}", uuid::Uuid::new_v4().simple());
            let created = s
                .client
                .create_admin_user(json!({"username": username, "firstname": first_name, "lastname": last_name, "email": email, "password": password, "role_id": role_id, "is_active": true}))
                .await;
            if let Err(e) = created {
                // An answer lost after the store made the user (a gateway error, a timeout)
                // is settled by looking: the user there is this step done.
                let made = matches!(
                    s.client.admin_users().await,
                    Ok(AdminUsers::Available(users)) if users.iter().any(|u| {
                        u["username"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(username))
                    })
                );
                if !made {
                    return Err(e.into());
                }
            }
            Ok(Some(
                "they set a password with \"Forgot your password?\" on the admin sign-in page"
                    .into(),
            ))
        }
        Action::MagentoUpdateAdmin {
            id,
            first_name,
            last_name,
            role_id,
            is_active,
            ..
        } => {
            let mut fields =
                json!({"firstname": first_name, "lastname": last_name, "is_active": is_active});
            if let Some(role) = role_id {
                fields["role_id"] = json!(role);
            }
            s.client.update_admin_user(*id, fields).await?;
            Ok(None)
        }
        Action::MagentoDeleteAdmin { id, username } => {
            let AdminUsers::Available(users) = s.client.admin_users().await? else {
                bail!("{}", roster_magento::MagentoError::NoAdminApi);
            };
            let Some(user) = users.iter().find(|u| u["id"].as_i64() == Some(*id)) else {
                finish_interrupted_deletion(s, *id).await?;
                return Ok(Some("already deleted".into()));
            };
            let email = user["email"].as_str().unwrap_or_default().to_string();
            let t = crate::magento_ops::tombstone(
                s,
                id.to_string(),
                &email,
                user,
                Vec::new(),
                ctx.who,
                &ctx.confirm(step),
            )
            .await?;
            let result = s.client.delete_admin_user(*id).await.map_err(Into::into);
            crate::magento_ops::finish(s, t, result, &format!("admin user {username}")).await?;
            Ok(None)
        }
        other => bail!("{} is not a Magento step", other.describe()),
    }
}

fn named(items: &[Value], name: &str) -> Vec<Named> {
    items
        .iter()
        .filter_map(|v| {
            Some(Named {
                id: v["id"].as_i64()?,
                name: v[name].as_str()?.to_string(),
            })
        })
        .collect()
}

/// Magento writes times as `YYYY-MM-DD HH:MM:SS` in UTC; anything else is left out rather
/// than guessed at.
fn magento_time(v: &Value, key: &str) -> Option<OffsetDateTime> {
    let raw = v[key].as_str()?.trim();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(raw, &format)
        .map(time::PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339))
        .ok()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// What changed among the managed customers since a time: found between full reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Lower-cased emails of the managed customers whose `updated_at` is at or after the
    /// time (made or changed since).
    pub emails: Vec<String>,
    /// How many managed customers there are now (`total_count`): fewer than the last read
    /// knew means some were deleted, which `updated_at` cannot show.
    pub managed: usize,
}

/// The managed customers changed since `since` (`updated_at` `gteq`, the portable filter:
/// Magento keeps it in UTC to the second, so the same second is read again rather than
/// missed), and how many managed customers there are: three calls (websites, the changes,
/// the count), whatever the store's size.
pub async fn changed_since(
    s: &MagentoSession,
    roster: &Roster,
    since: OffsetDateTime,
) -> Result<Changes> {
    let c = &s.client;
    let website = roster.policies.magento.website.as_str();
    let websites = named(&c.websites().await?, "code");
    let mut criteria = Criteria::new();
    if let Some(w) = websites
        .iter()
        .find(|w| w.name.eq_ignore_ascii_case(website))
    {
        criteria = criteria.and("website_id", Condition::Eq, w.id);
    }
    if let Some(alternatives) = managed_filter(roster) {
        criteria = criteria.any(alternatives);
    }
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let stamp = since
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .context("formatting a time")?;
    let changed = criteria.clone().and("updated_at", Condition::Gteq, stamp);
    let (emails, managed) = tokio::try_join!(
        c.customers_mapped(
            &changed,
            Some(&["id", "email"]),
            CONCURRENT_PAGES,
            |v| text(v, "email").trim().to_lowercase(),
            |_, _| {},
        ),
        c.count_customers(&criteria)
    )
    .context("looking for changed Magento customers")?;
    let mut emails = emails;
    emails.sort();
    emails.dedup();
    Ok(Changes { emails, managed })
}

/// The alternatives that select the customers Roster manages: an email in one of the
/// managed domains (matched exactly: `_` and `%` in a domain are not wildcards), or one of
/// the roster's people outside them by exact email (in lists of 50, to keep URLs short).
/// `None` when every customer is managed.
fn managed_filter(roster: &Roster) -> Option<Vec<(String, Condition, String)>> {
    let policy = &roster.policies.magento;
    if policy.managed_domains.is_empty() {
        return None;
    }
    let mut alternatives: Vec<(String, Condition, String)> = policy
        .managed_domains
        .iter()
        .map(|d| {
            let domain = d.trim().trim_start_matches('@');
            (
                "email".to_string(),
                Condition::Like,
                format!("%@{}", like_literal(domain)),
            )
        })
        .collect();
    let outside: Vec<&str> = roster
        .people
        .iter()
        .filter(|p| !policy.manages(&p.email))
        .map(|p| p.email.as_str())
        .collect();
    for chunk in outside.chunks(50) {
        alternatives.push(("email".to_string(), Condition::In, chunk.join(",")));
    }
    Some(alternatives)
}

/// The fields of a customer planning uses: Magento sends only these (partial responses).
const CUSTOMER_FIELDS: [&str; 8] = [
    "id",
    "email",
    "firstname",
    "lastname",
    "group_id",
    "website_id",
    "created_at",
    "updated_at",
];

/// Search pages read at once after the first (which says how many there are).
const CONCURRENT_PAGES: usize = 4;

async fn read(s: &MagentoSession, roster: &Roster) -> Result<MagentoLive> {
    let website = roster.policies.magento.website.as_str();
    let c = &s.client;
    let (groups, websites, admins) = tokio::try_join!(c.groups(), c.websites(), c.admin_users())?;
    let websites = named(&websites, "code");
    let website_id = websites
        .iter()
        .find(|w| w.name.eq_ignore_ascii_case(website))
        .map(|w| w.id);
    let mut criteria = Criteria::new();
    if let Some(id) = website_id {
        criteria = criteria.and("website_id", Condition::Eq, id);
    }
    let managed = managed_filter(roster);
    let mut unread = 0;
    if let Some(target) = &roster.target {
        // A targeted read: the customers of these people alone, and how many managed
        // customers there are in all (the caps are a share of everyone).
        let mut all = criteria.clone();
        if let Some(alternatives) = managed.clone() {
            all = all.any(alternatives);
        }
        unread = c
            .count_customers(&all)
            .await
            .context("counting Magento customers")?;
        // Nobody targeted reads no customer (an empty `in` would match none anyway).
        let emails: Vec<&str> = match target.is_empty() {
            true => vec![""],
            false => target.iter().map(String::as_str).collect(),
        };
        criteria = criteria.any(
            emails
                .chunks(50)
                .map(|chunk| ("email".to_string(), Condition::In, chunk.join(",")))
                .collect(),
        );
    } else if let Some(alternatives) = managed.clone() {
        criteria = criteria.any(alternatives);
    }
    let customers = c
        .customers_mapped(
            &criteria,
            Some(&CUSTOMER_FIELDS),
            CONCURRENT_PAGES,
            |v| MagentoCustomer {
                id: v["id"].as_i64().unwrap_or_default(),
                email: text(v, "email").trim().to_lowercase(),
                first_name: text(v, "firstname"),
                last_name: text(v, "lastname"),
                group_id: v["group_id"].as_i64().unwrap_or_default(),
                website_id: v["website_id"].as_i64().unwrap_or_default(),
                facts: Facts {
                    created_at: magento_time(v, "created_at"),
                    updated_at: magento_time(v, "updated_at"),
                    ..Facts::default()
                },
            },
            |_, _| {},
        )
        .await
        .context("reading Magento customers")?;
    let (admins, admin_roles) = match admins {
        AdminUsers::Available(list) => (Some(list), Some(named(&c.admin_roles().await?, "name"))),
        AdminUsers::Unavailable => (None, None),
    };
    Ok(MagentoLive {
        groups: named(&groups, "code"),
        websites,
        admin_roles,
        website: website.to_string(),
        domains: if managed.is_some() {
            roster.policies.magento.managed_domains.clone()
        } else {
            Vec::new()
        },
        unread: unread.saturating_sub(customers.len()),
        customers: customers
            .into_iter()
            .filter(|c| website_id.is_none_or(|w| c.website_id == w))
            .collect(),
        admins: admins.map(|list| {
            list.iter()
                .map(|v| MagentoAdmin {
                    id: v["id"].as_i64().unwrap_or_default(),
                    username: text(v, "username"),
                    email: text(v, "email").trim().to_lowercase(),
                    first_name: text(v, "firstname"),
                    last_name: text(v, "lastname"),
                    role_id: v["role_id"].as_i64(),
                    is_active: v["is_active"].as_bool().unwrap_or(true),
                    facts: Facts {
                        // Given by some admin-user extensions, not by all.
                        locked: magento_time(v, "lock_expires")
                            .is_some_and(|until| until > OffsetDateTime::now_utc()),
                        last_login_at: magento_time(v, "logdate"),
                        created_at: magento_time(v, "created_at"),
                        updated_at: magento_time(v, "modified").or(magento_time(v, "updated_at")),
                    },
                })
                .collect()
        }),
    })
}
