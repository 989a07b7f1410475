//! The daily quota budget: Marketo allows a subscription a number of calls per day (50,000 by
//! default, reset at midnight US Central) and answers 607 once it is spent. Roster counts
//! its own calls, persists them, and refuses to start a job that would not fit.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::MarketoError;

#[derive(Debug)]
pub struct QuotaBudget {
    limit: u64,
    used: AtomicU64,
}

impl QuotaBudget {
    /// `used` is what Roster's state says was already spent today.
    pub fn new(limit: u64, used: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(used),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used())
    }

    /// Fails, before anything is sent, when `calls` more would not fit.
    pub fn ensure(&self, calls: u64, job: &str) -> Result<(), MarketoError> {
        let remaining = self.remaining();
        if calls > remaining {
            return Err(MarketoError::QuotaBudget {
                job: job.to_string(),
                needed: calls,
                remaining,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Takes one call from the budget, or fails if it is spent.
    pub(crate) fn take(&self) -> Result<(), MarketoError> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .map(|_| ())
            .map_err(|_| MarketoError::QuotaBudget {
                job: "the next call".into(),
                needed: 1,
                remaining: 0,
                limit: self.limit,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_what_does_not_fit() {
        let budget = QuotaBudget::new(10, 7);
        assert!(budget.ensure(3, "audit").is_ok());
        let err = budget.ensure(4, "audit").unwrap_err().to_string();
        assert!(err.contains("needs 4") && err.contains("3 of"), "{err}");
        for _ in 0..3 {
            budget.take().unwrap();
        }
        assert!(budget.take().is_err());
        assert_eq!(budget.used(), 10);
    }
}
