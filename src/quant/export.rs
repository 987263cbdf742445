//! Export of what qtune decided: the simulated graph as a QDQ ONNX model, and a TensorRT
//! INT8 calibration cache.

use std::collections::{BTreeMap, HashSet};

use crate::engine::fold_constants;
use crate::ir::Graph;
use crate::onnx::export::model_bytes;

use super::QuantError;
use super::build::{QdqDecision, build};
use super::plan::QuantPlan;

/// An exported QDQ model.
pub struct QdqModel {
    pub bytes: Vec<u8>,
    pub opset: i64,
}

/// Builds the QDQ model of `original` (the model as loaded): constant sub-graphs folded
/// (input shapes stay dynamic), then the quantized graph exactly as evaluation builds it
/// ([`build`], with the model's `decision`).
pub fn export_qdq(
    original: &Graph,
    plan: &QuantPlan,
    exclude: &HashSet<String>,
    decision: &QdqDecision,
    metadata: &[(String, String)],
) -> Result<QdqModel, QuantError> {
    let folded = fold_constants(original).map_err(|e| QuantError::Invalid(e.to_string()))?;
    let q = build(&folded, plan, exclude, decision)?;
    Ok(QdqModel {
        bytes: model_bytes(&q, metadata),
        opset: q.opset,
    })
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
