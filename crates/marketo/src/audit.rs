//! The audit read: every accepted user with every role in every workspace, for the fewest
//! calls the API allows.
//!
//! Calls: roles and workspaces once each, `allusers.json` in pages of 200 (one more page than
//! N / 200 to see the end), and one `user.json` per user (roles and expiry together). The per-user lookups start as
//! soon as their page arrives, in parallel up to the client's in-flight limit, while the
//! next page is fetched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use roster_domain::access::RoleAssignment;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

use crate::client::{Client, MAX_PAGE_SIZE};
use crate::directory::Directory;
use crate::error::MarketoError;
use crate::model::UserSummary;
use crate::stats::CallStats;

/// Told how the audit is going (to drive a progress bar).
pub trait Progress: Send + Sync {
    /// `n` more users were listed.
    fn found(&self, n: usize);
    /// One more user's roles were read.
    fn done(&self);
}

/// For callers that do not show progress.
pub struct Quiet;

impl Progress for Quiet {
    fn found(&self, _: usize) {}
    fn done(&self) {}
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditedUser {
    pub user: UserSummary,
    pub roles: Vec<RoleAssignment>,
    /// When the login expires. `allusers.json` does not say, so the audit reads each user
    /// with `user.json`, which gives this and the roles in the one call `roles.json` would cost.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
    /// `isLocked` from the same `user.json` read (older checkpoints lack it).
    #[serde(default)]
    pub locked: bool,
    /// `lastLoginAt` from the same read.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_login_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub directory: Directory,
    /// In the order the API listed them.
    pub users: Vec<AuditedUser>,
    /// Users listed but deleted before their roles could be read.
    pub vanished: Vec<UserSummary>,
    /// Users listed whose roles a targeted read ([`run_only`]) did not ask for.
    pub unread: Vec<UserSummary>,
    /// What this audit cost.
    pub stats: CallStats,
}

/// The fewest calls an audit of `users` accepted users can make.
pub fn minimum_calls(users: usize) -> u64 {
    (2 + users / MAX_PAGE_SIZE + 1 + users) as u64
}

/// The calls to budget before starting, from a previous count of users (or a guess).
pub fn estimated_calls(expected_users: usize) -> u64 {
    minimum_calls(expected_users)
}

type Found = Result<Vec<(usize, AuditedUser)>, MarketoError>;

/// The daily quota ran out: Marketo's 607, or Roster's own budget refusing the next call.
pub fn is_quota(e: &MarketoError) -> bool {
    matches!(e, MarketoError::QuotaBudget { .. }) || e.api().is_some_and(|f| f.code_is("607"))
}

/// A whole audit; a quota that runs out mid-way is an error (nothing may be planned from a
/// partial read).
pub async fn run(client: &Client, progress: Arc<dyn Progress>) -> Result<Audit, MarketoError> {
    match run_from(client, progress, Vec::new()).await? {
        (audit, None) => Ok(audit),
        (_, Some(quota)) => Err(quota),
    }
}

/// Which listed users a read looks up (roles, expiry): all, or a targeted read's.
type Only = Arc<dyn Fn(&UserSummary) -> bool + Send + Sync>;

/// A targeted read: the whole user list (pages of 200), but roles and expiry only of the
/// users `only` accepts; the others come back in [`Audit::unread`]. What a plan about a few
/// people costs: the list's pages, the reference data and one call per person, not per user.
pub async fn run_only(
    client: &Client,
    progress: Arc<dyn Progress>,
    only: impl Fn(&UserSummary) -> bool + Send + Sync + 'static,
) -> Result<Audit, MarketoError> {
    match run_inner(client, progress, Vec::new(), Some(Arc::new(only))).await? {
        (audit, None) => Ok(audit),
        (_, Some(quota)) => Err(quota),
    }
}

/// An audit that reuses `done` (users read by an interrupted audit) and reads only the rest.
/// When the daily quota runs out part-way, it returns what it read with the quota error, so
/// the caller can keep it and resume later. Before any per-user call it checks, from the
/// first page of users, that the budget covers the rest, and refuses if it cannot.
pub async fn run_from(
    client: &Client,
    progress: Arc<dyn Progress>,
    done: Vec<AuditedUser>,
) -> Result<(Audit, Option<MarketoError>), MarketoError> {
    run_inner(client, progress, done, None).await
}

async fn run_inner(
    client: &Client,
    progress: Arc<dyn Progress>,
    done: Vec<AuditedUser>,
    only: Option<Only>,
) -> Result<(Audit, Option<MarketoError>), MarketoError> {
    let unread = std::sync::Mutex::new(Vec::new());
    let done: std::collections::HashMap<String, AuditedUser> = done
        .into_iter()
        .map(|u| (u.user.userid.to_lowercase(), u))
        .collect();
    let reused = Arc::new(std::sync::Mutex::new(Vec::new()));
    let quota_error: Arc<std::sync::Mutex<Option<MarketoError>>> =
        Arc::new(std::sync::Mutex::new(None));
    let before = client.stats();
    let (tx, rx) = mpsc::unbounded_channel::<(usize, UserSummary)>();
    let rx = Arc::new(Mutex::new(rx));
    let failed = Arc::new(AtomicBool::new(false));
    let mut workers: JoinSet<Found> = JoinSet::new();
    let vanished = Arc::new(std::sync::Mutex::new(Vec::new()));
    for _ in 0..client.config().max_in_flight.max(1) {
        let (client, rx, progress, failed, vanished, quota_error) = (
            client.clone(),
            rx.clone(),
            progress.clone(),
            failed.clone(),
            vanished.clone(),
            quota_error.clone(),
        );
        workers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let next = rx.lock().await.recv().await;
                let Some((index, user)) = next else {
                    return Ok(mine);
                };
                if failed.load(Ordering::Relaxed) {
                    return Ok(mine);
                }
                match client.user(&user.userid).await {
                    Ok(found) => mine.push((
                        index,
                        AuditedUser {
                            user,
                            roles: found.roles,
                            expires_at: found.expires_at,
                            locked: found.is_locked,
                            last_login_at: found.last_login_at,
                        },
                    )),
                    Err(e) if e.is_not_found() => {
                        vanished.lock().expect("vanished list").push(user);
                    }
                    Err(e) if is_quota(&e) => {
                        // Keep what was read; the rest waits for tomorrow's quota.
                        failed.store(true, Ordering::Relaxed);
                        quota_error.lock().expect("quota slot").get_or_insert(e);
                        return Ok(mine);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                progress.done();
            }
        });
    }
    let pages = async {
        let mut listed = 0usize;
        loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let page = match client.users_page(listed, MAX_PAGE_SIZE).await {
                Ok(page) => page,
                Err(e) if is_quota(&e) => {
                    failed.store(true, Ordering::Relaxed);
                    quota_error.lock().expect("quota slot").get_or_insert(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            let last = page.len() < MAX_PAGE_SIZE;
            let first = listed == 0;
            // Users a targeted read skips still take their place in the list's paging.
            listed += page.len();
            let mut index = listed - page.len();
            let (page, skipped): (Vec<UserSummary>, Vec<UserSummary>) = match &only {
                Some(only) => page.into_iter().partition(|u| only(u)),
                None => (page, Vec::new()),
            };
            progress.found(skipped.len());
            for _ in &skipped {
                progress.done();
            }
            unread.lock().expect("unread list").extend(skipped);
            let to_read = page
                .iter()
                .filter(|u| !done.contains_key(&u.userid.to_lowercase()))
                .count() as u64;
            if first && last {
                // The first page is the whole list: check the budget covers every per-user
                // call before making any.
                client
                    .quota()
                    .ensure(to_read, &format!("reading the roles of {to_read} users"))?;
            }
            progress.found(page.len());
            for user in page {
                match done.get(&user.userid.to_lowercase()) {
                    Some(known) => {
                        reused
                            .lock()
                            .expect("reused list")
                            .push((index, known.clone()));
                        progress.done();
                    }
                    // The workers only stop when the channel closes, so this cannot fail.
                    None => {
                        let _ = tx.send((index, user));
                    }
                }
                index += 1;
            }
            if last {
                break;
            }
        }
        drop(tx);
        Ok::<_, MarketoError>(())
    };
    let (directory, ()) = match tokio::try_join!(client.directory(), pages) {
        Ok(done) => done,
        Err(e) => {
            workers.abort_all();
            return Err(e);
        }
    };
    let mut found = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(mine)) => found.extend(mine),
            Ok(Err(e)) => {
                workers.abort_all();
                return Err(e);
            }
            Err(join) => {
                workers.abort_all();
                return Err(MarketoError::Config(format!(
                    "an audit worker stopped unexpectedly: {join}"
                )));
            }
        }
    }
    found.extend(std::mem::take(&mut *reused.lock().expect("reused list")));
    found.sort_by_key(|(index, _)| *index);
    let after = client.stats();
    let vanished = std::mem::take(&mut *vanished.lock().expect("vanished list"));
    let quota = quota_error.lock().expect("quota slot").take();
    let audit = Audit {
        directory,
        users: found.into_iter().map(|(_, u)| u).collect(),
        vanished,
        unread: unread.into_inner().expect("unread list"),
        stats: CallStats {
            calls: after.calls - before.calls,
            retries: after.retries - before.retries,
            rate_limited: after.rate_limited - before.rate_limited,
            token_refreshes: after.token_refreshes - before.token_refreshes,
            paced_waits: after.paced_waits - before.paced_waits,
        },
    };
    Ok((audit, quota))
}

#[cfg(test)]
mod tests {
    use super::minimum_calls;

    #[test]
    fn minimum_counts_the_page_that_shows_the_end() {
        assert_eq!(minimum_calls(0), 3);
        assert_eq!(minimum_calls(7), 2 + 1 + 7);
        assert_eq!(minimum_calls(199), 2 + 1 + 199);
        assert_eq!(minimum_calls(200), 2 + 2 + 200);
        assert_eq!(minimum_calls(2000), 2 + 11 + 2000);
    }
}
