//! qtune: post-training INT8 quantization of ONNX models, with a terminal UI.
//!
//! Dependencies point one way: `onnx → ir ← engine ← calib ← quant ← eval ← tune`.
pub mod calib;
pub mod engine;
pub mod ir;
pub mod onnx;
