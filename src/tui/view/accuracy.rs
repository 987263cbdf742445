//! Accuracy: the FP32 and INT8 metric of the evaluation in view and their delta (always
//! INT8 − FP32) against the target, a sparkline of every evaluation so far, and the
//! history list (every evaluation, what it was, its metric) to browse with `[` / `]`.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::block;
use crate::session::{EvalId, Evaluation, Origin, Session};
use crate::tui::app::{App, Tab, ToggleResult};
use crate::tui::model::{self, fmt_delta, fmt_metric};
use crate::tui::theme::{Glyph, Theme, fit};

pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let t = app.theme;
    let s = &app.session;
    let b = block(&t, " Accuracy ", app.tab == Tab::Accuracy);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let w = inner.width as usize;
    let d = t.glyph(Glyph::Delta);
    let mut lines: Vec<Line> = Vec::new();
    let fp32 = s.fp32_metric;
    lines.push(Line::from(vec![
        Span::styled(format!("{} ", s.metric.as_str()), t.title()),
        Span::raw(format!("FP32 {}", fp32.map_or("-".into(), fmt_metric))),
        Span::styled(
            format!(
                "   target {d} {} -{}",
                t.glyph(Glyph::Ge),
                fmt_metric(s.max_drop)
            ),
            t.dim(),
        ),
    ]));
    let in_view = model::evaluation_in_view(s, app.viewing);
    match in_view.and_then(|i| Some((i, s.evaluation(i)?))) {
        Some((i, e)) => {
            let r = &e.report;
            let met = if r.target_met { "met" } else { "missed" };
            let whose = match app.viewing {
                Some(_) => "viewing",
                None if s.current.evaluation == Some(i) => "current",
                None => "best",
            };
            lines.push(Line::from(vec![
                Span::raw(format!("INT8 {}  ", fmt_metric(r.int8))),
                Span::styled(
                    format!("{d}FP32 {}  {met}", fmt_delta(r.delta)),
                    ok_style(&t, r.target_met),
                ),
                Span::styled(
                    format!(
                        "  ({whose} {i}, {} excl{})",
                        e.exclude.len(),
                        if e.fp16 { ", FP16" } else { "" }
                    ),
                    t.dim(),
                ),
            ]));
        }
        None => lines.push(Line::from(Span::styled("INT8 not evaluated yet", t.dim()))),
    }
    // sparkline of the history
    let spark_h = if inner.height >= 14 { 3 } else { 2 };
    let label = format!("history ({} evaluations)", s.evaluation_count());
    lines.push(Line::from(Span::styled(label, t.dim())));
    lines.extend(sparkline(s, w, spark_h, &t));
    let rows = (inner.height as usize).saturating_sub(lines.len() + 1);
    if rows > 0 && s.evaluation_count() > 0 {
        lines.push(Line::from(Span::styled(history_header(w, &t), t.dim())));
        lines.extend(history(app, in_view, rows, w));
    }
    lines.truncate(inner.height as usize);
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Width of the label column of the history list.
fn label_width(w: usize) -> usize {
    // "> #123~ " label " 0.9667 -0.0033 " excluded
    w.saturating_sub(2 + 6 + 1 + 1 + 7 + 1 + 7 + 1 + 4).max(8)
}

fn history_header(w: usize, t: &Theme) -> String {
    let lw = label_width(w);
    format!(
        "  {:<6} {:<lw$} {:>7} {:>7} {:>4}",
        "eval",
        "what ([ ] step, v stage results)",
        "INT8",
        format!("{}FP32", t.glyph(Glyph::Delta)),
        "excl"
    )
    .chars()
    .take(w)
    .collect()
}

/// The history, newest first, `rows` of it around the evaluation in view: the same list
/// live and in review (it is the session's), `>` the one in view, `*` the current state.
fn history(app: &App, in_view: Option<EvalId>, rows: usize, w: usize) -> Vec<Line<'static>> {
    let t = app.theme;
    let s = &app.session;
    let n = s.evaluation_count();
    let pos = in_view.map_or(0, |i| n.saturating_sub(1 + i.index()));
    let first = pos.saturating_sub(rows / 2).min(n.saturating_sub(rows));
    let lw = label_width(w);
    let ids: Vec<EvalId> = s.evaluations().rev().map(|(i, _)| i).collect();
    ids.iter()
        .skip(first)
        .take(rows)
        .filter_map(|&i| {
            let e = s.evaluation(i)?;
            let mark = if Some(i) == in_view {
                t.glyph(Glyph::Cursor)
            } else if s.current.evaluation == Some(i) {
                "*"
            } else {
                " "
            };
            let stopped = if e.is_complete() { "" } else { "~" };
            let text = format!(
                "{mark} {:<6} {:<lw$} {:>7} {:>7} {:>4}",
                format!("{i}{stopped}"),
                fit(&model::eval_label(s, i), lw, &t),
                fmt_metric(e.metric()),
                fmt_delta(e.report.delta),
                e.exclude.len()
            );
            let style = if Some(i) == in_view {
                t.selected()
            } else {
                ok_style(&t, e.report.target_met)
            };
            Some(Line::from(Span::styled(text, style)))
        })
        .collect()
}

fn ok_style(t: &Theme, ok: bool) -> Style {
    if ok { t.good() } else { t.bad() }
}

/// The metric of the last `w` evaluations as `h` rows of bars, scaled between the lowest
/// value and the highest (the FP32 metric included); bars that meet the target in green.
fn sparkline(s: &Session, w: usize, h: usize, t: &Theme) -> Vec<Line<'static>> {
    let skip = s.evaluation_count().saturating_sub(w);
    let evals: Vec<&Evaluation> = s.evaluations().skip(skip).map(|(_, e)| e).collect();
    if evals.is_empty() {
        return vec![Line::from(Span::styled("(none yet)", t.dim()))];
    }
    let vals: Vec<f64> = evals.iter().map(|e| e.metric()).collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals
        .iter()
        .copied()
        .chain(s.fp32_metric)
        .fold(f64::NEG_INFINITY, f64::max);
    let levels: Vec<usize> = vals
        .iter()
        .map(|v| {
            let f = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
            1 + (f * (h * 8 - 1) as f64).round() as usize
        })
        .collect();
    (0..h)
        .rev()
        .map(|r| {
            let spans: Vec<Span> = levels
                .iter()
                .zip(&evals)
                .map(|(&l, e)| {
                    let sym = t.vblock(l.saturating_sub(r * 8).min(8));
                    Span::styled(sym, ok_style(t, e.report.target_met))
                })
                .collect();
            Line::from(spans)
        })
        .collect()
}

/// Toggles recovered from a saved session: each user evaluation against the latest earlier
/// evaluation of the same setting whose exclude set differs by one layer.
pub fn derived_toggles(s: &Session) -> Vec<ToggleResult> {
    let mut out = Vec::new();
    let all: Vec<&Evaluation> = s.evaluations().map(|(_, e)| e).collect();
    for (i, e) in s.evaluations() {
        if e.origin != Origin::User {
            continue;
        }
        let earlier = all.get(..i.index()).unwrap_or_default();
        let prev = earlier.iter().rev().find_map(|p| {
            model::one_toggle(p, e).map(|(layer, excluded)| (layer, excluded, p.metric()))
        });
        if let Some((layer, excluded, before)) = prev {
            out.push(ToggleResult {
                layer,
                excluded,
                before: Some(before),
                after: e.metric(),
                evaluation: i,
            });
        }
    }
    out
}
