//! The layer list: every quantizable layer with its op type, chosen ratio, fidelity
//! (SQNR bar, cosine), sensitivity rank and excluded mark.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::block;
use crate::tui::app::{App, Tab};
use crate::tui::model::LayerRow;
use crate::tui::theme::{Glyph, Theme, fit};

/// SQNR that fills the bar.
const FULL_DB: f64 = 50.0;

pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let t = app.theme;
    let excluded = crate::tui::model::exclude_in_view(&app.session, app.viewing).len();
    let mut title = format!(" Layers {} ", app.session.layers.len());
    if let Some(v) = app.viewing {
        title.push_str(&format!("{} viewing {v} ", t.glyph(Glyph::Dot)));
    }
    if let Some((lo, hi)) = app.bisect.range(&app.rows, app.cursor) {
        title.push_str(&format!("{} range {} ", t.glyph(Glyph::Dot), hi + 1 - lo));
    }
    if !app.filter.is_empty() {
        title.push_str(&format!("/{}: {} ", app.filter, app.rows.len()));
    }
    title.push_str(&format!("{} {} ", t.glyph(Glyph::Dot), app.sort.label()));
    if excluded > 0 {
        title.push_str(&format!("{} {excluded} excluded ", t.glyph(Glyph::Dot)));
    }
    let mut b = block(&t, title, app.tab == Tab::Layers);
    // the scroll position, when the list does not fit (on the bottom border)
    let visible_rows = area.height.saturating_sub(3) as usize;
    if app.rows.len() > visible_rows && visible_rows > 0 {
        let first = app
            .layer_offset
            .min(app.cursor)
            .max((app.cursor + 1).saturating_sub(visible_rows))
            .min(app.rows.len().saturating_sub(visible_rows));
        b = b.title_bottom(
            Line::from(format!(
                " {}-{} of {} ",
                first + 1,
                (first + visible_rows).min(app.rows.len()),
                app.rows.len()
            ))
            .right_aligned(),
        );
    }
    let inner = b.inner(area);
    frame.render_widget(b, area);
    if inner.height < 2 || inner.width < 20 {
        return;
    }
    let w = inner.width as usize;
    let cols = Columns::for_width(w);
    let visible = inner.height as usize - 1;
    app.page = visible;
    app.chrome.hits.layer_rows = Some(Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    });
    if app.cursor < app.layer_offset {
        app.layer_offset = app.cursor;
    } else if app.cursor >= app.layer_offset + visible {
        app.layer_offset = app.cursor + 1 - visible;
    }
    app.layer_offset = app.layer_offset.min(app.rows.len().saturating_sub(visible));
    let mut lines = Vec::with_capacity(visible + 1);
    lines.push(Line::from(Span::styled(cols.header(), t.dim())));
    let pending: Vec<&str> = app
        .queued
        .iter()
        .chain(app.job.as_ref().map(|j| &j.kind))
        .flat_map(|k| match k {
            crate::tui::event::JobKind::Toggle(l) => std::slice::from_ref(l),
            crate::tui::event::JobKind::Layers { layers, .. } => layers.as_slice(),
            _ => &[],
        })
        .map(String::as_str)
        .collect();
    if app.rows.is_empty() {
        let why = if app.session.layers.is_empty() {
            "no quantizable layers (yet)"
        } else {
            "no layer matches the filter"
        };
        lines.push(Line::from(Span::styled(why, t.dim())));
    }
    for (i, row) in app
        .rows
        .iter()
        .enumerate()
        .skip(app.layer_offset)
        .take(visible)
    {
        let queued = pending.contains(&row.name.as_str());
        // the marked range (V) shows as selected, as the cursor does
        let selected = i == app.cursor || app.bisect.in_range(i, &app.rows, app.cursor);
        lines.push(cols.line(row, selected, queued, &t));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Column widths for a panel width.
struct Columns {
    name: usize,
    bar: usize,
    cos: bool,
}

impl Columns {
    fn for_width(w: usize) -> Columns {
        // mark 2, op 8, ratio 6, sqnr 6, cos 9, rank 5
        let cos = w >= 64;
        let fixed = 2 + 8 + 6 + 6 + 5 + if cos { 9 } else { 0 };
        let rest = w.saturating_sub(fixed);
        let bar = (rest / 4).clamp(8, 16);
        Columns {
            name: rest.saturating_sub(bar + 1).max(6),
            bar,
            cos,
        }
    }

    fn header(&self) -> String {
        let mut s = format!(
            "  {:<n$} {:<7} {:>5} {:<b$}{:>6}",
            "layer",
            "op",
            "ratio",
            "fidelity",
            "SQNR",
            n = self.name,
            b = self.bar
        );
        if self.cos {
            s.push_str(&format!(" {:>8}", "cosine"));
        }
        s.push_str(" rank");
        s
    }

    /// One row; `queued`: a toggle of it waits or runs (marked `~`).
    fn line(&self, r: &LayerRow, selected: bool, queued: bool, t: &Theme) -> Line<'static> {
        let mark = if queued {
            Span::styled("~ ", t.warn())
        } else if r.excluded {
            Span::styled(format!("{} ", t.glyph(Glyph::Excluded)), t.bad())
        } else {
            Span::raw("  ")
        };
        let name = format!("{:<n$} ", fit(&r.name, self.name, t), n = self.name);
        let op = format!("{:<7} ", fit(&r.op_type, 7, t));
        let ratio = match r.ratio {
            Some(x) => Span::styled(
                format!("{x:>5.2}"),
                if r.boundary {
                    t.warn()
                } else {
                    ratatui::style::Style::new()
                },
            ),
            None => Span::styled(format!("{:>5}", "-"), t.dim()),
        };
        let mut spans = vec![
            mark,
            Span::raw(name),
            Span::styled(op, t.dim()),
            ratio,
            Span::raw(" "),
        ];
        match r.sqnr {
            Some(db) if !r.excluded => {
                let style = if db >= 30.0 {
                    t.good()
                } else if db >= 20.0 {
                    t.warn()
                } else {
                    t.bad()
                };
                spans.push(Span::styled(t.hbar(db / FULL_DB, self.bar), style));
                spans.push(Span::raw(format!("{db:>6.1}")));
            }
            _ => {
                let what = if r.excluded { "float" } else { "-" };
                spans.push(Span::styled(
                    format!("{what:<b$}{:>6}", "", b = self.bar),
                    t.dim(),
                ));
            }
        }
        if self.cos {
            let c = match r.cosine {
                Some(c) if !r.excluded => format!(" {c:>8.5}"),
                _ => format!(" {:>8}", "-"),
            };
            spans.push(Span::raw(c));
        }
        spans.push(match r.rank {
            Some(k) => Span::styled(format!(" {:>4}", format!("#{k}")), t.accent()),
            None => Span::raw("     "),
        });
        let line = Line::from(spans);
        if selected {
            line.style(t.selected())
        } else {
            line
        }
    }
}
