//! The seed's flowchart, steps 1–8: where the flow is, each stage's best result, and while
//! a stage runs its evaluations done/total with a progress bar and an ETA.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::block;
use crate::session::{StageId, StageState};
use crate::tui::app::{App, Tab};
use crate::tui::event::JobKind;
use crate::tui::model::{self, fmt_delta, fmt_duration, fmt_metric};
use crate::tui::theme::{Glyph, Theme, fit};

pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let t = app.theme;
    let s = &app.session;
    let b = block(&t, " Stages ", app.tab == Tab::Stages);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let w = inner.width as usize;
    let d = t.glyph(Glyph::Delta);
    let cursor_stage = app.marked_stage();
    let mut lines: Vec<Line> = Vec::new();
    for (k, st) in StageId::ALL.iter().enumerate() {
        let r = s.stage(*st);
        let state = r.state;
        let here = *st == cursor_stage;
        let cur = if here { t.glyph(Glyph::Cursor) } else { " " };
        let (mark, style) = state_mark(state, &t);
        let nw = NAME.min(w.saturating_sub(30)).max(8);
        let name = fit(short_title(*st), nw, &t);
        // room after "▶1 ✓ " and the name
        let rest = w.saturating_sub(5 + nw + 1);
        let mut spans = vec![
            Span::styled(
                format!("{cur}{} ", st.step()),
                if here { t.key() } else { Style::new() },
            ),
            Span::styled(format!("{mark} "), style),
            Span::raw(format!("{name:<nw$} ")),
        ];
        let in_flight = app
            .job
            .as_ref()
            .is_some_and(|j| j.kind == JobKind::Stage(*st));
        if state == StageState::Running && !in_flight && !app.busy() {
            // left running by a cancel or a kill: running it again resumes it
            spans.push(Span::styled(
                format!(
                    "paused {}/{}, n resumes",
                    r.evaluations_done, r.evaluations_total
                ),
                t.warn(),
            ));
        } else if state == StageState::Running {
            let bar_w = w.saturating_sub(56).clamp(6, 20);
            let frac = r.evaluations_done as f64 / r.evaluations_total.max(1) as f64;
            spans.push(Span::styled(t.hbar(frac, bar_w), t.warn()));
            spans.push(Span::raw(format!(
                " {}/{}",
                r.evaluations_done, r.evaluations_total
            )));
            let eta = app
                .job
                .as_ref()
                .filter(|j| j.kind == JobKind::Stage(*st))
                .and_then(|j| {
                    super::footer::stage_eta(app, j, r.evaluations_done, r.evaluations_total)
                });
            if let Some(eta) = eta {
                spans.push(Span::styled(
                    format!(" ETA {}", model::fmt_clock(eta)),
                    t.dim(),
                ));
            }
        } else if let Some(e) = model::stage_best(s, *st) {
            // the result first; its evaluation count and time only where they fit whole
            let result = format!(
                "{} {d}{}",
                fmt_metric(e.metric()),
                fmt_delta(e.report.delta)
            );
            let count = format!(" {}/{}", r.evaluations_done, r.evaluations_total);
            let time = format!(" {}", fmt_duration(r.seconds));
            let mut more = String::new();
            let used = result.chars().count();
            if used + count.len() <= rest {
                more.push_str(&count);
                if used + count.len() + time.len() <= rest {
                    more.push_str(&time);
                }
            }
            spans.push(Span::styled(result, style));
            spans.push(Span::styled(more, t.dim()));
        } else {
            spans.push(Span::styled(crate::tui::app::state_word(state), t.dim()));
        }
        lines.push(Line::from(spans));
        // the checks that follow stages 1 and 3 (steps 2, 4); step 6, the check after
        // stage 5, is where the corrections stage runs, shown as its own row
        if k < 2 {
            let step = st.step() + 1;
            let (text, style) = match state {
                StageState::Met => (
                    format!("target met {} done", t.glyph(Glyph::Arrow)),
                    t.good(),
                ),
                StageState::Missed => (
                    format!("missed {} step {}", t.glyph(Glyph::Arrow), step + 1),
                    t.dim(),
                ),
                _ => ("".to_string(), t.dim()),
            };
            lines.push(Line::from(vec![
                Span::styled(format!(" {step} "), t.dim()),
                Span::styled(
                    format!("  check{} ", if text.is_empty() { "" } else { ":" }),
                    t.dim(),
                ),
                Span::styled(text, style),
            ]));
        }
    }
    // the job in flight
    if let Some(job) = &app.job {
        lines.push(Line::from(Span::styled(
            fit(&job.kind.label(), w, &t),
            t.warn(),
        )));
        if let Some((phase, done, total, since)) = job.phase {
            let frac = done as f64 / total.max(1) as f64;
            let label = format!("{} {done}/{total} ", phase.label());
            let elapsed = app.now.saturating_duration_since(since).as_secs_f64();
            let eta = (done > 0 && done < total)
                .then(|| elapsed / done as f64 * (total - done) as f64)
                .map_or(String::new(), |e| format!(" eta {}", fmt_duration(e)));
            let bar_w = w.saturating_sub(label.len() + eta.len()).max(4);
            lines.push(Line::from(vec![
                Span::raw(label),
                Span::styled(t.hbar(frac, bar_w), t.warn()),
                Span::styled(eta, t.dim()),
            ]));
        }
    } else if let Some(st) = detail(app, cursor_stage, &t) {
        // wrapped at words over the rows left (cut only when those run out)
        let room = (inner.height as usize).saturating_sub(lines.len()).max(1);
        let wrapped = wrap(&st, w);
        let n = wrapped.len();
        for (i, l) in wrapped.into_iter().take(room).enumerate() {
            let l = if i + 1 == room && n > room {
                fit(&format!("{l} {}", t.glyph(Glyph::Ellipsis)), w, &t)
            } else {
                fit(&l, w, &t)
            };
            lines.push(Line::from(Span::styled(l, t.dim())));
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// `text` wrapped at spaces into lines of at most `w` characters (a longer word is cut
/// by the caller's `fit`).
fn wrap(text: &str, w: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let need = cur.chars().count() + usize::from(!cur.is_empty()) + word.chars().count();
        if !cur.is_empty() && need > w {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Width of the stage names.
const NAME: usize = 20;

/// A stage's name in at most `NAME` characters (abbreviated by design, never cut).
fn short_title(st: StageId) -> &'static str {
    match st {
        StageId::Calibrate => "calibrate as config",
        StageId::Modify => "wider ratio/bin/pct",
        StageId::Traverse => "traverse Table 2",
        StageId::Correct => "corrections (INT8)",
        StageId::Exclude => "build exclude_op",
        StageId::Fp16 => "FP16 fallback",
    }
}

fn state_mark(state: StageState, t: &Theme) -> (&'static str, Style) {
    match state {
        StageState::Pending => (t.glyph(Glyph::Pending), t.dim()),
        StageState::Running => (t.glyph(Glyph::Running), t.warn()),
        StageState::Met => (t.glyph(Glyph::Check), t.good()),
        StageState::Missed => (t.glyph(Glyph::Cross), t.bad()),
        StageState::Skipped => (t.glyph(Glyph::Skipped), t.dim()),
    }
}

/// About the stage under the marker: stage 7's blacklists with their metrics (v views
/// them in turn), else the best result's setting and blacklist.
fn detail(app: &App, stage: StageId, t: &Theme) -> Option<String> {
    let s = &app.session;
    let searches = &s.stage(stage).searches;
    if !searches.is_empty() {
        let parts: Vec<String> = searches
            .iter()
            .map(|x| {
                let id = x.result.map_or(String::new(), |i| format!("{i} "));
                let m = x.metric.map_or("-".into(), fmt_metric);
                let ok = t.glyph(if x.target_met {
                    Glyph::Check
                } else {
                    Glyph::Cross
                });
                format!(
                    "{id}{}: {} excl {m} {ok}",
                    model::strategy_word(&x.strategy),
                    x.exclude.len()
                )
            })
            .collect();
        return Some(format!("v views {}", parts.join("; ")));
    }
    let e = model::stage_best(s, stage)?;
    let setting = e
        .setting
        .and_then(|i| s.setting(i))
        .map_or("FP16, nothing quantized".into(), |r| r.setting.label());
    let mut text = format!("step {} best: {setting}", stage.step());
    if !e.exclude.is_empty() {
        text.push_str(&format!(
            " {} exclude {}",
            t.glyph(Glyph::Dot),
            e.exclude.join(", ")
        ));
    }
    Some(text)
}
