//! The sandbox's hot reads from memory: token -> caller, user by userid, a user's grants.
//!
//! Every read through sqlx is a hand-off to a worker thread and back, and `user.json` took
//! four; most of the sandbox's time went there. The cache keeps what was read, and forgets
//! everything whenever the database changed. Writes go to SQLite as before (persistence and
//! restarts are unchanged).
//!
//! "The database changed" is read off the write-ahead log, whoever wrote it: this server, or
//! `roster sandbox marketo admin` in another process while it runs. The log's size and
//! header alone do not say it: after a checkpoint restarts the log, SQLite writes the next
//! commits over the old frames from the start, so the file keeps its length and its header
//! (written once per restart) until the log outgrows what it was. Those commits went unseen
//! and the sandbox answered from stale entries. The wal-index (`-shm`) header does change on
//! every commit (its change counter and frame count), so the stamp is the log's size and
//! header and the wal-index header's first 48 bytes. A read costs two `pread`s and an
//! `fstat`, with no thread hand-off.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::store::{Caller, Grant, UserRow};

/// The committed state of the database, as the write-ahead log shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    size: u64,
    header: [u8; 32],
    /// The wal-index header (`WalIndexHdr`: change counter, frame count, salts, checksums).
    index: [u8; 48],
}

#[derive(Debug, Default)]
struct Entries {
    stamp: Option<Stamp>,
    callers: HashMap<String, Option<(i64, Caller)>>,
    users: HashMap<String, Option<UserRow>>,
    grants: HashMap<i64, Vec<Grant>>,
}

#[derive(Debug)]
pub struct ReadCache {
    wal: PathBuf,
    shm: PathBuf,
    /// The log and its wal-index, kept open between reads (reopened when SQLite replaced
    /// them).
    file: RwLock<Option<(File, File)>>,
    /// Read-locked by every hit, so concurrent requests do not wait for each other.
    entries: RwLock<Entries>,
}

impl ReadCache {
    pub fn new(database: &Path) -> Self {
        Self {
            wal: PathBuf::from(format!("{}-wal", database.display())),
            shm: PathBuf::from(format!("{}-shm", database.display())),
            file: RwLock::new(None),
            entries: RwLock::new(Entries::default()),
        }
    }

    /// The log's current stamp; None when it cannot be read (then nothing is cached).
    pub fn stamp(&self) -> Option<Stamp> {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let read = |(file, shm): &(File, File)| {
            // A log SQLite deleted (all its connections closed) has no links left.
            let meta = file.metadata().ok().filter(|m| m.nlink() > 0)?;
            shm.metadata().ok().filter(|m| m.nlink() > 0)?;
            let mut header = [0u8; 32];
            if meta.len() >= 32 {
                file.read_exact_at(&mut header, 0).ok()?;
            }
            let mut index = [0u8; 48];
            shm.read_exact_at(&mut index, 0).ok()?;
            Some(Stamp {
                size: meta.len(),
                header,
                index,
            })
        };
        if let Some(stamp) = self
            .file
            .read()
            .expect("wal handle lock")
            .as_ref()
            .and_then(read)
        {
            return Some(stamp);
        }
        let mut open = self.file.write().expect("wal handle lock");
        *open = File::open(&self.wal).ok().zip(File::open(&self.shm).ok());
        open.as_ref().and_then(read)
    }

    /// Looks `key` up with `pick`, valid for `now` (the stamp just read); forgets everything
    /// first when the database changed since the entries were read.
    fn lookup<T: Clone>(
        &self,
        now: Option<Stamp>,
        pick: impl FnOnce(&Entries) -> Option<T>,
    ) -> Option<T> {
        let now = now?;
        {
            let e = self.entries.read().expect("read cache lock");
            if e.stamp == Some(now) {
                return pick(&e);
            }
        }
        let mut e = self.entries.write().expect("read cache lock");
        if e.stamp != Some(now) {
            *e = Entries {
                stamp: Some(now),
                ..Entries::default()
            };
        }
        None
    }

    /// Keeps a value read from SQLite after `before` was stamped, unless the database
    /// changed meanwhile (the value may then be older than the entries'): `put` runs only
    /// when the stamp is still the same.
    fn keep(&self, before: Option<Stamp>, put: impl FnOnce(&mut Entries)) {
        let (Some(before), Some(after)) = (before, self.stamp()) else {
            return;
        };
        let mut e = self.entries.write().expect("read cache lock");
        if before == after && e.stamp == Some(after) {
            put(&mut e);
        }
    }

    pub fn caller(&self, now: Option<Stamp>, token: &str) -> Option<Option<(i64, Caller)>> {
        self.lookup(now, |e| e.callers.get(token).cloned())
    }

    pub fn keep_caller(&self, before: Option<Stamp>, token: &str, v: &Option<(i64, Caller)>) {
        self.keep(before, |e| {
            e.callers.insert(token.to_string(), v.clone());
        });
    }

    pub fn user(&self, now: Option<Stamp>, userid: &str) -> Option<Option<UserRow>> {
        self.lookup(now, |e| e.users.get(&userid.to_ascii_lowercase()).cloned())
    }

    pub fn keep_user(&self, before: Option<Stamp>, userid: &str, v: &Option<UserRow>) {
        self.keep(before, |e| {
            e.users.insert(userid.to_ascii_lowercase(), v.clone());
        });
    }

    pub fn grants(&self, now: Option<Stamp>, user_id: i64) -> Option<Vec<Grant>> {
        self.lookup(now, |e| e.grants.get(&user_id).cloned())
    }

    pub fn keep_grants(&self, before: Option<Stamp>, user_id: i64, v: &[Grant]) {
        self.keep(before, |e| {
            e.grants.insert(user_id, v.to_vec());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

    /// After a checkpoint restarts the log, each commit overwrites old frames: the log
    /// keeps its size and header. Every commit must still change the stamp.
    #[tokio::test]
    async fn every_commit_changes_the_stamp_even_after_the_log_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE t (v TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        // Grow the log well past what the commits below take.
        for _ in 0..50 {
            sqlx::query("INSERT INTO t VALUES (randomblob(3000))")
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(&pool)
            .await
            .unwrap();
        let cache = ReadCache::new(&path);
        let mut seen = vec![cache.stamp().expect("a stamp")];
        for i in 0..5 {
            sqlx::query("INSERT INTO t VALUES ($1)")
                .bind(i.to_string())
                .execute(&pool)
                .await
                .unwrap();
            let now = cache.stamp().expect("a stamp");
            assert!(!seen.contains(&now), "commit {i} left the stamp as it was");
            seen.push(now);
        }
        // The case that went unseen: a log of the same size and header as before.
        let (a, b) = (seen[2], seen[3]);
        assert_eq!(
            (a.size, a.header),
            (b.size, b.header),
            "the log restarted in place"
        );
        pool.close().await;
    }
}
