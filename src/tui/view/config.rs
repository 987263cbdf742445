//! The configuration editor (tui-textarea) on the YAML of the configuration: validated on
//! apply, an error shown at its line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::block;
use crate::tui::app::App;

pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let t = app.theme;
    let Some(ed) = app.editor.as_mut() else {
        return;
    };
    frame.render_widget(Clear, area);
    let title = if ed.read_only {
        " Configuration (read-only review; Esc closes) ".to_string()
    } else {
        " Configuration (C-s validates and applies, Esc closes) ".to_string()
    };
    let err_h = if ed.error.is_some() { 3 } else { 0 };
    let [text, err] = Layout::vertical([Constraint::Min(3), Constraint::Length(err_h)]).areas(area);
    ed.textarea.set_block(block(&t, title, true));
    let cursor_style = match &ed.error {
        Some((Some(_), _)) => t.bad().add_modifier(Modifier::UNDERLINED),
        _ => ratatui::style::Style::new(),
    };
    ed.textarea.set_cursor_line_style(cursor_style);
    frame.render_widget(&ed.textarea, text);
    if let Some((line, msg)) = &ed.error {
        let at = line.map_or(String::new(), |l| format!("line {l}: "));
        let p = Paragraph::new(Line::from(vec![
            Span::styled(at, t.bad().add_modifier(Modifier::BOLD)),
            Span::styled(msg.clone(), t.bad()),
        ]))
        .wrap(Wrap { trim: true });
        frame.render_widget(p, err);
    }
}
