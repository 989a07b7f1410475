//! `roster sandbox ...`: runs a sandbox until Ctrl-C / SIGTERM, or administers one.

use std::path::PathBuf;

use anyhow::{Context, Result};
use roster_domain::Secret;
use roster_sandbox::marketo::admin::Admin;
use roster_sandbox::marketo::{self, Faults, Limits, MarketoConfig};

use crate::args::{
    AdminAction, AdobeAdmin, AdobeAdminAction, AdobeRun, AdobeSandboxCommand, MagentoAdmin,
    MagentoAdminAction, MagentoRun, MagentoSandboxCommand, MarketoAdmin, MarketoRun,
    MarketoSandboxCommand, SandboxCommand,
};

pub async fn run(cmd: SandboxCommand) -> Result<()> {
    match cmd {
        SandboxCommand::Marketo(m) => match m.admin {
            Some(MarketoSandboxCommand::Admin(admin)) => run_admin(admin).await,
            None => run_marketo(m.run).await,
        },
        SandboxCommand::Magento(m) => match m.admin {
            Some(MagentoSandboxCommand::Admin(admin)) => run_magento_admin(admin).await,
            None => run_magento(m.run).await,
        },
        SandboxCommand::Adobe(a) => match a.admin {
            Some(AdobeSandboxCommand::Admin(admin)) => run_adobe_admin(admin).await,
            None => run_adobe(a.run).await,
        },
    }
}

/// `$XDG_DATA_HOME/roster/sandbox`, else `~/.local/share/roster/sandbox`, else `./roster-sandbox`.
fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("roster/sandbox");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/roster/sandbox"),
        None => PathBuf::from("roster-sandbox"),
    }
}

async fn run_marketo(run: MarketoRun) -> Result<()> {
    let data = run.data.unwrap_or_else(default_data_dir);
    let mut config = MarketoConfig::new(&data);
    config.listen = run.listen;
    config.client_id = run.client_id;
    config.client_secret = run.client_secret.map(Secret::new);
    config.ims = run.ims;
    config.adobe = run.adobe.map(|dir| marketo::ims_sync::AdobeLink {
        data_dir: dir,
        sync_delay: run.adobe_sync_delay,
    });
    config.token_ttl = run.token_ttl;
    config.role_body = run.role_body;
    config.limits = Limits {
        rate_limit: run.rate_limit,
        rate_window: run.rate_window,
        max_concurrent: run.max_concurrent,
        daily_quota: run.daily_quota,
    };
    config.faults = Faults {
        latency: run.latency,
        error_rate: run.error_rate,
        token_expiry_rate: run.token_expiry_rate,
        write_timeout_rate: run.write_timeout_rate,
    };
    let stop = stop_signal();
    let sandbox = marketo::start(config).await.with_context(|| {
        format!(
            "could not start the Marketo sandbox with data in {}",
            data.display()
        )
    })?;
    let creds = sandbox.credentials();
    let url = sandbox.base_url();
    let how = if sandbox.was_seeded() {
        "seeded a new subscription"
    } else {
        "reopened its subscription"
    };
    println!(
        "Marketo sandbox ready ({how} in {})",
        sandbox.database_path().display()
    );
    println!("  Base URL:       {url}");
    println!("  Client ID:      {}", creds.client_id);
    println!("  Client secret:  {}", creds.client_secret.expose());
    println!("  API user:       {}", creds.api_user);
    println!("  Mailbox:        {url}/sandbox/mailbox");
    println!("For Roster's connector:");
    println!("  export ROSTER_MARKETO_URL={url}");
    println!("  export ROSTER_MARKETO_CLIENT_ID={}", creds.client_id);
    println!(
        "  export ROSTER_MARKETO_CLIENT_SECRET={}",
        creds.client_secret.expose()
    );
    println!("Press Ctrl-C to stop.");
    stop.await;
    eprintln!("stopping the Marketo sandbox...");
    sandbox.shutdown().await;
    Ok(())
}

async fn run_magento(run: MagentoRun) -> Result<()> {
    let data = run.data.unwrap_or_else(default_data_dir);
    let mut config = roster_sandbox::magento::MagentoConfig::new(&data);
    config.listen = run.listen;
    config.admin_user = run.admin_user;
    config.admin_password = run.admin_password.map(Secret::new);
    config.customers = run.customers;
    config.admin_users_api = run.admin_users_api;
    config.bulk_consumer = !run.no_bulk_consumer;
    if let Some(rate) = run.bulk_rate {
        if !(rate > 0.0 && rate.is_finite()) {
            anyhow::bail!("--bulk-rate is operations per second, a positive number such as 50");
        }
        config.bulk_rate = Some(rate);
    }
    config.tfa = run.tfa;
    config.integration_as_bearer = run.integration_as_bearer;
    config.faults = roster_sandbox::magento::MagentoFaults {
        latency: run.latency,
        html_error_rate: run.html_error_rate,
        html_errors_first: 0,
    };
    let stop = stop_signal();
    let sandbox = roster_sandbox::magento::start(config)
        .await
        .with_context(|| {
            format!(
                "could not start the Magento sandbox with data in {}",
                data.display()
            )
        })?;
    let url = sandbox.base_url();
    let how = if sandbox.was_seeded() {
        "seeded a new store"
    } else {
        "reopened its store"
    };
    println!(
        "Magento sandbox ready ({how} in {})",
        sandbox.database_path().display()
    );
    println!("  REST base:       {url}/rest");
    println!("  Admin user:      {}", sandbox.admin_user());
    println!("  Admin password:  {}", sandbox.admin_password().expose());
    if let Some(secret) = sandbox.totp_secret() {
        println!(
            "  2FA secret:      {} (Google Authenticator)",
            secret.expose()
        );
    }
    println!("  Mailbox:         {url}/sandbox/mailbox");
    println!("For Roster's connector:");
    println!("  export ROSTER_MAGENTO_URL={url}");
    println!("  export ROSTER_MAGENTO_USERNAME={}", sandbox.admin_user());
    println!(
        "  export ROSTER_MAGENTO_PASSWORD={}",
        sandbox.admin_password().expose()
    );
    if let Some(secret) = sandbox.totp_secret() {
        println!("  export ROSTER_MAGENTO_TOTP_SECRET={}", secret.expose());
    }
    println!("Press Ctrl-C to stop.");
    stop.await;
    eprintln!("stopping the Magento sandbox...");
    sandbox.shutdown().await;
    Ok(())
}

/// Registers for SIGTERM and Ctrl-C at once (before the banner is printed, so a signal sent
/// as soon as the banner is read is not missed); the returned future ends on either.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    tracing::warn!("cannot listen for SIGTERM; stop with Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_magento_admin(admin: MagentoAdmin) -> Result<()> {
    let data = admin.data.unwrap_or_else(default_data_dir);
    match admin.action {
        MagentoAdminAction::CreateIntegration { name } => {
            let made = roster_sandbox::magento::integrations::create_in(&data, &name)
                .await
                .with_context(|| {
                    format!("could not create the integration in {}", data.display())
                })?;
            println!("created and activated integration {:?}", made.name);
            println!("  Consumer Key:         {}", made.consumer_key);
            println!("  Consumer Secret:      {}", made.consumer_secret);
            println!("  Access Token:         {}", made.access_token);
            println!("  Access Token Secret:  {}", made.token_secret);
            println!("For Roster's connector, either (a bearer token, where the store allows it):");
            println!("  export ROSTER_MAGENTO_TOKEN={}", made.access_token);
            println!("or (every call signed with OAuth 1.0a):");
            println!("  export ROSTER_MAGENTO_CONSUMER_KEY={}", made.consumer_key);
            println!(
                "  export ROSTER_MAGENTO_CONSUMER_SECRET={}",
                made.consumer_secret
            );
            println!("  export ROSTER_MAGENTO_ACCESS_TOKEN={}", made.access_token);
            println!(
                "  export ROSTER_MAGENTO_ACCESS_TOKEN_SECRET={}",
                made.token_secret
            );
        }
    }
    Ok(())
}

async fn run_admin(admin: MarketoAdmin) -> Result<()> {
    let data = admin.data.unwrap_or_else(default_data_dir);
    let db = Admin::open(&data)
        .await
        .with_context(|| format!("could not open the Marketo sandbox in {}", data.display()))?;
    let result = admin_action(&db, admin.action).await;
    db.close().await;
    result
}

async fn admin_action(db: &Admin, action: AdminAction) -> Result<()> {
    match action {
        AdminAction::CreateRole {
            name,
            description,
            permissions,
            only_all_zones,
        } => {
            let id = db
                .create_role(&name, &description, &permissions, only_all_zones)
                .await?;
            println!(
                "created role {name:?} with id {id} and permissions: {}",
                permissions.join(", ")
            );
        }
        AdminAction::CreateApiUser {
            email,
            first,
            last,
            roles,
        } => {
            let id = db.create_api_user(&email, &first, &last, &roles).await?;
            println!("created API-only user {email} with id {id}");
        }
        AdminAction::CreateService {
            name,
            user,
            client_id,
            client_secret,
        } => {
            let secret = client_secret.map(Secret::new);
            let creds = db
                .create_service(&name, &user, client_id.as_deref(), secret.as_ref())
                .await?;
            println!(
                "created custom service {:?} owned by {}",
                creds.service, creds.api_user
            );
            println!("  Client ID:      {}", creds.client_id);
            println!("  Client secret:  {}", creds.client_secret.expose());
        }
        AdminAction::AddPeople {
            count,
            prefix,
            domain,
            roles,
        } => {
            let added = db.add_people(&prefix, &domain, count, &roles).await?;
            println!(
                "added {added} accepted users ({prefix}00001@{domain} ...); {} already existed",
                count - added
            );
        }
        AdminAction::Services => {
            println!(
                "{:<20} {:<38} {:<34} API USER",
                "SERVICE", "CLIENT ID", "CLIENT SECRET"
            );
            for s in db.services().await? {
                println!(
                    "{:<20} {:<38} {:<34} {}",
                    s.service,
                    s.client_id,
                    s.client_secret.expose(),
                    s.api_user
                );
            }
        }
    }
    Ok(())
}

async fn run_adobe(run: AdobeRun) -> Result<()> {
    use roster_sandbox::adobe::{self, AdobeConfig, AdobeFaults, AdobeLimits};
    let data = run.data.unwrap_or_else(default_data_dir);
    let mut config = AdobeConfig::new(&data);
    config.listen = run.listen;
    config.org_id = run.org_id;
    config.client_id = run.client_id;
    config.client_secret = run.client_secret.map(Secret::new);
    config.token_ttl = run.token_ttl;
    if run.page_size == 0 {
        anyhow::bail!("--page-size must be at least 1 (Adobe's is 2000)");
    }
    config.page_size = run.page_size;
    config.limits = AdobeLimits {
        action: run.action_limit,
        users: run.users_limit,
        groups: run.groups_limit,
        window: run.rate_window,
    };
    config.faults = AdobeFaults {
        latency: run.latency,
        error_rate: run.error_rate,
        retry_after: run.retry_after,
    };
    let stop = stop_signal();
    let sandbox = adobe::start(config).await.with_context(|| {
        format!(
            "could not start the Adobe sandbox with data in {}",
            data.display()
        )
    })?;
    let creds = sandbox.credentials();
    let url = sandbox.base_url();
    let how = if sandbox.was_seeded() {
        "seeded a new organization"
    } else {
        "reopened its organization"
    };
    println!(
        "Adobe sandbox ready ({how} in {})",
        sandbox.database_path().display()
    );
    println!("  IMS:            {url}/ims/token/v2");
    println!("  UMAPI:          {url}{}", adobe::UMAPI);
    println!("  Organization:   {}", creds.org_id);
    println!("  Client ID:      {}", creds.client_id);
    println!("  Client secret:  {}", creds.client_secret.expose());
    println!("For Roster's connector:");
    println!("  export ROSTER_ADOBE_URL={url}");
    println!("  export ROSTER_ADOBE_IMS_URL={url}");
    println!("  export ROSTER_ADOBE_ORG_ID={}", creds.org_id);
    println!("  export ROSTER_ADOBE_CLIENT_ID={}", creds.client_id);
    println!(
        "  export ROSTER_ADOBE_CLIENT_SECRET={}",
        creds.client_secret.expose()
    );
    println!("Press Ctrl-C to stop.");
    stop.await;
    eprintln!("stopping the Adobe sandbox...");
    sandbox.shutdown().await;
    Ok(())
}

async fn run_adobe_admin(admin: AdobeAdmin) -> Result<()> {
    use roster_sandbox::adobe::admin::Admin as AdobeDb;
    let data = admin.data.unwrap_or_else(default_data_dir);
    let db = AdobeDb::open(&data)
        .await
        .with_context(|| format!("could not open the Adobe sandbox in {}", data.display()))?;
    let result: Result<()> = async {
        match admin.action {
            AdobeAdminAction::AddUser {
                email,
                first,
                last,
                kind,
                country,
                groups,
            } => {
                db.add_user(&email, &first, &last, &kind, &country, &groups)
                    .await?;
                println!("added {kind} {email}");
            }
            AdobeAdminAction::AddToGroup { email, group } => {
                db.set_membership(&email, &group, true).await?;
                println!("{email} is in {group}");
            }
            AdobeAdminAction::RemoveFromGroup { email, group } => {
                db.set_membership(&email, &group, false).await?;
                println!("{email} is no longer in {group}");
            }
            AdobeAdminAction::RemoveUser { email } => {
                db.remove_user(&email).await?;
                println!("removed {email} from the organization");
            }
            AdobeAdminAction::CreateProfile {
                name,
                product,
                marketo_subscription,
            } => {
                db.create_profile(&name, &product, marketo_subscription)
                    .await?;
                println!("created product profile {name:?} of {product}");
            }
            AdobeAdminAction::ClaimDomain { domain, kind } => {
                db.claim_domain(&domain, &kind).await?;
                println!("claimed {domain} for {kind} accounts");
            }
            AdobeAdminAction::AddPeople {
                count,
                prefix,
                domain,
                groups,
            } => {
                let added = db.add_people(&prefix, &domain, count, &groups).await?;
                println!(
                    "added {added} Federated IDs ({prefix}00001@{domain} ...); {} already existed",
                    count - added
                );
            }
            AdobeAdminAction::List => {
                for (email, kind, groups) in db.list().await? {
                    println!("{email:<40} {kind:<13} {}", groups.join(", "));
                }
            }
            AdobeAdminAction::Clients => {
                for (id, secret) in db.clients().await? {
                    println!("{id}  {secret}");
                }
            }
        }
        Ok(())
    }
    .await;
    db.close().await;
    result
}
