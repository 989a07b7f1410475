//! What the engine's operations report as they go. The engine never prints: the CLI renders
//! these events as its familiar lines, the service records them with the run they belong to.

use std::sync::Arc;

use roster_domain::plan::Plan;

/// One thing that happened (or is about to), in the order it happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// `apply --auto` computed this plan and is about to run it.
    Planned(Box<Plan>),
    /// A plan's journal already records some of its steps as done.
    Resuming {
        plan_id: String,
        done: usize,
        total: usize,
    },
    /// One step of a plan ran (or was skipped).
    Step {
        plan_id: String,
        index: usize,
        total: usize,
        /// What the step does, safe to show on a terminal.
        description: String,
        /// The account it changes (email, userid or username).
        account: String,
        app: roster_domain::desired::App,
        stage: roster_domain::plan::Stage,
        destructive: bool,
        outcome: StepOutcome,
    },
    /// An apply ended: counts of this run and the steps done before it.
    Applied {
        plan_id: String,
        ran: usize,
        before: usize,
        failed: usize,
        skipped: usize,
    },
    /// Someone was invited to Marketo (or an API-only user was created).
    Invited {
        email: String,
        roles: String,
        api_only: bool,
    },
    /// A destructive command was run without `--yes`: what it would do.
    DryRun { steps: Vec<String> },
    /// A tombstone was written before an account is deleted.
    TombstoneSaved { id: i64 },
    /// What a connection cost, when it is closed.
    Cost { app: &'static str, line: String },
    /// A result for the person who asked (the CLI prints it on stdout).
    Said(String),
    /// Progress or a warning along the way (the CLI prints it on stderr).
    Note(String),
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Done; the note says when it turned out to be done already, and similar.
    Done {
        note: Option<String>,
    },
    Failed {
        error: String,
    },
    /// Not run: an earlier step for the same account failed.
    Skipped,
}

/// Where events go. Implementations must be cheap and never block for long: they are
/// called between API calls.
pub trait Progress: Send + Sync {
    fn emit(&self, event: Event);
}

/// A shared handle to an event sink.
pub type Events = Arc<dyn Progress>;

/// Discards every event (tests, and reads whose progress nobody watches).
pub struct Silent;

impl Progress for Silent {
    fn emit(&self, _: Event) {}
}

/// An [`Events`] that discards everything.
pub fn silent() -> Events {
    Arc::new(Silent)
}
