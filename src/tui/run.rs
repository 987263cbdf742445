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

const TICK: Duration = Duration::from_millis(250);

/// A live session: the configuration, where the session is saved, and what to run first.
pub struct Live {
    pub config: PathBuf,
    pub session_path: PathBuf,
    pub run: Option<crate::session::StageId>,
}

/// Runs the UI until the user quits. `live`: start a worker on it; `None`: review only.
pub fn run(mut app: App, live: Option<Live>) -> Result<()> {
    let mut guard = Guard::enter()?;
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
        Event::Resize(..) | Event::Tick => {}
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
        Command::ApplyConfig { text, rerun } => {
            let Some(rerun) = rerun else { return Ok(()) };
            let session_path = app
                .session_path
                .clone()
                .context("no session file to apply a configuration to")?;
            let original = app
                .config_path
                .clone()
                .unwrap_or_else(|| PathBuf::from("."));
            let (path, raw, written) = write_config(&text, &original, &session_path)?;
            if let Some(old) = worker.take() {
                old.stop(Duration::from_secs(10));
            }
            let mut session = app.session.clone();
            session.config = raw;
            session.config_file = Some(path.display().to_string());
            app.config_path = Some(path.clone());
            app.config_text = Some(written);
            app.job = None;
            app.queued.clear();
            *worker = Some(worker::spawn(
                Start {
                    config: path,
                    session_path,
                    session: Some(session),
                    reset: Some(rerun),
                    run: Some(rerun),
                },
                tx.clone(),
            ));
        }
    }
    Ok(())
}

/// Writes an applied configuration next to the session (`<session>.config.yaml`), with its
/// relative paths made absolute against the original file's folder so they still resolve.
fn write_config(
    text: &str,
    original: &Path,
    session: &Path,
) -> Result<(PathBuf, RawConfig, String)> {
    use serde_yaml::Value;
    let mut v: Value = serde_yaml::from_str(text).context("re-reading the configuration")?;
    let base = original.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = std::fs::canonicalize(&base).unwrap_or(base);
    let abs = |v: &mut Value| match v {
        Value::String(p) if Path::new(p.as_str()).is_relative() => {
            *p = base.join(p.as_str()).display().to_string();
        }
        Value::Sequence(items) => {
            for it in items {
                if let Value::String(p) = it
                    && Path::new(p.as_str()).is_relative()
                {
                    *p = base.join(p.as_str()).display().to_string();
                }
            }
        }
        _ => {}
    };
    if let Some(m) = v.get_mut("model") {
        abs(m);
    }
    if let Some(Value::Sequence(inputs)) = v.get_mut("preprocess_parameter") {
        for i in inputs {
            if let Some(p) = i.get_mut("input_file_path") {
                abs(p);
            }
        }
    }
    if let Some(e) = v.get_mut("evaluation") {
        for key in ["input_file_path", "labels"] {
            if let Some(p) = e.get_mut(key) {
                abs(p);
            }
        }
    }
    let yaml = serde_yaml::to_string(&v).context("writing the configuration")?;
    let raw: RawConfig = serde_yaml::from_str(&yaml).context("re-reading the configuration")?;
    let mut name = session.file_stem().unwrap_or_default().to_os_string();
    name.push(".config.yaml");
    let path = session.with_file_name(name);
    crate::util::fs::write_atomic(&path, yaml.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((path, raw, yaml))
}

/// Stops the worker (it saves), showing nothing: the UI is already closing.
fn shutdown(w: WorkerHandle, rx: &Receiver<Event>) {
    w.stop(Duration::from_secs(10));
    while rx.try_recv().is_ok() {}
}
