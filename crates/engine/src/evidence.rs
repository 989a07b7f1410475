//! An access review's evidence bundle: what an auditor receives. One directory of files —
//! the campaign, its snapshot with the figures that show it is the whole population, every
//! item and decision, the remediation plan with its journal and runs, the audit-log rows of
//! all of it, and a printable summary — listed with their SHA-256 in `manifest.json`,
//! which the state's signing key signs (`manifest.sig`).
//!
//! Verifying needs the public key alone, and does not take the bundle's word for anything
//! it can check: each log row's hash is recomputed and its own signature checked, each
//! decision must match the signed row that recorded it, the snapshot must hash to the
//! digest its signed `review.start` row names, and each remediated item must appear in a
//! signed verification row. So even a bundle made from an edited database fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use askama::Template;
use roster_keys::{Keyring, Purpose};
use roster_store::{LogEntry, Review, ReviewItem, StateStore};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::text::rfc3339;

/// What `manifest.json` says it is.
pub const FORMAT: &str = "roster-review-evidence/1";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
/// The largest file read back from a bundle directory.
const MAX_FILE: u64 = 512 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("there is no review {0}; `GET /api/v1/reviews` lists them")]
    NoReview(i64),
    #[error("review {id} is {status}: it has no snapshot, so there is no evidence to give")]
    NotReady { id: i64, status: String },
    #[error(transparent)]
    Store(#[from] roster_store::StoreError),
    #[error(transparent)]
    Key(#[from] roster_keys::KeyError),
    #[error("{0}")]
    Bundle(String),
}

/// The bundle's files by name (`manifest.json` and `manifest.sig` among them).
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Makes review `id`'s bundle from the state and signs its manifest.
pub async fn build(
    store: &StateStore,
    id: i64,
    generated_by: &str,
    now: OffsetDateTime,
) -> Result<Bundle, EvidenceError> {
    let review = store.review(id).await?.ok_or(EvidenceError::NoReview(id))?;
    let snapshot = match store.review_snapshot(id).await? {
        Some(s) if review.status != "snapshotting" => s,
        _ => {
            return Err(EvidenceError::NotReady {
                id,
                status: review.status.clone(),
            });
        }
    };
    let items = store.review_items(id, None).await?;
    let mut log = store.review_log(id).await?;
    let plan = match &review.plan_id {
        Some(plan_id) => {
            log.extend(store.log(Some(plan_id)).await?);
            let held = store.held_plan(plan_id).await?;
            let journal = store.journal(plan_id).await?;
            json!({
                "plan_id": plan_id,
                "held": held.as_ref().map(|(p, _)| p),
                "body": held.as_ref().map(|(_, body)| serde_json::from_str::<Value>(body).unwrap_or(Value::String(body.clone()))),
                "journal": journal.iter().map(|j| json!({
                    "step": j.step,
                    "key": j.key,
                    "status": format!("{:?}", j.status).to_lowercase(),
                    "detail": j.detail,
                })).collect::<Vec<_>>(),
            })
        }
        None => Value::Null,
    };
    log.sort_by_key(|e| e.id);
    log.dedup_by_key(|e| e.id);
    let runs = store.review_runs(id, review.plan_id.as_deref()).await?;
    let head = store.log_head(now).await?;

    let completeness = serde_json::from_str::<Value>(&snapshot)
        .ok()
        .map(|v| v["completeness"].clone())
        .unwrap_or(Value::Null);
    let summary = Summary::of(&review, &items, &completeness, &head, generated_by, now);

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("review.json".into(), pretty(&review_json(&review)));
    files.insert("snapshot.json".into(), snapshot.into_bytes());
    files.insert(
        "items.json".into(),
        pretty(&Value::Array(items.iter().map(item_json).collect())),
    );
    files.insert(
        "log.json".into(),
        pretty(&Value::Array(log.iter().map(row_json).collect())),
    );
    files.insert("plan.json".into(), pretty(&plan));
    files.insert(
        "verification.json".into(),
        pretty(&json!({
            "runs": runs,
            "items": items.iter().filter(|i| i.remediation.is_some()).map(|i| json!({
                "item": i.item.id,
                "remediation": i.remediation,
                "remediated_at": i.remediated_at.map(rfc3339),
            })).collect::<Vec<_>>(),
        })),
    );
    files.insert(
        "summary.html".into(),
        summary
            .render()
            .map_err(|e| EvidenceError::Bundle(format!("cannot render the summary: {e}")))?
            .into_bytes(),
    );
    let manifest = pretty(&json!({
        "format": FORMAT,
        "review": id,
        "instance": review.instance,
        "app": review.app,
        "generated_at": rfc3339(now),
        "generated_by": generated_by,
        "roster_version": env!("CARGO_PKG_VERSION"),
        "log_head": head,
        "files": files.iter().map(|(name, bytes)| (name.clone(), json!({
            "sha256": roster_domain::sha256::hex(bytes),
            "bytes": bytes.len(),
        }))).collect::<BTreeMap<_, _>>(),
    }));
    let signature = store.keys()?.sign(Purpose::Evidence, &manifest)?;
    files.insert(MANIFEST.into(), manifest);
    files.insert(SIGNATURE.into(), format!("{signature}\n").into_bytes());
    Ok(Bundle { files })
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("JSON values serialise");
    out.push(b'\n');
    out
}

fn review_json(r: &Review) -> Value {
    json!({
        "id": r.id,
        "instance": r.instance,
        "app": r.app,
        "scope": r.scope,
        "reviewers": r.reviewers,
        "on_due": r.on_due,
        "due_at": rfc3339(r.due_at),
        "status": r.status,
        "created_by": r.created_by,
        "created_at": rfc3339(r.created_at),
        "closed_by": r.closed_by,
        "closed_at": r.closed_at.map(rfc3339),
        "snapshot_digest": r.snapshot_digest,
        "plan_id": r.plan_id,
        "note": r.note,
    })
}

fn item_json(i: &ReviewItem) -> Value {
    json!({
        "id": i.item.id,
        "email": i.item.email,
        "name": i.item.name,
        "account_kind": i.item.account_kind.as_str(),
        "account_id": i.item.account_id,
        "role": i.item.role,
        "scope": i.item.scope,
        "status": i.item.status.as_str(),
        "privileged": i.item.privileged,
        "api_only": i.item.api_only,
        "listed": i.item.listed,
        "reviewer": i.item.reviewer,
        "reviewer_because": i.item.reviewer_because,
        "decision": i.decision,
        "keep_roles": i.keep_roles,
        "comment": i.comment,
        "decided_by": i.decided_by,
        "decided_at": i.decided_at.map(rfc3339),
        "bulk": i.bulk,
        "seconds": i.seconds,
        "log_id": i.log_id,
        "remediation": i.remediation,
        "remediated_at": i.remediated_at.map(rfc3339),
    })
}

fn row_json(e: &LogEntry) -> Value {
    json!({
        "id": e.id,
        "at": rfc3339(e.at),
        "actor": e.actor,
        "os_user": e.os_user,
        "plan_id": e.plan_id,
        "step_key": e.step_key,
        "app": e.app,
        "action": e.action,
        "target": e.target,
        "outcome": e.outcome,
        "detail": e.detail,
        "instance": e.instance,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "signature": e.signature,
    })
}

fn row_of(v: &Value) -> Option<LogEntry> {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    Some(LogEntry {
        id: v["id"].as_i64()?,
        at: OffsetDateTime::parse(
            v["at"].as_str()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?,
        actor: s("actor")?,
        os_user: s("os_user")?,
        plan_id: s("plan_id"),
        step_key: s("step_key"),
        app: s("app")?,
        action: s("action")?,
        target: s("target")?,
        outcome: s("outcome")?,
        detail: s("detail"),
        instance: s("instance"),
        prev_hash: s("prev_hash")?,
        hash: s("hash")?,
        signature: s("signature"),
    })
}

/// What a bundle that verified holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub review: i64,
    pub instance: String,
    pub key_id: String,
    pub generated_at: String,
    pub files: usize,
    pub log_rows: usize,
    pub items: usize,
    pub decided: usize,
    pub revoked: usize,
    pub remediated: usize,
}

/// Checks a bundle with `keys` (public keys suffice). Every problem found is listed, each
/// saying which file or row and what is wrong.
pub fn verify(files: &BTreeMap<String, Vec<u8>>, keys: &Keyring) -> Result<Verified, Vec<String>> {
    let mut problems = Vec::new();
    let Some(manifest_bytes) = files.get(MANIFEST) else {
        return Err(vec![format!(
            "{MANIFEST} is missing: this is not an evidence bundle (`roster review evidence ID --out DIR` makes one)"
        )]);
    };
    let signature = files
        .get(SIGNATURE)
        .map(|s| String::from_utf8_lossy(s).trim().to_string());
    let key_id = match keys.verify(
        Purpose::Evidence,
        manifest_bytes,
        signature.as_deref(),
        "the bundle's manifest",
    ) {
        Ok(k) => k,
        Err(e) => {
            problems.push(e.to_string());
            String::new()
        }
    };
    let manifest: Value = match serde_json::from_slice(manifest_bytes) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{MANIFEST} is not JSON: {e}"));
            return Err(problems);
        }
    };
    if manifest["format"] != FORMAT {
        problems.push(format!(
            "{MANIFEST} is format {}, not {FORMAT}",
            manifest["format"]
        ));
    }
    let listed = manifest["files"].as_object().cloned().unwrap_or_default();
    for (name, want) in &listed {
        match files.get(name) {
            None => problems.push(format!("{name} is listed in the manifest but missing")),
            Some(bytes) => {
                if want["sha256"].as_str() != Some(&roster_domain::sha256::hex(bytes)) {
                    problems.push(format!(
                        "{name} does not match the digest the signed manifest gives (it was changed)"
                    ));
                }
            }
        }
    }
    for name in files.keys() {
        if name != MANIFEST && name != SIGNATURE && !listed.contains_key(name) {
            problems.push(format!(
                "{name} is not in the signed manifest (it was added to the bundle)"
            ));
        }
    }
    if let Some(h) = manifest.get("log_head").cloned()
        && let Ok(head) = serde_json::from_value::<roster_store::LogHead>(h)
        && let Err(e) = head.verify(keys)
    {
        problems.push(format!("the manifest's log head: {e}"));
    }

    let json_of = |name: &str| -> Option<Value> {
        files
            .get(name)
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
    };
    let review = json_of("review.json").unwrap_or(Value::Null);
    let items = json_of("items.json")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let rows: Vec<Value> = json_of("log.json")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    if review.is_null() {
        problems.push("review.json is missing or not JSON".into());
    }

    // Every log row proves itself: its hash and the key's signature over it.
    let mut by_id: BTreeMap<i64, (LogEntry, Value)> = BTreeMap::new();
    for v in &rows {
        match row_of(v) {
            None => problems.push(format!("log.json holds a malformed row: {v}")),
            Some(e) => {
                if let Err(why) = roster_store::verify_row(&e, keys) {
                    problems.push(why);
                }
                let detail = e
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .unwrap_or(Value::Null);
                by_id.insert(e.id, (e, detail));
            }
        }
    }
    let id = review["id"].as_i64().unwrap_or(-1);
    let target = format!("review {id}");

    // The snapshot is the one the campaign started from.
    let start = by_id
        .values()
        .find(|(e, _)| e.action == "review.start" && e.target == target);
    match (start, files.get("snapshot.json")) {
        (None, _) => problems.push(format!(
            "log.json has no signed review.start row for review {id}"
        )),
        (_, None) => problems.push("snapshot.json is missing".into()),
        (Some((e, d)), Some(snapshot)) => {
            let digest = roster_domain::sha256::hex(snapshot);
            if d["snapshot_sha256"].as_str() != Some(&digest) {
                problems.push(format!(
                    "snapshot.json is not the snapshot the signed review.start row {} names (digest {} there, {digest} here)",
                    e.id, d["snapshot_sha256"]
                ));
            }
            if d["items"].as_u64() != Some(items.len() as u64) {
                problems.push(format!(
                    "items.json holds {} item(s); the signed review.start row {} says {}",
                    items.len(),
                    e.id,
                    d["items"]
                ));
            }
        }
    }

    // Each decision is the one its signed row recorded.
    let mut decided = 0;
    for it in &items {
        let item_id = it["id"].as_i64().unwrap_or(-1);
        let Some(decision) = it["decision"].as_str() else {
            continue;
        };
        decided += 1;
        let row = it["log_id"].as_i64().and_then(|l| by_id.get(&l));
        let Some((e, d)) = row.filter(|(e, _)| e.action == "review.decide") else {
            problems.push(format!(
                "item {item_id}'s decision ({decision}) has no signed review.decide row in log.json"
            ));
            continue;
        };
        let same = e.target == format!("{target} item {item_id}")
            && d["item"].as_i64() == Some(item_id)
            && d["decision"].as_str() == Some(decision)
            && d["email"] == it["email"]
            && d["role"] == it["role"]
            && d["scope"] == it["scope"]
            && d["comment"] == it["comment"]
            && d["bulk"] == it["bulk"]
            && d["keep_roles"] == it["keep_roles"]
            && Some(e.actor.as_str()) == it["decided_by"].as_str();
        if !same {
            problems.push(format!(
                "item {item_id} does not match the signed row {} that recorded its decision (who, what, comment or bulk differ)",
                e.id
            ));
        }
    }

    // Revocations are the close's, and what is called remediated a verification row saw.
    let revoked: Vec<&Value> = items
        .iter()
        .filter(|i| !i["remediation"].is_null())
        .collect();
    if !revoked.is_empty() {
        let close = by_id
            .values()
            .find(|(e, _)| e.action == "review.close" && e.target == target);
        match close {
            None => problems.push(format!(
                "{} item(s) are marked revoked but log.json has no signed review.close row",
                revoked.len()
            )),
            Some((e, d)) => {
                let closed: BTreeSet<i64> = d["revocations"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|r| r["item"].as_i64()).collect())
                    .unwrap_or_default();
                for it in &revoked {
                    let item_id = it["id"].as_i64().unwrap_or(-1);
                    if !closed.contains(&item_id) {
                        problems.push(format!(
                            "item {item_id} is marked revoked but the signed review.close row {} does not revoke it",
                            e.id
                        ));
                    }
                }
            }
        }
    }
    let seen_gone: BTreeSet<i64> = by_id
        .values()
        .filter(|(e, _)| e.action == "review.verify" && e.target == target)
        .flat_map(|(_, d)| {
            d["items"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    let mut remediated = 0;
    for it in &revoked {
        if it["remediation"] == "remediated" {
            remediated += 1;
            let item_id = it["id"].as_i64().unwrap_or(-1);
            if !seen_gone.contains(&item_id) {
                problems.push(format!(
                    "item {item_id} is marked remediated but no signed review.verify row saw its access gone"
                ));
            }
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Verified {
        review: id,
        instance: review["instance"].as_str().unwrap_or_default().to_string(),
        key_id,
        generated_at: manifest["generated_at"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        files: listed.len(),
        log_rows: by_id.len(),
        items: items.len(),
        decided,
        revoked: revoked.len(),
        remediated,
    })
}

/// A bundle's file names are plain names: nothing that climbs out of its directory.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Writes `bundle` into `dir`, which must not exist yet or be empty (evidence is never
/// mixed with other files, nor written over an earlier bundle).
pub fn write_dir(bundle: &Bundle, dir: &Path) -> Result<(), EvidenceError> {
    let io = |what: &str, e: std::io::Error| EvidenceError::Bundle(format!("{what}: {e}"));
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).map_err(|e| io(&format!("cannot read {}", dir.display()), e))?;
        if entries.next().is_some() {
            return Err(EvidenceError::Bundle(format!(
                "{} is not empty; give --out a new directory (a bundle is never written over other files)",
                dir.display()
            )));
        }
    } else {
        std::fs::create_dir_all(dir)
            .map_err(|e| io(&format!("cannot create {}", dir.display()), e))?;
    }
    for (name, bytes) in &bundle.files {
        if !plain_name(name) {
            return Err(EvidenceError::Bundle(format!(
                "the bundle names a file {name:?}, which is not a plain file name; nothing more was written"
            )));
        }
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| io(&format!("cannot write {}", path.display()), e))?;
    }
    Ok(())
}

/// Reads every file of a bundle directory.
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, EvidenceError> {
    let io = |what: String, e: std::io::Error| EvidenceError::Bundle(format!("{what}: {e}"));
    let mut files = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| io(format!("cannot read {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(format!("cannot read {}", dir.display()), e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::metadata(&path)
            .map_err(|e| io(format!("cannot read {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(EvidenceError::Bundle(format!(
                "{} is not a file; a bundle holds files only",
                path.display()
            )));
        }
        if meta.len() > MAX_FILE {
            return Err(EvidenceError::Bundle(format!(
                "{} is larger than any bundle file ({} bytes)",
                path.display(),
                meta.len()
            )));
        }
        let bytes =
            std::fs::read(&path).map_err(|e| io(format!("cannot read {}", path.display()), e))?;
        files.insert(name, bytes);
    }
    Ok(files)
}

/// One row of the summary's reviewer table.
struct ReviewerRow {
    reviewer: String,
    items: usize,
    decided: usize,
    bulk: usize,
    /// The median seconds between this reviewer's decisions (a rubber-stamp check).
    median_seconds: String,
}

struct ItemRow {
    id: i64,
    person: String,
    account: String,
    entitlement: String,
    privileged: bool,
    reviewer: String,
    decision: String,
    decided: String,
    comment: String,
    bulk: bool,
    seconds: String,
    remediation: String,
}

/// The printable summary, with a sign-off block.
#[derive(Template)]
#[template(path = "evidence_summary.html")]
struct Summary {
    id: i64,
    instance: String,
    app: String,
    scope: String,
    reviewers: String,
    on_due: String,
    status: String,
    due_at: String,
    started: String,
    closed: String,
    snapshot_digest: String,
    completeness: Vec<(String, String)>,
    plan_id: String,
    generated_by: String,
    generated_at: String,
    version: &'static str,
    head: String,
    counts: Vec<(&'static str, usize)>,
    by_reviewer: Vec<ReviewerRow>,
    items: Vec<ItemRow>,
}

impl Summary {
    fn of(
        r: &Review,
        items: &[ReviewItem],
        completeness: &Value,
        head: &roster_store::LogHead,
        generated_by: &str,
        now: OffsetDateTime,
    ) -> Summary {
        let count = |d: &str| {
            items
                .iter()
                .filter(|i| i.decision.as_deref() == Some(d))
                .count()
        };
        let mut by: BTreeMap<&str, (usize, usize, usize, Vec<i64>)> = BTreeMap::new();
        for i in items {
            let e = by.entry(i.item.reviewer.as_str()).or_default();
            e.0 += 1;
            if i.decision.is_some() {
                e.1 += 1;
            }
            if i.bulk {
                e.2 += 1;
            }
            if let Some(s) = i.seconds {
                e.3.push(s);
            }
        }
        Summary {
            id: r.id,
            instance: r.instance.clone(),
            app: r.app.clone(),
            scope: r.scope.clone(),
            reviewers: r.reviewers.clone(),
            on_due: r.on_due.clone(),
            status: r.status.clone(),
            due_at: rfc3339(r.due_at),
            started: format!("{} by {}", rfc3339(r.created_at), r.created_by),
            closed: match (&r.closed_at, &r.closed_by) {
                (Some(at), Some(by)) => format!("{} by {by}", rfc3339(*at)),
                _ => "not closed".into(),
            },
            snapshot_digest: r.snapshot_digest.clone().unwrap_or_default(),
            completeness: completeness
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::String(s) => s.clone(),
                                Value::Object(m) => m
                                    .iter()
                                    .map(|(k, v)| format!("{k}: {v}"))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                other => other.to_string(),
                            };
                            (k.replace('_', " "), v)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            plan_id: r.plan_id.clone().unwrap_or_else(|| "none".into()),
            generated_by: generated_by.to_string(),
            generated_at: rfc3339(now),
            version: env!("CARGO_PKG_VERSION"),
            head: format!("row {} ({})", head.id, head.hash),
            counts: vec![
                ("items", items.len()),
                ("kept", count("keep")),
                ("revoked", count("revoke")),
                ("reduced", count("reduce")),
                ("not decided", count("not_decided")),
                (
                    "open",
                    items.iter().filter(|i| i.decision.is_none()).count(),
                ),
                (
                    "remediated",
                    items
                        .iter()
                        .filter(|i| i.remediation.as_deref() == Some("remediated"))
                        .count(),
                ),
                (
                    "awaiting remediation",
                    items
                        .iter()
                        .filter(|i| i.remediation.as_deref() == Some("pending"))
                        .count(),
                ),
            ],
            by_reviewer: by
                .into_iter()
                .map(|(reviewer, (items, decided, bulk, mut secs))| {
                    secs.sort_unstable();
                    ReviewerRow {
                        reviewer: if reviewer.is_empty() {
                            "(nobody)".into()
                        } else {
                            reviewer.to_string()
                        },
                        items,
                        decided,
                        bulk,
                        median_seconds: secs
                            .get(secs.len() / 2)
                            .map_or_else(|| "–".into(), |s| format!("{s} s")),
                    }
                })
                .collect(),
            items: items
                .iter()
                .map(|i| ItemRow {
                    id: i.item.id,
                    person: if i.item.name.is_empty() {
                        i.item.email.clone()
                    } else {
                        format!("{} <{}>", i.item.name, i.item.email)
                    },
                    account: format!("{} {}", i.item.account_kind.as_str(), i.item.account_id),
                    entitlement: if i.item.scope.is_empty() {
                        i.item.role.clone()
                    } else {
                        format!("{}@{}", i.item.role, i.item.scope)
                    },
                    privileged: i.item.privileged,
                    reviewer: i.item.reviewer.clone(),
                    decision: match (&i.decision, i.keep_roles.is_empty()) {
                        (Some(d), true) => d.clone(),
                        (Some(d), false) => format!("{d} (keep {})", i.keep_roles.join(", ")),
                        (None, _) => "open".into(),
                    },
                    decided: match (&i.decided_by, &i.decided_at) {
                        (Some(by), Some(at)) => format!("{by}, {}", rfc3339(*at)),
                        _ => String::new(),
                    },
                    comment: i.comment.clone().unwrap_or_default(),
                    bulk: i.bulk,
                    seconds: i.seconds.map(|s| format!("{s} s")).unwrap_or_default(),
                    remediation: match (&i.remediation, &i.remediated_at) {
                        (Some(r), Some(at)) => format!("{r} {}", rfc3339(*at)),
                        (Some(r), None) => r.clone(),
                        _ => String::new(),
                    },
                })
                .collect(),
        }
    }
}
