//! Administration of a sandbox's subscription, as an admin does it in Marketo's UI:
//! "Create an API Only User Role", "Create an API Only User", then "Create a Custom Service".
//!
//! These work on the data directory directly, so they can be run while the sandbox serves
//! (SQLite is the single source of truth) or before it is first started.

use std::path::Path;

use roster_domain::Secret;

use super::error::SandboxError;
use super::store::{NewUser, RoleRow, ServiceCredentials, Store};
use crate::clock::Clock;

pub fn generate_client_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn generate_secret() -> Secret {
    Secret::new(uuid::Uuid::new_v4().simple().to_string())
}

/// An open sandbox database for administrative changes.
pub struct Admin {
    store: Store,
    clock: Clock,
}

/// A role assignment given by name or id: `"API Role@Default"`, `"104@1"`.
#[derive(Debug, Clone)]
pub struct RoleAt {
    pub role: String,
    pub workspace: String,
}

impl std::str::FromStr for RoleAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.rsplit_once('@') {
            Some((role, workspace)) if !role.trim().is_empty() && !workspace.trim().is_empty() => {
                Ok(Self {
                    role: role.trim().into(),
                    workspace: workspace.trim().into(),
                })
            }
            _ => Err(format!(
                "{s:?} is not ROLE@WORKSPACE (for example \"API Role@Default\" or \"104@1\")"
            )),
        }
    }
}

impl Admin {
    /// Opens DIR's database, seeding it first if it is new, so admin commands work on a fresh DIR.
    pub async fn open(data_dir: &Path) -> Result<Self, SandboxError> {
        let (store, fresh) = Store::open(data_dir).await?;
        let clock = Clock::default();
        if fresh {
            super::seed::seed(&store, None, None, clock.now_ms()).await?;
        }
        Ok(Self { store, clock })
    }

    pub async fn close(self) {
        self.store.close().await;
    }

    /// Creates a custom role with the given permissions; returns its id.
    pub async fn create_role(
        &self,
        name: &str,
        description: &str,
        permissions: &[String],
        only_all_zones: bool,
    ) -> Result<i64, SandboxError> {
        if name.trim().is_empty() {
            return Err(SandboxError::Invalid(
                "a role needs a name: give --name".into(),
            ));
        }
        if self.store.role_by_name(name).await?.is_some() {
            return Err(SandboxError::Invalid(format!(
                "a role named {name:?} already exists; pick another name"
            )));
        }
        let now = self.clock.now_ms();
        let row = RoleRow {
            id: 0,
            name: name.trim().into(),
            description: description.into(),
            kind: "custom".into(),
            hidden: false,
            only_all_zones,
            created_at: now,
            updated_at: now,
        };
        // Custom role ids continue after the highest one, as in a real subscription.
        let next: i64 = sqlx::query_scalar("SELECT MAX(id) + 1 FROM roles")
            .fetch_one(&self.store.pool)
            .await?;
        let row = RoleRow {
            id: next.max(1000),
            ..row
        };
        Ok(self.store.insert_role(&row, false, permissions).await?)
    }

    async fn resolve(&self, grant: &RoleAt) -> Result<(i64, i64), SandboxError> {
        let role = match grant.role.parse::<i64>() {
            Ok(id) => self.store.role(id).await?,
            Err(_) => self.store.role_by_name(&grant.role).await?,
        }
        .ok_or_else(|| {
            SandboxError::Invalid(format!(
                "no role {:?}; create it with `admin create-role`",
                grant.role
            ))
        })?;
        let workspace = match grant.workspace.parse::<i64>() {
            Ok(id) => self.store.workspace_name(id).await?.map(|_| id),
            Err(_) => self.store.workspace_id_by_name(&grant.workspace).await?,
        }
        .ok_or_else(|| SandboxError::Invalid(format!("no workspace {:?}", grant.workspace)))?;
        if role.only_all_zones && workspace != 0 {
            return Err(SandboxError::Invalid(format!(
                "role {:?} can only be granted in workspace 0 (AllZones)",
                role.name
            )));
        }
        Ok((role.id, workspace))
    }

    /// Creates an active API-only user; no invitation is needed for those.
    pub async fn create_api_user(
        &self,
        email: &str,
        first_name: &str,
        last_name: &str,
        roles: &[RoleAt],
    ) -> Result<i64, SandboxError> {
        if !email.contains('@') {
            return Err(SandboxError::Invalid(format!(
                "{email:?} is not an email address"
            )));
        }
        if roles.is_empty() {
            return Err(SandboxError::Invalid(
                "an API-only user needs at least one --role ROLE@WORKSPACE".into(),
            ));
        }
        if self.store.user(email).await?.is_some() {
            return Err(SandboxError::Invalid(format!(
                "a user {email} already exists"
            )));
        }
        let mut pairs = Vec::new();
        for role in roles {
            pairs.push(self.resolve(role).await?);
        }
        let user = NewUser {
            userid: email,
            email,
            first_name,
            last_name,
            api_only: true,
            pending: false,
            expires_at: None,
            reason: Some("Created with roster sandbox marketo admin"),
            invite_token: None,
            invite_expires_at: None,
            now: self.clock.now_ms(),
        };
        Ok(self.store.insert_user(&user, &pairs).await?)
    }

    /// Adds `count` accepted (standard) users named `{prefix}{n}@{domain}`, each with `roles`,
    /// as if they had accepted their invitations: for benchmarks and large audits.
    pub async fn add_people(
        &self,
        prefix: &str,
        domain: &str,
        count: usize,
        roles: &[RoleAt],
    ) -> Result<usize, SandboxError> {
        let mut pairs = Vec::new();
        for role in roles {
            pairs.push(self.resolve(role).await?);
        }
        let now = self.clock.now_ms();
        let mut added = 0;
        for n in 1..=count {
            let email = format!("{prefix}{n:05}@{domain}");
            if self.store.user(&email).await?.is_some() {
                continue;
            }
            let last = format!("Person {n}");
            let user = NewUser {
                userid: &email,
                email: &email,
                first_name: prefix,
                last_name: &last,
                api_only: false,
                pending: false,
                expires_at: None,
                reason: Some("Added with roster sandbox marketo admin add-people"),
                invite_token: None,
                invite_expires_at: None,
                now,
            };
            self.store.insert_user(&user, &pairs).await?;
            added += 1;
        }
        Ok(added)
    }

    /// Creates a custom service owned by an API-only user; generates id and secret if not given.
    pub async fn create_service(
        &self,
        name: &str,
        api_user: &str,
        client_id: Option<&str>,
        client_secret: Option<&Secret>,
    ) -> Result<ServiceCredentials, SandboxError> {
        let user = self.store.user(api_user).await?.ok_or_else(|| {
            SandboxError::Invalid(format!(
                "no user {api_user}; create it with `admin create-api-user`"
            ))
        })?;
        if !user.api_only {
            return Err(SandboxError::Invalid(format!(
                "{api_user} is not an API-only user; a custom service must be owned by one"
            )));
        }
        let client_id = client_id
            .map(str::to_owned)
            .unwrap_or_else(generate_client_id);
        if self
            .store
            .services()
            .await?
            .iter()
            .any(|s| s.client_id == client_id)
        {
            return Err(SandboxError::Invalid(format!(
                "a service with client id {client_id} already exists"
            )));
        }
        let secret = client_secret.cloned().unwrap_or_else(generate_secret);
        self.store
            .insert_service(name, "", &client_id, &secret, user.id, self.clock.now_ms())
            .await?;
        Ok(ServiceCredentials {
            service: name.into(),
            client_id,
            client_secret: secret,
            api_user: user.email,
        })
    }

    pub async fn services(&self) -> Result<Vec<ServiceCredentials>, SandboxError> {
        Ok(self.store.services().await?)
    }
}
