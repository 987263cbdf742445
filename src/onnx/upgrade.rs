//! Raising a graph's default-domain opset to 13, the first with per-axis
//! `DequantizeLinear`, by rewriting the nodes whose signature changed on the way.

use crate::ir::{Attr, Dim, Graph, Node, Tensor, ValueId};

/// The opset per-channel QDQ export needs.
pub const QDQ_OPSET: i64 = 13;

/// Why a graph cannot be raised to opset 13.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("node `{node}` ({op_type}): {reason}")]
pub struct UpgradeError {
    pub node: String,
    pub op_type: String,
    pub reason: String,
}

/// Rewrites `graph` (in place) so it is valid at opset ≥ 13. Graphs already at 13 or above
/// are unchanged.
pub fn upgrade_to_13(graph: &mut Graph) -> Result<(), UpgradeError> {
    let from = graph.opset;
    if from >= QDQ_OPSET {
        return Ok(());
    }
    softmax_to_13(graph);
    for i in 0..graph.nodes.len() {
        let n = &graph.nodes[i];
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            continue;
        }
        let err = |reason: &str| UpgradeError {
            node: n.name.clone(),
            op_type: n.op_type.clone(),
            reason: reason.into(),
        };
        match n.op_type.as_str() {
            "ReduceSum" | "Squeeze" | "Unsqueeze" => attr_to_input(graph, i, "axes", 1),
            "Split" => attr_to_input(graph, i, "split", 1),
            "Dropout" if from < 12 => {
                graph.nodes[i].attrs.remove("ratio");
            }
            "Clip" if from < 11 => {
                let attrs = &graph.nodes[i].attrs;
                let get = |k: &str| match attrs.get(k) {
                    Some(Attr::Float(f)) => Some(*f),
                    _ => None,
                };
                let (min, max) = (get("min"), get("max"));
                let name = graph.nodes[i].name.clone();
                let min_v = min.map(|v| {
                    graph.add_constant(
                        graph.fresh_name(&format!("{name}_min")),
                        Tensor::scalar_f32(v),
                    )
                });
                let max_v = max.map(|v| {
                    graph.add_constant(
                        graph.fresh_name(&format!("{name}_max")),
                        Tensor::scalar_f32(v),
                    )
                });
                let node = &mut graph.nodes[i];
                node.attrs.remove("min");
                node.attrs.remove("max");
                node.inputs.truncate(1);
                node.inputs.push(min_v);
                node.inputs.push(max_v);
            }
            "Pad" if from < 11 => {
                let node = &graph.nodes[i];
                let pads = match node.attrs.get("pads") {
                    Some(Attr::Ints(p)) => p.clone(),
                    _ => return Err(err("no `pads` attribute")),
                };
                let value = match node.attrs.get("value") {
                    Some(Attr::Float(f)) => *f,
                    _ => 0.0,
                };
                let name = node.name.clone();
                let p = graph.add_constant(
                    graph.fresh_name(&format!("{name}_pads")),
                    Tensor::from_i64(&[pads.len()], pads),
                );
                let v = graph.add_constant(
                    graph.fresh_name(&format!("{name}_value")),
                    Tensor::scalar_f32(value),
                );
                let node = &mut graph.nodes[i];
                node.attrs.remove("pads");
                node.attrs.remove("value");
                node.inputs.truncate(1);
                node.inputs.push(Some(p));
                node.inputs.push(Some(v));
            }
            "Slice" if from < 10 => return Err(err("Slice before opset 10 is not converted")),
            "Resize" | "Upsample" if from < 11 => {
                return Err(err("Resize/Upsample before opset 11 is not converted"));
            }
            _ => {}
        }
    }
    graph.opset = QDQ_OPSET;
    Ok(())
}

/// Softmax, LogSoftmax and Hardmax before opset 13 coerce their input to 2-D at `axis` and
/// normalize over everything from `axis` on. When `axis` is known to be the last
/// dimension that is the same as opset 13's; otherwise the node becomes
/// `Flatten(axis) → op(axis = -1) → Reshape(Shape(x))`, which computes the same values.
/// Either way the conversion always succeeds, so the decision to raise the opset does not
/// depend on whether shapes are known (export sees dynamic shapes, evaluation static ones).
fn softmax_to_13(graph: &mut Graph) {
    let nodes = std::mem::take(&mut graph.nodes);
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        let is_norm = matches!(n.op_type.as_str(), "Softmax" | "LogSoftmax" | "Hardmax")
            && (n.domain.is_empty() || n.domain == "ai.onnx");
        let (Some(x), Some(y)) = (n.input(0), n.output(0)) else {
            out.push(n);
            continue;
        };
        if !is_norm {
            out.push(n);
            continue;
        }
        let axis = match n.attrs.get("axis") {
            Some(Attr::Int(a)) => *a,
            _ => 1,
        };
        let rank = graph.value(x).shape.as_ref().map(Vec::len);
        let last = axis == -1 || rank.is_some_and(|r| axis == r as i64 - 1);
        let mut n = n;
        if last {
            n.attrs.insert("axis".into(), Attr::Int(-1));
            out.push(n);
            continue;
        }
        let base = n.name.clone();
        let shape = graph.add_value(graph.fresh_name(&format!("{base}_input_shape")), None);
        let flat = graph.add_value(graph.fresh_name(&format!("{base}_flat")), None);
        let flat_out = graph.add_value(graph.fresh_name(&format!("{base}_flat_out")), None);
        let node = |name: String, op: &str, inputs: Vec<ValueId>, output: ValueId| Node {
            name,
            op_type: op.to_string(),
            domain: String::new(),
            inputs: inputs.into_iter().map(Some).collect(),
            outputs: vec![Some(output)],
            attrs: Default::default(),
        };
        out.push(node(format!("{base}_shape"), "Shape", vec![x], shape));
        let mut flatten = node(format!("{base}_flatten"), "Flatten", vec![x], flat);
        flatten.attrs.insert("axis".into(), Attr::Int(axis));
        out.push(flatten);
        n.inputs = vec![Some(flat)];
        n.outputs = vec![Some(flat_out)];
        n.attrs.insert("axis".into(), Attr::Int(-1));
        out.push(n);
        out.push(node(
            format!("{base}_reshape"),
            "Reshape",
            vec![flat_out, shape],
            y,
        ));
    }
    graph.nodes = out;
}

/// Moves an ints attribute into a constant int64 input at position `pos`.
fn attr_to_input(graph: &mut Graph, i: usize, attr: &str, pos: usize) {
    let Some(Attr::Ints(v)) = graph.nodes[i].attrs.remove(attr) else {
        return;
    };
    let name = graph.nodes[i].name.clone();
    let c = graph.add_constant(
        graph.fresh_name(&format!("{name}_{attr}")),
        Tensor::from_i64(&[v.len()], v),
    );
    let node = &mut graph.nodes[i];
    while node.inputs.len() < pos {
        node.inputs.push(None);
    }
    node.inputs.insert(pos, Some(c));
    node.inputs.truncate(pos + 1);
}

/// Whether every dimension of a declared shape is fixed.
pub fn is_static(dims: &[Dim]) -> bool {
    dims.iter().all(|d| matches!(d, Dim::Fixed(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Plan;
    use crate::ir::DType;

    /// x [2,3,4] → Softmax(axis=1) at opset 11, with the rank of x known or not.
    fn softmax(rank_known: bool) -> Graph {
        let mut g = Graph {
            opset: 11,
            ..Graph::default()
        };
        let x = g.add_value("x", Some(DType::F32));
        g.values[x.0].shape = rank_known.then(|| [2, 3, 4].map(Dim::Fixed).to_vec());
        let y = g.add_value("y", None);
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("axis".to_string(), Attr::Int(1));
        g.nodes = vec![Node {
            name: "sm".into(),
            op_type: "Softmax".into(),
            domain: String::new(),
            inputs: vec![Some(x)],
            outputs: vec![Some(y)],
            attrs,
        }];
        g.inputs = vec![x];
        g.outputs = vec![y];
        g
    }

    #[test]
    fn softmax_before_13_converts_with_or_without_shapes_and_computes_the_same() {
        let x: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let run = |g: &Graph| {
            let p = Plan::new(g, &[vec![2, 3, 4]]).unwrap();
            p.run(vec![Tensor::from_f32(&[2, 3, 4], x.clone())])
                .unwrap()
        };
        let want = run(&softmax(true));
        for known in [true, false] {
            let mut g = softmax(known);
            upgrade_to_13(&mut g).unwrap();
            assert_eq!(g.opset, 13);
            // opset 11 normalizes over axes 1 and 2 together: the rewrite must too.
            assert_eq!(run(&g), want, "rank known: {known}");
        }
        let mut g = softmax(false);
        upgrade_to_13(&mut g).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Shape", "Flatten", "Softmax", "Reshape"]);
    }
}
