//! Plans, the journal of their steps, and the audit log.
//!
//! A step is journaled `started` before its call and `done` or `failed` after, under a key
//! unique to that step of that plan. A rerun skips `done` steps and re-runs the others with
//! "already done" counted as success, so a crash at any moment loses nothing and repeats
//! nothing. The audit log is append-only: SQLite triggers refuse UPDATE and DELETE.

use roster_keys::{KeyError, Keyring, Purpose};
use sqlx::Row;
use time::OffsetDateTime;

use crate::{Backend, Result, StateStore, StoreError, from_ms, ms};

/// The columns [`entry_of`] reads, in its order.
macro_rules! log_columns {
    () => {
        "id, at, actor, os_user, plan_id, step_key, app, action, target, outcome, detail, prev_hash, hash, instance, sig"
    };
}
pub(crate) use log_columns;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Begun; whether its call reached the app is unknown.
    Started,
    Done,
    /// Every attempt failed, but a write may have landed anyway (an answer lost to a
    /// time-out, a gateway error after the app acted): the next run reads the apps and
    /// records it `done` (with its audit-log line) or `failed`.
    Unsettled,
    Failed,
}

impl StepStatus {
    fn as_str(self) -> &'static str {
        match self {
            StepStatus::Started => "started",
            StepStatus::Done => "done",
            StepStatus::Unsettled => "unsettled",
            StepStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "started" => Some(StepStatus::Started),
            "done" => Some(StepStatus::Done),
            "unsettled" => Some(StepStatus::Unsettled),
            "failed" => Some(StepStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub step: usize,
    pub key: String,
    pub status: StepStatus,
    pub detail: Option<String>,
}

/// An approver's SSH signature over a plan's digest (`roster approve --key`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSignature {
    pub plan_id: String,
    pub digest: String,
    /// The name the roster lists with the key, when it was recorded.
    pub approver: String,
    /// The key's `SHA256:` fingerprint.
    pub fingerprint: String,
    /// The armored `-----BEGIN SSH SIGNATURE-----` block.
    pub signature: String,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub by: String,
    pub os_user: String,
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: i64,
    pub at: OffsetDateTime,
    /// Who Roster was told is acting (`--actor`, `ROSTER_ACTOR`), else the OS account.
    pub actor: String,
    /// The operating-system account the process ran as.
    pub os_user: String,
    pub plan_id: Option<String>,
    pub step_key: Option<String>,
    pub app: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
    /// The instance of `app` the line was made on (its Marketo or Magento base URL):
    /// several instances share one state, and the same account can be on each. Part of
    /// the row and of its hash, like every field `roster log` shows. `None` for lines
    /// without an instance and for lines written before Roster recorded it in the row.
    pub instance: Option<String>,
    /// The hash of the row before (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this row's content: see [`row_hash`].
    pub hash: String,
    /// The signing key's signature over `hash` (`ed25519:KEY-ID:BASE64`): what makes the
    /// chain keyed. Recomputing the hashes after an edit needs the key to sign them again.
    pub signature: Option<String>,
}

/// A new audit-log line (the id and time are assigned when it is written).
#[derive(Debug, Clone, Default)]
pub struct NewLogEntry {
    pub actor: String,
    pub os_user: String,
    pub plan_id: Option<String>,
    pub step_key: Option<String>,
    pub app: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
    /// The instance of `app` the line is about, if any (see [`LogEntry::instance`]).
    pub instance: Option<String>,
}

/// A signed statement of the log's newest row: saved outside the database (by an auditor,
/// a webhook receiver, a SIEM), it later proves that no row up to it was removed or
/// changed, which a chain alone cannot (a cut tail leaves a valid chain).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogHead {
    /// The newest row's id (0 for an empty log).
    pub id: i64,
    /// That row's hash (64 zeros for an empty log).
    pub hash: String,
    /// When the head was signed, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub signed_at: OffsetDateTime,
    /// The id of the key that signed it.
    pub key_id: String,
    /// `ed25519:KEY-ID:BASE64` over id, hash and time.
    pub signature: String,
}

impl LogHead {
    fn body(id: i64, hash: &str, at: OffsetDateTime) -> String {
        format!("{id}\n{hash}\n{}", ms(at))
    }

    /// Checks the head's own signature.
    pub fn verify(&self, keys: &Keyring) -> std::result::Result<(), KeyError> {
        keys.verify(
            Purpose::LogHead,
            Self::body(self.id, &self.hash, self.signed_at).as_bytes(),
            Some(&self.signature),
            &format!("the log head at row {}", self.id),
        )
        .map(|_| ())
    }
}

/// Whether `sig` is the signing key's word for this approval of plan `id`'s content.
fn check_approval(
    keys: &Keyring,
    id: &str,
    digest: &str,
    approval: &Approval,
    sig: Option<&str>,
) -> std::result::Result<String, KeyError> {
    keys.verify(
        Purpose::Approval,
        approval_body(id, digest, approval).as_bytes(),
        sig,
        &format!("the approval of {id} recorded for {}", approval.by),
    )
}

fn approval_body(plan_id: &str, digest: &str, a: &Approval) -> String {
    serde_json::json!([plan_id, digest, a.by, a.os_user, ms(a.at)]).to_string()
}

impl StateStore {
    /// Records a plan (once; saving it again changes nothing).
    /// Records which app instances plan `id` is applied to (the first answer stands): see
    /// [`Unfinished::scope`].
    pub async fn set_plan_scope(&self, id: &str, scope: &str) -> Result<()> {
        sqlx::query("UPDATE plans SET scope = $1 WHERE id = $2 AND scope IS NULL")
            .bind(scope)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn save_plan(&self, id: &str, created_at: OffsetDateTime, body: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO plans (id, created_at, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
            .bind(id)
            .bind(ms(created_at))
            .bind(body)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an approval of the plan whose content has `digest`, with its audit-log
    /// line, in one transaction. An approval covers that content only: an edited plan has
    /// another digest and no approval.
    pub async fn approve_plan(
        &self,
        id: &str,
        digest: &str,
        approval: &Approval,
        log: &NewLogEntry,
    ) -> Result<()> {
        let sig = self.keys()?.sign(
            Purpose::Approval,
            approval_body(id, digest, approval).as_bytes(),
        )?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO approvals (plan_id, digest, approved_by, os_user, approved_at, sig) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (plan_id, digest) DO NOTHING",
        )
        .bind(id)
        .bind(digest)
        .bind(&approval.by)
        .bind(&approval.os_user)
        .bind(ms(approval.at))
        .bind(&sig)
        .execute(&mut *tx)
        .await?;
        insert_log(self, &mut tx, log, approval.at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an approver's SSH signature of the plan whose content has `digest`, with its
    /// audit-log line. The signature is checked where it is used, against the roster's
    /// approvers: a row written by hand is worth only what it verifies.
    pub async fn add_plan_signature(&self, sig: &PlanSignature, log: &NewLogEntry) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO plan_signatures (plan_id, digest, approver, fingerprint, signature, signed_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (plan_id, digest, fingerprint) DO UPDATE SET approver = excluded.approver, signature = excluded.signature, signed_at = excluded.signed_at",
        )
        .bind(&sig.plan_id)
        .bind(&sig.digest)
        .bind(&sig.approver)
        .bind(&sig.fingerprint)
        .bind(&sig.signature)
        .bind(ms(sig.at))
        .execute(&mut *tx)
        .await?;
        insert_log(self, &mut tx, log, sig.at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The SSH signatures recorded for plan `id` with content `digest`, unverified.
    pub async fn plan_signatures(&self, id: &str, digest: &str) -> Result<Vec<PlanSignature>> {
        let rows = sqlx::query(
            "SELECT approver, fingerprint, signature, signed_at FROM plan_signatures WHERE plan_id = $1 AND digest = $2 ORDER BY signed_at",
        )
        .bind(id)
        .bind(digest)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| PlanSignature {
                plan_id: id.to_string(),
                digest: digest.to_string(),
                approver: r.get(0),
                fingerprint: r.get(1),
                signature: r.get(2),
                at: from_ms(r.get(3)),
            })
            .collect())
    }

    /// The approval of the plan `id` with content `digest`, if there is one. A row whose
    /// signature does not verify (written or edited by someone without the signing key)
    /// is an error, never an approval.
    pub async fn approval(&self, id: &str, digest: &str) -> Result<Option<Approval>> {
        let row = sqlx::query(
            "SELECT approved_by, os_user, approved_at, sig FROM approvals WHERE plan_id = $1 AND digest = $2",
        )
        .bind(id)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let approval = Approval {
            by: r.get(0),
            os_user: r.get(1),
            at: from_ms(r.get(2)),
        };
        let sig: Option<String> = r.get(3);
        check_approval(self.keys()?, id, digest, &approval, sig.as_deref())?;
        Ok(Some(approval))
    }

    /// Steps of any plan whose outcome the apps must settle: started and never finished (a
    /// crash between the call and its record), or failed in a way that may have written
    /// anyway. Oldest first.
    pub async fn unfinished_steps(&self) -> Result<Vec<Unfinished>> {
        let rows = sqlx::query(
            "SELECT j.plan_id, j.step, j.key, p.body, p.scope, j.status FROM journal j JOIN plans p ON p.id = j.plan_id \
             WHERE j.status IN ('started', 'unsettled') ORDER BY j.started_at, j.plan_id, j.step",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Unfinished {
                plan_id: r.get(0),
                step: r.get::<i64, _>(1) as usize,
                key: r.get(2),
                plan_body: r.get(3),
                scope: r.get(4),
                crashed: StepStatus::parse(&r.get::<String, _>(5)) == Some(StepStatus::Started),
            })
            .collect())
    }

    pub async fn journal(&self, plan_id: &str) -> Result<Vec<JournalEntry>> {
        let rows = sqlx::query(
            "SELECT step, key, status, detail FROM journal WHERE plan_id = $1 ORDER BY step",
        )
        .bind(plan_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.get(2);
                Ok(JournalEntry {
                    step: r.get::<i64, _>(0) as usize,
                    key: r.get(1),
                    status: StepStatus::parse(&status).ok_or(StoreError::Corrupt {
                        what: "journal status",
                        detail: status.clone(),
                    })?,
                    detail: r.get(3),
                })
            })
            .collect()
    }

    /// Marks a step begun, before anything is sent for it.
    pub async fn step_started(
        &self,
        plan_id: &str,
        step: usize,
        key: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO journal (plan_id, step, key, status, started_at) VALUES ($1, $2, $3, 'started', $4) \
             ON CONFLICT (plan_id, step) DO UPDATE SET status = 'started', started_at = excluded.started_at, finished_at = NULL",
        )
        .bind(plan_id)
        .bind(step as i64)
        .bind(key)
        .bind(ms(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a step ended and its audit-log line in one transaction, so a crash
    /// never leaves one without the other.
    pub async fn finish_step(
        &self,
        plan_id: &str,
        step: usize,
        status: StepStatus,
        detail: Option<&str>,
        log: &NewLogEntry,
        at: OffsetDateTime,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE journal SET status = $1, detail = $2, finished_at = $3 WHERE plan_id = $4 AND step = $5")
            .bind(status.as_str())
            .bind(detail)
            .bind(ms(at))
            .bind(plan_id)
            .bind(step as i64)
            .execute(&mut *tx)
            .await?;
        insert_log(self, &mut tx, log, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a step left `started` by a crash, or `unsettled` by failed attempts,
    /// never ran: no write happened, so no audit-log line (a failure already has its own);
    /// a rerun of its plan runs it.
    pub async fn step_not_run(
        &self,
        plan_id: &str,
        step: usize,
        detail: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query("UPDATE journal SET status = 'failed', detail = $1, finished_at = $2 WHERE plan_id = $3 AND step = $4 AND status IN ('started', 'unsettled')")
            .bind(detail)
            .bind(ms(at))
            .bind(plan_id)
            .bind(step as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn append_log(&self, entry: &NewLogEntry, at: OffsetDateTime) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_log(self, &mut tx, entry, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit log, oldest first, optionally for one plan.
    pub async fn log(&self, plan_id: Option<&str>) -> Result<Vec<LogEntry>> {
        read_log(&self.pool, plan_id).await
    }

    /// A page of the log: at most `limit` lines after the line `after`, oldest first (a
    /// cursor that holds while lines are appended).
    pub async fn log_page(
        &self,
        plan_id: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LogEntry>> {
        read_log_page(&self.pool, plan_id, after, limit).await
    }

    /// Checks the whole log with this state's keys: see [`StateStore::verify_log_with`].
    pub async fn verify_log(&self) -> Result<std::result::Result<usize, ChainBreak>> {
        let keys = self.keys()?.clone();
        self.verify_log_with(&keys, None).await
    }

    /// Checks the whole log: every row chains to the one before, its hash matches its
    /// content, and its hash is signed by one of `keys` (the public keys suffice, so an
    /// auditor can run it). With a saved `head`, the rows up to it must all be there and
    /// unchanged: the one check that catches a cut tail. `Ok(rows)` when all holds;
    /// otherwise where it first breaks.
    pub async fn verify_log_with(
        &self,
        keys: &Keyring,
        head: Option<&LogHead>,
    ) -> Result<std::result::Result<usize, ChainBreak>> {
        let entries = self.log(None).await?;
        Ok(verify_entries(&entries, keys, head))
    }

    /// The log's newest row, signed now: what `roster log head` prints.
    pub async fn log_head(&self, now: OffsetDateTime) -> Result<LogHead> {
        let keys = self.keys()?;
        let last = sqlx::query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        let (id, hash) = match last {
            Some(r) => (
                r.get::<i64, _>(0),
                r.get::<Option<String>, _>(1).unwrap_or_default(),
            ),
            None => (0, GENESIS.to_string()),
        };
        let now = from_ms(ms(now));
        let signature = keys.sign(Purpose::LogHead, LogHead::body(id, &hash, now).as_bytes())?;
        Ok(LogHead {
            id,
            hash,
            signed_at: now,
            key_id: roster_keys::signature_key_id(&signature)
                .unwrap_or_default()
                .to_string(),
            signature,
        })
    }

    /// Signs the rows written before the log was keyed, once: when this state's signing
    /// key was made just now. Their unkeyed chain must verify first (a broken one is
    /// refused, never blessed). Rows are not signed again later, whatever their signature
    /// column says: a stripped signature stays a broken row.
    pub async fn sign_unsigned_rows(&self) -> Result<usize> {
        let keys = self.keys()?.clone();
        let entries = self.log(None).await?;
        let unsigned: Vec<&LogEntry> = entries.iter().filter(|e| e.signature.is_none()).collect();
        if unsigned.is_empty() {
            return Ok(0);
        }
        if let Err(b) = verify_chain(&entries) {
            return Err(StoreError::Corrupt {
                what: "audit log",
                detail: format!(
                    "it cannot be signed because its chain breaks at row {}: {}",
                    b.id, b.why
                ),
            });
        }
        let mut tx = self.write_tx().await?;
        let (off, on) = match self.backend {
            Backend::Sqlite => (
                "DROP TRIGGER IF EXISTS audit_log_no_update",
                "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log \
                 BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
            ),
            Backend::Postgres => (
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
                "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update",
            ),
        };
        sqlx::raw_sql(off).execute(&mut *tx).await?;
        for e in &unsigned {
            let sig = keys.sign(Purpose::LogRow, e.hash.as_bytes())?;
            sqlx::query("UPDATE audit_log SET sig = $1 WHERE id = $2 AND sig IS NULL")
                .bind(&sig)
                .bind(e.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql(on).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(unsigned.len())
    }

    /// The key id of the newest signed row, if any: a process whose key ring does not
    /// know it holds the wrong key for this state.
    pub async fn newest_row_key(&self) -> Result<Option<String>> {
        let sig: Option<Option<String>> = sqlx::query_scalar(
            "SELECT sig FROM audit_log WHERE sig IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(sig
            .flatten()
            .and_then(|s| roster_keys::signature_key_id(&s).map(String::from)))
    }
}

/// The unkeyed checks: ids without gaps, each row chained to the one before and matching
/// its hash.
fn verify_chain(entries: &[LogEntry]) -> std::result::Result<(), ChainBreak> {
    let mut prev = GENESIS.to_string();
    let mut prev_id = 0;
    for e in entries {
        if e.id != prev_id + 1 {
            return Err(ChainBreak {
                id: e.id,
                why: format!(
                    "rows {} to {} are missing (deleted) before row {}",
                    prev_id + 1,
                    e.id - 1,
                    e.id
                ),
            });
        }
        prev_id = e.id;
        if e.prev_hash != prev {
            return Err(ChainBreak {
                id: e.id,
                why: format!(
                    "row {} does not chain to the row before it (a row was removed, inserted or reordered before it)",
                    e.id
                ),
            });
        }
        if row_hash(&prev, e.id, e.at, &as_new(e)) != e.hash {
            return Err(ChainBreak {
                id: e.id,
                why: format!(
                    "row {}'s content does not match its hash (the row was edited)",
                    e.id
                ),
            });
        }
        prev = e.hash.clone();
    }
    Ok(())
}

/// [`verify_chain`], then every row's signature and the saved head.
pub fn verify_entries(
    entries: &[LogEntry],
    keys: &Keyring,
    head: Option<&LogHead>,
) -> std::result::Result<usize, ChainBreak> {
    if let Some(h) = head
        && let Err(e) = h.verify(keys)
    {
        return Err(ChainBreak {
            id: h.id,
            why: format!("the saved head cannot be trusted: {e}"),
        });
    }
    verify_chain(entries)?;
    for e in entries {
        if let Err(err) = keys.verify(
            Purpose::LogRow,
            e.hash.as_bytes(),
            e.signature.as_deref(),
            &format!("row {}", e.id),
        ) {
            let why = match err {
                KeyError::Mismatch { .. } => format!(
                    "row {}'s signature does not match its hash (the row was edited and its hashes recomputed without the signing key)",
                    e.id
                ),
                KeyError::Unsigned { .. } => format!(
                    "row {} is not signed (written or altered by something other than Roster)",
                    e.id
                ),
                other => other.to_string(),
            };
            return Err(ChainBreak { id: e.id, why });
        }
    }
    if let Some(h) = head
        && h.id > 0
    {
        match entries.iter().find(|e| e.id == h.id) {
            None => {
                let last = entries.last().map_or(0, |e| e.id);
                return Err(ChainBreak {
                    id: h.id,
                    why: format!(
                        "row {} of the saved head is missing: the log ends at row {last}, so rows were removed from its end",
                        h.id
                    ),
                });
            }
            Some(e) if e.hash != h.hash => {
                return Err(ChainBreak {
                    id: h.id,
                    why: format!(
                        "row {} is not the row the saved head names (its hash differs): the log was rewritten",
                        h.id
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(entries.len())
}

/// Checks one row on its own, without its neighbours: its hash matches its content and
/// the `prev_hash` it names, and the key signed that hash. What an excerpt of the log (an
/// evidence bundle's rows) can prove: no row in it was edited or made up, though rows left
/// out of the excerpt are not seen.
pub fn verify_row(e: &LogEntry, keys: &Keyring) -> std::result::Result<String, String> {
    if row_hash(&e.prev_hash, e.id, e.at, &as_new(e)) != e.hash {
        return Err(format!(
            "log row {}'s content does not match its hash (the row was edited)",
            e.id
        ));
    }
    keys.verify(
        Purpose::LogRow,
        e.hash.as_bytes(),
        e.signature.as_deref(),
        &format!("log row {}", e.id),
    )
    .map_err(|err| match err {
        KeyError::Mismatch { .. } => format!(
            "log row {}'s signature does not match its hash (edited and re-hashed without the signing key)",
            e.id
        ),
        other => other.to_string(),
    })
}

/// Where a log's hash chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub id: i64,
    pub why: String,
}

/// A journal row whose outcome is unknown: its step started and never finished, or failed
/// in a way that may have written anyway.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub plan_id: String,
    pub step: usize,
    pub key: String,
    pub plan_body: String,
    /// The app instances the plan was applied to, `app=instance` pairs joined by `;`
    /// (`None` for plans applied before Roster recorded it). Instances share the state, and
    /// a step is settled against its own instance only: another's accounts say nothing
    /// about whether it ran.
    pub scope: Option<String>,
    /// Left `started` by a crash; otherwise every attempt failed (`unsettled`).
    pub crashed: bool,
}

impl Unfinished {
    /// The instance of `app` the plan was applied to, if recorded.
    pub fn instance_of(&self, app: &str) -> Option<&str> {
        scope_instance(self.scope.as_deref()?, app)
    }
}

/// The instance of `app` in a plan's scope (`app=instance` pairs joined by `;`).
fn scope_instance<'a>(scope: &'a str, app: &str) -> Option<&'a str> {
    scope.split(';').find_map(|pair| {
        let (a, instance) = pair.split_once('=')?;
        (a == app).then_some(instance)
    })
}

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn as_new(e: &LogEntry) -> NewLogEntry {
    NewLogEntry {
        actor: e.actor.clone(),
        os_user: e.os_user.clone(),
        plan_id: e.plan_id.clone(),
        step_key: e.step_key.clone(),
        app: e.app.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        outcome: e.outcome.clone(),
        detail: e.detail.clone(),
        instance: e.instance.clone(),
    }
}

/// SHA-256 over the previous row's hash and this row's fields, encoded as one JSON array
/// so no two different rows serialise alike. The instance joins the array when there is
/// one, so rows written before it was recorded keep the hashes they had.
pub fn row_hash(prev: &str, id: i64, at: OffsetDateTime, e: &NewLogEntry) -> String {
    let mut fields = serde_json::json!([
        prev,
        id,
        ms(at),
        e.actor,
        e.os_user,
        e.plan_id,
        e.step_key,
        e.app,
        e.action,
        e.target,
        e.outcome,
        e.detail
    ]);
    if let Some(instance) = &e.instance {
        fields
            .as_array_mut()
            .expect("an array")
            .push(instance.as_str().into());
    }
    roster_domain::sha256::hex(fields.to_string().as_bytes())
}

/// Fills in the chain for rows written before the log was chained (schema step 4).
pub(crate) async fn backfill_chain(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    let rows = sqlx::query(
        "SELECT id, at, actor, os_user, plan_id, step_key, app, action, target, outcome, detail, hash FROM audit_log ORDER BY id",
    )
    .fetch_all(&mut **tx)
    .await?;
    if rows
        .iter()
        .all(|r| r.get::<Option<String>, _>(11).is_some())
    {
        return Ok(());
    }
    sqlx::raw_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
        .execute(&mut **tx)
        .await?;
    let mut prev = GENESIS.to_string();
    for r in &rows {
        let id: i64 = r.get(0);
        let entry = NewLogEntry {
            actor: r.get(2),
            os_user: r.get(3),
            plan_id: r.get(4),
            step_key: r.get(5),
            app: r.get(6),
            action: r.get(7),
            target: r.get(8),
            outcome: r.get(9),
            detail: r.get(10),
            instance: None,
        };
        let hash = row_hash(&prev, id, from_ms(r.get(1)), &entry);
        sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE id = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        prev = hash;
    }
    sqlx::raw_sql(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends a row chained to the last one. Callers hold an IMMEDIATE transaction, so no
/// other writer can slip a row in between reading the last hash and writing this one.
pub(crate) async fn insert_log(
    store: &StateStore,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entry: &NewLogEntry,
    at: OffsetDateTime,
) -> Result<i64> {
    let backend = store.backend;
    let keys = store.keys()?;
    let last = sqlx::query("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let (id, prev) = match last {
        Some(r) => (
            r.get::<i64, _>(0) + 1,
            r.get::<Option<String>, _>(1).unwrap_or_default(),
        ),
        None => (1, GENESIS.to_string()),
    };
    // Row ids are never reused (SQLite's AUTOINCREMENT, PostgreSQL's `audit_log_head`), so
    // a deleted last row leaves a gap the next id would hide; take the larger. Both counters
    // are rows written in this transaction: an append that rolls back (a process killed
    // mid-write) gives its id back instead of leaving a gap that reads as a deletion.
    let next: i64 = match backend {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'), 0) + 1",
        )
        .fetch_one(&mut **tx)
        .await?,
        Backend::Postgres => {
            sqlx::query_scalar("SELECT last_id + 1 FROM audit_log_head")
                .fetch_one(&mut **tx)
                .await?
        }
    };
    let id = id.max(next);
    if backend == Backend::Postgres {
        sqlx::query("UPDATE audit_log_head SET last_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    let at = from_ms(ms(at));
    let hash = row_hash(&prev, id, at, entry);
    let sig = keys.sign(Purpose::LogRow, hash.as_bytes())?;
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, os_user, plan_id, step_key, app, action, target, outcome, detail, prev_hash, hash, instance, sig) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(id)
    .bind(ms(at))
    .bind(&entry.actor)
    .bind(&entry.os_user)
    .bind(&entry.plan_id)
    .bind(&entry.step_key)
    .bind(&entry.app)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.outcome)
    .bind(&entry.detail)
    .bind(&prev)
    .bind(&hash)
    .bind(&entry.instance)
    .bind(&sig)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// The audit log's rows, oldest first, through any connection: the pool, or a
/// transaction that has not committed yet (an import checks what it wrote before it
/// keeps it).
pub(crate) async fn read_log<'e, E>(db: E, plan_id: Option<&str>) -> Result<Vec<LogEntry>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    read_log_page(db, plan_id, 0, i64::MAX).await
}

/// At most `limit` lines with an id above `after`, oldest first.
pub(crate) async fn read_log_page<'e, E>(
    db: E,
    plan_id: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<LogEntry>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(concat!(
        "SELECT ",
        log_columns!(),
        " FROM audit_log WHERE ($1 IS NULL OR plan_id = $1) AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(plan_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(entry_of).collect())
}

pub(crate) fn entry_of(r: &sqlx::any::AnyRow) -> LogEntry {
    LogEntry {
        id: r.get(0),
        at: from_ms(r.get(1)),
        actor: r.get(2),
        os_user: r.get(3),
        plan_id: r.get(4),
        step_key: r.get(5),
        app: r.get(6),
        action: r.get(7),
        target: r.get(8),
        outcome: r.get(9),
        detail: r.get(10),
        instance: r.get(13),
        prev_hash: r.get::<Option<String>, _>(11).unwrap_or_default(),
        hash: r.get::<Option<String>, _>(12).unwrap_or_default(),
        signature: r.get(14),
    }
}

/// Checks every approval's signature through any connection (an import checks the rows
/// it wrote before it keeps them): an approval row written by hand approves nothing.
pub(crate) async fn verify_approvals<'e, E>(db: E, keys: &Keyring) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT plan_id, digest, approved_by, os_user, approved_at, sig FROM approvals ORDER BY plan_id, digest",
    )
    .fetch_all(db)
    .await?;
    for r in &rows {
        let (id, digest): (String, String) = (r.get(0), r.get(1));
        let approval = Approval {
            by: r.get(2),
            os_user: r.get(3),
            at: from_ms(r.get(4)),
        };
        let sig: Option<String> = r.get(5);
        // One from before the log was keyed approves nothing (`approval` refuses it), so
        // it may come along as history.
        if sig.is_none() {
            continue;
        }
        if let Err(e) = check_approval(keys, &id, &digest, &approval, sig.as_deref()) {
            return Err(StoreError::UnverifiedImport {
                what: format!("the approval of {id}"),
                why: e.to_string(),
                key_file: keys.source().to_string(),
            });
        }
    }
    Ok(())
}
