//! `QuantPlan`: the quantization parameters of every activation and weight of a model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calib::{ActivationParams, DisplayHistogram, QuantizeAlgo, WeightQuant, WeightType};

use super::layers::Layer;

/// Everything `apply` needs to build the simulated graph, serializable as a parameter record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantPlan {
    pub algo: QuantizeAlgo,
    pub weight_type: WeightType,
    /// The quantizable layers, in graph order.
    pub layers: Vec<Layer>,
    /// Per activation value name: the calibrated range, scale, offset and divergence curve.
    pub activations: BTreeMap<String, ActivationParams>,
    /// Per layer name: the weight scales (per channel or per tensor).
    pub weights: BTreeMap<String, WeightQuant>,
    /// Activations that could not be calibrated (no finite value seen) stay float, with why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub uncalibrated: BTreeMap<String, String>,
    /// Per activation value name: a compact histogram for display.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, DisplayHistogram>,
}

impl QuantPlan {
    /// A digest of what the quantized graph depends on (weight scales and every
    /// activation's scale and offset): equal fingerprints quantize identically.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.weight_type.as_str());
        for (name, p) in &self.activations {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(p.scale.to_le_bytes());
            h.update(p.offset.to_le_bytes());
        }
        for name in self.uncalibrated.keys() {
            h.update(b"float:");
            h.update(name.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Whether every activation of `layer` has parameters (otherwise it runs in float).
    pub fn is_calibrated(&self, layer: &Layer) -> bool {
        layer
            .activations
            .iter()
            .all(|a| self.activations.contains_key(a))
    }
}
