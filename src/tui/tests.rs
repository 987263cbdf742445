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
        baseline: None,
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
    assert_eq!(a.mode, Mode::Confirm);
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
fn x_asks_before_cancelling_and_esc_never_cancels() {
    let mut a = running_app();
    // Esc is "back": it never touches the job
    assert!(a.handle_key(key(KeyCode::Esc)).is_empty());
    assert!(a.job.is_some() && a.mode == Mode::Normal);
    // x asks; n keeps the job
    assert!(a.handle_key(ch('x')).is_empty());
    assert_eq!(a.mode, Mode::Confirm);
    insta::assert_snapshot!("confirm_cancel_80x24", screen(&mut a, 80, 24));
    assert!(a.handle_key(ch('n')).is_empty());
    assert_eq!(a.mode, Mode::Normal);
    // a toggle queued behind the job is shown as pending, then reported when dropped
    a.handle_key(ch('j'));
    assert_eq!(
        a.handle_key(ch(' ')),
        vec![Command::Toggle("Conv@1".into())]
    );
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("~ Conv@1"), "{s}");
    a.handle_key(ch('x'));
    assert_eq!(a.handle_key(ch('y')), vec![Command::Cancel]);
    a.handle_job(JobEvent::Cancelled(JobKind::Stage(StageId::Traverse)));
    assert!(a.job.is_none() && a.queued.is_empty());
    let m = a.message.clone().unwrap().text;
    assert!(m.contains("dropped 1 queued: toggle Conv@1"), "{m}");
    // nothing to cancel: x says so and asks nothing
    assert!(a.handle_key(ch('x')).is_empty());
    assert_eq!(a.mode, Mode::Normal);
    a.filter = "conv".into();
    assert!(a.handle_key(key(KeyCode::Esc)).is_empty());
    assert!(a.filter.is_empty());
}

#[test]
fn progress_is_on_every_tab_and_the_eta_counts_this_run_only() {
    let mut a = running_app();
    let stage = StageId::Traverse;
    let done = a.session.stage(stage).evaluations_done;
    let total = a.session.stage(stage).evaluations_total;
    // resumed: the run started with `done` already done, and did 1 more in 10 s
    let j = a.job.as_mut().unwrap();
    j.baseline = Some((
        done - 1,
        a.now.checked_sub(Duration::from_secs(10)).unwrap(),
    ));
    let want = format!(
        "stage 5 · {done}/{total} · ETA {}",
        super::model::fmt_clock(10.0 * (total - done) as f64)
    );
    for tab in Tab::ALL {
        a.tab = tab;
        let s = screen(&mut a, 80, 24);
        let head = s.lines().next().unwrap_or_default().to_string();
        assert!(head.contains(&want), "{tab:?}: {head}");
    }
    // the first snapshot of a stage job sets the baseline
    let mut a = running_app();
    a.handle_job(JobEvent::Snapshot(Box::new(a.session.clone())));
    assert_eq!(a.job.as_ref().unwrap().baseline.map(|b| b.0), Some(done));
}

#[test]
fn any_result_drives_every_panel() {
    let mut a = app();
    assert_eq!(
        a.session.current.evaluation,
        Some(crate::session::EvalId(7))
    );
    // v on stage 1 (the marker) views stage 1's best, #0: its setting, blacklist, fidelity
    a.stage_cursor = 0;
    a.handle_key(ch('v'));
    assert_eq!(a.viewing, Some(crate::session::EvalId(0)));
    assert!(
        a.rows.iter().all(|r| !r.excluded),
        "stage 1 excluded nothing"
    );
    for (w, h) in SIZES {
        insta::assert_snapshot!(format!("viewing_{w}x{h}"), screen(&mut a, w, h));
    }
    let s = screen(&mut a, 80, 24);
    assert!(s.lines().next().unwrap().contains("viewing #0"), "{s}");
    a.tab = Tab::Curve;
    let s = screen(&mut a, 80, 24);
    assert!(
        s.contains("0.70") && s.contains("1.30"),
        "stage 1's ratio range:\n{s}"
    );
    // stage 7: best, then the blacklists of its searches (both #6 here)
    a.stage_cursor = 4;
    a.handle_key(ch('v'));
    assert_eq!(a.viewing, Some(crate::session::EvalId(6)));
    assert_eq!(a.rows.iter().filter(|r| r.excluded).count(), 2);
    // [ and ] step the history; the current evaluation is "current", not viewed
    a.handle_key(ch('['));
    assert_eq!(a.viewing, Some(crate::session::EvalId(5)));
    a.handle_key(ch(']'));
    a.handle_key(ch(']'));
    assert_eq!(a.viewing, None, "#7 is the current state");
    a.handle_key(ch(']'));
    assert!(a.message.as_ref().unwrap().text.contains("last evaluation"));
    // space while viewing refuses (it would toggle another state than the one shown)
    a.handle_key(ch('['));
    assert!(a.handle_key(ch(' ')).is_empty());
    // Esc: back to current
    a.handle_key(key(KeyCode::Esc));
    assert_eq!(a.viewing, None);
    assert_eq!(a.rows.iter().filter(|r| r.excluded).count(), 3);
}

#[test]
fn adopt_asks_when_it_replaces_the_users_work() {
    let mut a = app();
    // nothing viewed: a explains
    assert!(a.handle_key(ch('a')).is_empty());
    assert!(a.message.as_ref().unwrap().text.contains("nothing viewed"));
    a.stage_cursor = 2;
    a.handle_key(ch('v'));
    // the current state #7 is a user toggle: asks
    assert!(a.handle_key(ch('a')).is_empty());
    assert_eq!(a.mode, Mode::Confirm);
    insta::assert_snapshot!("confirm_adopt_80x24", screen(&mut a, 80, 24));
    let id = crate::session::EvalId(3);
    assert_eq!(a.handle_key(ch('y')), vec![Command::Adopt(id)]);
    assert_eq!(a.viewing, None);
    assert_eq!(a.queued, vec![JobKind::Adopt(id)]);
    a.handle_job(JobEvent::Started(JobKind::Adopt(id)));
    a.handle_job(JobEvent::Finished(JobKind::Adopt(id)));
    assert!(
        a.message
            .as_ref()
            .unwrap()
            .text
            .contains("#3 is now the current state")
    );
    // a flow result as the current state: adopting loses nothing, no question
    let mut a = app();
    a.session.adopt(crate::session::EvalId(6));
    a.stage_cursor = 0;
    a.handle_key(ch('v'));
    assert_eq!(
        a.handle_key(ch('a')),
        vec![Command::Adopt(crate::session::EvalId(0))]
    );
    // busy: waits
    let mut a = running_app();
    a.handle_key(ch('['));
    assert!(a.handle_key(ch('a')).is_empty());
    assert_eq!(a.mode, Mode::Normal);
    // the flow's result, not adopted because the user changed the state: put in view
    let mut a = app();
    a.handle_job(JobEvent::FlowFinished {
        result: Some(crate::session::EvalId(6)),
        adopted: false,
    });
    assert_eq!(a.viewing, Some(crate::session::EvalId(6)));
}

#[test]
fn review_lists_only_what_works_read_only() {
    let mut a = app();
    a.review = true;
    a.stage_cursor = 4;
    a.handle_key(ch('v'));
    assert_eq!(a.viewing, Some(crate::session::EvalId(6)));
    assert!(!a.message.as_ref().unwrap().text.contains("adopt"));
    a.message = None;
    let s = screen(&mut a, 80, 24);
    let foot = s.lines().last().unwrap_or_default().to_string();
    for gone in ["exclude", "save", "adopt", "cancel", "next stage"] {
        assert!(!foot.contains(gone), "review footer lists {gone}: {foot}");
    }
    insta::assert_snapshot!("review_80x24", s);
    a.handle_key(ch('?'));
    insta::assert_snapshot!("review_help_80x24", screen(&mut a, 80, 24));
    // the history list is the session's: the same live and in review
    let mut live = app();
    live.tab = Tab::Accuracy;
    let mut rev = app();
    rev.review = true;
    rev.tab = Tab::Accuracy;
    let body = |s: String| s.lines().skip(2).take(20).collect::<Vec<_>>().join("\n");
    assert_eq!(
        body(screen(&mut live, 80, 24)),
        body(screen(&mut rev, 80, 24))
    );
}

#[test]
fn small_terminals_get_a_clear_screen_and_help_scrolls() {
    let mut a = app();
    let s = screen(&mut a, 79, 24);
    assert!(
        s.contains("qtune needs 80x24") && s.contains("79x24"),
        "{s}"
    );
    insta::assert_snapshot!("too_small_60x20", screen(&mut a, 60, 20));
    a.handle_key(ch('?'));
    let first = screen(&mut a, 80, 24);
    assert!(first.contains("j/k scroll"), "{first}");
    a.handle_key(ch('j'));
    a.handle_key(key(KeyCode::Down));
    assert_eq!(a.help_scroll, 2);
    let scrolled = screen(&mut a, 80, 24);
    assert_ne!(first, scrolled);
    for _ in 0..200 {
        a.handle_key(key(KeyCode::PageDown));
    }
    let end = screen(&mut a, 80, 24);
    assert!(
        end.contains("s         apply to a new session file"),
        "the last row shows:\n{end}"
    );
    a.handle_key(ch('k'));
    a.handle_key(key(KeyCode::Esc));
    assert_eq!(a.mode, Mode::Normal);
    assert_eq!(a.help_scroll, 0);
}

#[test]
fn print_summary_of_a_session() {
    let md = crate::session::summary::markdown(&fixture::session(20));
    assert!(
        md.contains("| 7 | build exclude_op | target met | #6 | 0.9633 |"),
        "{md}"
    );
    assert!(md.contains("## Stage 7 blacklists"));
    assert!(md.contains("| 1 | `Conv@1` | +0.0100 |"), "{md}");
    insta::assert_snapshot!("summary_markdown", md);
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
    assert_eq!(a.mode, Mode::Confirm);
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
    let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
    // stages 1–7 hold results: applying asks first, and "no" goes back to the edits
    assert!(a.handle_key(ctrl_s).is_empty());
    assert_eq!(a.mode, Mode::Confirm);
    let shown = screen(&mut a, 80, 24);
    assert!(
        shown.contains("Resets 4 stage(s) from stage 1 on;"),
        "{shown}"
    );
    assert!(shown.contains("s new session"), "{shown}");
    assert!(a.handle_key(ch('n')).is_empty());
    assert_eq!(a.mode, Mode::Editor);
    assert_eq!(
        a.editor.as_ref().unwrap().text(),
        "model: m.onnx\nbin: 200\n"
    );
    let apply = |new_session| {
        vec![Command::ApplyConfig {
            text: "model: m.onnx\nbin: 200\n".into(),
            rerun: Some(StageId::Calibrate),
            new_session,
        }]
    };
    a.handle_key(ctrl_s);
    assert_eq!(a.handle_key(ch('y')), apply(false));
    assert_eq!(a.mode, Mode::Normal);
    assert!(a.editor.is_none());
    // the same edit, applied to a new session file instead
    a.handle_key(ch('e'));
    a.editor.as_mut().unwrap().textarea =
        tui_textarea::TextArea::new(vec!["model: m.onnx".into(), "bin: 200".into()]);
    a.handle_key(ctrl_s);
    assert_eq!(a.handle_key(ch('s')), apply(true));
    assert!(
        a.message
            .as_ref()
            .unwrap()
            .text
            .contains("new session file")
    );
}

#[test]
fn editor_asks_before_dropping_edits() {
    let mut a = app();
    a.config_text = Some("# kept\nmodel: m.onnx\n".into());
    a.handle_key(ch('e'));
    a.handle_key(ch('x'));
    a.handle_key(key(KeyCode::Esc));
    assert_eq!(a.mode, Mode::Confirm);
    assert!(screen(&mut a, 80, 24).contains("drop the edits"));
    // `s` means nothing to this question
    assert!(a.handle_key(ch('s')).is_empty());
    assert_eq!(a.mode, Mode::Confirm);
    a.handle_key(key(KeyCode::Esc));
    assert_eq!(a.mode, Mode::Editor);
    a.handle_key(key(KeyCode::Esc));
    a.handle_key(ch('y'));
    assert_eq!(a.mode, Mode::Normal);
    assert!(a.editor.is_none());
    // an editor closed unedited does not ask
    a.handle_key(ch('e'));
    a.handle_key(key(KeyCode::Esc));
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
        Action::CancelJob,
        Action::Back,
        Action::View,
        Action::PrevEval,
        Action::NextEval,
        Action::Adopt,
        Action::HelpUp,
        Action::HelpDown,
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
        Action::ConfirmNewSession,
        Action::HelpClose,
        // bisect_tests.rs
        Action::ExcludeUpTo,
        Action::ExcludeFrom,
        Action::Mark,
        Action::Undo,
        Action::Redo,
        // chrome_tests.rs
        Action::SelectTab,
        Action::Zoom,
        Action::HelpPageUp,
        Action::HelpPageDown,
    ];
    for b in KEYMAP {
        assert!(tested.contains(&b.action), "{:?} has no test", b.action);
    }
}

#[test]
fn readme_key_table_is_generated() {
    let t = super::keymap::markdown_table();
    assert!(t.contains("| panels | `space` | exclude/include, re-evaluate (not in review) |"));
}

/// Frame time at 160×48 with a 200-layer session: `cargo test --release --lib
/// tui::tests::bench_frame -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_frame() {
    let (mean, max) = super::bench(200, 160, 48, 500);
    println!("frame 160x48, 200 layers: mean {mean:.3} ms, max {max:.3} ms");
}
