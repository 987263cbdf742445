//! The help overlay, generated from the key map, and the quit confirmation.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{block, centered};
use crate::tui::app::App;
use crate::tui::keymap::help_sections;
use crate::tui::theme::fit;

/// The help overlay: the normal-mode keys on the left, the other modes on the right
/// (one column when the screen is narrow and tall enough).
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let sections = help_sections(t);
    let rows: usize = sections.iter().map(|(_, r)| r.len() + 1).sum();
    let pop = centered(area, 80, (sections[0].1.len() + 3) as u16);
    frame.render_widget(Clear, pop);
    let b = block(t, " keys (? or Esc closes) ", true);
    let inner = b.inner(pop);
    frame.render_widget(b, pop);
    let two = rows + 2 > inner.height as usize;
    let cols: Vec<Rect> = if two {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .split(inner)
            .to_vec()
    } else {
        vec![inner]
    };
    let mut col = 0;
    let mut lines: Vec<Line> = Vec::new();
    for (i, (title, entries)) in sections.iter().enumerate() {
        if two && i == 1 {
            frame.render_widget(Paragraph::new(std::mem::take(&mut lines)), cols[col]);
            col = 1;
        }
        lines.push(Line::from(Span::styled(title.to_string(), t.title())));
        let w = cols[col].width as usize;
        for (keys, help) in entries {
            let k = format!(" {keys:<8} ");
            let rest = w.saturating_sub(k.chars().count());
            lines.push(Line::from(vec![
                Span::styled(k, t.key()),
                Span::raw(fit(help, rest, t)),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(lines), cols[col]);
}

/// "Quit anyway?"
pub fn render_confirm(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let pop = centered(area, 52, 5);
    frame.render_widget(Clear, pop);
    let b = block(t, " quit? ", true);
    let inner = b.inner(pop);
    frame.render_widget(b, pop);
    let what = match &app.job {
        Some(j) => j.kind.label(),
        None => "queued work".into(),
    };
    let lines = vec![
        Line::from(fit(
            &format!("Still running: {what}."),
            inner.width as usize,
            t,
        )),
        Line::from("Finished evaluations are saved; this one is lost."),
        Line::from(vec![
            Span::styled("y", t.key()),
            Span::raw(" quit   "),
            Span::styled("n", t.key()),
            Span::raw(" stay"),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}
