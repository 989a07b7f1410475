mod harness;

mod admins;
mod bulk;
mod customers;
mod pyclients;
mod search;
mod tokens;
