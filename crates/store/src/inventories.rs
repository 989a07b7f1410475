//! The last access inventory of each instance, kept whole (one JSON document per instance):
//! it is written once a run and read by whoever shows it, never queried piecemeal. Beside
//! it, the access history: each account and grant with the interval the inventories showed
//! it, so "who had this role on that date" is answered after the inventory moved on.

use roster_domain::inventory::Inventory;
use sqlx::Row;

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::{Result, StateStore, StoreError, from_ms, ms};

impl StateStore {
    /// Replaces the instance's inventory; returns its new version.
    pub async fn save_inventory(&self, inventory: &Inventory) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let body = serde_json::to_string(inventory).map_err(|e| StoreError::Corrupt {
            what: "inventory",
            detail: e.to_string(),
        })?;
        let version: i64 = sqlx::query(
            "INSERT INTO inventories (instance, version, read_at, accounts, body) VALUES ($1, 1, $2, $3, $4)
             ON CONFLICT (instance) DO UPDATE SET version = inventories.version + 1, read_at = excluded.read_at,
                 accounts = excluded.accounts, body = excluded.body
             RETURNING version",
        )
        .bind(&inventory.instance)
        .bind(ms(inventory.read_at))
        .bind(inventory.accounts.len() as i64)
        .bind(body)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        record_history(&mut tx, inventory).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Who held `role` (in `scope`, when given; `None`: any account at all) on `instance`
    /// at `at`, as the stored inventories showed it: (email, name, account kind, account
    /// id, role, scope, since, until).
    pub async fn access_at(
        &self,
        instance: &str,
        role: Option<&str>,
        scope: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<Vec<HeldAccess>> {
        let rows = sqlx::query(
            "SELECT email, name, account_kind, account_id, role, scope, since, until FROM access_history \
             WHERE instance = $1 AND since <= $2 AND (until IS NULL OR until > $2) \
             AND role = $3 AND ($4 IS NULL OR lower(scope) = lower($4)) ORDER BY email, account_id, role, scope",
        )
        .bind(instance)
        .bind(ms(at))
        .bind(role.unwrap_or(""))
        .bind(scope)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| HeldAccess {
                email: r.get(0),
                name: r.get(1),
                account_kind: r.get(2),
                account_id: r.get(3),
                role: r.get(4),
                scope: r.get(5),
                since: from_ms(r.get(6)),
                until: r.get::<Option<i64>, _>(7).map(from_ms),
            })
            .collect())
    }

    /// When the access history of `instance` begins (its first inventory).
    pub async fn history_since(&self, instance: &str) -> Result<Option<OffsetDateTime>> {
        let first: Option<i64> =
            sqlx::query_scalar("SELECT MIN(since) FROM access_history WHERE instance = $1")
                .bind(instance)
                .fetch_one(&self.pool)
                .await?;
        Ok(first.map(from_ms))
    }

    /// The version of the instance's inventory, if one was saved: cheap, for a cache to
    /// check before it loads the whole document.
    pub async fn inventory_version(&self, instance: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT version FROM inventories WHERE instance = $1")
                .bind(instance)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The instance's inventory with its version.
    pub async fn inventory(&self, instance: &str) -> Result<Option<(i64, Inventory)>> {
        let Some(row) = sqlx::query("SELECT version, body FROM inventories WHERE instance = $1")
            .bind(instance)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let body: String = row.get("body");
        let inventory = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
            what: "inventory",
            detail: format!("{instance}: {e}"),
        })?;
        Ok(Some((row.get("version"), inventory)))
    }
}

/// What the overview shows of an instance's inventory, without loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventorySummary {
    pub instance: String,
    pub read_at: time::OffsetDateTime,
    pub accounts: i64,
}

impl StateStore {
    /// Every instance's inventory size and age, in one query.
    pub async fn inventory_summaries(&self) -> Result<Vec<InventorySummary>> {
        let rows = sqlx::query("SELECT instance, read_at, accounts FROM inventories")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| InventorySummary {
                instance: r.get("instance"),
                read_at: crate::from_ms(r.get("read_at")),
                accounts: r.get("accounts"),
            })
            .collect())
    }

    /// Failed runs per instance since `since`, in one query.
    pub async fn failed_runs_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<std::collections::HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT instance, COUNT(*) AS n FROM service_runs WHERE outcome = 'failed' AND started_at >= $1 GROUP BY instance",
        )
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("instance"), r.get("n")))
            .collect())
    }

    /// Calls recorded per instance of `app` on quota day `day`, in one query.
    pub async fn quota_used_by_instance(
        &self,
        app: &str,
        day: time::Date,
    ) -> Result<std::collections::HashMap<String, u64>> {
        let rows =
            sqlx::query("SELECT instance, calls FROM quota_usage WHERE app = $1 AND day = $2")
                .bind(app)
                .bind(day.to_string())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("instance"), r.get::<i64, _>("calls").max(0) as u64))
            .collect())
    }
}

/// One account's access over an interval, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAccess {
    pub email: String,
    pub name: String,
    pub account_kind: String,
    pub account_id: String,
    /// Empty for the account itself.
    pub role: String,
    pub scope: String,
    pub since: OffsetDateTime,
    pub until: Option<OffsetDateTime>,
}

type Key = (String, String, String, String);

/// Closes the intervals of access the new inventory no longer shows and opens those it
/// shows for the first time (at its read time).
async fn record_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    inventory: &Inventory,
) -> Result<()> {
    let mut now: BTreeMap<Key, (&str, &str)> = BTreeMap::new();
    for a in &inventory.accounts {
        let key = |role: &str, scope: &str| {
            (
                a.kind.as_str().to_string(),
                a.id.clone(),
                role.to_string(),
                scope.to_string(),
            )
        };
        now.insert(key("", ""), (&a.email, &a.name));
        for g in &a.grants {
            now.insert(key(&g.role, &g.scope), (&a.email, &a.name));
        }
    }
    let open: BTreeSet<Key> = sqlx::query(
        "SELECT account_kind, account_id, role, scope FROM access_history WHERE instance = $1 AND until IS NULL",
    )
    .bind(&inventory.instance)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect();
    let at = ms(inventory.read_at);
    for k in open.iter().filter(|k| !now.contains_key(*k)) {
        sqlx::query(
            "UPDATE access_history SET until = $1 WHERE instance = $2 AND until IS NULL AND account_kind = $3 AND account_id = $4 AND role = $5 AND scope = $6",
        )
        .bind(at)
        .bind(&inventory.instance)
        .bind(&k.0)
        .bind(&k.1)
        .bind(&k.2)
        .bind(&k.3)
        .execute(&mut **tx)
        .await?;
    }
    for (k, (email, name)) in now.iter().filter(|(k, _)| !open.contains(*k)) {
        sqlx::query(
            "INSERT INTO access_history (instance, email, name, account_kind, account_id, role, scope, since) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&inventory.instance)
        .bind(*email)
        .bind(*name)
        .bind(&k.0)
        .bind(&k.1)
        .bind(&k.2)
        .bind(&k.3)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
