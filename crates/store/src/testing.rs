//! Fresh PostgreSQL databases for tests, so every suite that runs on SQLite can run on
//! PostgreSQL too. `ROSTER_TEST_POSTGRES` names a server and a database to connect to first
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`); each test gets a database of its own,
//! created there and dropped when the test is done with it. Without the variable the
//! PostgreSQL half of a test is skipped, unless `ROSTER_REQUIRE_POSTGRES=1` (CI sets it),
//! which makes a missing server an error instead of a silent pass.

use sqlx::any::AnyPoolOptions;
use sqlx::{ConnectOptions, Executor};

use crate::{Result, StateStore};

/// One signing key for every test of this process (made in memory), so states a test
/// opens twice verify alike.
pub fn keys() -> roster_keys::Keyring {
    static KEYS: std::sync::OnceLock<roster_keys::Keyring> = std::sync::OnceLock::new();
    KEYS.get_or_init(roster_keys::Keyring::ephemeral).clone()
}

/// The admin URL tests create their databases through, if PostgreSQL tests are to run.
pub fn server() -> Option<String> {
    match std::env::var("ROSTER_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ROSTER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ROSTER_REQUIRE_POSTGRES=1 but ROSTER_TEST_POSTGRES is not set: give it the URL of a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    }
}

/// A database made for one test, dropped with the value.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// A new, empty database on the server [`server`] names (`None` when there is none).
    /// Databases a dead test process left behind are dropped first.
    pub async fn create(label: &str) -> Option<Self> {
        let admin = server()?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
        drop_orphans(&pool).await;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let label: String = label
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect::<String>()
            .to_lowercase();
        let name = format!("roster_test_{}_{n}_{label}", std::process::id());
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let mut url = url::Url::parse(&admin).expect("ROSTER_TEST_POSTGRES is a URL");
        url.set_path(&format!("/{name}"));
        Some(TestDatabase {
            admin,
            name,
            url: url.to_string(),
        })
    }

    /// The database as a state, signing with [`keys`].
    pub async fn store(&self) -> Result<StateStore> {
        Ok(StateStore::connect(&self.url).await?.with_keys(keys()))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run inside a runtime: a thread of its own with a
        // runtime of its own does the work, and is waited for.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(options) = sqlx::any::AnyConnectOptions::from_url(
                    &url::Url::parse(&admin).expect("a URL"),
                ) else {
                    return;
                };
                if let Ok(mut c) = options.disable_statement_logging().connect().await {
                    let _ = c
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Drops `roster_test_PID_...` databases whose process is gone.
async fn drop_orphans(pool: &sqlx::AnyPool) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'roster\\_test\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for name in names {
        let pid = name
            .strip_prefix("roster_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = pool
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}

/// Runs this test binary's tests that `filter` selects once more with their state in
/// PostgreSQL (`ROSTER_TEST_BACKEND=postgres`), so one `cargo test` runs a suite on both
/// backends; the test calling this is named by `me` and skipped in the second run. Does
/// nothing when no test server is configured, or when already in the PostgreSQL run.
pub fn rerun_on_postgres(filter: &str, me: &str) {
    if std::env::var("ROSTER_TEST_BACKEND").as_deref() == Ok("postgres") || server().is_none() {
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([filter, "--skip", me])
        .env("ROSTER_TEST_BACKEND", "postgres");
    let out = cmd.output().expect("the test binary runs again");
    assert!(
        out.status.success(),
        "the suite failed on PostgreSQL:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ran = stdout
        .lines()
        .filter(|l| l.starts_with("test ") && l.ends_with(" ok"))
        .count();
    assert!(ran > 0, "no test ran on PostgreSQL:\n{stdout}");
}
