//! Notifications: each configured webhook gets the events it asked for as a JSON POST,
//! signed with HMAC-SHA256 over `TIMESTAMP.BODY` (header `X-Roster-Signature: sha256=HEX`,
//! with `X-Roster-Timestamp`), retried with exponential backoff. Every delivery and its
//! attempts are recorded in the state.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use roster_store::StateStore;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::config::{Webhook, WebhookFormat};
use crate::metrics::Metrics;

/// Attempts per delivery, the first included.
pub const ATTEMPTS: usize = 5;

/// The signature a receiver recomputes: hex HMAC-SHA256 of `TIMESTAMP.BODY` with the
/// webhook's secret.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut ctx =
        ring::hmac::Context::with_key(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret));
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    ctx.sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub struct Notifier {
    hooks: Vec<Webhook>,
    http: reqwest::Client,
    store: StateStore,
    metrics: Arc<Metrics>,
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
    /// The first retry's delay (doubling after).
    first_delay: Duration,
    /// On a shared PostgreSQL state, deliveries are jobs of its queue: whichever process is
    /// free sends one, and one a dead process left half done is sent on by another.
    queue: Option<crate::jobs::SharedQueue>,
    /// `[service] public_url`: a pending plan's message links to its console page.
    public_url: Option<String>,
    /// `[slack]` is configured: a pending plan's Slack message carries Approve and Reject.
    slack_buttons: bool,
}

/// A `review.due` message in Slack: its text, then each of the first open items with Keep
/// and Revoke for its reviewer (a privileged keep needs a comment, given in the console).
fn review_items_body(text: &str, data: &Value) -> Value {
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})];
    for i in data["items"].as_array().into_iter().flatten() {
        let value = format!("{}:{}", i["review"], i["item"]);
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!(
                "{} holds {}{} (reviewer: {})",
                i["email"].as_str().unwrap_or(""),
                i["entitlement"].as_str().unwrap_or(""),
                if i["privileged"] == true { ", privileged" } else { "" },
                i["reviewer"].as_str().unwrap_or("")
            )},
        }));
        blocks.push(json!({
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Keep"}, "action_id": "roster_keep", "value": value},
                {"type": "button", "text": {"type": "plain_text", "text": "Revoke"}, "style": "danger", "action_id": "roster_revoke", "value": value},
            ],
        }));
    }
    json!({ "text": text, "blocks": blocks })
}

impl Notifier {
    /// Links into the console, and Approve/Reject buttons in Slack messages.
    pub fn with_links(mut self, public_url: Option<String>, slack_buttons: bool) -> Self {
        self.public_url = public_url;
        self.slack_buttons = slack_buttons;
        self
    }

    /// The Slack message for `event`: its text, and for a pending plan a link to it and,
    /// with `[slack]` configured, buttons that approve or reject it from Slack.
    fn slack_body(&self, event: &str, instance: Option<&str>, text: &str, data: &Value) -> Value {
        let text = format!(
            "Roster{}: {text}",
            instance.map(|i| format!(" [{i}]")).unwrap_or_default()
        );
        if event == "review.due" && self.slack_buttons {
            return review_items_body(&text, data);
        }
        let plan = (event == "plan.pending")
            .then(|| data["plan"].as_str())
            .flatten();
        let Some(plan) = plan else {
            return json!({ "text": text });
        };
        let link = self
            .public_url
            .as_deref()
            .map(|u| format!("{u}/console/plans/{plan}"));
        if link.is_none() && !self.slack_buttons {
            // Nothing to add to the text: the plain message, as before links and buttons.
            return json!({ "text": text });
        }
        let mut blocks = vec![json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": match &link {
                Some(l) => format!("{text}\n<{l}|Review the plan>"),
                None => text.clone(),
            }},
        })];
        if self.slack_buttons {
            blocks.push(json!({
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "style": "primary", "action_id": "roster_approve", "value": plan,
                     "confirm": {"title": {"type": "plain_text", "text": "Approve?"}, "text": {"type": "mrkdwn", "text": format!("The destructive steps of {plan} run.")}, "confirm": {"type": "plain_text", "text": "Approve"}, "deny": {"type": "plain_text", "text": "Cancel"}}},
                    {"type": "button", "text": {"type": "plain_text", "text": "Reject"}, "style": "danger", "action_id": "roster_reject", "value": plan},
                ],
            }));
        }
        json!({ "text": text, "blocks": blocks })
    }

    pub fn new(
        hooks: Vec<Webhook>,
        store: StateStore,
        metrics: Arc<Metrics>,
        queue: Option<crate::jobs::SharedQueue>,
    ) -> Self {
        let http = roster_http::client_builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client builds");
        Self {
            hooks,
            http,
            store,
            metrics,
            in_flight: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            first_delay: std::env::var("ROSTER_WEBHOOK_RETRY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_millis),
            queue,
            public_url: None,
            slack_buttons: false,
        }
    }

    /// Sends `event` to every webhook that asked for it, in the background.
    pub fn notify(
        self: &Arc<Self>,
        event: &str,
        instance: Option<&str>,
        text: String,
        data: Value,
    ) {
        let at = OffsetDateTime::now_utc();
        for hook in self
            .hooks
            .iter()
            .filter(|h| h.events.iter().any(|e| e == event))
        {
            let body = match hook.format {
                WebhookFormat::Json => json!({
                    "event": event,
                    "at": roster_engine::text::rfc3339(at),
                    "instance": instance,
                    "text": text,
                    "data": data,
                }),
                WebhookFormat::Slack => self.slack_body(event, instance, &text, &data),
            }
            .to_string();
            let hook = hook.clone();
            let event = event.to_string();
            self.in_background(|me| async move { me.deliver(&hook, &event, body).await });
        }
    }

    /// Runs a delivery in the background, counted in flight so that `drain` waits for it.
    fn in_background<F: std::future::Future<Output = ()> + Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(Arc<Self>) -> F,
    ) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let me = Arc::clone(self);
        let work = work(Arc::clone(self));
        tokio::spawn(async move {
            work.await;
            if me.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    async fn deliver(&self, hook: &Webhook, event: &str, body: String) {
        let id = match self
            .store
            .add_delivery(&hook.name, event, &body, OffsetDateTime::now_utc())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(hook = %hook.name, "cannot record a webhook delivery: {e}");
                return;
            }
        };
        match &self.queue {
            // Recorded first: if queueing fails, the scheduler finds it pending and queues it.
            Some(queue) => {
                if let Err(e) = queue.add_delivery(id).await {
                    tracing::error!(hook = %hook.name, "{e:#}");
                }
            }
            None => self.attempt(hook, id, event, &body, 1).await,
        }
    }

    /// Makes delivery `id` (a job of the shared queue): its remaining attempts, unless it
    /// is no longer pending (made, or given up).
    pub async fn deliver_queued(&self, id: i64) -> Result<(), String> {
        let d = match self.store.delivery(id).await {
            Ok(Some(d)) if d.status == "pending" => d,
            Ok(_) => return Ok(()),
            Err(e) => return Err(format!("cannot read webhook delivery {id}: {e}")),
        };
        match self.hooks.iter().find(|h| h.name == d.hook) {
            Some(hook) => {
                let first = (d.attempts.max(0) as usize + 1).min(ATTEMPTS);
                self.attempt(hook, d.id, &d.event, &d.body, first).await;
            }
            None => self.abandon(&d).await,
        }
        Ok(())
    }

    /// Ends a delivery whose webhook is no longer configured, saying so.
    async fn abandon(&self, d: &roster_store::Delivery) {
        let why = format!(
            "the webhook {:?} is no longer in the configuration; the delivery was not made",
            d.hook
        );
        if let Err(e) = self.store.abandon_delivery(d.id, &why).await {
            tracing::error!("cannot record a webhook delivery: {e}");
        }
    }

    /// Sends again, in the background, the deliveries a process left pending when it
    /// stopped or died (this one before a restart, or another that held the state before
    /// it): with the attempts they have left, under their own ids, so a receiver that got
    /// one before the stop can tell (`X-Roster-Delivery`). A delivery whose webhook is no
    /// longer configured is ended as failed, saying so. On the shared queue, each becomes
    /// a job (if it has none), run by whichever process is free.
    pub async fn resume_pending(self: &Arc<Self>) {
        let pending = match self.store.pending_deliveries().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot read the pending webhook deliveries: {e}");
                return;
            }
        };
        for d in pending {
            if let Some(queue) = &self.queue {
                // Queued unless a job for it is queued or running already (another process
                // may be sending it right now).
                if let Err(e) = queue.add_delivery(d.id).await {
                    tracing::error!("{e:#}");
                }
                continue;
            }
            let Some(hook) = self.hooks.iter().find(|h| h.name == d.hook).cloned() else {
                self.abandon(&d).await;
                continue;
            };
            let first = (d.attempts.max(0) as usize + 1).min(ATTEMPTS);
            self.in_background(|me| async move {
                me.attempt(&hook, d.id, &d.event, &d.body, first).await;
            });
        }
    }

    /// Attempts delivery `id` from attempt number `first` on, until one succeeds or the
    /// last one fails, recording each.
    async fn attempt(&self, hook: &Webhook, id: i64, event: &str, body: &str, first: usize) {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.first_delay)
            .with_max_times(ATTEMPTS - 1)
            .with_jitter()
            .build();
        for attempt in first..=ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let timestamp = now.unix_timestamp();
            let sig = signature(hook.secret.expose().as_bytes(), timestamp, body.as_bytes());
            let sent = self
                .http
                .post(&hook.url)
                .header("content-type", "application/json")
                .header("x-roster-event", event)
                .header("x-roster-delivery", id.to_string())
                .header("x-roster-timestamp", timestamp.to_string())
                .header("x-roster-signature", format!("sha256={sig}"))
                .body(body.to_string())
                .send()
                .await;
            let (status, error) = match sent {
                Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
                Ok(r) => (
                    Some(r.status().as_u16()),
                    Some(format!(
                        "the receiver answered HTTP {}",
                        r.status().as_u16()
                    )),
                ),
                Err(e) => (
                    None,
                    Some(format!("cannot reach the receiver: {}", describe(e))),
                ),
            };
            let last = attempt == ATTEMPTS;
            let outcome = match (&error, last) {
                (None, _) => "delivered",
                (Some(_), true) => "failed",
                (Some(_), false) => "pending",
            };
            if error.is_some() {
                self.metrics.add(
                    "roster_webhook_failures_total",
                    &[("hook", &hook.name)],
                    1.0,
                );
            }
            if let Err(e) = self
                .store
                .record_attempt(
                    id,
                    outcome,
                    status,
                    error.as_deref(),
                    OffsetDateTime::now_utc(),
                )
                .await
            {
                tracing::error!(hook = %hook.name, "cannot record a webhook attempt: {e}");
            }
            if outcome != "pending" {
                self.metrics.add(
                    "roster_webhook_deliveries_total",
                    &[("hook", &hook.name), ("status", outcome)],
                    1.0,
                );
                if let Some(e) = error {
                    tracing::warn!(hook = %hook.name, event, "webhook delivery {id} failed after {ATTEMPTS} attempts: {e}");
                }
                return;
            }
            tokio::time::sleep(delays.next().unwrap_or(self.first_delay)).await;
        }
    }

    /// Waits (at most `limit`) for deliveries in progress, at shutdown.
    pub async fn drain(&self, limit: Duration) {
        let wait = async {
            while self.in_flight.load(Ordering::SeqCst) > 0 {
                let idle = self.idle.notified();
                if self.in_flight.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

/// A transport error without the URL's query (which could hold a token).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        e.without_url().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: python3 -c "import hmac,hashlib; print(hmac.new(b'secret',
        // b'1700000000.{\"a\":1}', hashlib.sha256).hexdigest())"
        assert_eq!(
            signature(b"secret", 1_700_000_000, br#"{"a":1}"#),
            "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert_ne!(
            signature(b"secret", 1_700_000_001, br#"{"a":1}"#),
            signature(b"secret", 1_700_000_000, br#"{"a":1}"#)
        );
    }
}
