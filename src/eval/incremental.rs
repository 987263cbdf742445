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
use crate::quant::export::simulate;

use super::{EvalReport, Evaluator, Moments, Progress};

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

/// FP32 values held per sample: graph inputs and layer outputs (the references).
struct Fp32Cache {
    /// The values chosen to hold, in the FP32 plan.
    slots: Vec<ValueId>,
    /// Slot of each FP32 value id.
    slot_of: Vec<Option<usize>>,
    /// Producing step of each FP32 value id.
    producer: Vec<Option<usize>>,
    /// Bytes per sample of each slot.
    slot_bytes: Vec<usize>,
    /// Per sample, per slot; empty until the first evaluation filled it.
    values: Vec<Vec<Arc<Tensor>>>,
    bytes: usize,
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
        let t0 = Instant::now();
        let ev = self.ev;
        let ws = ev.ws;
        let (sim, _warnings) = simulate(&ws.graph, plan, exclude)?;
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
        let per_sample = (0..ev.samples())
            .into_par_iter()
            .map(|i| -> Result<SampleRun> {
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
            })
            .collect::<Result<Vec<_>>>()?;

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
        Ok((report, stats))
    }
}

impl Fp32Cache {
    /// Chooses the FP32 values to hold within a share of `budget`: the graph inputs, then
    /// the layer outputs from the last layer back (later layers re-run in more toggles).
    /// The share leaves room for the base's layer inputs when both do not fit.
    fn plan(ev: &Evaluator, budget: usize) -> Fp32Cache {
        let plan = &ev.fp32_plan;
        let n = ev.samples().max(1);
        let producer = producers(plan);
        let size = |v: ValueId| value_bytes(plan, v);
        let inputs: Vec<ValueId> = plan.inputs().iter().map(|s| s.id).collect();
        let refs: Vec<ValueId> = ev
            .ws
            .layers
            .iter()
            .rev()
            .filter_map(|l| ev.ws.graph.find_value(&l.info.output))
            .filter(|v| producer[v.0].is_some())
            .collect();
        let layer_inputs: HashSet<ValueId> = ev
            .ws
            .layers
            .iter()
            .flat_map(|l| l.activations.iter().copied())
            .filter(|v| producer[v.0].is_some())
            .collect();
        let per_sample = budget / n;
        let want: usize = inputs.iter().chain(&refs).map(|&v| size(v)).sum();
        let base_want: usize = layer_inputs.iter().map(|&v| size(v)).sum();
        let share = want.min((per_sample / 2).max(per_sample.saturating_sub(base_want)));
        let mut slots = Vec::new();
        let mut used = 0;
        for v in inputs.into_iter().chain(refs) {
            let b = size(v);
            if used + b <= share && !slots.contains(&v) {
                used += b;
                slots.push(v);
            }
        }
        let mut slot_of = vec![None; plan.value_count()];
        for (s, v) in slots.iter().enumerate() {
            slot_of[v.0] = Some(s);
        }
        Fp32Cache {
            slot_bytes: slots.iter().map(|&v| size(v)).collect(),
            slots,
            slot_of,
            producer,
            values: Vec::new(),
            bytes: 0,
        }
    }

    /// Bytes the cache holds once filled.
    fn planned_bytes(&self, samples: usize) -> usize {
        if !self.values.is_empty() {
            return self.bytes;
        }
        self.slot_bytes.iter().sum::<usize>() * samples
    }

    /// Stores the first run's values; a slot missing for any sample is dropped.
    fn fill<'a>(&mut self, rows: impl Iterator<Item = &'a Vec<Option<Arc<Tensor>>>>) {
        let rows: Vec<&Vec<Option<Arc<Tensor>>>> = rows.collect();
        let keep: Vec<usize> = (0..self.slots.len())
            .filter(|&s| rows.iter().all(|r| r[s].is_some()))
            .collect();
        self.values = rows
            .iter()
            .map(|r| keep.iter().map(|&s| r[s].clone().expect("kept")).collect())
            .collect();
        self.slots = keep.iter().map(|&s| self.slots[s]).collect();
        self.slot_bytes = keep.iter().map(|&s| self.slot_bytes[s]).collect();
        self.slot_of.iter_mut().for_each(|s| *s = None);
        for (s, v) in self.slots.iter().enumerate() {
            self.slot_of[v.0] = Some(s);
        }
        self.bytes = self.values.iter().flatten().map(|t| t.nbytes()).sum();
    }
}

/// Bytes of one sample's value `v` of `plan` (0 when its shape or type is unknown).
fn value_bytes(plan: &Plan, v: ValueId) -> usize {
    let f = plan.facts(v);
    match (&f.shape, f.dtype) {
        (Some(s), Some(d)) => s.iter().product::<usize>() * d.size(),
        _ => 0,
    }
}

/// The producing step of each value of `plan`.
fn producers(plan: &Plan) -> Vec<Option<usize>> {
    let mut p = vec![None; plan.value_count()];
    for (i, s) in plan.steps().iter().enumerate() {
        for o in s.outputs.iter().flatten() {
            p[o.0] = Some(i);
        }
    }
    p
}

/// Which nodes of `sim` can compute something else than the base graph: a node is
/// unchanged when the base has a node producing a value of the same name with the same
/// name, op, attributes, outputs and inputs, where each input is an equal constant, the
/// same graph input, or the output of an unchanged node.
fn changed_nodes(sim: &Graph, base: &Base) -> Vec<bool> {
    let old = &base.graph;
    let graph_input = |g: &Graph, v: ValueId| g.inputs.contains(&v);
    let mut changed_value: Vec<bool> = (0..sim.values.len())
        .map(|v| !graph_input(sim, ValueId(v)) && !sim.constants.contains_key(&ValueId(v)))
        .collect();
    let mut changed = vec![true; sim.nodes.len()];
    for (i, n) in sim.nodes.iter().enumerate() {
        let same = (|| {
            let first = n.outputs.iter().flatten().next()?;
            let b = &old.nodes[*base.producer_of.get(sim.value_name(*first))?];
            let same_value = |v: &Option<ValueId>, w: &Option<ValueId>| match (v, w) {
                (None, None) => true,
                (Some(v), Some(w)) => sim.value_name(*v) == old.value_name(*w),
                _ => false,
            };
            let same_input = |v: &Option<ValueId>, w: &Option<ValueId>| {
                if !same_value(v, w) {
                    return false;
                }
                let (Some(v), Some(w)) = (v, w) else {
                    return true;
                };
                match (sim.constants.get(v), old.constants.get(w)) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                    (None, None) => {
                        !changed_value[v.0] && (graph_input(sim, *v) == graph_input(old, *w))
                    }
                    _ => false,
                }
            };
            let same = n.name == b.name
                && n.op_type == b.op_type
                && n.domain == b.domain
                && n.attrs == b.attrs
                && n.outputs.len() == b.outputs.len()
                && n.inputs.len() == b.inputs.len()
                && n.outputs
                    .iter()
                    .zip(&b.outputs)
                    .all(|(v, w)| same_value(v, w))
                && n.inputs
                    .iter()
                    .zip(&b.inputs)
                    .all(|(v, w)| same_input(v, w));
            same.then_some(())
        })()
        .is_some();
        if same {
            changed[i] = false;
            for o in n.outputs.iter().flatten() {
                changed_value[o.0] = false;
            }
        }
    }
    changed
}

/// The steps to run (ascending) and the values to seed so that every `run` step and
/// every `needed` value is computed: a value read by a step that runs (or needed) and not
/// computed by one is seeded when `have` says it is available, otherwise its producer
/// runs too, recursively. Constants of the plan are never seeded.
fn schedule(
    plan: &Plan,
    producer: &[Option<usize>],
    mut run: Vec<bool>,
    needed: &[ValueId],
    have: impl Fn(ValueId) -> bool,
) -> Result<(Vec<usize>, Vec<ValueId>)> {
    let mut seeds: HashSet<ValueId> = HashSet::new();
    let want = |v: ValueId, run: &mut Vec<bool>, seeds: &mut HashSet<ValueId>| {
        if plan.is_constant(v) {
            return Ok(());
        }
        match producer[v.0] {
            Some(p) if run[p] => {}
            _ if have(v) => {
                seeds.insert(v);
            }
            Some(p) => run[p] = true,
            None => {
                return Err(Error::Usage(format!(
                    "incremental evaluation: value `{}` is neither computed nor held",
                    plan.value_name(v)
                )));
            }
        }
        Ok(())
    };
    for &v in needed {
        want(v, &mut run, &mut seeds)?;
    }
    for i in (0..run.len()).rev() {
        if run[i] {
            for v in plan.steps()[i].inputs.iter().flatten() {
                want(*v, &mut run, &mut seeds)?;
            }
        }
    }
    let mut seeds: Vec<ValueId> = seeds
        .into_iter()
        .filter(|v| producer[v.0].is_none_or(|p| !run[p]))
        .collect();
    seeds.sort_unstable();
    let steps = (0..run.len()).filter(|&i| run[i]).collect();
    Ok((steps, seeds))
}

/// The values of `qplan` the next base holds, within `budget` bytes over all samples:
/// the graph outputs (always), the activation inputs of the layers, then values read
/// farthest downstream of where they are made. Only values `available` are candidates.
fn choose_base_values(
    ev: &Evaluator,
    sim: &Graph,
    qplan: &Plan,
    budget: usize,
    available: impl Fn(ValueId) -> bool,
) -> Vec<ValueId> {
    let n = ev.samples().max(1);
    let producer = producers(qplan);
    let mut last_use: Vec<Option<usize>> = vec![None; qplan.value_count()];
    let mut uses = vec![0usize; qplan.value_count()];
    for (i, s) in qplan.steps().iter().enumerate() {
        for v in s.inputs.iter().flatten() {
            last_use[v.0] = Some(i);
            uses[v.0] += 1;
        }
    }
    let layer_inputs: HashSet<ValueId> = ev
        .ws
        .layers
        .iter()
        .flat_map(|l| l.info.activations.iter())
        .filter_map(|a| sim.find_value(a))
        .collect();
    let outputs = qplan.outputs();
    let mut chosen: Vec<ValueId> = outputs.to_vec();
    let mut used: usize = outputs.iter().map(|&v| value_bytes(qplan, v) * n).sum();
    let mut candidates: Vec<(u8, usize, ValueId)> = (0..qplan.value_count())
        .map(ValueId)
        .filter(|&v| producer[v.0].is_some() && !outputs.contains(&v) && available(v))
        .filter_map(|v| {
            let span = last_use[v.0]? - producer[v.0]?;
            let tier = if layer_inputs.contains(&v) {
                0
            } else if uses[v.0] > 1 || span > 1 {
                1
            } else {
                return None;
            };
            Some((tier, usize::MAX - span, v))
        })
        .collect();
    candidates.sort_unstable();
    for (_, _, v) in candidates {
        let b = value_bytes(qplan, v) * n;
        if used + b <= budget {
            used += b;
            chosen.push(v);
        }
    }
    chosen
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
mod tests {
    use std::path::Path;
    use std::sync::OnceLock;

    use super::*;
    use crate::config::Config;
    use crate::data::dataset::SourceKind;
    use crate::workspace::Workspace;

    const SAMPLES: usize = 24;

    /// The demo workspace with its first `SAMPLES` evaluation images, and its plan.
    fn demo() -> &'static (Workspace, QuantPlan) {
        static DEMO: OnceLock<(Workspace, QuantPlan)> = OnceLock::new();
        DEMO.get_or_init(|| {
            let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml");
            let mut ws = Workspace::open(Config::load(&cfg).unwrap()).unwrap();
            let set = ws.eval.as_mut().unwrap();
            for s in &mut set.data.sources {
                if let SourceKind::Images { files, .. } = &mut s.kind {
                    files.truncate(SAMPLES);
                }
            }
            if let Some(l) = &mut set.labels {
                l.truncate(SAMPLES);
            }
            let (plan, _) = ws.calibrate(&|_| {}, &AtomicBool::new(false)).unwrap();
            (ws, plan)
        })
    }

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// `Evaluator::evaluate` on the simulated graph.
    fn full(ev: &Evaluator, plan: &QuantPlan, exclude: &HashSet<String>, fp16: bool) -> EvalReport {
        let (sim, _) = simulate(&ev.ws.graph, plan, exclude).unwrap();
        let quantized = |name: &str| {
            !exclude.contains(name) && plan.layer(name).is_some_and(|l| plan.is_calibrated(l))
        };
        ev.evaluate(&sim, &quantized, fp16, &|_| {}).unwrap()
    }

    /// Runs one incremental evaluation and checks it against a full one.
    fn check(
        inc: &mut IncrementalEvaluator,
        key: &str,
        exclude: &[&str],
        fp16: bool,
        rebase: bool,
    ) -> RerunStats {
        let (ws, plan) = demo();
        let _ = ws;
        let ex = set(exclude);
        let never = AtomicBool::new(false);
        let (mut got, stats) = inc
            .evaluate_with(plan, key, &ex, fp16, rebase, &|_| {}, &never)
            .unwrap();
        let want = full(inc.ev, plan, &ex, fp16);
        got.seconds = want.seconds;
        assert_eq!(
            got, want,
            "exclude {exclude:?}, fp16 {fp16}, stats {stats:?}"
        );
        assert_eq!(got.samples, SAMPLES);
        stats
    }

    fn layers() -> (String, String, String) {
        let names = demo().0.layer_names();
        let n = names.len();
        assert!(n > 8, "{n} layers");
        (
            names[n / 4].clone(),
            names[n / 2].clone(),
            names[n - 1].clone(),
        )
    }

    /// The toggles of a session, each equal to a full evaluation; returns the stats.
    fn toggles(budget: usize) -> Vec<RerunStats> {
        let (ws, _) = demo();
        let ev = Evaluator::new(ws, &|_| {}).unwrap();
        let mut inc = IncrementalEvaluator::new(&ev, budget);
        let (early, mid, last) = layers();
        let (early, mid, last) = (early.as_str(), mid.as_str(), last.as_str());
        let mut stats = vec![
            check(&mut inc, "k", &[], false, true),
            check(&mut inc, "k", &[mid], false, true),
            check(&mut inc, "k", &[], false, true),
            check(&mut inc, "k", &[last], false, true),
            check(&mut inc, "k", &[early, mid], false, true),
        ];
        // Sensitivity probes from one base.
        for l in [early, mid, last] {
            stats.push(check(&mut inc, "k", &[early, mid, l], false, false));
            stats.push(check(&mut inc, "k", &[l], false, false));
        }
        stats.push(check(&mut inc, "k", &[early, mid], false, false));
        assert!(
            inc.cached_bytes() <= budget.max(4096),
            "{} bytes",
            inc.cached_bytes()
        );
        stats
    }

    #[test]
    fn toggles_equal_full_evaluations() {
        let stats = toggles(1 << 30);
        assert!(!stats[0].incremental);
        assert_eq!(stats[0].nodes_run, stats[0].nodes_total);
        for s in &stats[1..] {
            assert!(s.incremental, "{stats:?}");
            assert!(s.nodes_run < s.nodes_total, "{stats:?}");
        }
        // Toggling the last layer re-runs only its Q/DQ nodes, itself and what follows.
        assert!(stats[3].nodes_run < stats[1].nodes_run, "{stats:?}");
        // Probes keep the base: re-excluding the base's layers re-runs nothing.
        assert_eq!(stats.last().unwrap().nodes_run, 0, "{stats:?}");
    }

    #[test]
    fn a_tiny_budget_gives_the_same_results() {
        for budget in [0, 1 << 20] {
            let stats = toggles(budget);
            assert!(stats[1..].iter().all(|s| s.incremental));
        }
    }

    #[test]
    fn fused_qdq_steps_compute_what_the_two_ops_compute() {
        let (ws, plan) = demo();
        let (sim, _) = simulate(&ws.graph, plan, &HashSet::new()).unwrap();
        let fused = Plan::new(&sim, &ws.sample_shapes).unwrap();
        let kept = Plan::with_options(
            &sim,
            &ws.sample_shapes,
            PlanOptions {
                keep_qdq: true,
                ..PlanOptions::default()
            },
        )
        .unwrap();
        assert!(fused.steps().len() < kept.steps().len());
        let set = ws.eval.as_ref().unwrap();
        for i in 0..4 {
            let x = set.data.load(i).unwrap();
            let mut a: HashMap<ValueId, Tensor> = HashMap::new();
            let mut b: HashMap<ValueId, Tensor> = HashMap::new();
            let oa = fused
                .run_observed(x.clone(), &mut |v, t| {
                    a.insert(v, t.clone());
                })
                .unwrap();
            let ob = kept
                .run_observed(x, &mut |v, t| {
                    b.insert(v, t.clone());
                })
                .unwrap();
            assert_eq!(oa, ob);
            for (v, t) in &a {
                assert_eq!(Some(t), b.get(v), "{}", fused.value_name(*v));
            }
        }
    }

    #[test]
    fn a_new_plan_key_is_a_full_run() {
        let (ws, _) = demo();
        let ev = Evaluator::new(ws, &|_| {}).unwrap();
        let mut inc = IncrementalEvaluator::new(&ev, 1 << 30);
        let (_, mid, _) = layers();
        let a = check(&mut inc, "a", &[], false, true);
        let b = check(&mut inc, "b", &[&mid], false, false);
        let c = check(&mut inc, "a", &[&mid], false, false);
        let d = check(&mut inc, "b", &[], false, true);
        let e = check(&mut inc, "b", &[&mid], false, true);
        assert!(!a.incremental && !b.incremental && !d.incremental);
        assert!(c.incremental && e.incremental);
        assert_eq!(b.nodes_run, b.nodes_total);
        assert!(c.nodes_run < c.nodes_total);
        // FP16 is part of the base: switching it is a full run, toggling under it is not.
        let f = check(&mut inc, "b", &[&mid], true, true);
        let g = check(&mut inc, "b", &[], true, true);
        assert!(!f.incremental && g.incremental);
    }

    #[test]
    fn cancel_leaves_the_caches_as_they_were() {
        let (ws, plan) = demo();
        let ev = Evaluator::new(ws, &|_| {}).unwrap();
        let mut inc = IncrementalEvaluator::new(&ev, 1 << 30);
        let (_, mid, _) = layers();
        check(&mut inc, "k", &[], false, true);
        let bytes = inc.cached_bytes();
        let r = inc.evaluate(
            plan,
            "k",
            &set(&[&mid]),
            false,
            &|_| {},
            &AtomicBool::new(true),
        );
        assert!(matches!(r, Err(Error::Cancelled)));
        assert_eq!(inc.cached_bytes(), bytes);
        let s = check(&mut inc, "k", &[&mid], false, true);
        assert!(s.incremental);
    }

    /// Timings on the whole demo evaluation set (300 images):
    /// `cargo test --release --lib eval::incremental -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_demo() {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml");
        let ws = Workspace::open(Config::load(&cfg).unwrap()).unwrap();
        let (plan, _) = ws.calibrate(&|_| {}, &AtomicBool::new(false)).unwrap();
        let t = Instant::now();
        let ev = Evaluator::new(&ws, &|_| {}).unwrap();
        println!(
            "Evaluator::new (FP32 pass): {:.3} s",
            t.elapsed().as_secs_f64()
        );
        let none = HashSet::new();
        let t = Instant::now();
        full(&ev, &plan, &none, false);
        println!(
            "Evaluator::evaluate (full, reference): {:.3} s",
            t.elapsed().as_secs_f64()
        );
        let names = ws.layer_names();
        let mid = names[names.len() / 2].clone();
        let t = Instant::now();
        let (sim, _) = simulate(&ws.graph, &plan, &none).unwrap();
        let t_sim = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let qplan = Plan::with_options(&sim, &ws.sample_shapes, PlanOptions::default()).unwrap();
        let t_plan = t.elapsed().as_secs_f64();
        let inputs: Vec<Vec<Tensor>> = (0..ev.samples())
            .map(|i| ev.set.data.load(i).unwrap())
            .collect();
        let t = Instant::now();
        inputs.par_iter().for_each(|x| {
            qplan.run(x.clone()).unwrap();
        });
        let t_q = t.elapsed().as_secs_f64();
        let t = Instant::now();
        inputs.par_iter().for_each(|x| {
            ev.fp32_plan.run(x.clone()).unwrap();
        });
        println!(
            "simulate {t_sim:.3} s, compile {t_plan:.3} s, simulated run {t_q:.3} s, FP32 run {:.3} s",
            t.elapsed().as_secs_f64()
        );
        let never = AtomicBool::new(false);
        let mut inc = IncrementalEvaluator::new(&ev, 1 << 30);
        // CPU seconds of the process (user + system): less noisy than wall time on a
        // shared machine.
        let cpu = || {
            // SAFETY: getrusage only writes the struct it is given.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
            let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            s(u.ru_utime) + s(u.ru_stime)
        };
        let mut go = |key: &str, ex: &HashSet<String>, rebase: bool, what: &str| {
            let c = cpu();
            let t = Instant::now();
            let (_, s) = inc
                .evaluate_with(&plan, key, ex, false, rebase, &|_| {}, &never)
                .unwrap();
            println!(
                "{what}: {:.3} s, CPU {:.3} s ({} of {} nodes, incremental {}), cache {:.1} MB",
                t.elapsed().as_secs_f64(),
                cpu() - c,
                s.nodes_run,
                s.nodes_total,
                s.incremental,
                inc.cached_bytes() as f64 / 1e6
            );
        };
        go("a", &none, true, "first evaluation (fills the FP32 cache)");
        for k in ["b", "b2", "b3"] {
            go(k, &none, false, "new plan, full run");
        }
        for k in ["c1", "c2", "c"] {
            go(k, &none, true, "new plan, full run, rebase");
        }
        let one: HashSet<String> = [mid.clone()].into();
        for _ in 0..2 {
            go("c", &one, true, &format!("toggle `{mid}` off"));
            go("c", &none, true, &format!("toggle `{mid}` on"));
        }
        go("c", &one, false, &format!("probe `{mid}`"));
    }
}
