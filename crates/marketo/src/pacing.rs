//! Client-side pacing that keeps Roster under Marketo's limits instead of tripping them.
//!
//! Two limits are shared by every caller of a subscription: calls in flight (615) and calls
//! per rolling window (606). A semaphore handles the first. For the second, a GCRA limiter
//! such as `governor` does not fit: with a burst of 100 and a refill of 5/s it lets up to
//! 100 + 5 × 20 calls into one 20 s window. Instead we keep the window exactly: a call
//! counts from when it is admitted until `window` after its answer arrived. The server
//! received it before we got the answer, so whatever the network delay, the server never
//! sees more than `limit` calls in any window of its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Extra slack added to every window, for clock granularity.
const MARGIN: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub(crate) struct Pacer {
    in_flight: Arc<Semaphore>,
    window: Mutex<Window>,
    freed: Notify,
    limit: usize,
    length: Duration,
}

#[derive(Debug, Default)]
struct Window {
    /// Calls admitted and not yet answered.
    open: usize,
    /// When answered calls got their answer, oldest first.
    answered: VecDeque<Instant>,
}

/// Held for the duration of one call; dropping it records the answer time.
pub(crate) struct Ticket {
    pacer: Arc<Pacer>,
    _permit: OwnedSemaphorePermit,
}

impl Pacer {
    pub fn new(max_in_flight: usize, limit: u32, length: Duration) -> Arc<Self> {
        Arc::new(Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            window: Mutex::new(Window::default()),
            freed: Notify::new(),
            limit: (limit as usize).max(1),
            length: length + MARGIN,
        })
    }

    /// Counts calls answered `ages` ago (by an earlier run of Roster) against the window.
    pub fn remember(&self, ages: &[Duration]) {
        let now = Instant::now();
        let mut w = self.window.lock().expect("pacer lock");
        let mut times: Vec<Instant> = ages
            .iter()
            .filter(|age| **age < self.length)
            .filter_map(|age| now.checked_sub(*age))
            .chain(w.answered.iter().copied())
            .collect();
        times.sort();
        w.answered = times.into();
    }

    /// How long ago each call still inside the window was answered.
    pub fn recent(&self) -> Vec<Duration> {
        let now = Instant::now();
        let w = self.window.lock().expect("pacer lock");
        w.answered
            .iter()
            .map(|t| now - *t)
            .filter(|age| *age < self.length)
            .collect()
    }

    /// How long until the oldest answered call leaves the window, if any is in it.
    pub fn until_window_edge(&self) -> Option<Duration> {
        let now = Instant::now();
        let w = self.window.lock().expect("pacer lock");
        w.answered
            .front()
            .map(|t| (*t + self.length).saturating_duration_since(now))
    }

    /// Waits until a call may be sent; returns whether it had to wait for the window.
    pub async fn admit(self: &Arc<Self>) -> (Ticket, bool) {
        let permit = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("the pacer's semaphore is never closed");
        let mut waited = false;
        loop {
            // Register interest before checking, so a release between the check and the
            // wait is not missed.
            let freed = self.freed.notified();
            let wake = {
                let mut w = self.window.lock().expect("pacer lock");
                let now = Instant::now();
                while w.answered.front().is_some_and(|t| *t + self.length <= now) {
                    w.answered.pop_front();
                }
                if w.open + w.answered.len() < self.limit {
                    w.open += 1;
                    break;
                }
                w.answered.front().map(|t| *t + self.length)
            };
            waited = true;
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = freed => {}
                    }
                }
                None => freed.await,
            }
        }
        (
            Ticket {
                pacer: self.clone(),
                _permit: permit,
            },
            waited,
        )
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut w = self.pacer.window.lock().expect("pacer lock");
        w.open -= 1;
        w.answered.push_back(Instant::now());
        drop(w);
        self.pacer.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_limit_in_a_window() {
        let pacer = Pacer::new(4, 5, Duration::from_secs(1));
        let start = Instant::now();
        let mut admitted = Vec::new();
        for _ in 0..12 {
            let (ticket, _) = pacer.admit().await;
            admitted.push(Instant::now() - start);
            drop(ticket);
        }
        // Any 5 + 1 consecutive admissions span more than the window.
        for pair in admitted.windows(6) {
            assert!(pair[5] - pair[0] >= Duration::from_secs(1), "{admitted:?}");
        }
        assert!(
            admitted[4] < Duration::from_millis(1),
            "the first five go at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn calls_of_an_earlier_run_count() {
        let pacer = Pacer::new(4, 3, Duration::from_secs(1));
        pacer.remember(&[
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_secs(5),
        ]);
        assert_eq!(
            pacer.recent().len(),
            2,
            "the 5 s old call is outside the window"
        );
        let start = Instant::now();
        let _ = pacer.admit().await;
        assert_eq!(Instant::now() - start, Duration::ZERO);
        let (_t, waited) = pacer.admit().await;
        assert!(waited);
        assert!(Instant::now() - start >= Duration::from_millis(800));
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_is_bounded() {
        let pacer = Pacer::new(2, 100, Duration::from_secs(1));
        let (a, _) = pacer.admit().await;
        let (_b, _) = pacer.admit().await;
        let third = tokio::spawn({
            let pacer = pacer.clone();
            async move { pacer.admit().await.0 }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(a);
        let _c = third.await.unwrap();
    }
}
