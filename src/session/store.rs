//! Saving and loading sessions: JSON, written atomically (temp file + fsync + rename), so
//! a killed run leaves the previous complete file. Older formats are migrated on load.

use std::path::Path;

use super::session::{SESSION_FORMAT, Session};
use crate::util::write_atomic;

/// Why a session could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a qtune session ({msg})")]
    Corrupt { path: String, msg: String },
    #[error(
        "{path}: session format {found} is newer than this qtune understands (format {SESSION_FORMAT}); update qtune"
    )]
    TooNew { path: String, found: u32 },
    #[error(
        "{path}: the session was made for another model (sha256 {expected}…, this one is {found}…); pass --force to reuse it anyway"
    )]
    OtherModel {
        path: String,
        expected: String,
        found: String,
    },
}

/// Writes `session` to `path` atomically.
pub fn save(session: &Session, path: &Path) -> Result<(), SessionError> {
    let bytes = serde_json::to_vec(session).map_err(|e| SessionError::Corrupt {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    write_atomic(path, &bytes).map_err(|source| SessionError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a session, migrating older formats to the current one.
pub fn load(path: &Path) -> Result<Session, SessionError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| SessionError::Io {
        path: p.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| SessionError::Corrupt {
            path: p.clone(),
            msg: e.to_string(),
        })?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| SessionError::Corrupt {
            path: p.clone(),
            msg: "no `format` field".into(),
        })? as u32;
    if format > SESSION_FORMAT {
        return Err(SessionError::TooNew {
            path: p,
            found: format,
        });
    }
    // Format 1 is the first; later formats add a migration step here, oldest first.
    serde_json::from_value(value).map_err(|e| SessionError::Corrupt {
        path: p,
        msg: e.to_string(),
    })
}

/// Refuses a session made for a model with another hash, unless `force`.
pub fn check_model(
    session: &Session,
    path: &Path,
    sha256: &str,
    force: bool,
) -> Result<(), SessionError> {
    if force || session.model_sha256 == sha256 {
        return Ok(());
    }
    let short = |s: &str| s.chars().take(12).collect::<String>();
    Err(SessionError::OtherModel {
        path: path.display().to_string(),
        expected: short(&session.model_sha256),
        found: short(sha256),
    })
}
