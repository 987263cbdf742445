//! Evaluation: run the FP32 model and a quantized variant over the evaluation set,
//! score both with the configured metric, and measure per-layer fidelity.

pub mod command;
pub mod estimate;
pub mod incremental;
pub mod metrics;
pub mod report;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::config::Metric;
use crate::engine::{Plan, PlanOptions};
use crate::error::{Error, Result};
use crate::ir::{Graph, Tensor, ValueId};
use crate::workspace::{EvalSet, Workspace};

pub use estimate::{Estimate, SampleScore};
pub use metrics::Moments;
pub use report::{EvalReport, LayerFidelity};

/// Progress callback: samples done so far.
pub type Progress<'a> = &'a (dyn Fn(usize) + Sync);

/// Evaluates quantized variants of a workspace's model. The FP32 outputs and metric are
/// computed once, at construction.
pub struct Evaluator<'w> {
    pub(crate) ws: &'w Workspace,
    pub(crate) set: &'w EvalSet,
    pub(crate) fp32_plan: Plan,
    pub(crate) fp32_outputs: Vec<Vec<Tensor>>,
    pub fp32_metric: f64,
}

impl<'w> Evaluator<'w> {
    /// Runs the FP32 model over the evaluation set.
    pub fn new(ws: &'w Workspace, progress: Progress) -> Result<Evaluator<'w>> {
        let set = ws
            .eval
            .as_ref()
            .ok_or_else(|| Error::Usage("the configuration has no `evaluation` section".into()))?;
        let fp32_plan = Plan::new(&ws.graph, &ws.sample_shapes)?;
        let done = AtomicUsize::new(0);
        let fp32_outputs = (0..set.data.len())
            .into_par_iter()
            .map(|i| {
                let out = fp32_plan.run(set.data.load(i)?)?;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut ev = Evaluator {
            ws,
            set,
            fp32_plan,
            fp32_outputs,
            fp32_metric: 0.0,
        };
        ev.fp32_metric = ev.score(&ev.fp32_outputs)?;
        Ok(ev)
    }

    pub fn samples(&self) -> usize {
        self.fp32_outputs.len()
    }

    /// Scores a run's outputs with the configured metric (metrics relative to FP32
    /// compare against the cached FP32 outputs).
    pub(crate) fn score(&self, outputs: &[Vec<Tensor>]) -> Result<f64> {
        let first = |o: &[Vec<Tensor>]| o.iter().map(|s| s[0].clone()).collect::<Vec<_>>();
        let cfg = &self.set.config;
        Ok(match cfg.metric {
            Metric::Top1 | Metric::Top5 => {
                let labels = self
                    .set
                    .labels
                    .as_ref()
                    .ok_or_else(|| Error::Usage("top1/top5 need evaluation.labels".into()))?;
                let k = if cfg.metric == Metric::Top1 { 1 } else { 5 };
                metrics::top_k(&first(outputs), labels, k)
            }
            Metric::Agreement => metrics::agreement(&first(&self.fp32_outputs), &first(outputs)),
            Metric::Cosine => metrics::moments(&flat(&self.fp32_outputs), &flat(outputs)).cosine(),
            Metric::Sqnr => metrics::moments(&flat(&self.fp32_outputs), &flat(outputs)).sqnr_db(),
            Metric::Iou => metrics::iou(
                &first(&self.fp32_outputs),
                &first(outputs),
                cfg.iou_threshold,
            ),
            Metric::Command => {
                let template = cfg.command.as_deref().unwrap_or_default();
                command::run_command(
                    template,
                    outputs,
                    cfg.labels.as_deref(),
                    cfg.command_timeout,
                )
                .map_err(Error::Usage)?
            }
        })
    }

    /// What evaluation sample `i`, with these `outputs`, contributes to the metric (see
    /// `estimate`); `None` for a `command` metric (scored only as a whole).
    pub fn sample_score(&self, i: usize, outputs: &[Tensor]) -> Option<SampleScore> {
        let cfg = &self.set.config;
        let fp32 = self.fp32_outputs.get(i)?;
        let first = |o: &[Tensor]| o.first().cloned();
        Some(match cfg.metric {
            Metric::Top1 | Metric::Top5 => {
                let k = if cfg.metric == Metric::Top1 { 1 } else { 5 };
                let label = *self.set.labels.as_ref()?.get(i)?;
                let hit = metrics::sample_top_k(&first(outputs)?, label, k);
                SampleScore::Value(f64::from(u8::from(hit)))
            }
            Metric::Agreement => {
                let same = metrics::sample_agrees(&first(fp32)?, &first(outputs)?);
                SampleScore::Value(f64::from(u8::from(same)))
            }
            Metric::Iou => SampleScore::Value(metrics::sample_iou(
                &first(fp32)?,
                &first(outputs)?,
                cfg.iou_threshold,
            )),
            Metric::Cosine | Metric::Sqnr => SampleScore::Moments(metrics::moments(fp32, outputs)),
            Metric::Command => return None,
        })
    }

    /// The report of an evaluation stopped after some samples: the metric is the running
    /// estimate, the target is never met (nothing estimated counts as final), and the
    /// output and per-layer fidelity cover the samples run (`totals`, like `report`).
    pub(crate) fn partial_report(
        &self,
        estimate: &Estimate,
        done: &[(usize, &[Tensor])],
        layer_values: &[(ValueId, ValueId)],
        totals: &[Moments],
        quantized: &dyn Fn(&str) -> bool,
        t0: Instant,
    ) -> EvalReport {
        let mut out_m = Moments::default();
        for (i, o) in done {
            if let Some(r) = self.fp32_outputs.get(*i) {
                out_m.merge(&metrics::moments(r, o));
            }
        }
        let outputs: Vec<Vec<Tensor>> = done.iter().map(|(_, o)| o.to_vec()).collect();
        let parts = ReportParts {
            int8: estimate.value,
            outputs: out_m,
            samples: done.len(),
            invalid: self.nonfinite(&outputs, layer_values, totals),
        };
        let mut r = self.report_of(parts, layer_values, totals, quantized, t0);
        r.target_met = false;
        r
    }

    /// Evaluates `graph` (a quantized variant of the workspace's prepared graph).
    /// `quantized` names the layers that are quantized in it; `fp16` emulates FP16 for
    /// everything left in float.
    pub fn evaluate(
        &self,
        graph: &Graph,
        quantized: &dyn Fn(&str) -> bool,
        fp16: bool,
        progress: Progress,
    ) -> Result<EvalReport> {
        Ok(self.evaluate_keeping(graph, quantized, fp16, progress)?.0)
    }

    /// `evaluate`, also returning the outputs of every sample (what was scored).
    pub fn evaluate_keeping(
        &self,
        graph: &Graph,
        quantized: &dyn Fn(&str) -> bool,
        fp16: bool,
        progress: Progress,
    ) -> Result<(EvalReport, Vec<Vec<Tensor>>)> {
        let t0 = Instant::now();
        let plan = Plan::with_options(
            graph,
            &self.ws.sample_shapes,
            PlanOptions {
                fp16,
                ..PlanOptions::default()
            },
        )?;
        let layer_values = self.layer_values(graph);
        let fp_index: HashMap<ValueId, usize> = layer_values
            .iter()
            .enumerate()
            .map(|(i, (f, _))| (*f, i))
            .collect();
        let q_index: HashMap<ValueId, usize> = layer_values
            .iter()
            .enumerate()
            .map(|(i, (_, q))| (*q, i))
            .collect();
        let done = AtomicUsize::new(0);
        let per_sample = (0..self.samples())
            .into_par_iter()
            .map(|i| {
                let inputs = self.set.data.load(i)?;
                let mut reference: Vec<Option<Tensor>> = vec![None; layer_values.len()];
                self.fp32_plan.run_observed(inputs.clone(), &mut |v, t| {
                    if let Some(&k) = fp_index.get(&v) {
                        reference[k] = Some(t.clone());
                    }
                })?;
                let mut moments = vec![Moments::default(); layer_values.len()];
                let out = plan.run_observed(inputs, &mut |v, t| {
                    if let (Some(&k), Some(a)) = (q_index.get(&v), t.as_f32()) {
                        if let Some(r) = reference[k].as_ref().and_then(|r| r.as_f32())
                            && let (Some(x), Some(y)) = (r.as_slice(), a.as_slice())
                        {
                            moments[k].add(x, y);
                        }
                        reference[k] = None;
                    }
                })?;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                Ok((out, moments))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut totals = vec![Moments::default(); layer_values.len()];
        let mut outputs = Vec::with_capacity(per_sample.len());
        for (out, m) in per_sample {
            totals.iter_mut().zip(&m).for_each(|(t, m)| t.merge(m));
            outputs.push(out);
        }
        let report = self.report(&outputs, &layer_values, &totals, quantized, t0)?;
        Ok((report, outputs))
    }

    /// Per layer of the workspace found in both graphs: its output value in the FP32
    /// graph and in `graph` (layer outputs keep their names in the quantized graph).
    pub(crate) fn layer_values(&self, graph: &Graph) -> Vec<(ValueId, ValueId)> {
        self.ws
            .layers
            .iter()
            .filter_map(|l| {
                let name = &l.info.output;
                Some((self.ws.graph.find_value(name)?, graph.find_value(name)?))
            })
            .collect()
    }

    /// The report of a run: `outputs` per sample, `totals` per entry of `layer_values`.
    pub(crate) fn report(
        &self,
        outputs: &[Vec<Tensor>],
        layer_values: &[(ValueId, ValueId)],
        totals: &[Moments],
        quantized: &dyn Fn(&str) -> bool,
        t0: Instant,
    ) -> Result<EvalReport> {
        let int8 = self.score(outputs)?;
        let out_m = metrics::moments(&flat(&self.fp32_outputs), &flat(outputs));
        let parts = ReportParts {
            int8,
            outputs: out_m,
            samples: outputs.len(),
            invalid: self.nonfinite(outputs, layer_values, totals),
        };
        Ok(self.report_of(parts, layer_values, totals, quantized, t0))
    }

    /// The report of a run from its metric, output moments and per-layer totals.
    fn report_of(
        &self,
        parts: ReportParts,
        layer_values: &[(ValueId, ValueId)],
        totals: &[Moments],
        quantized: &dyn Fn(&str) -> bool,
        t0: Instant,
    ) -> EvalReport {
        let ReportParts {
            int8,
            outputs: out_m,
            samples,
            invalid,
        } = parts;
        let names: HashMap<&str, &str> = self
            .ws
            .layers
            .iter()
            .map(|l| (l.info.output.as_str(), l.info.name.as_str()))
            .collect();
        let layers = layer_values
            .iter()
            .zip(totals)
            .filter_map(|((f, _), m)| {
                let name = *names.get(self.ws.graph.value_name(*f))?;
                let l = self.ws.layers.iter().find(|l| l.info.name == name)?;
                Some(LayerFidelity {
                    name: name.to_string(),
                    op_type: l.info.op_type.clone(),
                    cosine: m.cosine(),
                    sqnr_db: m.sqnr_db(),
                    quantized: quantized(name),
                })
            })
            .collect();
        let max_drop = self.set.config.max_drop;
        let threshold = self.set.config.threshold(self.fp32_metric);
        EvalReport {
            invalid: invalid.clone(),
            metric: self.set.config.metric,
            fp32: self.fp32_metric,
            int8,
            delta: int8 - self.fp32_metric,
            max_drop,
            // NaN compares false: a run with non-finite results never meets the target.
            target_met: invalid.is_none() && int8 >= threshold - 1e-12,
            samples,
            output_cosine: out_m.cosine(),
            output_sqnr_db: out_m.sqnr_db(),
            layers,
            seconds: t0.elapsed().as_secs_f64(),
        }
    }
}

/// What a report is built from besides the per-layer totals.
struct ReportParts {
    int8: f64,
    /// Moments of the outputs against FP32.
    outputs: Moments,
    samples: usize,
    /// Why the metric is invalid (non-finite outputs), if it is.
    invalid: Option<String>,
}

impl Evaluator<'_> {
    /// Why a run's metric is invalid: NaN or ±Inf in its outputs (or FP32's), naming the
    /// first layer (in graph order) whose output held them. `None` when all are finite.
    fn nonfinite(
        &self,
        outputs: &[Vec<Tensor>],
        layer_values: &[(ValueId, ValueId)],
        totals: &[Moments],
    ) -> Option<String> {
        let count = |o: &[Vec<Tensor>]| -> usize {
            o.iter()
                .flatten()
                .filter_map(Tensor::as_f32)
                .map(|a| a.iter().filter(|v| !v.is_finite()).count())
                .sum()
        };
        let (fp32, int8) = (count(&self.fp32_outputs), count(outputs));
        if fp32 + int8 == 0 {
            return None;
        }
        let first = layer_values
            .iter()
            .zip(totals)
            .find(|(_, m)| !(m.xx.is_finite() && m.yy.is_finite()))
            .map(|((f, _), _)| {
                let out = self.ws.graph.value_name(*f);
                let name = self
                    .ws
                    .layers
                    .iter()
                    .find(|l| l.info.output == out)
                    .map_or(out, |l| l.info.name.as_str());
                format!(
                    "; the first layer whose output held them is `{}`",
                    crate::util::text::escape_control(name)
                )
            })
            .unwrap_or_default();
        Some(format!(
            "the outputs hold NaN or ±Inf ({int8} value(s) in this run, {fp32} in FP32){first}: the metric is not valid"
        ))
    }
}

/// All outputs of all samples, in order.
fn flat(outputs: &[Vec<Tensor>]) -> Vec<Tensor> {
    outputs.iter().flat_map(|s| s.iter().cloned()).collect()
}
