//! Export of what qtune decided: the simulated graph as a QDQ ONNX model, and a TensorRT
//! INT8 calibration cache.

use std::collections::{BTreeMap, HashSet};

use crate::calib::{WeightType, weight_quant};
use crate::engine::fold_constants;
use crate::ir::Graph;
use crate::onnx::export::model_bytes;
use crate::onnx::upgrade::{QDQ_OPSET, upgrade_to_13};

use super::layers::find_layers;
use super::plan::QuantPlan;
use super::{QuantError, apply};

/// An exported QDQ model.
pub struct QdqModel {
    pub bytes: Vec<u8>,
    pub opset: i64,
    /// Why the export deviates from the plan (e.g. per-tensor weights), if it does.
    pub warnings: Vec<String>,
}

/// Builds the QDQ model of `original` (the model as loaded): constant sub-graphs folded
/// (input shapes stay dynamic), Q/DQ inserted exactly as the simulation does, the opset
/// raised to 13 for per-channel weights. When the upgrade is impossible the weights fall
/// back to per-tensor scales (opset 10–12), with a warning.
pub fn export_qdq(
    original: &Graph,
    plan: &QuantPlan,
    exclude: &HashSet<String>,
    metadata: &[(String, String)],
) -> Result<QdqModel, QuantError> {
    let folded = fold_constants(original).map_err(|e| QuantError::Invalid(e.to_string()))?;
    let (sim, warnings) = simulate(&folded, plan, exclude)?;
    let opset = sim.opset;
    Ok(QdqModel {
        bytes: model_bytes(&sim, metadata),
        opset,
        warnings,
    })
}

/// The simulated graph of `graph` (weights constant): Q/DQ inserted by `apply`, the opset
/// raised to 13 for per-channel `DequantizeLinear`, or, when a node cannot be converted,
/// the original opset (≥ 10) with per-tensor weights and a warning. The engine evaluates
/// exactly this graph, and export writes it.
pub fn simulate(
    graph: &Graph,
    plan: &QuantPlan,
    exclude: &HashSet<String>,
) -> Result<(Graph, Vec<String>), QuantError> {
    let mut sim = apply(graph, plan, exclude)?;
    let mut warnings = Vec::new();
    if let Err(e) = upgrade_to_13(&mut sim) {
        if graph.opset < 10 {
            return Err(QuantError::Invalid(format!(
                "cannot raise opset {} to {QDQ_OPSET} for QuantizeLinear: {e}",
                graph.opset
            )));
        }
        warnings.push(format!(
            "kept opset {} ({e}); weights are quantized per tensor",
            graph.opset
        ));
        let per_tensor = per_tensor_plan(graph, plan)?;
        sim = apply(graph, &per_tensor, exclude)?;
    }
    Ok((sim, warnings))
}

/// The plan with every weight quantized per tensor.
fn per_tensor_plan(graph: &Graph, plan: &QuantPlan) -> Result<QuantPlan, QuantError> {
    let mut p = plan.clone();
    p.weight_type = WeightType::Scalar;
    for l in find_layers(graph) {
        let Some(w) = l.weight else { continue };
        let a = graph.constants[&w]
            .as_f32()
            .ok_or_else(|| QuantError::Weight {
                name: l.info.name.clone(),
                msg: "not float32".into(),
            })?;
        let data: Vec<f32> = a.iter().copied().collect();
        let wq =
            weight_quant(&data, a.shape(), l.info.layout, WeightType::Scalar).map_err(|e| {
                QuantError::Weight {
                    name: l.info.name.clone(),
                    msg: e.to_string(),
                }
            })?;
        p.weights.insert(l.info.name.clone(), wq);
    }
    Ok(p)
}

/// TensorRT's INT8 calibration cache: a header line, then `tensor: hex` per quantized
/// activation, the hex being the scale as a big-endian float32. TensorRT quantizes
/// symmetrically, so the scale is max(|lo|, |hi|) / 127 whatever `quantize_algo` was.
pub fn trt_cache(plan: &QuantPlan, exclude: &HashSet<String>) -> String {
    let mut tensors = BTreeMap::new();
    for l in &plan.layers {
        if exclude.contains(&l.name) {
            continue;
        }
        for a in &l.activations {
            if let Some(p) = plan.activations.get(a) {
                let scale = (p.threshold() / 127.0) as f32;
                let scale = if scale.is_finite() && scale > 0.0 {
                    scale
                } else {
                    1.0
                };
                tensors.insert(a.clone(), scale);
            }
        }
    }
    let mut out = String::from("TRT-8601-EntropyCalibration2\n");
    for (name, scale) in tensors {
        out.push_str(&format!("{name}: {:08x}\n", scale.to_bits()));
    }
    out
}
