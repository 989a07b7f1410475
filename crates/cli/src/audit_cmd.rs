//! `roster audit marketo`: the user x role x workspace matrix as a table, CSV, JSON or HTML.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use askama::Template;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use roster_domain::access::RoleAssignment;
use roster_marketo::audit::{self, Audit, Progress};
use roster_store::PendingInvite;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::args::{MarketoConn, Output, ReportFormat};
use crate::connect::{MARKETO, MarketoSession};
use crate::output::Table;
use roster_engine::Globals;

const USERS_FACT: &str = "users_at_last_audit";

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {what} {{pos}}/{{len}} [{{elapsed}}, ETA {{eta}}] {{wide_bar}}"
            ))
            .expect("a valid template"),
        );
    }
    bar
}

/// The audit's bar: users listed and read, and how long the rest takes at least, at the
/// subscription's rate limit (one call per user left): a bound the pacing sets, not a guess
/// from the pace so far.
struct Bar {
    bar: ProgressBar,
    calls_per_second: f64,
}

impl Bar {
    fn show_eta(&self) {
        let left = self
            .bar
            .length()
            .unwrap_or(0)
            .saturating_sub(self.bar.position());
        let seconds = (left as f64 / self.calls_per_second.max(0.001)).ceil() as u64;
        self.bar.set_message(format!(
            "at least {} left at the rate limit",
            humantime_seconds(seconds)
        ));
    }
}

/// `90` as `1m 30s`; past an hour, to the minute.
fn humantime_seconds(s: u64) -> String {
    let s = if s >= 3600 { s - s % 60 } else { s };
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

impl Progress for Bar {
    fn found(&self, n: usize) {
        self.bar.inc_length(n as u64);
        self.show_eta();
    }
    fn done(&self) {
        self.bar.inc(1);
        self.show_eta();
    }
}

/// Where an audit the daily quota interrupted keeps the users it read.
const CHECKPOINT_FACT: &str = "audit_checkpoint";

#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    #[serde(with = "time::serde::rfc3339")]
    saved_at: OffsetDateTime,
    users: Vec<audit::AuditedUser>,
}

/// How long until the daily quota resets (midnight US Central).
fn until_quota_reset(now: OffsetDateTime) -> time::Duration {
    let today = roster_domain::marketo_time::quota_day(now);
    let mut minutes = 1;
    while roster_domain::marketo_time::quota_day(now + time::Duration::minutes(minutes)) == today
        && minutes < 26 * 60
    {
        minutes += 1;
    }
    time::Duration::minutes(minutes)
}

pub async fn run(
    conn: &MarketoConn,
    format: ReportFormat,
    html: Option<PathBuf>,
    resume: bool,
    g: &Globals,
) -> Result<()> {
    let mut s = MarketoSession::open(conn, g).await?;
    let expected: usize = s
        .state
        .fact(MARKETO, &s.instance, USERS_FACT)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    s.client.quota().ensure(
        audit::estimated_calls(expected),
        &format!("an audit of about {expected} users"),
    )?;
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} reading roles {pos}/{len} users [{elapsed}, {msg}] {wide_bar}",
            )
            .expect("a valid template"),
        );
    }
    let checkpoint: Option<Checkpoint> = match s
        .state
        .fact(MARKETO, &s.instance, CHECKPOINT_FACT)
        .await?
        .filter(|v| !v.is_empty())
    {
        Some(text) => Some(serde_json::from_str(&text).with_context(|| {
            "the saved progress of the interrupted audit cannot be read; run the audit without --resume"
        })?),
        None => None,
    };
    let done = match (&checkpoint, resume) {
        (Some(c), true) => {
            eprintln!(
                "resuming the audit interrupted on {}: {} users already read",
                crate::output::rfc3339(c.saved_at),
                c.users.len()
            );
            c.users.clone()
        }
        (None, true) => anyhow::bail!(
            "no interrupted audit to resume on {}; run `roster audit marketo` without --resume",
            s.instance
        ),
        (_, false) => Vec::new(),
    };
    let config = s.client.config();
    let progress = Bar {
        bar: bar.clone(),
        calls_per_second: f64::from(config.rate_limit)
            / config.rate_window.as_secs_f64().max(0.001),
    };
    let result = audit::run_from(&s.client, Arc::new(progress), done).await;
    bar.finish_and_clear();
    s.record_usage().await?;
    let (audit, quota) = result?;
    if let Some(quota) = quota {
        // Keep what was read; the rest is read after the quota resets.
        let saved = Checkpoint {
            saved_at: OffsetDateTime::now_utc(),
            users: audit.users.clone(),
        };
        s.state
            .set_fact(
                MARKETO,
                &s.instance,
                CHECKPOINT_FACT,
                &serde_json::to_string(&saved)?,
            )
            .await?;
        let wait = until_quota_reset(OffsetDateTime::now_utc());
        eprintln!("{}", s.cost_line());
        return Err(anyhow::Error::new(quota).context(format!(
            "the daily quota ran out after {} users were read; they are saved in Roster's state. The quota resets at midnight US Central, in {}h{:02}m: then run `roster audit marketo --resume` to read only the rest",
            audit.users.len(),
            wait.whole_hours(),
            wait.whole_minutes() % 60
        )));
    }
    if checkpoint.is_some() {
        s.state
            .set_fact(MARKETO, &s.instance, CHECKPOINT_FACT, "")
            .await?;
    }
    s.state
        .set_fact(
            MARKETO,
            &s.instance,
            USERS_FACT,
            &audit.users.len().to_string(),
        )
        .await?;
    let pending = roster_engine::marketo_ops::tracked_invites(&s).await?;
    // On Adobe Identity, who holds the subscription's product profiles, beside the matrix.
    let ims = match &s.ims {
        Some(link) => Some({
            let shown: std::collections::HashSet<String> = audit
                .users
                .iter()
                .map(|u| u.user.email_address.to_lowercase())
                .collect();
            link.read(&s.state, &s.instance, |email| shown.contains(email))
                .await?
        }),
        None => None,
    };
    let mut report = Report::new(&s, &audit, &pending);
    report.ims = ims.as_ref();
    report.generated_by = roster_engine::actor::Actor::resolve(g.actor.as_deref()).name;
    report.head = match s.state.log_head(OffsetDateTime::now_utc()).await {
        Ok(h) => format!(
            "row {} ({}), signed {} by key {}",
            h.id,
            h.hash,
            crate::output::rfc3339(h.signed_at),
            h.key_id
        ),
        Err(e) => format!("unavailable: {e}"),
    };
    match format {
        ReportFormat::Table => {
            report.table().print(Output::Table)?;
            report.ims_callouts();
        }
        ReportFormat::Csv => report.table().print(Output::Csv)?,
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&crate::output::snake_keys(report.json()))?
        ),
        ReportFormat::Html => print!("{}", report.html()?),
    }
    if let Some(path) = html {
        // Who has which access is personal data: the report is private whatever the umask.
        roster_engine::private::write(&path, report.html()?)
            .with_context(|| format!("cannot write the HTML report to {}", path.display()))?;
        eprintln!("HTML report written to {}", path.display());
    }
    if !audit.vanished.is_empty() {
        eprintln!(
            "{} user(s) were deleted while the audit ran and are left out: {}",
            audit.vanished.len(),
            audit
                .vanished
                .iter()
                .map(|u| u.userid.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    eprintln!(
        "audited {} users ({} role grants, {} pending invitations tracked); calls used: {} (minimum possible: {}); {} retries; daily quota left: {} of {}",
        audit.users.len(),
        report.grants(),
        pending.len(),
        audit.stats.calls,
        report.minimum,
        audit.stats.retries,
        s.client.quota().remaining(),
        s.client.quota().limit()
    );
    Ok(())
}

struct Report<'a> {
    instance: &'a str,
    generated_at: String,
    /// Who ran the audit (`--actor`, ROSTER_ACTOR, else the OS account).
    generated_by: String,
    /// The audit log's signed head when the report was made.
    head: String,
    audit: &'a Audit,
    pending: &'a [PendingInvite],
    minimum: u64,
    quota_left: u64,
    quota_limit: u64,
    /// On Adobe Identity: the product profiles' holders.
    ims: Option<&'a roster_domain::live::ImsLive>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct Html<'a> {
    instance: &'a str,
    generated_at: &'a str,
    generated_by: &'a str,
    version: &'static str,
    head: &'a str,
    /// SHA-256 of what the report states (its `-o json` document).
    content_sha256: String,
    users: Vec<HtmlUser>,
    api_only: usize,
    grants: usize,
    without_roles: usize,
    matrix: Vec<Cell>,
    pending: Vec<HtmlPending>,
    calls: u64,
    minimum: u64,
    retries: u64,
    quota_left: u64,
    quota_limit: u64,
    /// On Adobe Identity: the subscription's product profiles and the two call-outs.
    adobe: Option<HtmlAdobe>,
}

struct HtmlAdobe {
    profiles: String,
    not_in_marketo: Vec<String>,
    without_profile: Vec<String>,
}

struct HtmlUser {
    email: String,
    name: String,
    api_only: bool,
    roles: Vec<String>,
    /// On Adobe Identity: identity type and the subscription's profiles held directly.
    adobe_identity: String,
    adobe_profiles: Vec<String>,
}

struct HtmlPending {
    email: String,
    name: String,
    invited_at: String,
    invited_by: String,
    roles: Vec<String>,
}

struct Cell {
    workspace: String,
    role: String,
    holders: Vec<String>,
}

impl<'a> Report<'a> {
    fn new(s: &'a MarketoSession, audit: &'a Audit, pending: &'a [PendingInvite]) -> Self {
        Self {
            instance: &s.instance,
            generated_at: crate::output::rfc3339(OffsetDateTime::now_utc()),
            generated_by: String::new(),
            head: String::new(),
            audit,
            pending,
            minimum: audit::minimum_calls(audit.users.len()),
            quota_left: s.client.quota().remaining(),
            quota_limit: s.client.quota().limit(),
            ims: None,
        }
    }

    /// On Adobe Identity, the two lists an auditor asks for: people given the product
    /// profile whom Marketo does not show (yet), and standard users in no product profile.
    fn ims_mismatches(&self) -> Option<(Vec<String>, Vec<String>)> {
        let ims = self.ims?;
        let in_marketo: std::collections::HashSet<String> = self
            .audit
            .users
            .iter()
            .map(|u| u.user.email_address.to_lowercase())
            .collect();
        let not_in_marketo = ims
            .users
            .keys()
            .filter(|email| !in_marketo.contains(*email))
            .cloned()
            .collect();
        let without_profile = self
            .audit
            .users
            .iter()
            .filter(|u| !u.user.api_only && ims.user(&u.user.email_address).is_none())
            .map(|u| u.user.email_address.clone())
            .collect();
        Some((not_in_marketo, without_profile))
    }

    fn ims_callouts(&self) {
        let Some((not_in_marketo, without_profile)) = self.ims_mismatches() else {
            return;
        };
        let profiles = self.ims.map(|i| i.profiles.join(", ")).unwrap_or_default();
        println!();
        println!(
            "Adobe Identity: in {profiles} but not in Marketo (its sync has not added them yet): {}",
            if not_in_marketo.is_empty() {
                "none".into()
            } else {
                roster_engine::text::sanitize(&not_in_marketo.join(", "))
            }
        );
        println!(
            "Adobe Identity: standard users in none of those profiles directly (Marketo removes them at its sync, unless a user group gives them one): {}",
            if without_profile.is_empty() {
                "none".into()
            } else {
                roster_engine::text::sanitize(&without_profile.join(", "))
            }
        );
    }

    /// The Adobe columns of a user's rows: identity type and the profiles they hold.
    fn adobe_cells(&self, email: &str) -> Vec<Value> {
        match self.ims.and_then(|i| i.user(email)) {
            Some(u) => vec![
                json!(u.identity_type),
                json!(u.profiles.iter().cloned().collect::<Vec<_>>().join("; ")),
            ],
            None => vec![Value::Null, Value::Null],
        }
    }

    fn grants(&self) -> usize {
        self.audit.users.iter().map(|u| u.roles.len()).sum()
    }

    /// One row per user and role; a user without roles still gets a row.
    fn table(&self) -> Table {
        let mut columns = vec![
            "email",
            "first name",
            "last name",
            "api only",
            "workspace",
            "role",
            "userid",
            "user id",
            "workspace id",
            "role id",
        ];
        if self.ims.is_some() {
            columns.extend(["adobe identity", "adobe profiles"]);
        }
        let mut t = Table::new(&columns);
        for u in &self.audit.users {
            let row = |r: Option<&RoleAssignment>| {
                let mut cells = vec![
                    json!(u.user.email_address),
                    json!(u.user.first_name),
                    json!(u.user.last_name),
                    json!(u.user.api_only),
                    r.map_or(Value::Null, |r| json!(r.workspace_name)),
                    r.map_or(Value::Null, |r| json!(r.role_name)),
                    json!(u.user.userid),
                    json!(u.user.id),
                    r.map_or(Value::Null, |r| json!(r.workspace_id)),
                    r.map_or(Value::Null, |r| json!(r.role_id)),
                ];
                if self.ims.is_some() {
                    cells.extend(self.adobe_cells(&u.user.email_address));
                }
                cells
            };
            if u.roles.is_empty() {
                t.push(row(None));
            }
            for r in &u.roles {
                t.push(row(Some(r)));
            }
        }
        t
    }

    fn json(&self) -> Value {
        let mut out = self.json_marketo();
        if let (Some(ims), Some((not_in_marketo, without_profile))) =
            (self.ims, self.ims_mismatches())
        {
            out["adobe"] = json!({
                "productProfiles": ims.profiles,
                "holders": ims.users.values().collect::<Vec<_>>(),
                "inProfileNotInMarketo": not_in_marketo,
                "inMarketoWithoutProfile": without_profile,
            });
        }
        out
    }

    fn json_marketo(&self) -> Value {
        let a = self.audit;
        json!({
            "app": MARKETO,
            "instance": self.instance,
            "generatedAt": self.generated_at,
            "users": a.users.iter().map(|u| {
                let mut v = serde_json::to_value(&u.user).expect("a user serialises");
                v["roles"] = serde_json::to_value(&u.roles).expect("roles serialise");
                v
            }).collect::<Vec<_>>(),
            "pendingInvites": self.pending.iter().map(|p| json!({
                "email": p.email,
                "firstName": p.first_name,
                "lastName": p.last_name,
                "invitedAt": crate::output::rfc3339(p.invited_at),
                "invitedBy": p.invited_by,
                "roles": p.roles,
            })).collect::<Vec<_>>(),
            "roles": a.directory.roles,
            "workspaces": a.directory.workspaces,
            "cost": {
                "calls": a.stats.calls,
                "minimumCalls": self.minimum,
                "retries": a.stats.retries,
                "rateLimited": a.stats.rate_limited,
                "dailyQuotaLeft": self.quota_left,
                "dailyQuota": self.quota_limit,
            },
        })
    }

    fn html(&self) -> Result<String> {
        let mut cells: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for u in &self.audit.users {
            for r in &u.roles {
                cells
                    .entry((r.workspace_name.clone(), r.role_name.clone()))
                    .or_default()
                    .push(u.user.email_address.clone());
            }
        }
        let page = Html {
            instance: self.instance,
            generated_at: &self.generated_at,
            generated_by: &self.generated_by,
            version: env!("CARGO_PKG_VERSION"),
            head: &self.head,
            content_sha256: roster_domain::sha256::hex(self.json().to_string().as_bytes()),
            users: self
                .audit
                .users
                .iter()
                .map(|u| {
                    let held = self.ims.and_then(|i| i.user(&u.user.email_address));
                    HtmlUser {
                        email: u.user.email_address.clone(),
                        name: format!("{} {}", u.user.first_name, u.user.last_name),
                        api_only: u.user.api_only,
                        roles: u.roles.iter().map(RoleAssignment::spec).collect(),
                        adobe_identity: held.map(|h| h.identity_type.clone()).unwrap_or_default(),
                        adobe_profiles: held
                            .map(|h| h.profiles.iter().cloned().collect())
                            .unwrap_or_default(),
                    }
                })
                .collect(),
            api_only: self.audit.users.iter().filter(|u| u.user.api_only).count(),
            grants: self.grants(),
            without_roles: self
                .audit
                .users
                .iter()
                .filter(|u| u.roles.is_empty())
                .count(),
            matrix: cells
                .into_iter()
                .map(|((workspace, role), holders)| Cell {
                    workspace,
                    role,
                    holders,
                })
                .collect(),
            pending: self
                .pending
                .iter()
                .map(|p| HtmlPending {
                    email: p.email.clone(),
                    name: format!("{} {}", p.first_name, p.last_name),
                    invited_at: crate::output::rfc3339(p.invited_at),
                    invited_by: p.invited_by.clone(),
                    roles: p.roles.iter().map(RoleAssignment::spec).collect(),
                })
                .collect(),
            calls: self.audit.stats.calls,
            minimum: self.minimum,
            retries: self.audit.stats.retries,
            quota_left: self.quota_left,
            quota_limit: self.quota_limit,
            adobe: self
                .ims_mismatches()
                .map(|(not_in_marketo, without_profile)| HtmlAdobe {
                    profiles: self.ims.map(|i| i.profiles.join(", ")).unwrap_or_default(),
                    not_in_marketo,
                    without_profile,
                }),
        };
        Ok(roster_domain::text::sanitize_document(&page.render()?))
    }
}

#[cfg(test)]
mod tests {
    use super::humantime_seconds;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(humantime_seconds(42), "42s");
        assert_eq!(humantime_seconds(90), "1m 30s");
        assert_eq!(humantime_seconds(7322), "2h 2m");
    }
}
