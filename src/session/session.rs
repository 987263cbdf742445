//! The session: everything a tuning run tried and found, as plain data (DESIGN.md
//! decision 6). The TUI renders it, `qtune review` reopens it without model or data, and
//! `qtune tune --session` resumes from it.
//!
//! Settings and evaluations are append-only and reached through their ids; every stored
//! id is validated at load (validate.rs) and every accessor returns `Option`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ids::{EvalId, SettingId, id_of};
use super::order;
use super::record::{Current, Evaluation, LayerInfo, LogEntry, Setting, SettingRecord, now};
use super::stage::{StageId, StageRecord, StageState, Stages};
use crate::calib::{AllCurves, DisplayHistogram};
use crate::config::{FloatPrecision, Metric, RawConfig};

/// The format written by this version. Older formats are migrated on load (store.rs).
pub const SESSION_FORMAT: u32 = 2;

/// One tuning session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// An absolute target (`evaluation.min_value`): INT8 ≥ min_value instead of
    /// INT8 ≥ FP32 − max_drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    /// Evaluation samples per evaluation.
    pub eval_samples: usize,
    /// The FP32 model's metric on the evaluation set (once measured).
    #[serde(with = "crate::serde_num::opt_f64_any")]
    pub fp32_metric: Option<f64>,
    /// The precision everything left in float runs in (`float_precision`).
    #[serde(default = "fp32")]
    pub float_precision: FloatPrecision,
    /// Where the quantized model had to deviate from the configuration (per-tensor weights
    /// because the opset cannot be raised, layers left float …): shown with every result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degradations: Vec<String>,
    /// The shape of one sample per model input (what the model was prepared for).
    #[serde(default)]
    pub sample_shapes: Vec<Vec<usize>>,
    /// The quantizable layers, in graph order.
    pub layers: Vec<LayerInfo>,
    /// Every calibration setting tried, by `SettingId`.
    pub(super) settings: Vec<SettingRecord>,
    /// Display histograms of the activations, per batch_count collected, per activation name.
    pub histograms: BTreeMap<usize, BTreeMap<String, DisplayHistogram>>,
    /// Every evaluation, in the order run, by `EvalId`.
    pub(super) evaluations: Vec<Evaluation>,
    /// The flow's stages, in order.
    pub stages: Stages,
    /// The state the user (or the flow) last left: setting and exclude_op.
    pub current: Current,
    /// What the user did, in order.
    pub log: Vec<LogEntry>,
    /// The last journal record folded into this snapshot (store.rs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) journal_seq: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

fn fp32() -> FloatPrecision {
    FloatPrecision::Fp32
}

/// What a new session starts from.
#[derive(Clone, Debug)]
pub struct SessionInit {
    pub model: String,
    pub model_sha256: String,
    pub config_file: Option<String>,
    pub config: RawConfig,
    pub metric: Metric,
    pub max_drop: f64,
    pub min_value: Option<f64>,
    pub eval_samples: usize,
    pub fp32_metric: Option<f64>,
    pub float_precision: FloatPrecision,
    pub degradations: Vec<String>,
    pub sample_shapes: Vec<Vec<usize>>,
    pub layers: Vec<LayerInfo>,
    pub exclude: Vec<String>,
}

/// A session cannot hold more than `u32::MAX` settings or evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session is full (2^32 records)")]
pub struct SessionFull;

impl Session {
    /// A session with nothing tried yet.
    pub fn new(init: SessionInit) -> Session {
        Session {
            format: SESSION_FORMAT,
            qtune_version: env!("CARGO_PKG_VERSION").to_string(),
            model: init.model,
            model_sha256: init.model_sha256,
            config_file: init.config_file,
            config: init.config,
            metric: init.metric,
            max_drop: init.max_drop,
            min_value: init.min_value,
            eval_samples: init.eval_samples,
            fp32_metric: init.fp32_metric,
            float_precision: init.float_precision,
            degradations: init.degradations,
            sample_shapes: init.sample_shapes,
            layers: init.layers,
            settings: Vec::new(),
            histograms: BTreeMap::new(),
            evaluations: Vec::new(),
            stages: Stages::default(),
            current: Current {
                setting: None,
                exclude: init.exclude,
                evaluation: None,
            },
            log: Vec::new(),
            journal_seq: 0,
        }
    }

    /// The setting `id`.
    pub fn setting(&self, id: SettingId) -> Option<&SettingRecord> {
        self.settings.get(id.index())
    }

    /// Every setting with its id, in the order tried.
    // Positions fit in u32: `push_setting` and `push_evaluation` refuse more.
    pub fn settings(&self) -> impl DoubleEndedIterator<Item = (SettingId, &SettingRecord)> {
        self.settings
            .iter()
            .enumerate()
            .map(|(i, r)| (SettingId(i as u32), r))
    }

    pub fn settings_len(&self) -> usize {
        self.settings.len()
    }

    /// Appends a setting; returns its id.
    pub fn push_setting(&mut self, record: SettingRecord) -> Result<SettingId, SessionFull> {
        let id = SettingId(id_of(self.settings.len()).ok_or(SessionFull)?);
        self.settings.push(record);
        Ok(id)
    }

    /// Stores the divergence curves of setting `id` (no-op for an unknown id).
    pub fn set_curves(&mut self, id: SettingId, curves: BTreeMap<String, AllCurves>) {
        if let Some(r) = self.settings.get_mut(id.index()) {
            r.curves = curves;
        }
    }

    /// The evaluation `id`.
    pub fn evaluation(&self, id: EvalId) -> Option<&Evaluation> {
        self.evaluations.get(id.index())
    }

    /// Every evaluation with its id, in the order run.
    pub fn evaluations(&self) -> impl DoubleEndedIterator<Item = (EvalId, &Evaluation)> {
        self.evaluations
            .iter()
            .enumerate()
            .map(|(i, e)| (EvalId(i as u32), e))
    }

    pub fn evaluation_count(&self) -> usize {
        self.evaluations.len()
    }

    /// Appends an evaluation; returns its id.
    pub fn push_evaluation(&mut self, e: Evaluation) -> Result<EvalId, SessionFull> {
        let id = EvalId(id_of(self.evaluations.len()).ok_or(SessionFull)?);
        self.evaluations.push(e);
        Ok(id)
    }

    /// The setting of evaluation `id`.
    pub fn setting_of(&self, id: EvalId) -> Option<&SettingRecord> {
        self.evaluation(id)
            .and_then(|e| e.setting)
            .and_then(|s| self.setting(s))
    }

    /// The record of `stage`.
    pub fn stage(&self, stage: StageId) -> &StageRecord {
        self.stages.get(stage)
    }

    pub fn stage_mut(&mut self, stage: StageId) -> &mut StageRecord {
        self.stages.get_mut(stage)
    }

    /// The stage's best evaluation.
    pub fn stage_best(&self, stage: StageId) -> Option<(EvalId, &Evaluation)> {
        let id = self.stage(stage).best?;
        Some((id, self.evaluation(id)?))
    }

    /// The evaluation of the current state, when it ran.
    pub fn current_evaluation(&self) -> Option<(EvalId, &Evaluation)> {
        let id = self.current.evaluation?;
        Some((id, self.evaluation(id)?))
    }

    /// Makes evaluation `id` the current state (its setting and exclude list).
    pub fn adopt(&mut self, id: EvalId) -> bool {
        let Some(e) = self.evaluation(id) else {
            return false;
        };
        self.current = Current {
            setting: e.setting,
            exclude: e.exclude.clone(),
            evaluation: Some(id),
        };
        true
    }

    /// The index of the setting equal to `s`, if it was tried.
    pub fn find_setting(&self, s: &Setting) -> Option<SettingId> {
        self.settings()
            .find(|(_, r)| r.setting == *s)
            .map(|(i, _)| i)
    }

    /// An earlier complete evaluation of the same quantization (same fingerprint, exclude
    /// set and precision), whatever setting produced it; with `or_stopped`, a stopped one
    /// too (for a race: stopped against a best, it stays stopped against a better one).
    pub fn find_evaluation(
        &self,
        setting: Option<SettingId>,
        exclude: &[String],
        fp16: bool,
        or_stopped: bool,
    ) -> Option<EvalId> {
        let fingerprint = |s: Option<SettingId>| s.map(|i| self.setting(i).map(|r| &r.fingerprint));
        let want = fingerprint(setting);
        let same = |e: &Evaluation| {
            e.fp16 == fp16 && e.exclude == exclude && fingerprint(e.setting) == want
        };
        self.evaluations()
            .find(|(_, e)| e.is_complete() && same(e))
            .or_else(|| self.evaluations().find(|(_, e)| or_stopped && same(e)))
            .map(|(i, _)| i)
    }

    /// The best of `candidates` by metric (ties: fewer layers excluded, then the stable
    /// order of settings and blacklists; see order.rs). Unknown ids are ignored.
    pub fn best_of(&self, candidates: impl IntoIterator<Item = EvalId>) -> Option<EvalId> {
        order::best_by(self, candidates, order::by_metric)
    }

    /// The best INT8 evaluation of the whole session so far.
    pub fn best_evaluation(&self) -> Option<EvalId> {
        let int8 = self
            .evaluations()
            .filter(|(_, e)| e.is_int8())
            .map(|(i, _)| i);
        self.best_of(int8)
    }

    /// The lowest INT8 metric that meets the target (`min_value`, else FP32 − max_drop),
    /// once FP32 is measured.
    pub fn threshold(&self) -> Option<f64> {
        self.min_value
            .or_else(|| self.fp32_metric.map(|f| f - self.max_drop))
    }

    /// The layer called `name`, with its position in graph order.
    pub fn layer(&self, name: &str) -> Option<(usize, &LayerInfo)> {
        self.layers.iter().enumerate().find(|(_, l)| l.name == name)
    }

    /// `names` deduplicated and in graph order; names of no layer are returned as errors.
    pub fn in_graph_order(&self, names: &[String]) -> Result<Vec<String>, String> {
        let set: HashSet<&String> = names.iter().collect();
        if let Some(bad) = names.iter().find(|n| self.layer(n).is_none()) {
            return Err(bad.clone());
        }
        Ok(self
            .layers
            .iter()
            .filter(|l| set.contains(&l.name))
            .map(|l| l.name.clone())
            .collect())
    }

    /// Multiply-accumulates of the layers named in `exclude` (unknown names count 0).
    pub fn excluded_macs(&self, exclude: &[String]) -> u64 {
        exclude
            .iter()
            .filter_map(|n| self.layer(n))
            .map(|(_, l)| l.macs)
            .sum()
    }

    /// Appends a log entry stamped now.
    pub fn log(&mut self, action: impl Into<String>) {
        self.log.push(LogEntry {
            time: now(),
            action: action.into(),
        });
    }

    /// The first INT8 stage that met the target, if any (stage 8 is a fallback, not a
    /// quantization result).
    pub fn met_stage(&self) -> Option<StageId> {
        self.stages
            .iter()
            .find(|s| s.state == StageState::Met && s.stage.is_int8())
            .map(|s| s.stage)
    }

    /// A one-line description of evaluation `id` for messages:
    /// `#17 (stage 7, HALF_OFFSET VECTOR bin 150 …, 2 excluded, top1 0.9867)`.
    pub fn describe(&self, id: EvalId) -> String {
        let Some(e) = self.evaluation(id) else {
            return format!("{id} (not in the session)");
        };
        let setting = self
            .setting_of(id)
            .map_or("FP16, nothing quantized".to_string(), |r| r.setting.label());
        format!(
            "{id} (stage {}, {setting}, {} excluded, {} {:.4})",
            e.stage.step(),
            e.exclude.len(),
            self.metric.as_str(),
            e.metric()
        )
    }
}
