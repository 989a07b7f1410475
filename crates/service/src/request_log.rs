//! One log line per HTTP request `roster serve` answers: method, path, status, duration and
//! who asked (the API token's or the console account's name, once authenticated). Query
//! strings and bodies are never logged: they can carry search terms and form fields.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

/// Where an authenticating extractor leaves who the caller is, for the request's log line.
#[derive(Clone, Default)]
pub struct Actor(Arc<Mutex<Option<String>>>);

impl Actor {
    /// Records `who` for the request `parts` belong to (a no-op outside the middleware).
    pub fn tell(parts: &Parts, who: String) {
        if let Some(slot) = parts.extensions.get::<Actor>() {
            *slot.0.lock().expect("actor lock") = Some(who);
        }
    }
}

pub async fn log(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let actor = Actor::default();
    req.extensions_mut().insert(actor.clone());
    let response = next.run(req).await;
    let who = actor.0.lock().expect("actor lock").take();
    tracing::info!(
        target: "roster_service::http",
        method = %method,
        path = %roster_engine::text::sanitize(&path),
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        actor = who.as_deref().unwrap_or("-"),
        "request"
    );
    response
}
