//! Quantization: which layers, their parameters (`QuantPlan`), and the Q/DQ graph transform.
pub mod apply;
pub mod build;
pub mod calibrate;
pub mod export;
pub mod layers;
pub mod plan;
pub mod record;

pub use apply::apply;
pub use build::{QdqDecision, build, decide};
pub use layers::{Layer, LayerRef, find_layers};
pub use plan::QuantPlan;
pub use record::ParamsRecord;

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("weight `{name}`: {msg}")]
    Weight { name: String, msg: String },
    #[error("{0}")]
    Invalid(String),
}
