use std::time::{Duration, Instant};

use reqwest::StatusCode;
use roster_sandbox::marketo::Limits;
use serde_json::Value;

use super::harness::*;

fn limits(rate_limit: u32, window_ms: u64, max_concurrent: u32, daily_quota: u64) -> Limits {
    Limits {
        rate_limit,
        rate_window: Duration::from_millis(window_ms),
        max_concurrent,
        daily_quota,
    }
}

#[tokio::test]
async fn rate_limit_606_and_identity_is_free() {
    let sb = Sandbox::start_with(|c| c.limits = limits(5, 60_000, 10, 1000)).await;
    for _ in 0..10 {
        sb.token().await; // identity calls are not counted
    }
    let token = sb.token().await;
    for _ in 0..5 {
        assert_eq!(sb.get(&token, "roles.json").await.0, StatusCode::OK);
    }
    let (status, body) = sb.get(&token, "roles.json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "606")
    );
    assert_eq!(
        message(&body),
        "Max rate limit '5' exceeded with in '60' secs"
    );
    let stats = sb.stats().await;
    assert_eq!(stats["calls"], 5);
    assert_eq!(stats["rateLimited"], 1);
    assert_eq!(stats["quotaUsedToday"], 5, "refused calls are not counted");
}

#[tokio::test]
async fn rate_window_rolls() {
    let sb = Sandbox::start_with(|c| c.limits = limits(3, 400, 10, 1000)).await;
    let token = sb.token().await;
    for _ in 0..3 {
        assert_eq!(sb.get(&token, "roles.json").await.0, StatusCode::OK);
    }
    let refused_at = Instant::now();
    assert_eq!(
        sb.get(&token, "roles.json").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Wait for the condition (the window has room again), polling with a deadline.
    let deadline = refused_at + Duration::from_secs(5);
    loop {
        let (status, _) = sb.get(&token, "roles.json").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the window never rolled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused_at.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn concurrency_limit_615() {
    let sb = Sandbox::start_with(|c| {
        c.limits = limits(1000, 20_000, 2, 1000);
        c.faults.latency = Duration::from_millis(600);
    })
    .await;
    let token = sb.token().await;
    let calls = (0..6).map(|_| sb.get(&token, "roles.json"));
    let results = futures_join_all(calls).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let limited: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok, 2, "{results:?}");
    assert_eq!(limited.len(), 4);
    assert!(limited.iter().all(|b| code(b) == "615"));
    assert_eq!(sb.stats().await["concurrencyLimited"], 4);
    assert_eq!(sb.stats().await["inFlight"], 0, "slots are given back");
}

/// Runs futures concurrently on this task (no extra dependency for a join_all).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<Option<_>> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in handles.iter_mut().zip(outputs.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

#[tokio::test]
async fn daily_quota_607_resets_at_central_midnight() {
    let sb = Sandbox::start_with(|c| c.limits = limits(1000, 20_000, 10, 3)).await;
    let token = sb.token().await;
    for _ in 0..3 {
        assert_eq!(sb.get(&token, "workspaces.json").await.0, StatusCode::OK);
    }
    let (status, body) = sb.get(&token, "workspaces.json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "607")
    );
    let day = sb.stats().await["quotaDay"].as_str().unwrap().to_owned();
    sb.advance_clock(86_400).await;
    let token = sb.token().await;
    assert_eq!(sb.get(&token, "workspaces.json").await.0, StatusCode::OK);
    let stats = sb.stats().await;
    assert_ne!(stats["quotaDay"], day.as_str());
    assert_eq!(stats["quotaUsedToday"], 1);
}

#[tokio::test]
async fn injected_failures_cover_every_kind() {
    let sb = Sandbox::start_with(|c| c.faults.error_rate = 1.0).await;
    let token = sb.token().await;
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..80 {
        let resp = sb
            .http
            .get(sb.api("roles.json"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let kind = match status {
            502 => {
                assert!(text.contains("Bad Gateway"));
                "502".to_owned()
            }
            _ => {
                let body: Value = serde_json::from_str(&text).unwrap();
                format!("{status}/{}", code(&body))
            }
        };
        kinds.insert(kind);
    }
    let want: std::collections::BTreeSet<String> = ["502", "500/611", "503/608", "504/604"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(kinds, want);
    assert_eq!(sb.stats().await["faultsInjected"], 80);
}

#[tokio::test]
async fn a_604_time_out_happens_after_the_write() {
    let faulty = Sandbox::start_with(|c| c.faults.error_rate = 1.0).await;
    // A second, fault-free server on the same data shows what was really stored.
    let mut cfg = config(&faulty.dir);
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    let observer = roster_sandbox::marketo::start(cfg).await.unwrap();
    let observer_url = observer.base_url().to_owned();
    let token = faulty.token().await;
    let http = roster_http::client();
    let observer_token: Value = token_response(&http, &observer_url, CLIENT_ID, CLIENT_SECRET)
        .await
        .json()
        .await
        .unwrap();
    let observer_token = observer_token["access_token"].as_str().unwrap().to_owned();
    let (mut applied, mut refused) = (0, 0);
    for i in 0..40 {
        let email = format!("retry{i}@acme.example");
        let (status, _) = faulty.invite_api_user(&token, &email).await;
        let stored = http
            .get(format!("{observer_url}{USERS}/{}/user.json", enc(&email)))
            .bearer_auth(&observer_token)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::GATEWAY_TIMEOUT {
            assert_eq!(stored, StatusCode::OK, "a 604 answer still made the change");
            applied += 1;
        } else {
            assert_eq!(
                stored,
                StatusCode::NOT_FOUND,
                "a {status} answer made no change"
            );
            refused += 1;
        }
    }
    assert!(applied > 0 && refused > 0);
    observer.shutdown().await;
}

#[tokio::test]
async fn latency_and_early_token_expiry() {
    let sb = Sandbox::start_with(|c| {
        c.faults.latency = Duration::from_millis(150);
        c.faults.token_expiry_rate = 1.0;
    })
    .await;
    let token = sb.token().await;
    let started = Instant::now();
    let (status, body) = sb.get(&token, "roles.json").await;
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "latency is added"
    );
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "602"));
    let renewed = sb.token().await;
    assert_ne!(renewed, token, "the expired token is replaced");
    assert_eq!(sb.stats().await["tokensExpiredEarly"], 1);
}
