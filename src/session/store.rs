//! Storing sessions: a snapshot `S` (the whole session as JSON, written atomically) and,
//! beside it, a journal `S.journal` of what changed since, one JSON line per save. Saving
//! after an evaluation appends (and fsyncs) one line in proportion to that evaluation, so a
//! kill loses at most the evaluation in flight; the journal is folded into a new snapshot
//! when it grows past the snapshot's size and when the writer closes.
//!
//! Loading reads the snapshot, migrates older formats, replays the journal (a torn last
//! line — the save in flight — is ignored), then validates every id and name (validate.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ids::SettingId;
use super::record::{Evaluation, LogEntry, SettingRecord};
use super::session::{SESSION_FORMAT, Session};
use super::validate::validate;
use crate::calib::{AllCurves, DisplayHistogram};
use crate::util::fs::{read_input, write_atomic};
use crate::util::lock::{LockError, WriterLock};

/// Why a session could not be loaded or saved. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a qtune session ({msg})")]
    Corrupt { path: String, msg: String },
    #[error("{path}: {field} {msg}")]
    Invalid {
        path: String,
        field: String,
        msg: String,
    },
    #[error("{path}:{line}: damaged session journal ({msg})")]
    Journal {
        path: String,
        line: usize,
        msg: String,
    },
    #[error(
        "{path}: session format {found} is newer than this qtune understands (format {SESSION_FORMAT}); update qtune"
    )]
    TooNew { path: String, found: u64 },
    #[error(
        "{path}: the session was made for another model (sha256 {expected}…, this one is {found}…); pass --force to start it afresh for this model"
    )]
    OtherModel {
        path: String,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("{path}: {source}")]
    Full {
        path: String,
        source: super::SessionFull,
    },
}

/// The journal beside session file `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// Reads a session (snapshot and journal), without locking it.
pub fn load(path: &Path) -> Result<Session, SessionError> {
    Ok(read(path)?.0)
}

/// Writes `session` as a complete snapshot at `path` (no journal). For copies and tests;
/// a running tuner saves through a [`SessionFile`].
pub fn save(session: &Session, path: &Path) -> Result<(), SessionError> {
    write_snapshot(session, 0, path)?;
    remove_journal(path)
}

/// The snapshot, migrated, with the journal replayed; and the last journal sequence.
fn read(path: &Path) -> Result<(Session, u64), SessionError> {
    let p = path.display().to_string();
    let limit = crate::util::budget::limit();
    let bytes = read_input(path, limit).map_err(|source| SessionError::Io {
        path: p.clone(),
        source,
    })?;
    let (mut session, mut seq) = parse_snapshot(&bytes, &p)?;
    let journal = journal_path(path);
    match read_input(&journal, limit) {
        Ok(text) => seq = replay(&mut session, seq, &text, &journal)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SessionError::Io {
                path: journal.display().to_string(),
                source,
            });
        }
    }
    validate(&session).map_err(|i| SessionError::Invalid {
        path: p,
        field: i.field,
        msg: i.msg,
    })?;
    Ok((session, seq))
}

fn parse_snapshot(bytes: &[u8], p: &str) -> Result<(Session, u64), SessionError> {
    let corrupt = |msg: String| SessionError::Corrupt {
        path: p.to_string(),
        msg,
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no `format` field".into()))?;
    if format > u64::from(SESSION_FORMAT) {
        return Err(SessionError::TooNew {
            path: p.to_string(),
            found: format,
        });
    }
    if format == 0 {
        return Err(corrupt("format 0 does not exist".into()));
    }
    // Format 1 → 2: stage 6 is inserted pending (Stages does it), layers get `macs` 0
    // (unknown), the rest is new optional fields.
    if let Some(f) = value.get_mut("format") {
        *f = SESSION_FORMAT.into();
    }
    let mut session: Session =
        serde_path_to_error::deserialize(value).map_err(|e| corrupt(field_error(&e)))?;
    let seq = std::mem::take(&mut session.journal_seq);
    Ok((session, seq))
}

/// `path.to.field: message`, without serde's internal type names where it has them.
fn field_error<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

/// One journal line: what changed since the previous line (or the snapshot).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Delta {
    seq: u64,
    /// Everything but the append-only parts (small: header, layers, stages, current).
    head: Session,
    settings_from: usize,
    settings: Vec<SettingRecord>,
    curves: Vec<(SettingId, BTreeMap<String, AllCurves>)>,
    evaluations_from: usize,
    evaluations: Vec<Evaluation>,
    histograms: BTreeMap<usize, BTreeMap<String, DisplayHistogram>>,
    log_from: usize,
    log: Vec<LogEntry>,
}

/// Applies the journal `text` to `s`; returns the last sequence applied.
fn replay(s: &mut Session, mut seq: u64, text: &[u8], path: &Path) -> Result<u64, SessionError> {
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let complete = lines.len().saturating_sub(1); // the part after the last newline is torn
    for (i, line) in lines.into_iter().take(complete).enumerate() {
        let err = |msg: String| SessionError::Journal {
            path: path.display().to_string(),
            line: i + 1,
            msg,
        };
        let mut de = serde_json::Deserializer::from_slice(line);
        let d: Delta =
            serde_path_to_error::deserialize(&mut de).map_err(|e| err(field_error(&e)))?;
        if d.seq <= seq {
            continue; // already folded into the snapshot
        }
        if d.seq != seq + 1 {
            return Err(err(format!("record {} follows record {seq}", d.seq)));
        }
        apply(s, d).map_err(err)?;
        seq += 1;
    }
    Ok(seq)
}

fn apply(s: &mut Session, d: Delta) -> Result<(), String> {
    let counts = [
        ("settings", s.settings.len(), d.settings_from),
        ("evaluations", s.evaluations.len(), d.evaluations_from),
        ("log", s.log.len(), d.log_from),
    ];
    for (what, have, from) in counts {
        if have != from {
            return Err(format!(
                "it continues {what} from {from}, the session has {have}"
            ));
        }
    }
    let mut next = d.head;
    next.settings = std::mem::take(&mut s.settings);
    next.settings.extend(d.settings);
    for (id, curves) in d.curves {
        next.set_curves(id, curves);
    }
    next.evaluations = std::mem::take(&mut s.evaluations);
    next.evaluations.extend(d.evaluations);
    next.histograms = std::mem::take(&mut s.histograms);
    next.histograms.extend(d.histograms);
    next.log = std::mem::take(&mut s.log);
    next.log.extend(d.log);
    *s = next;
    Ok(())
}

/// What the files hold, to know what a save must add.
#[derive(Clone, Debug, Default, PartialEq)]
struct Mark {
    seq: u64,
    settings: usize,
    with_curves: BTreeSet<u32>,
    evaluations: usize,
    histograms: BTreeSet<usize>,
    log: usize,
    head: Vec<u8>,
}

impl Mark {
    fn of(s: &Session, seq: u64) -> Result<Mark, serde_json::Error> {
        Ok(Mark {
            seq,
            settings: s.settings.len(),
            with_curves: s
                .settings()
                .filter(|(_, r)| !r.curves.is_empty())
                .map(|(i, _)| i.0)
                .collect(),
            evaluations: s.evaluations.len(),
            histograms: s.histograms.keys().copied().collect(),
            log: s.log.len(),
            head: serde_json::to_vec(&head_of(s))?,
        })
    }
}

/// `s` without its append-only parts.
fn head_of(s: &Session) -> Session {
    s.clone_head()
}

impl Session {
    /// A copy of everything but the append-only parts (which stay empty).
    fn clone_head(&self) -> Session {
        Session {
            format: self.format,
            qtune_version: self.qtune_version.clone(),
            model: self.model.clone(),
            model_sha256: self.model_sha256.clone(),
            config_file: self.config_file.clone(),
            config: self.config.clone(),
            metric: self.metric,
            max_drop: self.max_drop,
            min_value: self.min_value,
            eval_samples: self.eval_samples,
            fp32_metric: self.fp32_metric,
            float_precision: self.float_precision,
            degradations: self.degradations.clone(),
            sample_shapes: self.sample_shapes.clone(),
            layers: self.layers.clone(),
            settings: Vec::new(),
            histograms: BTreeMap::new(),
            evaluations: Vec::new(),
            stages: self.stages.clone(),
            current: self.current.clone(),
            log: Vec::new(),
            journal_seq: 0,
        }
    }
}

/// A session file open for writing: saves append to its journal. It holds the file's
/// writer lock (`util::lock`), so a second writer is refused naming this process.
#[derive(Debug)]
pub struct SessionFile {
    _lock: WriterLock,
    path: PathBuf,
    mark: Mark,
    journal: Option<File>,
    journal_bytes: u64,
    snapshot_bytes: u64,
}

impl SessionFile {
    /// Writes `session` as a new snapshot at `path` (replacing what is there) and opens it.
    pub fn create(path: &Path, session: &Session) -> Result<SessionFile, SessionError> {
        let lock = WriterLock::acquire(path, &command_line())?;
        let snapshot_bytes = write_snapshot(session, 0, path)?;
        remove_journal(path)?;
        SessionFile::with(lock, path, session, 0, snapshot_bytes)
    }

    /// Opens the session at `path` for writing, if `accept` takes what it holds (nothing
    /// is written otherwise); returns it with the session.
    pub fn open(
        path: &Path,
        accept: impl FnOnce(&Session) -> Result<(), SessionError>,
    ) -> Result<(SessionFile, Session), SessionError> {
        // Locked before reading: what is read is what this writer continues.
        let lock = WriterLock::acquire(path, &command_line())?;
        let (session, seq) = read(path)?;
        accept(&session)?;
        // Fold the journal in now: this also drops a torn last line.
        let snapshot_bytes = write_snapshot(&session, seq, path)?;
        remove_journal(path)?;
        let file = SessionFile::with(lock, path, &session, seq, snapshot_bytes)?;
        Ok((file, session))
    }

    fn with(
        lock: WriterLock,
        path: &Path,
        s: &Session,
        seq: u64,
        snapshot_bytes: u64,
    ) -> Result<SessionFile, SessionError> {
        Ok(SessionFile {
            _lock: lock,
            path: path.to_path_buf(),
            mark: Mark::of(s, seq).map_err(|e| corrupt(path, e))?,
            journal: None,
            journal_bytes: 0,
            snapshot_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves what changed since the last save: one journal line (fsynced), or a new
    /// snapshot when the journal has grown past the snapshot's size.
    pub fn save(&mut self, s: &Session) -> Result<(), SessionError> {
        if s.settings.len() < self.mark.settings
            || s.evaluations.len() < self.mark.evaluations
            || s.log.len() < self.mark.log
        {
            // Not a continuation of what is stored (a new session in the same file).
            return self.compact(s);
        }
        let head = head_of(s);
        let head_bytes = serde_json::to_vec(&head).map_err(|e| corrupt(&self.path, e))?;
        let m = &self.mark;
        let curves: Vec<(SettingId, BTreeMap<String, AllCurves>)> = s
            .settings()
            .filter(|(i, r)| {
                !r.curves.is_empty() && !m.with_curves.contains(&i.0) && i.index() < m.settings
            })
            .map(|(i, r)| (i, r.curves.clone()))
            .collect();
        let new_hist: BTreeMap<_, _> = s
            .histograms
            .iter()
            .filter(|(k, _)| !m.histograms.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let unchanged = s.settings.len() == m.settings
            && s.evaluations.len() == m.evaluations
            && s.log.len() == m.log
            && curves.is_empty()
            && new_hist.is_empty()
            && head_bytes == m.head;
        if unchanged {
            return Ok(());
        }
        let delta = Delta {
            seq: m.seq + 1,
            head,
            settings_from: m.settings,
            settings: s.settings.get(m.settings..).unwrap_or_default().to_vec(),
            curves,
            evaluations_from: m.evaluations,
            evaluations: s
                .evaluations
                .get(m.evaluations..)
                .unwrap_or_default()
                .to_vec(),
            histograms: new_hist,
            log_from: m.log,
            log: s.log.get(m.log..).unwrap_or_default().to_vec(),
        };
        let mut line = serde_json::to_vec(&delta).map_err(|e| corrupt(&self.path, e))?;
        line.push(b'\n');
        self.append(&line)?;
        self.mark = Mark::of(s, delta.seq).map_err(|e| corrupt(&self.path, e))?;
        if self.journal_bytes > self.snapshot_bytes.max(1 << 20) {
            self.compact(s)?;
        }
        Ok(())
    }

    /// Writes `s` as a new snapshot and empties the journal.
    pub fn compact(&mut self, s: &Session) -> Result<(), SessionError> {
        let seq = self.mark.seq;
        self.snapshot_bytes = write_snapshot(s, seq, &self.path)?;
        self.journal = None;
        remove_journal(&self.path)?;
        self.journal_bytes = 0;
        self.mark = Mark::of(s, seq).map_err(|e| corrupt(&self.path, e))?;
        Ok(())
    }

    fn append(&mut self, line: &[u8]) -> Result<(), SessionError> {
        let jp = journal_path(&self.path);
        let io = |source| SessionError::Io {
            path: jp.display().to_string(),
            source,
        };
        if self.journal.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&jp)
                .map_err(io)?;
            self.journal = Some(f);
        }
        if let Some(f) = self.journal.as_mut() {
            f.write_all(line).map_err(io)?;
            f.sync_data().map_err(io)?;
        }
        self.journal_bytes += line.len() as u64;
        Ok(())
    }
}

/// This process's command line, for the lock's holder record (`qtune tune -c …`).
fn command_line() -> String {
    let words: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
            } else {
                a
            }
        })
        .collect();
    let line = words.join(" ");
    crate::util::text::escape_control(&line)
        .chars()
        .take(200)
        .collect()
}

fn corrupt(path: &Path, e: serde_json::Error) -> SessionError {
    SessionError::Corrupt {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

/// Writes the snapshot atomically; returns its size.
fn write_snapshot(s: &Session, journal_seq: u64, path: &Path) -> Result<u64, SessionError> {
    /// The session with the journal record folded into it (the session in memory keeps
    /// its own `journal_seq` at 0, so the field is written once).
    #[derive(Serialize)]
    struct Snapshot<'a> {
        #[serde(flatten)]
        session: &'a Session,
        #[serde(skip_serializing_if = "is_zero")]
        journal_seq: u64,
    }
    fn is_zero(x: &u64) -> bool {
        *x == 0
    }
    let snap = Snapshot {
        session: s,
        journal_seq,
    };
    let bytes = serde_json::to_vec(&snap).map_err(|e| corrupt(path, e))?;
    write_atomic(path, &bytes).map_err(|source| SessionError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(bytes.len() as u64)
}

fn remove_journal(path: &Path) -> Result<(), SessionError> {
    let jp = journal_path(path);
    match std::fs::remove_file(&jp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SessionError::Io {
            path: jp.display().to_string(),
            source,
        }),
    }
}

/// Refuses a session made for a model with another hash.
pub fn check_model(session: &Session, path: &Path, sha256: &str) -> Result<(), SessionError> {
    if session.model_sha256 == sha256 {
        return Ok(());
    }
    let short = |s: &str| s.chars().take(12).collect::<String>();
    Err(SessionError::OtherModel {
        path: path.display().to_string(),
        expected: short(&session.model_sha256),
        found: short(sha256),
    })
}
