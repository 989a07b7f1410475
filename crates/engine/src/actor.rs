//! Who is acting: the operating-system account the process runs as (from the password
//! database, not the environment, which anyone can set), and the name given with
//! `--actor` / `ROSTER_ACTOR` for service accounts. The audit log records both.

use roster_store::NewLogEntry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The name recorded as the actor: the one given, else the OS account.
    pub name: String,
    /// The OS account, always.
    pub os_user: String,
}

impl Actor {
    pub fn resolve(given: Option<&str>) -> Self {
        let os_user = os_user();
        let name = given
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map_or_else(|| os_user.clone(), str::to_string);
        Self { name, os_user }
    }

    /// An audit-log line by this actor; the caller fills in what happened.
    pub fn log(&self, app: &str, action: &str, target: &str, outcome: &str) -> NewLogEntry {
        NewLogEntry {
            actor: self.name.clone(),
            os_user: self.os_user.clone(),
            app: app.into(),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
            ..NewLogEntry::default()
        }
    }
}

/// The OS account name of the real user id, or `uid N` when the password database has no
/// entry for it (as in some containers).
#[cfg(unix)]
pub fn os_user() -> String {
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live local of the right size; getpwuid_r writes the
    // entry's strings into `buf` and sets `result` to `&mut pwd` on success.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        if let Ok(name) = name.to_str()
            && !name.is_empty()
        {
            return name.to_string();
        }
    }
    format!("uid {uid}")
}

#[cfg(not(unix))]
pub fn os_user() -> String {
    std::env::var("USERNAME").unwrap_or_else(|_| "unknown".into())
}

/// Writes the audit-log line of a command that changed (or tried to change) an app:
/// `done`, or `failed` with the error, so refusals and failures are on record too.
pub async fn record<T>(
    state: &roster_store::StateStore,
    actor: &Actor,
    app: &str,
    action: &str,
    target: &str,
    detail: Option<String>,
    result: &anyhow::Result<T>,
) -> anyhow::Result<()> {
    let mut entry = actor.log(
        app,
        action,
        target,
        if result.is_ok() { "done" } else { "failed" },
    );
    entry.detail = match (detail, result) {
        (d, Ok(_)) => d,
        (Some(d), Err(e)) => Some(format!("{d}: {e:#}")),
        (None, Err(e)) => Some(format!("{e:#}")),
    };
    state
        .append_log(&entry, time::OffsetDateTime::now_utc())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_account_ignores_the_environment() {
        // SAFETY: a unit test in its own process section; nothing else reads USER here.
        let before = os_user();
        unsafe { std::env::set_var("USER", "someone-else") };
        assert_eq!(os_user(), before);
        assert_ne!(before, "someone-else");
    }

    #[test]
    fn a_given_name_wins_but_the_os_account_is_kept() {
        let a = Actor::resolve(Some("svc-okta"));
        assert_eq!(a.name, "svc-okta");
        assert_eq!(a.os_user, os_user());
        assert_eq!(Actor::resolve(Some("  ")).name, os_user());
    }
}
