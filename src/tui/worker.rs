//! The worker thread: owns the workspace, the evaluator and the tuner (they borrow one
//! another, so all are made inside the thread), runs one command at a time and reports
//! through the UI's event channel. Esc sets the shared cancel flag; the running call then
//! returns `Error::Cancelled` and the worker drops the jobs queued behind it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::event::{Event, JobEvent, JobKind, Phase};
use crate::calib::DisplayHistogram;
use crate::config::Config;
use crate::error::Error;
use crate::eval::Evaluator;
use crate::session::{self, Session, StageId, StageState};
use crate::tune::{Observer, Tuner, Work};
use crate::workspace::Workspace;

/// What the UI sends the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerCmd {
    RunStage(StageId),
    Toggle(String),
    /// Make this evaluation the current state.
    Adopt(crate::session::EvalId),
    Save,
    Quit,
    /// Exclude (`exclude`) or include all of `layers`, evaluated once.
    SetLayers {
        layers: Vec<String>,
        exclude: bool,
    },
}

/// How to start a worker.
#[derive(Clone, Debug)]
pub struct Start {
    pub config: PathBuf,
    pub session_path: PathBuf,
    /// The session to continue (else the file at `session_path` when it exists, else new).
    pub session: Option<Session>,
    /// Reset this stage and the later ones first (after a configuration change).
    pub reset: Option<StageId>,
    /// Run this stage once loaded, unless it already finished.
    pub run: Option<StageId>,
}

/// The UI's handle on the worker.
pub struct WorkerHandle {
    tx: Sender<WorkerCmd>,
    pub cancel: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    pub fn send(&self, cmd: WorkerCmd) {
        let _ = self.tx.send(cmd);
    }

    /// Cancels the job in flight.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Cancels, asks the worker to save and stop, and waits up to `wait` for it.
    pub fn stop(mut self, wait: Duration) {
        self.cancel();
        self.send(WorkerCmd::Quit);
        if let Some(j) = self.join.take() {
            let t0 = Instant::now();
            while !j.is_finished() && t0.elapsed() < wait {
                std::thread::sleep(Duration::from_millis(20));
            }
            if j.is_finished() {
                let _ = j.join();
            }
        }
    }
}

/// The worker thread's name (the panic hook leaves the terminal alone for it).
pub const THREAD_NAME: &str = "qtune-worker";

/// Starts a worker reporting into `events`.
pub fn spawn(start: Start, events: Sender<Event>) -> WorkerHandle {
    let (tx, rx) = channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let join = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let out = Out::new(events);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(start, &rx, flag, &out)
            }));
            match run {
                Ok(Ok(())) => {}
                Ok(Err(e)) => out.send(JobEvent::Error(one_line(&e))),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    out.send(JobEvent::Error(format!(
                        "the worker stopped on an internal error ({}); the session holds what was saved; quit with q",
                        crate::util::text::escape_control(&msg)
                    )));
                }
            }
            out.send(JobEvent::Exited);
        })
        .expect("spawning the worker thread");
    WorkerHandle {
        tx,
        cancel,
        join: Some(join),
    }
}

fn one_line(e: &Error) -> String {
    e.to_string()
}

/// The event sender, with throttling for the chatty callbacks.
struct Out {
    tx: Sender<Event>,
    last_progress: Mutex<Instant>,
    last_hist: Mutex<Instant>,
    last_estimate: Mutex<Instant>,
}

impl Out {
    fn new(tx: Sender<Event>) -> Out {
        let past = Instant::now() - Duration::from_secs(1);
        Out {
            tx,
            last_progress: Mutex::new(past),
            last_hist: Mutex::new(past),
            last_estimate: Mutex::new(past),
        }
    }

    fn send(&self, e: JobEvent) {
        let _ = self.tx.send(Event::Job(e));
    }

    /// True at most every `every` (and always when `force`).
    fn due(slot: &Mutex<Instant>, every: Duration, force: bool) -> bool {
        let mut last = slot.lock().unwrap_or_else(|p| p.into_inner());
        if force || last.elapsed() >= every {
            *last = Instant::now();
            true
        } else {
            false
        }
    }

    fn progress(&self, phase: Phase, done: usize, total: usize) {
        let force = done == 0 || done >= total;
        if Self::due(&self.last_progress, Duration::from_millis(50), force) {
            self.send(JobEvent::Progress { phase, done, total });
        }
    }
}

impl Observer for Out {
    fn changed(&self, session: &Session) {
        self.send(JobEvent::Snapshot(Box::new(session.clone())));
    }

    fn progress(&self, work: Work, done: usize, total: usize) {
        let phase = match work {
            Work::Calibrating => Phase::Calibrating,
            Work::Searching => Phase::Searching,
            Work::Evaluating => Phase::Evaluating,
        };
        Out::progress(self, phase, done, total);
    }

    fn estimate(&self, e: &crate::eval::Estimate) {
        if e.is_final() || Self::due(&self.last_estimate, Duration::from_millis(100), false) {
            self.send(JobEvent::Estimate(*e));
        }
    }

    fn histograms(&self, batch_count: usize, h: &BTreeMap<String, DisplayHistogram>) {
        if Self::due(&self.last_hist, Duration::from_millis(200), false) {
            self.send(JobEvent::LiveHistograms {
                batch_count,
                histograms: Box::new(h.clone()),
            });
        }
    }
}

fn work(
    start: Start,
    rx: &Receiver<WorkerCmd>,
    cancel: Arc<AtomicBool>,
    out: &Out,
) -> crate::Result<()> {
    out.send(JobEvent::Started(JobKind::Load));
    out.progress(Phase::Loading, 0, 1);
    let config = Config::load(&start.config)?;
    let ws = Workspace::open(config)?;
    let n = ws.eval.as_ref().map_or(0, |e| e.data.len());
    out.progress(Phase::Fp32, 0, n);
    let fp32_progress = |d: usize| out.progress(Phase::Fp32, d, n);
    let ev = Evaluator::new(&ws, &fp32_progress)?;
    let (session, file) = match start.session {
        // The UI's session (after a configuration change): it replaces the file.
        Some(s) if s.model_sha256 == ws.model.sha256 => {
            let file = session::SessionFile::create(&start.session_path, &s)?;
            (s, file)
        }
        // A configuration change to another model: start afresh, the old file kept aside.
        _ => {
            let force = start.reset.is_some();
            let (s, file, _) = crate::tune::open_session(&start.session_path, &ws, &ev, force)?;
            (s, file)
        }
    };
    let mut tuner = Tuner::new(&ws, &ev, session, Some(file))?;
    tuner.cancel = cancel.clone();
    if let Some(stage) = start.reset {
        tuner.reset_from(stage);
    }
    tuner.save()?;
    out.send(JobEvent::Snapshot(Box::new(tuner.session.clone())));
    out.send(JobEvent::Finished(JobKind::Load));
    if let Some(stage) = start.run {
        let state = tuner.session.stage(stage).state;
        if !matches!(state, StageState::Met | StageState::Missed) {
            run_stage(&mut tuner, stage, out);
        }
    }
    // From here on the current state is the user's: a flow result does not replace it
    // without asking.
    while let Ok(cmd) = rx.recv() {
        // A cancel meant for work that has ended must not cancel the next command.
        cancel.store(false, Ordering::SeqCst);
        match cmd {
            WorkerCmd::RunStage(stage) => {
                if !run_stage(&mut tuner, stage, out) && drain(rx) {
                    break;
                }
            }
            WorkerCmd::Toggle(layer) => {
                if !toggle(&mut tuner, &layer, out) && drain(rx) {
                    break;
                }
            }
            WorkerCmd::Adopt(id) => {
                job(&mut tuner, JobKind::Adopt(id), out, |t| t.adopt(id, out));
            }
            WorkerCmd::Save => {
                tuner.save()?;
                out.send(JobEvent::Saved(start.session_path.clone()));
            }
            WorkerCmd::Quit => break,
            WorkerCmd::SetLayers { layers, exclude } => {
                if !set_layers(&mut tuner, layers, exclude, out) && drain(rx) {
                    break;
                }
            }
        }
    }
    // Leaving: fold the journal into the snapshot, so the file alone holds everything.
    tuner.save()?;
    tuner.compact()?;
    Ok(())
}

/// After a cancel: drops the queued jobs; true when a Quit was among them.
fn drain(rx: &Receiver<WorkerCmd>) -> bool {
    let mut quit = false;
    while let Ok(c) = rx.try_recv() {
        quit |= c == WorkerCmd::Quit;
    }
    quit
}

/// Runs a job; false when it was cancelled.
fn job(
    tuner: &mut Tuner,
    kind: JobKind,
    out: &Out,
    f: impl FnOnce(&mut Tuner) -> crate::Result<()>,
) -> bool {
    tuner.cancel.store(false, Ordering::SeqCst);
    out.send(JobEvent::Started(kind.clone()));
    let r = f(tuner);
    let _ = tuner.save();
    out.send(JobEvent::Snapshot(Box::new(tuner.session.clone())));
    match r {
        Ok(()) => {
            out.send(JobEvent::Finished(kind));
            true
        }
        Err(Error::Cancelled) => {
            tuner.cancel.store(false, Ordering::SeqCst);
            out.send(JobEvent::Cancelled(kind));
            false
        }
        Err(e) => {
            out.send(JobEvent::Error(format!(
                "{}: {}",
                kind.label(),
                one_line(&e)
            )));
            true
        }
    }
}

/// Runs a stage; when it ends the flow (an INT8 stage met the target, or stage 8 ran),
/// the flow's result becomes the current state unless the user changed it meanwhile.
fn run_stage(tuner: &mut Tuner, stage: StageId, out: &Out) -> bool {
    job(tuner, JobKind::Stage(stage), out, |t| {
        t.run_stage(stage, out)?;
        if t.flow_ends_at(stage) {
            let outcome = t.finish_flow(out)?;
            out.send(JobEvent::FlowFinished {
                result: outcome.chosen,
                adopted: outcome.adopted,
            });
        }
        Ok(())
    })
}

fn toggle(tuner: &mut Tuner, layer: &str, out: &Out) -> bool {
    job(tuner, JobKind::Toggle(layer.to_string()), out, |t| {
        let before = t.session.current_evaluation().map(|(_, e)| e.metric());
        let excluded = !t.session.current.exclude.iter().any(|x| x == layer);
        let i = t.toggle(layer, out)?;
        out.send(JobEvent::Toggled {
            layer: layer.to_string(),
            excluded,
            before,
            after: t.session.evaluation(i).map_or(f64::NAN, |e| e.metric()),
            evaluation: i,
        });
        Ok(())
    })
}

fn set_layers(tuner: &mut Tuner, layers: Vec<String>, exclude: bool, out: &Out) -> bool {
    let kind = JobKind::Layers {
        layers: layers.clone(),
        exclude,
    };
    job(tuner, kind, out, |t| {
        let before = t.session.current_evaluation().map(|(_, e)| e.metric());
        let i = t.set_excluded(&layers, exclude, out)?;
        out.send(JobEvent::LayersSet {
            after: t.session.evaluation(i).map_or(f64::NAN, |e| e.metric()),
            layers,
            excluded: exclude,
            before,
            evaluation: i,
        });
        Ok(())
    })
}
