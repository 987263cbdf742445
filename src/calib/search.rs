//! The activation range search: base value (§3), candidates (§4), per-candidate divergence (§5)
//! and selection with ties and degenerate cases (§6) of CALIBRATION.md.
//!
//! [`prepare`] decides the degenerate cases and fixes everything that does not depend on the
//! divergence type (base value, candidate ranges, P grid, and the CDF cached on that grid). A
//! prepared [`Search`] then evaluates one divergence curve ([`Search::curve`]) or all three for the
//! price of one P/Q construction per candidate ([`Search::curves`]). Candidates are evaluated in
//! parallel (rayon); every candidate is a pure function of its range, so results do not depend on
//! the thread count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::divergence::{PGrid, PqWorkspace, divergence, divergences};
use super::error::CalibError;
use super::params::{DivergenceType, QuantizeAlgo, SearchParams};
use super::side::TensorModel;

/// P-grid intervals per quantization cell, measured at ratio 1.0.
pub const PB: usize = 16;
/// Relative tolerance of the tie set.
pub const TIE_REL: f64 = 1e-9;
/// Absolute tolerance of the tie set.
pub const TIE_ABS: f64 = 1e-15;
/// Tolerance when counting ratio candidates (makes `end_ratio` inclusive up to rounding).
pub const QTOL: f64 = 1e-9;
/// Largest number of grid points a search may cache (bounds memory and time of absurd settings).
pub const MAX_GRID_POINTS: usize = 1 << 22;

/// `floor((end − start)/step + QTOL) + 1`, as `f64` so that absurd settings cannot overflow.
pub(crate) fn candidate_count(start: f64, end: f64, step: f64) -> f64 {
    ((end - start) / step + QTOL).floor() + 1.0
}

/// The ratio candidates `r_i = start + i·step` for `i < count` (§4); the last one is not clamped
/// to `end`. Errors like [`SearchParams::validate`] on bad values.
pub fn candidate_ratios(start: f64, end: f64, step: f64) -> Result<Vec<f64>, CalibError> {
    SearchParams {
        start_ratio: start,
        end_ratio: end,
        step_ratio: step,
        ..SearchParams::default()
    }
    .validate()?;
    let count = candidate_count(start, end, step) as usize;
    Ok((0..count).map(|i| start + i as f64 * step).collect())
}

/// Index of the selected candidate (§6): among the divergences within
/// `d_min + d_min·TIE_REL + TIE_ABS` of the finite minimum, the ratio closest to 1, then the larger
/// ratio; the last candidate when no divergence is finite.
pub fn select(ratios: &[f64], divs: &[f64]) -> usize {
    let n = ratios.len().min(divs.len());
    let dmin = divs[..n]
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .fold(f64::INFINITY, f64::min);
    if !dmin.is_finite() {
        return n.saturating_sub(1);
    }
    let limit = dmin + (dmin * TIE_REL + TIE_ABS);
    let mut best: Option<(usize, f64, f64)> = None;
    for (i, (&r, &d)) in ratios.iter().zip(divs).enumerate() {
        let tied = d <= limit; // false for NaN
        if !tied {
            continue;
        }
        let dist = (r - 1.0).abs();
        let better = match best {
            None => true,
            Some((_, bd, br)) => dist < bd || (dist == bd && r > br),
        };
        if better {
            best = Some((i, dist, r));
        }
    }
    best.map_or(0, |(i, _, _)| i)
}

/// The base value of a search (§3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Base {
    /// NON_OFFSET: a percentile of |x| (or MAG.top).
    Symmetric(f64),
    /// HALF_OFFSET: `(bmin, bmax)`, with `bmin ≤ 0 ≤ bmax`.
    Asymmetric {
        /// `−Base(NEG)`.
        min: f64,
        /// `Base(POS)`.
        max: f64,
    },
}

/// The outcome of the degenerate-case checks of §6 (the `n = 0` error aside).
#[derive(Debug, Clone)]
pub enum Prepared<'m> {
    /// Every finite value was zero: `[lo, hi] = [0, 0]` (scale 1.0, offset 0).
    AllZero,
    /// At most one occupied fine bin (e.g. a constant tensor): no search; `[lo, hi]` is
    /// `[−MAG.top, MAG.top]` (NON_OFFSET) or `[min(0, vmin), max(0, vmax)]` (HALF_OFFSET).
    SingleBin {
        /// Lower end of the range.
        lo: f64,
        /// Upper end of the range.
        hi: f64,
    },
    /// A real search.
    Search(Search<'m>),
}

/// Checks the degenerate cases in the order of §6 and prepares the search otherwise. `params`
/// must be valid; errors: `n = 0` ([`CalibError::NoFiniteValues`]), invalid parameters, or a P
/// grid beyond [`MAX_GRID_POINTS`].
pub fn prepare<'m>(
    model: &'m TensorModel,
    params: &SearchParams,
) -> Result<Prepared<'m>, CalibError> {
    params.validate()?;
    if model.n == 0 {
        return Err(CalibError::NoFiniteValues {
            nan: model.nan,
            inf: model.inf,
        });
    }
    if model.nonzero == 0 {
        return Ok(Prepared::AllZero);
    }
    let (lo_x, hi_x) = (model.vmin.min(0.0), model.vmax.max(0.0));
    let occupied = match params.algo {
        QuantizeAlgo::NonOffset => model.mag.occupied_bins(),
        QuantizeAlgo::HalfOffset => model.pos.occupied_bins() + model.neg.occupied_bins(),
    };
    if occupied <= 1 {
        return Ok(match params.algo {
            QuantizeAlgo::NonOffset => {
                let t = model.mag.top();
                Prepared::SingleBin { lo: -t, hi: t }
            }
            QuantizeAlgo::HalfOffset => Prepared::SingleBin { lo: lo_x, hi: hi_x },
        });
    }
    Search::new(model, params).map(Prepared::Search)
}

/// A prepared search over one tensor: candidates, their ranges and the cached CDF on the P grid.
#[derive(Debug, Clone)]
pub struct Search<'m> {
    model: &'m TensorModel,
    algo: QuantizeAlgo,
    nbin: usize,
    base: Base,
    ratios: Vec<f64>,
    /// Unsnapped candidate ranges (NON_OFFSET: `[−T_i, T_i]`).
    ranges: Vec<(f64, f64)>,
    /// The ranges P and Q are built on (NON_OFFSET: `[0, T_i]`; HALF_OFFSET: snapped).
    pq_ranges: Vec<(f64, f64)>,
    /// The P grid with the CDF cached on it.
    grid: PGrid,
}

/// The CDF of the non-zero values P and Q are built from: MAG.F (NON_OFFSET) or the signed G.
fn cdf(model: &TensorModel, algo: QuantizeAlgo, t: f64) -> f64 {
    match algo {
        QuantizeAlgo::NonOffset => model.mag.cdf(t),
        QuantizeAlgo::HalfOffset => model.signed_cdf(t),
    }
}

/// Positions `bin` cells of width `(hi − lo)/bin` so that 0 falls on a cell edge (§5 step 1).
fn snap(lo: f64, hi: f64, nbin: usize) -> (f64, f64) {
    let c = (hi - lo) / nbin as f64;
    let k = (lo / c).round_ties_even();
    (k * c, (k + nbin as f64) * c)
}

impl<'m> Search<'m> {
    fn new(model: &'m TensorModel, params: &SearchParams) -> Result<Self, CalibError> {
        let nbin = params.effective_bin() as usize;
        let ratios = candidate_ratios(params.start_ratio, params.end_ratio, params.step_ratio)?;
        let (n, p) = (model.n as f64, params.max_percentile);
        let (base, g, ranges, pq_ranges): (_, _, Vec<_>, Vec<_>) = match params.algo {
            QuantizeAlgo::NonOffset => {
                let top = model.mag.top();
                let mut base = model.mag.base_value(n, p);
                if base <= 0.0 {
                    base = top;
                }
                let ts: Vec<f64> = ratios.iter().map(|r| (r * base).min(top)).collect();
                (
                    Base::Symmetric(base),
                    base / (PB * nbin) as f64,
                    ts.iter().map(|&t| (-t, t)).collect(),
                    ts.iter().map(|&t| (0.0, t)).collect(),
                )
            }
            QuantizeAlgo::HalfOffset => {
                let (lo_x, hi_x) = (model.vmin.min(0.0), model.vmax.max(0.0));
                let mut bmax = model.pos.base_value(n, p);
                let mut bmin = -model.neg.base_value(n, p);
                if bmax == 0.0 && bmin == 0.0 {
                    (bmin, bmax) = (lo_x, hi_x);
                }
                let ranges: Vec<(f64, f64)> = ratios
                    .iter()
                    .map(|r| ((r * bmin).max(lo_x), (r * bmax).min(hi_x)))
                    .collect();
                let snapped = ranges.iter().map(|&(a, b)| snap(a, b, nbin)).collect();
                (
                    Base::Asymmetric {
                        min: bmin,
                        max: bmax,
                    },
                    (bmax - bmin) / (PB * nbin) as f64,
                    ranges,
                    snapped,
                )
            }
        };
        let lo = pq_ranges.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let hi = pq_ranges
            .iter()
            .map(|r| r.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let grid = PGrid::new(g, lo, hi, MAX_GRID_POINTS, |t| cdf(model, params.algo, t))?;
        Ok(Search {
            model,
            algo: params.algo,
            nbin,
            base,
            ratios,
            ranges,
            pq_ranges,
            grid,
        })
    }

    /// Builds P and Q of candidate `i` into `ws`.
    fn build(&self, i: usize, ws: &mut PqWorkspace) {
        let (lo, hi) = self.pq_ranges[i];
        ws.fill_entries(lo, hi, &self.grid, |t| cdf(self.model, self.algo, t));
        ws.build_pq(self.model.nonzero as f64, self.nbin);
    }

    fn map_candidates<T: Send>(&self, f: impl Fn(&PqWorkspace) -> T + Sync) -> Vec<T> {
        (0..self.ratios.len())
            .into_par_iter()
            .with_min_len(4)
            .map_init(PqWorkspace::default, |ws, i| {
                self.build(i, ws);
                f(ws)
            })
            .collect()
    }

    /// The divergence of every candidate for one divergence type.
    pub fn curve(&self, kind: DivergenceType) -> Vec<f64> {
        self.map_candidates(|ws| divergence(&ws.p, &ws.q, kind))
    }

    /// The curves of all three types (indexed like [`DivergenceType::ALL`]), with one P/Q
    /// construction per candidate.
    pub fn curves(&self) -> [Vec<f64>; 3] {
        let all = self.map_candidates(|ws| divergences(&ws.p, &ws.q));
        [0, 1, 2].map(|k| all.iter().map(|d| d[k]).collect())
    }

    /// P and Q of candidate `i` (for inspection; `None` when `i` is out of range).
    pub fn pq(&self, i: usize) -> Option<(Vec<f64>, Vec<f64>)> {
        (i < self.ratios.len()).then(|| {
            let mut ws = PqWorkspace::default();
            self.build(i, &mut ws);
            (ws.p, ws.q)
        })
    }

    /// Selects on `divs` (one curve of this search) and packs the result.
    pub fn finish(&self, divs: Vec<f64>) -> SearchResult {
        let chosen = select(&self.ratios, &divs);
        SearchResult {
            base: self.base,
            ratios: self.ratios.clone(),
            ranges: self.ranges.clone(),
            divergences: divs,
            chosen,
        }
    }

    /// Runs the search for one divergence type.
    pub fn run(&self, kind: DivergenceType) -> SearchResult {
        self.finish(self.curve(kind))
    }

    /// The base value.
    pub fn base(&self) -> Base {
        self.base
    }
    /// The ratio candidates.
    pub fn ratios(&self) -> &[f64] {
        &self.ratios
    }
    /// The unsnapped candidate ranges (NON_OFFSET: `[−T_i, T_i]`).
    pub fn ranges(&self) -> &[(f64, f64)] {
        &self.ranges
    }
    /// The P-grid step `g`.
    pub fn grid_step(&self) -> f64 {
        self.grid.step()
    }
}

/// A finished search: every candidate with its divergence, and the chosen one.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// The base value.
    pub base: Base,
    /// `r_i`.
    pub ratios: Vec<f64>,
    /// Unsnapped candidate ranges (NON_OFFSET: `[−T_i, T_i]`).
    pub ranges: Vec<(f64, f64)>,
    /// `d_i` (+∞ when P or Q is empty).
    pub divergences: Vec<f64>,
    /// The selected index.
    pub chosen: usize,
}

impl SearchResult {
    /// The chosen range, unsnapped.
    pub fn range(&self) -> (f64, f64) {
        self.ranges[self.chosen]
    }
    /// The chosen ratio.
    pub fn ratio(&self) -> f64 {
        self.ratios[self.chosen]
    }
    /// The chosen candidate's divergence.
    pub fn divergence(&self) -> f64 {
        self.divergences[self.chosen]
    }
    /// Whether the choice is the first or last of several candidates (the search hit a boundary).
    pub fn boundary_hit(&self) -> bool {
        let n = self.ratios.len();
        n > 1 && (self.chosen == 0 || self.chosen == n - 1)
    }
}

#[cfg(test)]
mod tests;
