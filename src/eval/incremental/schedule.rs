//! Which steps an incremental run re-runs: the nodes that changed against the base,
//! and what they need.

use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::Plan;
use crate::error::{Error, Result};
use crate::ir::{Graph, ValueId};

use super::Base;

/// Which nodes of `sim` can compute something else than the base graph: a node is
/// unchanged when the base has a node producing a value of the same name with the same
/// name, op, attributes, outputs and inputs, where each input is an equal constant, the
/// same graph input, or the output of an unchanged node.
pub(super) fn changed_nodes(sim: &Graph, base: &Base) -> Vec<bool> {
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
pub(super) fn schedule(
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
