//! The one event enum (keys, resizes, ticks, news from the worker) and the thread that
//! reads the terminal into the event channel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

use ratatui::crossterm::event::{self as ct, KeyEvent, KeyEventKind, MouseEvent};

use crate::calib::DisplayHistogram;
use crate::session::{Session, StageId};

/// Everything the UI loop reacts to.
#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    /// Only when the mouse is captured (`qtune tui --mouse`).
    Mouse(MouseEvent),
    Resize(u16, u16),
    Tick,
    Job(JobEvent),
}

/// What kind of work the worker is doing right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Loading the model and data.
    Loading,
    /// Running the FP32 model over the evaluation set (once).
    Fp32,
    Calibrating,
    Searching,
    Evaluating,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Fp32 => "FP32 reference",
            Phase::Calibrating => "calibrating",
            Phase::Searching => "searching",
            Phase::Evaluating => "evaluating",
        }
    }
}

/// A job the worker runs.
#[derive(Clone, Debug, PartialEq)]
pub enum JobKind {
    /// Opening the workspace (model, data, FP32 pass).
    Load,
    Stage(StageId),
    Toggle(String),
    /// Making an evaluation the current state.
    Adopt(crate::session::EvalId),
    /// Excluding (`exclude`) or including several layers at once, one re-evaluation.
    Layers {
        layers: Vec<String>,
        exclude: bool,
    },
}

impl JobKind {
    pub fn label(&self) -> String {
        match self {
            JobKind::Load => "loading the model and data".into(),
            JobKind::Stage(s) => format!("stage {} ({})", s.step(), s.title()),
            JobKind::Toggle(l) => format!("re-evaluating with {l} toggled"),
            JobKind::Adopt(i) => format!("adopting {i}"),
            JobKind::Layers { layers, exclude } => format!(
                "re-evaluating with {} layers {}",
                layers.len(),
                if *exclude { "excluded" } else { "included" }
            ),
        }
    }
}

/// News from the worker.
#[derive(Debug)]
pub enum JobEvent {
    Started(JobKind),
    /// The session at a safe point.
    Snapshot(Box<Session>),
    Progress {
        phase: Phase,
        done: usize,
        total: usize,
    },
    /// The running estimate of the evaluation in flight.
    Estimate(crate::eval::Estimate),
    /// Histograms so far, while calibrating `batch_count` samples.
    LiveHistograms {
        batch_count: usize,
        histograms: Box<BTreeMap<String, DisplayHistogram>>,
    },
    /// A toggle's re-evaluation ended.
    Toggled {
        layer: String,
        excluded: bool,
        before: Option<f64>,
        after: f64,
        evaluation: crate::session::EvalId,
    },
    /// A several-layer toggle's re-evaluation ended.
    LayersSet {
        layers: Vec<String>,
        excluded: bool,
        before: Option<f64>,
        after: f64,
        evaluation: crate::session::EvalId,
    },
    Saved(PathBuf),
    /// The flow ended with `result`; `adopted`: it became the current state (false when
    /// the user had changed the current state meanwhile: the UI asks).
    FlowFinished {
        result: Option<crate::session::EvalId>,
        adopted: bool,
    },
    /// The job in flight ended (successfully).
    Finished(JobKind),
    Cancelled(JobKind),
    Error(String),
    /// The worker has ended.
    Exited,
}

/// Reads terminal events into `tx` until the receiver is gone.
pub fn spawn_input(tx: Sender<Event>) {
    std::thread::spawn(move || {
        loop {
            match ct::poll(Duration::from_millis(200)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return,
            }
            let ev = match ct::read() {
                Ok(ct::Event::Key(k)) if k.kind != KeyEventKind::Release => Event::Key(k),
                Ok(ct::Event::Resize(w, h)) => Event::Resize(w, h),
                Ok(ct::Event::Mouse(m)) if !matches!(m.kind, ct::MouseEventKind::Moved) => {
                    Event::Mouse(m)
                }
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
}
