//! Stand-in for worker.rs until `crate::tune` is part of the library: same interface, no
//! engine; it says so and ends.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use super::event::{Event, JobEvent};
use crate::session::{Session, StageId};

#[derive(Clone, Debug, PartialEq)]
pub enum WorkerCmd {
    RunStage(StageId),
    Toggle(String),
    Save,
    Quit,
}

#[derive(Clone, Debug)]
pub struct Start {
    pub config: PathBuf,
    pub session_path: PathBuf,
    pub session: Option<Session>,
    pub reset: Option<StageId>,
    pub run: Option<StageId>,
}

pub struct WorkerHandle {
    pub cancel: Arc<AtomicBool>,
}

impl WorkerHandle {
    pub fn send(&self, _cmd: WorkerCmd) {}
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
    pub fn stop(self, _wait: Duration) {}
}

pub fn spawn(_start: Start, events: Sender<Event>) -> WorkerHandle {
    let _ = events.send(Event::Job(JobEvent::Error(
        "this build has no tuning engine (crate::tune) yet".into(),
    )));
    let _ = events.send(Event::Job(JobEvent::Exited));
    WorkerHandle {
        cancel: Arc::new(AtomicBool::new(false)),
    }
}
