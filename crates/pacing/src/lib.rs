//! Call limits shared by Roster processes: Marketo counts calls per subscription and Adobe
//! per API client, whichever process sends them, so each process records its calls where
//! the others see them before it sends one. [`Ledger`] is a file for the processes of one
//! machine; [`SharedPacing`] is what a store shared by many machines implements too.

mod ledger;

pub use ledger::{Admitting, Ledger, SharedPacing, Slot};
