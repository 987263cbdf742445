//! Calibration parameters with the seed's (HiAI) spellings, and their validation (CALIBRATION.md §0).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::CalibError;
use super::search::candidate_count;

/// `bin` value used when the configuration says 0 (or leaves it unset).
pub const DEFAULT_BIN: u32 = 150;
/// Smallest accepted `bin` (after 0 → 150).
pub const MIN_BIN: u32 = 2;
/// Largest accepted `bin`.
pub const MAX_BIN: u32 = 4096;
/// The `PERCENTILE_MID` alias of `max_percentile`.
pub const PERCENTILE_MID: f64 = 0.99999;
/// Largest accepted number of ratio candidates.
pub const MAX_CANDIDATES: usize = 100_000;

/// Finds `s` among `names` (exact spelling) or reports the key and the allowed spellings.
fn parse_named<T: Copy>(
    key: &'static str,
    allowed: &'static str,
    s: &str,
    table: &[(&str, T)],
) -> Result<T, CalibError> {
    table
        .iter()
        .find(|(name, _)| *name == s)
        .map(|&(_, v)| v)
        .ok_or_else(|| CalibError::InvalidParam {
            key,
            value: format!("`{s}`"),
            allowed,
        })
}

/// `quantize_algo`: how activations are quantized (weights are always int8 without offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum QuantizeAlgo {
    /// int8 activations, symmetric range [−T, T], no offset.
    #[serde(rename = "NON_OFFSET")]
    NonOffset,
    /// uint8 activations with an offset (ONNX zero point = −offset), range [lo, hi] ∋ 0.
    #[default]
    #[serde(rename = "HALF_OFFSET")]
    HalfOffset,
}

impl QuantizeAlgo {
    /// Every variant, in documentation order.
    pub const ALL: [QuantizeAlgo; 2] = [QuantizeAlgo::NonOffset, QuantizeAlgo::HalfOffset];

    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            QuantizeAlgo::NonOffset => "NON_OFFSET",
            QuantizeAlgo::HalfOffset => "HALF_OFFSET",
        }
    }
}

impl FromStr for QuantizeAlgo {
    type Err = CalibError;
    fn from_str(s: &str) -> Result<Self, CalibError> {
        let table = Self::ALL.map(|v| (v.as_str(), v));
        parse_named("quantize_algo", "NON_OFFSET, HALF_OFFSET", s, &table)
    }
}

impl fmt::Display for QuantizeAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `weight_type`: per-output-channel or per-tensor weight scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum WeightType {
    /// One scale per output channel (the channel axis of the op, see [`super::WeightLayout`]).
    #[default]
    #[serde(rename = "VECTOR_TYPE")]
    Vector,
    /// One scale for the whole tensor.
    #[serde(rename = "SCALAR_TYPE")]
    Scalar,
}

impl WeightType {
    /// Every variant, in documentation order.
    pub const ALL: [WeightType; 2] = [WeightType::Vector, WeightType::Scalar];

    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightType::Vector => "VECTOR_TYPE",
            WeightType::Scalar => "SCALAR_TYPE",
        }
    }
}

impl FromStr for WeightType {
    type Err = CalibError;
    fn from_str(s: &str) -> Result<Self, CalibError> {
        let table = Self::ALL.map(|v| (v.as_str(), v));
        parse_named("weight_type", "VECTOR_TYPE, SCALAR_TYPE", s, &table)
    }
}

impl fmt::Display for WeightType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `type`: the divergence between the clipped distribution P and its quantized version Q (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DivergenceType {
    /// Kullback–Leibler KL(P‖Q), nats.
    #[default]
    #[serde(rename = "KL")]
    Kl,
    /// Jeffreys divergence KL(P‖Q) + KL(Q‖P) (not halved).
    #[serde(rename = "SYMKL")]
    SymKl,
    /// Jensen–Shannon divergence, nats (≤ ln 2).
    #[serde(rename = "JSD")]
    Jsd,
}

impl DivergenceType {
    /// Every variant, in documentation order (also the index order of [`super::AllCurves`]).
    pub const ALL: [DivergenceType; 3] = [
        DivergenceType::Kl,
        DivergenceType::SymKl,
        DivergenceType::Jsd,
    ];

    /// The seed's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceType::Kl => "KL",
            DivergenceType::SymKl => "SYMKL",
            DivergenceType::Jsd => "JSD",
        }
    }

    /// Position in [`DivergenceType::ALL`].
    pub fn index(self) -> usize {
        match self {
            DivergenceType::Kl => 0,
            DivergenceType::SymKl => 1,
            DivergenceType::Jsd => 2,
        }
    }
}

impl FromStr for DivergenceType {
    type Err = CalibError;
    fn from_str(s: &str) -> Result<Self, CalibError> {
        let table = Self::ALL.map(|v| (v.as_str(), v));
        parse_named("type", "KL, SYMKL, JSD", s, &table)
    }
}

impl fmt::Display for DivergenceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parameters of one activation search (§0), serialized with the configuration keys
/// (`quantize_algo`, `bin`, `type`, `start_ratio`, `end_ratio`, `step_ratio`, `max_percentile`).
/// Missing keys take the defaults. Call [`SearchParams::validate`] before use (the search does).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchParams {
    /// `quantize_algo`.
    #[serde(rename = "quantize_algo")]
    pub algo: QuantizeAlgo,
    /// `bin`: cells of the surrogate quantizer; 0 means [`DEFAULT_BIN`].
    pub bin: u32,
    /// `type`.
    #[serde(rename = "type")]
    pub divergence: DivergenceType,
    /// `start_ratio` (> 0).
    pub start_ratio: f64,
    /// `end_ratio` (≥ `start_ratio`, inclusive up to 1e-9 steps).
    pub end_ratio: f64,
    /// `step_ratio` (> 0).
    pub step_ratio: f64,
    /// `max_percentile` p, 0 < p ≤ 1.
    pub max_percentile: f64,
}

impl Default for SearchParams {
    /// HALF_OFFSET, bin 150, KL, ratios 0.7..1.3 step 0.01, max_percentile 1.0.
    fn default() -> Self {
        SearchParams {
            algo: QuantizeAlgo::HalfOffset,
            bin: DEFAULT_BIN,
            divergence: DivergenceType::Kl,
            start_ratio: 0.7,
            end_ratio: 1.3,
            step_ratio: 0.01,
            max_percentile: 1.0,
        }
    }
}

impl SearchParams {
    /// The `bin` actually used: 0 means [`DEFAULT_BIN`].
    pub fn effective_bin(&self) -> u32 {
        if self.bin == 0 { DEFAULT_BIN } else { self.bin }
    }

    /// Checks the §0 rules. The error names the key, the value and the allowed values.
    pub fn validate(&self) -> Result<(), CalibError> {
        let bad = |key: &'static str, value: f64, allowed: &'static str| {
            Err(CalibError::InvalidParam {
                key,
                value: format!("{value}"),
                allowed,
            })
        };
        let bin = self.effective_bin();
        if !(MIN_BIN..=MAX_BIN).contains(&bin) {
            return Err(CalibError::InvalidParam {
                key: "bin",
                value: self.bin.to_string(),
                allowed: "0 (means 150) or 2..=4096",
            });
        }
        if !(self.start_ratio > 0.0 && self.start_ratio.is_finite()) {
            return bad("start_ratio", self.start_ratio, "a finite number > 0");
        }
        if !(self.step_ratio > 0.0 && self.step_ratio.is_finite()) {
            return bad("step_ratio", self.step_ratio, "a finite number > 0");
        }
        if !(self.end_ratio >= self.start_ratio && self.end_ratio.is_finite()) {
            return bad(
                "end_ratio",
                self.end_ratio,
                "a finite number >= start_ratio",
            );
        }
        if !(self.max_percentile > 0.0 && self.max_percentile <= 1.0) {
            return bad(
                "max_percentile",
                self.max_percentile,
                "0 < p <= 1 (PERCENTILE_MID = 0.99999)",
            );
        }
        let count = candidate_count(self.start_ratio, self.end_ratio, self.step_ratio);
        if count > MAX_CANDIDATES as f64 {
            return Err(CalibError::InvalidParam {
                key: "step_ratio",
                value: format!(
                    "{} ({count} candidates from {} to {})",
                    self.step_ratio, self.start_ratio, self.end_ratio
                ),
                allowed: "a step giving at most 100000 candidates",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for a in QuantizeAlgo::ALL {
            assert_eq!(a.as_str().parse::<QuantizeAlgo>().unwrap(), a);
            let json = format!("\"{}\"", a.as_str());
            assert_eq!(serde_json::to_string(&a).unwrap(), json);
            assert_eq!(serde_json::from_str::<QuantizeAlgo>(&json).unwrap(), a);
        }
        for w in WeightType::ALL {
            assert_eq!(w.as_str().parse::<WeightType>().unwrap(), w);
            assert_eq!(serde_json::to_string(&w).unwrap(), format!("\"{w}\""));
        }
        for (i, d) in DivergenceType::ALL.into_iter().enumerate() {
            assert_eq!(d.as_str().parse::<DivergenceType>().unwrap(), d);
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
            assert_eq!(d.index(), i);
        }
        let err = "kl".parse::<DivergenceType>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `type` = `kl`: allowed KL, SYMKL, JSD"
        );
        assert!(matches!(
            "VECTOR".parse::<WeightType>(),
            Err(CalibError::InvalidParam {
                key: "weight_type",
                ..
            })
        ));
    }

    #[test]
    fn defaults_and_serde_keys() {
        let p = SearchParams::default();
        assert_eq!(p.algo, QuantizeAlgo::HalfOffset);
        assert_eq!((p.bin, p.divergence), (150, DivergenceType::Kl));
        assert_eq!((p.start_ratio, p.end_ratio, p.step_ratio), (0.7, 1.3, 0.01));
        assert_eq!(p.max_percentile, 1.0);
        p.validate().unwrap();
        let v: SearchParams =
            serde_json::from_str(r#"{"quantize_algo":"NON_OFFSET","type":"JSD","bin":0}"#).unwrap();
        assert_eq!(v.algo, QuantizeAlgo::NonOffset);
        assert_eq!(v.divergence, DivergenceType::Jsd);
        assert_eq!(v.effective_bin(), 150);
        v.validate().unwrap();
    }

    #[test]
    fn validation_names_key() {
        let key_of = |p: SearchParams| match p.validate() {
            Err(CalibError::InvalidParam { key, .. }) => key,
            other => panic!("expected an error, got {other:?}"),
        };
        let d = SearchParams::default();
        assert_eq!(key_of(SearchParams { bin: 1, ..d }), "bin");
        assert_eq!(key_of(SearchParams { bin: 4097, ..d }), "bin");
        assert_eq!(
            key_of(SearchParams {
                start_ratio: 0.0,
                ..d
            }),
            "start_ratio"
        );
        assert_eq!(
            key_of(SearchParams {
                step_ratio: -0.1,
                ..d
            }),
            "step_ratio"
        );
        assert_eq!(
            key_of(SearchParams {
                step_ratio: f64::NAN,
                ..d
            }),
            "step_ratio"
        );
        assert_eq!(
            key_of(SearchParams {
                end_ratio: 0.5,
                ..d
            }),
            "end_ratio"
        );
        assert_eq!(
            key_of(SearchParams {
                max_percentile: 0.0,
                ..d
            }),
            "max_percentile"
        );
        assert_eq!(
            key_of(SearchParams {
                max_percentile: 1.01,
                ..d
            }),
            "max_percentile"
        );
        assert_eq!(
            key_of(SearchParams {
                step_ratio: 1e-9,
                ..d
            }),
            "step_ratio"
        );
        SearchParams { bin: 2, ..d }.validate().unwrap();
        SearchParams { bin: 4096, ..d }.validate().unwrap();
        // exactly 100 000 candidates is allowed
        SearchParams {
            start_ratio: 1.0,
            end_ratio: 100_000.0,
            step_ratio: 1.0,
            ..d
        }
        .validate()
        .unwrap();
        let msg = SearchParams { bin: 1, ..d }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`bin` = 1") && msg.contains("2..=4096"),
            "{msg}"
        );
    }
}
