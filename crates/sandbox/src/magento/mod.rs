//! Emulation of Magento 2 / Adobe Commerce's REST user surface: admin and customer tokens
//! (with the account lock after 6 failures), customers with 2.4-style merging updates,
//! customer groups, websites and store views, store-code prefixes, and `searchCriteria`
//! in full. The behaviour follows `shared/reference/README.md`.
//!
//! Errors are Magento's `{"message": template, "parameters": {...}}` with its status codes;
//! an unknown route answers 404 "Request does not match any route." as core Magento does.

mod admins;
mod auth;
mod bulk;
mod config;
mod customers;
mod error;
mod fields;
pub mod integrations;
mod search;
mod seed;
mod server;
mod store;

pub use config::{MagentoConfig, MagentoFaults};
pub use server::{RunningMagento, start};
