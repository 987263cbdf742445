//! ONNX protobuf import (and, later, export).
pub mod attrs;
pub mod load;
#[allow(clippy::all, missing_docs)]
pub mod proto;

pub use load::{LoadError, Model, load_model};
