//! The quantization plan of a session's setting, rebuilt from what the session holds
//! (activation ranges, scales and offsets) and the model (weights): what
//! `qtune export --session` writes, without calibrating again.

use std::collections::BTreeMap;

use crate::calib::{ActivationParams, CalibCase};
use crate::ir::Graph;
use crate::quant::calibrate::quantize_layer_weights;
use crate::quant::{LayerRef, QuantError, QuantPlan};

use super::{Session, SettingId};

/// The plan of setting `id` for `graph` (the model prepared for the session's sample
/// shapes) and its `layers`.
pub fn setting_plan(
    session: &Session,
    id: SettingId,
    graph: &Graph,
    layers: &[LayerRef],
) -> Result<QuantPlan, QuantError> {
    let record = session
        .setting(id)
        .ok_or_else(|| QuantError::Invalid(format!("{id} is not in the session")))?;
    let s = &record.setting;
    let activations: BTreeMap<String, ActivationParams> = record
        .activations
        .iter()
        .map(|(name, a)| {
            let p = ActivationParams {
                algo: s.quantize_algo,
                divergence_type: s.divergence,
                bin: s.bin,
                case: if a.ratio.is_some() {
                    CalibCase::Searched
                } else if a.lo == 0.0 && a.hi == 0.0 {
                    CalibCase::AllZero
                } else {
                    CalibCase::SingleBin
                },
                lo: a.lo,
                hi: a.hi,
                scale: a.scale,
                offset: a.offset,
                base: None,
                ratio: a.ratio,
                chosen: None,
                curve: Vec::new(),
                boundary_hit: a.boundary_hit,
                nan_count: 0,
                inf_count: 0,
            };
            (name.clone(), p)
        })
        .collect();
    let plan = QuantPlan {
        algo: s.quantize_algo,
        weight_type: s.weight_type,
        layers: layers.iter().map(|l| l.info.clone()).collect(),
        activations,
        weights: quantize_layer_weights(graph, layers, s.weight_type)?,
        uncalibrated: BTreeMap::new(),
        histograms: BTreeMap::new(),
    };
    Ok(plan)
}
