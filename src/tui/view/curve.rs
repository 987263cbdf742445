//! The selected layer's divergence curve: divergence against ratio for the configured type
//! (`d` adds the other two), the minimum and the chosen ratio marked.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::block;
use super::plot::Plot;
use crate::calib::DivergenceType;
use crate::tui::app::{App, Tab};
use crate::tui::model::{self, fmt_short};
use crate::tui::theme::{Glyph, fit};

const YLABEL: usize = 9;

pub fn render(frame: &mut Frame, area: Rect, app: &mut App) {
    let t = app.theme;
    let s = &app.session;
    let row = app.selected_row();
    let layer = row.map_or("-".to_string(), |r| r.name.clone());
    let setting = model::setting_in_view(s, app.viewing);
    let kind = setting
        .and_then(|i| s.setting(i))
        .map_or(DivergenceType::Kl, |r| r.setting.divergence);
    let shown: Vec<DivergenceType> = if app.all_curves {
        DivergenceType::ALL.to_vec()
    } else {
        vec![kind]
    };
    let names: Vec<&str> = shown.iter().map(|k| k.as_str()).collect();
    let tag = app.viewing.map_or(String::new(), |v| format!(" {v}"));
    let title = format!(" Divergence {layer} ({}){tag} ", names.join(", "));
    let b = block(&t, title, app.tab == Tab::Curve);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let say = |frame: &mut Frame, text: String| {
        frame.render_widget(
            Paragraph::new(Span::styled(text, t.dim())).wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
    };
    let Some(si) = setting else {
        let why = if app.viewing.is_some() {
            "FP16 fallback: nothing quantized, no curve"
        } else {
            "not calibrated yet"
        };
        return say(frame, why.into());
    };
    let act = row.and_then(|r| r.activation.clone());
    let Some(curves) = act
        .as_deref()
        .and_then(|a| model::curves_of(s, app.viewing, a))
    else {
        let adopt = if app.review || app.viewing.is_none() {
            ""
        } else {
            " (a adopts this result and computes them)"
        };
        return say(
            frame,
            format!(
                "no divergence curves kept for {si} ({}): curves are kept for the \
                 settings a stage selects or the user applies{adopt}",
                s.setting(si).map(|r| r.setting.label()).unwrap_or_default()
            ),
        );
    };
    if curves.ratios.len() < 2 || inner.height < 4 || inner.width < (YLABEL + 10) as u16 {
        return say(frame, "curve too short to draw".into());
    }
    let chosen = curves.chosen(kind);
    let summary = act
        .as_deref()
        .and_then(|a| model::summary_of(s, app.viewing, a));
    let info = format!(
        "min {}={} at r={:.2} {} chosen r={}{}",
        kind.as_str(),
        fmt_short(curves.curve(kind)[chosen]),
        curves.ratios[chosen],
        t.glyph(Glyph::Dot),
        summary
            .and_then(|x| x.ratio)
            .map_or("-".into(), |r| format!("{r:.2}")),
        if summary.is_some_and(|x| x.boundary_hit) {
            " (at the boundary: widen the ratios)"
        } else {
            ""
        }
    );
    let w = inner.width as usize;
    let plot_w = w - YLABEL;
    let plot_h = inner.height as usize - 2;
    // y range over the finite values of the shown curves
    let (mut ymin, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY);
    for k in &shown {
        for &v in curves.curve(*k).iter().filter(|v| v.is_finite()) {
            ymin = ymin.min(v);
            ymax = ymax.max(v);
        }
    }
    if !ymin.is_finite() {
        return say(frame, "every candidate diverged (infinite)".into());
    }
    if ymax <= ymin {
        ymax = ymin + 1e-12;
    }
    let (r0, r1) = (curves.ratios[0], curves.ratios[curves.ratios.len() - 1]);
    let xr = |r: f64| if r1 > r0 { (r - r0) / (r1 - r0) } else { 0.5 };
    let mut plot = Plot::new(plot_w, plot_h, &t);
    let mut styles = Vec::new();
    for (si, k) in shown.iter().enumerate() {
        let pts: Vec<(f64, f64)> = curves
            .ratios
            .iter()
            .zip(curves.curve(*k))
            .map(|(&r, &v)| (xr(r), (v - ymin) / (ymax - ymin)))
            .collect();
        plot.line(&pts, si as u8);
        styles.push(t.series(DivergenceType::ALL.iter().position(|x| x == k).unwrap_or(0)));
    }
    let px = inner.x + YLABEL as u16;
    let py = inner.y + 1;
    let buf = frame.buffer_mut();
    buf.set_line(
        inner.x,
        inner.y,
        &Line::from(fit(&info, w, &t)),
        inner.width,
    );
    // the minimum's column, behind the curves
    let mc = ((xr(curves.ratios[chosen]) * (plot_w - 1) as f64).round() as usize).min(plot_w - 1);
    for cy in 0..plot_h {
        if plot.is_empty(mc, cy)
            && let Some(cell) = buf.cell_mut((px + mc as u16, py + cy as u16))
        {
            cell.set_symbol(t.glyph(Glyph::VLine)).set_style(t.good());
        }
    }
    plot.render(
        buf,
        ratatui::layout::Rect::new(px, py, plot_w as u16, plot_h as u16),
        &styles,
    );
    // y labels
    let top = format!("{:>8} ", fmt_short(ymax));
    let bottom = format!("{:>8} ", fmt_short(ymin));
    buf.set_string(inner.x, py, fit(&top, YLABEL, &t), t.dim());
    buf.set_string(
        inner.x,
        py + plot_h as u16 - 1,
        fit(&bottom, YLABEL, &t),
        t.dim(),
    );
    // x labels: the ends, and the minimum
    let xl = py + plot_h as u16;
    let mut axis = vec![' '; plot_w];
    let put = |axis: &mut Vec<char>, at: usize, s: &str| {
        let n = s.chars().count();
        let start = at.min(plot_w.saturating_sub(n));
        for (i, ch) in s.chars().enumerate() {
            axis[start + i] = ch;
        }
    };
    put(&mut axis, 0, &format!("{r0:.2}"));
    put(&mut axis, plot_w, &format!("{r1:.2}"));
    let m = format!("^{:.2}", curves.ratios[chosen]);
    if mc > 6 && mc + m.len() + 6 < plot_w {
        put(&mut axis, mc, &m);
    }
    let axis: String = axis.into_iter().collect();
    buf.set_string(inner.x, xl, format!("{:>8} ", "ratio"), t.dim());
    buf.set_string(px, xl, axis, t.dim());
    if app.all_curves {
        let mut x = px + plot_w as u16;
        for (i, k) in shown.iter().enumerate().rev() {
            let name = format!(" {}", k.as_str());
            x = x.saturating_sub(name.len() as u16);
            buf.set_string(x, inner.y, &name, styles[i]);
        }
    }
}
