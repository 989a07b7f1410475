//! The invitation email and the page where an invitee sets a password.
//!
//! Real Marketo sends a "Marketo Login Information" email whose link leads to a page where
//! the invitee types a password twice and presses "Create Password"; only then is the user
//! active. The sandbox keeps the emails in a mailbox (`GET /sandbox/mailbox`) and serves the
//! page at each email's `acceptUrl`, so tests and people can walk the whole flow.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use roster_domain::marketo_time::format_dashed;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::server::App;
use super::store::{Caller, NewUser, UserRow};
use crate::clock::from_ms;

pub const SUBJECT: &str = "Marketo Login Information";
const MIN_PASSWORD_CHARS: usize = 8;

pub fn accept_url(base_url: &str, token: &str) -> String {
    format!("{base_url}/sandbox/accept/{token}")
}

pub async fn send_invitation(
    app: &App,
    caller: &Caller,
    user: &NewUser<'_>,
    token: &str,
    expires_at: i64,
) -> Result<(), ApiError> {
    let body = format!(
        "Hi {first},\n\n{from} has invited you to Marketo.\n\nLog in to Marketo: {{acceptUrl}}\n\n\
         Your login ID is {userid}. Choose a password on that page to activate your account.\n\
         This invitation expires on {expires}.\n",
        first = user.first_name,
        from = caller.email,
        userid = user.userid,
        expires = format_dashed(from_ms(expires_at)),
    );
    app.store
        .send_mail(
            user.email,
            &caller.email,
            SUBJECT,
            &body,
            Some(token),
            user.now,
        )
        .await?;
    Ok(())
}

#[derive(Deserialize)]
pub struct MailboxQuery {
    to: Option<String>,
}

/// `GET /sandbox/mailbox[?to=ADDRESS]`: every email the sandbox sent, oldest first.
pub async fn mailbox(
    State(app): State<Arc<App>>,
    Query(q): Query<MailboxQuery>,
) -> Result<Response, ApiError> {
    let mails = app.store.mailbox(q.to.as_deref()).await?;
    let items: Vec<Value> = mails
        .iter()
        .map(|m| {
            let url = m
                .invite_token
                .as_deref()
                .map(|t| accept_url(&app.base_url, t));
            json!({
                "id": m.id,
                "to": m.to,
                "from": m.from,
                "subject": m.subject,
                "body": m.body.replace("{acceptUrl}", url.as_deref().unwrap_or("")),
                "acceptUrl": url,
                "sentAt": format_dashed(from_ms(m.sent_at)),
            })
        })
        .collect();
    Ok(axum::Json(Value::Array(items)).into_response())
}

#[derive(Template)]
#[template(path = "marketo_accept.html")]
struct AcceptPage<'a> {
    title: &'a str,
    message: Option<String>,
    error: Option<String>,
    form: bool,
    userid: &'a str,
    action: String,
}

fn page(status: StatusCode, page: AcceptPage<'_>) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => ApiError::internal(err).into_response(),
    }
}

/// The invitation behind a link if it can still be accepted, or else the page that says why not.
async fn find(app: &App, token: &str) -> Result<Result<UserRow, Response>, ApiError> {
    let (status, title, message) = match app.store.user_by_invite_token(token).await? {
        None => (
            StatusCode::NOT_FOUND,
            "Invitation not found",
            "This invitation link is not valid. It may have been withdrawn; ask your Marketo administrator.",
        ),
        Some(user) if !user.pending => (
            StatusCode::CONFLICT,
            "Invitation already accepted",
            "This invitation has already been accepted. Log in with the password you chose.",
        ),
        Some(user)
            if user
                .invite_expires_at
                .is_some_and(|t| t <= app.clock.now_ms()) =>
        {
            (
                StatusCode::GONE,
                "Invitation expired",
                "This invitation has expired. Ask your Marketo administrator to send a new one.",
            )
        }
        Some(user) => return Ok(Ok(user)),
    };
    Ok(Err(page(
        status,
        AcceptPage {
            title,
            message: None,
            error: Some(message.into()),
            form: false,
            userid: "",
            action: String::new(),
        },
    )))
}

fn form_page(status: StatusCode, user: &UserRow, token: &str, error: Option<String>) -> Response {
    page(
        status,
        AcceptPage {
            title: "Create your Marketo password",
            message: Some(format!(
                "Welcome, {}. Choose a password to activate your account.",
                user.first_name
            )),
            error,
            form: true,
            userid: &user.userid,
            action: format!("/sandbox/accept/{token}"),
        },
    )
}

pub async fn show(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let user = match find(&app, &token).await? {
        Ok(user) => user,
        Err(closed_page) => return Ok(closed_page),
    };
    Ok(form_page(StatusCode::OK, &user, &token, None))
}

pub async fn accept(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Form(fields): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let _write = app.store.write_guard().await;
    let user = match find(&app, &token).await? {
        Ok(user) => user,
        Err(closed_page) => return Ok(closed_page),
    };
    let password = fields.get("password").map(String::as_str).unwrap_or("");
    let confirm = fields
        .get("confirmPassword")
        .map(String::as_str)
        .unwrap_or("");
    if let Err(problem) = check_password(password, confirm, &user.userid) {
        return Ok(form_page(
            StatusCode::BAD_REQUEST,
            &user,
            &token,
            Some(problem.into()),
        ));
    }
    let owned = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    app.store
        .accept_invite(user.id, &hash, app.clock.now_ms())
        .await?;
    tracing::info!(userid = %user.userid, "marketo sandbox invitation accepted");
    Ok(page(
        StatusCode::OK,
        AcceptPage {
            title: "Password created",
            message: Some(format!(
                "Your password has been created. {} can now log in to Marketo.",
                user.userid
            )),
            error: None,
            form: false,
            userid: &user.userid,
            action: String::new(),
        },
    ))
}

fn check_password(password: &str, confirm: &str, userid: &str) -> Result<(), &'static str> {
    if password.is_empty() {
        return Err("Enter a password in both fields.");
    }
    if password != confirm {
        return Err("The passwords do not match. Type the same password in both fields.");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("The password is too short: use at least 8 characters.");
    }
    if !password.chars().any(char::is_alphabetic) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Err("The password must contain at least one letter and one number.");
    }
    if password.eq_ignore_ascii_case(userid) {
        return Err("The password must not be your login ID.");
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::check_password;

    #[test]
    fn password_rules() {
        assert!(check_password("Sunshine42", "Sunshine42", "a@b.co").is_ok());
        assert!(
            check_password("Sunshine42", "Sunshine43", "a@b.co")
                .unwrap_err()
                .contains("do not match")
        );
        assert!(
            check_password("Sun42", "Sun42", "a@b.co")
                .unwrap_err()
                .contains("too short")
        );
        assert!(
            check_password("sunshinesun", "sunshinesun", "a@b.co")
                .unwrap_err()
                .contains("letter and one number")
        );
        assert!(check_password("", "", "a@b.co").is_err());
    }
}
