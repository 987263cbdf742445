//! Snapshot tests of every panel at 80×24 and 160×48 (ratatui TestBackend + insta) from the
//! fixture session, and key → command → state tests for every binding.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Command, Job, Tab};
use super::event::{JobEvent, JobKind, Phase};
use super::keymap::{Action, KEYMAP, Mode};
use super::model::Sort;
use super::theme::Theme;
use super::{fixture, view};
use crate::session::{StageId, StageState};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn app() -> App {
    App::new(fixture::session(20), Theme::PLAIN)
}

fn running_app() -> App {
    let mut a = App::new(fixture::running(20), Theme::PLAIN);
    let started = a.now.checked_sub(Duration::from_secs(50)).unwrap_or(a.now);
    a.job = Some(Job {
        kind: JobKind::Stage(StageId::Traverse),
        started,
        phase: Some((
            Phase::Evaluating,
            120,
            300,
            a.now.checked_sub(Duration::from_secs(6)).unwrap_or(a.now),
        )),
        estimate: None,
    });
    a.stage_cursor = 2;
    a
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, app)).unwrap();
    term.backend().to_string()
}

fn panel(app: &mut App, tab: Tab, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| {
        let area = f.area();
        view::render_panel(f, area, app, tab)
    })
    .unwrap();
    term.backend().to_string()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}
fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

#[test]
fn every_panel_at_both_sizes() {
    for (w, h) in SIZES {
        for tab in Tab::ALL {
            let mut a = app();
            a.handle_key(ch('j'));
            a.handle_key(ch('j'));
            let name = format!("panel_{}_{w}x{h}", tab.title().to_lowercase());
            insta::assert_snapshot!(name, panel(&mut a, tab, w, h));
        }
    }
}

#[test]
fn main_screen_at_both_sizes() {
    for (w, h) in SIZES {
        let mut a = app();
        insta::assert_snapshot!(format!("main_{w}x{h}"), screen(&mut a, w, h));
    }
}

#[test]
fn running_stage_shows_progress_and_eta() {
    for (w, h) in SIZES {
        let mut a = running_app();
        a.tab = Tab::Stages;
        insta::assert_snapshot!(format!("running_{w}x{h}"), screen(&mut a, w, h));
    }
}

#[test]
fn live_histogram_while_calibrating() {
    let mut a = App::new(fixture::fresh(20), Theme::PLAIN);
    let full = fixture::session(20);
    let mut hists = full.histograms[&10].clone();
    for h in hists.values_mut() {
        for c in h.counts.iter_mut() {
            *c /= 3;
        }
    }
    a.handle_job(JobEvent::Started(JobKind::Stage(StageId::Calibrate)));
    a.handle_job(JobEvent::Progress {
        phase: Phase::Calibrating,
        done: 3,
        total: 10,
    });
    a.handle_job(JobEvent::LiveHistograms {
        batch_count: 10,
        histograms: Box::new(hists),
    });
    a.tab = Tab::Histogram;
    insta::assert_snapshot!("live_80x24", screen(&mut a, 80, 24));
    // the snapshot that includes the collected histograms ends the live view
    a.handle_job(JobEvent::Snapshot(Box::new(full)));
    assert!(a.live.is_none());
}

#[test]
fn overlays() {
    for (w, h) in SIZES {
        let mut a = app();
        a.handle_key(ch('?'));
        insta::assert_snapshot!(format!("help_{w}x{h}"), screen(&mut a, w, h));
    }
    let mut a = running_app();
    a.handle_key(ch('q'));
    assert_eq!(a.mode, Mode::ConfirmQuit);
    insta::assert_snapshot!("confirm_quit_80x24", screen(&mut a, 80, 24));
}

#[test]
fn config_editor_shows_errors_at_their_line() {
    let mut a = app();
    a.config_text = Some("model: m.onnx\nbin: 150\nbins: 3\n".into());
    a.handle_key(ch('e'));
    assert_eq!(a.mode, Mode::Editor);
    let cmds = a.handle_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    assert!(cmds.is_empty());
    let (line, msg) = a.editor.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(line, Some(3), "{msg}");
    insta::assert_snapshot!("editor_error_80x24", screen(&mut a, 80, 24));
    insta::assert_snapshot!("editor_error_160x48", screen(&mut a, 160, 48));
}

#[test]
fn ascii_and_no_color() {
    let mut a = App::new(
        fixture::session(20),
        Theme {
            color: false,
            ascii: true,
        },
    );
    let s = screen(&mut a, 160, 48);
    // the TestBackend prints cells; every one of them is ASCII
    assert!(s.is_ascii(), "non-ASCII glyph in:\n{s}");
    insta::assert_snapshot!("ascii_160x48", s);
    let mut term = Terminal::new(TestBackend::new(160, 48)).unwrap();
    term.draw(|f| view::draw(f, &mut a)).unwrap();
    let buf = term.backend().buffer();
    assert!(
        buf.content
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset)
    );
}

#[test]
fn tiny_and_huge_terminals_do_not_panic() {
    for (w, h) in [
        (1, 1),
        (20, 5),
        (40, 10),
        (80, 24),
        (119, 31),
        (120, 32),
        (300, 100),
    ] {
        for tab in Tab::ALL {
            let mut a = app();
            a.tab = tab;
            screen(&mut a, w, h);
            let mut a = App::new(fixture::fresh(3), Theme::PLAIN);
            a.tab = tab;
            screen(&mut a, w, h);
        }
    }
}

// ---- keys → commands → state, every binding ----

#[test]
fn selection_keys() {
    let mut a = app();
    assert_eq!(a.cursor, 0);
    assert!(a.handle_key(ch('j')).is_empty());
    assert_eq!(a.cursor, 1);
    a.handle_key(key(KeyCode::Down));
    assert_eq!(a.cursor, 2);
    a.handle_key(ch('k'));
    a.handle_key(key(KeyCode::Up));
    a.handle_key(key(KeyCode::Up));
    assert_eq!(a.cursor, 0);
    a.page = 5;
    a.handle_key(key(KeyCode::PageDown));
    assert_eq!(a.cursor, 5);
    a.handle_key(key(KeyCode::PageUp));
    assert_eq!(a.cursor, 0);
    a.handle_key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT));
    assert_eq!(a.cursor, 19);
    a.handle_key(ch('g'));
    assert_eq!(a.cursor, 0);
    a.handle_key(key(KeyCode::End));
    assert_eq!(a.selected.as_deref(), Some("Gemm@19"));
    a.handle_key(key(KeyCode::Home));
    assert_eq!(a.selected.as_deref(), Some("Conv@0"));
}

#[test]
fn space_toggles_and_the_delta_arrives_later() {
    let mut a = app();
    a.handle_key(ch('j'));
    assert_eq!(
        a.handle_key(ch(' ')),
        vec![Command::Toggle("Conv@1".into())]
    );
    assert_eq!(a.queued, vec![JobKind::Toggle("Conv@1".into())]);
    assert!(a.unsaved());
    a.handle_job(JobEvent::Started(JobKind::Toggle("Conv@1".into())));
    assert!(a.queued.is_empty() && a.job.is_some());
    a.handle_job(JobEvent::Toggled {
        layer: "Conv@1".into(),
        excluded: false,
        before: Some(0.9667),
        after: 0.96,
        evaluation: crate::session::EvalId(8),
    });
    a.handle_job(JobEvent::Finished(JobKind::Toggle("Conv@1".into())));
    assert!(a.job.is_none());
    assert_eq!(a.toggles.len(), 1);
    assert!(a.message.as_ref().unwrap().text.contains("-0.0067"));
}

#[test]
fn esc_cancels_the_job_else_clears_the_filter() {
    let mut a = running_app();
    assert_eq!(a.handle_key(key(KeyCode::Esc)), vec![Command::Cancel]);
    a.handle_job(JobEvent::Cancelled(JobKind::Stage(StageId::Traverse)));
    assert!(a.job.is_none());
    a.filter = "conv".into();
    assert!(a.handle_key(key(KeyCode::Esc)).is_empty());
    assert!(a.filter.is_empty());
}

#[test]
fn n_and_p_step_through_stages_and_n_runs_a_new_one() {
    let mut a = running_app();
    assert_eq!(a.stage_cursor, 2); // stage 5 running
    assert!(a.handle_key(ch('p')).is_empty());
    assert_eq!(a.stage_cursor, 1);
    assert!(a.handle_key(ch('n')).is_empty()); // stage 5 is running: only moves
    assert_eq!(a.stage_cursor, 2);
    assert_eq!(
        a.handle_key(ch('n')),
        vec![Command::RunStage(StageId::Correct)]
    );
    assert_eq!(a.stage_cursor, 3);
    assert_eq!(
        a.handle_key(ch('n')),
        vec![Command::RunStage(StageId::Exclude)]
    );
    assert_eq!(a.stage_cursor, 4);
    assert!(a.handle_key(ch('p')).is_empty());
    assert!(a.handle_key(ch('n')).is_empty(), "already queued");
    // a stage left running without a job (cancelled, killed) runs again
    let mut a = App::new(fixture::running(20), Theme::PLAIN);
    a.stage_cursor = 1;
    assert_eq!(
        a.handle_key(ch('n')),
        vec![Command::RunStage(StageId::Traverse)]
    );
    let mut a = App::new(fixture::running(20), Theme::PLAIN);
    assert_eq!(a.stage_cursor, 2);
    assert_eq!(
        a.handle_key(ch('n')),
        vec![Command::RunStage(StageId::Traverse)]
    );
    assert_eq!(a.stage_cursor, 2, "resumes the stage in view");
    // a fresh session: n from stage 1 runs stage 3
    let mut a = App::new(fixture::fresh(5), Theme::PLAIN);
    a.session.stage_mut(StageId::Calibrate).state = StageState::Missed;
    a.stage_cursor = 0;
    assert_eq!(
        a.handle_key(ch('n')),
        vec![Command::RunStage(StageId::Modify)]
    );
}

#[test]
fn save_help_quit() {
    let mut a = app();
    assert_eq!(a.handle_key(ch('s')), vec![Command::Save]);
    a.handle_key(ch('?'));
    assert_eq!(a.mode, Mode::Help);
    a.handle_key(ch('j')); // ignored in help
    assert_eq!(a.cursor, 0);
    a.handle_key(key(KeyCode::Esc));
    assert_eq!(a.mode, Mode::Normal);
    assert_eq!(a.handle_key(ch('q')), vec![Command::Quit]);
    assert!(a.quit);
    // with a job in flight q asks first
    let mut a = running_app();
    assert!(a.handle_key(ch('q')).is_empty());
    assert_eq!(a.mode, Mode::ConfirmQuit);
    assert!(a.handle_key(ch('n')).is_empty());
    assert_eq!(a.mode, Mode::Normal);
    a.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert_eq!(a.handle_key(ch('y')), vec![Command::Quit]);
    assert!(a.quit);
}

#[test]
fn filter_sort_scale_curves_tabs() {
    let mut a = app();
    a.handle_key(ch('/'));
    assert_eq!(a.mode, Mode::Filter);
    for c in "matmul".chars() {
        a.handle_key(ch(c));
    }
    assert_eq!(a.rows.len(), 2);
    a.handle_key(key(KeyCode::Backspace));
    a.handle_key(ch('l'));
    a.handle_key(key(KeyCode::Enter));
    assert_eq!(a.mode, Mode::Normal);
    assert_eq!(a.filter, "matmul");
    assert!(a.rows.iter().all(|r| r.op_type == "MatMul"));
    a.handle_key(ch('/'));
    a.handle_key(key(KeyCode::Esc));
    assert!(a.filter.is_empty());
    assert_eq!(a.rows.len(), 20);

    a.handle_key(ch('o'));
    assert_eq!(a.sort, Sort::Sensitivity);
    assert_eq!(a.rows[0].rank, Some(1));
    a.handle_key(ch('o'));
    assert_eq!(a.sort, Sort::Fidelity);
    let sq: Vec<f64> = a.rows.iter().filter_map(|r| r.sqnr).collect();
    assert!(sq.windows(2).all(|w| w[0] <= w[1]));
    a.handle_key(ch('o'));
    assert_eq!(a.sort, Sort::Graph);

    let log = a.log_scale;
    a.handle_key(ch('l'));
    assert_eq!(a.log_scale, !log);
    a.handle_key(ch('d'));
    assert!(a.all_curves);
    a.handle_key(key(KeyCode::Tab));
    assert_eq!(a.tab, Tab::Histogram);
    a.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    a.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(a.tab, Tab::Stages);
}

#[test]
fn editor_apply_and_close() {
    let mut a = app();
    a.handle_key(ch('e'));
    a.handle_key(key(KeyCode::Esc));
    assert_eq!(a.mode, Mode::Normal);
    assert!(a.editor.is_none());
    // a valid edit: bin changes → re-run from stage 1
    a.config_text = Some("model: m.onnx\nbin: 150\n".into());
    a.handle_key(ch('e'));
    for _ in 0..2 {
        a.handle_key(key(KeyCode::Down));
    }
    for c in "bin: 200".chars() {
        a.handle_key(ch(c));
    }
    let ed = a.editor.as_mut().unwrap();
    ed.textarea = tui_textarea::TextArea::new(vec!["model: m.onnx".into(), "bin: 200".into()]);
    let cmds = a.handle_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    assert_eq!(
        cmds,
        vec![Command::ApplyConfig {
            text: "model: m.onnx\nbin: 200\n".into(),
            rerun: Some(StageId::Calibrate)
        }]
    );
    assert_eq!(a.mode, Mode::Normal);
}

#[test]
fn review_is_read_only() {
    let mut a = app();
    a.review = true;
    assert!(a.handle_key(ch(' ')).is_empty());
    assert!(a.handle_key(ch('s')).is_empty());
    assert!(a.message.as_ref().unwrap().text.contains("read-only"));
    a.stage_cursor = 3;
    assert!(a.handle_key(ch('n')).is_empty());
    a.handle_key(ch('e'));
    assert!(a.editor.as_ref().unwrap().read_only);
    assert!(
        a.handle_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL))
            .is_empty()
    );
    a.handle_key(key(KeyCode::Esc));
    assert_eq!(a.handle_key(ch('q')), vec![Command::Quit]);
}

#[test]
fn every_binding_is_exercised() {
    // the tests above press every key of the map; this guards that new bindings get a test
    let tested = [
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Toggle,
        Action::Cancel,
        Action::NextStage,
        Action::PrevStage,
        Action::Edit,
        Action::Save,
        Action::Help,
        Action::Quit,
        Action::Filter,
        Action::Sort,
        Action::LogScale,
        Action::Curves,
        Action::NextTab,
        Action::PrevTab,
        Action::FilterAccept,
        Action::FilterClear,
        Action::EditorApply,
        Action::EditorClose,
        Action::ConfirmYes,
        Action::ConfirmNo,
        Action::HelpClose,
    ];
    for b in KEYMAP {
        assert!(tested.contains(&b.action), "{:?} has no test", b.action);
    }
}

#[test]
fn readme_key_table_is_generated() {
    let t = super::keymap::markdown_table();
    assert!(t.contains("| panels | `space` | exclude/include, re-evaluate |"));
}

/// Frame time at 160×48 with a 200-layer session: `cargo test --release --lib
/// tui::tests::bench_frame -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_frame() {
    let (mean, max) = super::bench(200, 160, 48, 500);
    println!("frame 160x48, 200 layers: mean {mean:.3} ms, max {max:.3} ms");
}
