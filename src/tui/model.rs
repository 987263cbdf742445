//! What the panels show, derived from a session: the layer rows, the setting and the
//! evaluation in view, the histogram of an activation. Pure functions of the data.

use std::collections::{BTreeMap, HashMap};

use crate::calib::{AllCurves, DisplayHistogram};
use crate::session::{
    ActivationSummary, EvalId, Evaluation, Session, SettingId, StageId, StageState,
};

/// How the layer list is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    Graph,
    /// Most sensitive first (stage 7's ranking); unranked layers last.
    Sensitivity,
    /// Worst fidelity (lowest SQNR) first.
    Fidelity,
}

impl Sort {
    pub fn next(self) -> Sort {
        match self {
            Sort::Graph => Sort::Sensitivity,
            Sort::Sensitivity => Sort::Fidelity,
            Sort::Fidelity => Sort::Graph,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Sort::Graph => "graph order",
            Sort::Sensitivity => "sensitivity",
            Sort::Fidelity => "fidelity",
        }
    }
}

/// One row of the layer list.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    /// Position in graph order.
    pub index: usize,
    pub name: String,
    pub op_type: String,
    pub activation: Option<String>,
    /// The chosen ratio of its (first) activation under the setting in view.
    pub ratio: Option<f64>,
    /// The search chose its first or last candidate.
    pub boundary: bool,
    pub cosine: Option<f64>,
    pub sqnr: Option<f64>,
    /// 1 = most sensitive.
    pub rank: Option<usize>,
    pub excluded: bool,
}

/// The setting in view: the viewed evaluation's when one is viewed (`None` for the FP16
/// fallback, which quantizes nothing), else the current one, else the best evaluation's,
/// else the last tried.
pub fn setting_in_view(s: &Session, viewing: Option<EvalId>) -> Option<SettingId> {
    if let Some(e) = viewing.and_then(|i| s.evaluation(i)) {
        return e.setting.filter(|&i| s.setting(i).is_some());
    }
    s.current
        .setting
        .filter(|&i| s.setting(i).is_some())
        .or_else(|| {
            evaluation_in_view(s, None)
                .and_then(|i| s.evaluation(i))
                .and_then(|e| e.setting)
        })
        .or_else(|| s.settings().next_back().map(|(i, _)| i))
}

/// The evaluation in view: the viewed one (when it exists), else the current state's,
/// else the best so far.
pub fn evaluation_in_view(s: &Session, viewing: Option<EvalId>) -> Option<EvalId> {
    viewing
        .filter(|&i| s.evaluation(i).is_some())
        .or(s.current.evaluation.filter(|&i| s.evaluation(i).is_some()))
        .or_else(|| s.best_evaluation())
}

/// The blacklist in view: the viewed evaluation's, else the current one.
pub fn exclude_in_view(s: &Session, viewing: Option<EvalId>) -> &[String] {
    viewing
        .and_then(|i| s.evaluation(i))
        .map_or(s.current.exclude.as_slice(), |e| e.exclude.as_slice())
}

/// What an evaluation was, in a few words: `stage 5 best`, `stage 7 ranked`,
/// `exclude Conv_3`, `probe Conv_3`, else its stage.
pub fn eval_label(s: &Session, id: EvalId) -> String {
    let Some(e) = s.evaluation(id) else {
        return "not in the session".into();
    };
    let ex = s.stage(StageId::Exclude);
    if let Some(x) = ex.searches.iter().find(|x| x.result == Some(id)) {
        return format!("stage 7 {}", strategy_word(&x.strategy));
    }
    if s.stage(e.stage).best == Some(id) {
        return format!("stage {} best", e.stage.step());
    }
    match e.origin {
        crate::session::Origin::Probe => {
            format!("probe {}", e.exclude.last().map_or("-", String::as_str))
        }
        crate::session::Origin::User => match toggle_of(s, id) {
            Some((layer, true)) => format!("exclude {layer}"),
            Some((layer, false)) => format!("include {layer}"),
            None => format!("user, {} excluded", e.exclude.len()),
        },
        crate::session::Origin::Flow => format!("stage {}", e.stage.step()),
    }
}

/// An evaluation in one short line: `#3 (stage 5 best, top1 0.9533, 2 excl)`.
pub fn short_describe(s: &Session, id: EvalId) -> String {
    match s.evaluation(id) {
        Some(e) => format!(
            "{id} ({}, {} {}, {} excl)",
            eval_label(s, id),
            s.metric.as_str(),
            fmt_metric(e.metric()),
            e.exclude.len()
        ),
        None => format!("{id} (not in the session)"),
    }
}

/// A strategy's name as read (`layer_by_layer` → `layer-by-layer`).
pub fn strategy_word(s: &str) -> String {
    s.replace('_', "-")
}

/// The layer a user evaluation toggled: against the latest earlier evaluation of the
/// same setting and precision whose blacklist differs by one layer; (layer, excluded).
pub fn toggle_of(s: &Session, id: EvalId) -> Option<(String, bool)> {
    let e = s.evaluation(id)?;
    s.evaluations()
        .rev()
        .skip_while(|(i, _)| *i >= id)
        .find_map(|(_, p)| one_toggle(p, e))
}

/// The one layer `e` toggled against `p` — same setting and precision, blacklists that
/// differ by exactly one layer: (layer, excluded by `e`).
pub fn one_toggle(p: &Evaluation, e: &Evaluation) -> Option<(String, bool)> {
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
        ([a], []) => Some(((*a).clone(), true)),
        ([], [r]) => Some(((*r).clone(), false)),
        _ => None,
    }
}

/// The results a stage offers to view: its best, then (stage 7) each search's blacklist;
/// without repeats.
pub fn stage_results(s: &Session, stage: StageId) -> Vec<EvalId> {
    let r = s.stage(stage);
    let mut out: Vec<EvalId> = r.best.into_iter().collect();
    for x in &r.searches {
        if let Some(i) = x.result
            && !out.contains(&i)
        {
            out.push(i);
        }
    }
    out.retain(|&i| s.evaluation(i).is_some());
    out
}

/// Stage 7's ranked search: layer → rank (1 = most sensitive).
pub fn ranking(s: &Session) -> HashMap<&str, usize> {
    s.stages
        .iter()
        .filter(|r| r.stage == StageId::Exclude)
        .flat_map(|r| r.searches.iter())
        .rfind(|x| !x.ranking.is_empty())
        .map(|x| {
            x.ranking
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.as_str(), i + 1))
                .collect()
        })
        .unwrap_or_default()
}

/// The rows for `filter` (a case-insensitive substring of the name; `:x` only excluded
/// layers, `:i` only included ones) in `sort` order, of the evaluation in view.
pub fn build_rows(s: &Session, viewing: Option<EvalId>, filter: &str, sort: Sort) -> Vec<LayerRow> {
    let setting = setting_in_view(s, viewing).and_then(|i| s.setting(i));
    let eval = evaluation_in_view(s, viewing).and_then(|i| s.evaluation(i));
    let exclude = exclude_in_view(s, viewing);
    let fidelity: HashMap<&str, (f64, f64)> = eval
        .map(|e| {
            e.report
                .layers
                .iter()
                .map(|l| (l.name.as_str(), (l.cosine, l.sqnr_db)))
                .collect()
        })
        .unwrap_or_default();
    let rank = ranking(s);
    let (needle, only) = super::bisect::parse_filter(filter);
    let mut rows: Vec<LayerRow> = s
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| needle.is_empty() || l.name.to_lowercase().contains(&needle))
        .map(|(index, l)| {
            let act = l.activations.first();
            let summary: Option<&ActivationSummary> =
                act.and_then(|a| setting.and_then(|st| st.activations.get(a)));
            let fid = fidelity.get(l.name.as_str()).copied();
            LayerRow {
                index,
                name: l.name.clone(),
                op_type: l.op_type.clone(),
                activation: act.cloned(),
                ratio: summary.and_then(|x| x.ratio),
                boundary: summary.is_some_and(|x| x.boundary_hit),
                cosine: fid.map(|f| f.0),
                sqnr: fid.map(|f| f.1),
                rank: rank.get(l.name.as_str()).copied(),
                excluded: exclude.contains(&l.name),
            }
        })
        .filter(|r: &LayerRow| only.is_none_or(|x| r.excluded == x))
        .collect();
    match sort {
        Sort::Graph => {}
        Sort::Sensitivity => rows.sort_by_key(|r| (r.rank.unwrap_or(usize::MAX), r.index)),
        Sort::Fidelity => rows.sort_by(|a, b| {
            let ka = a.sqnr.unwrap_or(f64::INFINITY);
            let kb = b.sqnr.unwrap_or(f64::INFINITY);
            ka.total_cmp(&kb).then(a.index.cmp(&b.index))
        }),
    }
    rows
}

/// A histogram to draw and where it came from.
pub struct HistogramView<'a> {
    pub batch_count: usize,
    pub hist: &'a DisplayHistogram,
    /// Still being collected.
    pub live: bool,
}

/// The histogram of `activation`: the live one while calibrating, else the saved one for
/// the batch count of the setting in view (else the largest collected).
pub fn histogram_of<'a>(
    s: &'a Session,
    viewing: Option<EvalId>,
    live: Option<&'a (usize, BTreeMap<String, DisplayHistogram>)>,
    activation: &str,
) -> Option<HistogramView<'a>> {
    if let Some((n, map)) = live.filter(|_| viewing.is_none())
        && let Some(h) = map.get(activation)
    {
        return Some(HistogramView {
            batch_count: *n,
            hist: h,
            live: true,
        });
    }
    let want = setting_in_view(s, viewing)
        .and_then(|i| s.setting(i))
        .map(|r| r.setting.batch_count);
    let pick = want
        .and_then(|n| s.histograms.get_key_value(&n))
        .or_else(|| s.histograms.iter().next_back());
    let (n, map) = pick?;
    map.get(activation).map(|h| HistogramView {
        batch_count: *n,
        hist: h,
        live: false,
    })
}

/// The calibrated range of `activation` under the setting in view.
pub fn summary_of<'a>(
    s: &'a Session,
    viewing: Option<EvalId>,
    activation: &str,
) -> Option<&'a ActivationSummary> {
    setting_in_view(s, viewing)
        .and_then(|i| s.setting(i))
        .and_then(|r| r.activations.get(activation))
}

/// The divergence curves of `activation` under the setting in view.
pub fn curves_of<'a>(
    s: &'a Session,
    viewing: Option<EvalId>,
    activation: &str,
) -> Option<&'a AllCurves> {
    setting_in_view(s, viewing)
        .and_then(|i| s.setting(i))
        .and_then(|r| r.curves.get(activation))
}

/// The stage's best evaluation.
pub fn stage_best(s: &Session, stage: StageId) -> Option<&Evaluation> {
    s.stage_best(stage).map(|(_, e)| e)
}

/// The stage's state (Pending when the session has no record of it).
pub fn stage_state(s: &Session, stage: StageId) -> StageState {
    s.stages
        .iter()
        .find(|r| r.stage == stage)
        .map_or(StageState::Pending, |r| r.state)
}

/// A metric as printed (4 decimals; SQNR-like metrics 2).
pub fn fmt_metric(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.4}")
    }
}

/// A signed delta.
pub fn fmt_delta(x: f64) -> String {
    // no "-0.0000": what rounds to zero prints as +0.0000
    let x = if x.abs() < 5e-5 { 0.0 } else { x };
    if x.abs() >= 100.0 {
        format!("{x:+.1}")
    } else {
        format!("{x:+.4}")
    }
}

/// A number in 4 significant digits (axis labels).
pub fn fmt_short(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        format!("{x:.2e}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    }
}

/// An ETA as a clock: `0:45`, `12:03`, `1:02:03`.
pub fn fmt_clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A duration in seconds as `1m23s` / `45s` / `2h05m`.
pub fn fmt_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A session with nothing in it yet, shown until the worker has loaded the model.
pub fn placeholder(
    model: String,
    config_file: Option<String>,
    config: crate::config::RawConfig,
) -> Session {
    use crate::session::SessionInit;
    let eval = config.evaluation.as_ref();
    let metric = eval
        .and_then(|e| e.metric)
        .unwrap_or(crate::config::Metric::Top1);
    let max_drop = eval.and_then(|e| e.max_drop).unwrap_or(0.0);
    let min_value = eval.and_then(|e| e.min_value);
    let float_precision = config
        .float_precision
        .unwrap_or(crate::config::FloatPrecision::Fp32);
    Session::new(SessionInit {
        model,
        model_sha256: String::new(),
        config_file,
        config,
        metric,
        max_drop,
        min_value,
        eval_samples: 0,
        fp32_metric: None,
        float_precision,
        degradations: Vec::new(),
        sample_shapes: Vec::new(),
        layers: Vec::new(),
        exclude: Vec::new(),
    })
}
