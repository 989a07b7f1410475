//! `roster sandbox adobe admin ...`: changes the organization as an administrator would in the
//! Admin Console, straight in its SQLite file (so it works while the sandbox runs). Unlike
//! UMAPI, the Admin Console can make system administrators and product profiles.

use std::path::Path;

use super::store::{self, NewUser, Store};
use crate::clock::Clock;
use crate::marketo::SandboxError;

pub struct Admin {
    store: Store,
    clock: Clock,
}

fn invalid(message: impl Into<String>) -> SandboxError {
    SandboxError::Invalid(message.into())
}

impl Admin {
    pub async fn open(data_dir: &Path) -> Result<Self, SandboxError> {
        let (store, fresh) = Store::open(data_dir).await?;
        if fresh {
            store.close().await;
            let _ = std::fs::remove_file(data_dir.join(store::FILE));
            return Err(invalid(format!(
                "{} holds no Adobe sandbox; start one with `roster sandbox adobe --data {}` first",
                data_dir.display(),
                data_dir.display()
            )));
        }
        Ok(Self {
            store,
            clock: Clock::default(),
        })
    }

    pub async fn close(self) {
        self.store.close().await;
    }

    /// Adds a user (of a claimed domain unless an Adobe ID) and puts them in `groups`.
    pub async fn add_user(
        &self,
        email: &str,
        first: &str,
        last: &str,
        kind: &str,
        country: &str,
        groups: &[String],
    ) -> Result<(), SandboxError> {
        if !["federatedID", "enterpriseID", "adobeID"].contains(&kind) {
            return Err(invalid(format!(
                "--type {kind} is not one of federatedID, enterpriseID, adobeID"
            )));
        }
        let mut tx = self.store.pool.begin().await?;
        if store::user_by_email(&mut tx, email).await?.is_some() {
            return Err(invalid(format!("{email} is already in the organization")));
        }
        let id = store::insert_user(
            &mut tx,
            &NewUser {
                email,
                firstname: Some(first),
                lastname: Some(last),
                country: Some(country),
                kind,
            },
            self.clock.now_ms(),
        )
        .await?;
        for g in groups {
            let group = store::group_by_name(&mut tx, g).await?.ok_or_else(|| {
                invalid(format!("there is no group or product profile named {g:?}"))
            })?;
            store::add_member(&mut tx, group.id, &id, self.clock.now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a user in (or takes them out of) a group, product profile or admin group.
    pub async fn set_membership(
        &self,
        email: &str,
        group: &str,
        member: bool,
    ) -> Result<(), SandboxError> {
        let mut tx = self.store.pool.begin().await?;
        let user = store::user_by_email(&mut tx, email)
            .await?
            .ok_or_else(|| invalid(format!("{email} is not in the organization")))?;
        let g = store::group_by_name(&mut tx, group).await?.ok_or_else(|| {
            invalid(format!(
                "there is no group or product profile named {group:?}"
            ))
        })?;
        if member {
            store::add_member(&mut tx, g.id, &user.id, self.clock.now_ms()).await?;
        } else {
            store::remove_member(&mut tx, g.id, &user.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_user(&self, email: &str) -> Result<(), SandboxError> {
        let done = sqlx::query("DELETE FROM users WHERE email = ?")
            .bind(email)
            .execute(&self.store.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(invalid(format!("{email} is not in the organization")));
        }
        Ok(())
    }

    /// Creates a product profile, optionally one that gives access to a Marketo subscription.
    pub async fn create_profile(
        &self,
        name: &str,
        product: &str,
        marketo_subscription: Option<i64>,
    ) -> Result<(), SandboxError> {
        let mut tx = self.store.pool.begin().await?;
        if store::group_by_name(&mut tx, name).await?.is_some() {
            return Err(invalid(format!("a group named {name:?} already exists")));
        }
        store::insert_group(
            &mut tx,
            name,
            "PRODUCT_PROFILE",
            "",
            Some(product),
            marketo_subscription,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn claim_domain(&self, domain: &str, kind: &str) -> Result<(), SandboxError> {
        if !["federatedID", "enterpriseID"].contains(&kind) {
            return Err(invalid(format!(
                "--type {kind} is not one of federatedID, enterpriseID"
            )));
        }
        sqlx::query("INSERT INTO domains (name, id_type) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET id_type = excluded.id_type")
            .bind(domain)
            .bind(kind)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }

    /// Adds many Federated IDs at once (for large audits and benchmarks); returns how many
    /// were new. The domain is claimed if it is not yet.
    pub async fn add_people(
        &self,
        prefix: &str,
        domain: &str,
        count: usize,
        groups: &[String],
    ) -> Result<usize, SandboxError> {
        let mut tx = self.store.pool.begin().await?;
        sqlx::query("INSERT OR IGNORE INTO domains (name, id_type) VALUES (?, 'federatedID')")
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        let mut group_ids = Vec::new();
        for g in groups {
            let group = store::group_by_name(&mut tx, g).await?.ok_or_else(|| {
                invalid(format!("there is no group or product profile named {g:?}"))
            })?;
            group_ids.push(group.id);
        }
        let now = self.clock.now_ms();
        let mut added = 0;
        for n in 1..=count {
            let email = format!("{prefix}{n:05}@{domain}");
            if store::user_by_email(&mut tx, &email).await?.is_some() {
                continue;
            }
            let first = format!("Person{n:05}");
            let id = store::insert_user(
                &mut tx,
                &NewUser {
                    email: &email,
                    firstname: Some(&first),
                    lastname: Some("Bulk"),
                    country: Some("US"),
                    kind: "federatedID",
                },
                now,
            )
            .await?;
            for g in &group_ids {
                store::add_member(&mut tx, *g, &id, now).await?;
            }
            added += 1;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// (email, type, groups) of every user, for `admin list`.
    pub async fn list(&self) -> Result<Vec<(String, String, Vec<String>)>, SandboxError> {
        let users = self.store.users_page(0, usize::MAX >> 2, None).await?;
        let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
        let mut groups = self.store.groups_of(&ids, true).await?;
        Ok(users
            .into_iter()
            .map(|u| {
                let g = groups.remove(&u.id).unwrap_or_default();
                (u.email, u.kind, g)
            })
            .collect())
    }

    /// The API clients and their secrets.
    pub async fn clients(&self) -> Result<Vec<(String, String)>, SandboxError> {
        Ok(self.store.clients().await?)
    }
}
