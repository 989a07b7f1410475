//! Emulation of Adobe Marketo Engage's identity service and User Management API.
//!
//! The behaviour follows `shared/reference/README.md`: bare JSON bodies, `{"errors": [...]}`
//! on failure with Marketo's numeric codes, pending invitations that a person accepts on a
//! web page, workspace-scoped roles, and the subscription-wide limits (100 calls per 20 s,
//! 10 concurrent calls, a daily quota).

pub mod admin;
mod api_guard;
mod body;
mod config;
mod error;
mod identity;
pub mod ims_sync;
mod invites;
mod limits;
mod read_cache;
mod seed;
mod server;
mod store;
mod users;

pub use config::{Faults, Limits, MarketoConfig, RoleBodyShapes};
pub use error::SandboxError;
pub use seed::SUBSCRIPTION_ID;
pub use server::{RunningSandbox, start};
pub use store::ServiceCredentials;

/// Permission a caller's role needs, with [`PERMISSION_USER_MANAGEMENT_API`], to use the API.
pub const PERMISSION_ACCESS_USERS: &str = "Access Users";
/// The second permission the User Management API demands of the calling API-only user.
pub const PERMISSION_USER_MANAGEMENT_API: &str = "Access User Management Api";
/// Base permission for any REST call.
pub const PERMISSION_ACCESS_API: &str = "Access API";
