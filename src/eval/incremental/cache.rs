//! What the incremental evaluator holds between runs: the FP32 references, and the
//! choice of values a new base keeps within the memory budget.

use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::Plan;
use crate::ir::{Graph, Tensor, ValueId};

use super::Evaluator;

/// FP32 values held per sample: graph inputs and layer outputs (the references).
pub(super) struct Fp32Cache {
    /// The values chosen to hold, in the FP32 plan.
    pub(super) slots: Vec<ValueId>,
    /// Slot of each FP32 value id.
    pub(super) slot_of: Vec<Option<usize>>,
    /// Producing step of each FP32 value id.
    pub(super) producer: Vec<Option<usize>>,
    /// Bytes per sample of each slot.
    pub(super) slot_bytes: Vec<usize>,
    /// Per sample, per slot; empty until the first evaluation filled it.
    pub(super) values: Vec<Vec<Arc<Tensor>>>,
    pub(super) bytes: usize,
}

impl Fp32Cache {
    /// Chooses the FP32 values to hold within a share of `budget`: the graph inputs, then
    /// the layer outputs from the last layer back (later layers re-run in more toggles).
    /// The share leaves room for the base's layer inputs when both do not fit.
    pub(super) fn plan(ev: &Evaluator, budget: usize) -> Fp32Cache {
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
    pub(super) fn planned_bytes(&self, samples: usize) -> usize {
        if !self.values.is_empty() {
            return self.bytes;
        }
        self.slot_bytes.iter().sum::<usize>() * samples
    }

    /// Stores the first run's values; a slot missing for any sample is dropped.
    pub(super) fn fill<'a>(&mut self, rows: impl Iterator<Item = &'a Vec<Option<Arc<Tensor>>>>) {
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
pub(super) fn value_bytes(plan: &Plan, v: ValueId) -> usize {
    let f = plan.facts(v);
    match (&f.shape, f.dtype) {
        (Some(s), Some(d)) => s.iter().product::<usize>() * d.size(),
        _ => 0,
    }
}

/// The producing step of each value of `plan`.
pub(super) fn producers(plan: &Plan) -> Vec<Option<usize>> {
    let mut p = vec![None; plan.value_count()];
    for (i, s) in plan.steps().iter().enumerate() {
        for o in s.outputs.iter().flatten() {
            p[o.0] = Some(i);
        }
    }
    p
}

/// The values of `qplan` the next base holds, within `budget` bytes over all samples:
/// the graph outputs (always), the activation inputs of the layers, then values read
/// farthest downstream of where they are made. Only values `available` are candidates.
pub(super) fn choose_base_values(
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
