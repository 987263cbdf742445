//! The records a session holds: layers, settings, evaluations, the current state, the log.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{EvalId, SettingId};
use super::stage::StageId;
use crate::calib::{AllCurves, DivergenceType, QuantizeAlgo, WeightType};
use crate::eval::{EvalReport, SampleScore};

/// One quantizable layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerInfo {
    pub name: String,
    pub op_type: String,
    /// Names of its quantized activation inputs (keys of `SettingRecord::activations`).
    pub activations: Vec<String>,
    /// Multiply-accumulates per sample (0: unknown, in sessions of format 1).
    #[serde(default)]
    pub macs: u64,
}

/// A calibration setting: the seed's parameters that change the quantization.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    pub quantize_algo: QuantizeAlgo,
    pub weight_type: WeightType,
    pub bin: u32,
    #[serde(rename = "type")]
    pub divergence: DivergenceType,
    pub start_ratio: f64,
    pub end_ratio: f64,
    pub step_ratio: f64,
    pub max_percentile: f64,
    pub batch_count: usize,
}

impl Setting {
    /// A one-line description (`HALF_OFFSET VECTOR bin 150 KL 0.7..1.3/0.01 p1 b10`).
    pub fn label(&self) -> String {
        format!(
            "{} {} bin {} {} {}..{}/{} p{} b{}",
            self.quantize_algo.as_str(),
            self.weight_type.as_str(),
            self.bin,
            self.divergence.as_str(),
            self.start_ratio,
            self.end_ratio,
            self.step_ratio,
            self.max_percentile,
            self.batch_count
        )
    }

    /// The search parameters of this setting (everything but the weight type and the
    /// sample count).
    pub fn search_params(&self) -> crate::calib::SearchParams {
        crate::calib::SearchParams {
            algo: self.quantize_algo,
            bin: self.bin,
            divergence: self.divergence,
            start_ratio: self.start_ratio,
            end_ratio: self.end_ratio,
            step_ratio: self.step_ratio,
            max_percentile: self.max_percentile,
        }
    }

    /// A total order over settings that depends only on their values (ties of a metric
    /// are broken by it, so the result does not depend on the order of evaluation).
    pub fn stable_cmp(&self, other: &Setting) -> Ordering {
        let key = |s: &Setting| {
            (
                s.quantize_algo as u8,
                s.weight_type as u8,
                s.bin,
                s.divergence.index(),
                s.batch_count,
            )
        };
        key(self)
            .cmp(&key(other))
            .then(self.start_ratio.total_cmp(&other.start_ratio))
            .then(self.end_ratio.total_cmp(&other.end_ratio))
            .then(self.step_ratio.total_cmp(&other.step_ratio))
            .then(self.max_percentile.total_cmp(&other.max_percentile))
    }
}

/// A setting and what calibrating with it gave, per activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingRecord {
    pub setting: Setting,
    /// Fingerprint of the resulting quantization parameters: settings with equal
    /// fingerprints quantize identically and share their evaluations.
    pub fingerprint: String,
    /// Per activation name: the calibrated range and scale.
    pub activations: BTreeMap<String, ActivationSummary>,
    /// Per activation name: the divergence curves of all three types (kept for the
    /// settings a stage selected or the user applied; empty otherwise, to keep files small).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub curves: BTreeMap<String, AllCurves>,
}

/// The calibrated parameters of one activation (without the bulky curve). Stored as a
/// JSON array `[lo, hi, scale, offset, ratio, divergence, boundary_hit]`: a session holds
/// one per activation per setting (23k on the demo's stage 5), and field names would
/// double the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "SummaryRow", into = "SummaryRow")]
pub struct ActivationSummary {
    pub lo: f64,
    pub hi: f64,
    pub scale: f32,
    pub offset: i32,
    /// The chosen ratio (searches only).
    pub ratio: Option<f64>,
    /// The divergence at the chosen ratio (searches only).
    pub divergence: Option<f64>,
    /// The search chose its first or last candidate.
    pub boundary_hit: bool,
}

/// The stored form of [`ActivationSummary`].
#[derive(Clone, Serialize, Deserialize)]
struct SummaryRow(
    #[serde(with = "crate::serde_num::f64_any")] f64,
    #[serde(with = "crate::serde_num::f64_any")] f64,
    #[serde(with = "crate::serde_num::f32_exact")] f32,
    i32,
    #[serde(with = "crate::serde_num::opt_f64_any")] Option<f64>,
    #[serde(with = "crate::serde_num::opt_f64_any")] Option<f64>,
    bool,
);

impl From<SummaryRow> for ActivationSummary {
    fn from(r: SummaryRow) -> ActivationSummary {
        let SummaryRow(lo, hi, scale, offset, ratio, divergence, boundary_hit) = r;
        ActivationSummary {
            lo,
            hi,
            scale,
            offset,
            ratio,
            divergence,
            boundary_hit,
        }
    }
}

impl From<ActivationSummary> for SummaryRow {
    fn from(a: ActivationSummary) -> SummaryRow {
        SummaryRow(
            a.lo,
            a.hi,
            a.scale,
            a.offset,
            a.ratio,
            a.divergence,
            a.boundary_hit,
        )
    }
}

/// How much of the graph an evaluation re-ran (incremental re-evaluation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerunStats {
    pub nodes_run: usize,
    pub nodes_total: usize,
    /// Whether cached activations were reused.
    pub incremental: bool,
}

/// Why an evaluation ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Run by the flow of a stage.
    Flow,
    /// A sensitivity probe of the ranked exclude search.
    Probe,
    /// The user toggled a layer or applied a configuration.
    User,
}

/// One evaluation against FP32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    pub stage: StageId,
    pub origin: Origin,
    /// `None` for the FP16 fallback (nothing quantized).
    pub setting: Option<SettingId>,
    /// Layers kept in float, in graph order.
    pub exclude: Vec<String>,
    /// Everything left in float ran in emulated FP16 (`float_precision: FP16`, stage 8).
    pub fp16: bool,
    pub report: EvalReport,
    pub rerun: RerunStats,
    /// Each sample's contribution to the metric, in stream order (what later candidates
    /// race against); empty for `command` metrics and sessions of format 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<SampleScore>,
    /// Set when a search stopped the evaluation early: it is not a result (never a
    /// stage's best, never reused for the same state outside a race).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
}

/// Where and why a search stopped an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stopped {
    /// Samples run, of `Session::eval_samples`.
    pub samples: usize,
    /// The running estimate of the metric there, with its 95% half-width.
    #[serde(with = "crate::serde_num::f64_any")]
    pub estimate: f64,
    #[serde(with = "crate::serde_num::f64_any")]
    pub half_width: f64,
    /// What it could no longer beat: `best #N` or `target`.
    pub against: String,
}

impl Evaluation {
    /// The INT8 metric (NaN when the outputs were not finite).
    pub fn metric(&self) -> f64 {
        self.report.int8
    }

    /// Whether it quantizes anything.
    pub fn is_int8(&self) -> bool {
        self.setting.is_some()
    }

    /// Whether it ran over every sample (a result, not a stopped race candidate).
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none()
    }
}

/// The state shown and changed by the user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Current {
    pub setting: Option<SettingId>,
    pub exclude: Vec<String>,
    /// The evaluation of exactly this state, when run.
    pub evaluation: Option<EvalId>,
}

/// One user action, for the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Seconds since the Unix epoch.
    #[serde(with = "crate::serde_num::f64_any")]
    pub time: f64,
    pub action: String,
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
