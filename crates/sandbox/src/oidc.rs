//! A small OpenID Connect provider: discovery, an authorization endpoint with a sign-in form,
//! and a token endpoint issuing HS256-signed ID tokens for the authorization code flow with
//! PKCE. It stands in for Okta, Entra ID or Keycloak so the console's single sign-on runs
//! offline and in tests. State is in memory: codes are single-use and last a minute.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A person who can sign in at the provider.
#[derive(Clone)]
pub struct IdpUser {
    pub username: String,
    pub password: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
}

impl std::fmt::Debug for IdpUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct OidcConfig {
    pub listen: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    /// Exact redirect URIs the client may use.
    pub redirect_uris: Vec<String>,
    pub users: Vec<IdpUser>,
}

struct Grant {
    user: IdpUser,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
    issued: std::time::Instant,
}

struct Idp {
    issuer: String,
    config: OidcConfig,
    codes: Mutex<HashMap<String, Grant>>,
}

pub struct RunningIdp {
    issuer: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningIdp {
    /// `http://127.0.0.1:PORT`: the issuer, and the base of every endpoint.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

pub async fn start(config: OidcConfig) -> Result<RunningIdp, crate::marketo::SandboxError> {
    let (listener, issuer) = crate::listen(config.listen).await?;
    let idp = Arc::new(Idp {
        issuer: issuer.clone(),
        config,
        codes: Mutex::default(),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize_form).post(authorize))
        .route("/token", axum::routing::post(token))
        .with_state(idp);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        roster_http::serve(listener, app, async {
            let _ = stopped.await;
        })
        .await;
    });
    Ok(RunningIdp {
        issuer,
        stop: Some(stop),
        task,
    })
}

async fn discovery(State(idp): State<Arc<Idp>>) -> Response {
    let i = &idp.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "claims_supported": ["sub", "email", "email_verified", "name", "groups"],
    }))
    .into_response()
}

#[derive(Deserialize, Default)]
struct AuthorizeRequest {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
    nonce: Option<String>,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// What is wrong with the request before any sign-in, shown to the person (never redirected
/// to an unchecked URI).
fn check(idp: &Idp, r: &AuthorizeRequest) -> Result<(), String> {
    if r.client_id != idp.config.client_id {
        return Err(format!("unknown client_id {:?}", r.client_id));
    }
    if !idp.config.redirect_uris.contains(&r.redirect_uri) {
        return Err(format!(
            "redirect_uri {:?} is not registered",
            r.redirect_uri
        ));
    }
    if r.response_type != "code" {
        return Err("only response_type=code is supported".into());
    }
    if !r.scope.split(' ').any(|s| s == "openid") {
        return Err("scope must include openid".into());
    }
    if r.code_challenge.is_empty() || r.code_challenge_method != "S256" {
        return Err("PKCE with code_challenge_method=S256 is required".into());
    }
    Ok(())
}

fn form(r: &AuthorizeRequest, message: Option<&str>) -> String {
    let hidden: String = [
        ("response_type", r.response_type.as_str()),
        ("client_id", &r.client_id),
        ("redirect_uri", &r.redirect_uri),
        ("scope", &r.scope),
        ("state", &r.state),
        ("nonce", r.nonce.as_deref().unwrap_or_default()),
        ("code_challenge", &r.code_challenge),
        ("code_challenge_method", &r.code_challenge_method),
    ]
    .iter()
    .map(|(k, v)| {
        format!(
            "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
            escape(v)
        )
    })
    .collect();
    format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Sandbox identity provider</title>\
         <h1>Sandbox identity provider</h1>{}\
         <form method=\"post\" action=\"/authorize\">{hidden}\
         <label for=\"username\">Username</label> <input id=\"username\" name=\"username\" autocomplete=\"username\"><br>\
         <label for=\"password\">Password</label> <input id=\"password\" name=\"password\" type=\"password\"><br>\
         <button type=\"submit\" id=\"idp-sign-in\">Sign in</button></form></html>",
        message.map_or(String::new(), |m| format!(
            "<p id=\"idp-error\">{}</p>",
            escape(m)
        ))
    )
}

async fn authorize_form(
    State(idp): State<Arc<Idp>>,
    Query(r): Query<AuthorizeRequest>,
) -> Response {
    match check(&idp, &r) {
        Ok(()) => Html(form(&r, None)).into_response(),
        Err(why) => (
            StatusCode::BAD_REQUEST,
            Html(format!("<p>{}</p>", escape(&why))),
        )
            .into_response(),
    }
}

async fn authorize(State(idp): State<Arc<Idp>>, Form(r): Form<AuthorizeRequest>) -> Response {
    if let Err(why) = check(&idp, &r) {
        return (
            StatusCode::BAD_REQUEST,
            Html(format!("<p>{}</p>", escape(&why))),
        )
            .into_response();
    }
    let Some(user) = idp
        .config
        .users
        .iter()
        .find(|u| u.username == r.username && u.password == r.password)
    else {
        return (
            StatusCode::UNAUTHORIZED,
            Html(form(&r, Some("Wrong username or password."))),
        )
            .into_response();
    };
    let code = uuid::Uuid::new_v4().simple().to_string();
    idp.codes.lock().expect("codes").insert(
        code.clone(),
        Grant {
            user: user.clone(),
            redirect_uri: r.redirect_uri.clone(),
            nonce: r.nonce.clone().filter(|n| !n.is_empty()),
            challenge: r.code_challenge.clone(),
            issued: std::time::Instant::now(),
        },
    );
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("code", &code);
    if !r.state.is_empty() {
        q.append_pair("state", &r.state);
    }
    Redirect::to(&format!("{}?{}", r.redirect_uri, q.finish())).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_verifier: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The client's id and secret: HTTP Basic (RFC 6749 2.3.1), or the form's fields.
fn client(headers: &HeaderMap, r: &TokenRequest) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let un = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Some((un(id), un(secret)));
    }
    Some((r.client_id.clone()?, r.client_secret.clone()?))
}

async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Form(r): Form<TokenRequest>,
) -> Response {
    let ok_client = client(&headers, &r).is_some_and(|(id, secret)| {
        id == idp.config.client_id && secret == idp.config.client_secret
    });
    if !ok_client {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    if r.grant_type != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    // Single use: taken out whatever happens next.
    let Some(grant) = idp.codes.lock().expect("codes").remove(&r.code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown or used code",
        );
    };
    if grant.issued.elapsed() > std::time::Duration::from_secs(60) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the code expired");
    }
    if grant.redirect_uri != r.redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri differs",
        );
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(r.code_verifier.as_bytes()));
    if challenge != grant.challenge {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE verification failed",
        );
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let u = &grant.user;
    let mut claims = json!({
        "iss": idp.issuer,
        "sub": u.username,
        "aud": idp.config.client_id,
        "iat": now,
        "exp": now + 300,
        "email": u.email,
        "email_verified": true,
        "name": u.name,
        "groups": u.groups,
    });
    if let Some(n) = &grant.nonce {
        claims["nonce"] = Value::String(n.clone());
    }
    axum::Json(json!({
        "access_token": uuid::Uuid::new_v4().simple().to_string(),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": jwt(&claims, &idp.config.client_secret),
    }))
    .into_response()
}

/// An HS256 JWT: signed with the client secret, as OpenID Connect allows for confidential
/// clients.
fn jwt(claims: &Value, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signing.as_bytes()).as_ref());
    format!("{signing}.{sig}")
}
