//! Emulation of the Adobe Admin Console's User Management API (UMAPI) and the IMS sign-in it
//! needs, for Marketo Engage subscriptions on Adobe Identity.
//!
//! The behaviour follows `shared/reference/adobe-admin-console-umapi.md`: OAuth
//! Server-to-Server tokens from `/ims/token/v2|v3`; `Authorization: Bearer` and `X-Api-Key`
//! on every call; paged reads with `lastPage` and the `X-*-Count` headers; one action
//! endpoint for every write with Adobe's rules and per-entry errors; per-client limits per
//! minute with 429 and `Retry-After`.

pub mod action;
pub mod admin;
mod config;
mod limits;
pub mod seed;
mod server;
pub mod store;

pub use config::{AdobeConfig, AdobeFaults, AdobeLimits, DEFAULT_ORG_ID};
pub use limits::StatsSnapshot;
pub use server::{AdobeCredentials, RunningAdobe, UMAPI, start};
