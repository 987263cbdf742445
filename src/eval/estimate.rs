//! Running estimates of a metric while an evaluation streams (DESIGN.md decision 5), and
//! the paired comparisons that let a search stop a candidate early.
//!
//! Samples are evaluated in a fixed shuffled order (`stream_order`), so the first `n` are a
//! simple random sample without replacement of the `N` in the set, and the finished
//! evaluation is over the whole set: every interval carries the finite-population
//! correction `(N − n) / (N − 1)` and is exactly zero wide at `n = N`.
//!
//! What each sample contributes depends on the metric:
//! - per-sample metrics (top1, top5, agreement, iou): the metric is the mean of one value
//!   per sample, estimated by the sample mean;
//! - ratio metrics (cosine, sqnr of all outputs): the metric is a function of sums over the
//!   samples, estimated by the ratio estimator with the delta method's variance;
//! - `command` metrics are known only at the end (no estimate).

use crate::config::Metric;

use super::Moments;
use super::metrics::SQNR_CAP_DB;

/// What one finished sample contributes to the metric. Stored as a number (`Value`) or
/// an array `[xy, xx, yy, ee]` (`Moments`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SampleScore {
    /// Its value of a per-sample metric.
    Value(f64),
    /// Its sums of a ratio metric (all outputs, INT8 against FP32).
    Moments(Moments),
}

impl serde::Serialize for SampleScore {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        match self {
            SampleScore::Value(v) => crate::serde_num::f64_any::serialize(v, s),
            SampleScore::Moments(m) => {
                let mut t = s.serialize_tuple(4)?;
                for x in [m.xy, m.xx, m.yy, m.ee] {
                    t.serialize_element(&crate::serde_num::AnyF64(x))?;
                }
                t.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for SampleScore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SampleScore, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Row {
            Moments([crate::serde_num::AnyF64; 4]),
            Value(crate::serde_num::AnyF64),
        }
        Ok(match Row::deserialize(d)? {
            Row::Value(v) => SampleScore::Value(v.0),
            Row::Moments([xy, xx, yy, ee]) => SampleScore::Moments(Moments {
                xy: xy.0,
                xx: xx.0,
                yy: yy.0,
                ee: ee.0,
            }),
        })
    }
}

/// A running estimate of the INT8 metric after `done` of `total` samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub done: usize,
    pub total: usize,
    pub value: f64,
    /// Half-width of the 95% interval (0 when `done == total`).
    pub half_width: f64,
}

impl Estimate {
    pub fn is_final(&self) -> bool {
        self.done >= self.total
    }
}

/// z of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A fixed pseudo-random permutation of `0..n` (the same for every evaluation of a set,
/// so searches compare candidates on the same samples in the same order).
pub fn stream_order(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ n as u64;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((state >> 33) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// The finite-population factor of the variance of a mean of `n` of `total` values.
fn fpc(n: usize, total: usize) -> f64 {
    if total <= 1 || n >= total {
        0.0
    } else {
        (total - n) as f64 / (total - 1) as f64
    }
}

/// Mean and sample variance.
fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var)
}

/// The influence of each sample on a ratio metric at the current sums (the delta method's
/// linearization), and the metric itself: `metric ≈ value + mean(influence)` near the sums.
fn ratio_influence(metric: Metric, m: &[Moments]) -> Option<(f64, Vec<f64>)> {
    let n = m.len() as f64;
    let mean = |f: fn(&Moments) -> f64| m.iter().map(f).sum::<f64>() / n;
    let (xy, xx, yy, ee) = (
        mean(|s| s.xy),
        mean(|s| s.xx),
        mean(|s| s.yy),
        mean(|s| s.ee),
    );
    match metric {
        Metric::Cosine => {
            let d = (xx * yy).sqrt();
            if d <= 0.0 {
                return None;
            }
            let value = xy / d;
            let infl = m
                .iter()
                .map(|s| (s.xy - xy) / d - value / 2.0 * ((s.xx - xx) / xx + (s.yy - yy) / yy))
                .collect();
            Some((value, infl))
        }
        Metric::Sqnr => {
            if ee <= 0.0 || xx <= 0.0 {
                return Some((SQNR_CAP_DB, vec![0.0; m.len()]));
            }
            let k = 10.0 / std::f64::consts::LN_10;
            let value = (10.0 * (xx / ee).log10()).min(SQNR_CAP_DB);
            let infl = m
                .iter()
                .map(|s| k * ((s.xx - xx) / xx - (s.ee - ee) / ee))
                .collect();
            Some((value, infl))
        }
        _ => None,
    }
}

/// The values whose mean estimates the metric (per-sample values, or a ratio metric's
/// value plus each sample's influence), or `None` when the metric has no estimate.
fn linear_values(metric: Metric, scores: &[SampleScore]) -> Option<Vec<f64>> {
    match scores.first()? {
        SampleScore::Value(_) => scores
            .iter()
            .map(|s| match s {
                SampleScore::Value(v) => Some(*v),
                SampleScore::Moments(_) => None,
            })
            .collect(),
        SampleScore::Moments(_) => {
            let m: Option<Vec<Moments>> = scores
                .iter()
                .map(|s| match s {
                    SampleScore::Moments(m) => Some(*m),
                    SampleScore::Value(_) => None,
                })
                .collect();
            let (value, infl) = ratio_influence(metric, &m?)?;
            Some(infl.into_iter().map(|i| value + i).collect())
        }
    }
}

/// The estimate of the metric after `scores` (in stream order) of `total` samples.
pub fn estimate(metric: Metric, scores: &[SampleScore], total: usize) -> Option<Estimate> {
    if metric == Metric::Command {
        return None;
    }
    let v = linear_values(metric, scores)?;
    let (value, var) = mean_var(&v);
    let n = v.len();
    Some(Estimate {
        done: n,
        total,
        value,
        half_width: Z95 * (var / n as f64 * fpc(n, total)).sqrt(),
    })
}

/// An upper confidence bound on `final(a) − final(b)` over the whole set, from the first
/// `n` samples of both (the same samples, in the same order): the paired mean difference
/// plus `z` standard errors (finite-population corrected). For a per-sample metric the
/// differences are exact per sample; for a ratio metric they are of the linearized
/// values. `None` when it cannot be estimated (e.g. a `command` metric).
pub fn paired_upper_bound(
    metric: Metric,
    a: &[SampleScore],
    b: &[SampleScore],
    total: usize,
    z: f64,
) -> Option<f64> {
    let n = a.len().min(b.len());
    let (la, lb) = (
        linear_values(metric, a.get(..n)?)?,
        linear_values(metric, b.get(..n)?)?,
    );
    let d: Vec<f64> = la.iter().zip(&lb).map(|(x, y)| x - y).collect();
    let (mean, var) = mean_var(&d);
    // A small floor on the variance: n equal differences say little about the rest.
    let floor = 1.0 / (n as f64 * n as f64);
    Some(mean + z * ((var.max(floor)) / n as f64 * fpc(n, total)).sqrt())
}

/// For a per-sample metric whose values lie in `[0, 1]` (top-k, agreement, IoU): the most
/// `final(a) − final(b)` can still become, with certainty, when `b`'s score is known for
/// every sample (`b_all`, in stream order) and `a`'s for the first `a.len()`: what `a`
/// lost or gained so far, plus at most `1 − b_i` on each remaining sample. `None` for
/// ratio metrics.
pub fn max_final_gain(a: &[SampleScore], b_all: &[SampleScore], total: usize) -> Option<f64> {
    let value = |s: &SampleScore| match s {
        SampleScore::Value(v) => Some(*v),
        SampleScore::Moments(_) => None,
    };
    let mut sum = 0.0;
    for (x, y) in a.iter().zip(b_all) {
        sum += value(x)? - value(y)?;
    }
    for y in b_all.get(a.len()..)? {
        sum += 1.0 - value(y)?;
    }
    Some(sum / total.max(1) as f64)
}

/// For a per-sample metric in `[0, 1]`: the most the final metric can still become, with
/// certainty, after `scores` of `total` samples (every remaining sample scoring 1).
pub fn max_final_value(scores: &[SampleScore], total: usize) -> Option<f64> {
    let mut sum = 0.0;
    for s in scores {
        match s {
            SampleScore::Value(v) => sum += v,
            SampleScore::Moments(_) => return None,
        }
    }
    Some((sum + total.saturating_sub(scores.len()) as f64) / total.max(1) as f64)
}

/// An upper confidence bound on the final metric over the whole set, from the first `n`
/// samples' scores: the estimate plus `z` standard errors (finite-population corrected,
/// with the same variance floor as [`paired_upper_bound`]).
pub fn upper_bound(metric: Metric, scores: &[SampleScore], total: usize, z: f64) -> Option<f64> {
    let v = linear_values(metric, scores)?;
    let (mean, var) = mean_var(&v);
    let n = v.len() as f64;
    let floor = 1.0 / (n * n);
    Some(mean + z * (var.max(floor) / n * fpc(v.len(), total)).sqrt())
}

/// The `p` quantile of the standard normal distribution (Acklam's rational
/// approximation, relative error below 1.2e-9), for `0 < p < 1`.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certain_bound_counts_what_the_best_got_wrong_in_the_rest() {
        // The best is right everywhere but on sample 3; the candidate lost samples 0 and 1.
        let best: Vec<SampleScore> = (0..6)
            .map(|i| SampleScore::Value(if i == 3 { 0.0 } else { 1.0 }))
            .collect();
        let cand = [0.0, 0.0, 1.0].map(SampleScore::Value);
        // −2 so far, at most +1 on sample 3: it cannot catch up.
        assert_eq!(max_final_gain(&cand, &best, 6), Some(-1.0 / 6.0));
        let cand = [0.0, 1.0, 1.0].map(SampleScore::Value);
        assert_eq!(max_final_gain(&cand, &best, 6), Some(0.0));
    }

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.975) - Z95).abs() < 1e-8);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(1e-4) + 3.719_016_485).abs() < 1e-6);
    }

    #[test]
    fn the_stream_order_is_a_fixed_permutation() {
        let o = stream_order(300);
        let mut s = o.clone();
        s.sort_unstable();
        assert_eq!(s, (0..300).collect::<Vec<_>>());
        assert_eq!(o, stream_order(300));
        assert_ne!(o[..10], (0..10).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn a_finished_estimate_is_the_metric_with_no_width() {
        let scores: Vec<SampleScore> = [1.0, 0.0, 1.0, 1.0].map(SampleScore::Value).to_vec();
        let e = estimate(Metric::Top1, &scores, 4).unwrap();
        assert_eq!((e.value, e.half_width, e.is_final()), (0.75, 0.0, true));
        let e = estimate(Metric::Top1, &scores[..2], 4).unwrap();
        assert!(e.half_width > 0.0 && !e.is_final());
        assert!(estimate(Metric::Command, &scores, 4).is_none());
    }

    #[test]
    fn the_ratio_estimate_of_cosine_matches_the_exact_cosine_at_the_end() {
        let m: Vec<SampleScore> = (0..6)
            .map(|i| {
                let x = 1.0 + i as f64;
                SampleScore::Moments(Moments {
                    xy: x * (x + 0.1),
                    xx: x * x,
                    yy: (x + 0.1) * (x + 0.1),
                    ee: 0.01,
                })
            })
            .collect();
        let total = Moments {
            xy: (1..=6).map(|x| x as f64 * (x as f64 + 0.1)).sum(),
            xx: (1..=6).map(|x| (x * x) as f64).sum(),
            yy: (1..=6).map(|x| (x as f64 + 0.1).powi(2)).sum(),
            ee: 0.06,
        };
        let e = estimate(Metric::Cosine, &m, 6).unwrap();
        assert!(
            (e.value - total.cosine()).abs() < 1e-12,
            "{} {}",
            e.value,
            total.cosine()
        );
        let s = estimate(Metric::Sqnr, &m, 6).unwrap();
        assert!((s.value - total.sqnr_db()).abs() < 1e-9);
    }

    #[test]
    fn a_clearly_worse_candidate_has_a_negative_upper_bound() {
        let best: Vec<SampleScore> = (0..40).map(|_| SampleScore::Value(1.0)).collect();
        let worse: Vec<SampleScore> = (0..40)
            .map(|i| SampleScore::Value(if i % 2 == 0 { 0.0 } else { 1.0 }))
            .collect();
        let ub = paired_upper_bound(Metric::Top1, &worse, &best, 300, 3.0).unwrap();
        assert!(ub < 0.0, "{ub}");
        // Equal so far: the bound stays above zero (it could still win).
        let ub = paired_upper_bound(Metric::Top1, &best, &best, 300, 3.0).unwrap();
        assert!(ub > 0.0);
        // At the end of the set the bound is the exact difference.
        let ub = paired_upper_bound(Metric::Top1, &worse[..4], &best[..4], 4, 3.0).unwrap();
        assert_eq!(ub, -0.5);
    }
}
