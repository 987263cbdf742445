//! Sessions saved by earlier versions stay readable: the file in tests/fixtures/sessions was
//! written by session format 1 (see make_session.sh there) and must load, round-trip and
//! export its plan's description unchanged.

use std::path::Path;

use qtune::session::{self, StageId, StageState};

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sessions/format1-demo.json"
    ))
}

#[test]
fn a_format_1_session_loads_with_every_stage_and_evaluation() {
    let s = session::load(fixture()).expect("format 1 loads");
    assert_eq!(s.format, session::SESSION_FORMAT, "migrated on load");
    assert_eq!(s.stages.iter().count(), 6, "stage 6 added, pending");
    assert_eq!(s.stage(StageId::Correct).state, StageState::Pending);
    assert_eq!(s.stage(StageId::Calibrate).state, StageState::Met);
    assert!(s.stages.iter().all(|r| r.state != StageState::Running));
    assert!(s.evaluation_count() > 0);
    assert_eq!(s.layers.len(), 54);
    assert_eq!(s.sample_shapes, vec![vec![1, 3, 48, 192]]);
    let (_, e) = s.current_evaluation().expect("a current evaluation");
    assert_eq!(e.report.samples, 20);
    assert_eq!(e.report.layers.len(), 54);
    let setting = s.current.setting.expect("a quantized result");
    assert!(
        !s.setting(setting).unwrap().curves.is_empty(),
        "curves of the chosen setting"
    );
    let ranked = &s.stage(StageId::Exclude).searches;
    assert_eq!(ranked.len(), 1);
    assert_eq!(ranked[0].strategy, "ranked");
    assert_eq!(ranked[0].ranking.len(), 54);
}

#[test]
fn a_saved_session_round_trips_exactly() {
    let s = session::load(fixture()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("again.json");
    session::save(&s, &p).unwrap();
    assert_eq!(session::load(&p).unwrap(), s);
}

#[test]
fn a_newer_format_is_refused_with_a_clear_message() {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture()).unwrap()).unwrap();
    v["format"] = 99.into();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("future.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = session::load(&p).unwrap_err().to_string();
    assert!(e.contains("format 99 is newer"), "{e}");
}
