//! Sandboxes: faithful local emulations of the SaaS APIs Roster manages.
//!
//! They are Roster's offline default target and its test bed: every connector is tested
//! against them over real HTTP. State lives in a SQLite file and survives restarts; flags
//! scale the vendor's limits and inject faults so clients can prove their retries.

pub mod clock;
pub mod magento;
pub mod marketo;
mod sqlite;
