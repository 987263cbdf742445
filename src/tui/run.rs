//! The loop: one channel of events (keys, resizes, ticks, the worker's news), one draw per
//! batch of events. Commands from the keys go to the worker; the UI never waits on it.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::app::{App, Command};
use super::event::{Event, spawn_input};
use super::terminal::Guard;
use super::view;
use super::worker::{self, Start, WorkerCmd, WorkerHandle};
use crate::config::RawConfig;
use crate::session::StageId;

const TICK: Duration = Duration::from_millis(250);

/// A live session: the configuration, where the session is saved, and what to run first.
pub struct Live {
    pub config: PathBuf,
    pub session_path: PathBuf,
    pub run: Option<crate::session::StageId>,
}

/// Runs the UI until the user quits. `live`: start a worker on it; `None`: review only.
pub fn run(mut app: App, live: Option<Live>) -> Result<()> {
    let mut guard = Guard::enter(app.chrome.mouse)?;
    let (tx, rx) = channel();
    spawn_input(tx.clone());
    let mut worker: Option<WorkerHandle> = live.map(|l| {
        worker::spawn(
            Start {
                config: l.config,
                session_path: l.session_path,
                session: None,
                reset: None,
                run: l.run,
            },
            tx.clone(),
        )
    });
    loop {
        app.now = Instant::now();
        guard.term.draw(|f| view::draw(f, &mut app))?;
        if app.quit {
            break;
        }
        let first = match rx.recv_timeout(TICK) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => Event::Tick,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // handle everything pending, then draw once
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(ev) = next {
            app.now = Instant::now();
            handle(&mut app, ev, &mut worker, &tx)?;
            handled += 1;
            next = if handled < 256 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
    }
    if let Some(w) = worker.take() {
        shutdown(w, &rx);
    }
    drop(guard);
    Ok(())
}

fn handle(
    app: &mut App,
    ev: Event,
    worker: &mut Option<WorkerHandle>,
    tx: &std::sync::mpsc::Sender<Event>,
) -> Result<()> {
    match ev {
        Event::Key(k) => {
            for cmd in app.handle_key(k) {
                dispatch(app, cmd, worker, tx)?;
            }
        }
        Event::Mouse(m) => app.handle_mouse(m),
        Event::Resize(..) => {}
        // the memory figure, a few times a second at most
        Event::Tick => app.chrome.mem = Some(crate::tui::chrome::MemFigure::sample(&app.session)),
        Event::Job(j) => app.handle_job(j),
    }
    Ok(())
}

fn dispatch(
    app: &mut App,
    cmd: Command,
    worker: &mut Option<WorkerHandle>,
    tx: &std::sync::mpsc::Sender<Event>,
) -> Result<()> {
    let Some(w) = worker.as_ref() else {
        return Ok(());
    };
    match cmd {
        Command::RunStage(s) => w.send(WorkerCmd::RunStage(s)),
        Command::Toggle(l) => w.send(WorkerCmd::Toggle(l)),
        Command::Adopt(i) => w.send(WorkerCmd::Adopt(i)),
        Command::Save => w.send(WorkerCmd::Save),
        Command::Cancel => w.cancel(),
        Command::Quit => {}
        Command::SetLayers { layers, exclude } => w.send(WorkerCmd::SetLayers { layers, exclude }),
        Command::ApplyConfig {
            text,
            rerun,
            new_session,
        } => {
            let Some(rerun) = rerun else { return Ok(()) };
            let mut session_path = app
                .session_path
                .clone()
                .context("no session file to apply a configuration to")?;
            if new_session {
                session_path = fresh_session_path(&session_path)?;
            }
            let original = app
                .config_path
                .clone()
                .unwrap_or_else(|| PathBuf::from("."));
            let (path, raw, written) = write_config(&text, &original, &session_path)?;
            if let Some(old) = worker.take() {
                old.stop(Duration::from_secs(10));
            }
            // a new session file starts afresh from stage 1; this one keeps its stages
            let session = (!new_session).then(|| {
                let mut s = app.session.clone();
                s.config = raw;
                s.config_file = Some(path.display().to_string());
                s
            });
            let rerun = if new_session {
                StageId::Calibrate
            } else {
                rerun
            };
            app.config_path = Some(path.clone());
            app.config_text = Some(written);
            app.session_path = Some(session_path.clone());
            app.job = None;
            app.queued.clear();
            *worker = Some(worker::spawn(
                Start {
                    config: path,
                    session_path,
                    session,
                    reset: (!new_session).then_some(rerun),
                    run: Some(rerun),
                },
                tx.clone(),
            ));
        }
    }
    Ok(())
}

/// Writes an applied configuration next to the session (`<session>.config.yaml`), as the
/// user wrote it (comments and order kept), with its relative paths made absolute against
/// the original file's folder so they still resolve.
fn write_config(
    text: &str,
    original: &Path,
    session: &Path,
) -> Result<(PathBuf, RawConfig, String)> {
    let base = original.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let (yaml, raw) = crate::config::rebase::rebase_paths(text, &base)
        .map_err(|e| anyhow::anyhow!("re-reading the configuration: {}", e.message))?;
    let mut name = session.file_stem().unwrap_or_default().to_os_string();
    name.push(".config.yaml");
    let path = session.with_file_name(name);
    crate::util::fs::write_atomic(&path, yaml.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((path, raw, yaml))
}

/// A session path next to `session` that holds nothing yet (`S-2.json`, `S-3.json`, …):
/// neither the file nor its journal exists.
fn fresh_session_path(session: &Path) -> Result<PathBuf> {
    let stem = session.file_stem().unwrap_or_default().to_string_lossy();
    let ext = session
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2..10_000)
        .map(|n| session.with_file_name(format!("{stem}-{n}{ext}")))
        .find(|p| {
            !p.exists()
                && p.symlink_metadata().is_err()
                && !crate::session::journal_path(p).exists()
        })
        .context("no free session file name next to the session")
}

/// Stops the worker (it saves), showing nothing: the UI is already closing.
fn shutdown(w: WorkerHandle, rx: &Receiver<Event>) {
    w.stop(Duration::from_secs(10));
    while rx.try_recv().is_ok() {}
}
