//! Races (issue 11, DESIGN.md decision 5): a search evaluates its candidates on the same
//! samples in the same order (`eval::estimate::stream_order`) and stops one as soon as it
//! can no longer change the decision at `tune.race_confidence` — it cannot beat the best
//! so far (a paired comparison), or it cannot reach the target. A stopped evaluation is
//! recorded with where it stopped and is never a result; the winner is always evaluated
//! in full, because only candidates that cannot win are stopped.

use crate::config::Metric;
use crate::eval::SampleScore;
use crate::eval::estimate::{
    max_final_gain, max_final_value, normal_quantile, paired_upper_bound, upper_bound,
};
use crate::session::{EvalId, Session, Stopped};

/// What a candidate races against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Race {
    /// No race: every sample.
    None,
    /// Stop it once it cannot beat this (complete) evaluation.
    Best(EvalId),
    /// Stop it once it cannot reach the target.
    Target,
}

/// A race's stopping rule over a candidate's scores so far (in stream order).
pub struct StopRule {
    metric: Metric,
    total: usize,
    z: f64,
    min_samples: usize,
    against: Against,
}

enum Against {
    Best {
        id: EvalId,
        scores: Vec<SampleScore>,
    },
    Target(f64),
}

impl StopRule {
    /// The rule of `race` in session `s` at `confidence`, or `None` when nothing can be
    /// stopped (no race, a `command` metric, a best without stored scores, too few samples).
    pub fn new(s: &Session, race: Race, threshold: f64, confidence: f64) -> Option<StopRule> {
        let total = s.eval_samples;
        let against = match race {
            Race::None => return None,
            Race::Best(id) => {
                let e = s.evaluation(id).filter(|e| e.is_complete())?;
                (e.scores.len() == total).then(|| Against::Best {
                    id,
                    scores: e.scores.clone(),
                })?
            }
            Race::Target => Against::Target(threshold),
        };
        if s.metric == Metric::Command || total < 8 {
            return None;
        }
        // One-sided, Bonferroni over the looks (one per streamed block, about log2 of the
        // sample count plus the blocks of the largest size).
        let looks = (total as f64).log2().ceil() + (total / 32) as f64 + 1.0;
        let z = normal_quantile(1.0 - (1.0 - confidence) / looks);
        Some(StopRule {
            metric: s.metric,
            total,
            z,
            min_samples: (total / 20).max(8),
            against,
        })
    }

    /// Whether the candidate with `scores` so far can be stopped.
    pub fn should_stop(&self, scores: &[SampleScore]) -> bool {
        if scores.len() < self.min_samples || scores.len() >= self.total {
            return false;
        }
        // Per-sample metrics lie in [0, 1], which gives certain bounds: the candidate can
        // gain at most what the best missed in the rest, and score at most 1 on each
        // remaining sample. Statistical bounds (at the race's confidence) are used only
        // where the per-sample values are continuous or the metric is a ratio: for 0/1
        // values the normal approximation fails near the end of the set, where a few
        // decisive samples can remain (a tied candidate was stopped that way in testing).
        let statistical = !matches!(self.metric, Metric::Top1 | Metric::Top5 | Metric::Agreement);
        match &self.against {
            Against::Best { scores: best, .. } => {
                let certain = max_final_gain(scores, best, self.total).is_some_and(|g| g < 0.0);
                certain
                    || (statistical
                        && paired_upper_bound(self.metric, scores, best, self.total, self.z)
                            .is_some_and(|ub| ub < 0.0))
            }
            Against::Target(t) => {
                let below = |ub: f64| ub < *t - 1e-12;
                let certain = max_final_value(scores, self.total).is_some_and(below);
                certain
                    || (statistical
                        && upper_bound(self.metric, scores, self.total, self.z).is_some_and(below))
            }
        }
    }

    /// The record of a candidate stopped after `samples` with this estimate.
    pub fn stopped(&self, samples: usize, estimate: f64, half_width: f64) -> Stopped {
        Stopped {
            samples,
            estimate,
            half_width,
            against: match &self.against {
                Against::Best { id, .. } => format!("best {id}"),
                Against::Target(t) => format!("target {t:.4}"),
            },
        }
    }
}
