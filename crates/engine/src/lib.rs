//! Roster's application layer: reading the apps' live state, planning, the journaled
//! executor, provisioning, offboarding, restoring and following invitations.
//!
//! The CLI and the service both drive it. Operations report progress as [`events::Event`]s
//! through the [`events::Progress`] sink in [`Globals`] (and in every session opened from
//! it), so the same code prints lines in a terminal and records runs in the service.
//! Errors are `anyhow` errors whose messages are written for the operator: this layer's
//! callers show them, they do not branch on them.

pub mod actor;
pub mod adobe_ops;
pub mod approvers;
pub mod apps;
pub mod audit_report;
pub mod conn;
pub mod connect;
pub mod events;
pub mod evidence;
pub mod lifecycle;
pub mod live_read;
pub mod lock;
pub mod magento_ops;
pub mod marketo_ops;
pub mod planning;
pub mod private;
pub mod problem;
pub mod shared_pacing;
pub mod text;

use std::path::PathBuf;

pub use conn::{AdobeConn, Confirm, ImsSettings, MagentoConn, MarketoConn, parse_duration};
pub use events::{Event, Events, Progress, StepOutcome};

/// What every operation needs to know about where it runs: the state folder, the config
/// file, who is acting, and where its events go.
#[derive(Clone)]
pub struct Globals {
    /// The state folder (`--state`); the default when `None`.
    pub state: Option<PathBuf>,
    /// The PostgreSQL database holding the state instead (`--database` /
    /// `ROSTER_DATABASE_URL`); the SQLite file in the state folder when `None`.
    pub database: Option<String>,
    /// The configuration file (`--config`); the default (if any) when `None`.
    pub config: Option<PathBuf>,
    /// `--actor` / `ROSTER_ACTOR`, if given.
    pub actor: Option<String>,
    pub events: Events,
    /// Read no configuration file at all, not even the default one: the caller gives every
    /// connection setting itself (the service, from its own configuration).
    pub no_config_file: bool,
    /// The service instance a command works on (`--instance`, or the only one), when the
    /// configuration file is the service's: its connection, and its name for the roster's
    /// named access.
    pub instance: Option<Chosen>,
    /// With the service's configuration as --config: finds the instance a command that
    /// connects to one app works on (its `--instance`, or the only one of that app), read
    /// as the service reads it. Asked only when the command connects.
    pub service_instances: Option<InstanceFinder>,
}

/// See [`Globals::service_instances`].
pub type InstanceFinder = std::sync::Arc<
    dyn Fn(roster_domain::desired::App, Option<&str>) -> anyhow::Result<Chosen> + Send + Sync,
>;

/// One instance of a service configuration, as a CLI command uses it.
#[derive(Clone)]
pub struct Chosen {
    pub app: roster_domain::desired::App,
    /// The name after the app (`emea` of `marketo.emea`).
    pub name: String,
    pub marketo: Option<MarketoConn>,
    pub magento: Option<MagentoConn>,
}

impl Globals {
    /// The service instance of `app` a connecting command works on, if it was given the
    /// service's configuration (its connection settings then come from there); refuses
    /// `--instance` without one.
    pub fn service_instance(
        &self,
        app: roster_domain::desired::App,
        named: Option<&str>,
    ) -> anyhow::Result<Option<Chosen>> {
        match (&self.service_instances, named) {
            (Some(find), _) => find(app, named).map(Some),
            (None, Some(name)) => Err(problem::Problem::not_configured(format!(
                "--instance {name}: instances are named in the service's configuration; give it with --config"
            ))),
            (None, None) => Ok(None),
        }
    }

    /// The configuration file's settings (empty when there is none or it is not to be read).
    pub fn config_file(&self) -> anyhow::Result<connect::ConfigFile> {
        if self.no_config_file {
            return Ok(connect::ConfigFile::default());
        }
        connect::load_config(self.config.as_deref())
    }

    pub fn emit(&self, event: Event) {
        self.events.emit(event);
    }
}
