//! Incremental re-evaluation (DESIGN.md decision 5).
//!
//! An evaluation of a quantization plan and exclude list gives the same report as
//! `Evaluator::evaluate` on the simulated graph, but re-runs only what can differ from a
//! cached *base* run:
//!
//! - **What changed.** The simulated graph is compared with the base's node by node
//!   (matched by output value name; same op, attributes, input names, equal constant
//!   inputs, and inputs that are themselves unchanged). Value names are stable across
//!   exclude lists (`apply` keeps the original names and names its Q/DQ values after the
//!   activation or weight), so a toggle changes only the toggled layer's node, its Q/DQ
//!   nodes and everything downstream. A different `plan_key` (or FP16 setting) than the
//!   base's means a full run.
//! - **What runs.** The changed steps, plus — for each value they read that is neither
//!   computed by them nor held by the base cache — its producer, recursively. The result
//!   is therefore exact whatever the cache holds; the cache only saves work.
//! - **Caches** (within one byte budget): the FP32 side holds the graph inputs and the
//!   FP32 output of each layer (the references of per-layer fidelity, so FP32 is not
//!   re-run per evaluation; a missing reference is recomputed from the nearest held FP32
//!   value), the base side holds the graph outputs, the activation inputs of the layers
//!   (the values a toggle starts from), then values read far downstream of where they are
//!   made. Over budget, fewer values are held; nothing fails.
//! - **Per-layer fidelity** of a layer that did not re-run is the base's, bit for bit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::engine::{Plan, PlanOptions};
use crate::error::{Error, Result};
use crate::ir::{Graph, Tensor, ValueId};
use crate::quant::QuantPlan;

use super::estimate::{Estimate, SampleScore, estimate, stream_order};
use super::{EvalReport, Evaluator, Moments, Progress};

mod cache;
mod schedule;

use cache::{Fp32Cache, choose_base_values, producers};
use schedule::{changed_nodes, schedule};

/// What one evaluation re-ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RerunStats {
    /// Steps of the simulated graph that ran (per sample).
    pub nodes_run: usize,
    /// Steps of the simulated graph.
    pub nodes_total: usize,
    /// Whether the run started from the cached base (false: a full run).
    pub incremental: bool,
}

/// Re-evaluates quantization plans and exclude lists against a cached base run.
pub struct IncrementalEvaluator<'e, 'w> {
    ev: &'e Evaluator<'w>,
    budget: usize,
    fp32: Fp32Cache,
    base: Option<Base>,
}

/// The base run: its simulated graph and the values held from it.
struct Base {
    key: String,
    fp16: bool,
    graph: Graph,
    /// Value name → index of the node producing it in `graph`.
    producer_of: HashMap<String, usize>,
    /// Value name → slot in `values`.
    slots: HashMap<String, usize>,
    /// Per sample, per slot.
    values: Vec<Vec<Arc<Tensor>>>,
    /// Per layer output name: fidelity moments summed over the samples.
    moments: HashMap<String, Moments>,
    bytes: usize,
}

/// What one sample's runs produced.
struct SampleRun {
    outputs: Vec<Tensor>,
    /// Per entry of the re-run layers.
    moments: Vec<Moments>,
    /// Per slot of the new base: the value, when this run computed it.
    base_values: Vec<Option<Arc<Tensor>>>,
    /// Per FP32 slot, when the FP32 cache is being filled.
    fp32_values: Vec<Option<Arc<Tensor>>>,
}

impl<'e, 'w> IncrementalEvaluator<'e, 'w> {
    /// `budget_bytes`: memory the activation caches may use in all (FP32 + quantized).
    pub fn new(ev: &'e Evaluator<'w>, budget_bytes: usize) -> Self {
        let fp32 = Fp32Cache::plan(ev, budget_bytes);
        IncrementalEvaluator {
            ev,
            budget: budget_bytes,
            fp32,
            base: None,
        }
    }

    /// Bytes held by the caches now.
    pub fn cached_bytes(&self) -> usize {
        self.fp32.bytes + self.base.as_ref().map_or(0, |b| b.bytes)
    }

    /// Same report as `ev.evaluate(&simulate(&ws.graph, plan, exclude)?.0, quantized, fp16,
    /// progress)` (`quantized`: not excluded and calibrated), re-running only the nodes
    /// whose result can differ from the cached base run. `plan_key` identifies the plan's
    /// quantization parameters (equal keys = identical parameters; the caller computes
    /// it); a different key than the base's means a full run. This run becomes the new
    /// base (`evaluate_with` chooses). `cancel` is checked between samples:
    /// `Err(Error::Cancelled)`, the caches unchanged.
    pub fn evaluate(
        &mut self,
        plan: &QuantPlan,
        plan_key: &str,
        exclude: &HashSet<String>,
        fp16: bool,
        progress: Progress,
        cancel: &AtomicBool,
    ) -> Result<(EvalReport, RerunStats)> {
        self.evaluate_with(plan, plan_key, exclude, fp16, true, progress, cancel)
    }

    /// `evaluate`, choosing whether the run becomes the base. `rebase`: true for a user's
    /// toggle or a layer-by-layer search (the next run starts from this one), false for
    /// sensitivity probes (each layer excluded alone from the same base). The first run
    /// always becomes the base.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_with(
        &mut self,
        plan: &QuantPlan,
        plan_key: &str,
        exclude: &HashSet<String>,
        fp16: bool,
        rebase: bool,
        progress: Progress,
        cancel: &AtomicBool,
    ) -> Result<(EvalReport, RerunStats)> {
        let stream = Stream::quiet();
        let r = self.evaluate_stream(
            plan, plan_key, exclude, fp16, rebase, progress, cancel, &stream,
        )?;
        Ok((r.report, r.stats))
    }

    /// `evaluate_with`, streaming: the samples run in `stream_order` in blocks; after each
    /// block `stream` gets the running estimate and may stop the evaluation. A stopped
    /// evaluation returns a partial report (`Streamed::stopped_at`) and changes no cache.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_stream(
        &mut self,
        plan: &QuantPlan,
        plan_key: &str,
        exclude: &HashSet<String>,
        fp16: bool,
        rebase: bool,
        progress: Progress,
        cancel: &AtomicBool,
        stream: &Stream,
    ) -> Result<Streamed> {
        let t0 = Instant::now();
        let ev = self.ev;
        let ws = ev.ws;
        let sim = ws.quantized_graph(plan, exclude)?;
        let qplan = Plan::with_options(
            &sim,
            &ws.sample_shapes,
            PlanOptions {
                fp16,
                ..PlanOptions::default()
            },
        )?;
        let steps = qplan.steps();
        let nvals = qplan.value_count();
        let producer = producers(&qplan);
        let base = self
            .base
            .as_ref()
            .filter(|b| b.key == plan_key && b.fp16 == fp16);
        let incremental = base.is_some();

        // The steps to run: those whose result can differ, and what they need.
        let dirty: Vec<bool> = match base {
            Some(b) => {
                let changed = changed_nodes(&sim, b);
                steps.iter().map(|s| changed[s.node.0]).collect()
            }
            None => vec![true; steps.len()],
        };
        let base_slot: Vec<Option<usize>> = (0..nvals)
            .map(|v| base.and_then(|b| b.slots.get(qplan.value_name(ValueId(v))).copied()))
            .collect();
        let q_inputs: Vec<ValueId> = qplan.inputs().iter().map(|s| s.id).collect();
        let (run, q_seeds) = schedule(&qplan, &producer, dirty, qplan.outputs(), |v| {
            q_inputs.contains(&v) || base_slot[v.0].is_some()
        })?;
        let q_subset = qplan.subset(&run);
        let ran = |v: ValueId| producer[v.0].is_some_and(|p| run.binary_search(&p).is_ok());

        // Per-layer fidelity: the layers that re-run need their FP32 reference.
        let layer_values = ev.layer_values(&sim);
        let rerun_layers: Vec<usize> = (0..layer_values.len())
            .filter(|&k| ran(layer_values[k].1))
            .collect();
        let mut q_layer: Vec<Option<usize>> = vec![None; nvals];
        for (j, &k) in rerun_layers.iter().enumerate() {
            q_layer[layer_values[k].1.0] = Some(j);
        }
        let fp = &self.fp32;
        let filling = fp.values.is_empty();
        let fp_have = |v: ValueId| !filling && fp.slot_of[v.0].is_some();
        let mut fp_needed: Vec<ValueId> = rerun_layers
            .iter()
            .map(|&k| layer_values[k].0)
            .filter(|&v| fp.producer[v.0].is_some() && !fp_have(v))
            .collect();
        if filling {
            fp_needed.extend(
                fp.slots
                    .iter()
                    .copied()
                    .filter(|v| fp.producer[v.0].is_some()),
            );
        }
        let fp_plan = &ev.fp32_plan;
        let fp_inputs: Vec<ValueId> = fp_plan.inputs().iter().map(|s| s.id).collect();
        let (fp_run, fp_seeds) = if fp_needed.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let none = vec![false; fp_plan.steps().len()];
            schedule(fp_plan, &fp.producer, none, &fp_needed, |v| {
                fp_inputs.contains(&v) || fp_have(v)
            })?
        };
        let fp_subset = (!fp_run.is_empty()).then(|| fp_plan.subset(&fp_run));
        let mut fp_want: Vec<bool> = vec![false; fp_plan.value_count()];
        for &k in &rerun_layers {
            fp_want[layer_values[k].0.0] = true;
        }

        // The values the new base will hold: chosen within the budget among those this
        // run computes or the current base holds.
        let becomes_base = rebase || self.base.is_none();
        let new_slots: Vec<ValueId> = if becomes_base {
            let budget = self
                .budget
                .saturating_sub(self.fp32.planned_bytes(ev.samples()));
            choose_base_values(ev, &sim, &qplan, budget, |v| {
                ran(v) || base_slot[v.0].is_some()
            })
        } else {
            Vec::new()
        };
        let mut new_slot_of: Vec<Option<usize>> = vec![None; nvals];
        for (s, v) in new_slots.iter().enumerate() {
            new_slot_of[v.0] = Some(s);
        }

        // Run the samples.
        let fp32_filled = &self.fp32.values;
        let base_values = base.map(|b| &b.values);
        let load_inputs = |i: usize| -> Result<Vec<Arc<Tensor>>> {
            let held: Option<Vec<Arc<Tensor>>> = fp_inputs
                .iter()
                .map(|v| {
                    let s = fp.slot_of[v.0]?;
                    fp32_filled.get(i).map(|row| row[s].clone())
                })
                .collect();
            match held {
                Some(h) => Ok(h),
                None => Ok(ev.set.data.load(i)?.into_iter().map(Arc::new).collect()),
            }
        };
        let needs_inputs = filling
            || fp_seeds.iter().any(|v| fp_inputs.contains(v))
            || q_seeds.iter().any(|v| q_inputs.contains(v));
        let done = AtomicUsize::new(0);
        let run_sample = |i: usize| -> Result<SampleRun> {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let inputs = if needs_inputs {
                load_inputs(i)?
            } else {
                Vec::new()
            };
            // FP32: the references not held, and the cache's values on its first fill.
            let mut fp_values: Vec<Option<Arc<Tensor>>> = vec![None; fp.slots.len()];
            let mut refs: HashMap<ValueId, Arc<Tensor>> = HashMap::new();
            if filling {
                for (k, v) in fp_inputs.iter().enumerate() {
                    if let Some(s) = fp.slot_of[v.0] {
                        fp_values[s] = Some(inputs[k].clone());
                    }
                }
            }
            if let Some(sub) = &fp_subset {
                let seeds = fp_seeds
                    .iter()
                    .map(|&v| match fp_inputs.iter().position(|&x| x == v) {
                        Some(k) => (v, inputs[k].clone()),
                        None => (v, fp32_filled[i][fp.slot_of[v.0].expect("held")].clone()),
                    })
                    .collect();
                fp_plan.run_subset(sub, seeds, &mut |v, t| {
                    let slot = fp.slot_of[v.0].filter(|_| filling);
                    if !fp_want[v.0] && slot.is_none() {
                        return;
                    }
                    let t = t.clone();
                    if let Some(s) = slot {
                        fp_values[s] = Some(t.clone());
                    }
                    if fp_want[v.0] {
                        refs.insert(v, t);
                    }
                })?;
            }
            let reference = |v: ValueId| -> Option<&Tensor> {
                match refs.get(&v) {
                    Some(t) => Some(t),
                    None => fp32_filled
                        .get(i)
                        .and_then(|row| fp.slot_of[v.0].map(|s| &*row[s])),
                }
            };
            // The simulated graph, from the base's values.
            let seeds = q_seeds
                .iter()
                .map(|&v| match q_inputs.iter().position(|&x| x == v) {
                    Some(k) => (v, inputs[k].clone()),
                    None => {
                        let row = &base_values.expect("a base")[i];
                        (v, row[base_slot[v.0].expect("held")].clone())
                    }
                })
                .collect();
            let mut moments = vec![Moments::default(); rerun_layers.len()];
            let mut seen = vec![false; rerun_layers.len()];
            let mut held: Vec<Option<Arc<Tensor>>> = vec![None; new_slots.len()];
            let outputs = qplan.run_subset(&q_subset, seeds, &mut |v, t| {
                if let Some(j) = q_layer[v.0].filter(|&j| !seen[j]) {
                    seen[j] = true;
                    if let Some(r) = reference(layer_values[rerun_layers[j]].0) {
                        add_moments(&mut moments[j], r, t);
                    }
                }
                if let Some(s) = new_slot_of[v.0] {
                    held[s] = Some(t.clone());
                }
            })?;
            let outputs = outputs
                .into_iter()
                .zip(qplan.outputs())
                .map(|(o, v)| {
                    o.ok_or_else(|| {
                        Error::Usage(format!(
                            "incremental evaluation: output `{}` was not computed",
                            qplan.value_name(*v)
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1);
            Ok(SampleRun {
                outputs,
                moments,
                base_values: held,
                fp32_values: fp_values,
            })
        };
        let n = ev.samples();
        let mut runs: Vec<Option<SampleRun>> = (0..n).map(|_| None).collect();
        let mut scores: Vec<SampleScore> = Vec::with_capacity(n);
        let mut ran_in_order: Vec<usize> = Vec::with_capacity(n);
        let mut stopped_at = None;
        for block in blocks(&stream_order(n)) {
            let done_block = block
                .par_iter()
                .map(|&i| Ok((i, run_sample(i)?)))
                .collect::<Result<Vec<_>>>()?;
            for (i, r) in done_block {
                if let Some(sc) = ev.sample_score(i, &r.outputs) {
                    scores.push(sc);
                }
                ran_in_order.push(i);
                if let Some(slot) = runs.get_mut(i) {
                    *slot = Some(r);
                }
            }
            let est = estimate(ev.set.config.metric, &scores, n)
                .filter(|_| scores.len() == ran_in_order.len());
            if let Some(e) = &est {
                (stream.on_estimate)(e);
            }
            if ran_in_order.len() < n && (stream.stop)(&scores) {
                stopped_at = Some(ran_in_order.len());
                break;
            }
        }
        if stopped_at.is_some() {
            let quantized = |name: &str| {
                !exclude.contains(name) && plan.layer(name).is_some_and(|l| plan.is_calibrated(l))
            };
            let partial = Partial {
                runs: &runs,
                ran: &ran_in_order,
                scores: &scores,
                layer_values: &layer_values,
                rerun_layers: &rerun_layers,
                base_moments: base.map(|b| &b.moments),
                names: &qplan,
            }
            .report(ev, &quantized, t0);
            return Ok(Streamed {
                report: partial,
                stats: RerunStats {
                    nodes_run: run.len(),
                    nodes_total: steps.len(),
                    incremental,
                },
                scores,
                stopped_at,
            });
        }
        let per_sample: Vec<SampleRun> = runs.into_iter().flatten().collect();

        // Totals: re-run layers from this run, the others from the base.
        let mut rerun_totals = vec![Moments::default(); rerun_layers.len()];
        for s in &per_sample {
            rerun_totals
                .iter_mut()
                .zip(&s.moments)
                .for_each(|(t, m)| t.merge(m));
        }
        let mut totals: Vec<Moments> = layer_values
            .iter()
            .map(|(_, q)| {
                base.and_then(|b| b.moments.get(qplan.value_name(*q)).copied())
                    .unwrap_or_default()
            })
            .collect();
        for (j, &k) in rerun_layers.iter().enumerate() {
            totals[k] = rerun_totals[j];
        }
        let outputs: Vec<Vec<Tensor>> = per_sample.iter().map(|s| s.outputs.clone()).collect();
        let quantized = |name: &str| {
            !exclude.contains(name) && plan.layer(name).is_some_and(|l| plan.is_calibrated(l))
        };
        let report = ev.report(&outputs, &layer_values, &totals, &quantized, t0)?;
        let stats = RerunStats {
            nodes_run: run.len(),
            nodes_total: steps.len(),
            incremental,
        };

        // Commit the caches (only now: a failed or cancelled run leaves them as they were).
        if filling {
            self.fp32.fill(per_sample.iter().map(|s| &s.fp32_values));
        }
        if becomes_base {
            let moments: HashMap<String, Moments> = layer_values
                .iter()
                .zip(&totals)
                .map(|((_, q), m)| (qplan.value_name(*q).to_string(), *m))
                .collect();
            let old = self
                .base
                .take()
                .filter(|b| b.key == plan_key && b.fp16 == fp16);
            let value = |i: usize, s: usize, held: &[Option<Arc<Tensor>>]| {
                held[s].clone().or_else(|| {
                    let v = new_slots[s];
                    let (b, bs) = (old.as_ref()?, base_slot[v.0]?);
                    Some(b.values[i][bs].clone())
                })
            };
            // Keep only the slots held for every sample.
            let keep: Vec<usize> = (0..new_slots.len())
                .filter(|&s| {
                    per_sample
                        .iter()
                        .enumerate()
                        .all(|(i, r)| value(i, s, &r.base_values).is_some())
                })
                .collect();
            let values: Vec<Vec<Arc<Tensor>>> = per_sample
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    keep.iter()
                        .map(|&s| value(i, s, &r.base_values).expect("kept"))
                        .collect()
                })
                .collect();
            let slots = keep
                .iter()
                .enumerate()
                .map(|(k, &s)| (qplan.value_name(new_slots[s]).to_string(), k))
                .collect();
            drop(old);
            let bytes = values.iter().flatten().map(|t| t.nbytes()).sum();
            let producer_of = sim
                .nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| n.outputs.iter().flatten().map(move |o| (*o, i)))
                .map(|(o, i)| (sim.value_name(o).to_string(), i))
                .collect();
            self.base = Some(Base {
                key: plan_key.to_string(),
                fp16,
                graph: sim,
                producer_of,
                slots,
                values,
                moments,
                bytes,
            });
        }
        Ok(Streamed {
            report,
            stats,
            scores,
            stopped_at: None,
        })
    }
}

/// How an evaluation streams: what it reports after each block, and when it stops.
pub struct Stream<'a> {
    /// The running estimate after each block.
    pub on_estimate: &'a (dyn Fn(&Estimate) + Sync),
    /// Asked after each block with the scores so far (in stream order): stop here?
    pub stop: &'a (dyn Fn(&[SampleScore]) -> bool + Sync),
}

impl Stream<'static> {
    /// Reports nothing, never stops.
    pub fn quiet() -> Stream<'static> {
        Stream {
            on_estimate: &|_| {},
            stop: &|_| false,
        }
    }
}

/// A streamed evaluation.
pub struct Streamed {
    /// The report (partial when `stopped_at` is set: see `Evaluator::partial_report`).
    pub report: EvalReport,
    pub stats: RerunStats,
    /// Each sample's contribution to the metric, in stream order.
    pub scores: Vec<SampleScore>,
    /// The samples run when the stream stopped it; `None` when it ran to the end.
    pub stopped_at: Option<usize>,
}

/// The blocks samples run in: small first, so the first estimate comes soon, then larger,
/// so the threads stay busy between estimates.
fn blocks(order: &[usize]) -> Vec<&[usize]> {
    let threads = rayon::current_num_threads().max(1);
    let mut out = Vec::new();
    let (mut at, mut size) = (0, 2 * threads);
    while at < order.len() {
        let end = (at + size).min(order.len());
        out.push(order.get(at..end).unwrap_or_default());
        at = end;
        size = (size * 2).min(16 * threads);
    }
    out
}

/// What a stopped evaluation reports from.
struct Partial<'a> {
    runs: &'a [Option<SampleRun>],
    ran: &'a [usize],
    scores: &'a [SampleScore],
    layer_values: &'a [(ValueId, ValueId)],
    rerun_layers: &'a [usize],
    base_moments: Option<&'a HashMap<String, Moments>>,
    names: &'a Plan,
}

impl Partial<'_> {
    fn report(&self, ev: &Evaluator, quantized: &dyn Fn(&str) -> bool, t0: Instant) -> EvalReport {
        let n = ev.samples();
        let est = estimate(ev.set.config.metric, self.scores, n).unwrap_or(Estimate {
            done: self.ran.len(),
            total: n,
            value: f64::NAN,
            half_width: f64::NAN,
        });
        // Layers that re-ran: their moments over the samples run; the others the base's.
        let mut totals: Vec<Moments> = self
            .layer_values
            .iter()
            .map(|(_, q)| {
                self.base_moments
                    .and_then(|m| m.get(self.names.value_name(*q)).copied())
                    .unwrap_or_default()
            })
            .collect();
        for (j, &k) in self.rerun_layers.iter().enumerate() {
            let mut m = Moments::default();
            for r in self.runs.iter().flatten() {
                if let Some(x) = r.moments.get(j) {
                    m.merge(x);
                }
            }
            if let Some(t) = totals.get_mut(k) {
                *t = m;
            }
        }
        let done: Vec<(usize, &[Tensor])> = self
            .ran
            .iter()
            .filter_map(|&i| Some((i, self.runs.get(i)?.as_ref()?.outputs.as_slice())))
            .collect();
        ev.partial_report(&est, &done, self.layer_values, &totals, quantized, t0)
    }
}

/// Adds one layer output's sample to its fidelity moments, as `Evaluator::evaluate` does.
fn add_moments(m: &mut Moments, reference: &Tensor, test: &Tensor) {
    if let (Some(r), Some(a)) = (reference.as_f32(), test.as_f32())
        && let (Some(x), Some(y)) = (r.as_slice(), a.as_slice())
    {
        m.add(x, y);
    }
}

#[cfg(test)]
mod tests;
