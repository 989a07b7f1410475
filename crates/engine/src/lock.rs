//! One writer at a time: a mutating command holds an exclusive lock on the state (and on
//! each app instance it changes) for as long as it runs. The lock is an OS file lock, so
//! it is released when the process ends, however it ends (kill -9 included).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

static WRITER: std::sync::OnceLock<(&'static str, Duration)> = std::sync::OnceLock::new();

/// Marks this process as a writer: connections it opens lock their app instance too.
pub fn set_writer(what: &'static str, wait: Duration) {
    let _ = WRITER.set((what, wait));
}

/// Locks an app instance for this process when it is a writer (see [`set_writer`]).
pub fn instance(state_dir: &Path, app: &str, instance: &str) -> Result<Option<Held>> {
    match WRITER.get() {
        Some((what, wait)) => {
            acquire(&instance_lock_path(state_dir, app, instance), what, *wait).map(Some)
        }
        None => Ok(None),
    }
}

/// Held while it lives; dropping it releases the lock.
#[derive(Debug)]
pub struct Held {
    _file: File,
}

/// Takes the lock in `path`, waiting at most `wait` for another holder to finish.
/// `what` names this command in the lock file, for the next one's message.
pub fn acquire(path: &Path, what: &str, wait: Duration) -> Result<Held> {
    if let Some(dir) = path.parent() {
        crate::private::create_dir(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    crate::private::restrict(path);
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    bail!(
                        "{} holds the state ({}); nothing was changed. Wait for it to finish and run this again, or raise --lock-wait",
                        holder_text(&holder),
                        path.display()
                    );
                }
                // Another process holds it: poll until it lets go or the wait runs out.
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
    let started = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{what}\t{}\t{started}", std::process::id())?;
    file.flush()?;
    Ok(Held { _file: file })
}

fn holder_text(raw: &str) -> String {
    let mut parts = raw.trim().splitn(3, '\t');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(what), Some(pid), Some(at)) if !what.is_empty() => {
            format!("another {what} (pid {pid}, started at {at})")
        }
        _ => "another roster command".into(),
    }
}

/// The state lock of `state_dir`.
pub fn state_lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("roster.lock")
}

/// The lock of one app instance, kept in the state directory.
/// The ledger through which Roster processes share an instance's API limits.
pub fn pacing_ledger_path(state_dir: &Path, app: &str, instance: &str) -> PathBuf {
    let digest = &roster_domain::sha256::hex(instance.as_bytes())[..16];
    state_dir
        .join("pacing")
        .join(format!("{app}-{digest}.ledger"))
}

pub fn instance_lock_path(state_dir: &Path, app: &str, instance: &str) -> PathBuf {
    let digest = &roster_domain::sha256::hex(instance.as_bytes())[..16];
    state_dir.join("locks").join(format!("{app}-{digest}.lock"))
}

/// This process as processes on other machines can tell it: `host:pid`.
pub fn this_process() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

/// This process as other processes are told it holds the state: `what (host:pid)`.
pub fn holder_name(what: &str) -> String {
    format!("{what} ({})", this_process())
}

/// Takes the writer lock of a PostgreSQL state (processes on every machine share it),
/// waiting at most `wait` for another holder to finish.
pub async fn database(
    store: &roster_store::StateStore,
    what: &str,
    wait: Duration,
) -> Result<roster_store::SessionLock> {
    let me = holder_name(what);
    let deadline = Instant::now() + wait;
    loop {
        if let Some(held) = store.try_writer_lock(&me).await? {
            return Ok(held);
        }
        if Instant::now() >= deadline {
            let holder = match store.writer_lock_holder().await? {
                Some((who, since)) => format!("another {who}, since {since},"),
                None => "another roster process".into(),
            };
            bail!(
                "{holder} holds the state in {}; nothing was changed. Wait for it to finish and run this again, or raise --lock-wait",
                store.path().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_lock_path(dir.path());
        let first = acquire(&path, "roster apply", Duration::ZERO).unwrap();
        let err = acquire(&path, "roster apply", Duration::from_millis(120)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("another roster apply (pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        acquire(&path, "roster apply", Duration::ZERO).expect("free once the first is dropped");
    }
}
