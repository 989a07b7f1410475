//! What the API answers, as types: the handlers build these, and the OpenAPI document is
//! generated from them, so the document cannot drift from the answers.

use roster_engine::text::rfc3339;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::workers::WorkerStatus;

fn when(at: Option<time::OffsetDateTime>) -> Option<String> {
    at.map(rfc3339)
}

/// Every error: a stable code and a message for a person.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `four_eyes`, `not_found`, `not_pending`,
    /// `bad_request`, `unknown_instance` or `internal`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    /// `marketo.NAME` or `magento.NAME`.
    pub name: String,
    pub app: &'static str,
    /// The roster file it follows.
    pub roster: String,
    pub interval_seconds: u64,
    /// `none`, `safe` or `all`.
    pub auto_apply: String,
    pub daily_budget: Option<u64>,
    /// A Marketo instance's day: what full and targeted runs cost, how many full runs fit
    /// today and so how far apart they run (absent for other apps and before a first run).
    pub budget: Option<crate::budget::BudgetView>,
    pub pending_approvals: usize,
    pub status: WorkerStatusView,
}

#[derive(Serialize, ToSchema)]
pub struct WorkerStatusView {
    /// The trigger of the run in progress, if one is.
    pub running: Option<String>,
    pub queued: usize,
    pub next_run_at: Option<String>,
    pub last_run_id: Option<i64>,
    pub last_outcome: Option<String>,
    pub last_finished_at: Option<String>,
}

impl From<WorkerStatus> for WorkerStatusView {
    fn from(s: WorkerStatus) -> Self {
        Self {
            running: s.running,
            queued: s.queued,
            next_run_at: when(s.next_run_at),
            last_run_id: s.last_run_id,
            last_outcome: s.last_outcome,
            last_finished_at: when(s.last_finished_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Instances {
    pub instances: Vec<InstanceView>,
}

/// A reconcile was queued.
#[derive(Serialize, ToSchema)]
pub struct Queued {
    pub instance: String,
    /// Jobs waiting for this instance, this one included.
    pub queued: usize,
    pub running: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RunView {
    pub id: i64,
    pub instance: String,
    /// `schedule`, `api:TOKEN-NAME` or `approval:PLAN by NAME`.
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `done`, `failed`, `refused`, `deferred`, `blocked`,
    /// `awaiting_approval`, `stopped` or `interrupted`.
    pub outcome: String,
    pub plan_id: Option<String>,
    pub summary: Option<String>,
    pub error: Option<String>,
    /// What happened during the run, in order.
    #[schema(value_type = Vec<Object>)]
    pub events: Value,
}

impl From<roster_store::Run> for RunView {
    fn from(r: roster_store::Run) -> Self {
        Self {
            id: r.id,
            instance: r.instance,
            trigger: r.trigger,
            started_at: rfc3339(r.started_at),
            finished_at: when(r.finished_at),
            outcome: r.outcome,
            plan_id: r.plan_id,
            summary: r.summary,
            error: r.error,
            events: r.events,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Runs {
    pub runs: Vec<RunView>,
    /// Set when the page is full: pass it as `before` for the next, older page.
    pub next_before: Option<i64>,
}

/// A plan the service holds, and what became of it.
#[derive(Serialize, ToSchema)]
pub struct HeldPlanView {
    pub plan_id: String,
    pub instance: String,
    /// `pending`, `approved`, `rejected`, `applied`, `failed` or `superseded`.
    pub status: String,
    /// `schedule`, `api:TOKEN-NAME`, or `approval of PLAN`.
    pub requested_by: String,
    pub created_at: String,
    pub destructive: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub comment: Option<String>,
    pub outcome: Option<String>,
    /// The access review whose revocations this plan carries out (`requested_by` is
    /// `review:ID`), if any.
    pub review: Option<i64>,
}

impl From<roster_store::ServicePlan> for HeldPlanView {
    fn from(p: roster_store::ServicePlan) -> Self {
        Self {
            review: crate::reviews::review_of_trigger(&p.requested_by),
            plan_id: p.plan_id,
            instance: p.instance,
            status: p.status,
            requested_by: p.requested_by,
            created_at: rfc3339(p.created_at),
            destructive: p.destructive,
            decided_by: p.decided_by,
            decided_at: when(p.decided_at),
            comment: p.comment,
            outcome: p.outcome,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Plans {
    pub plans: Vec<HeldPlanView>,
}

/// One plan in full: its steps (each with its reason, the roster line it comes from, and
/// whether it is destructive), notes, caps, and the service's record of it.
#[derive(Serialize, ToSchema)]
pub struct PlanDetail {
    pub id: String,
    pub roster: String,
    pub created_at: String,
    pub fingerprint: String,
    pub digest: String,
    /// "N to create, N to change, N to remove (N destructive)".
    pub summary_line: String,
    #[schema(value_type = Object)]
    pub summary: Value,
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    #[schema(value_type = Vec<Object>)]
    pub notes: Value,
    /// Why the plan cannot run (a cap exceeded), if it cannot.
    pub blocked: Vec<String>,
    /// Set for a targeted plan: `{people, left_alone, unread}`, the people it is about and
    /// the accounts it left alone (and of those, how many it did not read).
    #[schema(value_type = Option<Object>)]
    pub targeted: Option<Value>,
    pub held: HeldPlanView,
}

/// A plan approved or rejected.
#[derive(Serialize, ToSchema)]
pub struct Decided {
    pub plan: String,
    /// `approved` (its apply is queued) or `rejected`.
    pub status: &'static str,
    pub by: String,
    pub instance: String,
    /// What the approver should know: for a restore of someone the roster lists as a
    /// leaver (or not at all), that the account is kept only until an exception lapses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An approval or a rejection: why, for the audit log.
#[derive(serde::Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// At most 2,000 characters.
    pub comment: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LogLine {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub os_user: String,
    pub plan: Option<String>,
    pub step_key: Option<String>,
    pub app: String,
    /// The app instance (its base URL) the line's plan was applied to, where recorded.
    pub instance: Option<String>,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
    /// SHA-256 chaining this line to the one before.
    pub hash: String,
}

impl From<roster_store::LogEntry> for LogLine {
    fn from(e: roster_store::LogEntry) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            actor: e.actor,
            os_user: e.os_user,
            plan: e.plan_id,
            step_key: e.step_key,
            app: e.app,
            instance: e.instance,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            detail: e.detail,
            hash: e.hash,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Log {
    pub log: Vec<LogLine>,
    /// Set when a page (`after`/`limit`) is full: pass it as `after` for the next page.
    pub next_after: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TombstoneView {
    pub id: i64,
    pub app: String,
    pub instance: String,
    pub userid: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub api_only: bool,
    #[schema(value_type = Vec<Object>)]
    pub roles: Value,
    pub deleted_at: String,
    pub deleted_by: String,
    pub reason: Option<String>,
    /// `deleting`, `deleted` or `failed`.
    pub status: &'static str,
    pub restored_at: Option<String>,
}

impl From<roster_store::Tombstone> for TombstoneView {
    fn from(t: roster_store::Tombstone) -> Self {
        Self {
            id: t.id,
            app: t.app,
            instance: t.instance,
            userid: t.userid,
            email: t.email,
            first_name: t.first_name,
            last_name: t.last_name,
            api_only: t.api_only,
            roles: serde_json::to_value(&t.roles).unwrap_or_default(),
            deleted_at: rfc3339(t.deleted_at),
            deleted_by: t.deleted_by,
            reason: t.reason,
            status: t.status.as_str(),
            restored_at: when(t.restored_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Tombstones {
    pub tombstones: Vec<TombstoneView>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub hook: String,
    pub event: String,
    /// The JSON body that was sent.
    pub body: String,
    pub created_at: String,
    pub attempts: i64,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

impl From<roster_store::Delivery> for DeliveryView {
    fn from(d: roster_store::Delivery) -> Self {
        Self {
            id: d.id,
            hook: d.hook,
            event: d.event,
            body: d.body,
            created_at: rfc3339(d.created_at),
            attempts: d.attempts,
            status: d.status,
            response_status: d.response_status,
            last_error: d.last_error,
            delivered_at: when(d.delivered_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Deliveries {
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
    /// `reachable` or `unreachable`.
    pub state_store: &'static str,
    pub started_at: String,
    pub instances: Vec<ReadyInstance>,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyInstance {
    pub name: String,
    pub running: Option<String>,
    pub last_outcome: Option<String>,
    pub last_finished_at: Option<String>,
}

/// A restore from a tombstone, asked for through the API; it waits for an approval.
#[derive(Serialize, ToSchema)]
pub struct RestoreView {
    pub id: i64,
    pub tombstone_id: i64,
    pub instance: String,
    /// `pending`, `approved`, `rejected`, `restored` or `failed`.
    pub status: String,
    pub requested_by: String,
    pub created_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub comment: Option<String>,
    pub outcome: Option<String>,
}

impl From<roster_store::RestoreRequest> for RestoreView {
    fn from(r: roster_store::RestoreRequest) -> Self {
        Self {
            id: r.id,
            tombstone_id: r.tombstone_id,
            instance: r.instance,
            status: r.status,
            requested_by: r.requested_by,
            created_at: rfc3339(r.created_at),
            decided_by: r.decided_by,
            decided_at: when(r.decided_at),
            comment: r.comment,
            outcome: r.outcome,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Restores {
    pub restores: Vec<RestoreView>,
}

/// A restore request, made now or already waiting.
#[derive(Serialize, ToSchema)]
pub struct RestoreAsked {
    pub request: RestoreView,
    /// False when a request for this tombstone was already waiting (that one is returned).
    pub created: bool,
    /// As [`Decided::note`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The audit log's newest line, signed now with the service's key.
#[derive(Serialize, ToSchema)]
pub struct LogHeadView {
    /// The newest line's id (0 for an empty log).
    pub id: i64,
    /// That line's hash.
    pub hash: String,
    /// When it was signed, RFC 3339 UTC.
    pub signed_at: String,
    /// The signing key's id.
    pub key_id: String,
    /// `ed25519:KEY-ID:BASE64`.
    pub signature: String,
}
