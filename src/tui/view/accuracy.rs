//! Accuracy: the FP32 and INT8 metric and their delta against the target, per stage and per
//! toggle, with a sparkline of every evaluation so far.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::block;
use crate::session::{Evaluation, Origin, Session, StageId};
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
    match model::evaluation_in_view(s).and_then(|i| Some((i, s.evaluation(i)?))) {
        Some((i, e)) => {
            let r = &e.report;
            let met = if r.target_met { "met" } else { "missed" };
            lines.push(Line::from(vec![
                Span::raw(format!("INT8 {}  ", fmt_metric(r.int8))),
                Span::styled(
                    format!("{d} {}  {met}", fmt_delta(r.delta)),
                    ok_style(&t, r.target_met),
                ),
                Span::styled(
                    format!(
                        "  ({i}, {} excluded{})",
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
    // per stage
    for st in StageId::ALL {
        if let Some(e) = model::stage_best(s, st) {
            let r = &e.report;
            let text = format!(
                "stage {} best {}  {d} {}",
                st.step(),
                fmt_metric(r.int8),
                fmt_delta(r.delta)
            );
            lines.push(Line::from(Span::styled(
                fit(&text, w, &t),
                ok_style(&t, r.target_met),
            )));
        }
    }
    // per toggle, newest first
    let toggles = if app.toggles.is_empty() {
        derived_toggles(s)
    } else {
        app.toggles.clone()
    };
    if !toggles.is_empty() {
        lines.push(Line::from(Span::styled("toggles (newest first)", t.dim())));
    }
    for tr in toggles.iter().rev() {
        let verb = if tr.excluded { "exclude" } else { "include" };
        let delta = tr.before.map(|b| tr.after - b);
        let style = match delta {
            Some(x) if x > 0.0 => t.good(),
            Some(x) if x < 0.0 => t.bad(),
            _ => Style::new(),
        };
        let text = format!(
            "{verb} {}: {} {d} {}",
            tr.layer,
            fmt_metric(tr.after),
            delta.map_or("?".into(), fmt_delta)
        );
        lines.push(Line::from(Span::styled(fit(&text, w, &t), style)));
    }
    lines.truncate(inner.height as usize);
    frame.render_widget(Paragraph::new(lines), inner);
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
            if p.setting != e.setting || p.fp16 != e.fp16 {
                return None;
            }
            let added: Vec<&String> = e
                .exclude
                .iter()
                .filter(|x| !p.exclude.contains(x))
                .collect();
            let removed: Vec<&String> = p
                .exclude
                .iter()
                .filter(|x| !e.exclude.contains(x))
                .collect();
            match (added.as_slice(), removed.as_slice()) {
                ([a], []) => Some(((*a).clone(), true, p.metric())),
                ([], [r]) => Some(((*r).clone(), false, p.metric())),
                _ => None,
            }
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
