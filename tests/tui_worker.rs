//! The TUI's worker on the demo model: a several-layer toggle (a range, or every layer up
//! to the cursor) sets all its layers at once and evaluates once.

mod demo;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use qtune::session::Session;
use qtune::tui::event::{Event, JobEvent, JobKind};
use qtune::tui::worker::{self, Start, WorkerCmd};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The demo over its first `n` evaluation images and 4 calibration samples.
fn small_config(dir: &Path, n: usize) -> PathBuf {
    let text = demo::small_config_text(root(), dir, n);
    let path = dir.join("tui.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Collects the worker's news until `done` says stop; the last session snapshot and every
/// event seen.
fn until(
    rx: &Receiver<Event>,
    mut session: Option<Session>,
    done: impl Fn(&JobEvent) -> bool,
) -> (Option<Session>, Vec<JobEvent>) {
    let mut seen = Vec::new();
    loop {
        let Ok(Event::Job(ev)) = rx.recv_timeout(Duration::from_secs(300)) else {
            panic!("the worker went quiet; saw {seen:?}");
        };
        if let JobEvent::Error(e) = &ev {
            panic!("worker error: {e}");
        }
        let stop = done(&ev);
        match ev {
            JobEvent::Snapshot(s) => session = Some(*s),
            other => seen.push(other),
        }
        if stop {
            return (session, seen);
        }
    }
}

#[test]
fn a_range_toggle_evaluates_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), 8);
    let (tx, rx) = channel();
    let w = worker::spawn(
        Start {
            config,
            session_path: dir.path().join("S.json"),
            session: None,
            reset: None,
            run: None,
        },
        tx,
    );
    let (s, _) = until(&rx, None, |e| {
        matches!(e, JobEvent::Finished(JobKind::Load))
    });
    let s = s.expect("a snapshot after loading");
    let before = s.evaluation_count();
    let layers: Vec<String> = s.layers.iter().take(5).map(|l| l.name.clone()).collect();
    assert_eq!(layers.len(), 5, "the demo has more than 5 layers");
    w.send(WorkerCmd::SetLayers {
        layers: layers.clone(),
        exclude: true,
    });
    let (s, seen) = until(&rx, Some(s), |e| matches!(e, JobEvent::Finished(_)));
    let s = s.unwrap();
    assert_eq!(
        s.evaluation_count(),
        before + 1,
        "one evaluation for the five layers"
    );
    let mut excluded = s.current.exclude.clone();
    excluded.sort();
    let mut want = layers.clone();
    want.sort();
    assert_eq!(excluded, want);
    let (id, _) = s.current_evaluation().expect("the new state was evaluated");
    assert!(seen.iter().any(|e| matches!(
        e,
        JobEvent::LayersSet { layers: l, excluded: true, evaluation, .. }
            if *l == layers && *evaluation == id
    )));
    let finished: Vec<&JobEvent> = seen
        .iter()
        .filter(|e| matches!(e, JobEvent::Finished(_)))
        .collect();
    assert!(matches!(
        finished.as_slice(),
        [JobEvent::Finished(JobKind::Layers { exclude: true, .. })]
    ));
    // the same layers included again: one more evaluation, an empty blacklist
    w.send(WorkerCmd::SetLayers {
        layers,
        exclude: false,
    });
    let (s, _) = until(&rx, Some(s), |e| matches!(e, JobEvent::Finished(_)));
    let s = s.unwrap();
    assert_eq!(s.evaluation_count(), before + 2);
    assert!(s.current.exclude.is_empty());
    w.stop(Duration::from_secs(30));
}
