//! The seed's flow (Figure 1) as a state machine over the session's stages: each stage
//! runs its evaluations, records its best, and is met or missed against the target;
//! the flow stops at the first stage that meets it (unless told to continue).
//!
//! A stage's evaluations are found in the session when they ran before, so running a
//! stage again — after a crash, a kill or a cancel — resumes where it stopped.

use std::time::Instant;

use crate::error::Result;
use crate::session::{Current, Origin, StageId, StageState, best_of};

use super::grid;
use super::tuner::{Observer, Request, Tuner, Work};

/// How the flow ended.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowOutcome {
    /// The first stage whose best met the target, if any.
    pub met_stage: Option<StageId>,
    /// The evaluation chosen as the result (index into `session.evaluations`).
    pub chosen: Option<usize>,
}

impl Tuner<'_, '_> {
    /// Runs the stages in order, skipping those already finished, until one meets the
    /// target (or through all with `tune.continue_after_target`).
    pub fn run_flow(&mut self, obs: &dyn Observer) -> Result<FlowOutcome> {
        let go_on = self.tune.continue_after_target;
        for stage in StageId::ALL {
            let state = self.session.stage(stage).state;
            let finished = matches!(state, StageState::Met | StageState::Missed);
            if finished || (state == StageState::Skipped && !go_on) {
                continue;
            }
            if self.session.met_stage().is_some() && !go_on {
                self.session.stage_mut(stage).state = StageState::Skipped;
                continue;
            }
            self.run_stage(stage, obs)?;
        }
        let outcome = self.outcome();
        if let Some(i) = outcome.chosen {
            let e = &self.session.evaluations[i];
            self.session.current = Current {
                setting: e.setting,
                exclude: e.exclude.clone(),
                evaluation: Some(i),
            };
            if let Some(s) = e.setting {
                self.store_curves(s, obs)?;
            }
        }
        self.save()?;
        obs.changed(&self.session);
        Ok(outcome)
    }

    /// The flow's result: the best of the first stage that met the target (with
    /// `continue_after_target`, the best evaluation of any met stage); when none did, the
    /// best INT8 evaluation overall.
    pub fn outcome(&self) -> FlowOutcome {
        let s = &self.session;
        let met: Vec<StageId> = s
            .stages
            .iter()
            .filter(|r| r.state == StageState::Met)
            .map(|r| r.stage)
            .collect();
        let chosen = if met.is_empty() {
            let int8 = (0..s.evaluations.len()).filter(|&i| !s.evaluations[i].fp16);
            best_of(&s.evaluations, int8)
        } else if self.tune.continue_after_target {
            best_of(&s.evaluations, met.iter().filter_map(|&m| s.stage(m).best))
        } else {
            s.stage(met[0]).best
        };
        FlowOutcome {
            met_stage: met.first().copied(),
            chosen,
        }
    }

    /// Marks `stage` and every later stage pending (after a configuration change). Their
    /// evaluations stay in the session's history.
    pub fn reset_from(&mut self, stage: StageId) {
        for r in self.session.stages.iter_mut().filter(|r| r.stage >= stage) {
            r.state = StageState::Pending;
            r.best = None;
            r.evaluations.clear();
            r.evaluations_done = 0;
            r.evaluations_total = 0;
            r.searches.clear();
            r.duplicates = 0;
        }
        self.session
            .log(format!("reset from stage {}", stage.step()));
    }

    /// Runs one stage to its end (finding what already ran), then records its best and
    /// whether it met the target.
    pub fn run_stage(&mut self, stage: StageId, obs: &dyn Observer) -> Result<()> {
        let t0 = Instant::now();
        {
            let r = self.session.stage_mut(stage);
            r.state = StageState::Running;
            r.evaluations.clear();
            r.evaluations_done = 0;
            r.searches.clear();
            r.duplicates = 0;
        }
        self.save()?;
        obs.changed(&self.session);
        let result = match stage {
            StageId::Calibrate => {
                let s = grid::configured(&self.ws.config);
                self.run_settings(stage, &[s], obs)
            }
            StageId::Modify => {
                let s = grid::modifications(&self.ws.config, self.tune.detection);
                self.run_settings(stage, &s, obs)
            }
            StageId::Traverse => {
                let s = grid::traversal(&self.tune.grid);
                self.run_settings(stage, &s, obs)
            }
            StageId::Exclude => self.run_exclude(obs),
            StageId::Fp16 => self.run_fp16(obs),
        };
        let elapsed = t0.elapsed().as_secs_f64();
        self.session.stage_mut(stage).seconds += elapsed;
        if let Err(e) = result {
            // Cancelled or failed: the stage stays `Running` and resumes next time.
            self.save()?;
            obs.changed(&self.session);
            return Err(e);
        }
        let evals = self.session.stage(stage).evaluations.clone();
        let best = best_of(&self.session.evaluations, evals);
        let met = best.is_some_and(|b| self.session.evaluations[b].report.target_met);
        let r = self.session.stage_mut(stage);
        r.best = best;
        r.state = if met {
            StageState::Met
        } else {
            StageState::Missed
        };
        if let Some(s) = best.and_then(|b| self.session.evaluations[b].setting) {
            self.store_curves(s, obs)?;
        }
        if (self.session.current.evaluation.is_none() || stage == StageId::Calibrate)
            && let Some(b) = best
        {
            let e = &self.session.evaluations[b];
            self.session.current = Current {
                setting: e.setting,
                exclude: e.exclude.clone(),
                evaluation: Some(b),
            };
        }
        self.session.log(format!(
            "stage {} {}",
            stage.step(),
            if met {
                "met the target"
            } else {
                "missed the target"
            }
        ));
        self.save()?;
        obs.changed(&self.session);
        Ok(())
    }

    /// Calibrates and evaluates each setting with the configured exclude_op. Settings
    /// that quantize identically to an earlier one share its evaluation.
    fn run_settings(
        &mut self,
        stage: StageId,
        settings: &[crate::session::Setting],
        obs: &dyn Observer,
    ) -> Result<()> {
        self.session.stage_mut(stage).evaluations_total = settings.len();
        let exclude = self.ws.config.exclude_op.clone();
        // Calibrate every setting first (cheap: histograms are shared), then evaluate.
        let mut indices = Vec::with_capacity(settings.len());
        for (k, setting) in settings.iter().enumerate() {
            if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(crate::Error::Cancelled);
            }
            obs.progress(Work::Searching, k, settings.len());
            indices.push(self.register(setting, obs)?);
        }
        obs.progress(Work::Searching, settings.len(), settings.len());
        let mut seen = std::collections::HashSet::new();
        for idx in indices {
            if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(crate::Error::Cancelled);
            }
            let fingerprint = self.session.settings[idx].fingerprint.clone();
            if !seen.insert(fingerprint) {
                self.session.stage_mut(stage).duplicates += 1;
            }
            let i = self.evaluate(
                Request {
                    stage,
                    origin: Origin::Flow,
                    setting: Some(idx),
                    exclude: exclude.clone(),
                    fp16: false,
                    // Keeping a new base means storing every activation of every sample
                    // (~1 GB on the demo) for each setting; settings share too little for
                    // that to pay, so the base stays (stage 7 rebases on its setting).
                    rebase: false,
                },
                obs,
            )?;
            self.record_progress(stage, i);
            obs.changed(&self.session);
        }
        Ok(())
    }

    /// Stage 8: nothing quantized, everything in emulated FP16.
    fn run_fp16(&mut self, obs: &dyn Observer) -> Result<()> {
        self.session.stage_mut(StageId::Fp16).evaluations_total = 1;
        let all = self.ws.layer_names();
        let i = self.evaluate(
            Request {
                stage: StageId::Fp16,
                origin: Origin::Flow,
                setting: None,
                exclude: all,
                fp16: true,
                rebase: false,
            },
            obs,
        )?;
        self.record_progress(StageId::Fp16, i);
        Ok(())
    }

    /// Adds evaluation `i` to `stage`'s results.
    pub(super) fn record_progress(&mut self, stage: StageId, i: usize) {
        let r = self.session.stage_mut(stage);
        r.evaluations.push(i);
        r.evaluations_done += 1;
        r.evaluations_total = r.evaluations_total.max(r.evaluations_done);
    }
}
