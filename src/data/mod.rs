//! Input data: `.npy` tensors, images, HiAI BINARY calibration files, labels.
pub mod binary;
pub mod dataset;
pub mod image;
pub mod labels;
pub mod npy;
mod resample;

pub use npy::{NpyError, read_npy, write_npy};

/// Errors reading input data; each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("{0}")]
    Config(String),
}
