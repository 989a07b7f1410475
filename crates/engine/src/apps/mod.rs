//! One interface for every app Roster manages: a connector reads what planning needs,
//! executes a step, names the account a deleting step tombstones, and restores from a
//! tombstone. The planner's output (`Step`s tagged with their `App`) and the executor,
//! the journal's settling, tombstone restores and the service's runs reach apps only
//! through it, so a fourth app is a connector crate, its domain types and planner
//! module, a `Connector` implementation here, and one line in `Sessions::apps`.
//!
//! The model is ConductorOne's baton-sdk: small operations per connector, and "already
//! so" counted as success, so a rerun after a crash repeats nothing.

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;
use roster_domain::desired::{App, Roster};
use roster_domain::live::Live;
use roster_domain::plan::{Action, Step};
use roster_store::{StateStore, Tombstone};

use crate::conn::Confirm;
use crate::events::Events;

/// The accessors every session has the same way (fields `instance`, `state`, `events`
/// and an inherent `cost_line`), for a `Connector` implementation.
macro_rules! session_basics {
    ($app:expr) => {
        fn app(&self) -> roster_domain::desired::App {
            $app
        }

        fn instance(&self) -> &str {
            &self.instance
        }

        fn state(&self) -> &roster_store::StateStore {
            &self.state
        }

        fn events(&self) -> &crate::events::Events {
            &self.events
        }

        fn cost(&self) -> String {
            self.cost_line()
        }
    };
}

pub mod adobe;
pub mod magento;
pub mod marketo;

/// How many steps an app's bulk route must have before an apply uses it: below this, one
/// call per step costs little and reports each step as it happens.
pub const BULK_MIN: usize = 20;

/// What a connector's operations return: boxed, so connectors are values (`&dyn
/// Connector`) the executor and the service hold in lists.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Who runs a step, for which plan: what tombstones and the apps' own trails record.
pub struct StepContext<'a> {
    pub plan_id: &'a str,
    pub who: &'a str,
}

impl StepContext<'_> {
    /// The confirmation a step carries into lifecycle operations (an apply's steps are
    /// confirmed by the plan they are part of).
    pub fn confirm(&self, step: &Step) -> Confirm {
        Confirm {
            yes: true,
            reason: Some(format!("{}: {}", self.plan_id, step.reason)),
            by: Some(self.who.to_string()),
        }
    }
}

/// One app instance as plans, applies and restores reach it.
pub trait Connector: Send + Sync {
    fn app(&self) -> App;

    /// The instance's key (a normalised URL, an organization id): what state rows, log
    /// lines and tombstones name it by.
    fn instance(&self) -> &str;

    fn state(&self) -> &StateStore;

    fn events(&self) -> &Events;

    /// One line saying what this session's calls cost.
    fn cost(&self) -> String;

    /// Reads what planning needs from this app: a `Live` with only this app's part set
    /// (or none, when the roster asks nothing of it).
    fn read<'a>(&'a self, roster: &'a Roster) -> Fut<'a, Live>;

    /// Runs one of this app's steps; `Ok(Some(note))` when it turned out to be done
    /// already or needs saying.
    fn execute<'a>(&'a self, step: &'a Step, ctx: &'a StepContext<'a>) -> Fut<'a, Option<String>>;

    /// Whether this app runs `action` together with others like it when a plan has many
    /// (see [`BULK_MIN`]): Magento deletes customers through its bulk API.
    fn bulk(&self, _action: &Action) -> bool {
        false
    }

    /// Runs `steps` (each one [`Connector::bulk`] accepts) together: each step's outcome, by
    /// its index. An error here is the whole batch's.
    fn execute_bulk<'a>(
        &'a self,
        steps: &'a [&'a Step],
        _ctx: &'a StepContext<'a>,
    ) -> Fut<'a, Vec<(usize, Result<Option<String>>)>> {
        Box::pin(async move {
            anyhow::bail!(
                "{} runs its {} steps one at a time",
                self.app(),
                steps.len()
            )
        })
    }

    /// The account a deleting action removes, as its tombstone names it (its `userid`).
    fn tombstoned(&self, action: &Action) -> Option<String>;

    /// Restores the account tombstone `t` (of this instance, and the newest of its account:
    /// the caller checks both) kept. The connector verifies the tombstone's signature
    /// before anything changes, as each of its own restore commands does.
    fn restore<'a>(&'a self, t: &'a Tombstone) -> Fut<'a, ()>;
}
