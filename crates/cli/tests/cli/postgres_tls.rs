//! Roster on a PostgreSQL server that speaks TLS only, as managed databases across a
//! network do: a server of the test's own (the machine's PostgreSQL binaries, run as the
//! `postgres` user when the test runs as root), with a certificate from a CA the test makes
//! with `openssl`, and a `pg_hba.conf` that turns plaintext away. Runs where the PostgreSQL
//! tests run (`ROSTER_TEST_POSTGRES`); `ROSTER_REQUIRE_POSTGRES=1` makes missing binaries an
//! error instead of a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::run_checked;
use super::serve::Env;

/// A PostgreSQL server in a temporary folder, accepting TLS connections only.
struct TlsPostgres {
    dir: tempfile::TempDir,
    server: Child,
    port: u16,
}

impl TlsPostgres {
    /// Starts one, or `None` where PostgreSQL tests are not to run.
    fn start() -> Option<Self> {
        roster_store::testing::server()?;
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var("ROSTER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "ROSTER_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (initdb, postgres) were found under /usr/lib/postgresql: install the postgresql package"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = is_root();
        make_certificates(dir.path());
        let data = dir.path().join("data");
        if root {
            // The server refuses to run as root: the `postgres` user owns its files.
            sh(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        sh(as_server_user(root, &bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data));
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = as_server_user(root, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "ssl=on",
                "-c",
                "fsync=off",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.path().join("server.pem").display()
            ))
            .arg("-c")
            .arg(format!(
                "ssl_key_file={}",
                dir.path().join("server.key").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Self { dir, server, port };
        started.await_ready(&bin);
        Some(started)
    }

    /// Waits until the server takes connections (`pg_isready` on its socket).
    fn await_ready(&self, bin: &Path) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the TLS PostgreSQL server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The URL of its `postgres` database at `host`, with `query` after it.
    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // SIGINT to the server itself (`runuser` passes no signal on): PostgreSQL's fast
        // shutdown, which ends its sessions too.
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_string))
            .unwrap_or_else(|| self.server.id().to_string());
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let _ = self.server.wait();
    }
}

/// The folder of the newest PostgreSQL server binaries on the machine.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn as_server_user(root: bool, program: &Path) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate it signed for `localhost` (not 127.0.0.1)
/// (`server.pem`, `server.key`), in `dir`.
pub(crate) fn make_certificates(dir: &Path) {
    let openssl = |args: &str| {
        sh(Command::new("openssl")
            .current_dir(dir)
            .args(args.split_whitespace()))
    };
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(&format!(
        "req -x509 {new_key} -keyout ca.key -out ca.pem -days 2 -subj /CN=roster-test-ca \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    ));
    openssl(&format!(
        "req -new {new_key} -keyout server.key -out server.csr -subj /CN=localhost"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile server.ext",
    );
    // PostgreSQL refuses a key others may read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// `roster serve` keeps its state and runs its job queue on a server that takes TLS only,
/// checking the server's certificate against the CA the URL names; a URL that trusts no
/// such CA, or asks for no TLS, is refused with words that say what to add.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_a_database_that_takes_tls_only() {
    let Some(pg) = TlsPostgres::start() else {
        return;
    };
    let env = Env::start(Duration::ZERO).await;
    env.configure(&super::serve::roster_text(), "");
    let with_url = |url: &str| {
        let mut cmd = env.command();
        cmd.env("ROSTER_DATABASE_URL", url);
        cmd
    };

    // The certificate is checked: not signed by a CA the URL trusts, it is turned away.
    let untrusted = pg.url("localhost", "?sslmode=require");
    let mut migrate = with_url(&untrusted);
    migrate.args(["serve", "migrate"]);
    let refused = run_checked(migrate, &[]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("certificate") && refused.stderr.contains("sslrootcert"),
        "{}",
        refused.stderr
    );
    let ca = pg.ca();
    let trusted = |host: &str, mode: &str| {
        pg.url(
            host,
            &format!("?sslmode={mode}&sslrootcert={}", ca.display()),
        )
    };
    // Nor a host name the certificate does not name, even where libpq's `verify-ca` would
    // not look: the certificate names `localhost`, not 127.0.0.1.
    let mut migrate = with_url(&trusted("127.0.0.1", "verify-ca"));
    migrate.args(["serve", "migrate"]);
    let refused = run_checked(migrate, &[]).await;
    assert!(!refused.ok);
    assert!(refused.stderr.contains("certificate"), "{}", refused.stderr);

    // Plaintext is what the server refuses: without sslmode the job queue says what to add.
    let mut plain = with_url(&pg.url("localhost", ""));
    plain.args(["serve", "migrate"]);
    let plain = run_checked(plain, &[]).await;
    assert!(!plain.ok);
    assert!(
        plain.stderr.contains("sslmode=verify-full"),
        "{}",
        plain.stderr
    );

    // With the CA: the state and the job queue both connect, and a service does its work
    // (its runs are jobs of the queue in that database, which turns plaintext away).
    let url = trusted("localhost", "verify-full");
    let mut migrate = with_url(&url);
    migrate.args(["serve", "migrate"]);
    let migrated = run_checked(migrate, &[]).await;
    assert!(migrated.ok, "{}", migrated.stderr);
    let mut serve = with_url(&url);
    serve
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut service = serve.spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while env.invited().await < super::serve::JOINERS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service on the TLS database invited {} of {}",
            env.invited().await,
            super::serve::JOINERS
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    assert!(service.wait().unwrap().success());
    let mut verify = with_url(&url);
    verify.args(["log", "verify"]);
    let verified = run_checked(verify, &[]).await;
    assert!(verified.ok, "{}", verified.stderr);
}
