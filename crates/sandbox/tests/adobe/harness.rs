//! Starts an Adobe sandbox on a free port with its own temporary data directory, signs in
//! through its IMS endpoint and calls UMAPI over HTTP as any client would.

use reqwest::{Client, Response};
use roster_domain::Secret;
use roster_sandbox::adobe::{self, AdobeConfig, RunningAdobe, UMAPI};
use serde_json::Value;
use tempfile::TempDir;

pub const CLIENT_ID: &str = "adobe-test-client";
pub const CLIENT_SECRET: &str = "p8e-test-secret";
pub const ORG: &str = adobe::DEFAULT_ORG_ID;

pub struct Adobe {
    pub server: Option<RunningAdobe>,
    pub dir: TempDir,
    pub http: Client,
    pub url: String,
    pub token: String,
}

pub fn config(dir: &TempDir) -> AdobeConfig {
    let mut config = AdobeConfig::new(dir.path());
    config.client_id = Some(CLIENT_ID.into());
    config.client_secret = Some(Secret::new(CLIENT_SECRET));
    config.limits = adobe::AdobeLimits::unlimited();
    config
}

impl Adobe {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut AdobeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = config(&dir);
        tune(&mut cfg);
        Self::start_in(dir, cfg).await
    }

    pub async fn start_in(dir: TempDir, cfg: AdobeConfig) -> Self {
        let server = adobe::start(cfg).await.expect("sandbox starts");
        let url = server.base_url().to_owned();
        let http = roster_http::client();
        let token = sign_in(&http, &url).await;
        Self {
            server: Some(server),
            dir,
            http,
            url,
            token,
        }
    }

    pub async fn restart(mut self) -> Self {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let cfg = config(&self.dir);
        Self::start_in(self.dir, cfg).await
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{UMAPI}{path}", self.url)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.api(path))
            .bearer_auth(&self.token)
            .header("X-Api-Key", CLIENT_ID)
            .send()
            .await
            .expect("sandbox answers")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    pub async fn action_response(&self, query: &str, body: &Value) -> Response {
        self.http
            .post(self.api(&format!("/action/{ORG}{query}")))
            .bearer_auth(&self.token)
            .header("X-Api-Key", CLIENT_ID)
            .json(body)
            .send()
            .await
            .expect("sandbox answers")
    }

    pub async fn action(&self, body: Value) -> Value {
        let resp = self.action_response("", &body).await;
        assert_eq!(resp.status(), 200, "{body}");
        resp.json().await.unwrap()
    }

    pub async fn user(&self, email: &str) -> Option<Value> {
        let resp = self
            .get(&format!("/organizations/{ORG}/users/{}", urlencode(email)))
            .await;
        if resp.status() == 404 {
            return None;
        }
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        Some(body["user"].clone())
    }

    pub async fn groups_of(&self, email: &str) -> Vec<String> {
        let user = self.user(email).await.expect("user exists");
        user["groups"]
            .as_array()
            .map(|g| g.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }
}

/// Percent-encodes a path segment (letters, digits, `@ . _ - ~` kept).
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"@._-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub async fn sign_in(http: &Client, url: &str) -> String {
    let resp = http
        .post(format!("{url}/ims/token/v2"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "openid,AdobeID,user_management_sdk"),
        ])
        .send()
        .await
        .expect("IMS answers");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}
