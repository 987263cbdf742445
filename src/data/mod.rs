//! Input data: `.npy` tensors (and, later, images and HiAI calibration files).
pub mod npy;

pub use npy::{NpyError, read_npy, write_npy};
