//! What a calibration produces per activation tensor, in serializable form.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::params::{DivergenceType, QuantizeAlgo};
use super::qparams::ActivationQuant;
use super::search::{Base, select};

/// Which path of §6 produced the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibCase {
    /// A divergence search ran.
    Searched,
    /// Every finite value was 0: range [0, 0], scale 1.0, offset 0.
    AllZero,
    /// At most one occupied fine bin (e.g. a constant): the observed extremes, no search.
    SingleBin,
}

/// A condition worth reporting to the user (the library never prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibWarning {
    /// The chosen candidate is the first or the last: widen `start_ratio`/`end_ratio`.
    BoundaryHit {
        /// The chosen index.
        index: usize,
        /// The number of candidates.
        count: usize,
    },
    /// NaN or ±Inf values were seen and ignored.
    NonFinite {
        /// NaN values.
        nan: u64,
        /// ±Inf values.
        inf: u64,
    },
}

impl fmt::Display for CalibWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalibWarning::BoundaryHit { index, count } => write!(
                f,
                "the search chose candidate {} of {count}, at the boundary of the ratio range",
                index + 1
            ),
            CalibWarning::NonFinite { nan, inf } => {
                write!(f, "{nan} NaN and {inf} Inf values were ignored")
            }
        }
    }
}

/// The calibrated parameters of one activation tensor, with the whole divergence curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationParams {
    /// `quantize_algo` used.
    pub algo: QuantizeAlgo,
    /// `type` used for the selection.
    pub divergence_type: DivergenceType,
    /// `bin` used (after 0 → 150).
    pub bin: u32,
    /// How the range was obtained.
    pub case: CalibCase,
    /// Lower end of the unsnapped range (NON_OFFSET: −T).
    pub lo: f64,
    /// Upper end of the unsnapped range (NON_OFFSET: T).
    pub hi: f64,
    /// The f32 scale.
    pub scale: f32,
    /// The offset (HALF_OFFSET: −zero_point; NON_OFFSET: 0).
    pub offset: i32,
    /// The base value (searches only).
    pub base: Option<Base>,
    /// The chosen ratio (searches only).
    pub ratio: Option<f64>,
    /// The chosen candidate index (searches only).
    pub chosen: Option<usize>,
    /// `(ratio, divergence)` of every candidate; empty without a search. +∞ is stored as null.
    #[serde(with = "inf_as_null_pairs")]
    pub curve: Vec<(f64, f64)>,
    /// The search chose its first or last candidate.
    pub boundary_hit: bool,
    /// NaN values seen (ignored).
    pub nan_count: u64,
    /// ±Inf values seen (ignored).
    pub inf_count: u64,
}

impl ActivationParams {
    /// `T = max(|lo|, |hi|)`, the NON_OFFSET threshold.
    pub fn threshold(&self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }

    /// The divergence of the chosen candidate (searches only; +∞ when every candidate was).
    pub fn divergence(&self) -> Option<f64> {
        self.chosen.and_then(|i| self.curve.get(i)).map(|p| p.1)
    }

    /// The ONNX zero point (0 for int8, `−offset` for uint8).
    pub fn zero_point(&self) -> i32 {
        -self.offset
    }

    /// Quantize/dequantize helper for these parameters.
    pub fn quant(&self) -> ActivationQuant {
        ActivationQuant {
            algo: self.algo,
            scale: self.scale,
            offset: self.offset,
        }
    }

    /// The warnings of §6: boundary hit, NaN/Inf present.
    pub fn warnings(&self) -> Vec<CalibWarning> {
        let mut w = Vec::new();
        if let (true, Some(index)) = (self.boundary_hit, self.chosen) {
            w.push(CalibWarning::BoundaryHit {
                index,
                count: self.curve.len(),
            });
        }
        if self.nan_count > 0 || self.inf_count > 0 {
            w.push(CalibWarning::NonFinite {
                nan: self.nan_count,
                inf: self.inf_count,
            });
        }
        w
    }
}

/// The divergence curves of all three types over the same candidates (the UI shows the
/// selected one and the other two on demand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllCurves {
    /// `r_i`.
    pub ratios: Vec<f64>,
    /// Unsnapped candidate ranges (NON_OFFSET: `[−T_i, T_i]`).
    pub ranges: Vec<(f64, f64)>,
    /// KL, SYMKL and JSD curves, indexed like [`DivergenceType::ALL`]; +∞ stored as null.
    #[serde(with = "inf_as_null_curves")]
    pub curves: [Vec<f64>; 3],
}

impl AllCurves {
    /// The curve of one type.
    pub fn curve(&self, kind: DivergenceType) -> &[f64] {
        &self.curves[kind.index()]
    }

    /// The index §6 selects on the curve of `kind`.
    pub fn chosen(&self, kind: DivergenceType) -> usize {
        select(&self.ratios, self.curve(kind))
    }
}

fn to_opt(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn from_opt(x: Option<f64>) -> f64 {
    x.unwrap_or(f64::INFINITY)
}

/// `Vec<(f64, f64)>` whose second element may be +∞ (written as null).
mod inf_as_null_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[(f64, f64)], s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(f64, Option<f64>)> =
            v.iter().map(|&(r, d)| (r, super::to_opt(d))).collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(f64, f64)>, D::Error> {
        let v: Vec<(f64, Option<f64>)> = Deserialize::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(r, x)| (r, super::from_opt(x)))
            .collect())
    }
}

/// `[Vec<f64>; 3]` whose values may be +∞ (written as null).
mod inf_as_null_curves {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<f64>; 3], s: S) -> Result<S::Ok, S::Error> {
        let c: Vec<Vec<Option<f64>>> = v
            .iter()
            .map(|c| c.iter().map(|&d| super::to_opt(d)).collect())
            .collect();
        c.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[Vec<f64>; 3], D::Error> {
        let [a, b, c]: [Vec<Option<f64>>; 3] = Deserialize::deserialize(d)?;
        let conv = |v: Vec<Option<f64>>| v.into_iter().map(super::from_opt).collect();
        Ok([conv(a), conv(b), conv(c)])
    }
}
