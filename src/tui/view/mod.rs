//! Drawing: one file per panel, each `render(frame, area, app)`. Wide terminals show every
//! panel at once; small ones (80×24) show one panel at a time as tabs.

pub mod accuracy;
pub mod config;
pub mod curve;
pub mod footer;
pub mod help;
pub mod histogram;
pub mod layers;
pub mod plot;
pub mod stages;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};

use super::app::{App, Tab};
use super::keymap::Mode;
use super::theme::Theme;

/// At least this size shows every panel at once.
pub const WIDE: (u16, u16) = (120, 32);

/// The smallest screen drawn; below it a screen says so.
pub const SMALLEST: (u16, u16) = (80, 24);

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    if area.width < SMALLEST.0 || area.height < SMALLEST.1 {
        return too_small(frame, area, app);
    }
    let [header, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    app.chrome.mem_in_header = footer::render_header(frame, header, app);
    footer::render(frame, foot, app);
    app.chrome.hits = Default::default();
    if app.chrome.zoom {
        let tab = app.tab;
        render_panel(frame, body, app, tab);
    } else if area.width >= WIDE.0 && area.height >= WIDE.1 {
        draw_wide(frame, body, app);
    } else {
        draw_tabs(frame, body, app);
    }
    match app.mode {
        Mode::Editor => config::render(frame, body, app),
        Mode::Help => help::render(frame, area, app),
        Mode::Confirm => help::render_confirm(frame, area, app),
        _ => {}
    }
}

/// Below 80×24: what is needed, the size now, and how to quit (keys still work).
fn too_small(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let w = area.width as usize;
    let job = app.job.as_ref().map(|j| j.kind.label());
    let mut lines = vec![
        label(
            theme_fit(&format!("qtune needs {}x{}", SMALLEST.0, SMALLEST.1), w, t),
            t.title(),
        ),
        label(
            theme_fit(
                &format!("this terminal: {}x{}", area.width, area.height),
                w,
                t,
            ),
            t.dim(),
        ),
        label(theme_fit("enlarge it, or q quits", w, t), t.dim()),
    ];
    if let Some(j) = job {
        lines.push(label(theme_fit(&format!("running: {j}"), w, t), t.warn()));
    }
    let h = (lines.len() as u16).min(area.height);
    let y = area.y + area.height.saturating_sub(h) / 2;
    frame.render_widget(
        ratatui::widgets::Paragraph::new(lines),
        Rect::new(area.x, y, area.width, h),
    );
}

fn theme_fit(s: &str, w: usize, t: &Theme) -> String {
    super::theme::fit(s, w, t)
}

fn draw_wide(frame: &mut Frame, body: Rect, app: &mut App) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
    let [lay, stg] = Layout::vertical([Constraint::Min(8), Constraint::Length(14)]).areas(left);
    let [his, cur, acc] = Layout::vertical([
        Constraint::Percentage(36),
        Constraint::Percentage(32),
        Constraint::Percentage(32),
    ])
    .areas(right);
    render_panel(frame, lay, app, Tab::Layers);
    render_panel(frame, stg, app, Tab::Stages);
    render_panel(frame, his, app, Tab::Histogram);
    render_panel(frame, cur, app, Tab::Curve);
    render_panel(frame, acc, app, Tab::Accuracy);
    app.chrome.hits.panels = vec![
        (Tab::Layers, lay),
        (Tab::Stages, stg),
        (Tab::Histogram, his),
        (Tab::Curve, cur),
        (Tab::Accuracy, acc),
    ];
}

fn draw_tabs(frame: &mut Frame, body: Rect, app: &mut App) {
    let [tabs, panel] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(body);
    let t = &app.theme;
    let mut spans = Vec::new();
    let mut hits = Vec::new();
    let mut x = tabs.x;
    for (i, tab) in Tab::ALL.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" ", t.dim()));
            x = x.saturating_add(1);
        }
        let style = if *tab == app.tab {
            t.selected().patch(t.title())
        } else {
            t.dim()
        };
        // numbered: the number key selects it
        let text = format!(" {} {} ", i + 1, tab.title());
        let w = text.chars().count() as u16;
        hits.push((*tab, Rect::new(x, tabs.y, w, 1).intersection(tabs)));
        x = x.saturating_add(w);
        spans.push(Span::styled(text, style));
    }
    spans.push(Span::styled("  Tab/1-5: panel", t.dim()));
    frame.render_widget(Line::from(spans), tabs);
    app.chrome.hits.panels = hits;
    let tab = app.tab;
    render_panel(frame, panel, app, tab);
}

/// Draws one panel into `area`.
pub fn render_panel(frame: &mut Frame, area: Rect, app: &mut App, tab: Tab) {
    match tab {
        Tab::Layers => layers::render(frame, area, app),
        Tab::Histogram => histogram::render(frame, area, app),
        Tab::Curve => curve::render(frame, area, app),
        Tab::Accuracy => accuracy::render(frame, area, app),
        Tab::Stages => stages::render(frame, area, app),
    }
}

/// A bordered panel block; the focused panel's title is highlighted.
pub fn block<'a>(theme: &Theme, title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let style = if focused {
        theme.title().patch(theme.accent())
    } else {
        theme.title()
    };
    Block::default()
        .borders(Borders::ALL)
        .border_set(theme.border())
        .border_style(if focused {
            theme.accent()
        } else {
            Style::new()
        })
        .title(title.into().style(style))
}

/// A single-line label, left-aligned.
pub fn label<'a>(text: impl Into<String>, style: Style) -> Line<'a> {
    Line::from(Span::styled(text.into(), style))
}

/// Centered rectangle of at most `w`×`h` inside `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
