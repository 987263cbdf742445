//! The quantization plan of a session's current state, rebuilt from what the session
//! holds (activation ranges, scales and offsets) and the model (weights): what
//! `qtune export --session` writes, without calibrating again.

use std::collections::BTreeMap;

use crate::calib::{ActivationParams, CalibCase};
use crate::ir::Graph;
use crate::quant::calibrate::quantize_layer_weights;
use crate::quant::{LayerRef, QuantError, QuantPlan};

use super::Session;

/// The plan of `session.current` for `graph` (the model prepared for the session's sample
/// shapes) and its `layers`, with the exclude list to apply. Errors when the current
/// state quantizes nothing (no setting: the FP16 fallback).
pub fn current_plan(
    session: &Session,
    graph: &Graph,
    layers: &[LayerRef],
) -> Result<(QuantPlan, Vec<String>), QuantError> {
    let index = session.current.setting.ok_or_else(|| {
        QuantError::Invalid(
            "the session's current result quantizes nothing (FP16 fallback): there is no INT8 model to export"
                .into(),
        )
    })?;
    let record = &session.settings[index];
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
    Ok((plan, session.current.exclude.clone()))
}
