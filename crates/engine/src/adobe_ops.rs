//! The Adobe Admin Console as Roster reaches it: the connection (flags, environment, the
//! `[adobe]` section) and the read behind `roster audit adobe`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use roster_adobe::{AdobeConfig, AdobeGroup, AdobeUser, Client};
use roster_domain::Secret;

use crate::Globals;
use crate::conn::AdobeConn;

/// The name the audit log and messages give the app.
pub const ADOBE: &str = "adobe";

/// Signs in nowhere yet: builds the client from flags, environment and config file, and
/// checks the transport (https, or http to this machine) before any secret is sent.
pub fn connect(conn: &AdobeConn, g: &Globals) -> Result<Client> {
    let file = g.config_file()?.adobe;
    let Some(org_id) = conn.org_id.clone().or(file.org_id) else {
        bail!(
            "no Adobe organization given: set ROSTER_ADOBE_ORG_ID (or --org-id, or org_id in the [adobe] section of the config file) to the ...@AdobeOrg id the Admin Console shows"
        );
    };
    let Some(client_id) = conn.client_id.clone().or(file.client_id) else {
        bail!(
            "no Adobe client id given: set ROSTER_ADOBE_CLIENT_ID (or client_id in [adobe]) to the OAuth Server-to-Server credential's client id"
        );
    };
    let secret = match (
        &conn.client_secret,
        &file.client_secret_env,
        &file.client_secret_file,
    ) {
        (Some(s), _, _) => s.clone(),
        (None, Some(var), _) => std::env::var(var).map_err(|_| {
            anyhow::anyhow!("[adobe] client_secret_env names {var}, which is not set")
        })?,
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| {
                format!(
                    "cannot read the Adobe client secret file {} ([adobe] client_secret_file)",
                    path.display()
                )
            })?
            .trim()
            .to_string(),
        (None, None, None) => match file.client_secret {
            Some(s) => s,
            None => bail!(
                "no Adobe client secret given: set ROSTER_ADOBE_CLIENT_SECRET (or client_secret_env / client_secret_file in [adobe])"
            ),
        },
    };
    let mut config = AdobeConfig::new(org_id, client_id, Secret::new(secret));
    if let Some(url) = conn.url.clone().or(file.url) {
        config.umapi_url = url.trim_end_matches('/').to_string();
    }
    if let Some(url) = conn.ims_url.clone().or(file.ims_url) {
        config.ims_url = url.trim_end_matches('/').to_string();
    }
    for url in [&config.umapi_url, &config.ims_url] {
        roster_domain::endpoint::check_transport(url, crate::connect::allow_insecure_http())
            .map_err(|e| anyhow::anyhow!("Adobe: {e}"))?;
    }
    if let Some(t) = crate::connect::call_timeout() {
        config.timeout = t;
    }
    Ok(Client::new(config)?)
}

/// The organization as an audit shows it: every user with the groups they hold, directly
/// or through a user group, and the groups.
pub struct AdobeAudit {
    pub org_id: String,
    /// With every product profile they hold (`directOnly=false`).
    pub users: Vec<AdobeUser>,
    /// Each user's direct groups, by lowercased email: a profile held but not listed here
    /// comes through a user group.
    pub direct: BTreeMap<String, Vec<String>>,
    pub groups: Vec<AdobeGroup>,
}

impl AdobeAudit {
    /// Users by product profile (profiles with no users included), in the groups' order.
    pub fn by_profile(&self) -> BTreeMap<String, Vec<&AdobeUser>> {
        let mut out: BTreeMap<String, Vec<&AdobeUser>> = self
            .groups
            .iter()
            .filter(|g| g.is_product_profile())
            .map(|g| (g.group_name.clone(), Vec::new()))
            .collect();
        for u in &self.users {
            for g in &u.groups {
                if let Some(list) = out.get_mut(g) {
                    list.push(u);
                }
            }
        }
        out
    }

    /// Whether `user` holds `group` only through a user group.
    pub fn indirect(&self, user: &AdobeUser, group: &str) -> bool {
        self.direct
            .get(&user.email.to_lowercase())
            .is_some_and(|d| !d.iter().any(|g| g.eq_ignore_ascii_case(group)))
    }

    /// The kind of each group by name (`PRODUCT_PROFILE`, `USER_GROUP`, admin groups).
    pub fn kind_of(&self, group: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.group_name.eq_ignore_ascii_case(group))
            .map(|g| g.kind.as_str())
    }
}

/// Reads every group and every user twice (pages of 2,000): with the product profiles user
/// groups give (the access people have), and with their direct groups (what the Admin
/// Console assigns to them), so the audit can say which access comes through a group.
pub async fn audit(client: &Client) -> Result<AdobeAudit> {
    let groups = client.groups().await?;
    let mut users = client.users_with_indirect().await?;
    users.sort_by_key(|u| u.email.to_lowercase());
    let direct = client
        .users()
        .await?
        .into_iter()
        .map(|u| (u.email.to_lowercase(), u.groups))
        .collect();
    Ok(AdobeAudit {
        org_id: client.org_id().to_string(),
        users,
        direct,
        groups,
    })
}
