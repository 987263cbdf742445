//! Constant folding and dead-node removal as a pure graph rewrite.
//!
//! The engine decides *what* folds (it knows op semantics); this module applies the
//! decision: nodes whose outputs are all known constants are removed, their outputs
//! become constants, and nodes that no graph output depends on are dropped.

use std::collections::HashMap;
use std::sync::Arc;

use super::graph::{Dim, Graph, ValueId};
use super::tensor::Tensor;

/// Replaces the producers of `folded` values with constants and removes dead nodes.
/// `shapes` (static shapes per value, where known) become the declared shapes.
pub fn apply(
    graph: &Graph,
    folded: &HashMap<ValueId, Arc<Tensor>>,
    shapes: &[Option<Vec<usize>>],
) -> Graph {
    let mut g = graph.clone();
    for (id, t) in folded {
        g.constants.insert(*id, t.clone());
    }
    g.nodes.retain(|n| {
        !n.outputs
            .iter()
            .flatten()
            .all(|o| g.constants.contains_key(o))
            || n.outputs.iter().all(|o| o.is_none())
    });
    remove_dead_nodes(&mut g);
    // Graph inputs keep their declared (possibly dynamic) shapes: the prepared graph still
    // accepts batches, which the runner splits into samples.
    let inputs: Vec<usize> = g.inputs.iter().map(|i| i.0).collect();
    for (i, v) in g.values.iter_mut().enumerate() {
        if inputs.contains(&i) {
            continue;
        }
        if let Some(Some(s)) = shapes.get(i) {
            v.shape = Some(s.iter().map(|&d| Dim::Fixed(d)).collect());
        }
    }
    let used = used_values(&g);
    g.constants.retain(|id, _| used[id.0]);
    g
}

/// Removes nodes none of whose outputs reach a graph output.
pub fn remove_dead_nodes(g: &mut Graph) {
    let mut live = vec![false; g.values.len()];
    for o in &g.outputs {
        live[o.0] = true;
    }
    let mut keep = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate().rev() {
        if n.outputs.iter().flatten().any(|o| live[o.0]) {
            keep[i] = true;
            for v in n.inputs.iter().flatten() {
                live[v.0] = true;
            }
        }
    }
    let mut i = 0;
    g.nodes.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

fn used_values(g: &Graph) -> Vec<bool> {
    let mut used = vec![false; g.values.len()];
    for n in &g.nodes {
        for v in n.inputs.iter().flatten() {
            used[v.0] = true;
        }
    }
    for o in &g.outputs {
        used[o.0] = true;
    }
    used
}
