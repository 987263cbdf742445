//! The one place the quantized graph is built (DESIGN.md decision 3). Evaluation, the
//! tuner, the TUI and export all call [`build`] with the same [`QdqDecision`], so what
//! qtune scores is what it exports: the same opset, the same weight granularity, the same
//! Q/DQ nodes.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::calib::{WeightType, weight_quant};
use crate::engine::fold_constants;
use crate::ir::Graph;
use crate::onnx::upgrade::{QDQ_OPSET, upgrade_to_13};

use super::layers::find_layers;
use super::plan::QuantPlan;
use super::{QuantError, apply};

/// How a model's quantized graph is built: decided once per model, from the model as it
/// is exported (constants folded, input shapes as declared), and applied to every graph
/// built from it, the evaluated (static-shape) one included.
#[derive(Clone, Debug, PartialEq)]
pub struct QdqDecision {
    /// Default-domain opset of the quantized graph.
    pub opset: i64,
    /// Weights may be quantized per channel (`DequantizeLinear` with `axis`, opset ≥ 13).
    pub per_channel: bool,
    /// Why the quantized graph cannot follow the configuration, said wherever its numbers
    /// are shown (empty when it can).
    pub degradations: Vec<String>,
}

/// Decides how `original` (the model as loaded) is quantized: raised to opset 13 for
/// per-channel weights when every node converts, else kept at its opset (≥ 10, the first
/// with QuantizeLinear) with per-tensor weights.
pub fn decide(original: &Graph) -> Result<QdqDecision, QuantError> {
    let mut g = fold_constants(original).map_err(|e| QuantError::Invalid(e.to_string()))?;
    let from = g.opset;
    match upgrade_to_13(&mut g) {
        Ok(()) => Ok(QdqDecision {
            opset: from.max(QDQ_OPSET),
            per_channel: true,
            degradations: Vec::new(),
        }),
        Err(e) if from >= 10 => Ok(QdqDecision {
            opset: from,
            per_channel: false,
            degradations: vec![format!(
                "opset {from} kept ({e}), so weights are quantized per tensor (SCALAR_TYPE) even where VECTOR_TYPE is configured"
            )],
        }),
        Err(e) => Err(QuantError::Invalid(format!(
            "cannot raise opset {from} to {QDQ_OPSET} for QuantizeLinear: {e}"
        ))),
    }
}

/// The quantized graph of `graph` (the model, prepared or folded; weights constant):
/// Q/DQ inserted by `apply` on every layer of `plan` not in `exclude`, weights per tensor
/// when the decision says so, the opset raised as decided.
pub fn build(
    graph: &Graph,
    plan: &QuantPlan,
    exclude: &HashSet<String>,
    decision: &QdqDecision,
) -> Result<Graph, QuantError> {
    let plan = if decision.per_channel || plan.weight_type == WeightType::Scalar {
        Cow::Borrowed(plan)
    } else {
        Cow::Owned(per_tensor_plan(graph, plan)?)
    };
    let mut q = apply(graph, &plan, exclude)?;
    if decision.opset >= QDQ_OPSET {
        upgrade_to_13(&mut q).map_err(|e| {
            QuantError::Invalid(format!(
                "the model's opset could be raised to {QDQ_OPSET} as exported but not as evaluated: {e}"
            ))
        })?;
    }
    Ok(q)
}

/// What the quantized graph of `plan` leaves float although it is not excluded (layers
/// whose input never held a finite value during calibration).
pub fn uncalibrated_notes(plan: &QuantPlan) -> Vec<String> {
    plan.uncalibrated
        .iter()
        .map(|(name, why)| format!("activation `{name}` stays float: {why}"))
        .collect()
}

/// The plan with every weight quantized per tensor.
fn per_tensor_plan(graph: &Graph, plan: &QuantPlan) -> Result<QuantPlan, QuantError> {
    let mut p = plan.clone();
    p.weight_type = WeightType::Scalar;
    for l in find_layers(graph) {
        let Some(w) = l.weight else { continue };
        let a = graph
            .constants
            .get(&w)
            .and_then(|t| t.as_f32())
            .ok_or_else(|| QuantError::Weight {
                name: l.info.name.clone(),
                msg: "not a float32 constant".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_at_opset_11_is_quantized_per_channel_at_opset_13_both_as_evaluated_and_as_exported()
    {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/ppocr-cls.onnx");
        let m = crate::onnx::load_model(&path).unwrap();
        assert_eq!(m.graph.opset, 11);
        let d = decide(&m.graph).unwrap();
        assert_eq!((d.opset, d.per_channel), (13, true));
        assert!(d.degradations.is_empty(), "{:?}", d.degradations);
        // The prepared (static-shape) graph raises the same way.
        let prepared = crate::engine::prepare(&m.graph, &[vec![1, 3, 48, 192]]).unwrap();
        let mut g = prepared.clone();
        upgrade_to_13(&mut g).unwrap();
        assert_eq!(g.opset, 13);
    }
}
