//! A typed client for Magento 2 / Adobe Commerce's REST user surface.
//!
//! It handles the API's caveats once: the admin token (4 h, renewed before it lapses and on a
//! 401), the store scope in every path, `searchCriteria` paging until `total_count` is
//! reached, updates that fetch, merge and write the whole customer so that no field or
//! address is lost whatever the Magento version's PUT semantics, async bulk submission in
//! chunks with status polling until every operation is final, and the admin-user endpoints
//! that only some installations have.

mod client;
mod error;
pub mod oauth1;
mod search;

pub use client::{AdminUsers, BulkOutcome, Client, ClientConfig, Page, Stats, TokenAuth};
pub use error::MagentoError;
pub use oauth1::OAuth1Credentials;
pub use search::{Condition, Criteria, like_literal};
