//! Starts a Magento sandbox on a free port with its own data directory.

use reqwest::{Client, Method, StatusCode};
use roster_domain::Secret;
use roster_sandbox::magento::{self, MagentoConfig, RunningMagento};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ADMIN: &str = "roster-admin";
pub const PASSWORD: &str = "Sandbox-Admin-123";

pub struct Magento {
    pub server: Option<RunningMagento>,
    pub dir: TempDir,
    pub http: Client,
    pub url: String,
}

pub fn config(dir: &TempDir) -> MagentoConfig {
    let mut c = MagentoConfig::new(dir.path());
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.admin_user = Some(ADMIN.into());
    c.admin_password = Some(Secret::new(PASSWORD));
    c.customers = 40;
    c
}

impl Magento {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&dir);
        Self::start_in(dir, cfg).await
    }

    pub async fn start_in(dir: TempDir, cfg: MagentoConfig) -> Self {
        let server = magento::start(cfg).await.expect("magento sandbox starts");
        let url = server.base_url().to_string();
        Self {
            server: Some(server),
            dir,
            http: roster_http::client(),
            url,
        }
    }

    pub async fn restart(mut self) -> Self {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let cfg = config(&self.dir);
        Self::start_in(self.dir, cfg).await
    }

    /// Sends `method path` (path after the host, e.g. `/rest/V1/customers/1`).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn token_for(&self, kind: &str, user: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/rest/V1/integration/{kind}/token"),
            None,
            Some(json!({"username": user, "password": password})),
        )
        .await
    }

    pub async fn admin(&self) -> String {
        let (status, token) = self.token_for("admin", ADMIN, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        token.as_str().unwrap().to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn advance_clock(&self, seconds: i64) {
        let resp = self
            .http
            .post(format!("{}/sandbox/clock", self.url))
            .json(&json!({"advanceSeconds": seconds}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
}
