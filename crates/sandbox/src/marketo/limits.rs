//! The subscription-wide limits of the real service and the sandbox's call statistics.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;
use time::Date;

use super::config::Limits;
use super::error::ApiError;

/// Counters exposed at `GET /sandbox/stats`, so tests can prove that no 606 or 615 ever
/// reached a well-behaved client and count exactly how many calls a job cost.
#[derive(Debug, Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub rate_limited: AtomicU64,
    pub concurrency_limited: AtomicU64,
    pub quota_exceeded: AtomicU64,
    pub faults_injected: AtomicU64,
    pub tokens_expired_early: AtomicU64,
    pub tokens_issued: AtomicU64,
    /// One user's roles read (`user.json`, `roles.json`): what a targeted read saves.
    pub users_read: AtomicU64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub calls: u64,
    pub rate_limited: u64,
    pub concurrency_limited: u64,
    pub quota_exceeded: u64,
    pub faults_injected: u64,
    pub tokens_expired_early: u64,
    pub tokens_issued: u64,
    pub users_read: u64,
    pub quota_used_today: u64,
    pub quota_day: String,
    pub in_flight: usize,
}

pub struct Limiter {
    config: Limits,
    in_flight: AtomicUsize,
    window: Mutex<VecDeque<Instant>>,
    quota: Mutex<(Date, u64)>,
    pub stats: Stats,
}

/// Holds one of the concurrent-call slots until dropped.
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter {
    pub fn new(config: Limits, quota_day: Date, quota_used: u64) -> Self {
        Self {
            config,
            in_flight: AtomicUsize::new(0),
            window: Mutex::new(VecDeque::new()),
            quota: Mutex::new((quota_day, quota_used)),
            stats: Stats::default(),
        }
    }

    /// Takes a concurrency slot, or answers 615 when all are taken.
    pub fn enter(&self) -> Result<Slot<'_>, ApiError> {
        let max = self.config.max_concurrent as usize;
        let mut current = self.in_flight.load(Ordering::Acquire);
        loop {
            if current >= max {
                self.stats
                    .concurrency_limited
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(615, "Concurrent access limit reached"));
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(Slot(&self.in_flight)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Counts a call against the rolling window (606) and the day's quota (607).
    /// Refused calls are not counted.
    pub fn count_call(&self, today: Date) -> Result<(), ApiError> {
        let now = Instant::now();
        {
            let mut window = self.window.lock().expect("rate window lock");
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.config.rate_window)
            {
                window.pop_front();
            }
            if window.len() >= self.config.rate_limit as usize {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                return Err(
                    ApiError::new(606, "Max rate limit '100' exceeded with in '20' secs")
                        .with_message_for(&self.config),
                );
            }
            let mut quota = self.quota.lock().expect("quota lock");
            if quota.0 != today {
                *quota = (today, 0);
            }
            if quota.1 >= self.config.daily_quota {
                self.stats.quota_exceeded.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(607, "Daily quota reached"));
            }
            quota.1 += 1;
            window.push_back(now);
        }
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn quota(&self) -> (Date, u64) {
        *self.quota.lock().expect("quota lock")
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let s = &self.stats;
        let (day, used) = self.quota();
        StatsSnapshot {
            calls: s.calls.load(Ordering::Relaxed),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
            concurrency_limited: s.concurrency_limited.load(Ordering::Relaxed),
            quota_exceeded: s.quota_exceeded.load(Ordering::Relaxed),
            faults_injected: s.faults_injected.load(Ordering::Relaxed),
            tokens_expired_early: s.tokens_expired_early.load(Ordering::Relaxed),
            tokens_issued: s.tokens_issued.load(Ordering::Relaxed),
            users_read: s.users_read.load(Ordering::Relaxed),
            quota_used_today: used,
            quota_day: day.to_string(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

impl ApiError {
    /// Marketo's 606 message names the configured limit and window.
    fn with_message_for(mut self, limits: &Limits) -> Self {
        self.message = format!(
            "Max rate limit '{}' exceeded with in '{}' secs",
            limits.rate_limit,
            limits.rate_window.as_secs_f64()
        );
        self
    }
}

/// A transient failure chosen at random by the fault injector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 502 from a gateway, with an HTML body, before the call runs.
    BadGateway,
    /// 611 system error before the call runs.
    SystemError,
    /// 608 temporarily unavailable before the call runs.
    Unavailable,
    /// 604 time-out *after* the call ran: the change is made but the answer is lost.
    TimeoutAfterRun,
}

pub fn pick_fault(rate: f64) -> Option<Fault> {
    if rate <= 0.0 || fastrand::f64() >= rate {
        return None;
    }
    Some(match fastrand::u8(0..4) {
        0 => Fault::BadGateway,
        1 => Fault::SystemError,
        2 => Fault::Unavailable,
        _ => Fault::TimeoutAfterRun,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(rate: u32, conc: u32, quota: u64) -> Limiter {
        let limits = Limits {
            rate_limit: rate,
            rate_window: Duration::from_secs(60),
            max_concurrent: conc,
            daily_quota: quota,
        };
        Limiter::new(limits, time::macros::date!(2026 - 01 - 01), 0)
    }

    #[test]
    fn slots_are_returned_on_drop() {
        let l = limiter(100, 2, 100);
        let a = l.enter().unwrap();
        let _b = l.enter().unwrap();
        assert_eq!(l.enter().err().unwrap().code, 615);
        drop(a);
        assert!(l.enter().is_ok());
    }

    #[test]
    fn quota_resets_on_a_new_day_and_refusals_are_not_counted() {
        let l = limiter(100, 10, 2);
        let d1 = time::macros::date!(2026 - 01 - 01);
        l.count_call(d1).unwrap();
        l.count_call(d1).unwrap();
        assert_eq!(l.count_call(d1).unwrap_err().code, 607);
        assert_eq!(l.quota(), (d1, 2));
        let d2 = d1.next_day().unwrap();
        l.count_call(d2).unwrap();
        assert_eq!(l.quota(), (d2, 1));
    }

    #[test]
    fn rate_window_message_names_the_limit() {
        let l = limiter(1, 10, 100);
        let d = time::macros::date!(2026 - 01 - 01);
        l.count_call(d).unwrap();
        let err = l.count_call(d).unwrap_err();
        assert_eq!(err.code, 606);
        assert_eq!(err.message, "Max rate limit '1' exceeded with in '60' secs");
    }
}
