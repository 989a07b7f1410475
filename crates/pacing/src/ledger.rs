//! A subscription's limits shared by every Roster process on this machine. Marketo counts
//! calls per subscription, not per client: two `roster audit` runs that each keep 100 calls
//! per 20 s and 10 in flight together send 200 and 20, and draw 606 and 615. Each process
//! therefore records every call in one ledger file per instance, under an exclusive file
//! lock: when it was sent, and when it was answered. A call is admitted only when, counting
//! every process's calls, fewer than the limit are in the window and fewer than the maximum
//! are in flight.
//!
//! A process that dies mid-call leaves an open entry; it is dropped once its process is gone
//! (or after the request time-out), while its answered calls keep counting for the window,
//! because the server saw them.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a process waiting only for other processes' calls in flight looks again.
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    limit: usize,
    max_in_flight: usize,
    /// The window plus a margin, in milliseconds.
    window_ms: u64,
    /// After this long an open entry is stale whatever its process.
    stale_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    pid: u32,
    id: u64,
    sent_ms: u64,
    /// 0 while the call is in flight.
    answered_ms: u64,
}

/// An admission as a future: the call's id and whether it waited, or what went wrong.
pub type Admitting<'a> = Pin<Box<dyn Future<Output = Result<(u64, bool), String>> + Send + 'a>>;

/// Where the calls of a subscription are counted across processes, so that together they
/// keep its limits: this module's file (processes on one machine), or a database that
/// processes on many machines share (Roster's PostgreSQL state provides one).
pub trait SharedPacing: Send + Sync + std::fmt::Debug {
    /// Waits until every process's calls leave room for one more, and records it as sent;
    /// returns its id and whether it had to wait. An error says what could not be used.
    fn admit(&self) -> Admitting<'_>;
    /// Records the answer of the admitted call `id` (also for a call abandoned midway).
    fn release(&self, id: u64);
    /// How long until the oldest call in the window leaves it, as last seen.
    fn until_window_edge(&self) -> Option<Duration>;
}

/// An admitted call. Dropping it records the answer, so a call whose caller gave up (an
/// aborted worker) leaves the in-flight count at once, like the pacer's ticket, and keeps
/// counting in the window.
#[derive(Debug)]
pub struct Slot {
    pacing: std::sync::Arc<dyn SharedPacing>,
    id: u64,
}

impl Slot {
    pub async fn admit(pacing: &std::sync::Arc<dyn SharedPacing>) -> Result<(Slot, bool), String> {
        let (id, waited) = pacing.admit().await?;
        Ok((
            Slot {
                pacing: std::sync::Arc::clone(pacing),
                id,
            },
            waited,
        ))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pacing.release(self.id);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        // Signal 0 checks that the process exists without touching it.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

impl Ledger {
    pub fn new(
        path: &Path,
        limit: u32,
        window: Duration,
        max_in_flight: usize,
        request_timeout: Duration,
    ) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            limit: (limit as usize).max(1),
            max_in_flight: max_in_flight.max(1),
            window_ms: window.as_millis() as u64 + 50,
            stale_ms: request_timeout.as_millis() as u64 + window.as_millis() as u64,
        })
    }

    /// Runs `f` on the entries under the file lock, and writes them back.
    fn with_entries<T>(&self, f: impl FnOnce(&mut Vec<Entry>, u64) -> T) -> std::io::Result<T> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        // 0600 whatever the umask, and never through a planted link: it names the
        // processes using the subscription, and is Roster's alone to write.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        let mut file: File = options.open(&self.path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if file.metadata()?.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
        }
        file.lock()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let now = now_ms();
        let mut entries: Vec<Entry> = text
            .lines()
            .filter_map(|l| {
                let mut p = l.split_whitespace().map(str::parse::<u64>);
                Some(Entry {
                    pid: p.next()?.ok()? as u32,
                    id: p.next()?.ok()?,
                    sent_ms: p.next()?.ok()?,
                    answered_ms: p.next()?.ok()?,
                })
            })
            .filter(|e| {
                if e.answered_ms == 0 {
                    now.saturating_sub(e.sent_ms) < self.stale_ms && alive(e.pid)
                } else {
                    e.answered_ms + self.window_ms > now
                }
            })
            .collect();
        let out = f(&mut entries, now);
        let mut text = String::with_capacity(entries.len() * 40);
        for e in &entries {
            text.push_str(&format!(
                "{} {} {} {}\n",
                e.pid, e.id, e.sent_ms, e.answered_ms
            ));
        }
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        file.write_all(text.as_bytes())?;
        file.unlock()?;
        Ok(out)
    }

    /// When (ms since the epoch) the oldest answered call leaves the window.
    fn window_edge(&self, entries: &[Entry]) -> Option<u64> {
        entries
            .iter()
            .filter(|e| e.answered_ms != 0)
            .map(|e| e.answered_ms + self.window_ms)
            .min()
    }

    /// Waits until every process's calls leave room for one more; returns the call's id
    /// and whether it waited.
    pub async fn admit_call(&self) -> std::io::Result<(u64, bool)> {
        let id = fastrand::u64(..);
        let pid = std::process::id();
        let mut waited = false;
        loop {
            let wake = self.with_entries(|entries, now| {
                let open = entries.iter().filter(|e| e.answered_ms == 0).count();
                let in_window = entries.len();
                if open < self.max_in_flight && in_window < self.limit {
                    entries.push(Entry {
                        pid,
                        id,
                        sent_ms: now,
                        answered_ms: 0,
                    });
                    return None;
                }
                // The window frees up when its oldest answered call leaves it; calls in
                // flight free up when they are answered, which only polling sees.
                Some(match self.window_edge(entries) {
                    Some(at) if in_window >= self.limit && open < self.max_in_flight => {
                        Duration::from_millis(at.saturating_sub(now).max(1))
                    }
                    _ => POLL,
                })
            })?;
            match wake {
                None => return Ok((id, waited)),
                Some(delay) => {
                    waited = true;
                    tokio::time::sleep(delay.min(Duration::from_secs(5))).await;
                }
            }
        }
    }

    /// Records the answer of the admitted call `id`.
    fn release_call(&self, id: u64) {
        let result = self.with_entries(|entries, now| {
            if let Some(e) = entries.iter_mut().find(|e| e.id == id) {
                e.answered_ms = now.max(e.sent_ms);
            }
        });
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record a call in the shared pacing ledger");
        }
    }

    /// How long until the oldest call in the window leaves it (None when none is recorded).
    fn edge(&self) -> Option<Duration> {
        self.with_entries(|entries, now| {
            self.window_edge(entries)
                .map(|at| Duration::from_millis(at.saturating_sub(now)))
        })
        .ok()
        .flatten()
    }
}

impl SharedPacing for Ledger {
    fn admit(&self) -> Admitting<'_> {
        Box::pin(async move {
            self.admit_call().await.map_err(|e| {
                format!(
                    "the pacing ledger {}: {e}; check that Roster's state directory is writable",
                    self.path.display()
                )
            })
        })
    }

    fn release(&self, id: u64) {
        self.release_call(id);
    }

    fn until_window_edge(&self) -> Option<Duration> {
        self.edge()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_ledgers_on_one_file_share_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ledger");
        let a: std::sync::Arc<dyn SharedPacing> = std::sync::Arc::new(
            Ledger::new(
                &path,
                3,
                Duration::from_secs(60),
                2,
                Duration::from_secs(60),
            )
            .unwrap(),
        );
        let b: std::sync::Arc<dyn SharedPacing> = std::sync::Arc::new(
            Ledger::new(
                &path,
                3,
                Duration::from_secs(60),
                2,
                Duration::from_secs(60),
            )
            .unwrap(),
        );
        let (s1, _) = Slot::admit(&a).await.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the ledger is private whatever the umask");
        }
        let (s2, _) = Slot::admit(&b).await.unwrap();
        // Two in flight across both: a third waits until one is answered.
        let third = Slot::admit(&a);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut third)
                .await
                .is_err(),
            "a third call in flight was admitted"
        );
        drop(s1);
        let (_s3, waited) = third.await.unwrap();
        assert!(waited);
        // Three calls in the 60 s window: a fourth is refused until the window moves.
        drop(s2);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), Slot::admit(&a))
                .await
                .is_err(),
            "a fourth call in the window was admitted"
        );
        assert!(b.until_window_edge().unwrap() > Duration::from_secs(50));
    }

    #[tokio::test]
    async fn a_dead_process_open_call_does_not_block_forever() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ledger");
        // An open call of a process that cannot exist (above the largest pid Linux allows).
        std::fs::write(&path, format!("{} 1 {} 0\n", 4_194_999u32, now_ms())).unwrap();
        let l: std::sync::Arc<dyn SharedPacing> = std::sync::Arc::new(
            Ledger::new(
                &path,
                10,
                Duration::from_secs(60),
                1,
                Duration::from_secs(60),
            )
            .unwrap(),
        );
        let (_slot, waited) = Slot::admit(&l).await.unwrap();
        assert!(!waited);
    }
}
