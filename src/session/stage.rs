//! The flow's stages (the seed's Figure 1) and what each recorded.

use serde::{Deserialize, Serialize};

use super::ids::EvalId;

/// A stage of the seed's flow (Figure 1). Steps 2 and 4 are the checks that end stages 1
/// and 3; step 6, the check after stage 5, is where qtune runs its corrections before the
/// seed's step 7 gives up INT8 layers.
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
    /// Step 6 (qtune's addition, run when stage 5 misses): corrections that keep every
    /// layer INT8 (bias correction, equalization, per-layer ranges, …).
    #[serde(rename = "6")]
    Correct,
    /// Step 7: build exclude_op.
    #[serde(rename = "7")]
    Exclude,
    /// Step 8: the seed's conclusion when step 7 misses: no quantization, FP16 everywhere.
    #[serde(rename = "8")]
    Fp16,
}

impl StageId {
    pub const ALL: [StageId; 6] = [
        StageId::Calibrate,
        StageId::Modify,
        StageId::Traverse,
        StageId::Correct,
        StageId::Exclude,
        StageId::Fp16,
    ];

    /// The seed's step number.
    pub fn step(self) -> u8 {
        match self {
            StageId::Calibrate => 1,
            StageId::Modify => 3,
            StageId::Traverse => 5,
            StageId::Correct => 6,
            StageId::Exclude => 7,
            StageId::Fp16 => 8,
        }
    }

    /// The stage with seed step number `step`.
    pub fn from_step(step: u8) -> Option<StageId> {
        StageId::ALL.into_iter().find(|s| s.step() == step)
    }

    pub fn title(self) -> &'static str {
        match self {
            StageId::Calibrate => "calibrate as configured",
            StageId::Modify => "wider ratios, bin 200/250, PERCENTILE_MID",
            StageId::Traverse => "traverse Table 2",
            StageId::Correct => "corrections, every layer INT8",
            StageId::Exclude => "build exclude_op",
            StageId::Fp16 => "FP16 fallback (no quantization)",
        }
    }

    pub fn next(self) -> Option<StageId> {
        let i = StageId::ALL.iter().position(|s| *s == self)?;
        StageId::ALL.get(i + 1).copied()
    }

    /// Whether the stage's results are INT8 (every stage but the FP16 fallback).
    pub fn is_int8(self) -> bool {
        self != StageId::Fp16
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
    /// Not run: an earlier stage met the target, or it has nothing to do.
    Skipped,
}

impl StageState {
    /// Met or missed: the stage ran to its end.
    pub fn finished(self) -> bool {
        matches!(self, StageState::Met | StageState::Missed)
    }
}

/// A stage's progress and outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRecord {
    pub stage: StageId,
    pub state: StageState,
    /// The stage's best result.
    pub best: Option<EvalId>,
    /// The stage's results (a result found from an earlier stage — same quantization — is
    /// listed again, not re-run).
    #[serde(default)]
    pub evaluations: Vec<EvalId>,
    pub evaluations_done: usize,
    /// Known once the stage starts (the grid size, the layer count …).
    pub evaluations_total: usize,
    #[serde(with = "crate::serde_num::f64_any")]
    pub seconds: f64,
    /// Stage 7: what each exclude search found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<ExcludeSearch>,
    /// Stage 5: settings skipped because an earlier one quantized identically.
    #[serde(default)]
    pub duplicates: usize,
    /// Why the stage ended as it did, when that needs saying (stage 7's limit, stage 8's
    /// conclusion, a stage with nothing to do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
            note: None,
        }
    }

    /// Back to pending, keeping the seconds spent (their evaluations stay in the session).
    pub fn reset(&mut self) {
        let seconds = self.seconds;
        *self = StageRecord::pending(self.stage);
        self.seconds = seconds;
    }
}

/// Every stage's record, one per `StageId`, in flow order (validated at load).
#[derive(Clone, Debug, PartialEq)]
pub struct Stages([StageRecord; 6]);

impl Default for Stages {
    /// Every stage of the flow, none run.
    fn default() -> Stages {
        Stages(StageId::ALL.map(StageRecord::pending))
    }
}

impl Stages {
    /// The record of `stage`.
    pub fn get(&self, stage: StageId) -> &StageRecord {
        let [a, b, c, d, e, f] = &self.0;
        match stage {
            StageId::Calibrate => a,
            StageId::Modify => b,
            StageId::Traverse => c,
            StageId::Correct => d,
            StageId::Exclude => e,
            StageId::Fp16 => f,
        }
    }

    pub fn get_mut(&mut self, stage: StageId) -> &mut StageRecord {
        let [a, b, c, d, e, f] = &mut self.0;
        match stage {
            StageId::Calibrate => a,
            StageId::Modify => b,
            StageId::Traverse => c,
            StageId::Correct => d,
            StageId::Exclude => e,
            StageId::Fp16 => f,
        }
    }

    /// The records in flow order.
    pub fn iter(&self) -> std::slice::Iter<'_, StageRecord> {
        self.0.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, StageRecord> {
        self.0.iter_mut()
    }

    /// Builds the set from stored records: one per stage, in flow order. A format-1 list
    /// (no stage 6) gets a pending stage 6.
    pub fn from_records(records: Vec<StageRecord>) -> Result<Stages, String> {
        let mut slots: [Option<StageRecord>; 6] = Default::default();
        for r in records {
            let i = StageId::ALL
                .iter()
                .position(|s| *s == r.stage)
                .ok_or("unknown stage")?;
            let slot = slots.get_mut(i).ok_or("unknown stage")?;
            if slot.is_some() {
                return Err(format!("stage {} is listed twice", r.stage.step()));
            }
            *slot = Some(r);
        }
        let mut out = Stages::default();
        for (stage, slot) in StageId::ALL.into_iter().zip(slots) {
            match slot {
                Some(r) => *out.get_mut(stage) = r,
                None if stage == StageId::Correct => {}
                None => return Err(format!("stage {} is missing", stage.step())),
            }
        }
        Ok(out)
    }
}

impl Serialize for Stages {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Stages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stages, D::Error> {
        let records = Vec::<StageRecord>::deserialize(d)?;
        Stages::from_records(records).map_err(serde::de::Error::custom)
    }
}

/// The outcome of one exclude_op search strategy (stage 7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeSearch {
    /// `layer_by_layer` (the seed's) or `ranked`.
    pub strategy: String,
    /// Evaluations it used.
    pub evaluations: usize,
    /// The blacklist it found (its smallest that met the target, else its last).
    pub exclude: Vec<String>,
    /// The metric of what it found (`None`: it had no layer to try).
    #[serde(with = "crate::serde_num::opt_f64_any")]
    pub metric: Option<f64>,
    pub target_met: bool,
    /// Ranked search: layers by sensitivity, most sensitive first, with the metric
    /// gained by excluding each alone.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::serde_num::named_f64_any"
    )]
    pub ranking: Vec<(String, f64)>,
    /// The evaluation of what it found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<EvalId>,
    /// Every blacklist it evaluated, in order (probes of the ranking excluded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<EvalId>,
    /// Why it stopped without meeting the target (e.g. the `tune.max_excluded` limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}
