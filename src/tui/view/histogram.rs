//! The selected layer's activation histogram: linear or log counts, the chosen clipping
//! range `[lo, hi]` and the searched candidate range marked, the clipped mass in percent.
//! While calibrating it shows the histogram collected so far.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::block;
use crate::calib::DisplayHistogram;
use crate::tui::app::{App, Tab};
use crate::tui::model::{self, fmt_short};
use crate::tui::theme::{Glyph, fit};

pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let t = app.theme;
    let row = app.selected_row();
    let layer = row.map_or("-".to_string(), |r| r.name.clone());
    let act = row.and_then(|r| r.activation.clone());
    let scale = if app.log_scale { "log" } else { "linear" };
    let view = act
        .as_deref()
        .and_then(|a| model::histogram_of(&app.session, app.viewing, app.live.as_ref(), a));
    let live = if view.as_ref().is_some_and(|v| v.live) {
        " LIVE"
    } else {
        ""
    };
    let tag = app.viewing.map_or(String::new(), |v| format!(" {v}"));
    let title = format!(" Histogram {layer} ({scale}){live}{tag} ");
    let b = block(&t, title, app.tab == Tab::Histogram);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let Some(view) = view else {
        let why = if app.session.layers.is_empty() {
            "nothing calibrated yet"
        } else {
            if app.rows.is_empty() {
                "no layer selected"
            } else {
                "not collected yet: stage 1 calibrates"
            }
        };
        frame.render_widget(Paragraph::new(Span::styled(why, t.dim())), inner);
        return;
    };
    if inner.height < 4 || inner.width < 16 {
        return;
    }
    let h = view.hist;
    let summary = act
        .as_deref()
        .and_then(|a| model::summary_of(&app.session, app.viewing, a));
    let chosen = summary.map(|s| (s.lo, s.hi));
    let candidates = act
        .as_deref()
        .and_then(|a| candidate_range(&app.session, app.viewing, a));
    let w = inner.width as usize;
    let total = h.finite_count() + h.nan + h.inf;
    // info line: when it does not fit, its least needed parts go whole (never cut)
    let dot = t.glyph(Glyph::Dot);
    let mut parts: Vec<(u8, String)> = vec![
        (2, format!("{} batches", view.batch_count)),
        (1, format!("{} values", count(total))),
    ];
    if let Some((lo, hi)) = chosen {
        let clipped = clipped_mass(h, lo, hi) * 100.0;
        parts.push((4, format!("clip [{}, {}]", fmt_short(lo), fmt_short(hi))));
        parts.push((3, format!("clipped {clipped:.3}%")));
    }
    let zeros = if total > 0 {
        h.zero as f64 / total as f64 * 100.0
    } else {
        0.0
    };
    parts.push((0, format!("zeros {zeros:.1}%")));
    let info = fit_parts(parts, &format!(" {dot} "), w);
    let bars_h = inner.height as usize - 3;
    let buf = frame.buffer_mut();
    buf.set_line(
        inner.x,
        inner.y,
        &Line::from(Span::raw(fit(&info, w, &t))),
        inner.width,
    );
    // bars
    let cols = column_sums(h, w);
    let max = cols.iter().copied().max().unwrap_or(0).max(1) as f64;
    let scale = |v: u64| {
        if app.log_scale {
            (v as f64).ln_1p() / max.ln_1p()
        } else {
            v as f64 / max
        }
    };
    let x_of = |c: usize| h.lo + (c as f64 + 0.5) / w as f64 * (h.hi - h.lo);
    let col_of = |x: f64| -> usize {
        let span = h.hi - h.lo;
        if span <= 0.0 {
            return 0;
        }
        (((x - h.lo) / span * w as f64).floor().max(0.0) as usize).min(w - 1)
    };
    for (c, &v) in cols.iter().enumerate() {
        let level = (scale(v) * (bars_h * 8) as f64).round() as usize;
        let level = if v > 0 { level.max(1) } else { 0 };
        let inside = chosen.is_none_or(|(lo, hi)| (lo..=hi).contains(&x_of(c)));
        let style = if inside { t.accent() } else { t.bad() };
        for r in 0..bars_h {
            let e = level.saturating_sub(r * 8).min(8);
            if e == 0 {
                break;
            }
            let y = inner.y + 1 + (bars_h - 1 - r) as u16;
            if let Some(cell) = buf.cell_mut((inner.x + c as u16, y)) {
                cell.set_symbol(t.vblock(e)).set_style(style);
            }
        }
    }
    // marker row: candidates as dots, the chosen range as [───]
    let my = inner.y + 1 + bars_h as u16;
    let mut marks: Vec<(&str, Style)> = vec![(" ", Style::new()); w];
    if let Some((lo, hi)) = candidates {
        for m in marks.iter_mut().take(col_of(hi) + 1).skip(col_of(lo)) {
            *m = (t.glyph(Glyph::Dot), t.dim());
        }
    }
    if let Some((lo, hi)) = chosen {
        let (a, b) = (col_of(lo), col_of(hi));
        for m in marks.iter_mut().take(b + 1).skip(a) {
            *m = (t.glyph(Glyph::HLine), t.good());
        }
        marks[a] = ("[", t.good());
        marks[b] = ("]", t.good());
    }
    for (c, (sym, style)) in marks.iter().enumerate() {
        if let Some(cell) = buf.cell_mut((inner.x + c as u16, my)) {
            cell.set_symbol(sym).set_style(*style);
        }
    }
    // axis labels
    let left = fmt_short(h.lo);
    let right = fmt_short(h.hi);
    let mut axis = vec![' '; w];
    for (i, ch) in left.chars().enumerate().take(w) {
        axis[i] = ch;
    }
    let zc = col_of(0.0);
    if h.lo < 0.0 && zc > left.len() + 1 && zc + 2 < w.saturating_sub(right.len()) {
        axis[zc] = '0';
    }
    let rs = w.saturating_sub(right.chars().count());
    for (i, ch) in right.chars().enumerate() {
        if rs + i < w {
            axis[rs + i] = ch;
        }
    }
    let legend = match (chosen, candidates) {
        (Some(_), Some(_)) => format!("  [] chosen  {} candidates", t.glyph(Glyph::Dot)),
        (Some(_), None) => "  [] chosen".into(),
        _ => String::new(),
    };
    let mid: String = axis.iter().collect();
    let mid = overlay_center(&mid, &legend, left.len() + 1, rs);
    buf.set_line(
        inner.x,
        my + 1,
        &Line::from(Span::styled(mid, t.dim())),
        inner.width,
    );
}

/// Puts `text` into the gap `[from, to)` of `line` when it fits.
fn overlay_center(line: &str, text: &str, from: usize, to: usize) -> String {
    let mut chars: Vec<char> = line.chars().collect();
    let n = text.chars().count();
    let zero = chars
        .iter()
        .position(|c| *c == '0')
        .filter(|&z| z > from && z < to);
    let start = match zero {
        Some(z) if z + 2 + n < to => z + 2,
        Some(_) => return line.to_string(),
        None if from + n < to => from + (to - from - n) / 2,
        None => return line.to_string(),
    };
    for (i, ch) in text.chars().enumerate() {
        chars[start + i] = ch;
    }
    chars.into_iter().collect()
}

/// The span of the searched candidate ranges: from the kept curves, else from the
/// chosen ratio and the setting's ratio range.
pub fn candidate_range(
    s: &crate::session::Session,
    viewing: Option<crate::session::EvalId>,
    act: &str,
) -> Option<(f64, f64)> {
    if let Some(c) = model::curves_of(s, viewing, act) {
        let lo = c.ranges.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let hi = c
            .ranges
            .iter()
            .map(|r| r.1)
            .fold(f64::NEG_INFINITY, f64::max);
        return (lo.is_finite() && hi.is_finite()).then_some((lo, hi));
    }
    let i = model::setting_in_view(s, viewing)?;
    let rec = s.setting(i)?;
    let sum = rec.activations.get(act)?;
    let r = sum.ratio.filter(|r| *r > 0.0)?;
    let (st, en) = (rec.setting.start_ratio, rec.setting.end_ratio);
    let (blo, bhi) = (sum.lo / r, sum.hi / r);
    Some(((blo * st).min(blo * en), (bhi * st).max(bhi * en)))
}

/// The fraction of the finite values outside `[lo, hi]` (a bin counts by its centre).
/// `parts` (priority, text) joined by `sep` in their order, dropping the lowest priority
/// first until the line fits `w` (the last one left may still be cut by the caller).
pub fn fit_parts(mut parts: Vec<(u8, String)>, sep: &str, w: usize) -> String {
    loop {
        let line = parts
            .iter()
            .map(|(_, p)| p.as_str())
            .collect::<Vec<_>>()
            .join(sep);
        if line.chars().count() <= w || parts.len() <= 1 {
            return line;
        }
        let Some(low) = parts
            .iter()
            .enumerate()
            .min_by_key(|(_, (p, _))| *p)
            .map(|(i, _)| i)
        else {
            return line;
        };
        parts.remove(low);
    }
}

pub fn clipped_mass(h: &DisplayHistogram, lo: f64, hi: f64) -> f64 {
    let total = h.finite_count();
    if total == 0 {
        return 0.0;
    }
    let w = h.bin_width();
    let out: u64 = h
        .counts
        .iter()
        .enumerate()
        .filter(|(b, _)| {
            let x = h.lo + (*b as f64 + 0.5) * w;
            x < lo || x > hi
        })
        .map(|(_, c)| c)
        .sum();
    out as f64 / total as f64
}

/// The counts summed into `w` columns.
fn column_sums(h: &DisplayHistogram, w: usize) -> Vec<u64> {
    let n = h.counts.len();
    (0..w)
        .map(|c| {
            let a = c * n / w;
            let b = ((c + 1) * n / w).max(a + 1).min(n);
            h.counts[a.min(n - 1)..b].iter().sum()
        })
        .collect()
}

/// 1234567 → 1.2M.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_mass_counts_bins_outside() {
        let h = DisplayHistogram {
            lo: 0.0,
            hi: 4.0,
            counts: vec![10, 10, 10, 10],
            zero: 0,
            nan: 0,
            inf: 0,
        };
        assert_eq!(clipped_mass(&h, 0.0, 4.0), 0.0);
        assert_eq!(clipped_mass(&h, 0.0, 3.0), 0.25);
        assert_eq!(column_sums(&h, 2), vec![20, 20]);
        assert_eq!(column_sums(&h, 8).iter().sum::<u64>(), 80);
    }
}
