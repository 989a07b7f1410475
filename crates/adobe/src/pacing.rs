//! Keeps this client under UMAPI's per-client limits instead of tripping them. Each family
//! of calls has its own window; a call counts from when it is admitted until `window` after
//! its answer, so however slow the network, Adobe never sees more than the limit in any
//! window of its own. (Adobe says clients must still retry 429s, since limits are global
//! and may change; the client does.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Slack for clock granularity.
const MARGIN: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct Window {
    limit: usize,
    length: Duration,
    /// Admitted calls: `None` while in flight, else when their answer came.
    calls: Mutex<VecDeque<Option<Instant>>>,
}

/// One admitted call; dropping it records its answer.
pub struct Admitted<'a> {
    window: &'a Window,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut calls = self.window.calls.lock().expect("pacing lock");
        if let Some(slot) = calls.iter_mut().find(|c| c.is_none()) {
            *slot = Some(Instant::now());
        }
    }
}

impl Window {
    pub fn new(limit: u32, length: Duration) -> Self {
        Self {
            limit: (limit as usize).max(1),
            length: length + MARGIN,
            calls: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until one more call fits, then counts it.
    pub async fn admit(&self) -> Admitted<'_> {
        loop {
            let wait = {
                let mut calls = self.calls.lock().expect("pacing lock");
                let now = Instant::now();
                calls.retain(|c| c.is_none_or(|at| now.duration_since(at) < self.length));
                if calls.len() < self.limit {
                    calls.push_back(None);
                    return Admitted { window: self };
                }
                // The earliest answered call to leave the window; if all are in flight,
                // look again shortly.
                calls
                    .iter()
                    .flatten()
                    .map(|at| (*at + self.length).saturating_duration_since(now))
                    .min()
                    .unwrap_or(Duration::from_millis(20))
            };
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "pacing under UMAPI's limit"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_window_waits_until_the_oldest_answer_leaves_it() {
        let w = Window::new(2, Duration::from_secs(60));
        let start = Instant::now();
        drop(w.admit().await);
        drop(w.admit().await);
        drop(w.admit().await);
        assert!(start.elapsed() >= Duration::from_secs(60));
        assert!(start.elapsed() < Duration::from_secs(61));
    }
}
