//! Sessions: the typed, validated record of a tuning run (session.rs and the records it
//! holds), how results are ranked (order.rs), validation at load (validate.rs), and
//! storage as a snapshot plus an append-only journal (store.rs).
//!
//! Loaded data is validated once, so nothing here may panic on it: no `unwrap`, no
//! indexing (accessors return `Option`); tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

mod ids;
pub mod order;
pub mod plan;
mod record;
#[allow(clippy::module_inception)]
mod session;
mod stage;
pub mod store;
pub mod summary;
mod validate;

pub use ids::{EvalId, SettingId};
pub use record::{
    ActivationSummary, Current, Evaluation, LayerInfo, LogEntry, Origin, RerunStats, Setting,
    SettingRecord, Stopped, now,
};
pub use session::{SESSION_FORMAT, Session, SessionFull, SessionInit};
pub use stage::{ExcludeSearch, StageId, StageRecord, StageState, Stages};
pub use store::{SessionError, SessionFile, check_model, journal_path, load, save};
pub use validate::Invalid;
