//! The last access inventory of each instance, kept whole (one JSON document per instance):
//! it is written once a run and read by whoever shows it, never queried piecemeal.

use roster_domain::inventory::Inventory;
use sqlx::Row;

use crate::{Result, StateStore, StoreError, ms};

impl StateStore {
    /// Replaces the instance's inventory; returns its new version.
    pub async fn save_inventory(&self, inventory: &Inventory) -> Result<i64> {
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
        .fetch_one(&self.pool)
        .await?
        .get(0);
        Ok(version)
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
