//! Real-browser tests of Roster's web pages: the sandbox's invitation page (what an invitee
//! sees), the audit's HTML report and the service's console, driven through chromedriver
//! with fantoccini (a maintained W3C WebDriver client), in headless Chromium.
//!
//! `.ci/run` installs Debian's chromium and chromium-driver and sets ROSTER_REQUIRE_BROWSER=1,
//! so CI fails if they are missing. Elsewhere, without a chromedriver on the machine, these
//! tests say so on stderr and pass without checking anything.
//!
//! Accessibility is checked with axe-core (Deque's engine, from npm: `.ci/run` installs it
//! and points ROSTER_AXE at `axe.min.js`, with ROSTER_REQUIRE_AXE=1), run inside the page:
//! no serious or critical violation of WCAG 2.1 A/AA on any console page.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use super::marketo::Env;

fn find_chromedriver() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// axe-core's script, from ROSTER_AXE (`axe.min.js`).
fn axe_source() -> Option<String> {
    match std::env::var_os("ROSTER_AXE") {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("ROSTER_AXE={}: {e}", PathBuf::from(&path).display())),
        ),
        None => {
            assert!(
                std::env::var_os("ROSTER_REQUIRE_AXE").is_none(),
                "ROSTER_REQUIRE_AXE is set but ROSTER_AXE does not name axe.min.js (npm install axe-core)"
            );
            None
        }
    }
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// A headless Chromium session through chromedriver, driven with fantoccini.
struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    /// Starts chromedriver and a headless session, or `None` when this machine has none.
    async fn start() -> Option<Self> {
        let Some(chromedriver) = find_chromedriver() else {
            assert!(
                std::env::var_os("ROSTER_REQUIRE_BROWSER").is_none(),
                "ROSTER_REQUIRE_BROWSER is set but no chromedriver was found; install chromium and chromium-driver"
            );
            eprintln!(
                "browser tests not run: no chromedriver on this machine (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        // The driver takes a moment to listen: retry the session until it does.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        Some(Self { driver, client })
    }

    async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page opens");
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.element(css).await.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    async fn script(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until `script` returns true (a page load after a form submission, say).
    async fn wait_for(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.script(script).await != true {
            assert!(Instant::now() < deadline, "timed out waiting for: {script}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `script` (which ends by calling `done(value)`) and waits for its value.
    async fn async_script(&self, script: &str) -> Value {
        let body = format!("const done = arguments[arguments.length - 1]; {script}");
        self.client
            .execute_async(&body, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Sets the window's size (the page's width is what the layout checks are about).
    async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Saves a screenshot of the page as `target/console-screenshots/NAME.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// What a reader of the page at this width cannot reach: the page scrolling sideways,
    /// a table's last column outside the window, a control outside it.
    async fn clipped(&self) -> Vec<String> {
        let found = self
            .script(
                "const w = document.documentElement.clientWidth; const out = [];
                 if (document.documentElement.scrollWidth > w) out.push('the page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + w);
                 for (const t of document.querySelectorAll('main table')) {
                   for (const r of t.querySelectorAll('tbody tr')) {
                     const c = r.lastElementChild; if (!c) continue;
                     const b = c.getBoundingClientRect();
                     if (b.width > 0 && (b.right > w + 1 || b.left < -1)) { out.push('#' + t.id + ': its last column ends at ' + Math.round(b.right) + ' px of ' + w); break; }
                   }
                 }
                 for (const el of document.querySelectorAll('main button, main a, main input, main select, main textarea')) {
                   const b = el.getBoundingClientRect();
                   if (b.width > 0 && b.right > w + 1) out.push('a control outside the window: ' + (el.id || el.textContent.trim().slice(0, 40)) + ' ends at ' + Math.round(b.right));
                 }
                 return out;",
            )
            .await;
        serde_json::from_value(found).unwrap()
    }

    /// axe-core's serious and critical violations of WCAG 2.1 A/AA on the page, or `None`
    /// when axe-core is not on this machine (then ROSTER_REQUIRE_AXE must not be set).
    async fn accessibility(&self) -> Option<Vec<String>> {
        let source = axe_source()?;
        self.client
            .execute(&format!("{source}\nreturn typeof window.axe;"), Vec::new())
            .await
            .expect("axe-core loads");
        let found = self
            .async_script(
                "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                   .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))))
                   .catch(e => done(['axe failed: ' + e]));",
            )
            .await;
        Some(serde_json::from_value(found).unwrap())
    }

    /// Checks the page as every reader must find it: nothing clipped at this width and no
    /// serious accessibility fault.
    async fn check_page(&self, what: &str) {
        let clipped = self.clipped().await;
        assert!(clipped.is_empty(), "{what}: {clipped:#?}");
        if let Some(faults) = self.accessibility().await {
            assert!(faults.is_empty(), "{what}: {faults:#?}");
        }
    }

    /// Presses a key as a keyboard does (WebDriver's key actions on the focused element).
    async fn press(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let c: char = key.into();
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: c })
            .then(KeyAction::Up { value: c });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// Presses Tab until `css` has the focus, as someone without a mouse reaches it; fails
    /// when it cannot be reached that way.
    async fn tab_to(&self, css: &str) {
        let focused = format!(
            "return document.activeElement !== null && document.activeElement.matches({})",
            json!(css)
        );
        for _ in 0..120 {
            if self.script(&focused).await == true {
                return;
            }
            self.press(fantoccini::key::Key::Tab).await;
        }
        panic!("{css} cannot be reached with the Tab key");
    }

    /// Types into the focused element.
    async fn type_here(&self, text: &str) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }

    async fn text(&self) -> String {
        self.script("return document.body.innerText")
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitee_sets_a_password_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = Env::start(|_| {}).await;
    let email = "browser.user@acme.example";
    env.ok(&[
        "marketo",
        "invite",
        "--email",
        email,
        "--first",
        "Bea",
        "--last",
        "Rowser",
        "--role",
        "Standard User@Default",
    ])
    .await;
    let mail = env.mail_to(email).await;
    let url = mail[0]["acceptUrl"].as_str().unwrap().to_string();

    browser.open(&url).await;
    assert!(
        browser.text().await.contains(email),
        "the page names the login id"
    );
    browser.type_into("#password", "Sunshine42").await;
    browser.type_into("#confirmPassword", "Moonshine42").await;
    browser.click("#create-password").await;
    browser
        .wait_for("return document.querySelector('#error') !== null")
        .await;
    let error = browser.text().await;
    assert!(error.to_lowercase().contains("match"), "{error}");
    assert_eq!(
        env.user_json(email).await["status"],
        "pending",
        "a failed attempt leaves the invitation pending"
    );

    browser.type_into("#password", "Sunshine42").await;
    browser.type_into("#confirmPassword", "Sunshine42").await;
    browser.click("#create-password").await;
    browser
        .wait_for("return document.querySelector('#create-password') === null")
        .await;
    let done = browser.text().await;
    assert!(
        browser
            .script("return document.querySelector('#error') === null")
            .await
            == true,
        "{done}"
    );
    let user = env.user_json(email).await;
    assert_eq!(user["status"], "active");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_report_renders_and_filters_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = Env::start(|_| {}).await;
    let html = env.home.path().join("report.html");
    env.ok(&["audit", "marketo", "--html", html.to_str().unwrap()])
        .await;
    browser.open(&format!("file://{}", html.display())).await;
    let visible = "return Array.from(document.querySelectorAll('#users tbody tr')).filter(r => r.offsetParent !== null).length";
    assert_eq!(browser.script(visible).await, 9);
    assert_eq!(
        browser
            .script("return document.getElementById('count-users').textContent")
            .await,
        "9"
    );
    browser.type_into("#filter", "marketing user").await;
    assert_eq!(
        browser.script(visible).await,
        3,
        "grace, linus and o'brien hold Marketing User"
    );
    let text = browser.text().await;
    assert!(
        text.contains("Access by workspace") && text.contains("O'Brien"),
        "{text}"
    );
    // Who made it, with which Roster, what it states hashed, where the log stood; a sign-off.
    assert!(text.contains("Sign-off"), "{text}");
    let hash = browser
        .script("return document.getElementById('content-hash').textContent")
        .await;
    assert_eq!(hash.as_str().unwrap().len(), 64, "{hash}");
    let head = browser
        .script("return document.getElementById('log-head').textContent")
        .await;
    assert!(head.as_str().unwrap().starts_with("row "), "{head}");
    browser.close().await;
}

/// The web console, in a real browser: sign-in, a leaver's pending plan approved by an
/// approver, a viewer without the button and refused when posting anyway, a form without its
/// CSRF token refused, and an idle session ending at the sign-in page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_approves_a_pending_plan_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = super::serve::Env::start(Duration::ZERO).await;
    env.configure(
        include_str!("../../../../examples/roster.yaml"),
        "\n[console]\nidle = \"3s\"\n",
    );
    for (name, role) in [
        ("alice", "approver"),
        ("bob", "approver"),
        ("vera", "viewer"),
    ] {
        let mut add = env.command();
        add.args(["serve", "user", "add", "--name", name, "--role", role])
            .env("ROSTER_NEW_PASSWORD", format!("{name}-console-pass"));
        let added = super::run_checked(add, &[]).await;
        assert!(added.ok, "{}", added.stderr);
    }
    let mut make = env.command();
    make.args([
        "serve",
        "token",
        "create",
        "--name",
        "watch",
        "--role",
        "viewer",
        "--service",
    ]);
    let token = super::run_checked(make, &[])
        .await
        .stdout
        .trim()
        .to_string();
    let (mut serve, base) = env.serve();
    let http = roster_http::client();
    let pending = || async {
        let v: Value = http
            .get(format!("{base}/api/v1/plans?status=pending"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["plans"][0]["plan_id"].as_str().map(str::to_string)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let plan = loop {
        if let Some(p) = pending().await {
            break p;
        }
        assert!(Instant::now() < deadline, "no pending plan");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Signed out, every page leads to the sign-in form.
    browser.open(&format!("{base}/console/plans/{plan}")).await;
    browser
        .wait_for("return document.querySelector('#sign-in') !== null")
        .await;
    browser.screenshot("sign-in").await;

    // A viewer sees the pending plan without the buttons, and is refused when posting anyway.
    browser.type_into("#name", "vera").await;
    browser.type_into("#password", "vera-console-pass").await;
    browser.click("#sign-in").await;
    browser
        .wait_for("return document.querySelector('#instances') !== null")
        .await;
    assert_eq!(
        browser
            .script("return document.querySelector('[id=\"reconcile-marketo.acme\"]') === null")
            .await,
        true,
        "a viewer cannot ask for a reconcile"
    );
    browser.open(&format!("{base}/console/plans/{plan}")).await;
    browser
        .wait_for("return document.querySelector('#steps') !== null")
        .await;
    assert_eq!(
        browser
            .script("return document.querySelector('#status').textContent")
            .await,
        "pending"
    );
    assert_eq!(
        browser
            .script("return document.querySelector('#approve') === null")
            .await,
        true
    );
    let refused = browser
        .async_script(&format!(
            "const csrf = document.querySelector('header input[name=csrf]').value; fetch('/console/plans/{plan}/approve', {{method: 'POST', body: new URLSearchParams({{csrf}})}}).then(r => r.text().then(t => done([r.status, t])));"
        ))
        .await;
    assert_eq!(refused[0], 403, "{refused}");
    assert!(
        refused[1]
            .as_str()
            .unwrap()
            .contains("needs the approver role"),
        "{refused}"
    );
    assert_eq!(pending().await.as_deref(), Some(plan.as_str()));
    browser.click("header form button").await;
    browser
        .wait_for("return document.querySelector('#sign-in') !== null")
        .await;

    // An approver: a wrong password first, then in.
    browser.type_into("#name", "alice").await;
    browser.type_into("#password", "wrong-password").await;
    browser.click("#sign-in").await;
    browser
        .wait_for("return document.querySelector('#message') !== null")
        .await;
    assert!(browser.text().await.contains("Wrong name or password"));
    // Keyboard only, as someone without a mouse signs in.
    browser.tab_to("#name").await;
    browser.type_here("alice").await;
    browser.tab_to("#password").await;
    browser.type_here("alice-console-pass").await;
    browser.press(fantoccini::key::Key::Enter).await;
    browser
        .wait_for("return document.querySelector('#instances') !== null")
        .await;
    assert!(browser.text().await.contains("marketo.acme"));
    browser.screenshot("overview").await;

    // The leaver's plan: the deletion marked destructive, and the buttons for an approver.
    browser.open(&format!("{base}/console/plans")).await;
    browser
        .wait_for("return document.querySelector('#plans') !== null")
        .await;
    browser.screenshot("plans").await;
    browser
        .click(&format!("a[href='/console/plans/{plan}']"))
        .await;
    browser
        .wait_for("return document.querySelector('#steps') !== null")
        .await;
    let text = browser.text().await;
    assert!(text.contains("katherine.johnson@acme.example"), "{text}");
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#steps tr.destructive').length > 0")
            .await,
        true
    );
    // Each destructive step shows its account before and after the plan; a deletion, none.
    let changes = browser
        .script("return Array.from(document.querySelectorAll('#steps tr.destructive')).map(r => [r.querySelector('.before').textContent, r.querySelector('.after').textContent])")
        .await;
    let changes = changes.as_array().unwrap();
    assert!(changes.iter().all(|c| c[0] != c[1]), "{changes:?}");
    assert!(changes.iter().any(|c| c[1] == "(none)"), "{changes:?}");
    browser.screenshot("plan").await;
    // A printed page says who made it, when, and with which Roster.
    let footer = browser
        .script("return document.querySelector('#provenance').textContent")
        .await;
    let footer = footer.as_str().unwrap();
    assert!(
        footer.contains("alice (approver)")
            && footer.contains(env!("CARGO_PKG_VERSION"))
            && footer.contains("Z with Roster"),
        "{footer}"
    );

    // A form without the session's token is refused, and changes nothing.
    let status = browser
        .async_script(&format!(
            "fetch('/console/plans/{plan}/approve', {{method: 'POST', body: new URLSearchParams({{csrf: 'forged'}})}}).then(r => done(r.status));"
        ))
        .await;
    assert_eq!(status, 403);
    assert_eq!(pending().await.as_deref(), Some(plan.as_str()));

    // A destructive plan is not approved without the box ticked, even by a form posted
    // around the page's own check.
    let unticked = browser
        .async_script(&format!(
            "const csrf = document.querySelector('header input[name=csrf]').value; fetch('/console/plans/{plan}/approve', {{method: 'POST', body: new URLSearchParams({{csrf}})}}).then(r => r.text().then(t => done([r.status, t])));"
        ))
        .await;
    assert_eq!(unticked[0], 409, "{unticked}");
    assert!(unticked[1].as_str().unwrap().contains("Tick the box"));
    assert_eq!(pending().await.as_deref(), Some(plan.as_str()));
    // Every column and action in view, and no accessibility fault, at both widths.
    for width in [1280, 420] {
        browser.resize(width, 900).await;
        browser
            .check_page(&format!("the plan page at {width} px"))
            .await;
    }
    browser.resize(1280, 900).await;
    // Approved with the keyboard alone: one comment box, the box ticked, Approve.
    browser.tab_to("#approve-comment").await;
    browser.type_here("HR ticket 7").await;
    browser.tab_to("#confirm-destructive").await;
    browser.press(fantoccini::key::Key::Space).await;
    browser.tab_to("#approve").await;
    browser.press(fantoccini::key::Key::Enter).await;
    browser
        .wait_for("return document.querySelector('#message') !== null")
        .await;
    assert!(browser.text().await.contains("Approved"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http
            .get(format!("{base}/api/v1/plans/{plan}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["held"]["status"] == "applied" {
            assert_eq!(v["held"]["decided_by"], "alice");
            assert_eq!(v["held"]["comment"], "HR ticket 7");
            break;
        }
        assert!(Instant::now() < deadline, "not applied: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tombs: Value = http
        .get(format!("{base}/api/v1/tombstones"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tombs["tombstones"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["email"] == "katherine.johnson@acme.example")
    );
    browser.open(&format!("{base}/console/plans/{plan}")).await;
    browser
        .wait_for("return document.querySelector('#status') !== null")
        .await;
    assert_eq!(
        browser
            .script("return document.querySelector('#status').textContent")
            .await,
        "applied"
    );
    assert_eq!(
        browser
            .script("return document.querySelector('#decision-comment').textContent")
            .await,
        "HR ticket 7",
        "the decision's comment is on the plan page"
    );

    // The tombstone: alice asks for a restore, cannot approve her own request (four eyes).
    browser.open(&format!("{base}/console/tombstones")).await;
    browser
        .wait_for("return document.querySelector('#tombstones') !== null")
        .await;
    let tomb = tombs["tombstones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == "katherine.johnson@acme.example")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    browser.tab_to(&format!("#restore-{tomb}")).await;
    browser.press(fantoccini::key::Key::Enter).await;
    browser
        .wait_for("return document.querySelector('#message') !== null")
        .await;
    assert!(browser.text().await.contains("waits for an approver"));
    let request = browser
        .script("return document.querySelector('#restores tbody tr td').textContent")
        .await
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    browser.click(&format!("#approve-restore-{request}")).await;
    browser
        .wait_for("return document.querySelector('#message.error') !== null")
        .await;
    assert!(
        browser
            .text()
            .await
            .contains("another approver must approve it")
    );
    browser.screenshot("tombstones").await;

    // The audit log: searchable, and exported as CSV.
    browser
        .open(&format!("{base}/console/log?q=katherine"))
        .await;
    browser
        .wait_for("return document.querySelector('#log') !== null")
        .await;
    let rows = browser
        .script("return document.querySelectorAll('#log tbody tr').length")
        .await;
    assert!(rows.as_u64().unwrap() >= 1, "{rows}");
    assert_eq!(
        browser
            .script("return Array.from(document.querySelectorAll('#log tbody tr')).every(r => r.textContent.toLowerCase().includes('katherine'))")
            .await,
        true
    );
    browser.screenshot("log").await;
    let csv = browser
        .async_script("fetch('/console/log?q=katherine&format=csv').then(r => r.text().then(t => done([r.status, r.headers.get('content-type'), t])));")
        .await;
    assert_eq!(csv[0], 200);
    assert!(csv[1].as_str().unwrap().starts_with("text/csv"));
    assert!(csv[2].as_str().unwrap().starts_with("id,at,actor"), "{csv}");
    assert!(csv[2].as_str().unwrap().contains("katherine"), "{csv}");
    browser.click("header form button").await;
    browser
        .wait_for("return document.querySelector('#sign-in') !== null")
        .await;

    // Bob approves the restore: Katherine is invited again.
    browser.type_into("#name", "bob").await;
    browser.type_into("#password", "bob-console-pass").await;
    browser.click("#sign-in").await;
    browser
        .wait_for("return document.querySelector('#instances') !== null")
        .await;
    browser.open(&format!("{base}/console/tombstones")).await;
    browser
        .wait_for("return document.querySelector('#restores') !== null")
        .await;
    browser.tab_to(&format!("#approve-restore-{request}")).await;
    browser.press(fantoccini::key::Key::Enter).await;
    browser
        .wait_for("return document.querySelector('#message') !== null")
        .await;
    assert!(browser.text().await.contains("being restored"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http
            .get(format!("{base}/api/v1/restores"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["restores"][0]["status"] == "restored" {
            break;
        }
        assert!(Instant::now() < deadline, "not restored: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Katherine's invitation is followed; bob asks for a reconcile and reads its run.
    browser.open(&format!("{base}/console/invitations")).await;
    browser
        .wait_for("return document.querySelector('#invitations') !== null")
        .await;
    assert!(
        browser
            .text()
            .await
            .contains("katherine.johnson@acme.example")
    );
    browser.screenshot("invitations").await;
    browser.open(&format!("{base}/console/webhooks")).await;
    browser
        .wait_for("return document.querySelector('#deliveries') !== null")
        .await;
    browser.open(&format!("{base}/console")).await;
    browser
        .wait_for("return document.querySelector('#instances') !== null")
        .await;
    browser.click("[id='reconcile-marketo.acme']").await;
    browser
        .wait_for("return document.querySelector('#message') !== null")
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_id = loop {
        let v: Value = http
            .get(format!("{base}/api/v1/runs"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(r) = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["trigger"] == "console:bob" && r["outcome"] != "running")
        {
            break r["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no run asked by bob: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    browser.open(&format!("{base}/console/runs")).await;
    browser
        .wait_for("return document.querySelector('#runs') !== null")
        .await;
    browser
        .click(&format!("a[href='/console/runs/{run_id}']"))
        .await;
    browser
        .wait_for("return document.querySelector('#events') !== null")
        .await;
    assert!(browser.text().await.contains("console:bob"));
    browser.screenshot("run").await;

    // Idle past the console's `idle` (3 s here): the next page is the sign-in form.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    browser.open(&format!("{base}/console")).await;
    browser
        .wait_for("return document.querySelector('#sign-in') !== null")
        .await;

    // 420 px wide: no horizontal scrolling of the page itself.
    browser.resize(420, 900).await;
    browser.type_into("#name", "alice").await;
    browser.type_into("#password", "alice-console-pass").await;
    browser.click("#sign-in").await;
    browser
        .wait_for("return document.querySelector('#instances') !== null")
        .await;
    assert_eq!(
        browser
            .script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
            .await,
        true
    );
    browser.screenshot("overview-420px").await;
    browser.close().await;
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
}

/// Single sign-on through an OpenID Connect provider (the sandbox's, on 127.0.0.1), then the
/// access pages an auditor uses: search and filter, one person across apps, the exports;
/// and every console page at 1280 and 420 px without horizontal scrolling of the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_with_single_sign_on_and_shows_access_in_a_real_browser() {
    use roster_sandbox::oidc::{self as idp, IdpUser};
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = super::serve::Env::start(Duration::ZERO).await;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/console/oidc/callback");
    let provider = idp::start(idp::OidcConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        client_id: "roster".into(),
        client_secret: "sandbox-idp-secret".into(),
        redirect_uris: vec![callback.clone()],
        users: vec![IdpUser {
            username: "audrey".into(),
            password: "audrey-idp-pass".into(),
            email: "audrey@acme.example".into(),
            name: "Audrey Auditor".into(),
            groups: vec!["auditors".into()],
        }],
    })
    .await
    .unwrap();
    std::fs::write(env.dir.path().join("idp-secret"), "sandbox-idp-secret\n").unwrap();
    env.configure(
        include_str!("../../../../examples/roster.yaml"),
        &format!(
            "\n[console.oidc]\nissuer = \"{}\"\nclient_id = \"roster\"\nclient_secret_file = \"idp-secret\"\nredirect_url = \"{callback}\"\nlabel = \"Sandbox IdP\"\n[console.oidc.roles]\nauditors = \"viewer\"\n",
            provider.issuer()
        ),
    );
    let toml = env.dir.path().join("roster.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&toml, text).unwrap();
    let (mut serve, base) = env.serve();

    browser.open(&format!("{base}/console/sign-in")).await;
    browser.click("#sso").await;
    browser
        .wait_for("return document.querySelector('#idp-sign-in') !== null")
        .await;
    browser.type_into("#username", "audrey").await;
    browser.type_into("#password", "audrey-idp-pass").await;
    browser.click("#idp-sign-in").await;
    browser
        .wait_for("return document.querySelector('#instances') !== null")
        .await;
    assert!(
        browser
            .text()
            .await
            .contains("audrey@acme.example (viewer)")
    );

    // The first run keeps the inventory; the access page appears once it has.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        browser
            .open(&format!("{base}/console/access/marketo.acme"))
            .await;
        if browser
            .script("return document.querySelector('#access') !== null")
            .await
            == true
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no inventory: {}",
            browser.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = "return document.querySelectorAll('#access tbody tr').length";
    let all = browser.script(rows).await.as_u64().unwrap();
    assert!(all >= 9, "the seeded users: {all}");
    browser.screenshot("access-1280px").await;
    // Search for one person, then open their page across apps.
    browser.type_into("#q", "grace.hopper").await;
    browser.click("#filter").await;
    browser
        .wait_for("return location.search.includes('q=grace.hopper')")
        .await;
    assert_eq!(browser.script(rows).await, 1);
    assert!(browser.text().await.contains("matching \"grace.hopper\""));
    let export = browser
        .async_script("fetch(document.querySelector('#export-csv').href).then(r => r.text().then(t => done([r.status, r.headers.get('content-type'), t])));")
        .await;
    assert_eq!(export[0], 200);
    assert!(export[1].as_str().unwrap().starts_with("text/csv"));
    let csv = export[2].as_str().unwrap();
    assert!(
        csv.starts_with("instance,kind,id,email") && csv.contains("grace.hopper@acme.example"),
        "{csv}"
    );
    assert!(!csv.contains("alan.turing"), "the export keeps the filter");
    browser.click("#access tbody a").await;
    browser
        .wait_for("return document.querySelector('#person') !== null")
        .await;
    assert!(browser.text().await.contains("grace.hopper@acme.example"));
    browser.screenshot("person").await;
    browser
        .open(&format!("{base}/console/people?q=acme.example"))
        .await;
    browser
        .wait_for("return document.querySelector('#people') !== null")
        .await;
    assert!(
        browser
            .script("return document.querySelectorAll('#people tbody tr').length")
            .await
            .as_u64()
            .unwrap()
            >= 9
    );

    // Every page, at a desktop and at a phone width: no horizontal scrolling of the page.
    let pages = [
        "/console",
        "/console/access",
        "/console/access/marketo.acme",
        "/console/person?email=grace.hopper%40acme.example",
        "/console/people",
        "/console/plans",
        "/console/runs",
        "/console/invitations",
        "/console/tombstones",
        "/console/log",
        "/console/webhooks",
        "/console/scim",
        "/console/reviews",
        "/console/reports",
    ];
    for (width, label) in [(1280, "1280px"), (420, "420px")] {
        browser.resize(width, 900).await;
        for page in pages {
            browser.open(&format!("{base}{page}")).await;
            browser
                .wait_for("return document.querySelector('#provenance') !== null")
                .await;
            let name = page
                .trim_start_matches("/console")
                .split('?')
                .next()
                .unwrap()
                .trim_matches('/')
                .replace('/', "-");
            let name = if name.is_empty() {
                "overview".into()
            } else {
                name
            };
            browser.screenshot(&format!("{name}-{label}")).await;
            browser.check_page(&format!("{page} at {width} px")).await;
        }
        browser
            .open(&format!("{base}/console/access/marketo.acme"))
            .await;
        browser.screenshot(&format!("access-{label}")).await;
    }
    browser.close().await;
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    provider.shutdown().await;
}

/// An access review in the console: the owner starts it, a manager keeps two of her
/// reports' items in bulk and revokes one, at 1280 and 420 px with every action in view;
/// the owner closes it (a confirmation first), and its printable summary opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_review_is_decided_and_closed_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = super::serve::Env::start(Duration::ZERO).await;
    let roster = include_str!("../../../../examples/roster.yaml")
        .replace(
            "    department: Analytics\n",
            "    department: Analytics\n    manager: mia@acme.example\n",
        )
        .replace(
            "    department: Field Marketing\n",
            "    department: Field Marketing\n    manager: mia@acme.example\n",
        )
        .replace(
            "    end_date: 2027-03-31\n",
            "    end_date: 2027-03-31\n    manager: mia@acme.example\n",
        );
    env.configure(&roster, "owner = \"owner@acme.example\"\n");
    for (name, role) in [
        ("mia@acme.example", "viewer"),
        ("owner@acme.example", "approver"),
    ] {
        let mut add = env.command();
        add.args(["serve", "user", "add", "--name", name, "--role", role])
            .env("ROSTER_NEW_PASSWORD", "review-console-pass");
        let added = super::run_checked(add, &[]).await;
        assert!(added.ok, "{}", added.stderr);
    }
    let mut make = env.command();
    make.args([
        "serve",
        "token",
        "create",
        "--name",
        "watch",
        "--role",
        "viewer",
        "--service",
    ]);
    let token = super::run_checked(make, &[])
        .await
        .stdout
        .trim()
        .to_string();
    let (mut serve, base) = env.serve();
    let http = roster_http::client();
    let api = |path: String| {
        let http = &http;
        let token = &token;
        let base = &base;
        async move {
            http.get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let sign_in = |name: &'static str| {
        let browser = &browser;
        let base = &base;
        async move {
            browser.open(&format!("{base}/console/sign-in")).await;
            browser
                .wait_for("return document.querySelector('#sign-in') !== null")
                .await;
            browser.type_into("#name", name).await;
            browser.type_into("#password", "review-console-pass").await;
            browser.click("#sign-in").await;
            browser
                .wait_for("return document.querySelector('#instances') !== null")
                .await;
        }
    };
    let sign_out = || async {
        browser.click("header form button").await;
        browser
            .wait_for("return document.querySelector('#sign-in') !== null")
            .await;
    };

    // The owner starts a campaign from the console.
    sign_in("owner@acme.example").await;
    browser.open(&format!("{base}/console/reviews")).await;
    browser
        .wait_for("return document.querySelector('#start-form') !== null")
        .await;
    browser.click("#start").await;
    browser
        .wait_for("return document.querySelector('#status') !== null")
        .await;
    let url = browser.client.current_url().await.unwrap();
    let id: i64 = url
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("not a review page: {url}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while api(format!("/api/v1/reviews/{id}")).await["status"] != "open" {
        assert!(Instant::now() < deadline, "the snapshot was never read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sign_out().await;

    // Mia sees her open items counted, and only hers on the campaign's page.
    sign_in("mia@acme.example").await;
    browser.open(&format!("{base}/console/reviews")).await;
    browser
        .wait_for("return document.querySelector('#reviews') !== null")
        .await;
    assert!(
        browser.text().await.contains("5 open"),
        "{}",
        browser.text().await
    );
    browser
        .click(&format!(
            "a[href='/console/reviews/{id}?show=mine&state=open']"
        ))
        .await;
    browser
        .wait_for("return document.querySelector('#items') !== null")
        .await;
    let rows = browser
        .script("return Array.from(document.querySelectorAll('#items tbody tr')).map(r => r.querySelector('td[data-label=Person] .muted').textContent)")
        .await;
    let rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(
        rows.iter().all(|e| [
            "alan.turing@acme.example",
            "linus.torvalds@acme.example",
            "margaret.hamilton@acme.example"
        ]
        .contains(e)),
        "{rows:?}"
    );
    let items = api(format!(
        "/api/v1/reviews/{id}/items?reviewer=mia@acme.example"
    ))
    .await;
    let items = items["items"].as_array().unwrap().clone();
    let find = |email: &str, scope: &str| {
        items
            .iter()
            .find(|i| i["email"] == email && i["scope"] == scope)
            .unwrap_or_else(|| panic!("no item {email} {scope}"))["id"]
            .as_i64()
            .unwrap()
    };
    let alan = find("alan.turing@acme.example", "US");
    let margaret_us = find("margaret.hamilton@acme.example", "US");
    let margaret_emea = find("margaret.hamilton@acme.example", "EMEA");
    for width in [1280, 420] {
        browser.resize(width, 900).await;
        assert_eq!(
            browser
                .script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
                .await,
            true,
            "the review page scrolls sideways at {width} px"
        );
        // Every item's buttons are inside the window, not cut off to the right.
        assert_eq!(
            browser
                .script("return Array.from(document.querySelectorAll('#items button, #items input[type=checkbox], #bulk button')).every(b => { const r = b.getBoundingClientRect(); return r.width > 0 && r.right <= window.innerWidth; })")
                .await,
            true,
            "an action is out of view at {width} px"
        );
        browser
            .check_page(&format!("the campaign page at {width} px"))
            .await;
        browser.screenshot(&format!("review-mine-{width}px")).await;
        browser
            .script("document.querySelector('#items').scrollIntoView(); return true")
            .await;
        browser.screenshot(&format!("review-items-{width}px")).await;
    }
    browser.resize(1280, 900).await;

    // A bulk keep of two, then one revoke with its reason.
    browser.click(&format!("#tick-{alan}")).await;
    browser.click(&format!("#tick-{margaret_us}")).await;
    browser
        .type_into("#bulk-comment", "still in the team")
        .await;
    browser.click("#bulk-keep").await;
    browser
        .wait_for("return document.querySelector('#message') !== null && document.querySelector('#message').textContent.includes('Recorded 2')")
        .await;
    browser
        .type_into(&format!("#comment-{margaret_emea}"), "moved to the US team")
        .await;
    browser.click(&format!("#revoke-{margaret_emea}")).await;
    browser
        .wait_for("return document.querySelector('#message') !== null && document.querySelector('#message').textContent.includes('Recorded 1')")
        .await;
    // A reload after the post shows the page again; it does not post again.
    browser.client.refresh().await.unwrap();
    browser
        .wait_for("return document.querySelector('#items') !== null")
        .await;
    let decided = api(format!(
        "/api/v1/reviews/{id}/items?reviewer=mia@acme.example"
    ))
    .await;
    let decided: Vec<(i64, String, bool)> = decided["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["decision"].is_null())
        .map(|i| {
            (
                i["id"].as_i64().unwrap(),
                i["decision"].as_str().unwrap().to_string(),
                i["bulk"] == true,
            )
        })
        .collect();
    assert_eq!(decided, {
        let mut want = vec![
            (alan, "keep".to_string(), true),
            (margaret_us, "keep".to_string(), true),
            (margaret_emea, "revoke".to_string(), false),
        ];
        want.sort();
        want
    },);
    // The open items left: two, the decided ones under "decided".
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#items tbody tr').length")
            .await,
        2
    );
    sign_out().await;

    // The owner closes it: not without confirming, then with.
    sign_in("owner@acme.example").await;
    browser
        .open(&format!("{base}/console/reviews/{id}?show=all&state=all"))
        .await;
    browser
        .wait_for("return document.querySelector('#close-form') !== null")
        .await;
    browser.screenshot("review-owner-1280px").await;
    browser.click("#close").await;
    browser
        .wait_for("return document.querySelector('#message') !== null && document.querySelector('#message').textContent.includes('tick the box')")
        .await;
    assert_eq!(api(format!("/api/v1/reviews/{id}")).await["status"], "open");
    browser.click("#close-confirm").await;
    browser.click("#close").await;
    browser
        .wait_for("return document.querySelector('#message') !== null && document.querySelector('#message').textContent.includes('Closed')")
        .await;
    let r = api(format!("/api/v1/reviews/{id}")).await;
    assert_eq!(r["status"], "remediating", "{r:#}");
    assert_eq!(r["closed_by"], "owner@acme.example");
    browser.resize(420, 900).await;
    browser.check_page("the closed campaign at 420 px").await;
    browser.screenshot("review-closed-420px").await;
    browser.resize(1280, 900).await;
    browser.click("#summary-link").await;
    browser
        .wait_for("return document.body.innerText.includes('Sign-off')")
        .await;
    let text = browser.text().await;
    assert!(text.contains("moved to the US team"), "{text}");
    browser.screenshot("review-summary").await;
    // The instance's printable audit report, from the reports page.
    browser
        .open(&format!(
            "{base}/console/reports?instance=marketo.acme&report=leavers"
        ))
        .await;
    browser
        .wait_for("return document.querySelector('#audit-link') !== null")
        .await;
    assert!(
        browser
            .text()
            .await
            .contains("katherine.johnson@acme.example")
    );
    browser.click("#audit-link").await;
    browser
        .wait_for("return document.querySelector('#accounts') !== null")
        .await;
    let text = browser.text().await;
    assert!(
        text.contains("Marketo access audit: marketo.acme"),
        "{text}"
    );
    assert!(
        text.contains("a leaver: the account should be gone"),
        "{text}"
    );
    assert!(text.contains("Sign-off"));
    browser.screenshot("audit-report").await;
    browser.close().await;
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
}

/// The admin page in a real browser, with the keyboard alone: an admin signs in, makes a
/// service token (shown once), rotates it and revokes the old one behind its ticked box;
/// the page, the sign-in page and the 404 page have every control in view at 1280 and
/// 420 px and no serious accessibility fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_makes_rotates_and_revokes_tokens_with_the_keyboard_alone() {
    use fantoccini::key::Key;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let env = super::serve::Env::start(Duration::ZERO).await;
    env.configure(include_str!("../../../../examples/roster.yaml"), "");
    let mut add = env.command();
    add.args(["serve", "user", "add", "--name", "root", "--role", "admin"])
        .env("ROSTER_NEW_PASSWORD", "root-console-pass");
    let added = super::run_checked(add, &[]).await;
    assert!(added.ok, "{}", added.stderr);
    let (mut serve, base) = env.serve();

    browser.resize(1280, 900).await;
    browser.open(&format!("{base}/console/sign-in")).await;
    browser
        .wait_for("return document.querySelector('#sign-in') !== null")
        .await;
    browser.check_page("the sign-in page").await;
    browser.tab_to("#name").await;
    browser.type_here("root").await;
    browser.tab_to("#password").await;
    browser.type_here("root-console-pass").await;
    browser.press(Key::Enter).await;
    browser
        .wait_for("return document.querySelector('#instances') !== null")
        .await;
    browser.tab_to("a[href='/console/admin']").await;
    browser.press(Key::Enter).await;
    browser
        .wait_for("return document.querySelector('#users') !== null")
        .await;
    for width in [1280, 420] {
        browser.resize(width, 900).await;
        browser
            .check_page(&format!("the admin page at {width} px"))
            .await;
        browser.screenshot(&format!("admin-{width}px")).await;
    }
    browser.resize(1280, 900).await;

    // A service token: the form opens from its summary, filled and sent by keyboard.
    browser.tab_to("#tokens-h ~ details summary").await;
    browser.press(Key::Enter).await;
    browser.tab_to("#token-name").await;
    browser.type_here("deploy").await;
    browser.tab_to("#token-expires").await;
    browser
        .tab_to("#tokens-h ~ details button[type=submit]")
        .await;
    browser.press(Key::Enter).await;
    browser
        .wait_for("return document.querySelector('#token-text') !== null")
        .await;
    let first = browser
        .script("return document.querySelector('#token-text').value")
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert!(first.starts_with("roster_"), "{first}");
    browser
        .check_page("the admin page showing a new token")
        .await;
    let http = roster_http::client();
    let works = |token: String| {
        let r = http
            .get(format!("{base}/api/v1/instances"))
            .bearer_auth(token);
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(works(first.clone()).await, 200);

    // Rotated: a new token, both work during the overlap.
    browser
        .tab_to("#tokens form[action$='rotate'] button")
        .await;
    browser.press(Key::Enter).await;
    browser
        .wait_for(&format!(
            "return document.querySelector('#token-text') !== null && document.querySelector('#token-text').value !== {}",
            json!(first)
        ))
        .await;
    let second = browser
        .script("return document.querySelector('#token-text').value")
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(works(first.clone()).await, 200);
    assert_eq!(works(second.clone()).await, 200);

    // The old one revoked now: its box ticked, then Revoke; the page is reloaded after.
    let retired = browser
        .script("return Array.from(document.querySelectorAll('#tokens tbody tr')).map(r => r.querySelector('td').textContent).find(n => n.startsWith('deploy#rotated-'))")
        .await;
    let retired = retired.as_str().expect("the old token listed").to_string();
    let form = format!("#tokens form[action$='revoke']:has(input[name=name][value='{retired}'])");
    browser.tab_to(&format!("{form} input[name=confirm]")).await;
    browser.press(Key::Space).await;
    browser.tab_to(&format!("{form} button")).await;
    browser.press(Key::Enter).await;
    browser
        .wait_for("return document.querySelector('.notice') !== null && document.querySelector('.notice').textContent.includes('revoked')")
        .await;
    assert_eq!(works(first).await, 401);
    assert_eq!(works(second).await, 200);
    assert!(
        browser
            .script("return location.search")
            .await
            .as_str()
            .unwrap()
            .contains("done=revoked")
    );

    // A page that does not exist: a real 404 page, as accessible as the rest.
    browser.open(&format!("{base}/console/no-such-page")).await;
    browser.check_page("the 404 page").await;
    browser.close().await;
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
}
