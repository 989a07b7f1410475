//! What SCIM clients push: their connections (one per identity provider, by token hash) and
//! the Users and Groups, each kept whole as JSON with a version that grows on every change
//! (the resource's ETag).

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::service::TokenTable;
use crate::{Result, StateStore, StoreError, from_ms, ms};

/// An identity provider's SCIM connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimConnection {
    pub id: i64,
    pub name: String,
    /// Instances it may give access on; empty: every instance.
    pub instances: Vec<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// A stored User or Group.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimResource {
    pub id: String,
    pub connection: String,
    /// `User` or `Group`.
    pub kind: String,
    /// `userName` of a User, `displayName` of a Group.
    pub name: String,
    pub external_id: Option<String>,
    pub version: i64,
    pub body: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What `scim_find` looks a resource up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimKey {
    Name,
    ExternalId,
}

/// Why a write was refused.
#[derive(Debug)]
pub enum ScimWriteError {
    /// Another resource of the kind has the name.
    Taken,
    /// The version given (If-Match) is not the stored one.
    VersionMismatch {
        stored: i64,
    },
    NotFound,
    Store(StoreError),
}

impl From<StoreError> for ScimWriteError {
    fn from(e: StoreError) -> Self {
        ScimWriteError::Store(e)
    }
}

impl From<sqlx::Error> for ScimWriteError {
    fn from(e: sqlx::Error) -> Self {
        ScimWriteError::Store(e.into())
    }
}

impl ScimConnection {
    /// Whether what it pushes applies on `instance`.
    pub fn reaches(&self, instance: &str) -> bool {
        self.instances.is_empty() || self.instances.iter().any(|i| i == instance)
    }

    /// The instances it reaches, as said to a person: `every instance`, or their names.
    pub fn reach(&self) -> String {
        Self::reach_of(&self.instances)
    }

    /// The same for a connection limited to `instances` (an empty list is every instance).
    pub fn reach_of(instances: &[String]) -> String {
        if instances.is_empty() {
            "every instance".to_string()
        } else {
            instances.join(", ")
        }
    }
}

fn connection_from(r: &AnyRow) -> ScimConnection {
    ScimConnection {
        id: r.get("id"),
        name: r.get("name"),
        instances: serde_json::from_str(r.get::<&str, _>("instances")).unwrap_or_default(),
        created_at: from_ms(r.get("created_at")),
        last_used_at: r.get::<Option<i64>, _>("last_used_at").map(from_ms),
        revoked_at: r.get::<Option<i64>, _>("revoked_at").map(from_ms),
    }
}

fn resource_from(r: &AnyRow) -> Result<ScimResource> {
    let body: String = r.get("body");
    Ok(ScimResource {
        id: r.get("id"),
        connection: r.get("connection"),
        kind: r.get("kind"),
        name: r.get("name"),
        external_id: r.get("external_id"),
        version: r.get("version"),
        body: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
            what: "SCIM resource",
            detail: e.to_string(),
        })?,
        created_at: from_ms(r.get("created_at")),
        updated_at: from_ms(r.get("updated_at")),
    })
}

fn unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl StateStore {
    /// Adds a connection by its token's hash; a name in use is refused.
    pub async fn add_scim_connection(
        &self,
        name: &str,
        hash: &str,
        instances: &[String],
        at: OffsetDateTime,
    ) -> Result<i64> {
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO scim_connections (name, hash, instances, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(hash)
        .bind(serde_json::to_string(instances).unwrap_or_else(|_| "[]".into()))
        .bind(ms(at))
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Ok(r) => Ok(r),
            Err(e) if unique_violation(&e) => Err(StoreError::Duplicate {
                what: "SCIM connection",
                name: name.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The live connection whose token has this hash, marked used (at most once a minute).
    pub async fn use_scim_connection(
        &self,
        hash: &str,
        at: OffsetDateTime,
    ) -> Result<Option<ScimConnection>> {
        let row =
            sqlx::query("SELECT * FROM scim_connections WHERE hash = $1 AND revoked_at IS NULL")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        let Some(c) = row.as_ref().map(connection_from) else {
            return Ok(None);
        };
        self.mark_used(TokenTable::Scim, c.id, c.last_used_at, at)
            .await?;
        Ok(Some(c))
    }

    pub async fn scim_connections(&self) -> Result<Vec<ScimConnection>> {
        let rows = sqlx::query("SELECT * FROM scim_connections ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(connection_from).collect())
    }

    /// Revokes the connection `name`; returns whether there was a live one.
    pub async fn revoke_scim_connection(&self, name: &str, at: OffsetDateTime) -> Result<bool> {
        self.revoke_named(TokenTable::Scim, name, at).await
    }

    /// Stores a new resource at version 1.
    pub async fn create_scim(&self, r: &ScimResource) -> std::result::Result<(), ScimWriteError> {
        let inserted = sqlx::query(
            "INSERT INTO scim_resources (id, connection, kind, name, external_id, version, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.connection)
        .bind(&r.kind)
        .bind(&r.name)
        .bind(&r.external_id)
        .bind(r.body.to_string())
        .bind(ms(r.created_at))
        .bind(ms(r.updated_at))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if unique_violation(&e) => Err(ScimWriteError::Taken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn scim_resource(
        &self,
        connection: &str,
        kind: &str,
        id: &str,
    ) -> Result<Option<ScimResource>> {
        let row = sqlx::query(
            "SELECT * FROM scim_resources WHERE connection = $1 AND kind = $2 AND id = $3",
        )
        .bind(connection)
        .bind(kind)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(resource_from).transpose()
    }

    /// The resources of a kind whose name (userName, displayName; any case) or externalId
    /// (exact: it is caseExact) is `value`: the lookups identity providers make before every
    /// create, answered from an index.
    pub async fn scim_find(
        &self,
        connection: &str,
        kind: &str,
        by: ScimKey,
        value: &str,
    ) -> Result<Vec<ScimResource>> {
        let sql = match by {
            ScimKey::Name => {
                "SELECT * FROM scim_resources WHERE connection = $1 AND kind = $2 AND name = $3 COLLATE NOCASE"
            }
            ScimKey::ExternalId => {
                "SELECT * FROM scim_resources WHERE connection = $1 AND kind = $2 AND external_id = $3"
            }
        };
        let rows = sqlx::query(sql)
            .bind(connection)
            .bind(kind)
            .bind(value)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(resource_from).collect()
    }

    /// Every resource of a kind a connection pushed, oldest first.
    pub async fn scim_resources(&self, connection: &str, kind: &str) -> Result<Vec<ScimResource>> {
        let rows = sqlx::query(
            "SELECT * FROM scim_resources WHERE connection = $1 AND kind = $2 ORDER BY created_at, id",
        )
        .bind(connection)
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(resource_from).collect()
    }

    /// Replaces a resource's name, externalId and body if its version is `expected` (when
    /// given); returns the new version.
    pub async fn update_scim(
        &self,
        r: &ScimResource,
        expected: Option<i64>,
    ) -> std::result::Result<i64, ScimWriteError> {
        let mut tx = self.write_tx().await?;
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM scim_resources WHERE connection = $1 AND kind = $2 AND id = $3",
        )
        .bind(&r.connection)
        .bind(&r.kind)
        .bind(&r.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(stored) = stored else {
            return Err(ScimWriteError::NotFound);
        };
        if expected.is_some_and(|v| v != stored) {
            return Err(ScimWriteError::VersionMismatch { stored });
        }
        let updated = sqlx::query(
            "UPDATE scim_resources SET name = $1, external_id = $2, body = $3, version = version + 1, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(&r.name)
        .bind(&r.external_id)
        .bind(r.body.to_string())
        .bind(ms(r.updated_at))
        .bind(&r.id)
        .execute(&mut *tx)
        .await;
        match updated {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => return Err(ScimWriteError::Taken),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(stored + 1)
    }

    /// Deletes a resource (if its version is `expected`, when given).
    pub async fn delete_scim(
        &self,
        connection: &str,
        kind: &str,
        id: &str,
        expected: Option<i64>,
    ) -> std::result::Result<(), ScimWriteError> {
        let mut tx = self.write_tx().await?;
        let stored: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM scim_resources WHERE connection = $1 AND kind = $2 AND id = $3",
        )
        .bind(connection)
        .bind(kind)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(stored) = stored else {
            return Err(ScimWriteError::NotFound);
        };
        if expected.is_some_and(|v| v != stored) {
            return Err(ScimWriteError::VersionMismatch { stored });
        }
        sqlx::query("DELETE FROM scim_resources WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
