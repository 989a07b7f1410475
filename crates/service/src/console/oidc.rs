//! Sign-in through an OpenID Connect provider: the authorization code flow with PKCE, a
//! `state` and a `nonce`, then the ID token's claims mapped to a Roster role.
//!
//! The ID token comes straight from the provider's token endpoint over TLS in exchange for
//! the code and the client secret, so, as OpenID Connect Core 3.1.3.7 (6) allows, the TLS
//! check of that endpoint stands in for checking the token's signature; issuer, audience,
//! expiry and nonce are all checked. Plain http is accepted only for a provider on this
//! machine.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use time::OffsetDateTime;

use super::{SESSION, random, same, secure, set_cookie, sign_in_form};
use crate::Shared;
use crate::config::{OidcConfig, loopback_or_https};
use crate::tokens::Role;

/// Holds state, nonce and PKCE verifier between the redirect out and the callback.
const FLOW: &str = "roster_oidc";
/// Clock skew allowed on `exp` and `iat`.
const SKEW: i64 = 120;

pub(super) fn routes() -> axum::Router<Arc<Shared>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/console/oidc/start", get(start))
        .route("/console/oidc/callback", get(callback))
}

/// The flow cookie is `SameSite=Lax`: the provider sends the browser back with a top-level
/// cross-site GET, which a `Strict` cookie would not travel with.
fn flow_cookie(value: &str, secure: bool, max_age: u64) -> HeaderValue {
    let c = cookie::Cookie::build((FLOW, value))
        .path("/console/oidc")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age as i64))
        .secure(secure);
    HeaderValue::from_str(&c.to_string()).expect("cookie values are plain ASCII")
}

struct Endpoints {
    authorization: String,
    token: String,
}

fn http() -> reqwest::Client {
    roster_http::client_builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// The provider's endpoints, from its discovery document.
async fn discover(c: &OidcConfig) -> Result<Endpoints, String> {
    let url = format!("{}/.well-known/openid-configuration", c.issuer);
    let doc: Value = http()
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("cannot read the provider's discovery document {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("the provider's discovery document {url} is not JSON: {e}"))?;
    if doc["issuer"].as_str().map(|i| i.trim_end_matches('/')) != Some(c.issuer.as_str()) {
        return Err(format!(
            "the provider's discovery document names issuer {}, not the configured {}; set [console.oidc] issuer to the provider's exact issuer",
            doc["issuer"], c.issuer
        ));
    }
    let endpoint = |key: &str| {
        doc[key]
            .as_str()
            .filter(|u| loopback_or_https(u))
            .map(String::from)
            .ok_or_else(|| {
                format!(
                    "the provider's discovery document has no https {key} ({})",
                    doc[key]
                )
            })
    };
    Ok(Endpoints {
        authorization: endpoint("authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
    })
}

fn not_available(shared: &Shared, headers: &HeaderMap, why: &str) -> Response {
    tracing::warn!("OpenID Connect sign-in: {why}");
    sign_in_form(
        shared,
        StatusCode::BAD_GATEWAY,
        headers,
        Some(format!(
            "Single sign-on did not work: {why}. Sign in with a local account, or ask an administrator."
        )),
    )
}

async fn start(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(c) = &shared.config.console.oidc else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let endpoints = match discover(c).await {
        Ok(e) => e,
        Err(why) => return not_available(&shared, &headers, &why),
    };
    let (state, nonce, verifier) = (random(), random(), random());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &c.client_id)
        .append_pair("redirect_uri", &c.redirect_url)
        .append_pair("scope", &c.scopes)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let sep = if endpoints.authorization.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut r = Redirect::to(&format!("{}{sep}{query}", endpoints.authorization)).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        flow_cookie(
            &format!("{state}.{nonce}.{verifier}"),
            secure(&headers),
            600,
        ),
    );
    r
}

fn form_encoded(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The claims of a JWT, read without its signature (see the module's comment for why).
fn claims(id_token: &str) -> Result<Value, String> {
    let payload = id_token
        .split('.')
        .nth(1)
        .ok_or("the ID token is not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the ID token's payload is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "the ID token's payload is not JSON".into())
}

/// Checks the ID token's claims against the configuration and the flow; the person's name
/// and role, or why not.
pub fn check_claims(
    c: &OidcConfig,
    claims: &Value,
    nonce: &str,
    now: OffsetDateTime,
) -> Result<(String, Role), String> {
    if claims["iss"].as_str().map(|i| i.trim_end_matches('/')) != Some(c.issuer.as_str()) {
        return Err(format!(
            "the ID token's issuer {} is not {}",
            claims["iss"], c.issuer
        ));
    }
    let audience_ok = match &claims["aud"] {
        Value::String(a) => *a == c.client_id,
        Value::Array(list) => {
            list.iter().any(|a| a.as_str() == Some(&c.client_id))
                && (list.len() == 1 || claims["azp"].as_str() == Some(&c.client_id))
        }
        _ => false,
    };
    if !audience_ok {
        return Err("the ID token was not issued to this client".into());
    }
    let now = now.unix_timestamp();
    match claims["exp"].as_i64() {
        Some(exp) if exp + SKEW > now => {}
        _ => return Err("the ID token has expired".into()),
    }
    if claims["iat"].as_i64().is_some_and(|iat| iat > now + SKEW) {
        return Err("the ID token was issued in the future; check the clocks".into());
    }
    if !claims["nonce"].as_str().is_some_and(|n| same(n, nonce)) {
        return Err("the ID token's nonce does not match this sign-in".into());
    }
    if claims["email_verified"] == Value::Bool(false) && c.name_claim == "email" {
        return Err("the provider says this email address is not verified".into());
    }
    let name = claims[&c.name_claim]
        .as_str()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("the ID token has no {} claim to name you by", c.name_claim))?
        .to_lowercase();
    let values: Vec<&str> = match &claims[&c.role_claim] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let role = c
        .roles
        .iter()
        .filter(|(claim, _)| values.contains(&claim.as_str()))
        .map(|(_, r)| *r)
        .max()
        .or(c.default_role)
        .ok_or_else(|| {
            format!(
                "{name} signed in, but no value of their {} claim maps to a Roster role; an administrator can add one under [console.oidc.roles]",
                c.role_claim
            )
        })?;
    Ok((name, role))
}

async fn callback(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(c) = &shared.config.console.oidc else {
        return Redirect::to("/console/sign-in").into_response();
    };
    let refused = |status: StatusCode, why: &str| {
        tracing::warn!("OpenID Connect sign-in refused: {why}");
        let mut r = sign_in_form(
            &shared,
            status,
            &headers,
            Some(format!("Single sign-on refused: {why}.")),
        );
        r.headers_mut()
            .append(header::SET_COOKIE, flow_cookie("", secure(&headers), 0));
        r
    };
    if let Some(e) = &q.error {
        let detail = q.error_description.as_deref().unwrap_or_default();
        return refused(
            StatusCode::UNAUTHORIZED,
            format!("the provider answered {e} {detail}").trim_end(),
        );
    }
    let flow = super::cookie(&headers, FLOW).unwrap_or_default();
    let mut parts = flow.splitn(3, '.');
    let (Some(state), Some(nonce), Some(verifier)) = (parts.next(), parts.next(), parts.next())
    else {
        return refused(
            StatusCode::FORBIDDEN,
            "this sign-in was not started here, or took longer than 10 minutes",
        );
    };
    if !q.state.as_deref().is_some_and(|s| same(s, state)) {
        return refused(
            StatusCode::FORBIDDEN,
            "the state does not match this sign-in",
        );
    }
    let Some(code) = q.code.as_deref() else {
        return refused(StatusCode::BAD_REQUEST, "the provider sent no code");
    };
    let endpoints = match discover(c).await {
        Ok(e) => e,
        Err(why) => return not_available(&shared, &headers, &why),
    };
    let answer = http()
        .post(&endpoints.token)
        // RFC 6749 2.3.1: id and secret are form-encoded before they go into Basic.
        .basic_auth(
            form_encoded(&c.client_id),
            Some(form_encoded(c.client_secret.expose())),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &c.redirect_url),
            ("code_verifier", verifier),
        ])
        .send()
        .await;
    let body: Value = match answer {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        Ok(r) => {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            return refused(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "the provider's token endpoint answered {status} {}",
                    body["error"].as_str().unwrap_or_default()
                ),
            );
        }
        Err(e) => {
            return not_available(
                &shared,
                &headers,
                &format!("cannot reach the token endpoint: {e}"),
            );
        }
    };
    let Some(id_token) = body["id_token"].as_str() else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "the provider returned no ID token",
        );
    };
    let (name, role) = match claims(id_token)
        .and_then(|cl| check_claims(c, &cl, nonce, OffsetDateTime::now_utc()))
    {
        Ok(v) => v,
        Err(why) => return refused(StatusCode::FORBIDDEN, &why),
    };
    let now = OffsetDateTime::now_utc();
    let user = match shared.store.oidc_user(&name, role.as_str(), now).await {
        Ok(u) => u,
        Err(e @ roster_store::StoreError::Duplicate { .. }) => {
            return refused(
                StatusCode::CONFLICT,
                &format!("{e} (a local account already has the name {name})"),
            );
        }
        Err(e) => {
            tracing::error!("OpenID Connect sign-in: {e}");
            return not_available(&shared, &headers, "the state could not record the sign-in");
        }
    };
    let (id, csrf) = (random(), random());
    if let Err(e) = shared
        .store
        .start_session(
            user.id,
            &roster_domain::sha256::hex(id.as_bytes()),
            &csrf,
            now,
        )
        .await
    {
        tracing::error!("OpenID Connect sign-in: {e}");
        return not_available(&shared, &headers, "the state could not record the sign-in");
    }
    tracing::info!(user = %name, role = role.as_str(), "console sign-in through OpenID Connect");
    // A page, not a redirect: the browser arrived here from the provider (cross-site), and a
    // `SameSite=Strict` session cookie is only sent once the navigation starts on this site.
    let mut r = super::message_page(
        StatusCode::OK,
        "Signed in",
        &format!("Signed in as {name} ({}).", role.as_str()),
        Some(("/console", "Continue to the console")),
    );
    let h = r.headers_mut();
    h.insert(header::REFRESH, HeaderValue::from_static("0; url=/console"));
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION, &id, secure(&headers), None),
    );
    h.append(header::SET_COOKIE, flow_cookie("", secure(&headers), 0));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            client_id: "roster".into(),
            client_secret: roster_domain::Secret::new("s"),
            redirect_url: "https://roster.example/console/oidc/callback".into(),
            scopes: "openid email".into(),
            role_claim: "groups".into(),
            name_claim: "email".into(),
            roles: vec![
                ("it-viewers".into(), Role::Viewer),
                ("it-approvers".into(), Role::Approver),
            ],
            default_role: None,
            label: "SSO".into(),
        }
    }

    fn good(now: i64) -> Value {
        json!({"iss": "https://idp.example", "aud": "roster", "exp": now + 300, "iat": now,
            "nonce": "n1", "email": "Ann@Example.com", "groups": ["it-viewers", "it-approvers"]})
    }

    #[test]
    fn the_highest_mapped_role_wins_and_every_claim_is_checked() {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let c = config();
        assert_eq!(
            check_claims(&c, &good(t), "n1", now),
            Ok(("ann@example.com".into(), Role::Approver))
        );
        let with = |key: &str, v: Value| {
            let mut claims = good(t);
            claims[key] = v;
            check_claims(&c, &claims, "n1", now).unwrap_err()
        };
        assert!(with("iss", json!("https://evil.example")).contains("issuer"));
        assert!(with("aud", json!("someone-else")).contains("not issued to this client"));
        assert!(
            with("aud", json!(["roster", "other"])).contains("not issued"),
            "azp needed"
        );
        assert!(with("exp", json!(t - 3600)).contains("expired"));
        assert!(with("nonce", json!("n2")).contains("nonce"));
        assert!(with("groups", json!(["sales"])).contains("[console.oidc.roles]"));
        assert!(with("email_verified", json!(false)).contains("not verified"));
        let mut claims = good(t);
        claims["groups"] = json!("it-viewers");
        assert_eq!(
            check_claims(&c, &claims, "n1", now).unwrap().1,
            Role::Viewer
        );
        let fallback = OidcConfig {
            default_role: Some(Role::Viewer),
            ..config()
        };
        claims["groups"] = json!(["sales"]);
        assert_eq!(
            check_claims(&fallback, &claims, "n1", now).unwrap().1,
            Role::Viewer
        );
    }

    #[test]
    fn a_token_that_is_not_a_jwt_is_refused() {
        assert!(claims("not-a-token").is_err());
        assert!(claims("a.!!!.c").is_err());
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        assert_eq!(claims(&format!("h.{payload}.s")).unwrap()["iss"], "x");
    }
}
