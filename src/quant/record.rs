//! The parameter record `qtune calibrate -o PARAMS.yaml` writes: per layer the data range,
//! scale, offset, chosen ratio and divergence, the weight scales, and the run's metadata.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RawConfig;
use crate::config::yaml;

use super::QuantError;
use super::plan::QuantPlan;

/// Current format version of the record.
pub const RECORD_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamsRecord {
    pub format: u32,
    pub qtune_version: String,
    /// The model file (absolute path when it was written).
    pub model: String,
    pub model_sha256: String,
    /// The configuration as written.
    pub config: RawConfig,
    /// Calibration samples actually consumed.
    pub calibration_samples: usize,
    /// Shape of one sample per model input (the shapes the plan was calibrated for).
    pub sample_shapes: Vec<Vec<usize>>,
    pub plan: QuantPlan,
}

impl ParamsRecord {
    /// Writes the record as YAML, atomically (temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), QuantError> {
        let text = yaml::to_string(self).map_err(|e| QuantError::Invalid(e.message))?;
        let header = "# qtune parameter record (qtune calibrate); read by `qtune eval --params` and `qtune export --params`\n";
        crate::util::write_atomic(path, format!("{header}{text}").as_bytes())
            .map_err(|e| QuantError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Reads a record.
    pub fn load(path: &Path) -> Result<ParamsRecord, QuantError> {
        let text = crate::util::fs::read_input_text(path, crate::util::budget::limit())
            .map_err(|e| QuantError::Invalid(format!("{}: {e}", path.display())))?;
        let r: ParamsRecord = yaml::from_str(&text).map_err(|e| {
            let at = e.line.map(|l| format!(":{l}")).unwrap_or_default();
            QuantError::Invalid(format!(
                "{}{at}: not a qtune parameter record ({})",
                path.display(),
                e.message
            ))
        })?;
        if r.format != RECORD_FORMAT {
            return Err(QuantError::Invalid(format!(
                "{}: record format {} is not supported (this qtune reads {RECORD_FORMAT})",
                path.display(),
                r.format
            )));
        }
        Ok(r)
    }

    /// Refuses a record made for another model (different file hash or layer names).
    pub fn check_model(
        &self,
        path: &Path,
        sha256: &str,
        layers: &[String],
    ) -> Result<(), QuantError> {
        if self.model_sha256 != sha256 {
            return Err(QuantError::Invalid(format!(
                "{}: this parameter record belongs to another model (sha256 {}…, the model is {}…)",
                path.display(),
                &self.model_sha256.get(..12).unwrap_or(&self.model_sha256),
                &sha256.get(..12).unwrap_or(sha256)
            )));
        }
        let mine: Vec<&String> = self.plan.layers.iter().map(|l| &l.name).collect();
        if mine.len() != layers.len() || mine.iter().zip(layers).any(|(a, b)| *a != b) {
            return Err(QuantError::Invalid(format!(
                "{}: the record's layer names do not match the model's",
                path.display()
            )));
        }
        self.check_values()
            .map_err(|msg| QuantError::Invalid(format!("{}: {msg}", path.display())))
    }

    /// Refuses parameters no calibration produces (a hand-edited record): scales that are
    /// not finite and positive, offsets outside the algorithm's range, and names of
    /// activations or weights that belong to no layer.
    pub fn check_values(&self) -> Result<(), String> {
        let p = &self.plan;
        let e = crate::util::text::escape_control;
        for (name, a) in &p.activations {
            if !p.layers.iter().any(|l| l.activations.contains(name)) {
                return Err(format!(
                    "plan.activations: `{}` is the input of no layer of the model",
                    e(name)
                ));
            }
            if !(a.scale.is_finite() && a.scale >= f32::MIN_POSITIVE) {
                return Err(format!(
                    "plan.activations.{}.scale = {}; allowed: a finite number > 0",
                    e(name),
                    a.scale
                ));
            }
            let (lo, hi) = match a.algo {
                crate::calib::QuantizeAlgo::HalfOffset => (-255, 0),
                crate::calib::QuantizeAlgo::NonOffset => (0, 0),
            };
            if !(lo..=hi).contains(&a.offset) {
                return Err(format!(
                    "plan.activations.{}.offset = {}; allowed for {}: {lo}..={hi}",
                    e(name),
                    a.offset,
                    a.algo
                ));
            }
        }
        for (name, w) in &p.weights {
            if p.layer(name).is_none() {
                return Err(format!(
                    "plan.weights: `{}` is no layer of the model",
                    e(name)
                ));
            }
            if w.scales.is_empty() {
                return Err(format!("plan.weights.{}.scales is empty", e(name)));
            }
            if let Some(s) = w
                .scales
                .iter()
                .find(|s| !(s.is_finite() && **s >= f32::MIN_POSITIVE))
            {
                return Err(format!(
                    "plan.weights.{}.scales holds {s}; allowed: finite numbers > 0",
                    e(name)
                ));
            }
        }
        Ok(())
    }
}
