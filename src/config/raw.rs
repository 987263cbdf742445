//! The configuration as written: every key optional, unknown keys rejected.

use serde::{Deserialize, Deserializer, Serialize};

use crate::calib::{DivergenceType, QuantizeAlgo, WeightType};
use crate::data::image::{ImageFormat, ResizeMode};

/// Every top-level key, for "did you mean" suggestions.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "model",
    "device",
    "quantize_algo",
    "weight_type",
    "bin",
    "type",
    "start_ratio",
    "end_ratio",
    "step_ratio",
    "max_percentile",
    "batch_count",
    "max_nonfinite",
    "exclude_op",
    "float_precision",
    "preprocess_parameter",
    "evaluation",
    "tune",
];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantize_algo: Option<QuantizeAlgo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_type: Option<WeightType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<u32>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub divergence: Option<DivergenceType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_ratio: Option<f64>,
    #[serde(
        default,
        deserialize_with = "percentile",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_percentile: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_count: Option<u64>,
    /// NaN/±Inf values one activation may hold during calibration; default 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_nonfinite: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_op: Vec<String>,
    /// Precision of the ops left in float: FP32 (default) or FP16 (the seed's fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub float_precision: Option<FloatPrecision>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preprocess_parameter: Vec<RawInput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<RawEvaluation>,
    /// How far `qtune tune` searches (see `configs/template.yaml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tune: Option<super::tune::RawTune>,
}

/// Kind of a data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputType {
    #[serde(rename = "IMAGE")]
    Image,
    /// HiAI calibration file (magic 510).
    #[serde(rename = "BINARY")]
    Binary,
    #[serde(rename = "NPY")]
    Npy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FloatPrecision {
    #[serde(rename = "FP32")]
    Fp32,
    #[serde(rename = "FP16")]
    Fp16,
}

/// The evaluation metric; higher is better for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Top1,
    Top5,
    Agreement,
    Cosine,
    Sqnr,
    Iou,
    Command,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Top1 => "top1",
            Metric::Top5 => "top5",
            Metric::Agreement => "agreement",
            Metric::Cosine => "cosine",
            Metric::Sqnr => "sqnr",
            Metric::Iou => "iou",
            Metric::Command => "command",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_type: Option<InputType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_file_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_format: Option<ImageFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_value: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard_deviation: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize: Option<ResizeMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_side: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<Vec<u64>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvaluation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_file_path: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iou_threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Seconds `command` may run before it is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_drop: Option<f64>,
    /// An absolute target instead of `max_drop`: INT8 metric ≥ min_value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
}

/// A path, or one path per model input.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

// By hand, not `untagged`: serde's message for a mismatch names the Rust type.
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OneOrMany, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a path, or a list of paths (one per model input)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    v.push(p);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `max_percentile`: a number, or `PERCENTILE_MID` (0.99999).
fn percentile<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number in (0, 1] or PERCENTILE_MID")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v {
                "PERCENTILE_MID" => Ok(Some(crate::calib::PERCENTILE_MID)),
                _ => Err(E::custom(format!(
                    "`{v}` is not allowed: use a number in (0, 1] or PERCENTILE_MID"
                ))),
            }
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}
