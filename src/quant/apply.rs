//! The quantized simulation as a graph transform (DESIGN.md decision 3): a
//! `QuantizeLinear`/`DequantizeLinear` pair on every activation input of each quantized
//! layer, int8 weights behind a `DequantizeLinear` (per channel via `axis`), int32 biases
//! likewise. The engine runs the result; export writes the very same graph.

use std::collections::{BTreeMap, HashMap, HashSet};

use ndarray::{ArrayD, IxDyn};

use crate::calib::{QuantizeAlgo, WeightQuant, quantize_bias, quantize_weights};
use crate::ir::{Attr, Graph, Node, Tensor, ValueId};

use super::QuantError;
use super::layers::find_layers;
use super::plan::QuantPlan;

/// Builds the simulated graph: every layer of `plan` not named in `exclude` is quantized.
/// `graph` must be the prepared graph the plan was calibrated on (weights constant).
pub fn apply(
    graph: &Graph,
    plan: &QuantPlan,
    exclude: &HashSet<String>,
) -> Result<Graph, QuantError> {
    let mut g = graph.clone();
    g.nodes.clear();
    let layers: HashMap<usize, _> = find_layers(graph)
        .into_iter()
        .map(|l| (l.node.0, l))
        .collect();
    // One Q/DQ pair per activation value, shared by every quantized consumer.
    let mut dq_of: HashMap<ValueId, ValueId> = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let mut node = node.clone();
        if let Some(layer) = layers
            .get(&i)
            .filter(|l| !exclude.contains(&l.info.name) && plan.is_calibrated(&l.info))
        {
            let mut x_scale = None;
            for &a in &layer.activations {
                let name = graph.value_name(a).to_string();
                let p = &plan.activations[&name];
                x_scale.get_or_insert(p.scale);
                let dq = match dq_of.get(&a) {
                    Some(&dq) => dq,
                    None => {
                        let dq = insert_qdq(&mut g, a, p.algo, p.scale, p.offset);
                        dq_of.insert(a, dq);
                        dq
                    }
                };
                for inp in node.inputs.iter_mut() {
                    if *inp == Some(a) {
                        *inp = Some(dq);
                    }
                }
            }
            if let (Some(w), Some(wq)) = (layer.weight, plan.weights.get(&layer.info.name)) {
                let dq_w = insert_weight(&mut g, w, wq)?;
                node.inputs[1] = Some(dq_w);
                if let (Some(b), Some(sx)) = (layer.bias, x_scale) {
                    let dq_b = insert_bias(&mut g, b, sx, wq)?;
                    node.inputs[2] = Some(dq_b);
                }
            }
        }
        g.nodes.push(node);
    }
    crate::ir::fold::remove_dead_nodes(&mut g);
    let used: HashSet<ValueId> = g
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().flatten().copied())
        .collect();
    g.constants
        .retain(|id, _| used.contains(id) || g.outputs.contains(id));
    Ok(g)
}

fn node(
    name: String,
    op_type: &str,
    inputs: Vec<ValueId>,
    output: ValueId,
    attrs: BTreeMap<String, Attr>,
) -> Node {
    Node {
        name,
        op_type: op_type.to_string(),
        domain: String::new(),
        inputs: inputs.into_iter().map(Some).collect(),
        outputs: vec![Some(output)],
        attrs,
    }
}

/// Appends `QuantizeLinear → DequantizeLinear` on value `a`; returns the dequantized value.
fn insert_qdq(g: &mut Graph, a: ValueId, algo: QuantizeAlgo, scale: f32, offset: i32) -> ValueId {
    let base = g.value_name(a).to_string();
    let scale_v = g.add_constant(
        g.fresh_name(&format!("{base}_scale")),
        Tensor::scalar_f32(scale),
    );
    let zp = match algo {
        QuantizeAlgo::HalfOffset => {
            Tensor::U8(ArrayD::from_elem(IxDyn(&[]), (-offset).clamp(0, 255) as u8))
        }
        QuantizeAlgo::NonOffset => Tensor::I8(ArrayD::from_elem(IxDyn(&[]), 0)),
    };
    let zp_v = g.add_constant(g.fresh_name(&format!("{base}_zero_point")), zp);
    let q = g.add_value(g.fresh_name(&format!("{base}_QuantizeLinear_Output")), None);
    let dq = g.add_value(
        g.fresh_name(&format!("{base}_DequantizeLinear_Output")),
        None,
    );
    let qn = node(
        format!("{base}_QuantizeLinear"),
        "QuantizeLinear",
        vec![a, scale_v, zp_v],
        q,
        BTreeMap::new(),
    );
    let dqn = node(
        format!("{base}_DequantizeLinear"),
        "DequantizeLinear",
        vec![q, scale_v, zp_v],
        dq,
        BTreeMap::new(),
    );
    g.nodes.push(qn);
    g.nodes.push(dqn);
    dq
}

fn axis_attrs(axis: Option<usize>) -> BTreeMap<String, Attr> {
    axis.map(|a| BTreeMap::from([("axis".to_string(), Attr::Int(a as i64))]))
        .unwrap_or_default()
}

fn scales_tensor(scales: &[f32], per_channel: bool) -> Tensor {
    if per_channel {
        Tensor::from_f32(&[scales.len()], scales.to_vec())
    } else {
        Tensor::scalar_f32(scales[0])
    }
}

/// Replaces a constant weight by int8 values behind a `DequantizeLinear`.
fn insert_weight(g: &mut Graph, w: ValueId, wq: &WeightQuant) -> Result<ValueId, QuantError> {
    let name = g.value_name(w).to_string();
    let t = g.constants[&w].clone();
    let a = t.as_f32().ok_or_else(|| QuantError::Weight {
        name: name.clone(),
        msg: "is not float32".into(),
    })?;
    let data: Vec<f32> = a.iter().copied().collect();
    let q = quantize_weights(&data, a.shape(), wq).map_err(|e| QuantError::Weight {
        name: name.clone(),
        msg: e.to_string(),
    })?;
    let qv = g.add_constant(
        g.fresh_name(&format!("{name}_quantized")),
        Tensor::I8(ArrayD::from_shape_vec(IxDyn(a.shape()), q).expect("same size")),
    );
    let per_channel = wq.axis.is_some();
    let sv = g.add_constant(
        g.fresh_name(&format!("{name}_scale")),
        scales_tensor(&wq.scales, per_channel),
    );
    let zp_shape: &[usize] = if per_channel { &[wq.scales.len()] } else { &[] };
    let zv = g.add_constant(
        g.fresh_name(&format!("{name}_zero_point")),
        Tensor::I8(ArrayD::zeros(IxDyn(zp_shape))),
    );
    let out = g.add_value(
        g.fresh_name(&format!("{name}_DequantizeLinear_Output")),
        None,
    );
    g.nodes.push(node(
        format!("{name}_DequantizeLinear"),
        "DequantizeLinear",
        vec![qv, sv, zv],
        out,
        axis_attrs(wq.axis),
    ));
    Ok(out)
}

/// Replaces a constant 1-D bias by int32 values (scale = activation scale × weight scale).
fn insert_bias(
    g: &mut Graph,
    b: ValueId,
    scale_x: f32,
    wq: &WeightQuant,
) -> Result<ValueId, QuantError> {
    let name = g.value_name(b).to_string();
    let t = g.constants[&b].clone();
    let a = t
        .as_f32()
        .filter(|a| a.ndim() == 1)
        .ok_or_else(|| QuantError::Weight {
            name: name.clone(),
            msg: "bias is not a 1-D float32 tensor".into(),
        })?;
    let data: Vec<f32> = a.iter().copied().collect();
    let (q, scales) =
        quantize_bias(&data, scale_x, &wq.scales).map_err(|e| QuantError::Weight {
            name: name.clone(),
            msg: e.to_string(),
        })?;
    let n = q.len();
    let qv = g.add_constant(
        g.fresh_name(&format!("{name}_quantized")),
        Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[n]), q).expect("same size")),
    );
    let sv = g.add_constant(
        g.fresh_name(&format!("{name}_scale")),
        Tensor::from_f32(&[n], scales),
    );
    let zv = g.add_constant(
        g.fresh_name(&format!("{name}_zero_point")),
        Tensor::I32(ArrayD::zeros(IxDyn(&[n]))),
    );
    let out = g.add_value(
        g.fresh_name(&format!("{name}_DequantizeLinear_Output")),
        None,
    );
    g.nodes.push(node(
        format!("{name}_DequantizeLinear"),
        "DequantizeLinear",
        vec![qv, sv, zv],
        out,
        axis_attrs(Some(0)),
    ));
    Ok(out)
}
