//! How results are ranked. Every order is total and depends only on what the evaluations
//! hold, never on the order they ran in, so a resumed run chooses what an uninterrupted
//! one chooses.

use std::cmp::Ordering;

use super::Session;
use super::ids::EvalId;
use super::record::Evaluation;

/// An order over evaluations: `Less` means "better".
pub type EvalOrder = fn(&Session, &Evaluation, &Evaluation) -> Ordering;

/// The best of `candidates` under `order` (unknown ids and stopped evaluations ignored;
/// equal keys: lower id).
pub fn best_by(
    s: &Session,
    candidates: impl IntoIterator<Item = EvalId>,
    order: EvalOrder,
) -> Option<EvalId> {
    let mut best: Option<(EvalId, &Evaluation)> = None;
    for id in candidates {
        let Some(e) = s.evaluation(id).filter(|e| e.is_complete()) else {
            continue;
        };
        let better = match best {
            None => true,
            Some((bid, b)) => order(s, e, b).then(id.cmp(&bid)) == Ordering::Less,
        };
        if better {
            best = Some((id, e));
        }
    }
    best.map(|(id, _)| id)
}

/// Highest metric first (NaN last), then fewer layers excluded, then the stable key.
pub fn by_metric(s: &Session, a: &Evaluation, b: &Evaluation) -> Ordering {
    metric_desc(a, b)
        .then(a.exclude.len().cmp(&b.exclude.len()))
        .then_with(|| stable_key(s, a, b))
}

/// Stage 7's order among results that meet the target: the smallest blacklist — fewest
/// excluded multiply-accumulates, then fewest layers — then the highest metric.
pub fn by_blacklist(s: &Session, a: &Evaluation, b: &Evaluation) -> Ordering {
    s.excluded_macs(&a.exclude)
        .cmp(&s.excluded_macs(&b.exclude))
        .then(a.exclude.len().cmp(&b.exclude.len()))
        .then(metric_desc(a, b))
        .then_with(|| stable_key(s, a, b))
}

fn metric_desc(a: &Evaluation, b: &Evaluation) -> Ordering {
    let key = |e: &Evaluation| {
        let m = e.metric();
        if m.is_nan() { f64::NEG_INFINITY } else { m }
    };
    key(b).total_cmp(&key(a))
}

/// Settings in their stable order (FP16 results, without a setting, last), then the
/// exclude lists, then the precision.
fn stable_key(s: &Session, a: &Evaluation, b: &Evaluation) -> Ordering {
    let setting = |e: &Evaluation| e.setting.and_then(|i| s.setting(i)).map(|r| r.setting);
    let by_setting = match (setting(a), setting(b)) {
        (Some(x), Some(y)) => x.stable_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_setting
        .then_with(|| a.exclude.cmp(&b.exclude))
        .then(a.fp16.cmp(&b.fp16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::{DivergenceType, QuantizeAlgo, WeightType};
    use crate::config::{FloatPrecision, Metric, RawConfig};
    use crate::eval::EvalReport;
    use crate::session::{
        LayerInfo, Origin, RerunStats, SessionInit, Setting, SettingRecord, StageId,
    };

    fn setting(bin: u32) -> Setting {
        Setting {
            quantize_algo: QuantizeAlgo::HalfOffset,
            weight_type: WeightType::Vector,
            bin,
            divergence: DivergenceType::Kl,
            start_ratio: 0.7,
            end_ratio: 1.3,
            step_ratio: 0.01,
            max_percentile: 1.0,
            batch_count: 10,
        }
    }

    fn session(evals: &[(u32, &[&str], f64)]) -> Session {
        let layers = ["a", "b", "c"]
            .iter()
            .zip([100u64, 10, 1])
            .map(|(n, macs)| LayerInfo {
                name: n.to_string(),
                op_type: "Conv".into(),
                activations: vec![format!("{n}_in")],
                macs,
            })
            .collect();
        let mut s = Session::new(SessionInit {
            model: "m.onnx".into(),
            model_sha256: String::new(),
            config_file: None,
            config: RawConfig::default(),
            metric: Metric::Top1,
            max_drop: 0.01,
            min_value: None,
            eval_samples: 10,
            fp32_metric: Some(1.0),
            float_precision: FloatPrecision::Fp32,
            degradations: vec![],
            sample_shapes: vec![],
            layers,
            exclude: vec![],
        });
        for bin in [150, 100] {
            s.push_setting(SettingRecord {
                setting: setting(bin),
                fingerprint: bin.to_string(),
                activations: Default::default(),
                curves: Default::default(),
            })
            .unwrap();
        }
        for &(set, exclude, m) in evals {
            s.push_evaluation(Evaluation {
                stage: StageId::Exclude,
                origin: Origin::Flow,
                setting: Some(crate::session::SettingId(set)),
                exclude: exclude.iter().map(|x| x.to_string()).collect(),
                fp16: false,
                report: EvalReport {
                    metric: Metric::Top1,
                    fp32: 1.0,
                    int8: m,
                    delta: m - 1.0,
                    max_drop: 0.01,
                    target_met: m >= 0.99,
                    samples: 10,
                    output_cosine: 1.0,
                    output_sqnr_db: 30.0,
                    layers: vec![],
                    seconds: 0.0,
                    invalid: None,
                },
                rerun: RerunStats::default(),
                scores: Vec::new(),
                stopped: None,
            })
            .unwrap();
        }
        s
    }

    fn ids(n: u32) -> Vec<EvalId> {
        (0..n).map(EvalId).collect()
    }

    #[test]
    fn ties_on_the_metric_are_broken_by_the_setting_not_by_the_order_of_evaluation() {
        // Settings 0 (bin 150) and 1 (bin 100) score the same: bin 100 sorts first.
        let s = session(&[(0, &[], 0.9), (1, &[], 0.9)]);
        assert_eq!(s.best_of(ids(2)), Some(EvalId(1)));
        assert_eq!(s.best_of(ids(2).into_iter().rev()), Some(EvalId(1)));
    }

    #[test]
    fn the_metric_decides_first_then_fewer_layers_excluded() {
        let s = session(&[(0, &["a"], 0.95), (0, &[], 0.95), (0, &["a", "b"], 0.97)]);
        assert_eq!(s.best_of(ids(3)), Some(EvalId(2)));
        assert_eq!(s.best_of(ids(2)), Some(EvalId(1)));
    }

    #[test]
    fn nan_metrics_rank_last() {
        let s = session(&[(0, &[], f64::NAN), (0, &["a"], 0.1)]);
        assert_eq!(s.best_of(ids(2)), Some(EvalId(1)));
    }

    #[test]
    fn the_smallest_blacklist_wins_stage_7_by_macs_then_layers_then_metric() {
        // a: 100 MACs, b: 10, c: 1. Excluding b and c (11 MACs) beats excluding a alone
        // (100), whatever the metric; at equal MACs fewer layers win.
        let s = session(&[
            (0, &["a"], 0.999),
            (0, &["b", "c"], 0.991),
            (0, &["b"], 0.992),
        ]);
        assert_eq!(best_by(&s, ids(2), by_blacklist), Some(EvalId(1)));
        assert_eq!(best_by(&s, ids(3), by_blacklist), Some(EvalId(2)));
    }
}
