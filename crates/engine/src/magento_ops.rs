//! A Magento store session (admin sign-in, 2FA, or an integration's token or OAuth 1.0a
//! values) and the tombstone that is written before any Magento account is deleted.

use anyhow::{Context, Result, bail};
use roster_domain::Secret;
use roster_domain::access::RoleAssignment;
use roster_domain::desired::App;
use roster_magento::AdminUsers;
use roster_magento::{Client, ClientConfig, TokenAuth};
use roster_store::{NewTombstone, StateStore, TombstoneStatus};
use serde_json::{Value, json};
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
        // Given the service's configuration, a command connects as the service does.
        let chosen = match conn.url {
            None => g.service_instance(
                roster_domain::desired::App::Magento,
                conn.instance.as_deref(),
            )?,
            Some(_) => None,
        };
        let conn = chosen
            .as_ref()
            .and_then(|c| c.magento.as_ref())
            .unwrap_or(conn);
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
        if let Some(t) = crate::connect::call_timeout() {
            config.request_timeout = t;
        }
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
            state: open_state(g.state.as_deref(), g.database.as_deref()).await?,
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

/// Whether `text` is the number `id` holds.
pub fn same_id(id: &Value, text: &str) -> bool {
    text.trim()
        .parse::<i64>()
        .ok()
        .is_some_and(|n| id.as_i64() == Some(n))
}

/// A website's id, by code or id.
pub fn find_website(websites: &[Value], wanted: &str) -> Result<i64> {
    websites
        .iter()
        .find(|w| w["code"] == wanted || same_id(&w["id"], wanted))
        .and_then(|w| w["id"].as_i64())
        .ok_or_else(|| {
            let codes: Vec<&str> = websites.iter().filter_map(|w| w["code"].as_str()).collect();
            anyhow::anyhow!("no website {wanted:?}; websites: {}", codes.join(", "))
        })
}

// ---- restore ----

/// The newest restorable Magento tombstone that `matches`.
async fn restorable(
    s: &MagentoSession,
    what: &str,
    matches: impl Fn(&roster_store::Tombstone) -> bool,
) -> Result<roster_store::Tombstone> {
    let all = s.state.tombstones(Some(MAGENTO)).await?;
    let found = all
        .into_iter()
        .find(|t| t.instance == s.instance && t.restored_at.is_none() && matches(t));
    let t = crate::lifecycle::restorable(
        found,
        what,
        &s.instance,
        "roster tombstones --app magento",
        "check the store before restoring",
    )?;
    s.state.verify_tombstone(t.id).await.with_context(|| {
        format!("tombstone #{} of {what} was changed in the database after Roster wrote it; nothing was restored", t.id)
    })?;
    Ok(t)
}

/// Creates the customer `email` again from its newest restorable tombstone (of `website_id`,
/// when given): attributes, group and addresses; Magento emails a password link.
pub async fn restore_customer(
    s: &MagentoSession,
    email: &str,
    website_id: Option<i64>,
) -> Result<()> {
    let t = restorable(s, &format!("customer {email}"), |t| {
        t.account.get("username").is_none()
            && t.email.eq_ignore_ascii_case(email)
            && website_id.is_none_or(|w| t.account["website_id"].as_i64() == Some(w))
    })
    .await?;
    let record = &t.account;
    let site = record["website_id"].as_i64().unwrap_or(1);
    let taken = s
        .client
        .customers_by_email(email)
        .await?
        .into_iter()
        .any(|c| c["website_id"].as_i64() == Some(site));
    if taken {
        bail!("{email} already has a customer account on website {site}; nothing to restore");
    }
    let groups = s.client.groups().await?;
    let group = record["group_id"].as_i64().unwrap_or(1);
    if !groups.iter().any(|g| g["id"].as_i64() == Some(group)) {
        bail!(
            "the customer's group {group} no longer exists; create the customer with `roster provision magento` and a current group instead"
        );
    }
    let customer = customer_for_create(record);
    let addresses = customer["addresses"].as_array().map_or(0, Vec::len);
    let created = s.client.create_customer(customer, None).await?;
    s.state
        .mark_restored(t.id, OffsetDateTime::now_utc())
        .await?;
    crate::lifecycle::keep_restored(&s.state, App::Magento, &s.instance, &t.email, t.id).await?;
    s.events.emit(Event::Said(format!(
        "restored customer {email} as id {} on website {site} with {addresses} address(es), from tombstone #{}; Magento emailed them a link to set a password (the old one is not kept)",
        created["id"], t.id
    )));
    Ok(())
}

/// The stored customer as a create body: the ids and timestamps Magento assigns are dropped,
/// and the default billing and shipping addresses are carried by the addresses' own flags
/// (their old ids mean nothing to a new account).
fn customer_for_create(record: &Value) -> Value {
    let mut customer = record.clone();
    let Some(obj) = customer.as_object_mut() else {
        return customer;
    };
    let default_billing = obj.remove("default_billing").map(|v| v.to_string());
    let default_shipping = obj.remove("default_shipping").map(|v| v.to_string());
    for key in [
        "id",
        "created_at",
        "updated_at",
        "created_in",
        "confirmation",
    ] {
        obj.remove(key);
    }
    if let Some(Value::Array(addresses)) = obj.get_mut("addresses") {
        for a in addresses {
            let Some(a) = a.as_object_mut() else { continue };
            let old = a.remove("id").map(|v| v.to_string());
            a.remove("customer_id");
            let same = |d: &Option<String>| {
                d.as_deref().map(|s| s.trim_matches('"'))
                    == old.as_deref().map(|s| s.trim_matches('"'))
                    && d.is_some()
            };
            if same(&default_billing) {
                a.insert("default_billing".into(), json!(true));
            }
            if same(&default_shipping) {
                a.insert("default_shipping".into(), json!(true));
            }
        }
    }
    customer
}

/// Creates the admin user `username` again from its newest restorable tombstone, with its
/// role; a first password nobody knows (they reset it).
pub async fn restore_admin(s: &MagentoSession, username: &str) -> Result<()> {
    let AdminUsers::Available(users) = s.client.admin_users().await? else {
        bail!("{}", roster_magento::MagentoError::NoAdminApi);
    };
    if users.iter().any(|u| {
        u["username"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(username))
    }) {
        bail!("the admin user {username} exists; nothing to restore");
    }
    let t = restorable(s, &format!("admin user {username}"), |t| {
        t.account["username"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(username))
    })
    .await?;
    let record = &t.account;
    // A first password nobody knows: they set their own with "Forgot your password?".
    let password = format!("Rr7{}", uuid::Uuid::new_v4().simple());
    let user = json!({
        "username": record["username"],
        "firstname": record["firstname"],
        "lastname": record["lastname"],
        "email": record["email"],
        "role_id": record["role_id"],
        "is_active": record["is_active"].as_bool().unwrap_or(true),
        "password": password,
    });
    let created = s.client.create_admin_user(user).await?;
    s.state
        .mark_restored(t.id, OffsetDateTime::now_utc())
        .await?;
    crate::lifecycle::keep_restored(&s.state, App::Magento, &s.instance, &t.email, t.id).await?;
    s.events.emit(Event::Said(format!(
        "restored admin user {username} as id {} with role {}, from tombstone #{}; they set a password with \"Forgot your password?\" on the admin sign-in page",
        created["id"], record["role_id"], t.id
    )));
    Ok(())
}
