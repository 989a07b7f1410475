//! Integration tests for the sandboxes, over real HTTP against real SQLite files.
//! One test binary for the crate; each API has its own module.

mod adobe;
mod magento;
mod marketo;
mod python_libraries;
