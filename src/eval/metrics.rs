//! Accuracy metrics. Each is one number, higher is better.

use crate::ir::Tensor;

/// Index of the largest value of each row of a `[N, C]`-like tensor (rows = samples).
fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let v = t.to_f64_vec();
    let n = t.shape().first().copied().unwrap_or(1).max(1);
    let per = v.len() / n;
    if per == 0 {
        return vec![Vec::new(); n];
    }
    v.chunks(per).map(<[f64]>::to_vec).collect()
}

fn top_indices(row: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    // Descending by value; ties keep the lower index first, like numpy's argmax.
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Whether `label` is among the `k` highest scores of one sample's first output.
pub fn sample_top_k(output: &Tensor, label: usize, k: usize) -> bool {
    rows(output)
        .first()
        .is_some_and(|r| top_indices(r, k).contains(&label))
}

/// Fraction of samples whose label is among the `k` highest scores. `outputs[i]` is
/// sample i's first model output; `labels[i]` its class.
pub fn top_k(outputs: &[Tensor], labels: &[usize], k: usize) -> f64 {
    let hits = outputs
        .iter()
        .zip(labels)
        .filter(|(o, l)| sample_top_k(o, **l, k))
        .count();
    hits as f64 / outputs.len().max(1) as f64
}

/// Whether every row of one sample has the same top-1 class in both runs.
pub fn sample_agrees(a: &Tensor, b: &Tensor) -> bool {
    let (rx, ry) = (rows(a), rows(b));
    rx.iter()
        .zip(&ry)
        .all(|(p, q)| top_indices(p, 1) == top_indices(q, 1))
}

/// Fraction of samples whose top-1 class is the same in both runs.
pub fn agreement(a: &[Tensor], b: &[Tensor]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| sample_agrees(x, y)).count();
    same as f64 / a.len().max(1) as f64
}

/// The eight lane sums of `Moments::add` added up in its fixed order.
#[inline(always)]
fn lane_sum(l: &[f64; 8]) -> f64 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// Sums over two equally long sequences: (x·y, x·x, y·y, (x−y)²).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Moments {
    pub xy: f64,
    pub xx: f64,
    pub yy: f64,
    pub ee: f64,
}

impl Moments {
    /// Accumulates `reference` (x) against `test` (y). The sums of one call are taken in
    /// float64 over `LANES` interleaved lanes (element i goes to lane i mod `LANES`, a
    /// short tail to its own sums), added up in a fixed order, then added to `self`:
    /// vectorizable, and the same result on every CPU.
    pub fn add(&mut self, reference: &[f32], test: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked just above).
            unsafe { self.add_avx(reference, test) };
            return;
        }
        self.add_lanes(reference, test);
    }

    /// `add_lanes` in AVX registers: lanes 0–3 of each sum in one register, 4–7 in
    /// another, and per lane the very operations of `add_lanes` (convert, multiply, add;
    /// no FMA), so the result is bit-identical. Written with intrinsics because the
    /// compiler shuffles the lane pattern of `add_lanes` instead of keeping it in
    /// registers, which made this the costliest loop of an evaluation.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    unsafe fn add_avx(&mut self, reference: &[f32], test: &[f32]) {
        use std::arch::x86_64::*;
        const LANES: usize = 8;
        let n = reference.len().min(test.len());
        let body = n - n % LANES;
        let z = _mm256_setzero_pd();
        let (mut xy, mut xx, mut yy, mut ee) = ([z; 2], [z; 2], [z; 2], [z; 2]);
        let mut i = 0;
        while i < body {
            // SAFETY: i + 8 <= n, within both slices.
            let (r, t) = unsafe {
                (
                    _mm256_loadu_ps(reference.as_ptr().add(i)),
                    _mm256_loadu_ps(test.as_ptr().add(i)),
                )
            };
            let halves = [
                (
                    _mm256_cvtps_pd(_mm256_castps256_ps128(r)),
                    _mm256_cvtps_pd(_mm256_castps256_ps128(t)),
                ),
                (
                    _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(r)),
                    _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(t)),
                ),
            ];
            for (h, (x, y)) in halves.into_iter().enumerate() {
                xy[h] = _mm256_add_pd(xy[h], _mm256_mul_pd(x, y));
                xx[h] = _mm256_add_pd(xx[h], _mm256_mul_pd(x, x));
                yy[h] = _mm256_add_pd(yy[h], _mm256_mul_pd(y, y));
                let d = _mm256_sub_pd(x, y);
                ee[h] = _mm256_add_pd(ee[h], _mm256_mul_pd(d, d));
            }
            i += LANES;
        }
        let lanes = |v: [__m256d; 2]| {
            let mut l = [0.0f64; LANES];
            // SAFETY: `l` holds 8 f64, two unaligned stores of 4.
            unsafe {
                _mm256_storeu_pd(l.as_mut_ptr(), v[0]);
                _mm256_storeu_pd(l.as_mut_ptr().add(4), v[1]);
            }
            l
        };
        let mut tail = Moments::default();
        tail.add_tail(&reference[body..n], &test[body..n]);
        self.xy += lane_sum(&lanes(xy)) + tail.xy;
        self.xx += lane_sum(&lanes(xx)) + tail.xx;
        self.yy += lane_sum(&lanes(yy)) + tail.yy;
        self.ee += lane_sum(&lanes(ee)) + tail.ee;
    }

    #[inline(always)]
    fn add_lanes(&mut self, reference: &[f32], test: &[f32]) {
        const LANES: usize = 8;
        let n = reference.len().min(test.len());
        let (reference, test) = (&reference[..n], &test[..n]);
        let mut xy = [0.0f64; LANES];
        let mut xx = [0.0f64; LANES];
        let mut yy = [0.0f64; LANES];
        let mut ee = [0.0f64; LANES];
        let (rc, tc) = (reference.chunks_exact(LANES), test.chunks_exact(LANES));
        let (rr, tr) = (rc.remainder(), tc.remainder());
        for (r, t) in rc.zip(tc) {
            let (r, t): (&[f32; LANES], &[f32; LANES]) = (
                r.try_into().expect("a chunk"),
                t.try_into().expect("a chunk"),
            );
            for k in 0..LANES {
                let (x, y) = (r[k] as f64, t[k] as f64);
                xy[k] += x * y;
                xx[k] += x * x;
                yy[k] += y * y;
                ee[k] += (x - y) * (x - y);
            }
        }
        let mut tail = Moments::default();
        tail.add_tail(rr, tr);
        self.xy += lane_sum(&xy) + tail.xy;
        self.xx += lane_sum(&xx) + tail.xx;
        self.yy += lane_sum(&yy) + tail.yy;
        self.ee += lane_sum(&ee) + tail.ee;
    }

    /// The elements after the last full set of lanes, one by one.
    fn add_tail(&mut self, reference: &[f32], test: &[f32]) {
        for (&x, &y) in reference.iter().zip(test) {
            let (x, y) = (x as f64, y as f64);
            self.xy += x * y;
            self.xx += x * x;
            self.yy += y * y;
            self.ee += (x - y) * (x - y);
        }
    }

    pub fn merge(&mut self, o: &Moments) {
        self.xy += o.xy;
        self.xx += o.xx;
        self.yy += o.yy;
        self.ee += o.ee;
    }

    /// Cosine similarity (1 when both are zero).
    pub fn cosine(&self) -> f64 {
        if self.xx == 0.0 && self.yy == 0.0 {
            return 1.0;
        }
        self.xy / (self.xx.sqrt() * self.yy.sqrt()).max(1e-300)
    }

    /// Signal-to-quantization-noise ratio in dB, capped at `SQNR_CAP_DB` (identical signals).
    pub fn sqnr_db(&self) -> f64 {
        if !(self.xx.is_finite() && self.ee.is_finite()) {
            return f64::NAN; // NaN or ±Inf in either run: no ratio to speak of
        }
        if self.ee == 0.0 {
            return SQNR_CAP_DB;
        }
        (10.0 * (self.xx / self.ee).log10()).min(SQNR_CAP_DB)
    }
}

/// SQNR reported for identical signals (no noise at all).
pub const SQNR_CAP_DB: f64 = 200.0;

/// Moments of all outputs of all samples (reference first).
pub fn moments(reference: &[Tensor], test: &[Tensor]) -> Moments {
    let mut m = Moments::default();
    for (r, t) in reference.iter().zip(test) {
        if let (Some(a), Some(b)) = (r.as_f32(), t.as_f32()) {
            match (a.as_slice(), b.as_slice()) {
                (Some(x), Some(y)) => m.add(x, y),
                _ => m.add(
                    &a.iter().copied().collect::<Vec<_>>(),
                    &b.iter().copied().collect::<Vec<_>>(),
                ),
            }
        }
    }
    m
}

/// Mean over samples of the IoU of the two maps binarized at `threshold` (`> threshold`);
/// a sample where both maps are empty counts as 0 / max(1, 0) = 0, as in ort_baseline.py.
pub fn iou(reference: &[Tensor], test: &[Tensor], threshold: f64) -> f64 {
    let sum: f64 = reference
        .iter()
        .zip(test)
        .map(|(r, t)| sample_iou(r, t, threshold))
        .sum();
    sum / reference.len().max(1) as f64
}

/// The IoU of one sample's two maps binarized at `threshold` (see [`iou`]).
pub fn sample_iou(reference: &Tensor, test: &Tensor, threshold: f64) -> f64 {
    let (a, b) = (reference.to_f64_vec(), test.to_f64_vec());
    let (mut inter, mut union) = (0usize, 0usize);
    for (x, y) in a.iter().zip(&b) {
        let (p, q) = (*x > threshold, *y > threshold);
        inter += (p && q) as usize;
        union += (p || q) as usize;
    }
    inter as f64 / union.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[&[f32]]) -> Tensor {
        let data: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_f32(&[rows.len(), rows[0].len()], data)
    }

    #[test]
    fn top_k_and_agreement() {
        let outs = vec![
            t(&[&[0.1, 0.9, 0.0]]),
            t(&[&[0.5, 0.2, 0.3]]),
            t(&[&[0.2, 0.3, 0.5]]),
        ];
        assert_eq!(top_k(&outs, &[1, 2, 0], 1), 1.0 / 3.0);
        assert_eq!(top_k(&outs, &[1, 2, 0], 2), 2.0 / 3.0);
        let other = vec![
            t(&[&[0.9, 0.1, 0.0]]),
            t(&[&[0.5, 0.2, 0.3]]),
            t(&[&[0.2, 0.3, 0.5]]),
        ];
        assert_eq!(agreement(&outs, &other), 2.0 / 3.0);
    }

    #[test]
    fn moments_sum_lanes_then_tail() {
        let x: Vec<f32> = (0..1021).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let y: Vec<f32> = x.iter().map(|v| v * 0.9 + 0.01).collect();
        let mut m = Moments::default();
        m.add(&x, &y);
        let mut naive = Moments::default();
        for (&a, &b) in x.iter().zip(&y) {
            let (a, b) = (a as f64, b as f64);
            naive.xy += a * b;
            naive.xx += a * a;
            naive.yy += b * b;
            naive.ee += (a - b) * (a - b);
        }
        for (p, q) in [
            (m.xy, naive.xy),
            (m.xx, naive.xx),
            (m.yy, naive.yy),
            (m.ee, naive.ee),
        ] {
            assert!((p - q).abs() <= 1e-12 * q.abs().max(1.0), "{p} {q}");
        }
        // The scalar build and the AVX build agree bit for bit.
        let mut lanes = Moments::default();
        lanes.add_lanes(&x, &y);
        assert_eq!(lanes, m);
    }

    #[test]
    fn cosine_sqnr_iou() {
        let a = vec![Tensor::from_f32(&[4], vec![1.0, 0.0, 0.0, 0.0])];
        let b = vec![Tensor::from_f32(&[4], vec![1.0, 0.1, 0.0, 0.0])];
        let m = moments(&a, &b);
        assert!((m.cosine() - 1.0 / (1.01f64).sqrt()).abs() < 1e-6);
        assert!((m.sqnr_db() - 20.0).abs() < 1e-4);
        assert_eq!(moments(&a, &a).sqnr_db(), SQNR_CAP_DB);
        let p = vec![Tensor::from_f32(&[4], vec![0.9, 0.9, 0.1, 0.1])];
        let q = vec![Tensor::from_f32(&[4], vec![0.9, 0.1, 0.9, 0.1])];
        assert!((iou(&p, &q, 0.3) - 1.0 / 3.0).abs() < 1e-12);
    }
}
