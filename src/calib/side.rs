//! The side model (CALIBRATION.md §2): a piecewise-linear CDF over one side of a collector's
//! histogram, and the signed CDF `G` that joins the negative and positive sides.
//!
//! A side is `(counts c, width w, top)`; mass is uniform inside each bin, and the highest occupied
//! bin ends at the exact extreme `top` instead of its grid edge. Prefix sums are computed once, so
//! every CDF evaluation is O(1).

use super::histogram::Collector;

/// One side of a histogram with its prefix sums. Counts are held as `f64` (exact below 2^53).
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// `prefix[b] = Σ_{b' < b} c_b'`, for `b` in `0..=btop+1`.
    prefix: Vec<f64>,
    w: f64,
    inv_w: f64,
    top: f64,
    btop: Option<usize>,
    occupied: usize,
}

impl Side {
    /// A side from its bin counts, bin width `w` (a power of two) and exact extreme `top`
    /// (which must lie in the highest occupied bin; it is ignored when the side is empty).
    pub fn new(counts: impl IntoIterator<Item = u64>, w: f64, top: f64) -> Side {
        let mut prefix = vec![0.0];
        let mut acc = 0u64;
        let mut btop = None;
        let mut occupied = 0;
        for (b, c) in counts.into_iter().enumerate() {
            if c > 0 {
                btop = Some(b);
                occupied += 1;
            }
            acc += c;
            prefix.push(acc as f64);
        }
        prefix.truncate(btop.map_or(1, |b| b + 2));
        Side {
            prefix,
            w,
            inv_w: 1.0 / w,
            top: if btop.is_some() { top } else { 0.0 },
            btop,
            occupied,
        }
    }

    /// Total count of the side.
    pub fn total(&self) -> f64 {
        self.prefix[self.prefix.len() - 1]
    }

    /// The exact extreme magnitude (0 for an empty side).
    pub fn top(&self) -> f64 {
        self.top
    }

    /// Number of occupied bins.
    pub fn occupied_bins(&self) -> usize {
        self.occupied
    }

    /// `c_b`, the count of bin `b ≤ btop`.
    fn count(&self, b: usize) -> f64 {
        self.prefix[b + 1] - self.prefix[b]
    }

    /// Upper edge of bin `b`: `top` for the highest occupied bin, `(b+1)·w` otherwise.
    fn upper(&self, b: usize, btop: usize) -> f64 {
        if b == btop {
            self.top
        } else {
            (b + 1) as f64 * self.w
        }
    }

    /// `F(t) = #{v ≤ t}` under the uniform-in-bin model: 0 for `t ≤ 0`, the total for `t ≥ top`.
    pub fn cdf(&self, t: f64) -> f64 {
        let Some(btop) = self.btop else { return 0.0 };
        if t <= 0.0 || t.is_nan() {
            return 0.0;
        }
        if t >= self.top {
            return self.total();
        }
        let b = ((t * self.inv_w).floor() as usize).min(btop);
        let lo = b as f64 * self.w;
        let hi = self.upper(b, btop);
        let frac = ((t - lo) / (hi - lo)).clamp(0.0, 1.0);
        self.prefix[b] + self.count(b) * frac
    }

    /// The `t` with `#{v > t} = m` for `m > 1`, interpolating linearly inside the bin where the
    /// tail reaches `m`; 0 when the side holds fewer than `m` values (§3).
    pub fn tail_quantile(&self, m: f64) -> f64 {
        let Some(btop) = self.btop else { return 0.0 };
        let mut above = 0.0;
        for b in (0..=btop).rev() {
            let c = self.count(b);
            if c == 0.0 {
                continue;
            }
            if above + c >= m {
                let lo = b as f64 * self.w;
                let hi = self.upper(b, btop);
                return hi - (m - above) / c * (hi - lo);
            }
            above += c;
        }
        0.0
    }

    /// The base value of §3 for `n` finite elements (zeros included) and percentile `p`:
    /// 0 for an empty side, `top` when `m = (1 − p)·n ≤ 1`, else the tail quantile at `m`.
    pub fn base_value(&self, n: f64, p: f64) -> f64 {
        if self.btop.is_none() {
            return 0.0;
        }
        let m = (1.0 - p) * n;
        if m <= 1.0 {
            self.top
        } else {
            self.tail_quantile(m)
        }
    }
}

/// The three side models of a collector (MAG = pos + neg, POS, NEG) plus the totals a search
/// needs. Building it costs O(side_bins); build it once and run many searches on it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorModel {
    /// |x| of every non-zero value; `top = max(|vmin|, |vmax|)`.
    pub mag: Side,
    /// x > 0; `top = max(vmax, 0)`.
    pub pos: Side,
    /// |x| for x < 0; `top = max(−vmin, 0)`.
    pub neg: Side,
    /// `n`: finite values, zeros included.
    pub n: u64,
    /// `Z`: finite non-zero values.
    pub nonzero: u64,
    /// Exact finite min (0 when `n == 0`).
    pub vmin: f64,
    /// Exact finite max (0 when `n == 0`).
    pub vmax: f64,
    /// NaN values seen.
    pub nan: u64,
    /// ±Inf values seen.
    pub inf: u64,
}

impl TensorModel {
    /// Builds the side models of `c`.
    pub fn new(c: &Collector) -> TensorModel {
        let w = c.bin_width().unwrap_or(1.0);
        let vmin = c.min().unwrap_or(0.0);
        let vmax = c.max().unwrap_or(0.0);
        let mag_counts = c.pos().iter().zip(c.neg()).map(|(a, b)| a + b);
        TensorModel {
            mag: Side::new(mag_counts, w, vmin.abs().max(vmax.abs())),
            pos: Side::new(c.pos().iter().copied(), w, vmax.max(0.0)),
            neg: Side::new(c.neg().iter().copied(), w, (-vmin).max(0.0)),
            n: c.count(),
            nonzero: c.nonzero_count(),
            vmin,
            vmax,
            nan: c.nan_count(),
            inf: c.inf_count(),
        }
    }

    /// The signed CDF of the non-zero values: `G(t) = NEG.total − NEG.F(−t)` for `t ≤ 0`,
    /// `NEG.total + POS.F(t)` for `t > 0`.
    pub fn signed_cdf(&self, t: f64) -> f64 {
        signed_cdf(&self.pos, &self.neg, t)
    }
}

/// `G(t)` over explicit sides (see [`TensorModel::signed_cdf`]).
pub fn signed_cdf(pos: &Side, neg: &Side, t: f64) -> f64 {
    if t <= 0.0 {
        neg.total() - neg.cdf(-t)
    } else {
        neg.total() + pos.cdf(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1e-300)
    }

    /// §9-C: base values of `[10,20,30,20,10,5,4,1]`, w = 1, top = 7.6, n = 100.
    #[test]
    fn spec_c_base_value() {
        let s = Side::new([10, 20, 30, 20, 10, 5, 4, 1], 1.0, 7.6);
        let cases = [
            (1.0, 7.6),
            (0.995, 7.6),
            (0.99, 7.0),
            (0.985, 6.875),
            (0.98, 6.75),
            (0.95, 5.999999999999999),
            (0.5, 2.6666666666666665),
        ];
        for (p, want) in cases {
            let got = s.base_value(100.0, p);
            assert!(close(got, want), "p={p}: {got} vs {want}");
        }
        assert_eq!(Side::new([0, 0], 1.0, 0.0).base_value(100.0, 0.5), 0.0);
        // more tail mass asked than the side holds
        assert_eq!(s.tail_quantile(1000.0), 0.0);
    }

    /// §9-D row 1 by hand: F(0.75)=3, F(1.5)=5, F(2.25)=6.25, F(3)=7.
    #[test]
    fn cdf_piecewise_linear() {
        let s = Side::new([4, 2, 1, 0, 1], 1.0, 4.5);
        for (t, want) in [
            (0.75, 3.0),
            (1.5, 5.0),
            (2.25, 6.25),
            (3.0, 7.0),
            (3.5, 7.0),
        ] {
            assert_eq!(s.cdf(t), want, "F({t})");
        }
        // the top bin (4, 4.5] is stretched to end at top = 4.5
        assert_eq!(s.cdf(4.25), 7.5);
        assert_eq!(s.cdf(4.5), 8.0);
        assert_eq!(s.cdf(100.0), 8.0);
        assert_eq!(s.cdf(0.0), 0.0);
        assert_eq!(s.cdf(-1.0), 0.0);
        assert_eq!(s.cdf(f64::NAN), 0.0);
        assert_eq!(s.total(), 8.0);
        assert_eq!(s.occupied_bins(), 4);
        let empty = Side::new([0, 0, 0], 1.0, 5.0);
        assert_eq!(
            (empty.cdf(1.0), empty.total(), empty.top()),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn signed_cdf_joins_sides() {
        // pos [2,1] max 1.5; neg [1,1] min −2 (the §9-D signed example)
        let pos = Side::new([2, 1], 1.0, 1.5);
        let neg = Side::new([1, 1], 1.0, 2.0);
        let g = |t| signed_cdf(&pos, &neg, t);
        assert_eq!(g(-3.0), 0.0);
        assert_eq!(g(-2.0), 0.0);
        assert_eq!(g(-1.5), 0.5);
        assert_eq!(g(-1.0), 1.0);
        assert_eq!(g(0.0), 2.0);
        assert_eq!(g(0.5), 3.0);
        assert_eq!(g(1.25), 4.5);
        assert_eq!(g(1.5), 5.0);
    }
}
