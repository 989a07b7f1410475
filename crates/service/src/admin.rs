//! Administration of Roster itself: console accounts, API tokens and SCIM tokens.
//!
//! `roster serve user|token|scim-token` and the console's admin page both change them
//! through here, so a change is checked, refused and logged the same way whoever makes it:
//! every change is a signed line of the audit log naming who made it.

use std::time::Duration;

use roster_store::StateStore;
use time::OffsetDateTime;

use crate::tokens::{self, Role};

/// Why an administrative change was refused; each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] roster_store::StoreError),
}

impl AdminError {
    fn refused(text: impl Into<String>) -> Self {
        Self::Refused(text.into())
    }

    /// Whether the change was refused for what was asked (a name in use included), not
    /// failed: the asker can do something about it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Refused(_) | Self::Store(roster_store::StoreError::Duplicate { .. })
        )
    }
}

pub type Result<T> = std::result::Result<T, AdminError>;

/// Console passwords are at least this long.
pub const MIN_PASSWORD: usize = 12;

/// Who makes the changes: a console account's name, or (`None`) the operating-system user
/// running the CLI.
#[derive(Clone, Copy)]
pub struct Admin<'a> {
    store: &'a StateStore,
    actor: Option<&'a str>,
}

/// A token to make.
pub struct NewToken<'a> {
    pub name: &'a str,
    pub role: &'a str,
    /// The console account it acts for; `None`: a service account known by `name`.
    pub account: Option<&'a str>,
    pub expires: Option<Duration>,
}

/// A token made: its text, shown once, and when it stops working.
pub struct MadeToken {
    pub token: String,
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for MadeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MadeToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

fn no_account(name: &str) -> AdminError {
    AdminError::refused(format!(
        "no console account {name:?}; `roster serve user list` (or the console's Admin page) shows them"
    ))
}

fn later(now: OffsetDateTime, by: Duration, what: &str) -> Result<OffsetDateTime> {
    time::Duration::try_from(by)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(|| AdminError::refused(format!("{what} is too far away")))
}

impl<'a> Admin<'a> {
    pub fn new(store: &'a StateStore, actor: Option<&'a str>) -> Self {
        Self { store, actor }
    }

    /// A change to who may use the service, in the audit log as every change is.
    async fn log(&self, action: &str, target: &str, detail: String) -> Result<()> {
        let actor = roster_engine::actor::Actor::resolve(self.actor);
        let mut line = actor.log("roster", action, target, "done");
        line.detail = Some(detail);
        self.store
            .append_log(&line, OffsetDateTime::now_utc())
            .await?;
        Ok(())
    }

    async fn admins_left_without(&self, name: &str) -> Result<usize> {
        Ok(self
            .store
            .console_users()
            .await?
            .iter()
            .filter(|u| u.role == "admin" && !u.name.eq_ignore_ascii_case(name))
            .count())
    }

    /// Adds a console account with a password (at least [`MIN_PASSWORD`] characters).
    pub async fn add_user(&self, name: &str, role: &str, password: String) -> Result<()> {
        tokens::check_name(name).map_err(AdminError::Refused)?;
        check_role(role)?;
        check_password(&password)?;
        let hash = hash_password(password).await;
        self.store
            .add_console_user(name, role, &hash, OffsetDateTime::now_utc())
            .await?;
        self.log(
            "add console user",
            name,
            format!("console account {name} ({role}) added"),
        )
        .await
    }

    /// Removes a console account: it is signed out and its API tokens stop working. The
    /// last admin is kept, so someone can still administer the service.
    pub async fn remove_user(&self, name: &str) -> Result<()> {
        let user = self
            .store
            .console_user(name)
            .await?
            .ok_or_else(|| no_account(name))?;
        if user.role == "admin" && self.admins_left_without(name).await? == 0 {
            return Err(AdminError::refused(format!(
                "{name:?} is the last admin; make another account admin first, or no one could administer the service"
            )));
        }
        if !self.store.remove_console_user(name).await? {
            return Err(no_account(name));
        }
        self.log(
            "remove console user",
            name,
            format!("console account {name} removed"),
        )
        .await
    }

    /// Sets a new password: the account is unlocked and signed out everywhere.
    pub async fn set_password(&self, name: &str, password: String) -> Result<()> {
        let user = self
            .store
            .console_user(name)
            .await?
            .ok_or_else(|| no_account(name))?;
        if user.password_hash == roster_store::OIDC_ACCOUNT {
            return Err(AdminError::refused(format!(
                "{name:?} signs in through single sign-on; its password is the identity provider's"
            )));
        }
        check_password(&password)?;
        let hash = hash_password(password).await;
        self.store.set_console_password(name, &hash).await?;
        self.log(
            "set console password",
            name,
            format!("a new password for console account {name}"),
        )
        .await
    }

    pub async fn unlock_user(&self, name: &str) -> Result<()> {
        if !self.store.unlock_console_user(name).await? {
            return Err(no_account(name));
        }
        self.log(
            "unlock console user",
            name,
            format!("console account {name} unlocked"),
        )
        .await
    }

    /// Gives an account another role; returns the one it had. The last admin keeps theirs.
    pub async fn set_role(&self, name: &str, role: &str) -> Result<String> {
        check_role(role)?;
        let before = self
            .store
            .console_user(name)
            .await?
            .ok_or_else(|| no_account(name))?;
        if before.role == "admin" && role != "admin" && self.admins_left_without(name).await? == 0 {
            return Err(AdminError::refused(format!(
                "{name:?} is the last admin; make another account admin first, or no one could administer the service"
            )));
        }
        self.store.set_console_role(name, role).await?;
        self.log(
            "set console role",
            name,
            format!("console account {name}: {} -> {role}", before.role),
        )
        .await?;
        Ok(before.role)
    }

    /// Makes an API token; only its SHA-256 is kept.
    pub async fn create_token(&self, t: NewToken<'_>) -> Result<MadeToken> {
        tokens::check_name(t.name).map_err(AdminError::Refused)?;
        check_role(t.role)?;
        self.check_token_holder(t.name, t.role, t.account).await?;
        let now = OffsetDateTime::now_utc();
        let expires_at = t.expires.map(|d| later(now, d, "the expiry")).transpose()?;
        let token = tokens::generate();
        self.store
            .add_token_until(
                t.name,
                t.role,
                t.account,
                &tokens::hash(&token),
                now,
                expires_at,
            )
            .await?;
        let detail = format!(
            "{}{}",
            match t.account {
                Some(a) => format!(
                    "API token {} ({}) acting for console account {a}",
                    t.name, t.role
                ),
                None => format!("API token {} ({}), a service account", t.name, t.role),
            },
            expires_at
                .map(|at| format!(", expires {}", roster_engine::text::rfc3339(at)))
                .unwrap_or_default()
        );
        self.log("create token", t.name, detail).await?;
        Ok(MadeToken { token, expires_at })
    }

    /// A token acts for a console account with at most its role, or is a service account
    /// whose name is no console account's (it would pass for that person).
    async fn check_token_holder(
        &self,
        name: &str,
        role: &str,
        account: Option<&str>,
    ) -> Result<()> {
        if let Some(a) = account {
            let user = self
                .store
                .console_user(a)
                .await?
                .ok_or_else(|| {
                    AdminError::refused(format!(
                        "no console account {a:?} to make a token for; add the account first, or make a service token"
                    ))
                })?;
            if Role::parse(role) > Role::parse(&user.role) {
                return Err(AdminError::refused(format!(
                    "{a:?} is a console {}; a token acting for them cannot be {role}",
                    user.role
                )));
            }
        } else if self.store.console_user(name).await?.is_some() {
            return Err(AdminError::refused(format!(
                "{name:?} is a console account: a service token of that name would pass for them; make a token acting for {name}, or choose another name"
            )));
        }
        Ok(())
    }

    /// Rotates the live token `name` without downtime: a new token of the same name, role
    /// and holder works from now on; the old one keeps working for `overlap` (so the
    /// clients that use it can be given the new one), then stops. The new token lives as
    /// long as the old one was made to, unless `expires` says otherwise.
    pub async fn rotate_token(
        &self,
        name: &str,
        overlap: Duration,
        expires: Option<Duration>,
    ) -> Result<MadeToken> {
        if tokens::identity(name) != name {
            return Err(AdminError::refused(format!(
                "{name:?} is the old token of a rotation, working until its overlap ends; rotate {:?} instead, or revoke this one",
                tokens::identity(name)
            )));
        }
        let now = OffsetDateTime::now_utc();
        let old = self
            .store
            .tokens()
            .await?
            .into_iter()
            .find(|t| t.name == name && t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now))
            .ok_or_else(|| {
                AdminError::refused(format!(
                    "no live API token named {name:?} to rotate; `roster serve token list` shows them"
                ))
            })?;
        // The holder may have lost the role since; a rotation never outlives a demotion.
        self.check_token_holder(name, &old.role, old.account.as_deref())
            .await?;
        let old_until = later(now, overlap, "the overlap")?;
        let old_until = old.expires_at.map_or(old_until, |e| e.min(old_until));
        let expires_at = match (expires, old.expires_at) {
            (Some(d), _) => Some(later(now, d, "the expiry")?),
            (None, Some(e)) => Some(later(
                now,
                (e - old.created_at).unsigned_abs(),
                "the expiry",
            )?),
            (None, None) => None,
        };
        let token = tokens::generate();
        let retired = format!("{name}#rotated-{}", now.unix_timestamp());
        if !self
            .store
            .rotate_token(
                name,
                &retired,
                old_until,
                &tokens::hash(&token),
                now,
                expires_at,
            )
            .await?
        {
            return Err(AdminError::refused(format!(
                "the API token {name:?} was revoked or rotated meanwhile; nothing was changed"
            )));
        }
        self.log(
            "rotate token",
            name,
            format!(
                "API token {name} ({}) rotated: the old one works until {} as {retired}{}",
                old.role,
                roster_engine::text::rfc3339(old_until),
                expires_at
                    .map(|at| format!("; the new one expires {}", roster_engine::text::rfc3339(at)))
                    .unwrap_or_default()
            ),
        )
        .await?;
        Ok(MadeToken { token, expires_at })
    }

    pub async fn revoke_token(&self, name: &str) -> Result<()> {
        if !self
            .store
            .revoke_token(name, OffsetDateTime::now_utc())
            .await?
        {
            return Err(AdminError::refused(format!(
                "no live API token named {name:?}; `roster serve token list` shows them"
            )));
        }
        self.log("revoke token", name, format!("API token {name} revoked"))
            .await
    }

    /// Makes a SCIM connection's token for `instances` (empty: every instance).
    pub async fn create_scim_token(&self, name: &str, instances: &[String]) -> Result<String> {
        tokens::check_name(name).map_err(AdminError::Refused)?;
        let token = tokens::generate();
        self.store
            .add_scim_connection(
                name,
                &tokens::hash(&token),
                instances,
                OffsetDateTime::now_utc(),
            )
            .await?;
        self.log(
            "create SCIM token",
            name,
            format!(
                "SCIM connection {name} ({})",
                roster_store::ScimConnection::reach_of(instances)
            ),
        )
        .await?;
        Ok(token)
    }

    pub async fn revoke_scim_token(&self, name: &str) -> Result<()> {
        if !self
            .store
            .revoke_scim_connection(name, OffsetDateTime::now_utc())
            .await?
        {
            return Err(AdminError::refused(format!(
                "no live SCIM connection named {name:?}; `roster serve scim-token list` shows them"
            )));
        }
        self.log(
            "revoke SCIM token",
            name,
            format!("SCIM connection {name} revoked"),
        )
        .await
    }
}

fn check_role(role: &str) -> Result<()> {
    if Role::parse(role).is_some() {
        Ok(())
    } else {
        Err(AdminError::refused(format!(
            "{role:?} is not a role; use one of {}",
            Role::NAMES.join(", ")
        )))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AdminError::refused(format!(
            "a console password has at least {MIN_PASSWORD} characters; nothing was changed"
        )));
    }
    Ok(())
}

/// argon2 is slow on purpose: off the async threads.
async fn hash_password(password: String) -> String {
    tokio::task::spawn_blocking(move || crate::console::hash_password(&password))
        .await
        .expect("hashing a password does not panic")
}
