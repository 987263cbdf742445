//! Opening the session a tuning run writes: resumed when the file holds one for this
//! model, created when there is none, and — only when asked (`--force`) — started afresh
//! for this model after moving the other model's session aside.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::eval::Evaluator;
use crate::session::{Session, SessionError, SessionFile, check_model, journal_path};
use crate::workspace::Workspace;

use super::tuner::new_session;

/// How the session was opened.
#[derive(Clone, Debug, PartialEq)]
pub enum Opened {
    /// The file held a session of this model; it continues.
    Resumed,
    /// There was no file: a new session.
    Created,
    /// The file held another model's session, moved to `backup`; a new session.
    Replaced { backup: PathBuf },
}

/// Opens (or creates) the session at `path` for `ws`. A session of another model is an
/// error unless `force`, which moves it to `<path>.<sha12>.bak` and starts afresh.
/// A file that cannot be read as a session is never written.
pub fn open_session(
    path: &Path,
    ws: &Workspace,
    ev: &Evaluator,
    force: bool,
) -> Result<(Session, SessionFile, Opened)> {
    if path.exists() {
        let sha = ws.model.sha256.as_str();
        match SessionFile::open(path, |s| check_model(s, path, sha)) {
            Ok((file, s)) => return Ok((s, file, Opened::Resumed)),
            Err(SessionError::OtherModel { expected, .. }) if force => {
                let backup = backup_path(path, &expected);
                std::fs::rename(path, &backup).map_err(|e| Error::io(path, e))?;
                let j = journal_path(path);
                if j.exists() {
                    std::fs::rename(&j, journal_path(&backup)).map_err(|e| Error::io(&j, e))?;
                }
                let s = new_session(ws, ev);
                let file = SessionFile::create(path, &s)?;
                return Ok((s, file, Opened::Replaced { backup }));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let s = new_session(ws, ev);
    let file = SessionFile::create(path, &s)?;
    Ok((s, file, Opened::Created))
}

/// `S.json` → `S.json.<sha12>.bak` (numbered when that exists too).
fn backup_path(path: &Path, sha12: &str) -> PathBuf {
    let base = format!("{}.{sha12}.bak", path.display());
    let mut p = PathBuf::from(&base);
    let mut k = 1;
    while p.exists() {
        p = PathBuf::from(format!("{base}{k}"));
        k += 1;
    }
    p
}
