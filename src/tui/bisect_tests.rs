//! Key → command → state tests of the bisection tools, on the fixture session (20 layers,
//! Conv@1, Conv@4 and Conv@10 excluded; current state #7, a user toggle).

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::tried;
use crate::session::EvalId;
use crate::tui::app::{App, Command};
use crate::tui::event::{JobEvent, JobKind};
use crate::tui::keymap::Mode;
use crate::tui::{Theme, fixture, view};

fn app() -> App {
    App::new(fixture::session(20), Theme::PLAIN)
}

fn ch(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn esc() -> KeyEvent {
    KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)
}

fn screen(app: &mut App) -> String {
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| view::draw(f, app)).unwrap();
    term.backend().to_string()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn message(a: &App) -> String {
    a.message
        .as_ref()
        .map(|m| m.text.clone())
        .unwrap_or_default()
}

#[test]
fn up_to_the_cursor_asks_then_sends_one_job() {
    let mut a = app();
    for _ in 0..5 {
        a.handle_key(ch('j'));
    }
    // rows 0..=5: Conv@1 and Conv@4 are excluded already, 4 layers change: asks
    assert!(a.handle_key(ch('<')).is_empty());
    assert_eq!(a.mode, Mode::Confirm);
    insta::assert_snapshot!("confirm_layers_80x24", screen(&mut a));
    assert!(a.handle_key(ch('n')).is_empty());
    assert_eq!(a.mode, Mode::Normal);
    assert!(a.queued.is_empty());
    a.handle_key(ch('<'));
    let layers = names(&["Conv@0", "Conv@2", "Conv@3", "Conv@5"]);
    assert_eq!(
        a.handle_key(ch('y')),
        vec![Command::SetLayers {
            layers: layers.clone(),
            exclude: true
        }]
    );
    let kind = JobKind::Layers {
        layers: layers.clone(),
        exclude: true,
    };
    assert_eq!(a.queued, vec![kind.clone()]);
    // pending rows are marked while the job waits or runs
    assert!(screen(&mut a).contains("~ Conv@3"));
    a.handle_job(JobEvent::Started(kind.clone()));
    a.handle_job(JobEvent::LayersSet {
        layers,
        excluded: true,
        before: Some(0.9667),
        after: 0.97,
        evaluation: EvalId(8),
    });
    a.handle_job(JobEvent::Finished(kind));
    assert!(a.job.is_none());
    let m = message(&a);
    assert!(m.contains("Conv@0 … Conv@5 (4) excluded"), "{m}");
    assert!(m.contains("+0.0033"), "{m}");
}

#[test]
fn from_the_cursor_includes_when_all_are_excluded() {
    let mut a = app();
    a.handle_key(ch('G'));
    // one layer: the plain toggle, no question
    assert_eq!(
        a.handle_key(ch('>')),
        vec![Command::Toggle("Gemm@19".into())]
    );
    // every layer from the cursor excluded: > includes them all
    let mut a = app();
    a.session.current.exclude = names(&["MatMul@17", "Conv@18", "Gemm@19"]);
    a.refresh();
    a.handle_key(ch('G'));
    a.handle_key(ch('k'));
    a.handle_key(ch('k'));
    assert_eq!(
        a.handle_key(ch('>')),
        vec![Command::SetLayers {
            layers: names(&["MatMul@17", "Conv@18", "Gemm@19"]),
            exclude: false
        }]
    );
    assert!(message(&a).contains("include"));
}

#[test]
fn a_marked_range_toggles_as_one_job() {
    let mut a = app();
    a.handle_key(ch('j'));
    a.handle_key(ch('j'));
    a.handle_key(ch('V'));
    assert_eq!(a.bisect.mark.as_deref(), Some("Conv@2"));
    a.handle_key(ch('j'));
    a.handle_key(ch('j'));
    assert_eq!(a.bisect.range(&a.rows, a.cursor), Some((2, 4)));
    let s = screen(&mut a);
    assert!(s.contains("range 3"), "{s}");
    // Conv@2, Conv@3 change (Conv@4 is excluded): 2 layers, no question
    assert_eq!(
        a.handle_key(ch(' ')),
        vec![Command::SetLayers {
            layers: names(&["Conv@2", "Conv@3"]),
            exclude: true
        }]
    );
    assert!(a.bisect.mark.is_none(), "sending clears the mark");
    // upwards works too; V again and Esc clear the mark
    let mut a = app();
    a.handle_key(ch('V'));
    a.handle_key(ch('V'));
    assert!(a.bisect.mark.is_none());
    a.handle_key(ch('G'));
    a.handle_key(ch('V'));
    a.handle_key(ch('k'));
    assert_eq!(a.bisect.range(&a.rows, a.cursor), Some((18, 19)));
    a.handle_key(esc());
    assert!(a.bisect.mark.is_none());
    // a mark filtered out: space says so and clears it
    let mut a = app();
    a.handle_key(ch('V'));
    a.filter = "matmul".into();
    a.refresh();
    assert!(a.handle_key(ch(' ')).is_empty());
    assert!(a.bisect.mark.is_none());
    assert!(message(&a).contains("filtered out"));
}

#[test]
fn span_toggles_refuse_while_viewing_and_queue_while_busy() {
    let mut a = app();
    a.handle_key(ch('['));
    assert!(a.viewing.is_some());
    assert!(a.handle_key(ch('<')).is_empty());
    assert!(message(&a).contains("viewing"));
    let mut a = app();
    a.handle_job(JobEvent::Started(JobKind::Stage(
        crate::session::StageId::Fp16,
    )));
    a.handle_key(ch('j'));
    a.handle_key(ch('j'));
    assert_eq!(a.handle_key(ch('<')).len(), 1);
    assert!(message(&a).contains("queued"));
}

#[test]
fn undo_and_redo_step_through_the_blacklists_tried() {
    let mut a = app();
    // stage bests #0 #2 #3, stage 7's #6, the user's #7 (probes and the rest left out)
    assert_eq!(tried(&a.session), [0, 2, 3, 6, 7].map(EvalId).to_vec());
    assert_eq!(a.handle_key(ch('u')), vec![Command::Adopt(EvalId(6))]);
    assert_eq!(a.queued, vec![JobKind::Adopt(EvalId(6))]);
    assert!(
        message(&a).starts_with("undo: adopting #6"),
        "{}",
        message(&a)
    );
    // busy: waits
    assert!(a.handle_key(ch('u')).is_empty());
    assert!(message(&a).contains("once it ends"));
    a.handle_job(JobEvent::Started(JobKind::Adopt(EvalId(6))));
    a.session.adopt(EvalId(6));
    a.handle_job(JobEvent::Finished(JobKind::Adopt(EvalId(6))));
    assert_eq!(a.handle_key(ch('u')), vec![Command::Adopt(EvalId(3))]);
    a.queued.clear();
    assert_eq!(a.handle_key(ch('U')), vec![Command::Adopt(EvalId(7))]);
    a.queued.clear();
    let ctrl_r = KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL);
    assert_eq!(a.handle_key(ctrl_r), vec![Command::Adopt(EvalId(7))]);
    a.queued.clear();
    // the ends
    a.session.adopt(EvalId(0));
    assert!(a.handle_key(ch('u')).is_empty());
    assert!(message(&a).contains("no earlier"));
    a.session.adopt(EvalId(7));
    assert!(a.handle_key(ch('U')).is_empty());
    assert!(message(&a).contains("no later"));
    // review: read-only
    let mut a = app();
    a.review = true;
    assert!(a.handle_key(ch('u')).is_empty());
    assert!(message(&a).contains("read-only"));
}

#[test]
fn the_filter_takes_excluded_and_included_tokens() {
    let mut a = app();
    a.handle_key(ch('/'));
    for c in ":x".chars() {
        a.handle_key(ch(c));
    }
    a.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let shown: Vec<&str> = a.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(shown, ["Conv@1", "Conv@4", "Conv@10"]);
    a.filter = "conv@1 :i".into();
    a.refresh();
    assert!(a.rows.iter().all(|r| !r.excluded && r.name.contains("@1")));
    assert_eq!(a.rows.len(), 7, "Conv@11..16 and Conv@18");
    assert_eq!(super::parse_filter("Conv :X"), ("conv".into(), Some(true)));
}
