//! A Marketo subscription's limits (and an Adobe client's) kept together by Roster
//! processes on several machines, through the PostgreSQL state they share
//! (`roster_store`'s `pacing`). Processes on one machine with the SQLite state use a ledger
//! file instead (`roster_pacing::Ledger`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use roster_marketo::{Admitting, ClientConfig, SharedPacing};
use roster_store::{Admission, PacingLimits, StateStore};

/// How often a process waiting for calls in flight (theirs or another's) asks again.
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug)]
pub struct PostgresPacing {
    store: StateStore,
    instance: String,
    /// Who holds a call (host and process), for someone reading the table.
    owner: String,
    limits: PacingLimits,
    /// When the oldest call leaves the window, as the last admission saw it.
    edge: Mutex<Option<Instant>>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl PostgresPacing {
    pub fn new(store: StateStore, instance: &str, config: &ClientConfig) -> Self {
        Self::with_limits(
            store,
            instance,
            config.rate_limit,
            config.rate_window,
            config.max_in_flight,
            config.request_timeout,
        )
    }

    /// Calls counted under `key` (an instance, or an Adobe client's call family): at most
    /// `limit` per `window` and `max_in_flight` at once, across every process.
    pub fn with_limits(
        store: StateStore,
        key: &str,
        limit: u32,
        window: Duration,
        max_in_flight: usize,
        request_timeout: Duration,
    ) -> Self {
        let window = window.as_millis() as i64;
        Self {
            store,
            instance: key.to_string(),
            owner: crate::lock::this_process(),
            limits: PacingLimits {
                limit: i64::from(limit),
                // A margin, as the server's clock and ours differ by the trip.
                window_ms: window + 50,
                max_in_flight: max_in_flight as i64,
                stale_ms: request_timeout.as_millis() as i64 + window,
            },
            edge: Mutex::new(None),
        }
    }
}

impl SharedPacing for PostgresPacing {
    fn admit(&self) -> Admitting<'_> {
        Box::pin(async move {
            let mut waited = false;
            loop {
                let decided = self
                    .store
                    .pacing_admit(&self.instance, &self.owner, self.limits, now_ms())
                    .await
                    .map_err(|e| {
                        format!("the shared state in {}: {e}", self.store.path().display())
                    })?;
                match decided {
                    Admission::Admitted(id) => return Ok((id as u64, waited)),
                    Admission::Wait(edge) => {
                        waited = true;
                        let delay = edge.map_or(POLL, |ms| Duration::from_millis(ms as u64));
                        if edge.is_some() {
                            *self.edge.lock().expect("edge lock") = Some(Instant::now() + delay);
                        }
                        tokio::time::sleep(delay.min(Duration::from_secs(5))).await;
                    }
                }
            }
        })
    }

    fn release(&self, id: u64) {
        // Called as a call ends (from a drop): the answer is written in the background.
        let store = self.store.clone();
        let at = now_ms();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.pacing_release(id as i64, at).await {
                    tracing::warn!(error = %e, "cannot record a call's answer in the shared pacing table");
                }
            });
        }
    }

    fn until_window_edge(&self) -> Option<Duration> {
        let edge = (*self.edge.lock().expect("edge lock"))?;
        Some(edge.saturating_duration_since(Instant::now()))
    }
}
