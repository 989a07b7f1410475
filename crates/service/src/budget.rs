//! The daily call budget of a Marketo instance as the service spends it: what a full and a
//! targeted run cost (measured on the instance's own last runs), how many full runs fit
//! today, and so how far apart they are scheduled (`roster_domain::budget`).

use std::time::Duration;

use roster_domain::budget::{Budget, Schedule};
use roster_domain::marketo_time::{next_quota_reset, quota_day};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Shared;
use crate::config::Instance;

/// Where the service keeps what it measured of an instance (`instance_facts`).
const APP: &str = "service";
const KEY: &str = "budget";

/// The estimate of a run's cost before one is measured: a directory read, a user list, a
/// few writes.
pub const FIRST_RUN_CALLS: u64 = 20;

/// What the service measured of a Marketo instance's runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measured {
    /// The subscription's key in the quota records (its normalised URL).
    pub quota_key: String,
    /// The daily quota the client was configured with.
    pub limit: u64,
    /// The calls the last full run made.
    pub full_run_calls: Option<u64>,
    /// The calls the last targeted run made.
    pub targeted_run_calls: Option<u64>,
}

impl Measured {
    pub fn full_cost(&self) -> u64 {
        self.full_run_calls.unwrap_or(FIRST_RUN_CALLS).max(1)
    }

    pub fn targeted_cost(&self) -> u64 {
        self.targeted_run_calls.unwrap_or(FIRST_RUN_CALLS).max(1)
    }
}

pub async fn measured(shared: &Shared, inst: &Instance) -> Option<Measured> {
    let text = shared.store.fact(APP, &inst.name, KEY).await.ok()??;
    serde_json::from_str(&text).ok()
}

/// Records what a run just cost.
pub async fn record(
    shared: &Shared,
    inst: &Instance,
    quota_key: &str,
    limit: u64,
    targeted: bool,
    calls: u64,
) {
    let mut m = measured(shared, inst).await.unwrap_or_default();
    m.quota_key = quota_key.to_string();
    m.limit = limit;
    if targeted {
        m.targeted_run_calls = Some(calls);
    } else {
        m.full_run_calls = Some(calls);
    }
    let text = serde_json::to_string(&m).expect("serialisable");
    if let Err(e) = shared.store.set_fact(APP, &inst.name, KEY, &text).await {
        tracing::warn!(instance = %inst.name, "cannot record what the run cost: {e}");
    }
}

/// The budget of `inst` now, from `used` calls spent today.
pub fn budget_of(inst: &Instance, m: &Measured, used: u64, now: OffsetDateTime) -> Budget {
    Budget {
        budget: inst.daily_budget.unwrap_or(m.limit).min(m.limit),
        used,
        full_cost: m.full_cost(),
        until_reset: next_quota_reset(now) - now,
        configured: time::Duration::try_from(inst.interval).unwrap_or(time::Duration::MAX),
    }
}

/// The budget and schedule of a Marketo instance as the state knows them now (`None` for
/// other apps, and before its first run measured anything).
pub async fn current(shared: &Shared, inst: &Instance) -> Option<(Measured, Budget, Schedule)> {
    if inst.app != roster_domain::desired::App::Marketo {
        return None;
    }
    let m = measured(shared, inst).await?;
    let now = OffsetDateTime::now_utc();
    let used = shared
        .store
        .quota_used(
            roster_engine::connect::MARKETO,
            &m.quota_key,
            quota_day(now),
        )
        .await
        .ok()?;
    let b = budget_of(inst, &m, used, now);
    let s = b.schedule();
    Some((m, b, s))
}

/// How long after a full run the next one is due: the configured interval, stretched so the
/// day's full runs fit the budget.
pub async fn full_interval(shared: &Shared, inst: &Instance) -> Duration {
    match current(shared, inst).await {
        Some((_, _, s)) => Duration::try_from(s.interval).unwrap_or(inst.interval),
        None => inst.interval,
    }
}

/// What `/api/v1/instances` and the console show of the budget.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    /// The calls the day allows this instance.
    pub daily_budget: u64,
    /// Spent today (by every process on this subscription's quota records).
    pub used_today: u64,
    /// What a full reconcile costs (the last one's calls; an estimate before one ran).
    pub full_run_calls: u64,
    /// What a targeted run costs (the last one's).
    pub targeted_run_calls: u64,
    /// How many more full reconciles fit today, the targeted reserve kept.
    pub full_runs_fit_today: u64,
    /// The calls kept for targeted runs.
    pub targeted_reserve: u64,
    /// The interval of full reconciles the budget allows (at least the configured one).
    pub full_interval_seconds: u64,
    /// When the quota day resets (midnight US Central), RFC 3339.
    pub resets_at: String,
}

pub async fn view(shared: &Shared, inst: &Instance) -> Option<BudgetView> {
    let (m, b, s) = current(shared, inst).await?;
    Some(BudgetView {
        daily_budget: b.budget,
        used_today: b.used,
        full_run_calls: m.full_cost(),
        targeted_run_calls: m.targeted_cost(),
        full_runs_fit_today: s.fit_today,
        targeted_reserve: s.reserve,
        full_interval_seconds: s.interval.whole_seconds().max(0) as u64,
        resets_at: roster_engine::text::rfc3339(next_quota_reset(OffsetDateTime::now_utc())),
    })
}
