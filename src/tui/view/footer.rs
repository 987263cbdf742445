//! The header (model, accuracy, job) and the footer (the main keys, or a message).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::tui::app::App;
use crate::tui::keymap::{KEYMAP, Mode, footer_entries, keys_label};
use crate::tui::model::{self, fmt_delta, fmt_metric};
use crate::tui::theme::{Glyph, fit};

/// The header line.
pub fn render_header(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let s = &app.session;
    let sep = || Span::styled(format!(" {} ", t.glyph(Glyph::VLine)), t.dim());
    let model_name = std::path::Path::new(&s.model)
        .file_name()
        .map_or(s.model.clone(), |f| f.to_string_lossy().into_owned());
    let mut spans = vec![Span::styled("qtune", t.title())];
    if app.review {
        spans.push(Span::styled(" REVIEW", t.warn()));
    }
    spans.push(sep());
    if area.width >= 100 || app.job.is_none() {
        spans.push(Span::raw(model_name));
        spans.push(sep());
    }
    let fp32 = s.fp32_metric.map_or("-".into(), fmt_metric);
    spans.push(Span::raw(format!("{} FP32 {fp32}", s.metric.as_str())));
    if let Some(e) = model::evaluation_in_view(s).and_then(|i| s.evaluation(i)) {
        let r = &e.report;
        spans.push(sep());
        spans.push(Span::raw(format!("INT8 {} ", fmt_metric(r.int8))));
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
    if let Some(e) = app.job.as_ref().and_then(|j| j.estimate) {
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
        let what = match job.phase {
            Some((p, d, n, _)) => format!("{} {d}/{n}", p.label()),
            None => "starting".into(),
        };
        spans.push(Span::styled(
            format!("{} {}", t.glyph(Glyph::Running), what),
            t.warn(),
        ));
        if !app.queued.is_empty() {
            spans.push(Span::styled(
                format!(" +{} queued", app.queued.len()),
                t.dim(),
            ));
        }
    }
    frame.render_widget(Line::from(spans), area);
}

/// The footer: the filter being typed, a message, or the main keys.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let w = area.width as usize;
    let line = if app.mode == Mode::Filter {
        Line::from(vec![
            Span::styled("filter: ", t.key()),
            Span::raw(format!("{}_", app.filter)),
            Span::styled("  (Enter keep, Esc clear)", t.dim()),
        ])
    } else if matches!(app.mode, Mode::Editor | Mode::ConfirmQuit) {
        let mut spans = Vec::new();
        for b in KEYMAP.iter().filter(|b| b.mode == app.mode) {
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
        let mut entries: Vec<(String, &str)> = footer_entries(t)
            .into_iter()
            .filter(|(_, w)| *w != "cancel" || app.busy())
            .collect();
        let len = |e: &[(String, &str)]| -> usize {
            e.iter().map(|(k, w)| k.chars().count() + w.len() + 3).sum()
        };
        for drop in ["filter", "config", "save", "select", "next stage"] {
            if len(&entries) <= w {
                break;
            }
            entries.retain(|(_, x)| *x != drop);
        }
        let mut spans = Vec::new();
        for (keys, word) in entries {
            spans.push(Span::styled(format!(" {keys}"), t.key()));
            spans.push(Span::raw(format!(" {word} ")));
        }
        Line::from(spans)
    };
    frame.render_widget(line, area);
}
