//! The help overlay, generated from the key map, and the yes/no questions.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{block, centered};
use crate::tui::app::{App, Confirm};
use crate::tui::keymap::help_sections;
use crate::tui::theme::fit;

/// The help overlay: the keys that work here (live or review), one section per mode; two
/// columns when the screen is wide enough, and scrolled by `app.help_scroll` when it does
/// not fit (the title says so).
pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let t = app.theme;
    let sections = help_sections(&t, app.review);
    let mut lines: Vec<(bool, String, &str)> = Vec::new();
    for (title, entries) in &sections {
        lines.push((true, title.to_string(), ""));
        for (keys, help) in entries {
            lines.push((false, format!(" {keys:<9} "), help));
        }
    }
    let two = area.width >= 100;
    let per_col = if two {
        lines.len().div_ceil(2)
    } else {
        lines.len()
    };
    let width = if two { 100 } else { 80 };
    let pop = centered(area, width, (per_col + 2).min(u16::MAX as usize) as u16);
    frame.render_widget(Clear, pop);
    let inner_h = pop.height.saturating_sub(2) as usize;
    let max_scroll = per_col.saturating_sub(inner_h);
    app.chrome.help_page = inner_h;
    app.help_scroll = app.help_scroll.min(max_scroll);
    let title = if max_scroll > 0 {
        format!(
            " keys {}-{} of {} (j/k scroll; ? or Esc closes) ",
            app.help_scroll + 1,
            (app.help_scroll + inner_h).min(per_col),
            per_col
        )
    } else {
        " keys (? or Esc closes) ".to_string()
    };
    let b = block(&t, title, true);
    let inner = b.inner(pop);
    frame.render_widget(b, pop);
    let cols: Vec<Rect> = if two {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .split(inner)
            .to_vec()
    } else {
        vec![inner]
    };
    for (c, area) in cols.iter().enumerate() {
        let w = area.width as usize;
        let rows: Vec<Line> = lines
            .iter()
            .skip(c * per_col)
            .take(per_col)
            .skip(app.help_scroll)
            .take(inner_h)
            .map(|(title, k, help)| {
                if *title {
                    Line::from(Span::styled(k.clone(), t.title()))
                } else {
                    let rest = w.saturating_sub(k.chars().count());
                    Line::from(vec![
                        Span::styled(k.clone(), t.key()),
                        Span::raw(fit(help, rest, &t)),
                    ])
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(rows), *area);
    }
}

/// The yes/no question of `Mode::Confirm`.
pub fn render_confirm(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let s = &app.session;
    let (title, text): (&str, Vec<String>) = match &app.confirm {
        Some(Confirm::Cancel) => {
            let what = app
                .job
                .as_ref()
                .map_or("queued work".into(), |j| j.kind.label());
            let queued = if app.queued.is_empty() {
                String::new()
            } else {
                format!(" and {} queued job(s)", app.queued.len())
            };
            (
                " cancel? ",
                vec![
                    format!("Cancel {what}{queued}?"),
                    "Finished evaluations stay saved; a stage resumes with n.".into(),
                ],
            )
        }
        Some(Confirm::Adopt(id)) => {
            let cur = match s.current_evaluation() {
                Some((i, _)) => format!("The current state ({i}) stays in the history."),
                None => format!(
                    "The current state ({} excluded) was never evaluated: it is replaced.",
                    s.current.exclude.len()
                ),
            };
            (
                " adopt? ",
                vec![
                    format!(
                        "Make {} the current state?",
                        crate::tui::model::short_describe(s, *id)
                    ),
                    cur,
                ],
            )
        }
        Some(Confirm::ApplyConfig {
            rerun,
            stages_reset,
            other_model,
            ..
        }) => {
            let n = s.evaluation_count();
            let first = if *other_model {
                format!("Another model: this session ({n} evals) is moved aside")
            } else {
                format!(
                    "Resets {stages_reset} stage(s) from stage {} on;",
                    rerun.step()
                )
            };
            let second = if *other_model {
                "to a .bak file and a new session starts here.".to_string()
            } else {
                "their evals stay in the history, not as results.".to_string()
            };
            (
                " apply config? ",
                vec![
                    first,
                    second,
                    "Or s: a new session file, this one left as it is.".into(),
                ],
            )
        }
        Some(Confirm::Layers { layers, exclude }) => {
            let verb = if *exclude { "Exclude" } else { "Include" };
            let (first, last) = (
                layers.first().map_or("", String::as_str),
                layers.last().map_or("", String::as_str),
            );
            (
                " toggle layers? ",
                vec![
                    format!("{verb} {} layers ({first} … {last})?", layers.len()),
                    "One re-evaluation; u (undo) goes back to this state.".into(),
                ],
            )
        }
        Some(Confirm::DiscardEdits) => (
            " discard edits? ",
            vec!["Close the editor and drop the edits not applied?".into()],
        ),
        _ => {
            let what = app
                .job
                .as_ref()
                .map_or("queued work".into(), |j| j.kind.label());
            (
                " quit? ",
                vec![
                    format!("Still running: {what}."),
                    "Finished evaluations are saved; this one is lost.".into(),
                ],
            )
        }
    };
    let w = 64.min(area.width);
    let h = (text.len() as u16).saturating_add(4);
    let pop = centered(area, w, h);
    frame.render_widget(Clear, pop);
    let b = block(t, title, true);
    let inner = b.inner(pop);
    frame.render_widget(b, pop);
    let mut lines: Vec<Line> = text
        .iter()
        .map(|x| Line::from(fit(x, inner.width as usize, t)))
        .collect();
    lines.push(Line::from(""));
    let mut keys = vec![Span::styled("y", t.key()), Span::raw(" yes   ")];
    if matches!(app.confirm, Some(Confirm::ApplyConfig { .. })) {
        keys.push(Span::styled("s", t.key()));
        keys.push(Span::raw(" new session   "));
    }
    keys.extend([
        Span::styled("n", t.key()),
        Span::raw("/"),
        Span::styled("Esc", t.key()),
        Span::raw(" no"),
    ]);
    lines.push(Line::from(keys));
    frame.render_widget(Paragraph::new(lines), inner);
}
