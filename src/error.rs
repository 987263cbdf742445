//! The library's top-level error: every boundary's error, plus usage errors.

use crate::config::ConfigError;
use crate::data::{DataError, NpyError};
use crate::engine::EngineError;
use crate::onnx::LoadError;
use crate::quant::QuantError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("{0}")]
    Usage(String),
    /// The job was cancelled (Esc in the TUI, Ctrl-C); nothing is wrong.
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    /// Another process writes the same file (a session): `util::lock::WriterLock`.
    #[error(transparent)]
    Lock(#[from] crate::util::lock::LockError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
