//! The FP32 engine: compiles a graph into a plan for fixed input shapes and runs it.
pub mod analyze;
pub mod error;
pub mod ops;
pub mod plan;
pub mod runner;

pub use analyze::{analyze, check_supported, prepare, unsupported_ops};
pub use error::{EngineError, EngineResult};
pub use plan::Plan;
pub use runner::Runner;
