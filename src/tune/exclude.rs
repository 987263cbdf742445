//! Stage 7: building exclude_op. Two strategies run side by side from the best setting of
//! the earlier stages:
//! - *layer by layer* (the seed's): blacklist the first layer, then the first two, … in
//!   graph order, until the target holds;
//! - *ranked*: measure each layer's sensitivity (the metric gained by excluding it alone,
//!   re-running only what lies downstream of it), add layers most sensitive first until the
//!   target holds, then drop every layer whose removal keeps the target.
//!
//! A blacklist *counts* only when at least one layer stays quantized and it is within
//! `tune.max_excluded`; both searches stop at that limit. The stage's result is the
//! smallest counting blacklist that met the target among every one tried (fewest excluded
//! MACs, then fewest layers, then the highest metric — `order::by_blacklist`), so a search
//! that excludes everything can never "meet" the target.

use crate::config::tune::ExcludeStrategy;
use crate::error::{Error, Result};
use crate::session::{EvalId, ExcludeSearch, Origin, SettingId, StageId, order};

use super::race::Race;
use super::tuner::{Observer, Request, Tuner};

/// What both searches start from.
struct Search {
    setting: SettingId,
    base_exclude: Vec<String>,
    candidates: Vec<String>,
}

impl Tuner<'_, '_> {
    /// Runs stage 7.
    pub(super) fn run_exclude(&mut self, obs: &dyn Observer) -> Result<()> {
        let stage = StageId::Exclude;
        let earlier: Vec<EvalId> = [
            StageId::Calibrate,
            StageId::Modify,
            StageId::Traverse,
            StageId::Correct,
        ]
        .iter()
        .flat_map(|&s| self.session.stage(s).evaluations.clone())
        .collect();
        let base = self
            .session
            .best_of(earlier)
            .and_then(|b| self.session.evaluation(b))
            .ok_or_else(|| Error::Usage("stage 7 needs an evaluation from stages 1-6".into()))?;
        let setting = base
            .setting
            .ok_or_else(|| Error::Usage("stage 7 needs a quantized result".into()))?;
        let base_exclude = base.exclude.clone();
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
            let found = self.ranked(&search, obs)?;
            self.session.stage_mut(stage).searches.push(found);
            self.save()?;
        }
        Ok(())
    }

    /// Whether `exclude` counts as a stage 7 result: a layer stays quantized, and it is
    /// within `tune.max_excluded`.
    pub fn admissible(&self, exclude: &[String]) -> bool {
        let s = &self.session;
        let total_layers = s.layers.len();
        let total_macs: u64 = s.layers.iter().map(|l| l.macs).sum();
        exclude.len() < total_layers
            && self.tune.max_excluded.allows(
                exclude.len(),
                total_layers,
                s.excluded_macs(exclude),
                total_macs,
            )
    }

    /// Whether evaluation `i` met the target with a blacklist that counts.
    fn counts(&self, i: EvalId) -> bool {
        self.session
            .evaluation(i)
            .is_some_and(|e| e.report.target_met && self.admissible(&e.exclude))
    }

    /// The seed's search: exclude the first k layers, k = 1, 2, … until the target holds
    /// or the next blacklist would pass `tune.max_excluded`.
    fn layer_by_layer(&mut self, s: &Search, obs: &dyn Observer) -> Result<ExcludeSearch> {
        self.rebase(s.setting, &s.base_exclude, obs)?;
        let mut exclude = s.base_exclude.clone();
        let mut tried = Vec::new();
        let mut stopped = None;
        for layer in &s.candidates {
            exclude.push(layer.clone());
            if !self.admissible(&exclude) {
                stopped = Some(self.limit_note(exclude.len() - 1));
                break;
            }
            let i = self.eval_exclude(s.setting, &exclude, Origin::Flow, true, obs)?;
            tried.push(i);
            if self.counts(i) {
                break;
            }
        }
        Ok(self.found("layer_by_layer", tried.len(), tried, Vec::new(), stopped))
    }

    /// Sensitivity ranking, then greedy addition (within the limit) and pruning.
    fn ranked(&mut self, s: &Search, obs: &dyn Observer) -> Result<ExcludeSearch> {
        self.rebase(s.setting, &s.base_exclude, obs)?;
        let base_metric = self
            .session
            .find_evaluation(Some(s.setting), &s.base_exclude, self.fp16(), false)
            .and_then(|i| self.session.evaluation(i))
            .map_or(f64::NAN, |e| e.metric());
        let mut used = 0;
        let mut scored = Vec::new();
        let mut tried = Vec::new();
        for layer in &s.candidates {
            let mut exclude = s.base_exclude.clone();
            exclude.push(layer.clone());
            let i = self.eval_exclude(s.setting, &exclude, Origin::Probe, false, obs)?;
            used += 1;
            let r = self
                .session
                .evaluation(i)
                .map(|e| (e.metric(), e.report.output_sqnr_db));
            let (m, sqnr) = r.unwrap_or((f64::NAN, f64::NAN));
            scored.push((layer.clone(), m - base_metric, sqnr));
        }
        // Most sensitive first: largest gain, then the cleanest outputs when excluded,
        // then graph order (a stable sort keeps it).
        let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
        scored.sort_by(|a, b| {
            key(b.1)
                .total_cmp(&key(a.1))
                .then(key(b.2).total_cmp(&key(a.2)))
        });
        let ranking: Vec<(String, f64)> = scored.iter().map(|(n, g, _)| (n.clone(), *g)).collect();

        let mut exclude = s.base_exclude.clone();
        let mut added = Vec::new();
        let mut met = false;
        let mut stopped = None;
        for (layer, _) in &ranking {
            let mut trial = exclude.clone();
            trial.push(layer.clone());
            if !self.admissible(&trial) {
                stopped = Some(self.limit_note(exclude.len()));
                break;
            }
            exclude = trial;
            added.push(layer.clone());
            let i = self.eval_exclude(s.setting, &exclude, Origin::Flow, true, obs)?;
            used += 1;
            tried.push(i);
            if self.counts(i) {
                met = true;
                break;
            }
        }
        if met {
            // Least sensitive first: the likeliest to be unnecessary.
            for layer in added.iter().rev() {
                let trial: Vec<String> = exclude.iter().filter(|e| *e != layer).cloned().collect();
                let i = self.eval_exclude(s.setting, &trial, Origin::Flow, false, obs)?;
                used += 1;
                tried.push(i);
                if self.counts(i) {
                    exclude = trial;
                }
            }
        }
        Ok(self.found("ranked", used, tried, ranking, stopped))
    }

    fn limit_note(&self, at: usize) -> String {
        format!(
            "stopped at {at} excluded layer(s): one more would pass tune.max_excluded ({})",
            self.tune.max_excluded.label()
        )
    }

    fn eval_exclude(
        &mut self,
        setting: SettingId,
        exclude: &[String],
        origin: Origin,
        rebase: bool,
        obs: &dyn Observer,
    ) -> Result<EvalId> {
        let fp16 = self.fp16();
        // Blacklists the search tries race the target (one that cannot reach it is
        // stopped); sensitivity probes run in full, since their value ranks the layers.
        let race = match origin {
            Origin::Probe => Race::None,
            _ => Race::Target,
        };
        let i = self.evaluate(
            Request {
                stage: StageId::Exclude,
                origin,
                setting: Some(setting),
                exclude: exclude.to_vec(),
                fp16,
                rebase,
                race,
            },
            obs,
        )?;
        self.record_progress(StageId::Exclude, i);
        obs.changed(&self.session);
        Ok(i)
    }

    /// What a search found: its smallest counting blacklist that met the target, else
    /// the last one it tried.
    fn found(
        &self,
        strategy: &str,
        used: usize,
        tried: Vec<EvalId>,
        ranking: Vec<(String, f64)>,
        stopped: Option<String>,
    ) -> ExcludeSearch {
        let counting: Vec<EvalId> = tried.iter().copied().filter(|&i| self.counts(i)).collect();
        let result = order::best_by(&self.session, counting, order::by_blacklist)
            .or_else(|| tried.last().copied());
        let e = result.and_then(|i| self.session.evaluation(i));
        let target_met = result.is_some_and(|i| self.counts(i));
        ExcludeSearch {
            strategy: strategy.to_string(),
            evaluations: used,
            exclude: e.map(|e| e.exclude.clone()).unwrap_or_default(),
            metric: e.map(|e| e.metric()),
            target_met,
            ranking,
            result,
            tried,
            stopped: if target_met { None } else { stopped },
        }
    }

    /// Stage 7's best and whether it met the target: the smallest counting blacklist that
    /// met the target among every evaluation of the stage (probes included); when none
    /// did, the highest metric among the counting ones.
    pub(super) fn exclude_best(&self) -> (Option<EvalId>, bool) {
        let evals = self.session.stage(StageId::Exclude).evaluations.clone();
        let meeting: Vec<EvalId> = evals.iter().copied().filter(|&i| self.counts(i)).collect();
        if let Some(b) = order::best_by(&self.session, meeting, order::by_blacklist) {
            return (Some(b), true);
        }
        let admissible = evals.into_iter().filter(|&i| {
            self.session
                .evaluation(i)
                .is_some_and(|e| self.admissible(&e.exclude))
        });
        (self.session.best_of(admissible), false)
    }
}
