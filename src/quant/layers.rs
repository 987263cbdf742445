//! Which nodes are quantized layers, and which of their inputs are activations,
//! weights and biases.

use serde::{Deserialize, Serialize};

use crate::calib::WeightLayout;
use crate::ir::{Attr, Graph, NodeId, ValueId, is_layer};

/// A quantizable layer of a (prepared) graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Node name (stable across runs; `<OpType>_<index>` for unnamed nodes).
    pub name: String,
    pub op_type: String,
    /// Names of the inputs quantized with calibrated activation parameters.
    pub activations: Vec<String>,
    /// Name of the constant weight input, if any.
    pub weight: Option<String>,
    /// Name of the constant bias input (Conv/ConvTranspose input 2, Gemm C when 1-D), if any.
    pub bias: Option<String>,
    pub layout: WeightLayout,
    /// Name of the layer's (first) output.
    pub output: String,
}

/// A layer with the ids it refers to in a particular graph.
#[derive(Clone, Debug)]
pub struct LayerRef {
    pub node: NodeId,
    pub activations: Vec<ValueId>,
    pub weight: Option<ValueId>,
    pub bias: Option<ValueId>,
    pub info: Layer,
}

/// The quantizable layers of `graph`, in graph order. Constant inputs count as weights;
/// a MatMul/Gemm whose second operand is not constant quantizes both operands as activations.
pub fn find_layers(graph: &Graph) -> Vec<LayerRef> {
    let is_const = |v: Option<ValueId>| v.is_some_and(|v| graph.constants.contains_key(&v));
    let mut out = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        if !is_layer(n) {
            continue;
        }
        let (Some(x), Some(out_v)) = (n.input(0), n.output(0)) else {
            continue;
        };
        let w = n.input(1);
        let attr_int = |k: &str| match n.attrs.get(k) {
            Some(Attr::Int(v)) => *v,
            _ => 0,
        };
        let layout = match n.op_type.as_str() {
            "Conv" => WeightLayout::Conv,
            "ConvTranspose" => WeightLayout::ConvTranspose {
                group: attr_int("group").max(1) as usize,
            },
            "Gemm" => WeightLayout::Gemm {
                trans_b: attr_int("transB") != 0,
            },
            _ => WeightLayout::MatMulB,
        };
        let mut activations = vec![x];
        let weight = if is_const(w) {
            w
        } else {
            if let Some(w) = w {
                activations.push(w);
            }
            None
        };
        let bias_candidate = n.input(2).filter(|b| is_const(Some(*b)));
        let bias = match n.op_type.as_str() {
            "Conv" | "ConvTranspose" => bias_candidate,
            "Gemm" => bias_candidate.filter(|b| graph.constants[b].rank() == 1 && weight.is_some()),
            _ => None,
        };
        if activations.iter().any(|a| graph.constants.contains_key(a)) {
            continue; // a constant data input (e.g. constant A of a MatMul) is not an activation
        }
        let name = |v: ValueId| graph.value_name(v).to_string();
        out.push(LayerRef {
            node: NodeId(i),
            activations: activations.clone(),
            weight,
            bias,
            info: Layer {
                name: n.name.clone(),
                op_type: n.op_type.clone(),
                activations: activations.into_iter().map(name).collect(),
                weight: weight.map(name),
                bias: bias.map(name),
                layout,
                output: name(out_v),
            },
        });
    }
    out
}

/// Multiply-accumulates of one run of `layer` in `graph` (a prepared graph: static shapes);
/// 0 when a shape is unknown.
pub fn layer_macs(graph: &Graph, layer: &LayerRef) -> u64 {
    let dims = |v: ValueId| -> Option<Vec<u64>> {
        graph
            .value(v)
            .shape
            .as_ref()?
            .iter()
            .map(|d| match d {
                crate::ir::Dim::Fixed(n) => Some(*n as u64),
                crate::ir::Dim::Dynamic(_) => None,
            })
            .collect()
    };
    let elems = |s: &[u64]| s.iter().product::<u64>();
    let Some(node) = graph.nodes.get(layer.node.0) else {
        return 0;
    };
    let (Some(x), Some(out)) = (layer.activations.first(), node.output(0)) else {
        return 0;
    };
    let (Some(x), Some(y)) = (dims(*x), dims(out)) else {
        return 0;
    };
    let w = node.input(1).and_then(|w| {
        dims(w).or_else(|| {
            graph
                .constants
                .get(&w)
                .map(|t| t.shape().iter().map(|&d| d as u64).collect())
        })
    });
    let macs = match (node.op_type.as_str(), w.as_deref()) {
        ("Conv", Some([_, rest @ ..])) => elems(&y).saturating_mul(elems(rest)),
        ("ConvTranspose", Some([_, rest @ ..])) => elems(&x).saturating_mul(elems(rest)),
        ("Gemm", _) => {
            let trans_a = matches!(node.attrs.get("transA"), Some(Attr::Int(t)) if *t != 0);
            let k = if trans_a { x.first() } else { x.last() };
            elems(&y).saturating_mul(k.copied().unwrap_or(0))
        }
        ("MatMul", _) => elems(&y).saturating_mul(x.last().copied().unwrap_or(0)),
        _ => 0,
    };
    macs
}
