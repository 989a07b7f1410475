//! A hostile operator against `plan`/`apply`: edited plan files, approvals reused for other
//! content, Roster's own API user, the audit trail and its chain, one writer at a time,
//! file permissions, and CI exit codes. Each test failed on the Roster before issue 9.

use std::path::Path;
use std::time::Duration;

use roster_domain::plan::{Action, Plan, Step};
use serde_json::Value;

use super::{Env, example};

fn read_plan(path: &Path) -> Plan {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Writes a plan as a careful forger would: with its digest recomputed by the public
/// formula (the signature left as it was: the forger has no key).
fn forge(path: &Path, plan: &mut Plan) {
    plan.digest = plan.content_digest();
    std::fs::write(path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
}

/// Writes a plan as an insider who holds the state's signing key would: digest and
/// signature both made anew. What stops them is apply's own re-derivation.
fn forge_signed(env: &Env, path: &Path, plan: &mut Plan) {
    plan.digest = plan.content_digest();
    let key = env.home.path().join("state").join(roster_keys::KEY_FILE);
    let keys = roster_keys::Keyring::load_or_create(&key).unwrap().keyring;
    plan.signature = Some(
        keys.sign(roster_keys::Purpose::Plan, plan.digest.as_bytes())
            .unwrap(),
    );
    std::fs::write(path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
}

/// Appends a deletion of the protected admin, as a forger would.
fn delete_ada(plan: &mut Plan, destructive: bool) {
    let ada = extra_step(
        plan,
        Action::MarketoDelete {
            userid: "ada.lovelace@acme.example".into(),
        },
        destructive,
    );
    plan.steps.push(ada);
}

fn extra_step(plan: &Plan, action: Action, destructive: bool) -> Step {
    let index = plan.steps.len() + 1;
    Step {
        index,
        key: format!("{}/{index}/forged", plan.id),
        app: action.app(),
        stage: action.stage(),
        destructive,
        reason: "forged".into(),
        action,
    }
}

fn log(env_json: Value) -> Vec<Value> {
    env_json.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_plan_file_cannot_bypass_approvals_protection_or_caps() {
    let env = Env::start(Duration::ZERO).await;
    let roster = example();
    env.ok(&["plan", roster.to_str().unwrap(), "--out", "plan.json"])
        .await;
    let path = env.home.path().join("plan.json");

    // A plain edit: every step made non-destructive, digest left as it was.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"destructive\": true", "\"destructive\": false"),
    )
    .unwrap();
    let run = env.fails(&["apply", "plan.json"]).await;
    assert!(
        run.stderr.contains("does not match its digest"),
        "{}",
        run.stderr
    );
    std::fs::write(&path, &text).unwrap();

    // A forger who recomputes the digest: flags cleared, a deletion of the protected admin
    // added. The digest matches, the signature does not.
    let mut plan = read_plan(&path);
    for s in &mut plan.steps {
        s.destructive = false;
    }
    delete_ada(&mut plan, false);
    forge(&path, &mut plan);
    let run = env.fails(&["apply", "plan.json", "--approve"]).await;
    assert!(
        run.stderr.contains("does not match its signature"),
        "{}",
        run.stderr
    );
    // The same edit signed with the state's key: apply plans again from the roster and
    // the apps, and the deletion is not among what they call for.
    forge_signed(&env, &path, &mut plan);
    let run = env.fails(&["apply", "plan.json", "--approve"]).await;
    assert!(
        run.stderr.contains(
            "step 10, delete Marketo user ada.lovelace@acme.example, is not called for by"
        ),
        "{}",
        run.stderr
    );
    assert!(env.has_marketo_user("ada.lovelace@acme.example").await);

    // Flags cleared only (signed): the deletions are still destructive and need an approval.
    let mut plan = read_plan(&path);
    plan.steps.pop();
    forge_signed(&env, &path, &mut plan);
    let run = env.fails(&["apply", "plan.json"]).await;
    assert!(
        run.stderr
            .contains("2 destructive steps and no approval of this content"),
        "{}",
        run.stderr
    );
    assert!(env.has_marketo_user("katherine.johnson@acme.example").await);

    // An approval of plan A does not cover an edited A' (one step fewer, signed).
    env.ok(&["approve", "plan.json", "--by", "ana"]).await;
    let mut edited = read_plan(&path);
    edited.steps.remove(0);
    forge_signed(&env, &env.home.path().join("edited.json"), &mut edited);
    let run = env.fails(&["apply", "edited.json"]).await;
    assert!(
        run.stderr.contains("no approval of this content"),
        "{}",
        run.stderr
    );
    assert!(env.has_marketo_user("katherine.johnson@acme.example").await);

    // Every refusal and the approval are in the log; nothing was changed.
    let entries = log(env.ok(&["log", "-o", "json"]).await.json());
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "refused", "refused", "refused", "refused", "done", "refused"
        ],
        "{entries:?}"
    );
    assert_eq!(entries[4]["action"], "approve");
    assert_eq!(entries[4]["actor"], "ana");

    // The approved, unedited plan runs.
    let applied = env.ok(&["apply", "plan.json"]).await;
    assert!(
        applied.stdout.contains("9 steps done now"),
        "{}",
        applied.stdout
    );
}

/// Issue 21's forged plans: each edit, with the digest recomputed by the public formula,
/// is refused by the signature; signed with the state's key, the step is refused by name
/// because the roster does not call for it. Nothing changes in the apps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_plans_grant_nothing_the_roster_does_not_call_for() {
    let env = Env::start(Duration::ZERO).await;
    let roster = example();
    env.ok(&["plan", roster.to_str().unwrap(), "--out", "plan.json"])
        .await;
    let path = env.home.path().join("plan.json");
    let original = read_plan(&path);
    let users_before = env.marketo_users().await;
    let admin = |role: &str, ws: &str| roster_domain::desired::RoleRef {
        role: role.into(),
        workspace: ws.into(),
    };
    let forgeries: Vec<(Action, &str)> = vec![
        (
            Action::MarketoGrant {
                userid: "grace.hopper@acme.example".into(),
                roles: vec![admin("Admin", "AllZones")],
            },
            "grant Admin@AllZones to Marketo user grace.hopper@acme.example",
        ),
        (
            Action::MarketoInvite {
                email: "stranger@acme.example".into(),
                first_name: "Some".into(),
                last_name: "Stranger".into(),
                roles: vec![admin("Admin", "AllZones")],
                expires_at: None,
            },
            "invite stranger@acme.example to Marketo with Admin@AllZones",
        ),
        (
            Action::MagentoCreateAdmin {
                username: "mallory".into(),
                email: "mallory@acme.example".into(),
                first_name: "Mal".into(),
                last_name: "Lory".into(),
                role_id: 1,
                role: "Administrators".into(),
            },
            "create Magento admin user mallory with role Administrators",
        ),
        (
            Action::MarketoSetExpiry {
                userid: "margaret.hamilton@acme.example".into(),
                expires_at: None,
            },
            "set the login expiry of Marketo user margaret.hamilton@acme.example to never",
        ),
    ];
    for (action, described) in forgeries {
        // Destructive steps dropped, the forged one appended.
        let mut plan = original.clone();
        plan.steps.retain(|s| !s.destructive);
        let step = extra_step(&plan, action, false);
        let index = step.index;
        plan.steps.push(step);
        forge(&path, &mut plan);
        let run = env.fails(&["apply", "plan.json"]).await;
        assert!(
            run.stderr.contains("does not match its signature"),
            "{described}: {}",
            run.stderr
        );
        forge_signed(&env, &path, &mut plan);
        let run = env.fails(&["apply", "plan.json"]).await;
        assert!(
            run.stderr
                .contains(&format!("step {index}, {described}, is not called for by")),
            "{described}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    }
    // The snapshot emptied (drift check defeated by the file): the signature stops it.
    let mut plan = original.clone();
    plan.live.marketo = None;
    forge(&path, &mut plan);
    let run = env.fails(&["apply", "plan.json"]).await;
    assert!(
        run.stderr.contains("does not match its signature"),
        "{}",
        run.stderr
    );
    // Pointed at another roster, one that protects nobody, with a deletion of the
    // protected admin: the signature stops it.
    let lax = env.home.path().join("lax.yaml");
    std::fs::write(
        &lax,
        std::fs::read_to_string(&roster)
            .unwrap()
            .replace("protected: [ada.lovelace@acme.example]", "protected: []"),
    )
    .unwrap();
    let mut plan = original.clone();
    plan.roster = lax.display().to_string();
    delete_ada(&mut plan, true);
    forge(&path, &mut plan);
    let run = env.fails(&["apply", "plan.json", "--approve"]).await;
    assert!(
        run.stderr.contains("does not match its signature"),
        "{}",
        run.stderr
    );
    // Re-signed by a key holder, with the lax roster's own digest: apply plans again from
    // that roster, which does not call for deleting her either, and names the roster.
    env.ok(&["plan", lax.to_str().unwrap(), "--out", "lax.json"])
        .await;
    plan.roster_digest = read_plan(&env.home.path().join("lax.json")).roster_digest;
    forge_signed(&env, &path, &mut plan);
    let run = env.fails(&["apply", "plan.json", "--approve"]).await;
    assert!(
        run.stderr.contains(&format!(
            "delete Marketo user ada.lovelace@acme.example, is not called for by {}",
            lax.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(env.marketo_users().await, users_before);
    // The plan as saved runs, and says which roster it followed.
    std::fs::write(&path, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    let applied = env.ok(&["apply", "plan.json", "--approve"]).await;
    let said = format!("{}{}", applied.stdout, applied.stderr);
    assert!(
        said.contains(&format!("following the roster {}", roster.display())),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_plan_stays_blocked_and_roster_never_locks_itself_out() {
    let env = Env::start(Duration::ZERO).await;
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("max_destructive: 3", "max_destructive: 1");
    let roster = env.write("roster.yaml", &text);
    let r = roster.to_str().unwrap();
    let run = env
        .run_env(
            &["plan", r, "--out", "plan.json", "--detailed-exitcode"],
            &[],
        )
        .await;
    assert_eq!(run.code, Some(3), "blocked: {}", run.stdout);
    assert!(
        run.stdout.contains("BLOCKED: marketo: 2 destructive steps"),
        "{}",
        run.stdout
    );

    // Emptying `blocked` (even re-signed by a key holder) does not unblock it: the cap is recounted.
    let path = env.home.path().join("plan.json");
    let mut plan = read_plan(&path);
    plan.blocked.clear();
    forge_signed(&env, &path, &mut plan);
    let run = env.fails(&["apply", "plan.json", "--approve"]).await;
    assert!(
        run.stderr.contains("is blocked; nothing was changed"),
        "{}",
        run.stderr
    );

    // A forged step against Roster's own API user is refused whatever the policy says.
    let mut plan = read_plan(&path);
    plan.blocked.clear();
    plan.steps.retain(|s| !s.destructive);
    let me = extra_step(
        &plan,
        Action::MarketoRevoke {
            userid: "roster-api@acme.example".into(),
            roles: vec![],
        },
        false,
    );
    plan.steps.push(me);
    forge_signed(&env, &path, &mut plan);
    let run = env.fails(&["apply", "plan.json", "--approve"]).await;
    assert!(
        run.stderr
            .contains("roster-api@acme.example, is not called for by")
            || run
                .stderr
                .contains("roster-api@acme.example is Roster's own API user"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);

    // The thin commands cannot strip it either: the connector refuses before sending.
    let run = env
        .fails(&[
            "marketo",
            "revoke",
            "roster-api@acme.example",
            "--role",
            "API Role@Default",
        ])
        .await;
    assert!(
        run.stderr
            .contains("it is the API-only user Roster signs in as"),
        "{}",
        run.stderr
    );
    let run = env
        .fails(&[
            "offboard",
            "marketo",
            "--email",
            "roster-api@acme.example",
            "--yes",
            "--include-api-only",
        ])
        .await;
    assert!(run.stderr.contains("Roster signs in as"), "{}", run.stderr);
    // Still working: a call that needs its role succeeds.
    env.ok(&["marketo", "users"]).await;

    // CI exit codes: changes pending (2), then nothing to do (0).
    let example = example();
    let e = example.to_str().unwrap();
    let run = env.run_env(&["plan", e, "--detailed-exitcode"], &[]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stdout.contains("to create,") && run.stdout.contains("(2 destructive)"),
        "{}",
        run.stdout
    );
    env.ok(&["apply", "--auto", e, "--approve"]).await;
    let run = env.run_env(&["plan", e, "--detailed-exitcode"], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_logged_by_the_os_account_and_the_chain_verifies() {
    let env = Env::start(Duration::ZERO).await;
    let os_user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let user = "grace.hopper@acme.example";
    let actor = [("ROSTER_ACTOR", "svc-okta")];
    for args in [
        vec!["marketo", "grant", user, "--role", "Web Designer@Default"],
        vec!["marketo", "revoke", user, "--role", "Web Designer@Default"],
        vec!["marketo", "update", user, "--first", "Grace B."],
        vec![
            "marketo",
            "invite",
            "--email",
            "new.person@acme.example",
            "--first",
            "New",
            "--last",
            "Person",
            "--role",
            "Standard User@Default",
        ],
        vec![
            "offboard",
            "marketo",
            "--email",
            "alan.turing@acme.example",
            "--yes",
        ],
        vec!["restore", "marketo", "--email", "alan.turing@acme.example"],
        vec!["marketo", "delete", "linus.torvalds@acme.example", "--yes"],
    ] {
        let run = env.run_env(&args, &actor).await;
        assert!(run.ok, "{args:?}: {}", run.stderr);
    }
    let entries = log(env.ok(&["log", "-o", "json"]).await.json());
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "grant", "revoke", "update", "invite", "offboard", "restore", "delete"
        ]
    );
    for e in &entries {
        assert_eq!(e["actor"], "svc-okta");
        assert_eq!(e["os_user"], os_user.as_str(), "the OS account, not $USER");
        assert_eq!(e["outcome"], "done");
    }

    // JSON lines for a SIEM: one object per line.
    let jsonl = env.ok(&["log", "-o", "jsonl"]).await.stdout;
    assert_eq!(jsonl.lines().count(), entries.len());
    for line in jsonl.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["hash"].as_str().unwrap().len(), 64);
    }
    let ok = env.ok(&["log", "verify"]).await;
    assert!(ok.stdout.contains("verifies: 7 lines"), "{}", ok.stdout);

    // Tamper with row 3 behind Roster's back: verify names the row.
    let tamper = match &env.database {
        Some(_) => {
            "ALTER TABLE audit_log DISABLE TRIGGER USER; UPDATE audit_log SET target = 'someone@else' WHERE id = 3;"
        }
        None => {
            "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET target = 'someone@else' WHERE id = 3;"
        }
    };
    env.raw_sql(tamper).await;
    let run = env.fails(&["log", "verify"]).await;
    assert!(run.stderr.contains("broken at line 3"), "{}", run.stderr);
    assert!(run.stderr.contains("edited"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_told_who_holds_the_state_and_files_are_private() {
    let env = Env::start(Duration::ZERO).await;
    let example = example();
    env.ok(&["plan", example.to_str().unwrap(), "--out", "plan.json"])
        .await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&env.home.path().join("plan.json")), 0o600);
        if env.database.is_none() {
            assert_eq!(mode(&env.home.path().join("state")), 0o700);
            assert_eq!(mode(&env.home.path().join("state/roster.sqlite")), 0o600);
        }
    }

    // Another process holds the state (its lock file beside the SQLite state, or the
    // PostgreSQL state's writer lock, taken from another machine): the second writer waits,
    // then says who.
    enum Holder {
        File(std::fs::File),
        Database(roster_store::SessionLock),
    }
    let (holder, expected) = match &env.database {
        None => {
            let lock_path = env.home.path().join("state/roster.lock");
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&lock_path)
                .unwrap();
            file.lock().unwrap();
            std::fs::write(&lock_path, "roster apply\t4242\t2026-11-23T10:00:00Z").unwrap();
            (
                Holder::File(file),
                "another roster apply (pid 4242, started at 2026-11-23T10:00:00Z) holds the state"
                    .to_string(),
            )
        }
        Some(db) => {
            let store = db.store().await.unwrap();
            let held = store
                .try_writer_lock("roster apply (elsewhere:4242)")
                .await
                .unwrap()
                .unwrap();
            (
                Holder::Database(held),
                "another roster apply (elsewhere:4242), since ".to_string(),
            )
        }
    };
    let run = env
        .run_env(
            &["apply", "plan.json", "--approve"],
            &[("ROSTER_LOCK_WAIT", "300ms")],
        )
        .await;
    assert!(!run.ok);
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(env.has_marketo_user("katherine.johnson@acme.example").await);
    // Readers are not held up.
    env.ok(&["log"]).await;
    match holder {
        Holder::File(file) => file.unlock().unwrap(),
        Holder::Database(held) => drop(held),
    }
    env.ok(&["apply", "plan.json", "--approve"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_interrupted_by_a_crash_is_logged_when_the_next_run_replans() {
    let env = Env::start(Duration::ZERO).await;
    let example = example();
    let e = example.to_str().unwrap();
    // Step 1 (the invitation) runs, and the process dies before recording it.
    let run = env
        .run_env(
            &["apply", "--auto", e, "--approve"],
            &[("ROSTER_TEST_CRASH", "1:unrecorded")],
        )
        .await;
    assert!(!run.ok);
    assert_eq!(env.invitations_to("nia.okafor@acme.example").await, 1);
    // A rerun that re-plans (a new plan id) still settles and logs the interrupted step.
    env.ok(&["apply", "--auto", e, "--approve"]).await;
    let entries = log(env.ok(&["log", "-o", "json"]).await.json());
    let invites: Vec<&Value> = entries
        .iter()
        .filter(|l| {
            l["action"] == "invite" && l["target"] == "marketo user nia.okafor@acme.example"
        })
        .collect();
    assert!(
        invites.iter().any(|l| l["detail"]
            .as_str()
            .unwrap()
            .contains("interrupted by a crash")),
        "{entries:?}"
    );
    assert_eq!(env.invitations_to("nia.okafor@acme.example").await, 1);
    env.ok(&["log", "verify"]).await;
}

/// A listener on 127.0.0.1 that answers every request with `answer` and counts requests.
async fn fixed_server(answer: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_nor_go_over_plain_http_to_another_host() {
    use std::sync::atomic::Ordering;
    let env = Env::start(Duration::ZERO).await;
    // Where a hostile or misconfigured front end would send the credentials.
    let (elsewhere, stolen) = fixed_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into(),
    )
    .await;
    let (redirector, _) = fixed_server(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}/identity/oauth/token\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
    .await;
    for (app, var, args) in [
        ("Marketo", "ROSTER_MARKETO_URL", ["marketo", "users"]),
        ("Magento", "ROSTER_MAGENTO_URL", ["magento", "groups"]),
    ] {
        let run = env.run_env(&args, &[(var, &redirector)]).await;
        assert!(!run.ok, "{app}: {}", run.stdout);
        assert!(
            run.stderr.contains("redirect") && run.stderr.contains(&elsewhere),
            "{app} should say where it was redirected: {}",
            run.stderr
        );
    }
    assert_eq!(stolen.load(Ordering::SeqCst), 0, "a redirect was followed");

    // Plain http:// to another machine is refused before anything is sent.
    for (var, args) in [
        ("ROSTER_MARKETO_URL", ["marketo", "users"]),
        ("ROSTER_MAGENTO_URL", ["magento", "groups"]),
    ] {
        let run = env
            .run_env(&args, &[(var, "http://shop.example.com:8080")])
            .await;
        assert!(!run.ok);
        assert!(
            run.stderr.contains("plain http:// to shop.example.com")
                && run.stderr.contains("--allow-insecure-http"),
            "{}",
            run.stderr
        );
    }

    // A certificate Roster does not trust is said at once, never retried: it does not heal.
    let certs = env.home.path().join("tls");
    std::fs::create_dir(&certs).unwrap();
    crate::postgres_tls::make_certificates(&certs);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(certs.join("server.pem"))
        .arg("-key")
        .arg(certs.join("server.key"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl (CI installs it)");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 127.0.0.1, not localhost (which may try ::1 first): tests reach 127.0.0.1 only.
    let url = format!("https://127.0.0.1:{port}");
    let run = env
        .run_env(&["marketo", "users"], &[("ROSTER_MARKETO_URL", &url)])
        .await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("presented a certificate Roster does not trust")
            && run.stderr.contains("did not retry")
            && !run.stderr.contains("retrying in"),
        "{}",
        run.stderr
    );
}

/// A host that accepts and never answers: each call gives up after `--timeout`, and
/// `--deadline` ends the whole command, instead of minutes of silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_never_answers_is_given_up_on_in_time() {
    let env = Env::start(Duration::ZERO).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let run = env
        .run_env(
            &["--timeout", "300ms", "marketo", "users"],
            &[
                ("ROSTER_MARKETO_URL", &silent),
                ("ROSTER_MARKETO_MAX_RETRIES", "1"),
            ],
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("timed out") && run.stderr.contains("gave up after 2 attempts"),
        "{}",
        run.stderr
    );
    let run = env
        .run_env(
            &["--deadline", "1s", "marketo", "users"],
            &[("ROSTER_MARKETO_URL", &silent)],
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("stopped at the --deadline of 1s"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_people_file_is_a_bounded_regular_csv_beside_the_roster_and_never_echoed() {
    let env = Env::start(Duration::ZERO).await;
    let dir = env.home.path().join("hr");
    std::fs::create_dir(&dir).unwrap();
    let roster = |people_file: &str| {
        let path = dir.join("roster.yaml");
        std::fs::write(&path, format!("people_file: {people_file}\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    // Resolved against the roster's folder, not the working directory.
    std::fs::write(
        dir.join("people.csv"),
        "email,first_name,last_name,marketo\nnia.okafor@acme.example,Nia,Okafor,Standard User@Default\n",
    )
    .unwrap();
    let plan = env.ok(&["plan", &roster("people.csv"), "-o", "json"]).await;
    assert!(
        plan.stdout.contains("nia.okafor@acme.example"),
        "{}",
        plan.stdout
    );

    for (people_file, expected) in [
        ("/etc/passwd", "relative path to a .csv file"),
        ("../../../etc/shadow", "relative path to a .csv file"),
        ("folder.csv", "not a regular file"),
    ] {
        std::fs::create_dir_all(dir.join("folder.csv")).unwrap();
        let run = env.fails(&["plan", &roster(people_file)]).await;
        assert!(
            run.stderr.contains(expected),
            "{people_file}: {}",
            run.stderr
        );
    }
    // A file of secrets named .csv: its problems name lines, never its content.
    std::fs::write(
        dir.join("secrets.csv"),
        "root:$6$s3cr3t:19000:0:99999:7:::\nhunter2,s3cr3t\n",
    )
    .unwrap();
    let run = env.fails(&["plan", &roster("secrets.csv")]).await;
    assert!(run.stderr.contains("secrets.csv:1:"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("s3cr3t") && !run.stderr.contains("hunter2"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader, Read};
    let env = Env::start(Duration::ZERO).await;
    // A plan far longer than a pipe's buffer, so writes go on after the reader has gone.
    let mut text = String::from("people:\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "  - email: joiner{i:04}@acme.example\n    first_name: J\n    last_name: Number {i}\n    access:\n      marketo: [\"Standard User@Default\"]\n"
        ));
    }
    let roster = env.write("joiners.yaml", &text);
    let mut child = env
        .command()
        .args(["plan", roster.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(!first.is_empty());
    drop(stdout); // like `| head -1`
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success() || status.signal() == Some(13),
        "{status:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

/// An ed25519 key pair made by `ssh-keygen` in `dir`: (private key path, public key line).
fn ssh_key(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(name);
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs (CI installs openssh-client)");
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_with_approvers_runs_destructive_steps_only_with_an_approvers_ssh_signature() {
    let env = Env::start(Duration::ZERO).await;
    let keys = env.home.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (ana_key, ana_pub) = ssh_key(&keys, "ana");
    let (bob_key, bob_pub) = ssh_key(&keys, "bob");
    let (eve_key, _) = ssh_key(&keys, "eve");
    // The example, with two approvers: its leaver's deletion is destructive.
    let text = std::fs::read_to_string(example()).unwrap().replacen(
        "policies:\n",
        &format!(
            "policies:\n  approvers:\n    - {{name: ana, key: \"{ana_pub}\"}}\n    - {{name: bob, key: \"{bob_pub}\"}}\n"
        ),
        1,
    );
    let roster = env.write("approved.yaml", &text);
    let roster = roster.to_str().unwrap();
    let as_ana = [("ROSTER_ACTOR", "ana")];
    let made = env
        .run_env(&["plan", roster, "--out", "plan.json"], &as_ana)
        .await;
    assert!(made.ok, "{}", made.stderr);
    assert_eq!(
        read_plan(&env.home.path().join("plan.json")).created_by,
        "ana"
    );
    let leaver = "katherine.johnson@acme.example";

    // A typed name is not enough, at approve or at apply.
    env.ok(&["approve", "plan.json", "--by", "bob"]).await;
    let refused = env
        .run_env(&["apply", "plan.json", "--approve", "--by", "bob"], &[])
        .await;
    assert!(
        !refused.ok && refused.stderr.contains("no SSH-signed approval"),
        "{}",
        refused.stderr
    );
    assert!(env.has_marketo_user(leaver).await, "nothing was deleted");

    // A key the roster does not list, and the author's own key, are refused.
    let eve = env
        .run_env(
            &["approve", "plan.json", "--key", eve_key.to_str().unwrap()],
            &[],
        )
        .await;
    assert!(
        !eve.ok && eve.stderr.contains("not one of the approvers"),
        "{}",
        eve.stderr
    );
    let own = env
        .run_env(
            &["approve", "plan.json", "--key", ana_key.to_str().unwrap()],
            &[],
        )
        .await;
    assert!(
        !own.ok && own.stderr.contains("ana made"),
        "the author cannot approve her own plan: {}",
        own.stderr
    );

    // A signature over other content (another plan's digest) does not pass for this one.
    let digest = env
        .ok(&["approve", "plan.json", "--print-digest"])
        .await
        .stdout;
    assert_eq!(digest, read_plan(&env.home.path().join("plan.json")).digest);
    let sign_with = |key: &Path, message: &str| {
        let file = keys.join("message");
        std::fs::write(&file, message).unwrap();
        let _ = std::fs::remove_file(keys.join("message.sig"));
        let out = std::process::Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "roster-plan", "-f"])
            .arg(key)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(keys.join("message.sig")).unwrap()
    };
    let sign = |message: &str| {
        let sig = sign_with(&bob_key, message);
        let path = keys.join("bob.sig");
        std::fs::write(&path, sig).unwrap();
        path
    };
    let wrong = sign("0000");
    let run = env
        .run_env(
            &[
                "approve",
                "plan.json",
                "--signature",
                wrong.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert!(
        !run.ok && run.stderr.contains("does not verify"),
        "{}",
        run.stderr
    );

    // Eve's signature written into the database under Bob's name proves nothing: the key
    // is checked against the roster's, where the approval is used.
    let plan_id = read_plan(&env.home.path().join("plan.json")).id;
    let eve_sig = sign_with(&eve_key, &digest);
    env.raw_sql(&format!(
        "INSERT INTO plan_signatures (plan_id, digest, approver, fingerprint, signature, signed_at) \
         VALUES ('{plan_id}', '{digest}', 'bob', 'SHA256:x', '{eve_sig}', 0)"
    ))
    .await;
    let forged = env.run_env(&["apply", "plan.json"], &[]).await;
    assert!(
        !forged.ok && forged.stderr.contains("no SSH-signed approval"),
        "{}",
        forged.stderr
    );
    assert!(env.has_marketo_user(leaver).await, "nothing was deleted");

    // Bob's signature made by ssh-keygen itself is his approval; apply then runs.
    let right = sign(&digest);
    let signed = env
        .ok(&[
            "approve",
            "plan.json",
            "--signature",
            right.to_str().unwrap(),
        ])
        .await;
    assert!(
        signed.stdout.contains("approved by bob") || signed.stderr.contains("approved by bob"),
        "{}{}",
        signed.stdout,
        signed.stderr
    );
    let applied = env.ok(&["apply", "plan.json"]).await;
    assert!(!env.has_marketo_user(leaver).await, "{}", applied.stderr);
    let lines = log(env.ok(&["log", "-o", "json"]).await.json());
    assert!(
        lines.iter().any(|l| l["action"] == "approve"
            && l["actor"] == "bob"
            && l["detail"]
                .as_str()
                .is_some_and(|d| d.contains("SSH key SHA256:"))),
        "{lines:#?}"
    );
    env.ok(&["log", "verify"]).await;
}
