pub mod harness;

mod admin;
mod hostile;
mod identity;
mod invites;
mod limits;
mod reads;
mod restart;
mod writes;
