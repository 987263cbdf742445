//! Raising a graph's default-domain opset to 13, the first with per-axis
//! `DequantizeLinear`, by rewriting the nodes whose signature changed on the way.

use crate::ir::{Attr, Dim, Graph, Tensor};

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
            // Before 13 the input is coerced to 2-D at `axis`: the same as 13 only when
            // `axis` is the last dimension.
            "Softmax" | "LogSoftmax" => {
                let axis = match n.attrs.get("axis") {
                    Some(Attr::Int(a)) => *a,
                    _ => 1,
                };
                let rank = n
                    .input(0)
                    .and_then(|x| graph.value(x).shape.as_ref())
                    .map(Vec::len);
                let last = match rank {
                    Some(r) => axis == -1 || axis == r as i64 - 1,
                    None => axis == -1,
                };
                if !last {
                    return Err(err(
                        "its axis is not the last dimension (opset < 13 semantics)",
                    ));
                }
                graph.nodes[i].attrs.insert("axis".into(), Attr::Int(-1));
            }
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
