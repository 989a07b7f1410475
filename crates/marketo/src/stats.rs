//! What the client's calls cost, so commands can report it.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub calls: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub token_refreshes: AtomicU64,
    pub paced_waits: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// API calls sent (identity calls are free and not counted here).
    pub calls: u64,
    /// Of those, repeats after a transient failure or an expired token.
    pub retries: u64,
    /// 606 or 615 answers received (the pacing should keep this at 0).
    pub rate_limited: u64,
    /// Tokens fetched from the identity endpoint.
    pub token_refreshes: u64,
    /// Calls that waited for the client's own pacing before being sent.
    pub paced_waits: u64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CallStats {
        CallStats {
            calls: self.calls.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            token_refreshes: self.token_refreshes.load(Ordering::Relaxed),
            paced_waits: self.paced_waits.load(Ordering::Relaxed),
        }
    }
}
