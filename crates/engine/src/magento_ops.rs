//! A Magento store session (admin sign-in, 2FA, or an integration's token or OAuth 1.0a
//! values) and the tombstone that is written before any Magento account is deleted.

use anyhow::{Context, Result, bail};
use roster_domain::Secret;
use roster_domain::access::RoleAssignment;
use roster_magento::{Client, ClientConfig, TokenAuth};
use roster_store::{NewTombstone, StateStore, TombstoneStatus};
use serde_json::Value;
use time::OffsetDateTime;

use crate::Globals;
use crate::conn::{Confirm, MagentoConn};
use crate::connect::{MagentoSection, open_state};
use crate::events::{Event, Events};

pub const MAGENTO: &str = "magento";

pub struct MagentoSession {
    pub client: Client,
    pub state: StateStore,
    pub instance: String,
    pub events: Events,
    /// The store's lock, while this process changes it.
    _lock: Option<crate::lock::Held>,
}

/// The integration Roster acts as, if its credentials are given: all four OAuth 1.0a values
/// (every call signed), or its access token (a bearer token). Flags and environment first,
/// then the config file.
fn integration(conn: &MagentoConn, file: &MagentoSection) -> Result<Option<TokenAuth>> {
    let pick = |a: &Option<String>, b: &Option<String>| {
        a.clone().or(b.clone()).filter(|v| !v.trim().is_empty())
    };
    let oauth = [
        (
            "ROSTER_MAGENTO_CONSUMER_KEY",
            pick(&conn.consumer_key, &file.consumer_key),
        ),
        (
            "ROSTER_MAGENTO_CONSUMER_SECRET",
            pick(&conn.consumer_secret, &file.consumer_secret),
        ),
        (
            "ROSTER_MAGENTO_ACCESS_TOKEN",
            pick(&conn.access_token, &file.access_token),
        ),
        (
            "ROSTER_MAGENTO_ACCESS_TOKEN_SECRET",
            pick(&conn.access_token_secret, &file.access_token_secret),
        ),
    ];
    let given = oauth.iter().filter(|(_, v)| v.is_some()).count();
    // An access token alone is the bearer form; with a consumer key, OAuth 1.0a is meant.
    let oauth_meant =
        given == 4 || oauth[0].1.is_some() || oauth[1].1.is_some() || oauth[3].1.is_some();
    if oauth_meant {
        if given < 4 {
            let missing: Vec<&str> = oauth
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            bail!(
                "OAuth 1.0a needs the integration's four values (System > Extensions > Integrations > Edit > Integration Details); missing: {}",
                missing.join(", ")
            );
        }
        let [key, secret, token, token_secret] = oauth.map(|(_, v)| v.unwrap_or_default());
        return Ok(Some(TokenAuth::OAuth1(roster_magento::OAuth1Credentials {
            consumer_key: key,
            consumer_secret: Secret::new(secret),
            access_token: Secret::new(token),
            access_token_secret: Secret::new(token_secret),
        })));
    }
    let bearer = pick(&conn.token, &file.token).or(oauth[2].1.clone());
    Ok(bearer.map(|t| TokenAuth::Bearer(Secret::new(t.trim()))))
}

/// The admin's TOTP secret: given directly, or read from a file (which must not be readable
/// by others, like any file of secrets).
fn totp_secret(conn: &MagentoConn, file: &MagentoSection) -> Result<Option<Secret>> {
    if let Some(s) = conn.totp_secret.clone().filter(|s| !s.trim().is_empty()) {
        return Ok(Some(Secret::new(s.trim())));
    }
    let Some(path) = conn
        .totp_secret_file
        .clone()
        .or(file.totp_secret_file.clone())
    else {
        return Ok(file
            .totp_secret
            .clone()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Secret::new(s.trim())));
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the TOTP secret file {} (ROSTER_MAGENTO_TOTP_SECRET_FILE)",
            path.display()
        )
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        bail!("the TOTP secret file {} is empty", path.display());
    }
    Ok(Some(Secret::new(secret)))
}

impl MagentoSession {
    pub async fn open(conn: &MagentoConn, g: &Globals) -> Result<Self> {
        let file = g.config_file()?.magento;
        let Some(url) = conn.url.clone().or(file.url.clone()) else {
            bail!(
                "no Magento store given: set ROSTER_MAGENTO_URL (or --url, or url in the [magento] section of the config file)"
            );
        };
        let mut config = match integration(conn, &file)? {
            Some(token) => ClientConfig::with_token(url, token),
            None => {
                let Some(username) = conn.username.clone().or(file.username.clone()) else {
                    bail!(
                        "no admin user name given: set ROSTER_MAGENTO_USERNAME (or --username, or username in the config file); or sign in as an integration with ROSTER_MAGENTO_TOKEN or its four OAuth values"
                    );
                };
                let Some(password) = conn.password.clone().or(file.password.clone()) else {
                    bail!(
                        "no admin password given: set ROSTER_MAGENTO_PASSWORD (or password in the config file)"
                    );
                };
                let mut config = ClientConfig::new(url, username, Secret::new(password));
                config.totp_secret = totp_secret(conn, &file)?;
                config
            }
        };
        config.allow_insecure_http = crate::connect::allow_insecure_http();
        config.scope = if conn.scope.is_empty() || conn.scope == "all" {
            file.scope.unwrap_or_else(|| "all".into())
        } else {
            conn.scope.clone()
        };
        let instance = config.base_url.clone();
        let lock = crate::lock::instance(
            &crate::connect::state_dir(g.state.as_deref()),
            "magento",
            &instance,
        )?;
        Ok(Self {
            client: Client::new(config)?,
            state: open_state(g.state.as_deref()).await?,
            instance,
            events: g.events.clone(),
            _lock: lock,
        })
    }

    pub fn cost_line(&self) -> String {
        let s = self.client.stats();
        format!(
            "{} API call{} ({} retries, {} sign-in{})",
            s.calls,
            if s.calls == 1 { "" } else { "s" },
            s.retries,
            s.logins,
            if s.logins == 1 { "" } else { "s" }
        )
    }
}

pub async fn tombstone(
    s: &MagentoSession,
    userid: String,
    email: &str,
    account: &Value,
    roles: Vec<RoleAssignment>,
    by: &str,
    confirm: &Confirm,
) -> Result<i64> {
    Ok(s.state
        .add_tombstone(&NewTombstone {
            app: MAGENTO.into(),
            instance: s.instance.clone(),
            userid,
            email: email.into(),
            first_name: account["firstname"].as_str().unwrap_or("").into(),
            last_name: account["lastname"].as_str().unwrap_or("").into(),
            api_only: false,
            roles,
            account: account.clone(),
            deleted_at: OffsetDateTime::now_utc(),
            deleted_by: by.into(),
            reason: confirm.reason.clone(),
            status: TombstoneStatus::Deleting,
        })
        .await?)
}

pub async fn finish(s: &MagentoSession, id: i64, result: Result<()>, what: &str) -> Result<()> {
    match result {
        Ok(()) => {
            s.state
                .set_tombstone_status(id, TombstoneStatus::Deleted)
                .await?;
            s.events.emit(Event::Said(format!(
                "deleted {what} (tombstone #{id} keeps the record, addresses included)"
            )));
            Ok(())
        }
        Err(e) => {
            s.state
                .set_tombstone_status(id, TombstoneStatus::Failed)
                .await?;
            Err(e.context(format!("deleting {what} failed; tombstone #{id} is kept")))
        }
    }
}
