//! Starts a Marketo sandbox on a free port with its own temporary data directory, and talks
//! to it over HTTP like any client would.

use reqwest::{Client, Response, StatusCode};
use roster_domain::Secret;
use roster_sandbox::marketo::{self, MarketoConfig, RunningSandbox};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const USERS: &str = "/userservice/management/v1/users";
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret-0123456789";

pub struct Sandbox {
    pub server: Option<RunningSandbox>,
    pub dir: TempDir,
    pub http: Client,
    pub url: String,
}

pub fn config(dir: &TempDir) -> MarketoConfig {
    let mut config = MarketoConfig::new(dir.path());
    config.client_id = Some(CLIENT_ID.into());
    config.client_secret = Some(Secret::new(CLIENT_SECRET));
    config
}

impl Sandbox {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut MarketoConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = config(&dir);
        tune(&mut cfg);
        Self::start_in(dir, cfg).await
    }

    pub async fn start_in(dir: TempDir, cfg: MarketoConfig) -> Self {
        let server = marketo::start(cfg).await.expect("sandbox starts");
        let url = server.base_url().to_owned();
        Self {
            server: Some(server),
            dir,
            http: roster_http::client(),
            url,
        }
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Restarts on the same data directory (on a new port), with a tuned configuration.
    pub async fn restart_with(mut self, tune: impl FnOnce(&mut MarketoConfig)) -> Self {
        self.stop().await;
        let mut cfg = config(&self.dir);
        tune(&mut cfg);
        Self::start_in(self.dir, cfg).await
    }

    pub async fn token_response(&self, id: &str, secret: &str) -> Response {
        token_response(&self.http, &self.url, id, secret).await
    }

    pub async fn token(&self) -> String {
        self.token_for(CLIENT_ID, CLIENT_SECRET).await
    }

    pub async fn token_for(&self, id: &str, secret: &str) -> String {
        let resp = self.token_response(id, secret).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{USERS}/{path}", self.url)
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(self.api(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        read(resp).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.api(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        read(resp).await
    }

    pub async fn post_raw(
        &self,
        token: &str,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.api(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        read(resp).await
    }

    pub async fn invite(&self, token: &str, email: &str, roles: Value) -> (StatusCode, Value) {
        self.post(token, "invite.json", json!({"emailAddress": email, "firstName": "Test", "lastName": "Person", "userRoleWorkspaces": roles}))
            .await
    }

    pub async fn invite_api_user(&self, token: &str, email: &str) -> (StatusCode, Value) {
        self.post(
            token,
            "invite.json",
            json!({"emailAddress": email, "firstName": "Api", "lastName": "Only", "apiOnly": true,
                   "userRoleWorkspaces": [{"accessRoleId": 104, "workspaceId": 1}]}),
        )
        .await
    }

    pub async fn mailbox(&self, to: &str) -> Vec<Value> {
        let resp = self
            .http
            .get(format!("{}/sandbox/mailbox", self.url))
            .query(&[("to", to)])
            .send()
            .await
            .unwrap();
        resp.json::<Vec<Value>>().await.unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/sandbox/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn advance_clock(&self, seconds: i64) {
        let resp = self
            .http
            .post(format!("{}/sandbox/clock", self.url))
            .json(&json!({"advanceSeconds": seconds}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// Sets a password on the invitation page, as the invitee would.
    pub async fn accept(
        &self,
        accept_url: &str,
        password: &str,
        confirm: &str,
    ) -> (StatusCode, String) {
        let resp = self
            .http
            .post(accept_url)
            .form(&[("password", password), ("confirmPassword", confirm)])
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// Invites a standard user and accepts the invitation, returning it active.
    pub async fn invite_and_accept(&self, token: &str, email: &str, roles: Value) {
        let (status, body) = self.invite(token, email, roles).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mail = self.mailbox(email).await;
        let url = mail.last().unwrap()["acceptUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, page) = self.accept(&url, "Sunshine42", "Sunshine42").await;
        assert_eq!(status, StatusCode::OK, "{page}");
    }
}

/// Asks the identity service at `url` for a token.
pub async fn token_response(http: &Client, url: &str, id: &str, secret: &str) -> Response {
    http.get(format!("{url}/identity/oauth/token"))
        .query(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("identity call")
}

pub async fn read(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// The Marketo error code of a failed call.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

pub fn message(body: &Value) -> &str {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

/// Percent-encodes a userid for a path segment, as clients must.
pub fn enc(userid: &str) -> String {
    let mut out = String::new();
    for b in userid.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn pairs(body: &Value) -> Vec<(i64, i64)> {
    body.as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .iter()
        .map(|p| {
            (
                p["accessRoleId"].as_i64().unwrap(),
                p["workspaceId"].as_i64().unwrap(),
            )
        })
        .collect()
}
