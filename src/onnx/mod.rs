//! ONNX protobuf import (and, later, export).
pub mod attrs;
pub mod export;
pub mod load;
#[allow(clippy::all, missing_docs)]
pub mod proto;
pub mod upgrade;

pub use load::{LoadError, Model, load_model};
