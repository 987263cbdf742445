//! qtune: post-training INT8 quantization of ONNX models, with a terminal UI.
//!
//! Dependencies point one way: `onnx → ir ← engine ← calib ← quant ← eval ← tune`.
// Every `unsafe` block says why it is sound (`// SAFETY: …`).
#![deny(clippy::undocumented_unsafe_blocks)]
pub mod calib;
pub mod config;
pub mod data;
pub mod engine;
pub mod error;
pub mod eval;
pub mod ir;
pub mod jobs;
pub mod onnx;
pub mod quant;
pub mod serde_num;
pub mod session;
pub mod tui;
pub mod tune;
pub mod util;
pub mod workspace;

pub use error::{Error, Result};
