//! The FP32 engine: compiles a graph into a plan for fixed input shapes and runs it.
pub mod analyze;
pub mod error;
pub mod kernels;
pub mod ops;
pub mod plan;
pub mod runner;

pub use analyze::{analyze, check_supported, fold_constants, prepare, unsupported_ops};
pub use error::{EngineError, EngineResult};
pub use plan::{INT8_ENV, Int8Mode, Plan, PlanOptions};
pub use runner::Runner;
