//! The session: everything a tuning run tried and found, as plain data (DESIGN.md
//! decision 6). The TUI renders it, `qtune review` reopens it without model or data, and
//! `qtune tune --session` resumes from it.
//!
//! Indices are stable: `settings[i]` and `evaluations[i]` are only ever appended.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calib::{AllCurves, DisplayHistogram, DivergenceType, QuantizeAlgo, WeightType};
use crate::config::{Metric, RawConfig};
use crate::eval::EvalReport;

/// The format written by this version. Older formats are migrated on load (store.rs).
pub const SESSION_FORMAT: u32 = 1;

/// One tuning session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub format: u32,
    pub qtune_version: String,
    /// Absolute path of the model when the session was made.
    pub model: String,
    pub model_sha256: String,
    /// The configuration file the session was started from, if any.
    pub config_file: Option<String>,
    /// The configuration as given (stage 1 runs it unchanged).
    pub config: RawConfig,
    pub metric: Metric,
    pub max_drop: f64,
    /// Evaluation samples per evaluation.
    pub eval_samples: usize,
    /// The FP32 model's metric on the evaluation set (once measured).
    pub fp32_metric: Option<f64>,
    /// The shape of one sample per model input (what the model was prepared for).
    #[serde(default)]
    pub sample_shapes: Vec<Vec<usize>>,
    /// The quantizable layers, in graph order.
    pub layers: Vec<LayerInfo>,
    /// Every calibration setting tried; `Evaluation::setting` indexes this.
    pub settings: Vec<SettingRecord>,
    /// Display histograms of the activations, per batch_count collected, per activation name.
    pub histograms: BTreeMap<usize, BTreeMap<String, DisplayHistogram>>,
    /// Every evaluation, in the order run.
    pub evaluations: Vec<Evaluation>,
    /// The flow's stages (1, 3, 5, 7, 8), in order.
    pub stages: Vec<StageRecord>,
    /// The state the user (or the flow) last left: setting and exclude_op.
    pub current: Current,
    /// What the user did, in order.
    pub log: Vec<LogEntry>,
}

/// One quantizable layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    pub op_type: String,
    /// Names of its quantized activation inputs (keys of `SettingRecord::layers`).
    pub activations: Vec<String>,
}

/// A calibration setting: the seed's parameters that change the quantization.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// A setting and what calibrating with it gave, per activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
/// double the file that is rewritten after every evaluation.
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
struct SummaryRow(f64, f64, f32, i32, Option<f64>, Option<f64>, bool);

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
pub struct Evaluation {
    pub stage: StageId,
    pub origin: Origin,
    /// Index into `Session::settings`; `None` for the FP16 fallback (nothing quantized).
    pub setting: Option<usize>,
    /// Layers kept in float, in graph order.
    pub exclude: Vec<String>,
    /// Everything left in float runs in emulated FP16 (stage 8).
    pub fp16: bool,
    pub report: EvalReport,
    pub rerun: RerunStats,
}

impl Evaluation {
    pub fn metric(&self) -> f64 {
        self.report.int8
    }
}

/// A stage of the seed's flow (Figure 1). Steps 2, 4 and 6 are the checks that end
/// stages 1, 3 and 5; they have no work of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StageId {
    /// Step 1: calibrate with the configuration as given.
    #[serde(rename = "1")]
    Calibrate,
    /// Step 3: the seed's manual modifications (wider ratios, bin 200/250, PERCENTILE_MID).
    #[serde(rename = "3")]
    Modify,
    /// Step 5: traverse Table 2.
    #[serde(rename = "5")]
    Traverse,
    /// Step 7: build exclude_op.
    #[serde(rename = "7")]
    Exclude,
    /// Step 8: FP16 everywhere, nothing quantized.
    #[serde(rename = "8")]
    Fp16,
}

impl StageId {
    pub const ALL: [StageId; 5] = [
        StageId::Calibrate,
        StageId::Modify,
        StageId::Traverse,
        StageId::Exclude,
        StageId::Fp16,
    ];

    /// The seed's step number.
    pub fn step(self) -> u8 {
        match self {
            StageId::Calibrate => 1,
            StageId::Modify => 3,
            StageId::Traverse => 5,
            StageId::Exclude => 7,
            StageId::Fp16 => 8,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            StageId::Calibrate => "calibrate as configured",
            StageId::Modify => "wider ratios, bin 200/250, PERCENTILE_MID",
            StageId::Traverse => "traverse Table 2",
            StageId::Exclude => "build exclude_op",
            StageId::Fp16 => "FP16 fallback",
        }
    }

    pub fn next(self) -> Option<StageId> {
        let i = StageId::ALL.iter().position(|s| *s == self)?;
        StageId::ALL.get(i + 1).copied()
    }
}

/// Where a stage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    Pending,
    Running,
    /// Ran to the end; its best result meets the target.
    Met,
    /// Ran to the end; the target was not met.
    Missed,
    /// Not run: an earlier stage met the target.
    Skipped,
}

/// A stage's progress and outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage: StageId,
    pub state: StageState,
    /// Index into `Session::evaluations` of the stage's best result.
    pub best: Option<usize>,
    /// Indices into `Session::evaluations` of the stage's results (a result found from an
    /// earlier stage — same quantization — is listed again, not re-run).
    #[serde(default)]
    pub evaluations: Vec<usize>,
    pub evaluations_done: usize,
    /// Known once the stage starts (the grid size, the layer count …).
    pub evaluations_total: usize,
    pub seconds: f64,
    /// Stage 7: what each exclude search found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<ExcludeSearch>,
    /// Stage 5: settings skipped because an earlier one quantized identically.
    #[serde(default)]
    pub duplicates: usize,
}

impl StageRecord {
    /// A stage that has not run.
    pub fn pending(stage: StageId) -> StageRecord {
        StageRecord {
            stage,
            state: StageState::Pending,
            best: None,
            evaluations: Vec::new(),
            evaluations_done: 0,
            evaluations_total: 0,
            seconds: 0.0,
            searches: Vec::new(),
            duplicates: 0,
        }
    }

    /// Every stage of the flow, none run.
    pub fn all_pending() -> Vec<StageRecord> {
        StageId::ALL
            .iter()
            .map(|&s| StageRecord::pending(s))
            .collect()
    }
}

/// The outcome of one exclude_op search strategy (stage 7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExcludeSearch {
    /// `layer_by_layer` (the seed's) or `ranked`.
    pub strategy: String,
    /// Evaluations it used.
    pub evaluations: usize,
    pub exclude: Vec<String>,
    /// The metric of what it found (`None`: it had no layer to try).
    pub metric: Option<f64>,
    pub target_met: bool,
    /// Ranked search: layers by sensitivity, most sensitive first, with the metric
    /// gained by excluding each alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranking: Vec<(String, f64)>,
}

/// The state shown and changed by the user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Current {
    pub setting: Option<usize>,
    pub exclude: Vec<String>,
    /// The evaluation of exactly this state, when run.
    pub evaluation: Option<usize>,
}

/// One user action, for the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub action: String,
}

impl Session {
    /// The record of `stage`.
    pub fn stage(&self, stage: StageId) -> &StageRecord {
        self.stages
            .iter()
            .find(|s| s.stage == stage)
            .expect("every stage has a record")
    }

    pub fn stage_mut(&mut self, stage: StageId) -> &mut StageRecord {
        self.stages
            .iter_mut()
            .find(|s| s.stage == stage)
            .expect("every stage has a record")
    }

    /// The index of the setting equal to `s`, if it was tried.
    pub fn find_setting(&self, s: &Setting) -> Option<usize> {
        self.settings.iter().position(|r| r.setting == *s)
    }

    /// An earlier evaluation of the same quantization (same fingerprint, exclude set and
    /// precision), whatever setting produced it.
    pub fn find_evaluation(
        &self,
        setting: Option<usize>,
        exclude: &[String],
        fp16: bool,
    ) -> Option<usize> {
        let fp = setting.map(|i| self.settings[i].fingerprint.as_str());
        self.evaluations.iter().position(|e| {
            e.fp16 == fp16
                && e.exclude == exclude
                && e.setting.map(|i| self.settings[i].fingerprint.as_str()) == fp
        })
    }

    /// The best evaluation of the whole session so far (highest metric; ties: fewer
    /// layers excluded, then earlier).
    pub fn best_evaluation(&self) -> Option<usize> {
        best_of(&self.evaluations, 0..self.evaluations.len())
    }

    /// Appends a log entry stamped now.
    pub fn log(&mut self, action: impl Into<String>) {
        self.log.push(LogEntry {
            time: now(),
            action: action.into(),
        });
    }

    /// The stage that met the target first, if any.
    pub fn met_stage(&self) -> Option<StageId> {
        self.stages
            .iter()
            .find(|s| s.state == StageState::Met)
            .map(|s| s.stage)
    }
}

/// The best of `candidates` (indices into `evals`): highest metric, then fewest excluded
/// layers, then earliest.
pub fn best_of(evals: &[Evaluation], candidates: impl IntoIterator<Item = usize>) -> Option<usize> {
    candidates.into_iter().fold(None, |best, i| match best {
        None => Some(i),
        Some(b) => {
            let (e, f) = (&evals[i], &evals[b]);
            let better = e.metric() > f.metric()
                || (e.metric() == f.metric() && e.exclude.len() < f.exclude.len());
            Some(if better { i } else { b })
        }
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
