//! A client for the Adobe Admin Console's User Management API (UMAPI), for Marketo Engage
//! subscriptions on Adobe Identity and for other Adobe products.
//!
//! It absorbs UMAPI's caveats once, as Adobe's own `umapi-client` does (facts and sources in
//! `shared/reference/adobe-admin-console-umapi.md`):
//! - an OAuth Server-to-Server token kept for its lifetime and renewed before it expires
//!   (`expires_in` is seconds), sent with `X-Api-Key` on every call;
//! - paged reads followed to `lastPage` (or an empty page);
//! - writes batched to 10 command entries per call, 10 steps per entry and 10 names per
//!   add/remove list, with each answer's errors mapped back to the person and step;
//! - retries of 429, 502, 503, 504, time-outs and refused connections, honouring
//!   `Retry-After` in seconds or as an HTTP date, else exponential backoff with jitter,
//!   bounded; other 4xx and 5xx are never retried;
//! - creates sent with `ignoreIfAlreadyExists`, because a create is retried after a time-out;
//! - calls paced under the per-client limits (action 10, user reads 25, group reads 5 a
//!   minute) instead of tripping them; redirects never followed, so credentials go nowhere
//!   else.

mod client;
mod commands;
mod config;
mod error;
mod model;
mod pacing;
mod retry;

pub use client::{CallStats, Client};
pub use commands::{CommandOutcome, Step, StepFailure, UserCommand};
pub use config::{AdobeConfig, Limits, RetryPolicy, SharedFamilies};
pub use error::AdobeError;
pub use model::{AdobeGroup, AdobeUser, IdentityType};
pub use retry::parse_retry_after;
