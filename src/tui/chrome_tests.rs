//! Tests of the terminal conventions (panel numbers, arrows, paging, zoom, mouse, memory
//! figure) and snapshots at the README's reference size, 120×34, where nothing may be cut.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::app::{App, Job, Tab};
use super::chrome::MemFigure;
use super::event::{JobKind, Phase};
use super::keymap::Mode;
use super::theme::Theme;
use super::{fixture, view};
use crate::session::StageId;

fn app() -> App {
    App::new(fixture::session(20), Theme::PLAIN)
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::draw(f, app)).unwrap();
    term.backend().to_string()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}
fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}
fn mouse(kind: MouseEventKind, column: u16, row: u16) -> MouseEvent {
    MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    }
}

/// A fixed memory figure, so snapshots do not depend on this process.
fn with_memory(mut a: App) -> App {
    a.chrome.mem = Some(MemFigure {
        resident: Some(412 << 20),
        cache_budget: 2048 << 20,
    });
    a
}

/// Stage 5 at 329 of 432 after a resume at 268, 60 s ago.
fn stage5_running() -> App {
    let mut s = fixture::running(20);
    let t = s.stage_mut(StageId::Traverse);
    t.evaluations_done = 329;
    t.evaluations_total = 432;
    let mut a = with_memory(App::new(s, Theme::PLAIN));
    let ago = |secs| {
        a.now
            .checked_sub(Duration::from_secs(secs))
            .unwrap_or(a.now)
    };
    a.job = Some(Job {
        kind: JobKind::Stage(StageId::Traverse),
        started: ago(60),
        phase: Some((Phase::Evaluating, 120, 300, ago(6))),
        estimate: None,
        baseline: Some((268, ago(60))),
    });
    a.stage_cursor = 2;
    a
}

#[test]
fn number_keys_and_arrows_select_panels() {
    let mut a = app();
    for (c, tab) in ('1'..='5').zip(Tab::ALL) {
        a.handle_key(key(KeyCode::Char(c)));
        assert_eq!(a.tab, tab);
    }
    a.handle_key(key(KeyCode::Char('6')));
    assert_eq!(a.tab, Tab::Stages, "no sixth panel");
    a.handle_key(key(KeyCode::Right));
    assert_eq!(a.tab, Tab::Layers);
    a.handle_key(key(KeyCode::Left));
    assert_eq!(a.tab, Tab::Stages);
    // the tabs are numbered, so the keys can be read off the screen
    let s = screen(&mut a, 80, 24);
    assert!(s.contains(" 1 Layers ") && s.contains(" 5 Stages "), "{s}");
}

#[test]
fn ctrl_d_and_ctrl_u_page_the_layers_and_the_help() {
    let mut a = app();
    screen(&mut a, 80, 24);
    let page = a.page;
    assert!(page > 1);
    a.handle_key(ctrl('d'));
    assert_eq!(a.cursor, page);
    a.handle_key(ctrl('u'));
    assert_eq!(a.cursor, 0);
    // Ctrl-d is not d (the divergence curves)
    assert!(!a.all_curves);
    a.handle_key(key(KeyCode::Char('?')));
    screen(&mut a, 80, 24);
    let help_page = a.chrome.help_page;
    a.handle_key(ctrl('d'));
    screen(&mut a, 80, 24);
    assert!(a.help_scroll > 0, "the help scrolls a page");
    assert!(a.help_scroll <= help_page);
    a.handle_key(ctrl('u'));
    assert_eq!(a.help_scroll, 0);
}

#[test]
fn z_zooms_the_focused_panel_and_restores() {
    let mut a = app();
    a.handle_key(key(KeyCode::Char('3')));
    a.handle_key(key(KeyCode::Char('z')));
    assert!(a.chrome.zoom);
    let s = screen(&mut a, 120, 34);
    assert!(s.contains("Divergence"), "{s}");
    assert!(!s.contains("Layers 20"), "only the zoomed panel:\n{s}");
    a.handle_key(key(KeyCode::Char('z')));
    assert!(!a.chrome.zoom);
    let s = screen(&mut a, 120, 34);
    assert!(s.contains("Layers 20") && s.contains("Divergence"), "{s}");
}

#[test]
fn mouse_clicks_select_rows_and_panels_and_the_wheel_scrolls() {
    let mut a = app();
    screen(&mut a, 120, 34);
    let rows = a.chrome.hits.layer_rows.expect("layer rows drawn");
    a.handle_mouse(mouse(
        MouseEventKind::Down(MouseButton::Left),
        rows.x + 3,
        rows.y + 4,
    ));
    assert_eq!(a.cursor, 4);
    assert_eq!(a.tab, Tab::Layers);
    a.handle_mouse(mouse(MouseEventKind::ScrollDown, rows.x, rows.y));
    assert_eq!(a.cursor, 7);
    a.handle_mouse(mouse(MouseEventKind::ScrollUp, rows.x, rows.y));
    assert_eq!(a.cursor, 4);
    // a click on another panel focuses it
    let (_, acc) = *a
        .chrome
        .hits
        .panels
        .iter()
        .find(|(t, _)| *t == Tab::Accuracy)
        .unwrap();
    a.handle_mouse(mouse(
        MouseEventKind::Down(MouseButton::Left),
        acc.x + 2,
        acc.y + 2,
    ));
    assert_eq!(a.tab, Tab::Accuracy);
    assert_eq!(a.cursor, 4, "a click outside the list keeps the selection");
    // on the tabs (80×24) a click on a label selects that tab
    screen(&mut a, 80, 24);
    let (_, stages) = *a.chrome.hits.panels.last().unwrap();
    a.handle_mouse(mouse(
        MouseEventKind::Down(MouseButton::Left),
        stages.x + 1,
        stages.y,
    ));
    assert_eq!(a.tab, Tab::Stages);
    // the wheel scrolls the help while it is open
    a.handle_key(key(KeyCode::Char('?')));
    a.handle_mouse(mouse(MouseEventKind::ScrollDown, 10, 10));
    assert_eq!(a.help_scroll, 3);
    assert_eq!(a.mode, Mode::Help);
}

#[test]
fn status_line_shows_memory_and_cache_budget() {
    let mut a = app();
    let s = screen(&mut a, 120, 34);
    assert!(!s.contains("mem "), "not sampled yet: nothing shown");
    let mut a = with_memory(app());
    let s = screen(&mut a, 120, 34);
    let header = s.lines().next().unwrap();
    assert!(header.contains("mem 412 MB / cache 2.0 GB"), "{header}");
    // at 80 the header is full: the footer has it, giving up keys the help lists
    let s = screen(&mut a, 80, 24);
    let footer = s.lines().last().unwrap();
    assert!(footer.contains("mem 412M/2.0G"), "{footer}");
    assert!(footer.contains("q quit"), "{footer}");
    // unknown resident memory reads "?"; the budget is the configuration's
    let mut a = app();
    a.chrome.mem = Some(MemFigure {
        resident: None,
        ..MemFigure::sample(&a.session)
    });
    let s = screen(&mut a, 120, 34);
    assert!(s.lines().next().unwrap().contains("mem ? / cache"), "{s}");
}

#[test]
fn snapshots_at_120x34() {
    let mut a = with_memory(app());
    insta::assert_snapshot!("main_120x34", screen(&mut a, 120, 34));
    let mut a = stage5_running();
    a.tab = Tab::Stages;
    let s = screen(&mut a, 120, 34);
    assert!(
        s.lines()
            .next()
            .unwrap()
            .contains("stage 5 · 329/432 · ETA 1:41"),
        "{s}"
    );
    insta::assert_snapshot!("running_120x34", s);
    // stage 7's view: its best and blacklists
    let mut a = with_memory(app());
    a.stage_cursor = 4;
    a.handle_key(key(KeyCode::Char('v')));
    assert_eq!(a.viewing, Some(crate::session::EvalId(6)));
    insta::assert_snapshot!("stage7_120x34", screen(&mut a, 120, 34));
}

#[test]
fn running_stage_fits_at_80x24() {
    let mut a = stage5_running();
    a.tab = Tab::Stages;
    let s = screen(&mut a, 80, 24);
    assert!(
        s.lines()
            .next()
            .unwrap()
            .contains("stage 5 · 329/432 · ETA 1:41"),
        "{s}"
    );
}
