//! A subscription on Adobe Identity (`--ims --adobe DIR`): its standard users come from the
//! Adobe Admin Console, as Adobe documents it. Someone added to a Marketo Engage product
//! profile linked to this subscription appears here, after a sync delay, as an active user
//! with `Standard User` in `Default` (roles are then changed through Marketo's API); someone
//! in none of those profiles any more disappears. API-only users stay Marketo's own.
//!
//! The link reads the Adobe sandbox's SQLite file (read-only), so the two sandboxes can run
//! as separate processes or in one. Sources: Adobe's "Add or remove a user" and "User setup"
//! pages for Marketo with Adobe Identity (the default role and workspace, one product
//! profile per subscription, removal from all of them to lose access). Not documented, and
//! chosen here: how long the sync takes (`--adobe-sync-delay`), that removal takes the same
//! delay, and that the Marketo `userid` of such a user is their email.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::server::App;
use super::store::NewUser;
use crate::adobe::store::{self as adobe_store, MarketoMember};

/// Where the Adobe organization is and how long its changes take to reach Marketo.
#[derive(Debug, Clone)]
pub struct AdobeLink {
    /// The Adobe sandbox's data directory (its `adobe.sqlite`).
    pub data_dir: PathBuf,
    /// How long after a change in the Admin Console it shows in Marketo.
    pub sync_delay: Duration,
}

/// What the sync remembers between passes: since when each user has been missing from
/// every linked profile (their removal takes the sync delay too).
#[derive(Default)]
pub struct SyncState {
    missing_since: BTreeMap<String, i64>,
    pool: Option<SqlitePool>,
}

/// How often the link looks at the Admin Console: often enough to keep to the delay.
pub fn poll_interval(link: &AdobeLink) -> Duration {
    (link.sync_delay / 4).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

fn wall_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn open_adobe(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
}

/// One pass: users whose profile membership is older than the delay are added, users
/// missing from every profile for longer than the delay are removed. Returns (added,
/// removed). Before the Adobe sandbox has made its file, nothing happens.
pub async fn sync_once(
    app: &Arc<App>,
    link: &AdobeLink,
    state: &mut SyncState,
) -> Result<(usize, usize), sqlx::Error> {
    let path = link.data_dir.join(adobe_store::FILE);
    if state.pool.is_none() {
        if !path.exists() {
            return Ok((0, 0));
        }
        state.pool = Some(open_adobe(&path).await?);
    }
    let pool = state.pool.as_ref().expect("opened above");
    let members = match adobe_store::marketo_members(pool, app.subscription_id).await {
        Ok(m) => m,
        // A file the Adobe sandbox is still creating has no tables yet.
        Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => {
            return Ok((0, 0));
        }
        Err(e) => return Err(e),
    };
    apply(app, link, state, &members, wall_ms()).await
}

async fn apply(
    app: &Arc<App>,
    link: &AdobeLink,
    state: &mut SyncState,
    members: &[MarketoMember],
    now: i64,
) -> Result<(usize, usize), sqlx::Error> {
    let delay = link.sync_delay.as_millis() as i64;
    let in_profile: BTreeSet<String> = members.iter().map(|m| m.email.to_lowercase()).collect();
    // Read and compare without the write lock: most polls change nothing, and the API
    // answers meanwhile. Only a pass with changes takes the lock, and checks again under it.
    let mut existing = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = app.store.active_user_summaries(offset, 1000).await?;
        offset += page.len() as i64;
        let done = page.len() < 1000;
        for u in page {
            existing.insert(u.email_address.to_lowercase(), u);
        }
        if done {
            break;
        }
    }
    let joining: Vec<&MarketoMember> = members
        .iter()
        .filter(|m| now - m.since_ms >= delay && !existing.contains_key(&m.email.to_lowercase()))
        .collect();
    let mut leaving = Vec::new();
    for (email, user) in &existing {
        if user.api_only || in_profile.contains(email) {
            state.missing_since.remove(email);
            continue;
        }
        let since = *state.missing_since.entry(email.clone()).or_insert(now);
        if now - since >= delay {
            leaving.push((email.clone(), user.id));
        }
    }
    if joining.is_empty() && leaving.is_empty() {
        return Ok((0, 0));
    }
    let _write = app.store.write_guard().await;
    let mut added = 0;
    let standard = app.store.role_by_name("Standard User").await?;
    let default = app.store.workspace_id_by_name("Default").await?;
    for m in joining {
        // A pending invitation (an API-only user's) or anyone under that userid, perhaps
        // made since the read: leave it.
        if app.store.user(&m.email).await?.is_some() {
            continue;
        }
        let grants: Vec<(i64, i64)> = match (&standard, default) {
            (Some(role), Some(ws)) => vec![(role.id, ws)],
            _ => Vec::new(),
        };
        let clock_now = app.clock.now_ms();
        app.store
            .insert_user(
                &NewUser {
                    userid: &m.email,
                    email: &m.email,
                    first_name: &m.firstname,
                    last_name: &m.lastname,
                    api_only: false,
                    pending: false,
                    expires_at: None,
                    reason: Some("added through the Adobe Admin Console"),
                    invite_token: None,
                    invite_expires_at: None,
                    now: clock_now,
                },
                &grants,
            )
            .await?;
        added += 1;
    }
    let mut removed = 0;
    for (email, id) in leaving {
        app.store.delete_user(id).await?;
        state.missing_since.remove(&email);
        removed += 1;
    }
    if added + removed > 0 {
        tracing::info!(added, removed, "synced users from the Adobe Admin Console");
    }
    Ok((added, removed))
}
