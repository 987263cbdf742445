//! Stage 7: building exclude_op. Two strategies run side by side from the best setting of
//! the earlier stages:
//! - *layer by layer* (the seed's): blacklist the first layer, then the first two, … in
//!   graph order, until the target holds;
//! - *ranked*: measure each layer's sensitivity (the metric gained by excluding it alone,
//!   re-running only what lies downstream of it), add layers most sensitive first until the
//!   target holds, then drop every layer whose removal keeps the target.
//!
//! Both record how many evaluations they asked for (results found in the session count:
//! they would have run) and what they found; the stage's best is the better of the two.

use crate::config::tune::ExcludeStrategy;
use crate::error::{Error, Result};
use crate::session::{ExcludeSearch, Origin, StageId, best_of};

use super::tuner::{Observer, Request, Tuner};

impl Tuner<'_, '_> {
    /// Runs stage 7.
    pub(super) fn run_exclude(&mut self, obs: &dyn Observer) -> Result<()> {
        let stage = StageId::Exclude;
        let earlier: Vec<usize> = [StageId::Calibrate, StageId::Modify, StageId::Traverse]
            .iter()
            .flat_map(|&s| self.session.stage(s).evaluations.clone())
            .collect();
        let base = best_of(&self.session.evaluations, earlier)
            .ok_or_else(|| Error::Usage("stage 7 needs an evaluation from stages 1-5".into()))?;
        let setting = self.session.evaluations[base]
            .setting
            .ok_or_else(|| Error::Usage("stage 7 needs a quantized result".into()))?;
        let base_exclude = self.session.evaluations[base].exclude.clone();
        let candidates: Vec<String> = self
            .session
            .layers
            .iter()
            .map(|l| l.name.clone())
            .filter(|n| !base_exclude.contains(n))
            .collect();
        let strategy = self.tune.exclude_search;
        let linear = matches!(
            strategy,
            ExcludeStrategy::LayerByLayer | ExcludeStrategy::Both
        );
        let ranked = matches!(strategy, ExcludeStrategy::Ranked | ExcludeStrategy::Both);
        let per = candidates.len();
        self.session.stage_mut(stage).evaluations_total =
            usize::from(linear) * per + usize::from(ranked) * 2 * per;
        let search = Search {
            setting,
            base_exclude,
            candidates,
        };
        if linear {
            let found = self.layer_by_layer(&search, obs)?;
            self.session.stage_mut(stage).searches.push(found);
            self.save()?;
        }
        if ranked {
            let found = self.ranked(&search, base, obs)?;
            self.session.stage_mut(stage).searches.push(found);
            self.save()?;
        }
        Ok(())
    }

    /// The seed's search: exclude the first k layers, k = 1, 2, … until the target holds.
    fn layer_by_layer(&mut self, s: &Search, obs: &dyn Observer) -> Result<ExcludeSearch> {
        self.rebase(s.setting, &s.base_exclude, obs)?;
        let mut exclude = s.base_exclude.clone();
        let mut used = 0;
        let mut last = None;
        for layer in &s.candidates {
            exclude.push(layer.clone());
            let i = self.eval_exclude(s.setting, &exclude, Origin::Flow, true, obs)?;
            used += 1;
            last = Some(i);
            if self.session.evaluations[i].report.target_met {
                break;
            }
        }
        Ok(self.found("layer_by_layer", used, last, Vec::new()))
    }

    /// Sensitivity ranking, then greedy addition and pruning.
    fn ranked(&mut self, s: &Search, base: usize, obs: &dyn Observer) -> Result<ExcludeSearch> {
        let base_metric = self.session.evaluations[base].metric();
        self.rebase(s.setting, &s.base_exclude, obs)?;
        let mut used = 0;
        let mut scored = Vec::new();
        for layer in &s.candidates {
            let mut exclude = s.base_exclude.clone();
            exclude.push(layer.clone());
            let i = self.eval_exclude(s.setting, &exclude, Origin::Probe, false, obs)?;
            used += 1;
            let r = &self.session.evaluations[i].report;
            scored.push((layer.clone(), r.int8 - base_metric, r.output_sqnr_db));
        }
        // Most sensitive first: largest gain, then the cleanest outputs when excluded.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.total_cmp(&a.2)));
        let ranking: Vec<(String, f64)> = scored.iter().map(|(n, g, _)| (n.clone(), *g)).collect();

        let mut exclude = s.base_exclude.clone();
        let mut added = Vec::new();
        let mut last = None;
        for (layer, _) in &ranking {
            exclude.push(layer.clone());
            added.push(layer.clone());
            let i = self.eval_exclude(s.setting, &exclude, Origin::Flow, true, obs)?;
            used += 1;
            last = Some(i);
            if self.session.evaluations[i].report.target_met {
                break;
            }
        }
        let met = last.is_some_and(|i| self.session.evaluations[i].report.target_met);
        if met {
            // Least sensitive first: the likeliest to be unnecessary.
            for layer in added.iter().rev() {
                let trial: Vec<String> = exclude.iter().filter(|e| *e != layer).cloned().collect();
                let i = self.eval_exclude(s.setting, &trial, Origin::Flow, false, obs)?;
                used += 1;
                if self.session.evaluations[i].report.target_met {
                    exclude = trial;
                    last = Some(i);
                }
            }
        }
        Ok(self.found("ranked", used, last, ranking))
    }

    fn eval_exclude(
        &mut self,
        setting: usize,
        exclude: &[String],
        origin: Origin,
        rebase: bool,
        obs: &dyn Observer,
    ) -> Result<usize> {
        let i = self.evaluate(
            Request {
                stage: StageId::Exclude,
                origin,
                setting: Some(setting),
                exclude: exclude.to_vec(),
                fp16: false,
                rebase,
            },
            obs,
        )?;
        if origin == Origin::Flow {
            self.record_progress(StageId::Exclude, i);
        } else {
            self.session.stage_mut(StageId::Exclude).evaluations_done += 1;
        }
        obs.changed(&self.session);
        Ok(i)
    }

    fn found(
        &self,
        strategy: &str,
        used: usize,
        last: Option<usize>,
        ranking: Vec<(String, f64)>,
    ) -> ExcludeSearch {
        let e = last.map(|i| &self.session.evaluations[i]);
        ExcludeSearch {
            strategy: strategy.to_string(),
            evaluations: used,
            exclude: e.map(|e| e.exclude.clone()).unwrap_or_default(),
            metric: e.map(|e| e.metric()),
            target_met: e.is_some_and(|e| e.report.target_met),
            ranking,
        }
    }
}

/// What both searches start from.
struct Search {
    setting: usize,
    base_exclude: Vec<String>,
    candidates: Vec<String>,
}
