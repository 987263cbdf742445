//! The result of one evaluation: the metric in FP32 and INT8, and per-layer fidelity.

use serde::{Deserialize, Serialize};

use crate::config::Metric;

/// How faithfully one layer's output survives quantization (INT8 run against FP32 run,
/// over all evaluation samples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerFidelity {
    pub name: String,
    pub op_type: String,
    #[serde(with = "crate::serde_num::f64_any")]
    pub cosine: f64,
    #[serde(with = "crate::serde_num::f64_any")]
    pub sqnr_db: f64,
    /// Whether the layer was quantized in this run (false = excluded or uncalibrated).
    pub quantized: bool,
}

/// One evaluation of a quantized model against its FP32 original.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalReport {
    pub metric: Metric,
    #[serde(with = "crate::serde_num::f64_any")]
    pub fp32: f64,
    #[serde(with = "crate::serde_num::f64_any")]
    pub int8: f64,
    /// INT8 − FP32.
    #[serde(with = "crate::serde_num::f64_any")]
    pub delta: f64,
    #[serde(with = "crate::serde_num::f64_any")]
    pub max_drop: f64,
    /// INT8 ≥ FP32 − max_drop.
    pub target_met: bool,
    pub samples: usize,
    /// Cosine similarity and SQNR of all model outputs, INT8 against FP32.
    #[serde(with = "crate::serde_num::f64_any")]
    pub output_cosine: f64,
    #[serde(with = "crate::serde_num::f64_any")]
    pub output_sqnr_db: f64,
    /// Per layer, in graph order.
    pub layers: Vec<LayerFidelity>,
    #[serde(with = "crate::serde_num::f64_any")]
    pub seconds: f64,
    /// Why the metric is not valid (outputs holding NaN or ±Inf, with the first layer that
    /// produced them); such an evaluation never meets the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl EvalReport {
    /// Layers sorted worst first (lowest SQNR, then lowest cosine).
    pub fn worst_first(&self) -> Vec<&LayerFidelity> {
        let mut v: Vec<&LayerFidelity> = self.layers.iter().collect();
        v.sort_by(|a, b| {
            a.sqnr_db
                .total_cmp(&b.sqnr_db)
                .then(a.cosine.total_cmp(&b.cosine))
        });
        v
    }
}
