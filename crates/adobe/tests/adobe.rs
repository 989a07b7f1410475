//! The connector against the Adobe sandbox over real HTTP: sign-in, paging, batched writes
//! with per-person errors, test mode, retries of throttling and gateway failures.

use std::time::{Duration, Instant};

use roster_adobe::{AdobeConfig, AdobeError, Client, IdentityType, RetryPolicy, Step, UserCommand};
use roster_domain::Secret;
use roster_sandbox::adobe::{self as sandbox, AdobeLimits, RunningAdobe};
use tempfile::TempDir;

const CLIENT_ID: &str = "connector-test";
const SECRET: &str = "p8e-connector-secret";

struct Org {
    server: RunningAdobe,
    _dir: TempDir,
}

async fn org(tune: impl FnOnce(&mut sandbox::AdobeConfig)) -> Org {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sandbox::AdobeConfig::new(dir.path());
    cfg.client_id = Some(CLIENT_ID.into());
    cfg.client_secret = Some(Secret::new(SECRET));
    cfg.limits = AdobeLimits::unlimited();
    tune(&mut cfg);
    Org {
        server: sandbox::start(cfg).await.unwrap(),
        _dir: dir,
    }
}

fn client(org: &Org, tune: impl FnOnce(&mut AdobeConfig)) -> Client {
    let mut cfg = AdobeConfig::new(sandbox::DEFAULT_ORG_ID, CLIENT_ID, Secret::new(SECRET));
    cfg.ims_url = org.server.base_url().into();
    cfg.umapi_url = org.server.base_url().into();
    cfg.retry = RetryPolicy {
        max_attempts: 4,
        first_delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        max_wait: Duration::from_secs(5),
    };
    tune(&mut cfg);
    Client::new(cfg).unwrap()
}

/// Limits that only user reads can reach.
fn users_limited(users: u32, window: Duration) -> AdobeLimits {
    AdobeLimits {
        action: 100,
        users,
        groups: 100,
        window,
    }
}

fn joiner(email: &str, profile: &str) -> UserCommand {
    UserCommand {
        user: email.into(),
        steps: vec![
            Step::Create {
                kind: IdentityType::FederatedId,
                firstname: "New".into(),
                lastname: "Person".into(),
                country: Some("US".into()),
            },
            Step::Add(vec![profile.into()]),
        ],
    }
}

#[tokio::test]
async fn reads_every_page_with_one_token_and_the_minimum_of_calls() {
    let o = org(|c| c.page_size = 4).await;
    let c = client(&o, |_| {});
    let users = c.users().await.unwrap();
    assert_eq!(users.len(), 9);
    assert!(
        users
            .iter()
            .any(|u| u.email == "ada.lovelace@acme.example" && u.is_org_admin())
    );
    let contractor = users
        .iter()
        .find(|u| u.kind == IdentityType::AdobeId)
        .unwrap();
    assert!(!contractor.kind.org_owned());
    let groups = c.groups().await.unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g.group_name == "Marketo Engage - Production" && g.is_product_profile())
    );
    let members = c
        .group_members("Marketo Engage - Production")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(members.len(), 7);
    assert!(c.group_members("Nope").await.unwrap().is_none());
    assert_eq!(
        c.user("GRACE.hopper@acme.example")
            .await
            .unwrap()
            .unwrap()
            .email,
        "grace.hopper@acme.example"
    );
    assert!(c.user("nobody@acme.example").await.unwrap().is_none());
    let s = o.server.stats();
    assert_eq!(s.tokens_issued, 1, "the token is kept");
    // 3 pages of users, 2 of the group's, one 404 for the unknown group, two single users.
    assert_eq!(s.user_calls, 3 + 2 + 1 + 2);
    assert_eq!(s.group_calls, 1);
}

#[tokio::test]
async fn writes_are_batched_and_each_failure_is_the_right_persons() {
    let o = org(|_| {}).await;
    let c = client(&o, |_| {});
    let mut commands: Vec<UserCommand> = (0..23)
        .map(|n| {
            joiner(
                &format!("hire{n:02}@acme.example"),
                "Marketo Engage - Production",
            )
        })
        .collect();
    commands[7] = joiner("hire07@acme.example", "No Such Profile");
    commands[15] = joiner("hire15@unclaimed.example", "Acrobat Pro");
    let outcomes = c.execute(&commands, false).await.unwrap();
    assert_eq!(o.server.stats().action_calls, 3, "23 entries: three calls");
    let failed: Vec<(&str, usize, &str)> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .flat_map(|o| {
            o.failures
                .iter()
                .map(move |f| (o.user.as_str(), f.step, f.code.as_str()))
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("hire07@acme.example", 1, "error.group.not_found"),
            (
                "hire15@unclaimed.example",
                0,
                "error.domain.trust.nonexistent"
            ),
            ("hire15@unclaimed.example", 1, "error.user.nonexistent"),
        ]
    );
    let hired = c
        .group_members("Marketo Engage - Production")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hired.len(),
        7 + 21,
        "everyone else was added, nothing else lost"
    );
    // Retrying the same commands is harmless: creates ignore existing accounts.
    let again = c.execute(&commands[..3], false).await.unwrap();
    assert!(again.iter().all(|o| o.ok()));
    // Test mode changes nothing.
    let trial = c
        .execute(&[joiner("trial@acme.example", "Acrobat Pro")], true)
        .await
        .unwrap();
    assert!(trial[0].ok());
    assert!(c.user("trial@acme.example").await.unwrap().is_none());
    // A leaver: out of every profile, then out of the organization.
    let leave = UserCommand {
        user: "hire00@acme.example".into(),
        steps: vec![
            Step::RemoveAll,
            Step::RemoveFromOrg {
                delete_account: false,
            },
        ],
    };
    assert!(c.execute(&[leave], false).await.unwrap()[0].ok());
    assert!(c.user("hire00@acme.example").await.unwrap().is_none());
}

#[tokio::test]
async fn a_429_is_waited_out_as_retry_after_says_and_no_call_is_sent_before() {
    let o = org(|c| {
        c.limits = users_limited(1, Duration::from_secs(2));
    })
    .await;
    // The client's own pacing is told a looser limit than the server's, so the server's 429
    // is what it meets.
    let c = client(&o, |cfg| cfg.limits.users = 100);
    c.users().await.unwrap();
    let started = Instant::now();
    c.user("grace.hopper@acme.example").await.unwrap().unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After honoured: {waited:?}"
    );
    assert_eq!(
        o.server.stats().throttled,
        1,
        "one 429, then the call after the wait"
    );
}

#[tokio::test]
async fn a_long_retry_after_is_reported_not_slept_through() {
    let o = org(|c| {
        c.limits = users_limited(1, Duration::from_secs(60));
        c.faults.retry_after = Some(Duration::from_secs(1938));
    })
    .await;
    let c = client(&o, |cfg| cfg.limits.users = 100);
    c.users().await.unwrap();
    let err = c.users().await.unwrap_err();
    assert!(
        matches!(err, AdobeError::Throttled { wait, .. } if wait == Duration::from_secs(1938)),
        "{err}"
    );
    assert!(err.to_string().contains("1938s"), "{err}");
}

#[tokio::test]
async fn client_side_pacing_keeps_under_the_limit_without_a_429() {
    let o = org(|c| {
        c.limits = users_limited(2, Duration::from_secs(1));
    })
    .await;
    let c = client(&o, |cfg| {
        cfg.limits.users = 2;
        cfg.limits.window = Duration::from_secs(1);
    });
    for _ in 0..3 {
        c.user("grace.hopper@acme.example").await.unwrap();
    }
    assert_eq!(o.server.stats().throttled, 0);
    assert_eq!(o.server.stats().user_calls, 3);
}

/// Two clients with the same credential, as two Roster processes would hold them, keep
/// Adobe's per-client limit together through the ledger files they share; without them,
/// each keeps it alone and together they trip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_one_client_keep_its_limit_together() {
    let o = org(|c| {
        c.limits = users_limited(2, Duration::from_secs(1));
    })
    .await;
    let ledgers = tempfile::tempdir().unwrap();
    let limited = |shared: bool| {
        client(&o, |cfg| {
            cfg.limits.users = 2;
            cfg.limits.window = Duration::from_secs(1);
            // A 429 is an error here, not a retry: the point is never to draw one.
            cfg.retry.max_attempts = 1;
            if shared {
                cfg.shared = Some(
                    roster_adobe::SharedFamilies::ledgers(
                        ledgers.path(),
                        "client",
                        &cfg.limits,
                        Duration::from_secs(10),
                    )
                    .unwrap(),
                );
            }
        })
    };
    let both = |a: Client, b: Client| async move {
        let read = |c: Client| async move {
            let mut out = Vec::new();
            for _ in 0..2 {
                out.push(c.user("grace.hopper@acme.example").await.map(|_| ()));
            }
            out
        };
        let (x, y) = tokio::join!(read(a), read(b));
        x.into_iter().chain(y).collect::<Vec<_>>()
    };
    let started = Instant::now();
    let shared = both(limited(true), limited(true)).await;
    assert!(shared.iter().all(Result::is_ok), "{shared:?}");
    assert_eq!(o.server.stats().throttled, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "four calls at two a second took {:?}",
        started.elapsed()
    );
    // The same two clients without the ledger: together they go past the limit.
    let apart = both(limited(false), limited(false)).await;
    assert!(
        apart.iter().any(Result::is_err) && o.server.stats().throttled > 0,
        "{apart:?}"
    );
}

#[tokio::test]
async fn gateway_failures_are_retried_a_bounded_number_of_times() {
    let o = org(|c| c.faults.error_rate = 1.0).await;
    let c = client(&o, |_| {});
    let err = c.users().await.unwrap_err();
    assert!(
        matches!(err, AdobeError::Unavailable { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(o.server.stats().faults_injected, 4);
}

#[tokio::test]
async fn wrong_credentials_and_an_unreachable_host_are_clear_errors_without_the_secret() {
    let o = org(|_| {}).await;
    let mut cfg = AdobeConfig::new(
        sandbox::DEFAULT_ORG_ID,
        CLIENT_ID,
        Secret::new("wrong-secret-value"),
    );
    cfg.ims_url = o.server.base_url().into();
    cfg.umapi_url = o.server.base_url().into();
    let c = Client::new(cfg).unwrap();
    let err = c.users().await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, AdobeError::SignIn { status: 401, .. }),
        "{text}"
    );
    assert!(
        text.contains("invalid_client") && !text.contains("wrong-secret-value"),
        "{text}"
    );
    assert!(!format!("{c:?}").contains("wrong-secret-value"));
    // A closed local port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let c = client(&o, |cfg| {
        cfg.ims_url = url.clone();
        cfg.retry.max_attempts = 2;
    });
    let err = c.users().await.unwrap_err();
    assert!(matches!(err, AdobeError::Http { .. }), "{err}");
}
