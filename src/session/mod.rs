//! Sessions: the versioned record of a tuning run (session.rs) and its atomic storage
//! (store.rs).

pub mod plan;
#[allow(clippy::module_inception)]
mod session;
pub mod store;

pub use session::*;
pub use store::{SessionError, check_model, load, save};
