//! A typed client for the Adobe Marketo Engage User Management API.
//!
//! Every caveat of the API is handled here, once, so no command has to know about it:
//! tokens that expire (and are refreshed once for all concurrent callers), the shared
//! limits (10 calls in flight, 100 per 20 s, a daily quota) which the client paces itself
//! to never trip, retries with backoff and jitter that never duplicate a write, user ids
//! that must be URL-encoded, date-times in several shapes, and the two role-body shapes.

pub mod audit;
mod client;
mod config;
mod directory;
mod error;
mod model;
mod pacing;
mod quota;
mod stats;
mod token;

pub use client::{Client, Deleted, Invited};
pub use config::{ClientConfig, DEFAULT_DAILY_QUOTA, RetryPolicy};
pub use directory::{Directory, ResolveError};
pub use error::{ApiFailure, MarketoError};
pub use model::{Invitation, PendingInvitation, Role, User, UserSummary, UserUpdate, Workspace};
pub use quota::QuotaBudget;
pub use roster_pacing::{Admitting, SharedPacing};
pub use stats::CallStats;
