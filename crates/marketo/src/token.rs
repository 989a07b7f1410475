//! The access token: fetched from the identity endpoint, cached, shared by every concurrent
//! call, and refreshed by one of them (the others wait for it) shortly before it expires or
//! when the API says it is invalid (601) or expired (602).

use std::time::Duration;

use roster_domain::Secret;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::MarketoError;

/// Refresh this long before the token's announced expiry, so a call is never sent with a
/// token that expires in transit.
const EARLY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub(crate) struct Token {
    pub value: Secret,
    /// The API-only user the token acts as (the identity answer's `scope`).
    pub scope: Option<String>,
    good_until: Instant,
}

#[derive(Default)]
pub(crate) struct TokenCache {
    current: Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenCache {
    /// The cached token, or a new one, and whether this call fetched it. Holding the lock
    /// while fetching makes concurrent callers wait for the one refresh instead of each
    /// starting their own.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        client_id: &str,
        secret: &Secret,
        refreshed: impl FnOnce(),
    ) -> Result<(Token, bool), MarketoError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && token.good_until > Instant::now()
        {
            return Ok((token.clone(), false));
        }
        let token = fetch(http, base_url, client_id, secret).await?;
        refreshed();
        *current = Some(token.clone());
        Ok((token, true))
    }

    /// Forgets `stale` unless another caller already replaced it.
    /// Drops `stale` from the cache if it is still the current token. Returns false when
    /// another caller had already dropped or replaced it: a refresh by that caller may be
    /// why the server no longer knows `stale` (a new token purges the expired ones).
    pub async fn invalidate(&self, stale: &Token) -> bool {
        let mut current = self.current.lock().await;
        let still_current = current
            .as_ref()
            .is_some_and(|t| t.value.expose() == stale.value.expose());
        if still_current {
            *current = None;
        }
        still_current
    }
}

async fn fetch(
    http: &reqwest::Client,
    base_url: &str,
    client_id: &str,
    secret: &Secret,
) -> Result<Token, MarketoError> {
    // A form body, not the query string: the secret must not end up in any URL (and so in
    // any log line or error message that prints one).
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret.expose()),
    ];
    let url = format!("{base_url}/identity/oauth/token");
    let response =
        http.post(&url).form(&form).send().await.map_err(|e| {
            crate::client::transport_error(base_url, "fetching an access token", &e)
        })?;
    let status = response.status();
    crate::client::redirected("fetching an access token", &response)?;
    let body = response
        .bytes()
        .await
        .map_err(|e| crate::client::transport_error(base_url, "fetching an access token", &e))?;
    let answer: Option<TokenAnswer> = serde_json::from_slice(&body).ok();
    match answer {
        Some(TokenAnswer {
            access_token: Some(token),
            expires_in,
            scope,
            ..
        }) if status.is_success() => {
            let lifetime = Duration::from_secs(expires_in.unwrap_or(3600));
            // A nearly-spent token (the identity endpoint returns the same token with
            // its remaining lifetime) is used for half of what is left.
            let usable = if lifetime > EARLY * 2 {
                lifetime - EARLY
            } else {
                lifetime / 2
            };
            Ok(Token {
                value: Secret::new(token),
                scope: scope.filter(|s| !s.trim().is_empty()),
                good_until: Instant::now() + usable,
            })
        }
        Some(TokenAnswer {
            error: Some(error),
            error_description,
            ..
        }) if status.as_u16() == 401 || status.as_u16() == 400 => Err(MarketoError::Credentials {
            detail: format!(
                "HTTP {}, {error}: {}",
                status.as_u16(),
                error_description.unwrap_or_default()
            ),
        }),
        _ if status.is_server_error() => Err(MarketoError::Api(crate::error::ApiFailure {
            operation: "fetching an access token".into(),
            status: status.as_u16(),
            code: None,
            message: crate::client::snippet(&body),
            earlier_attempt_may_have_run: false,
        })),
        _ => Err(MarketoError::Decode {
            operation: "fetching an access token".into(),
            detail: format!("HTTP {} without an access_token", status.as_u16()),
            snippet: crate::client::snippet(&body),
        }),
    }
}
