//! Approving and rejecting a held plan from its Slack message. Slack posts the button's
//! action to `/slack/actions`, signed with the Slack app's signing secret (HMAC-SHA256 over
//! `v0:TIMESTAMP:BODY`, refused when older than five minutes, so a captured request cannot
//! be replayed later); the Slack user acts as the Roster console account `[slack.users]`
//! maps them to, with that account's role, and four-eyes holds as everywhere else. The
//! outcome goes back to the message's `response_url`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;
use crate::api::Caller;
use crate::tokens::Role;
use crate::views::Decision;

/// How old a signed request may be.
const MAX_AGE_SECS: i64 = 300;

pub fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route("/slack/actions", axum::routing::post(actions))
}

/// Whether `body` carries Slack's signature made with `secret` at `timestamp` (seconds),
/// at most five minutes from `now`.
pub fn signed_by_slack(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let ts = header("x-slack-request-timestamp").ok_or("no X-Slack-Request-Timestamp")?;
    let sig = header("x-slack-signature").ok_or("no X-Slack-Signature")?;
    let at: i64 = ts.parse().map_err(|_| "a malformed timestamp")?;
    if (now - at).abs() > MAX_AGE_SECS {
        return Err("a timestamp more than five minutes away (a replay?)");
    }
    let hex = sig
        .strip_prefix("v0=")
        .ok_or("a signature that is not v0")?;
    let given: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| "a signature that is not hex")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("v0:{ts}:").into_bytes();
    signed.extend_from_slice(body);
    // Constant-time comparison (ring's verify).
    ring::hmac::verify(&key, &signed, &given).map_err(|_| "a signature that does not match")
}

async fn actions(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(slack) = &shared.config.slack else {
        return (
            StatusCode::NOT_FOUND,
            "Slack approvals are not configured ([slack])",
        )
            .into_response();
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Err(why) = signed_by_slack(slack.signing_secret.expose(), &headers, &body, now) {
        tracing::warn!("a request to /slack/actions was refused: {why}");
        return (StatusCode::UNAUTHORIZED, format!("refused: {why}")).into_response();
    }
    let payload: Option<Value> = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .and_then(|(_, v)| serde_json::from_str(&v).ok());
    let Some(payload) = payload else {
        return (
            StatusCode::BAD_REQUEST,
            "no payload: Slack sends payload=JSON",
        )
            .into_response();
    };
    let user = payload["user"]["id"].as_str().unwrap_or_default();
    let action = &payload["actions"][0];
    let (action_id, plan) = (
        action["action_id"].as_str().unwrap_or_default(),
        action["value"].as_str().unwrap_or_default(),
    );
    let response_url = payload["response_url"].as_str().map(str::to_string);
    let text = match decide(&shared, slack, user, action_id, plan).await {
        Ok(t) | Err(t) => t,
    };
    if let Some(url) =
        response_url.filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    {
        let reply = json!({"response_type": "ephemeral", "replace_original": false, "text": text});
        let sent = roster_http::client()
            .post(&url)
            .header("content-type", "application/json")
            .body(reply.to_string())
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!("cannot answer Slack at its response_url: {e}");
        }
    }
    (StatusCode::OK, text).into_response()
}

/// Approves or rejects `plan` for Slack user `user`; the text to show them.
async fn decide(
    shared: &Arc<Shared>,
    slack: &crate::config::SlackConfig,
    user: &str,
    action: &str,
    plan: &str,
) -> Result<String, String> {
    let name = slack.users.get(user).ok_or_else(|| {
        format!("Your Slack account ({user}) is not linked to a Roster account: ask an admin to add it under [slack.users].")
    })?;
    let account = shared
        .store
        .console_user(name)
        .await
        .map_err(|e| format!("Roster cannot read its accounts: {e}"))?
        .ok_or_else(|| {
            format!("The Roster account {name} linked to your Slack account does not exist.")
        })?;
    let role = Role::parse(&account.role).unwrap_or(Role::Viewer);
    let caller = Caller {
        name: account.name.clone(),
        role,
        via: "slack",
    };
    let d = Decision {
        comment: Some("from Slack".into()),
    };
    if let Some(decision) = match action {
        "roster_keep" => Some("keep"),
        "roster_revoke" => Some("revoke"),
        _ => None,
    } {
        // A review item: `REVIEW:ITEM`, decided by its reviewer. No comment comes from a
        // button, so keeping privileged access is refused here and done in the console.
        let (review, item) = plan
            .split_once(':')
            .and_then(|(r, i)| Some((r.parse::<i64>().ok()?, i.parse::<i64>().ok()?)))
            .ok_or_else(|| format!("{plan:?} is not a review item."))?;
        let body = crate::reviews::DecisionBody {
            decision: decision.into(),
            keep_roles: Vec::new(),
            comment: None,
        };
        return match crate::reviews::decide_item(shared, &caller, review, item, &body).await {
            Ok(i) => Ok(format!(
                "Review {review} item {item} ({} {}): {decision}, by {} (from Slack).",
                i.item.email, i.item.role, caller.name
            )),
            Err(e) => Err(format!(
                "Review {review} item {item} was not decided: {}",
                e.message()
            )),
        };
    }
    let result = match action {
        "roster_approve" => crate::api::approve_plan(shared, &caller, plan, &d).await,
        "roster_reject" => crate::api::reject_plan(shared, &caller, plan, &d).await,
        other => return Err(format!("Roster does not know the action {other:?}.")),
    };
    match result {
        Ok(decided) => Ok(format!(
            "{plan} is {} by {} (from Slack).",
            decided.status, caller.name
        )),
        Err(e) => Err(format!("{plan} was not decided: {}", e.message())),
    }
}
