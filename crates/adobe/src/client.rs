//! The client: sign-in, one call with its retries, paged reads and batched writes.

use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::commands::{self, CommandOutcome, Entry, UserCommand};
use crate::config::AdobeConfig;
use crate::error::AdobeError;
use crate::model::{AdobeGroup, AdobeUser};
use crate::pacing::Window;
use crate::retry::{backoff, parse_retry_after, retryable};

/// A path segment: everything but letters, digits and `@ . _ - ~` escaped (emails keep
/// their `@`, as umapi-client's `quote(safe='/@')` does; `/` is escaped too, since a group
/// name with one would otherwise change the route).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'@')
    .remove(b'.')
    .remove(b'_')
    .remove(b'-')
    .remove(b'~');

/// Renew a token this long before it expires (or at 90% of a shorter lifetime).
const RENEW_BEFORE: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Token {
    value: String,
    renew_at: Instant,
}

pub struct Client {
    config: AdobeConfig,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
    actions: Window,
    user_reads: Window,
    group_reads: Window,
    /// UMAPI calls sent (retries included) and IMS sign-ins, for the cost a command reports.
    calls: std::sync::atomic::AtomicU64,
    sign_ins: std::sync::atomic::AtomicU64,
}

/// What a client has cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// UMAPI calls sent, retries included.
    pub calls: u64,
    pub sign_ins: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("umapi_url", &self.config.umapi_url)
            .field("org_id", &self.config.org_id)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Family {
    Action,
    Users,
    Groups,
}

fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

impl Client {
    pub fn new(config: AdobeConfig) -> Result<Self, AdobeError> {
        let http = roster_http::client_builder()
            .timeout(config.timeout)
            // Credentials go to the configured hosts only.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| AdobeError::Http {
                what: "the HTTP client".into(),
                source,
            })?;
        let l = &config.limits;
        Ok(Self {
            actions: Window::new(l.action, l.window),
            user_reads: Window::new(l.users, l.window),
            group_reads: Window::new(l.groups, l.window),
            http,
            token: Mutex::new(None),
            config,
            calls: Default::default(),
            sign_ins: Default::default(),
        })
    }

    pub fn org_id(&self) -> &str {
        &self.config.org_id
    }

    pub fn stats(&self) -> CallStats {
        use std::sync::atomic::Ordering::Relaxed;
        CallStats {
            calls: self.calls.load(Relaxed),
            sign_ins: self.sign_ins.load(Relaxed),
        }
    }

    /// The current token, signing in when there is none or it is about to expire.
    async fn token(&self, force: bool) -> Result<String, AdobeError> {
        let mut held = self.token.lock().await;
        if !force
            && let Some(t) = held.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let url = format!("{}/ims/token/v3", self.config.ims_url.trim_end_matches('/'));
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.expose()),
            ("scope", "openid,AdobeID,user_management_sdk"),
        ];
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            self.sign_ins
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sent = self
                .http
                .post(&url)
                .header("Cache-Control", "no-cache")
                .form(&form)
                .send()
                .await;
            match sent {
                Ok(r)
                    if retryable(r.status().as_u16())
                        && attempt < self.config.retry.max_attempts =>
                {
                    tokio::time::sleep(backoff(&self.config.retry, attempt)).await;
                }
                Ok(r) => break r,
                Err(e)
                    if (e.is_timeout() || e.is_connect())
                        && attempt < self.config.retry.max_attempts =>
                {
                    tokio::time::sleep(backoff(&self.config.retry, attempt)).await;
                }
                Err(source) => {
                    return Err(AdobeError::Http {
                        what: format!("Adobe IMS at {url}"),
                        source,
                    });
                }
            }
        };
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err(AdobeError::SignIn {
                status,
                error: body["error"].as_str().unwrap_or("unknown").to_owned(),
                description: body["error_description"].as_str().unwrap_or("").to_owned(),
            });
        }
        let (Some(value), Some(expires_in)) =
            (body["access_token"].as_str(), body["expires_in"].as_u64())
        else {
            return Err(AdobeError::Decode {
                what: "the IMS token request".into(),
                detail: "no access_token or expires_in".into(),
            });
        };
        // S2S answers seconds (the old JWT exchange answered milliseconds).
        let lifetime = Duration::from_secs(expires_in);
        let early = RENEW_BEFORE.min(lifetime / 10);
        let token = Token {
            value: value.to_owned(),
            renew_at: Instant::now() + lifetime - early,
        };
        *held = Some(token.clone());
        tracing::debug!(expires_in, "signed in to Adobe IMS");
        Ok(token.value)
    }

    /// One UMAPI call with its retries. 404 is `Ok(None)`: "no such user/group".
    async fn call(
        &self,
        family: Family,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Option<Value>, AdobeError> {
        let url = format!(
            "{}/v2/usermanagement{path_and_query}",
            self.config.umapi_url.trim_end_matches('/')
        );
        let window = match family {
            Family::Action => &self.actions,
            Family::Users => &self.user_reads,
            Family::Groups => &self.group_reads,
        };
        let started = Instant::now();
        let policy = &self.config.retry;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.token(false).await?;
            let admitted = window.admit().await;
            // Then the same client's calls in other Roster processes.
            let shared = match &self.config.shared {
                Some(f) => {
                    let pacing = match family {
                        Family::Action => &f.action,
                        Family::Users => &f.users,
                        Family::Groups => &f.groups,
                    };
                    Some(
                        roster_pacing::Slot::admit(pacing)
                            .await
                            .map_err(AdobeError::Pacing)?
                            .0,
                    )
                }
                None => None,
            };
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header("X-Api-Key", &self.config.client_id)
                .header("Accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sent = req.send().await;
            drop(admitted);
            drop(shared);
            let last = match sent {
                Err(e) if e.is_timeout() || e.is_connect() => format!("{e}"),
                Err(source) => {
                    return Err(AdobeError::Http {
                        what: format!("UMAPI for {what}"),
                        source,
                    });
                }
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match status {
                        StatusCode::OK | StatusCode::CREATED => {
                            let value: Value =
                                resp.json().await.map_err(|e| AdobeError::Decode {
                                    what: what.into(),
                                    detail: e.to_string(),
                                })?;
                            return Ok(Some(value));
                        }
                        StatusCode::NOT_FOUND if method == Method::GET => return Ok(None),
                        StatusCode::UNAUTHORIZED if !refreshed => {
                            // A token revoked or expired early: sign in again, once.
                            refreshed = true;
                            self.token(true).await?;
                            attempt -= 1;
                            continue;
                        }
                        _ => {}
                    }
                    let code = status.as_u16();
                    if !retryable(code) {
                        let text: Value = resp.json().await.unwrap_or(Value::Null);
                        let message = text["message"].as_str().unwrap_or("").to_owned();
                        return Err(match code {
                            401 => AdobeError::Unauthorized { message },
                            403 => AdobeError::Forbidden { message },
                            _ => AdobeError::Api {
                                what: what.into(),
                                status: code,
                                result: text["result"].as_str().unwrap_or("").to_owned(),
                                message,
                            },
                        });
                    }
                    let advised = headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
                    if let Some(wait) = advised {
                        if wait > policy.max_wait {
                            return Err(AdobeError::Throttled {
                                what: what.into(),
                                wait,
                            });
                        }
                        if attempt < policy.max_attempts {
                            tracing::info!(
                                status = code,
                                wait_s = wait.as_secs(),
                                "UMAPI asks to wait; waiting"
                            );
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                    }
                    format!("HTTP {code}")
                }
            };
            if attempt >= policy.max_attempts {
                return Err(AdobeError::Unavailable {
                    what: what.into(),
                    attempts: attempt,
                    last,
                    elapsed: started.elapsed(),
                });
            }
            let wait = backoff(policy, attempt);
            tracing::info!(attempt, wait_ms = wait.as_millis() as u64, %last, "UMAPI call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads `path(0)`, `path(1)`, ... until `lastPage` or an empty page (as umapi-client
    /// does), collecting each page's `key` array. `None` when the first page is a 404 (no
    /// such group); a 404 later ends the pages.
    async fn pages<T: DeserializeOwned>(
        &self,
        family: Family,
        path: impl Fn(usize) -> String,
        key: &str,
        what: &str,
    ) -> Result<Option<Vec<T>>, AdobeError> {
        let mut out = Vec::new();
        for page in 0.. {
            let Some(body) = self
                .call(family, Method::GET, &path(page), None, what)
                .await?
            else {
                if page == 0 {
                    return Ok(None);
                }
                break;
            };
            if body["result"] != "success" {
                return Err(AdobeError::Api {
                    what: what.into(),
                    status: 200,
                    result: body["result"].as_str().unwrap_or("").to_owned(),
                    message: body["message"].as_str().unwrap_or("").to_owned(),
                });
            }
            let items = body.get(key).cloned().unwrap_or(Value::Array(vec![]));
            let items: Vec<T> = serde_json::from_value(items).map_err(|e| AdobeError::Decode {
                what: what.into(),
                detail: e.to_string(),
            })?;
            let empty = items.is_empty();
            out.extend(items);
            if body["lastPage"] == true || empty {
                break;
            }
        }
        Ok(Some(out))
    }

    /// Every user of the organization (the Users tab), with their direct groups.
    pub async fn users(&self) -> Result<Vec<AdobeUser>, AdobeError> {
        self.users_with(true).await
    }

    /// Every user with the product profiles they hold through user groups as well
    /// (`directOnly=false`): the access they have, as an audit shows it.
    pub async fn users_with_indirect(&self) -> Result<Vec<AdobeUser>, AdobeError> {
        self.users_with(false).await
    }

    async fn users_with(&self, direct_only: bool) -> Result<Vec<AdobeUser>, AdobeError> {
        let org = segment(&self.config.org_id);
        let mut users: Vec<AdobeUser> = self
            .pages(
                Family::Users,
                |page| format!("/users/{org}/{page}?directOnly={direct_only}"),
                "users",
                "reading the users",
            )
            .await?
            .unwrap_or_default();
        // As Adobe's sync tool does: one entry per email.
        let mut seen = std::collections::HashSet::new();
        users.retain(|u| seen.insert(u.email.to_ascii_lowercase()));
        Ok(users)
    }

    /// The members of a user group, product profile or admin group; `None` if there is no
    /// such group.
    pub async fn group_members(&self, group: &str) -> Result<Option<Vec<AdobeUser>>, AdobeError> {
        let org = segment(&self.config.org_id);
        let group = segment(group);
        self.pages(
            Family::Users,
            |page| format!("/users/{org}/{page}/{group}"),
            "users",
            "reading a group's users",
        )
        .await
    }

    /// One user by email (case-insensitive); `None` if not in the organization.
    pub async fn user(&self, email: &str) -> Result<Option<AdobeUser>, AdobeError> {
        let path = format!(
            "/organizations/{}/users/{}",
            segment(&self.config.org_id),
            segment(email)
        );
        let Some(body) = self
            .call(Family::Users, Method::GET, &path, None, "reading a user")
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_value(body["user"].clone())
            .map(Some)
            .map_err(|e| AdobeError::Decode {
                what: "a user".into(),
                detail: e.to_string(),
            })
    }

    /// Every user group, product profile and admin group.
    pub async fn groups(&self) -> Result<Vec<AdobeGroup>, AdobeError> {
        let org = segment(&self.config.org_id);
        Ok(self
            .pages(
                Family::Groups,
                |page| format!("/groups/{org}/{page}"),
                "groups",
                "reading the groups",
            )
            .await?
            .unwrap_or_default())
    }

    /// Runs the commands (10 entries a call) and says what came of each. `test_mode` asks
    /// Adobe to check them without changing anything.
    pub async fn execute(
        &self,
        commands: &[UserCommand],
        test_mode: bool,
    ) -> Result<Vec<CommandOutcome>, AdobeError> {
        let mut outcomes: Vec<CommandOutcome> = commands
            .iter()
            .map(|c| CommandOutcome {
                user: c.user.clone(),
                failures: Vec::new(),
            })
            .collect();
        let entries = commands::entries(commands);
        let path = format!(
            "/action/{}{}",
            segment(&self.config.org_id),
            if test_mode { "?testOnly=true" } else { "" }
        );
        for batch in entries.chunks(commands::MAX_ENTRIES) {
            let body = Value::Array(batch.iter().map(|e: &Entry| e.body.clone()).collect());
            let Some(answer) = self
                .call(
                    Family::Action,
                    Method::POST,
                    &path,
                    Some(&body),
                    "an action call",
                )
                .await?
            else {
                return Err(AdobeError::Decode {
                    what: "an action call".into(),
                    detail: "404 from the action endpoint".into(),
                });
            };
            commands::file_errors(batch, &answer, &mut outcomes).map_err(|detail| {
                AdobeError::Decode {
                    what: "an action call".into(),
                    detail,
                }
            })?;
        }
        Ok(outcomes)
    }
}
