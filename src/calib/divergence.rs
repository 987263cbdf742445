//! P/Q construction for one candidate range and the divergences between them (CALIBRATION.md §5).
//!
//! P lives on a grid of step `g` anchored at 0 (fixed per tensor); Q is the `bin`-cell surrogate
//! quantizer's view of the in-range mass, spread over the occupied P entries of each cell with
//! fractional overlaps. A search evaluates the CDF on the grid once ([`PGrid`]) and reuses it for
//! every candidate; only the two ends of each candidate need a fresh evaluation.

use super::error::CalibError;
use super::params::DivergenceType;
use super::search::MAX_GRID_POINTS;

/// Additive smoothing of the normalized P and Q.
pub const EPS: f64 = 1e-10;

/// The fixed P grid of a search: the points `j·g` for `j = first ..= first + len − 1`, anchored
/// at 0, with the CDF evaluated once at each of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PGrid {
    g: f64,
    x: Vec<f64>,
    cdf: Vec<f64>,
    first: i64,
}

impl PGrid {
    /// The grid of step `g > 0` covering every point strictly inside `(lo, hi)` (a union of the
    /// candidate ranges), with `cdf` evaluated at each point. Fails when more than `limit` points
    /// would be needed (or `g` is not a positive number).
    pub fn new(
        g: f64,
        lo: f64,
        hi: f64,
        limit: usize,
        cdf: impl Fn(f64) -> f64,
    ) -> Result<PGrid, CalibError> {
        let points = (hi - lo) / g + 2.0;
        if !(g > 0.0 && points <= limit as f64) {
            return Err(CalibError::GridTooLarge {
                entries: points,
                limit,
            });
        }
        let first = ((lo / g).floor() as i64).saturating_add(1);
        let last = ((hi / g).ceil() as i64).saturating_sub(1);
        let x: Vec<f64> = (first..=last).map(|j| j as f64 * g).collect();
        let cdf = x.iter().map(|&t| cdf(t)).collect();
        Ok(PGrid { g, x, cdf, first })
    }

    /// The step `g`.
    pub fn step(&self) -> f64 {
        self.g
    }

    /// Index range into `x` of the points strictly inside `(lo, hi)`.
    fn inside(&self, lo: f64, hi: f64) -> std::ops::Range<usize> {
        let clamp = |j: i64| j.saturating_sub(self.first).clamp(0, self.x.len() as i64) as usize;
        let mut a = clamp(((lo / self.g).floor() as i64).saturating_add(1));
        let mut b = clamp((hi / self.g).ceil() as i64);
        // the same strict test as the definition, at the two ends only (x is increasing)
        while a < b && self.x[a] <= lo {
            a += 1;
        }
        while b > a && self.x[b - 1] >= hi {
            b -= 1;
        }
        a..b
    }
}

/// Reusable buffers for one P/Q construction (one per thread in a parallel search).
#[derive(Debug, Clone, Default)]
pub struct PqWorkspace {
    /// Entry edges `e_0 = lo < e_1 < … < e_K = hi`.
    pub edges: Vec<f64>,
    /// CDF at each edge.
    pub cdf: Vec<f64>,
    /// In-range mass per entry.
    rm: Vec<f64>,
    /// Width of each entry.
    width: Vec<f64>,
    /// P per entry (in-range mass plus the folded outliers).
    pub p: Vec<f64>,
    /// Q per entry.
    pub q: Vec<f64>,
}

impl PqWorkspace {
    /// Fills `edges` and `cdf` for the range `[lo, hi]` (already snapped, `lo < hi`): the edges
    /// are `lo`, every grid point strictly inside, and `hi`. `cdf_at` gives the CDF at the ends;
    /// the grid points take their cached values. `grid` must cover `(lo, hi)`.
    pub fn fill_entries(&mut self, lo: f64, hi: f64, grid: &PGrid, cdf_at: impl Fn(f64) -> f64) {
        let inside = grid.inside(lo, hi);
        self.edges.clear();
        self.cdf.clear();
        self.edges.push(lo);
        self.edges.extend_from_slice(&grid.x[inside.clone()]);
        self.edges.push(hi);
        self.cdf.push(cdf_at(lo));
        self.cdf.extend_from_slice(&grid.cdf[inside]);
        self.cdf.push(cdf_at(hi));
    }

    /// Builds P and Q (§5 steps 3–4) from the filled entries, `total` = Z (all non-zero mass) and
    /// `nbin` cells on `[edges[0], edges[K]]`.
    pub fn build_pq(&mut self, total: f64, nbin: usize) {
        let k_entries = self.edges.len().saturating_sub(1);
        self.rm.clear();
        self.p.clear();
        self.q.clear();
        if k_entries == 0 || nbin == 0 {
            return;
        }
        self.rm
            .extend(self.cdf.windows(2).map(|f| (f[1] - f[0]).max(0.0)));
        self.p.extend_from_slice(&self.rm);
        self.p[0] += self.cdf[0];
        self.p[k_entries - 1] += total - self.cdf[k_entries];
        self.q.resize(k_entries, 0.0);
        self.width.clear();
        self.width
            .extend(self.edges.windows(2).map(|e| e[1] - e[0]));
        build_q(&self.edges, &self.width, &self.rm, nbin, &mut self.q);
    }
}

/// Q of §5 step 4, cell by cell over the common refinement of the entry edges and the `nbin`
/// equal cells (edges `lo + (hi − lo)·k/nbin` for `k < nbin`, then `hi`). Inside a cell, the
/// entries that end in it are whole segments except possibly the first (cut by the cell start),
/// and the entry that crosses the cell end contributes its part up to it. A first pass sums the
/// cell's in-range mass `C_k` (fractional overlaps) and its occupied length `D_k`; a second gives
/// each occupied entry `C_k·L/D_k` per segment of length `L`.
fn build_q(edges: &[f64], width: &[f64], rm: &[f64], nbin: usize, q: &mut [f64]) {
    let k_entries = rm.len();
    let (lo, hi) = (edges[0], edges[k_entries]);
    let (span, nb) = (hi - lo, nbin as f64);
    let occupied = |j: usize| if rm[j] > 0.0 { 1.0 } else { 0.0 };
    let (mut i, mut a) = (0, lo);
    for k in 0..nbin {
        if i >= k_entries {
            break;
        }
        let b = if k + 1 >= nbin {
            hi
        } else {
            lo + span * (k + 1) as f64 / nb
        };
        // entries i..t end inside the cell; entry t (if any) crosses its end
        let mut t = i;
        while t < k_entries && edges[t + 1] <= b {
            t += 1;
        }
        let mut full = i;
        let mut left = 0.0; // length of entry i inside the cell when it started before `a`
        if i < t && edges[i] < a {
            left = (edges[i + 1] - a).max(0.0);
            full = i + 1;
        }
        let right = if t < k_entries {
            (b - edges[t].max(a)).max(0.0)
        } else {
            0.0
        };
        let mut mass = 0.0;
        let mut len = 0.0;
        if left > 0.0 {
            mass += rm[i] * left / width[i];
            len += occupied(i) * left;
        }
        for j in full..t {
            mass += rm[j];
            len += occupied(j) * width[j];
        }
        if right > 0.0 {
            mass += rm[t] * right / width[t];
            len += occupied(t) * right;
        }
        if len > 0.0 {
            let per_len = mass / len;
            if left > 0.0 {
                q[i] += occupied(i) * per_len * left;
            }
            for j in full..t {
                q[j] += occupied(j) * per_len * width[j];
            }
            if right > 0.0 {
                q[t] += occupied(t) * per_len * right;
            }
        }
        (i, a) = (t, b);
    }
}

/// `(ΣP, ΣQ, 1 + K·EPS)` of §5 step 5, or `None` (divergence +∞) when either sum is not positive.
fn sums(p: &[f64], q: &[f64]) -> Option<(f64, f64, f64)> {
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    if !(sp > 0.0 && sq > 0.0) || p.len() != q.len() {
        return None;
    }
    Some((sp, sq, 1.0 + p.len() as f64 * EPS))
}

/// The smoothed pairs `(p_i, q_i)` with `p_i = (P_i/ΣP + EPS)/(1 + K·EPS)` (computed as one
/// multiply-add per value). Entries with `P_i = Q_i = 0` are skipped: there `p_i = q_i`, so their
/// term is exactly 0 in every divergence.
fn smoothed<'a>(
    p: &'a [f64],
    q: &'a [f64],
    (sp, sq, norm): (f64, f64, f64),
) -> impl Iterator<Item = (f64, f64)> + 'a {
    let (ap, aq, b) = (1.0 / (sp * norm), 1.0 / (sq * norm), EPS / norm);
    p.iter()
        .zip(q)
        .filter(|(x, y)| **x != 0.0 || **y != 0.0)
        .map(move |(&x, &y)| (x * ap + b, y * aq + b))
}

/// One divergence of the smoothed `p_i = (P_i/ΣP + EPS)/(1 + K·EPS)` and `q_i` likewise, in nats,
/// summed in increasing `i`; +∞ when ΣP or ΣQ is 0.
pub fn divergence(p: &[f64], q: &[f64], kind: DivergenceType) -> f64 {
    let Some(norm) = sums(p, q) else {
        return f64::INFINITY;
    };
    let pairs = smoothed(p, q, norm);
    match kind {
        DivergenceType::Kl => pairs.map(|(a, b)| a * (a / b).ln()).sum(),
        DivergenceType::SymKl => {
            let (mut pq, mut qp) = (0.0, 0.0);
            for (a, b) in pairs {
                let l = (a / b).ln();
                pq += a * l;
                qp -= b * l;
            }
            pq + qp
        }
        DivergenceType::Jsd => {
            let (mut pm, mut qm) = (0.0, 0.0);
            for (a, b) in pairs {
                let m = 0.5 * (a + b);
                pm += a * (a / m).ln();
                qm += b * (b / m).ln();
            }
            0.5 * pm + 0.5 * qm
        }
    }
}

/// All three divergences at once, indexed like [`DivergenceType::ALL`] (KL, SYMKL, JSD), bit
/// for bit equal to three calls of [`divergence`].
pub fn divergences(p: &[f64], q: &[f64]) -> [f64; 3] {
    let Some(norm) = sums(p, q) else {
        return [f64::INFINITY; 3];
    };
    let (mut pq, mut qp, mut pm, mut qm) = (0.0, 0.0, 0.0, 0.0);
    // The same expressions as `divergence`, term by term, so both agree to the last bit
    // (the tuner mixes them; a one-ulp difference could flip a tie in the selection).
    for (a, b) in smoothed(p, q, norm) {
        let l = (a / b).ln();
        let m = 0.5 * (a + b);
        pq += a * l;
        qp -= b * l;
        pm += a * (a / m).ln();
        qm += b * (b / m).ln();
    }
    [pq, pq + qp, 0.5 * pm + 0.5 * qm]
}

/// P and Q for `[lo, hi]` (already snapped, `lo < hi`) with grid step `g` and `nbin` cells;
/// `total` is Z. Convenience for tests and one-off inspection; fails like [`PGrid::new`].
pub fn pq_for_range(
    cdf: impl Fn(f64) -> f64,
    total: f64,
    lo: f64,
    hi: f64,
    g: f64,
    nbin: usize,
) -> Result<(Vec<f64>, Vec<f64>), CalibError> {
    let grid = PGrid::new(g, lo, hi, MAX_GRID_POINTS, &cdf)?;
    let mut ws = PqWorkspace::default();
    ws.fill_entries(lo, hi, &grid, &cdf);
    ws.build_pq(total, nbin);
    Ok((ws.p, ws.q))
}

#[cfg(test)]
mod tests {
    use super::super::side::{Side, signed_cdf};
    use super::*;

    fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() <= tol * want.abs(),
            "{what}: got {got:e}, want {want:e}"
        );
    }

    fn check_divs(p: &[f64], q: &[f64], want: [f64; 3]) {
        let all = divergences(p, q);
        for (i, kind) in DivergenceType::ALL.into_iter().enumerate() {
            assert_rel(divergence(p, q, kind), want[i], 1e-6, kind.as_str());
            assert_rel(all[i], want[i], 1e-6, kind.as_str());
        }
    }

    fn assert_vec(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    /// §9-D row 1: counts [4,2,1,0,1], top 4.5, T = 3, g = 0.75, bin = 2.
    #[test]
    fn spec_d_symmetric_clipped() {
        let s = Side::new([4, 2, 1, 0, 1], 1.0, 4.5);
        let (p, q) = pq_for_range(|t| s.cdf(t), s.total(), 0.0, 3.0, 0.75, 2).unwrap();
        assert_vec(&p, &[3.0, 2.0, 1.25, 1.75]);
        assert_vec(&q, &[2.5, 2.5, 1.0, 1.0]);
        check_divs(
            &p,
            &q,
            [
                0.03633543681712402,
                0.07262335041880677,
                0.00902239532832421,
            ],
        );
    }

    /// §9-D row 2: empty entries get no Q mass (the non-zero rule).
    #[test]
    fn spec_d_empty_entries() {
        let s = Side::new([4, 0, 0, 2, 1], 1.0, 4.5);
        let (p, q) = pq_for_range(|t| s.cdf(t), s.total(), 0.0, 4.0, 1.0, 2).unwrap();
        assert_vec(&p, &[4.0, 0.0, 0.0, 3.0]);
        assert_vec(&q, &[4.0, 0.0, 0.0, 2.0]);
        check_divs(
            &p,
            &q,
            [
                0.01962008077810902,
                0.038615724557553494,
                0.00481730215426188,
            ],
        );
    }

    /// §9-D row 3: signed CDF, [lo, hi] = [−1.6, 1.2], g = 0.875.
    #[test]
    fn spec_d_signed() {
        let pos = Side::new([2, 1], 1.0, 1.5);
        let neg = Side::new([1, 1], 1.0, 2.0);
        let (p, q) = pq_for_range(|t| signed_cdf(&pos, &neg, t), 5.0, -1.6, 1.2, 0.875, 2).unwrap();
        assert_vec(&p, &[1.125, 0.875, 1.75, 1.25]);
        assert_vec(
            &q,
            &[
                0.7250000000000001,
                1.0464285714285717,
                1.625,
                0.6035714285714285,
            ],
        );
        check_divs(
            &p,
            &q,
            [0.052350327501590466, 0.1027023959156, 0.012739851101069264],
        );
    }

    #[test]
    fn degenerate_sums_are_infinite() {
        assert_eq!(
            divergence(&[0.0, 0.0], &[1.0, 1.0], DivergenceType::Kl),
            f64::INFINITY
        );
        assert_eq!(divergences(&[1.0, 0.0], &[0.0, 0.0]), [f64::INFINITY; 3]);
        assert_eq!(divergence(&[], &[], DivergenceType::Jsd), f64::INFINITY);
        // identical distributions: 0 up to rounding
        let d = divergences(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]);
        assert!(d.iter().all(|x| x.abs() < 1e-15), "{d:?}");
    }

    #[test]
    fn mass_is_conserved() {
        // Q holds exactly the in-range mass, P all of it
        let s = Side::new([5, 3, 0, 0, 2, 7, 1, 1], 1.0, 7.25);
        for (t, g, nbin) in [(5.5, 0.3, 3), (7.25, 0.7, 4), (2.0, 0.5, 7), (0.9, 0.25, 2)] {
            let (p, q) = pq_for_range(|x| s.cdf(x), s.total(), 0.0, t, g, nbin).unwrap();
            let sp: f64 = p.iter().sum();
            let sq: f64 = q.iter().sum();
            assert!((sp - s.total()).abs() < 1e-12, "P sum {sp}");
            assert!((sq - s.cdf(t)).abs() < 1e-12, "Q sum {sq} vs {}", s.cdf(t));
            assert!(q.iter().zip(&p).all(|(q, p)| *q >= 0.0 && *p >= 0.0));
        }
    }
}
