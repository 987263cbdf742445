//! The header (model, accuracy, job) and the footer (the main keys, or a message).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::tui::app::{App, Confirm};
use crate::tui::event::JobKind;
use crate::tui::keymap::{Action, KEYMAP, Mode, footer_entries, keys_label};
use crate::tui::model::{self, fmt_delta, fmt_metric};
use crate::tui::theme::{Glyph, fit};

/// The header line; returns whether the memory figure fitted in it.
pub fn render_header(frame: &mut Frame, area: Rect, app: &App) -> bool {
    let t = &app.theme;
    let s = &app.session;
    let sep = || Span::styled(format!(" {} ", t.glyph(Glyph::VLine)), t.dim());
    let model_name = std::path::Path::new(&s.model)
        .file_name()
        .map_or(s.model.clone(), |f| f.to_string_lossy().into_owned());
    // abbreviated by design below 120 columns while a job runs, so its progress
    // ("stage 5 · 329/432 · ETA 0:45") always fits whole at 80
    let wide = area.width >= 120;
    let busy = app.job.is_some();
    let mut spans = Vec::new();
    if wide || !busy {
        spans.push(Span::styled("qtune", t.title()));
        if app.review {
            spans.push(Span::styled(" REVIEW", t.warn()));
        }
        spans.push(sep());
    }
    if wide || (!busy && app.viewing.is_none()) {
        spans.push(Span::raw(model_name));
        spans.push(sep());
    }
    let fp32 = s.fp32_metric.map_or("-".into(), fmt_metric);
    if wide || !busy {
        spans.push(Span::raw(format!("{} FP32 {fp32}", s.metric.as_str())));
    } else {
        spans.push(Span::raw(format!("FP32 {fp32}")));
    }
    let in_view = model::evaluation_in_view(s, app.viewing);
    if let Some((id, e)) = in_view.and_then(|i| Some((i, s.evaluation(i)?))) {
        let r = &e.report;
        spans.push(sep());
        // which result the panels show: the current state, or another one viewed
        match app.viewing {
            Some(v) => spans.push(Span::styled(format!("viewing {v} "), t.selected())),
            None if s.current.evaluation == Some(id) => {
                spans.push(Span::styled(format!("current {id} "), t.dim()))
            }
            None => spans.push(Span::styled(format!("best {id} "), t.dim())),
        }
        let int8 = if wide || !busy { "INT8 " } else { "" };
        spans.push(Span::raw(format!("{int8}{} ", fmt_metric(r.int8))));
        let style = if r.target_met { t.good() } else { t.bad() };
        let mark = t.glyph(if r.target_met {
            Glyph::Check
        } else {
            Glyph::Cross
        });
        spans.push(Span::styled(
            format!("{}{} {mark}", t.glyph(Glyph::Delta), fmt_delta(r.delta)),
            style,
        ));
    }
    // Say how the float parts run and when the quantized model deviates from the
    // configuration (e.g. per-tensor weights): the numbers depend on both.
    if s.float_precision == crate::config::FloatPrecision::Fp16 {
        spans.push(sep());
        spans.push(Span::styled("float=FP16", t.warn()));
    }
    if !s.degradations.is_empty() {
        spans.push(sep());
        spans.push(Span::styled(
            format!(
                "{} {} deviation(s)",
                t.glyph(Glyph::Cross),
                s.degradations.len()
            ),
            t.bad(),
        ));
    }
    if let Some(e) = app.job.as_ref().and_then(|j| j.estimate).filter(|_| wide) {
        // An estimate, never shown as a result: "≈" and its interval, samples so far.
        spans.push(sep());
        spans.push(Span::styled(
            format!(
                "now {}{} {}{} {} {}/{}",
                t.glyph(Glyph::Approx),
                fmt_metric(e.value),
                t.glyph(Glyph::PlusMinus),
                fmt_metric(e.half_width),
                t.glyph(Glyph::Dot),
                e.done,
                e.total
            ),
            t.warn(),
        ));
    }
    if let Some(job) = &app.job {
        spans.push(sep());
        spans.push(Span::styled(
            format!("{} {}", t.glyph(Glyph::Running), job_progress(app, job)),
            t.warn(),
        ));
        if !app.queued.is_empty() {
            spans.push(Span::styled(format!(" +{}q", app.queued.len()), t.dim()));
        }
    }
    let line = Line::from(spans);
    let used = line.width();
    frame.render_widget(line, area);
    render_memory(frame, area, app, used)
}

/// The memory figure at the header's right end, in the room the status left: in full
/// (`mem 412 MB / cache 2.0 GB`), short (`mem 412M/2.0G`), or not at all.
fn render_memory(frame: &mut Frame, area: Rect, app: &App, used: usize) -> bool {
    let Some(m) = app.chrome.mem else {
        return false;
    };
    let room = (area.width as usize).saturating_sub(used + 2);
    let Some(text) = [m.label(false), m.label(true)]
        .into_iter()
        .find(|l| l.chars().count() <= room)
    else {
        return false;
    };
    frame.render_widget(
        Line::from(Span::styled(text, app.theme.dim())).right_aligned(),
        area,
    );
    true
}

/// The job in a few words, the same on every tab: `stage 5 · 329/432 · ETA 0:45` for a
/// stage (evaluations done of the stage's total; the ETA from this run's own pace, so it
/// is right after a resume), else the phase `evaluating 120/300`.
pub fn job_progress(app: &App, job: &crate::tui::app::Job) -> String {
    let t = &app.theme;
    let dot = t.glyph(Glyph::Dot);
    if let JobKind::Stage(st) = job.kind {
        let r = app.session.stage(st);
        if r.evaluations_total > 0 {
            let (done, total) = (r.evaluations_done, r.evaluations_total);
            let eta = stage_eta(app, job, done, total).map_or(String::new(), |e| {
                format!(" {dot} ETA {}", model::fmt_clock(e))
            });
            return format!("stage {} {dot} {done}/{total}{eta}", st.step());
        }
    }
    match job.phase {
        Some((p, d, n, _)) => format!("{} {d}/{n}", p.label()),
        None => "starting".into(),
    }
}

/// Seconds left of a stage job at this run's pace (from the evaluations it did itself).
pub fn stage_eta(app: &App, job: &crate::tui::app::Job, done: usize, total: usize) -> Option<f64> {
    let (done0, since) = job.baseline?;
    let did = done.checked_sub(done0).filter(|&d| d > 0)?;
    if done >= total {
        return None;
    }
    let elapsed = app.now.saturating_duration_since(since).as_secs_f64();
    Some(elapsed / did as f64 * (total - done) as f64)
}

/// The footer: the filter being typed, a message, or the main keys.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let w = area.width as usize;
    let line = if app.mode == Mode::Filter {
        Line::from(vec![
            Span::styled("filter: ", t.key()),
            Span::raw(format!("{}_", app.filter)),
            Span::styled(
                "  (:x excluded, :i included; Enter keep, Esc clear)",
                t.dim(),
            ),
        ])
    } else if matches!(app.mode, Mode::Editor | Mode::Confirm | Mode::Help) {
        let mut spans = Vec::new();
        for b in KEYMAP
            .iter()
            .filter(|b| b.mode == app.mode && b.scope.applies(app.review))
            // `s` answers only the question about an edited configuration
            .filter(|b| {
                b.action != Action::ConfirmNewSession
                    || matches!(app.confirm, Some(Confirm::ApplyConfig { .. }))
            })
        {
            spans.push(Span::styled(format!(" {}", keys_label(b, t)), t.key()));
            spans.push(Span::raw(format!(" {} ", b.help)));
        }
        Line::from(spans)
    } else if let Some(m) = &app.message {
        let style = if m.error { t.bad() } else { t.accent() };
        Line::from(Span::styled(fit(&m.text, w, t), style))
    } else {
        // the main keys; Esc only while there is something to cancel; when too wide,
        // the least needed go first
        let entries: Vec<(String, &'static str)> = footer_entries(t, app.review)
            .into_iter()
            .filter(|(_, w)| *w != "cancel" || app.busy())
            .filter(|(_, w)| *w != "adopt" || app.viewing.is_some())
            .collect();
        let len = |e: &[(String, &str)]| -> usize {
            e.iter().map(|(k, w)| k.chars().count() + w.len() + 3).sum()
        };
        let fit_keys = |mut entries: Vec<(String, &'static str)>, w: usize, drops: &[&str]| {
            for drop in drops {
                if len(&entries) <= w {
                    break;
                }
                entries.retain(|(_, x)| x != drop);
            }
            entries
        };
        const DROPS: [&str; 6] = ["filter", "config", "save", "view", "select", "next stage"];
        // the memory figure when the header had no room for it, if the keys leave room
        // (they may give up what help lists anyway, never "next stage")
        let mem = app
            .chrome
            .mem
            .filter(|_| !app.chrome.mem_in_header)
            .map(|m| m.label(true));
        let with_mem = mem.as_ref().and_then(|m| {
            let room = w.saturating_sub(m.chars().count() + 1);
            let e = fit_keys(entries.clone(), room, &DROPS[..5]);
            (len(&e) <= room).then_some((e, m.clone()))
        });
        let (entries, mem) = match with_mem {
            Some((e, m)) => (e, Some(m)),
            None => (fit_keys(entries, w, &DROPS), None),
        };
        let mut spans = Vec::new();
        let mut used = 0;
        for (keys, word) in entries {
            used += keys.chars().count() + word.len() + 3;
            spans.push(Span::styled(format!(" {keys}"), t.key()));
            spans.push(Span::raw(format!(" {word} ")));
        }
        if let Some(m) = mem {
            let pad = w.saturating_sub(used + m.chars().count());
            spans.push(Span::raw(" ".repeat(pad)));
            spans.push(Span::styled(m, t.dim()));
        }
        Line::from(spans)
    };
    frame.render_widget(line, area);
}
