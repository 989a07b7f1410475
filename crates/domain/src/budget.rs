//! How often a service can afford to verify everyone: the interval of full reconciles
//! adapts so the day's runs fit a daily call budget (Marketo's quota is shared with every
//! other integration of the subscription), with a share kept for targeted runs, which are
//! never deferred for a full run's cost.

use time::Duration;

/// The share of the day's budget kept for targeted runs (a SCIM change, a roster edit):
/// full runs are scheduled, and deferred, as if it were spent.
pub const TARGETED_RESERVE_PERCENT: u64 = 10;

/// What the schedule is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The calls the day allows (the instance's `daily_budget`, at most the quota).
    pub budget: u64,
    /// Spent today so far, by every process sharing the quota.
    pub used: u64,
    /// What a full reconcile costs (the last one's calls).
    pub full_cost: u64,
    /// Until the quota day resets.
    pub until_reset: Duration,
    /// The configured interval: full runs are never more frequent.
    pub configured: Duration,
}

/// When full reconciles run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between one full reconcile and the next.
    pub interval: Duration,
    /// How many more full reconciles today's budget allows (after the reserve).
    pub fit_today: u64,
    /// The calls kept for targeted runs.
    pub reserve: u64,
}

impl Budget {
    pub fn reserve(&self) -> u64 {
        self.budget * TARGETED_RESERVE_PERCENT / 100
    }

    /// The calls full runs may still spend today.
    pub fn for_full_runs(&self) -> u64 {
        self.budget
            .saturating_sub(self.reserve())
            .saturating_sub(self.used)
    }

    /// Spreads the full runs that fit over what is left of the quota day; none fitting, the
    /// next one waits for the reset. Never more often than configured.
    pub fn schedule(&self) -> Schedule {
        let fit_today = self.for_full_runs() / self.full_cost.max(1);
        let interval = if fit_today == 0 {
            self.until_reset
                .max(self.configured.min(Duration::minutes(1)))
        } else {
            let spread = self.until_reset / (fit_today as f64);
            spread.max(self.configured)
        };
        Schedule {
            interval,
            fit_today,
            reserve: self.reserve(),
        }
    }

    /// Why a full run is deferred now, if it is: it would eat into the targeted reserve.
    pub fn defers_full_run(&self) -> bool {
        self.full_cost > self.for_full_runs()
    }

    /// Whether a targeted run of `cost` is deferred: only when the whole budget, reserve
    /// included, cannot take it.
    pub fn defers_targeted_run(&self, cost: u64) -> bool {
        self.used + cost > self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(used: u64, hours_left: i64) -> Budget {
        Budget {
            budget: 20_000,
            used,
            full_cost: 2_013,
            until_reset: Duration::hours(hours_left),
            configured: Duration::minutes(15),
        }
    }

    #[test]
    fn full_runs_spread_over_the_day_within_the_budget() {
        let s = day(0, 24).schedule();
        // 18,000 for full runs: 8 of 2,013, one every 3 hours.
        assert_eq!(s.fit_today, 8);
        assert_eq!(s.interval, Duration::hours(3));
        assert_eq!(s.reserve, 2_000);
    }

    #[test]
    fn a_cheap_instance_keeps_its_configured_interval() {
        let b = Budget {
            full_cost: 20,
            ..day(0, 24)
        };
        assert_eq!(b.schedule().interval, Duration::minutes(15));
    }

    #[test]
    fn a_spent_budget_waits_for_the_reset_but_targeted_runs_go_on() {
        let b = day(17_000, 5);
        let s = b.schedule();
        assert_eq!(s.fit_today, 0);
        assert_eq!(s.interval, Duration::hours(5));
        assert!(b.defers_full_run());
        assert!(!b.defers_targeted_run(14));
        assert!(day(19_990, 5).defers_targeted_run(14));
    }

    #[test]
    fn a_day_simulated_run_by_run_stays_inside_the_budget() {
        // Full runs as scheduled, and 100 targeted runs of 14 calls spread over the day.
        let mut b = day(0, 24);
        let mut elapsed = Duration::ZERO;
        let mut longest_gap = Duration::ZERO;
        let mut next_targeted = Duration::ZERO;
        let mut targeted = 0;
        while elapsed < Duration::hours(24) {
            if !b.defers_full_run() {
                b.used += b.full_cost;
            }
            let gap = b.schedule().interval;
            longest_gap = longest_gap.max(gap);
            let until = elapsed + gap;
            while next_targeted < until.min(Duration::hours(24)) {
                assert!(!b.defers_targeted_run(14));
                b.used += 14;
                targeted += 1;
                next_targeted += Duration::minutes(14) + Duration::seconds(24);
            }
            elapsed = until;
            b.until_reset = Duration::hours(24) - elapsed.min(Duration::hours(24));
        }
        assert_eq!(targeted, 100);
        assert!(b.used <= 20_000, "{}", b.used);
        assert!(longest_gap <= Duration::hours(4), "{longest_gap}");
    }
}
