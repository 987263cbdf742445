//! The seed's flow (Figure 1) as a state machine over the session's stages: each stage
//! runs its evaluations, records its best, and is met or missed against the target; the
//! flow stops at the first stage that meets it (unless told to continue). When stage 7
//! misses, stage 8 concludes that quantization does not suit the model: FP16 everywhere.
//!
//! A stage's evaluations are found in the session when they ran before, so running a
//! stage again — after a crash, a kill or a cancel — resumes where it stopped.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::session::{EvalId, Origin, Setting, StageId, StageState};

use super::grid;
use super::race::Race;
use super::tuner::{Observer, Request, Tuner, Work};

/// How the flow ended.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowOutcome {
    /// The first INT8 stage whose best met the target, if any.
    pub met_stage: Option<StageId>,
    /// The result: the met stage's best (with `continue_after_target`, the best of every
    /// met stage), else the best INT8 evaluation found.
    pub chosen: Option<EvalId>,
    /// When no INT8 stage met the target: stage 8's FP16 evaluation (the seed's
    /// conclusion: deploy FP16, without quantization).
    pub fallback: Option<EvalId>,
    /// The flow made `chosen` the current state (false when the user had changed it).
    pub adopted: bool,
}

impl Tuner<'_, '_> {
    /// Runs the stages in order, skipping those already finished, until one meets the
    /// target (or through all with `tune.continue_after_target`), then makes the result
    /// the current state unless the user changed it meanwhile.
    pub fn run_flow(&mut self, obs: &dyn Observer) -> Result<FlowOutcome> {
        for stage in StageId::ALL {
            self.step_flow(stage, obs)?;
        }
        self.finish_flow(obs)
    }

    /// Runs `stage` if the flow gets there: skips it when it has finished, when an earlier
    /// stage met the target (unless continuing), or when it does not apply (stage 6 only
    /// after stage 5 missed, stage 8 only when stage 7 missed).
    pub fn step_flow(&mut self, stage: StageId, obs: &dyn Observer) -> Result<()> {
        let state = self.session.stage(stage).state;
        if state.finished() || state == StageState::Skipped {
            return Ok(());
        }
        let met = self.session.met_stage().is_some();
        if let Some(why) = self.skip_reason(stage, met) {
            let r = self.session.stage_mut(stage);
            r.state = StageState::Skipped;
            r.note = Some(why);
            self.save()?;
            obs.changed(&self.session);
            return Ok(());
        }
        self.run_stage(stage, obs)
    }

    fn skip_reason(&self, stage: StageId, met: bool) -> Option<String> {
        let go_on = self.tune.continue_after_target;
        match stage {
            StageId::Fp16 if met => Some("an INT8 stage met the target".into()),
            _ if met && !go_on => Some("an earlier stage met the target".into()),
            StageId::Correct => Some(
                "no corrections are configured yet (bias correction, equalization, per-layer ranges)"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Whether the flow ends once `stage` has run: an INT8 stage met the target (and the
    /// flow does not continue past it), or stage 8 concluded.
    pub fn flow_ends_at(&self, stage: StageId) -> bool {
        let met = self.session.stage(stage).state == StageState::Met;
        stage == StageId::Fp16 || (stage.is_int8() && met && !self.tune.continue_after_target)
    }

    /// Ends the flow: its result becomes the current state unless the user changed the
    /// state during the run (`user_changed_current`), and the session is compacted.
    pub fn finish_flow(&mut self, obs: &dyn Observer) -> Result<FlowOutcome> {
        let mut outcome = self.outcome();
        if let Some(i) = outcome.chosen.filter(|_| !self.user_changed_current) {
            self.session.adopt(i);
            outcome.adopted = true;
            if let Some(s) = self.session.current.setting {
                self.store_curves(s, obs)?;
            }
        }
        self.session.log(match (outcome.met_stage, outcome.chosen) {
            (Some(m), Some(i)) => format!(
                "flow finished: target met at stage {}, result {i}",
                m.step()
            ),
            (None, _) => {
                "flow finished: target missed; stage 8 concludes FP16 without quantization".into()
            }
            (Some(m), None) => format!("flow finished: target met at stage {}", m.step()),
        });
        self.save()?;
        self.compact()?;
        obs.changed(&self.session);
        Ok(outcome)
    }

    /// The flow's result so far (see `FlowOutcome`).
    pub fn outcome(&self) -> FlowOutcome {
        let s = &self.session;
        let met: Vec<StageId> = s
            .stages
            .iter()
            .filter(|r| r.state == StageState::Met && r.stage.is_int8())
            .map(|r| r.stage)
            .collect();
        let chosen = match met.first() {
            None => s.best_evaluation(),
            Some(_) if self.tune.continue_after_target => {
                s.best_of(met.iter().filter_map(|&m| s.stage(m).best))
            }
            Some(&first) => s.stage(first).best,
        };
        let fallback = if met.is_empty() {
            s.stage(StageId::Fp16).best
        } else {
            None
        };
        FlowOutcome {
            met_stage: met.first().copied(),
            chosen,
            fallback,
            adopted: false,
        }
    }

    /// Marks `stage` and every later stage pending (after a configuration change). Their
    /// evaluations stay in the session's history.
    pub fn reset_from(&mut self, stage: StageId) {
        for r in self.session.stages.iter_mut().filter(|r| r.stage >= stage) {
            r.reset();
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
            r.reset();
            r.state = StageState::Running;
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
            StageId::Correct => {
                // Nothing to run yet: the stage is skipped, saying why.
                let note = self.skip_reason(stage, false);
                let r = self.session.stage_mut(stage);
                r.state = StageState::Skipped;
                r.note = note;
                self.save()?;
                obs.changed(&self.session);
                return Ok(());
            }
            StageId::Exclude => self.run_exclude(obs),
            StageId::Fp16 => self.run_fp16(obs),
        };
        self.session.stage_mut(stage).seconds += t0.elapsed().as_secs_f64();
        if let Err(e) = result {
            // Cancelled or failed: the stage stays `Running` and resumes next time.
            self.save()?;
            obs.changed(&self.session);
            return Err(e);
        }
        self.close_stage(stage, obs)
    }

    /// Records the stage's best and state once its evaluations have run.
    fn close_stage(&mut self, stage: StageId, obs: &dyn Observer) -> Result<()> {
        let (best, met) = if stage == StageId::Exclude {
            self.exclude_best()
        } else {
            let evals = self.session.stage(stage).evaluations.clone();
            let best = self.session.best_of(evals);
            let met = best
                .and_then(|b| self.session.evaluation(b))
                .is_some_and(|e| e.report.target_met);
            (best, met)
        };
        let r = self.session.stage_mut(stage);
        r.best = best;
        r.state = if met {
            StageState::Met
        } else {
            StageState::Missed
        };
        if stage == StageId::Fp16 {
            r.note = Some(
                "quantization does not reach the target: the seed's step 8 — deploy FP16, without quantization"
                    .into(),
            );
        }
        if let Some(s) = best
            .and_then(|b| self.session.evaluation(b))
            .and_then(|e| e.setting)
        {
            self.store_curves(s, obs)?;
        }
        // The first result is shown at once; later stages change the current state only
        // when the flow ends (finish_flow).
        if stage == StageId::Calibrate
            && !self.user_changed_current
            && let Some(b) = best
        {
            self.session.adopt(b);
        }
        let verdict = match (stage, met) {
            (StageId::Fp16, _) => "concluded FP16",
            (_, true) => "met the target",
            (_, false) => "missed the target",
        };
        self.session
            .log(format!("stage {} {verdict}", stage.step()));
        self.save()?;
        obs.changed(&self.session);
        Ok(())
    }

    /// Calibrates and evaluates each setting with the configured exclude_op. Settings
    /// that quantize identically to an earlier one share its evaluation.
    fn run_settings(
        &mut self,
        stage: StageId,
        settings: &[Setting],
        obs: &dyn Observer,
    ) -> Result<()> {
        self.session.stage_mut(stage).evaluations_total = settings.len();
        let exclude = self.ws.config.exclude_op.clone();
        let fp16 = self.fp16();
        // Calibrate every setting first (cheap: histograms are shared), then evaluate.
        let mut ids = Vec::with_capacity(settings.len());
        for (k, setting) in settings.iter().enumerate() {
            self.check_cancel()?;
            obs.progress(Work::Searching, k, settings.len());
            ids.push(self.register(setting, obs)?);
        }
        obs.progress(Work::Searching, settings.len(), settings.len());
        // Settings an earlier stage evaluated go first: found at once, they give the race
        // a strong best from the start. The order depends only on the earlier stages, so
        // a resumed stage runs in the same order; the result does not depend on it (ties
        // are broken by the settings' values).
        let earlier: std::collections::HashSet<String> = self
            .session
            .evaluations()
            .filter(|(_, e)| e.stage < stage && e.is_complete())
            .filter_map(|(i, _)| self.session.setting_of(i).map(|r| r.fingerprint.clone()))
            .collect();
        let known = |id: &crate::session::SettingId| {
            self.session
                .setting(*id)
                .is_some_and(|r| earlier.contains(&r.fingerprint))
        };
        ids.sort_by_key(|id| !known(id));
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            self.check_cancel()?;
            let fingerprint = self.session.setting(id).map(|r| r.fingerprint.clone());
            if !seen.insert(fingerprint) {
                self.session.stage_mut(stage).duplicates += 1;
            }
            // Race the stage's best so far: a setting that cannot beat it is stopped.
            let best = self
                .session
                .best_of(self.session.stage(stage).evaluations.clone());
            let i = self.evaluate(
                Request {
                    stage,
                    origin: Origin::Flow,
                    setting: Some(id),
                    exclude: exclude.clone(),
                    fp16,
                    // Keeping a new base means storing every activation of every sample
                    // (~1 GB on the demo) for each setting; settings share too little for
                    // that to pay, so the base stays (stage 7 rebases on its setting).
                    rebase: false,
                    race: best.map_or(Race::None, Race::Best),
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
                race: Race::None,
            },
            obs,
        )?;
        self.record_progress(StageId::Fp16, i);
        Ok(())
    }

    pub(super) fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(std::sync::atomic::Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Adds evaluation `i` to `stage`'s results.
    pub(super) fn record_progress(&mut self, stage: StageId, i: EvalId) {
        let r = self.session.stage_mut(stage);
        r.evaluations.push(i);
        r.evaluations_done += 1;
        r.evaluations_total = r.evaluations_total.max(r.evaluations_done);
    }
}
