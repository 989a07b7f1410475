//! Roster's domain: pure types and logic shared by connectors, sandboxes and the CLI.
//!
//! Nothing in this crate performs I/O; everything here can be unit- and property-tested
//! in isolation.

pub mod access;
pub mod budget;
pub mod desired;
pub mod email;
pub mod endpoint;
pub mod inventory;
pub mod live;
pub mod marketo_time;
pub mod plan;
pub mod report;
pub mod review;
pub mod roster_file;
pub mod safety;
pub mod secret;
pub mod sha256;
pub mod text;
mod yaml_split;

pub use secret::Secret;
