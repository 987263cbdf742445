//! Tuning: the seed's flow of stages 1–8 (flow.rs) over calibration settings (grid.rs),
//! with the exclude_op searches of stage 7 (exclude.rs), run by a `Tuner` that records
//! everything in a session (tuner.rs).

pub mod calibrations;
mod exclude;
pub mod flow;
pub mod grid;
pub mod open;
pub mod race;
pub mod tuner;

pub use flow::FlowOutcome;
pub use open::{Opened, open_session};
pub use race::Race;
pub use tuner::{Observer, Quiet, Request, Tuner, Work, new_session};
