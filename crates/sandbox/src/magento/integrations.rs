//! How stores are really signed in to, besides an admin's password:
//!
//! - **Two-factor authentication** (`Magento_TwoFactorAuth`, on by default since 2.4): with
//!   `tfa`, `POST /V1/integration/admin/token` checks the password, then refuses with "Please
//!   use the 2fa provider-specific endpoints to obtain a token." and the admin's providers;
//!   `POST /V1/tfa/provider/google/authenticate` `{username, password, otp}` answers the token
//!   when the Google Authenticator code (RFC 6238: SHA-1, 6 digits, 30 s, one step either
//!   side) is right, else 401 "Invalid code.".
//! - **Integrations** (System > Extensions > Integrations): four values, a consumer key and
//!   secret and an access token and secret. The access token works as a bearer token only
//!   where "Allow OAuth Access Tokens to be used as standalone Bearer tokens" is on (off by
//!   default since 2.4.4: the call is then a guest's, 401 "The consumer isn't authorized to
//!   access %resources."); OAuth 1.0a signed calls (HMAC-SHA256, the one method current
//!   Magento supports) always work. Nonces are single-use per consumer and timestamps must
//!   be within 600 s.
//!
//! The verification here is written independently of Roster's connector, so that a mistake
//! in one is not mirrored in the other.

use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use base64::Engine;
use serde_json::{Value, json};
use sqlx::Row;

use super::error::{MagentoError, Result};
use super::server::App;

/// Set by the dispatcher once an OAuth signature checks out; stripped from every request
/// first, so a client cannot send it.
pub const VERIFIED_INTEGRATION: &str = "x-sandbox-verified-integration";

/// Tables added after the first schema, created where missing.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tfa_secrets (
    admin_id INTEGER PRIMARY KEY,
    secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS integrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    consumer_key TEXT NOT NULL UNIQUE,
    consumer_secret TEXT NOT NULL,
    access_token TEXT NOT NULL UNIQUE,
    token_secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_nonces (
    consumer_key TEXT NOT NULL,
    nonce TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    PRIMARY KEY (consumer_key, nonce)
);
";

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn random_text(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(fastrand::u32(0..36), 36).expect("a base-36 digit"))
        .collect()
}

/// A new Google Authenticator secret: 20 random bytes in base32, as Magento shows it.
fn new_secret() -> String {
    let bytes: Vec<u8> = (0..20).map(|_| fastrand::u8(..)).collect();
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    out
}

fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let v = BASE32.iter().position(|&b| b == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The 6-digit code of `secret` for the 30-second step `step`.
fn code(secret: &[u8], step: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, &step.to_be_bytes());
    let digest = tag.as_ref();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

/// The admin's secret, creating one if it has none (what setting up 2FA does).
pub async fn ensure_secret(app_store: &super::store::Store, admin_id: i64) -> Result<String> {
    if let Some(s) = secret_of(app_store, admin_id).await? {
        return Ok(s);
    }
    let secret = new_secret();
    sqlx::query("INSERT INTO tfa_secrets (admin_id, secret) VALUES (?, ?)")
        .bind(admin_id)
        .bind(&secret)
        .execute(&app_store.pool)
        .await?;
    Ok(secret)
}

async fn secret_of(store: &super::store::Store, admin_id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT secret FROM tfa_secrets WHERE admin_id = ?")
            .bind(admin_id)
            .fetch_optional(&store.pool)
            .await?,
    )
}

/// What `/V1/integration/admin/token` says, once the password is right, on a store with 2FA.
pub async fn refuse_plain_token(app: &App, admin_id: i64) -> MagentoError {
    match secret_of(&app.store, admin_id).await {
        Ok(Some(_)) => MagentoError::new(
            StatusCode::UNAUTHORIZED,
            "Please use the 2fa provider-specific endpoints to obtain a token.",
        )
        .with(json!({"active_providers": ["google"]})),
        Ok(None) => MagentoError::bad_request(
            "Please ask an administrator with sufficient access to configure 2FA first",
        ),
        Err(e) => e,
    }
}

/// `POST /V1/tfa/provider/google/authenticate`: the password, then the code.
pub async fn google_authenticate(app: &App, body: &Value) -> Result<String> {
    let otp = body
        .get("otp")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| MagentoError::required("otp"))?
        .to_string();
    let admin_id = super::auth::admin_password_ok(app, body).await?;
    let Some(secret) = secret_of(&app.store, admin_id).await? else {
        return Err(MagentoError::bad_request(
            "Please ask an administrator with sufficient access to configure 2FA first",
        ));
    };
    let key = decode_base32(&secret).ok_or_else(|| MagentoError::internal("bad stored secret"))?;
    let step = (app.clock.now_ms().max(0) as u64) / 30_000;
    let accepted = [step.saturating_sub(1), step, step + 1]
        .iter()
        .any(|s| code(&key, *s) == otp);
    if !accepted {
        return Err(MagentoError::new(StatusCode::UNAUTHORIZED, "Invalid code."));
    }
    super::auth::issue_admin_token(app, admin_id).await
}

/// The four values of a new integration.
pub struct Integration {
    pub name: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token: String,
    pub token_secret: String,
}

/// Creates and activates an integration (what an admin does under System > Integrations).
pub async fn create(store: &super::store::Store, name: &str, now_ms: i64) -> Result<Integration> {
    let made = Integration {
        name: name.to_string(),
        consumer_key: random_text(32),
        consumer_secret: random_text(32),
        access_token: random_text(32),
        token_secret: random_text(32),
    };
    sqlx::query(
        "INSERT INTO integrations (name, consumer_key, consumer_secret, access_token, token_secret, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&made.name)
    .bind(&made.consumer_key)
    .bind(&made.consumer_secret)
    .bind(&made.access_token)
    .bind(&made.token_secret)
    .bind(now_ms)
    .execute(&store.pool)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.message().contains("UNIQUE") => MagentoError::bad_request(
            format!("An integration named {name:?} already exists."),
        ),
        other => other.into(),
    })?;
    Ok(made)
}

/// Creates an integration in the sandbox whose data is in `data_dir`, running or not.
pub async fn create_in(
    data_dir: &std::path::Path,
    name: &str,
) -> std::result::Result<Integration, crate::marketo::SandboxError> {
    let (store, _) = super::store::Store::open(data_dir).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let made = create(&store, name, now)
        .await
        .map_err(|e| crate::marketo::SandboxError::Invalid(e.message));
    store.close().await;
    made
}

/// The integration whose access token this is, used as a bearer token, if the store allows it.
pub async fn by_bearer(app: &App, token: &str) -> Result<Option<i64>> {
    if !app.config.integration_as_bearer {
        return Ok(None);
    }
    Ok(
        sqlx::query_scalar("SELECT id FROM integrations WHERE access_token = ?")
            .bind(token)
            .fetch_optional(&app.store.pool)
            .await?,
    )
}

fn oauth_failure() -> MagentoError {
    MagentoError::new(
        StatusCode::UNAUTHORIZED,
        "The signature is invalid. Verify and try again.",
    )
}

/// RFC 3986 encoding: unreserved characters as they are, every other byte as %XX.
fn rfc3986(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Checks an `Authorization: OAuth ...` request; answers the integration's id.
pub async fn verify_oauth(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    authorization: &str,
) -> Result<i64> {
    let mut params: Vec<(String, String)> = Vec::new();
    for part in authorization.trim_start_matches("OAuth").split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        params.push((
            k.trim().to_string(),
            percent_decode(v.trim().trim_matches('"')),
        ));
    }
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    for required in [
        "oauth_consumer_key",
        "oauth_signature",
        "oauth_signature_method",
        "oauth_nonce",
        "oauth_timestamp",
        "oauth_token",
    ] {
        if get(required).is_none() {
            return Err(MagentoError::required(required));
        }
    }
    let method_name = get("oauth_signature_method").unwrap_or_default();
    if method_name != "HMAC-SHA256" {
        return Err(
            MagentoError::bad_request("Signature method %1 is not supported")
                .with(json!([method_name])),
        );
    }
    let consumer_key = get("oauth_consumer_key").unwrap_or_default();
    let row = sqlx::query(
        "SELECT id, consumer_secret, access_token, token_secret FROM integrations WHERE consumer_key = ?",
    )
    .bind(&consumer_key)
    .fetch_optional(&app.store.pool)
    .await?;
    let Some(row) = row else {
        return Err(MagentoError::new(
            StatusCode::UNAUTHORIZED,
            "A consumer having the specified key does not exist",
        ));
    };
    let (id, consumer_secret, access_token, token_secret): (i64, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if get("oauth_token").as_deref() != Some(access_token.as_str()) {
        return Err(MagentoError::new(
            StatusCode::UNAUTHORIZED,
            "Specified token does not exist",
        ));
    }
    let timestamp: i64 = get("oauth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            MagentoError::bad_request("Incorrect timestamp value in the oauth_timestamp parameter")
        })?;
    let now = app.clock.now_ms() / 1000;
    if (now - timestamp).abs() > 600 {
        return Err(MagentoError::new(
            StatusCode::UNAUTHORIZED,
            "The timestamp is out of the acceptable range",
        ));
    }
    // The base string: method, URL without query, every query and protocol parameter.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_ascii_lowercase();
    let host = host.strip_suffix(":80").unwrap_or(&host);
    let url = format!("http://{host}{}", uri.path());
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (rfc3986(&k), rfc3986(&v)))
            .collect();
    for (k, v) in &params {
        if k != "oauth_signature" && k != "realm" {
            pairs.push((rfc3986(k), rfc3986(v)));
        }
    }
    pairs.sort();
    let normalized: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let base = format!(
        "{}&{}&{}",
        method.as_str(),
        rfc3986(&url),
        rfc3986(&normalized.join("&"))
    );
    let key = format!("{}&{}", rfc3986(&consumer_secret), rfc3986(&token_secret));
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
        base.as_bytes(),
    );
    let expected = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    if get("oauth_signature").as_deref() != Some(expected.as_str()) {
        return Err(oauth_failure());
    }
    let nonce = get("oauth_nonce").unwrap_or_default();
    let fresh = sqlx::query(
        "INSERT INTO oauth_nonces (consumer_key, nonce, timestamp) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(&consumer_key)
    .bind(&nonce)
    .bind(timestamp)
    .execute(&app.store.pool)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Err(MagentoError::new(
            StatusCode::UNAUTHORIZED,
            "The nonce is already being used by the consumer with ID %1",
        )
        .with(json!([id])));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890", T = 59 s: 94287082
        // (8 digits); its last 6 digits are the 6-digit code.
        assert_eq!(code(b"12345678901234567890", 59 / 30), "287082");
        assert_eq!(code(b"12345678901234567890", 1_111_111_109 / 30), "081804");
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        assert_eq!(decode_base32(&secret).unwrap().len(), 20);
        assert_eq!(
            decode_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap(),
            b"12345678901234567890"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(rfc3986("a b+c/~[0]"), "a%20b%2Bc%2F~%5B0%5D");
    }
}
