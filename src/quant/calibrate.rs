//! Calibration: stream the activations that feed quantized layers through per-tensor
//! histograms over the calibration samples (one pass, parallel, memory independent of
//! the number of samples), then search each tensor's range (CALIBRATION.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::calib::{
    ActivationParams, CalibError, Collector, DISPLAY_BINS, DisplayHistogram, SearchParams,
    TensorModel, WeightQuant, WeightType, calibrate_model, calibrate_model_all_types, weight_quant,
};
use crate::data::dataset::Dataset;
use crate::engine::Plan;
use crate::ir::{Graph, Tensor, ValueId};

use super::QuantError;
use super::layers::LayerRef;
use super::plan::QuantPlan;

/// Histograms of the activation tensors, by value name.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub collectors: BTreeMap<String, Collector>,
    /// Calibration samples consumed.
    pub samples: usize,
}

/// Reports progress: samples done so far.
pub type Progress<'a> = &'a (dyn Fn(usize) + Sync);

/// Runs `plan` on the first `count` samples of `data` and collects a histogram of every
/// value in `targets`. Uses exactly one collector set per worker thread, so memory does not
/// grow with `count`. `cancel` stops early (the samples done so far are kept).
pub fn collect(
    plan: &Plan,
    graph: &Graph,
    data: &Dataset,
    targets: &[ValueId],
    count: usize,
    progress: Progress,
    cancel: &AtomicBool,
) -> Result<Stats, QuantError> {
    collect_range(plan, graph, data, targets, 0..count, progress, cancel)
}

/// [`collect`] over the samples `range` (clamped to the data). Collections of adjacent
/// ranges merge ([`Stats::merge`]) into the collection of their union.
pub fn collect_range(
    plan: &Plan,
    graph: &Graph,
    data: &Dataset,
    targets: &[ValueId],
    range: std::ops::Range<usize>,
    progress: Progress,
    cancel: &AtomicBool,
) -> Result<Stats, QuantError> {
    let first = range.start.min(data.len());
    let count = range.end.min(data.len()).saturating_sub(first);
    let is_target: HashMap<ValueId, usize> =
        targets.iter().enumerate().map(|(i, v)| (*v, i)).collect();
    let input_targets: Vec<(usize, usize)> = plan
        .inputs()
        .iter()
        .enumerate()
        .filter_map(|(k, s)| is_target.get(&s.id).map(|&t| (k, t)))
        .collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().min(count.max(1));
    type Partial = (Vec<Collector>, usize, Vec<Option<usize>>);
    let partials: Vec<Result<Partial, QuantError>> = (0..workers)
        .into_par_iter()
        .map(|_| {
            let mut cols: Vec<Collector> = targets.iter().map(|_| Collector::new()).collect();
            // Per target: the first sample (by index) in which it held NaN or ±Inf.
            let mut first_bad: Vec<Option<usize>> = vec![None; targets.len()];
            let mut n = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || cancel.load(Ordering::Relaxed) {
                    break;
                }
                let i = first + i;
                let inputs = data
                    .load(i)
                    .map_err(|e| QuantError::Invalid(e.to_string()))?;
                let mut observe = |t: usize, value: &Tensor, cols: &mut Vec<Collector>| {
                    let before = nonfinite(&cols[t]);
                    update(&mut cols[t], value);
                    if nonfinite(&cols[t]) > before {
                        first_bad[t] = Some(first_bad[t].map_or(i, |f| f.min(i)));
                    }
                };
                for &(k, t) in &input_targets {
                    observe(t, &inputs[k], &mut cols);
                }
                plan.run_observed(inputs, &mut |v, t| {
                    if let Some(&idx) = is_target.get(&v) {
                        observe(idx, t, &mut cols);
                    }
                })
                .map_err(|e| {
                    QuantError::Invalid(format!("calibration sample {}: {e}", data.sample_name(i)))
                })?;
                n += 1;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            }
            Ok((cols, n, first_bad))
        })
        .collect();
    let mut merged: Vec<Collector> = targets.iter().map(|_| Collector::new()).collect();
    let mut first_bad: Vec<Option<usize>> = vec![None; targets.len()];
    let mut samples = 0;
    for p in partials {
        let (cols, n, bad) = p?;
        for (m, c) in merged.iter_mut().zip(&cols) {
            m.merge(c).map_err(|e| QuantError::Invalid(e.to_string()))?;
        }
        for (f, b) in first_bad.iter_mut().zip(bad) {
            *f = match (*f, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
        samples += n;
    }
    check_finite(graph, data, targets, &merged, &first_bad)?;
    let collectors = targets
        .iter()
        .zip(merged)
        .map(|(v, c)| (graph.value_name(*v).to_string(), c))
        .collect();
    Ok(Stats {
        collectors,
        samples,
    })
}

impl Stats {
    /// Adds the statistics of other samples (a collection of another range).
    pub fn merge(&mut self, other: &Stats) -> Result<(), QuantError> {
        for (name, c) in &other.collectors {
            match self.collectors.get_mut(name) {
                Some(mine) => mine
                    .merge(c)
                    .map_err(|e| QuantError::Invalid(e.to_string()))?,
                None => {
                    self.collectors.insert(name.clone(), c.clone());
                }
            }
        }
        self.samples += other.samples;
        Ok(())
    }

    /// Display histograms of every collected tensor.
    pub fn histograms(&self) -> BTreeMap<String, DisplayHistogram> {
        self.collectors
            .iter()
            .map(|(n, c)| (n.clone(), DisplayHistogram::from_collector(c, DISPLAY_BINS)))
            .collect()
    }
}

fn nonfinite(c: &Collector) -> u64 {
    c.nan_count() + c.inf_count()
}

/// Fails on the first activation (in graph order) holding more NaN/±Inf values than the
/// data allows (`max_nonfinite`), naming it, its counts and the first sample that had them.
fn check_finite(
    graph: &Graph,
    data: &Dataset,
    targets: &[ValueId],
    cols: &[Collector],
    first_bad: &[Option<usize>],
) -> Result<(), QuantError> {
    for ((v, c), first) in targets.iter().zip(cols).zip(first_bad) {
        if nonfinite(c) <= data.nonfinite_limit {
            continue;
        }
        let sample = first.map(|i| data.sample_name(i)).unwrap_or_default();
        return Err(QuantError::Invalid(format!(
            "calibration: activation `{}` holds {} NaN and {} ±Inf values (max_nonfinite: {}); the first came with sample {}: check the data, or raise max_nonfinite to calibrate on the finite values alone",
            crate::util::text::escape_control(graph.value_name(*v)),
            c.nan_count(),
            c.inf_count(),
            data.nonfinite_limit,
            sample
        )));
    }
    Ok(())
}

fn update(c: &mut Collector, t: &Tensor) {
    if let Some(a) = t.as_f32() {
        match a.as_slice() {
            Some(s) => c.update(s),
            None => c.update(&a.iter().copied().collect::<Vec<_>>()),
        }
    }
}

/// Builds the quantization plan from collected statistics: a range search per activation
/// (in parallel) and weight scales per layer.
pub fn build_plan(
    graph: &Graph,
    layers: &[LayerRef],
    stats: &Stats,
    search: &SearchParams,
    weight_type: WeightType,
) -> Result<QuantPlan, QuantError> {
    let weights = quantize_layer_weights(graph, layers, weight_type)?;
    PlanBuilder::new(stats).build(layers, search, weight_type, &weights)
}

/// Per activation: its parameters for each divergence type, or why it stays float.
pub type AllTypes = Vec<(String, Result<[ActivationParams; 3], CalibError>)>;

/// Builds plans for many search settings from one collection: the per-tensor models the
/// searches run on are made once.
pub struct PlanBuilder {
    models: BTreeMap<String, TensorModel>,
    histograms: BTreeMap<String, DisplayHistogram>,
}

impl PlanBuilder {
    pub fn new(stats: &Stats) -> PlanBuilder {
        PlanBuilder {
            models: stats
                .collectors
                .par_iter()
                .map(|(n, c)| (n.clone(), TensorModel::new(c)))
                .collect(),
            histograms: stats.histograms(),
        }
    }

    /// The plan for `search` and `weight_type`, with weights quantized beforehand by
    /// [`quantize_layer_weights`] (they depend on `weight_type` only).
    pub fn build(
        &self,
        layers: &[LayerRef],
        search: &SearchParams,
        weight_type: WeightType,
        weights: &BTreeMap<String, WeightQuant>,
    ) -> Result<QuantPlan, QuantError> {
        let results = self
            .models
            .par_iter()
            .map(|(name, m)| (name.clone(), calibrate_model(m, search)))
            .collect();
        self.assemble(layers, search, weight_type, weights, results)
    }

    /// Every activation calibrated for all three divergence types of
    /// [`crate::calib::DivergenceType::ALL`] at once (`search.divergence` is ignored); pick
    /// one with [`PlanBuilder::assemble`].
    pub fn search_all_types(&self, search: &SearchParams) -> AllTypes {
        self.models
            .par_iter()
            .map(|(name, m)| (name.clone(), calibrate_model_all_types(m, search)))
            .collect()
    }

    /// A plan from calibration results (one per activation).
    pub fn assemble(
        &self,
        layers: &[LayerRef],
        search: &SearchParams,
        weight_type: WeightType,
        weights: &BTreeMap<String, WeightQuant>,
        results: Vec<(String, Result<ActivationParams, CalibError>)>,
    ) -> Result<QuantPlan, QuantError> {
        let mut activations = BTreeMap::new();
        let mut uncalibrated = BTreeMap::new();
        for (name, r) in results {
            match r {
                Ok(p) => {
                    activations.insert(name, p);
                }
                Err(CalibError::InvalidParam {
                    key,
                    value,
                    allowed,
                }) => {
                    return Err(QuantError::Invalid(format!(
                        "invalid `{key}` = {value}: allowed {allowed}"
                    )));
                }
                Err(e) => {
                    uncalibrated.insert(name, e.to_string());
                }
            }
        }
        Ok(QuantPlan {
            algo: search.algo,
            weight_type,
            layers: layers.iter().map(|l| l.info.clone()).collect(),
            activations,
            weights: weights.clone(),
            uncalibrated,
            histograms: self.histograms.clone(),
        })
    }

    /// The tensor model of activation `name` (for divergence curves of every type).
    pub fn model(&self, name: &str) -> Option<&TensorModel> {
        self.models.get(name)
    }
}

/// The weight scales of every layer for `weight_type`.
pub fn quantize_layer_weights(
    graph: &Graph,
    layers: &[LayerRef],
    weight_type: WeightType,
) -> Result<BTreeMap<String, WeightQuant>, QuantError> {
    let mut weights = BTreeMap::new();
    for l in layers {
        let Some(w) = l.weight else { continue };
        let t = &graph.constants[&w];
        let a = t.as_f32().ok_or_else(|| QuantError::Weight {
            name: l.info.name.clone(),
            msg: "weight is not float32".into(),
        })?;
        let data: Vec<f32> = a.iter().copied().collect();
        let wq = weight_quant(&data, a.shape(), l.info.layout, weight_type).map_err(|e| {
            QuantError::Weight {
                name: graph.value_name(w).to_string(),
                msg: e.to_string(),
            }
        })?;
        weights.insert(l.info.name.clone(), wq);
    }
    Ok(weights)
}

/// The activation values to collect for `layers` (deduplicated, in first-use order).
pub fn activation_targets(layers: &[LayerRef]) -> Vec<ValueId> {
    let mut seen = Vec::new();
    for l in layers {
        for a in &l.activations {
            if !seen.contains(a) {
                seen.push(*a);
            }
        }
    }
    seen
}
