//! UMAPI's per-client limits: calls per minute for each family of endpoints, answered 429
//! with `Retry-After` beyond them (Adobe's throttling page).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::AdobeLimits;

/// Which limit a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `POST /action/{org}`.
    Action,
    /// Every read of users (a page, one user, a group's users).
    Users,
    /// `GET /groups/{org}/{page}`.
    Groups,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub action_calls: AtomicU64,
    pub user_calls: AtomicU64,
    pub group_calls: AtomicU64,
    pub throttled: AtomicU64,
    pub faults_injected: AtomicU64,
    pub tokens_issued: AtomicU64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub action_calls: u64,
    pub user_calls: u64,
    pub group_calls: u64,
    pub throttled: u64,
    pub faults_injected: u64,
    pub tokens_issued: u64,
}

pub struct Limiter {
    limits: AdobeLimits,
    windows: Mutex<HashMap<(String, Family), VecDeque<Instant>>>,
    pub stats: Stats,
}

impl Limiter {
    pub fn new(limits: AdobeLimits) -> Self {
        Self {
            limits,
            windows: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        }
    }

    /// Counts a call by `client`, or says how long until the window has room again.
    pub fn count(&self, client: &str, family: Family) -> Result<(), Duration> {
        let limit = match family {
            Family::Action => self.limits.action,
            Family::Users => self.limits.users,
            Family::Groups => self.limits.groups,
        } as usize;
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("rate window lock");
        let window = windows.entry((client.to_owned(), family)).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.limits.window)
        {
            window.pop_front();
        }
        if window.len() >= limit {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            let oldest = *window.front().expect("a full window has calls");
            return Err(self
                .limits
                .window
                .saturating_sub(now.duration_since(oldest)));
        }
        window.push_back(now);
        let counter = match family {
            Family::Action => &self.stats.action_calls,
            Family::Users => &self.stats.user_calls,
            Family::Groups => &self.stats.group_calls,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            action_calls: s.action_calls.load(Ordering::Relaxed),
            user_calls: s.user_calls.load(Ordering::Relaxed),
            group_calls: s.group_calls.load(Ordering::Relaxed),
            throttled: s.throttled.load(Ordering::Relaxed),
            faults_injected: s.faults_injected.load(Ordering::Relaxed),
            tokens_issued: s.tokens_issued.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_and_family_has_its_own_window() {
        let l = Limiter::new(AdobeLimits {
            action: 2,
            users: 1,
            groups: 1,
            window: Duration::from_secs(60),
        });
        assert!(l.count("a", Family::Action).is_ok());
        assert!(l.count("a", Family::Action).is_ok());
        let wait = l.count("a", Family::Action).unwrap_err();
        assert!(wait > Duration::from_secs(59) && wait <= Duration::from_secs(60));
        assert!(l.count("b", Family::Action).is_ok(), "another client");
        assert!(l.count("a", Family::Users).is_ok(), "another family");
        assert_eq!(l.snapshot().throttled, 1);
        assert_eq!(l.snapshot().action_calls, 3);
    }
}
