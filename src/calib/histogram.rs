//! The streaming, constant-memory histogram of one activation tensor (CALIBRATION.md §2).
//!
//! Two sides of `side_bins` bins each hold the magnitudes of the positive and of the negative
//! values; bin `b` holds `(b·w, (b+1)·w]` with `w = R / side_bins` and `R` a power of two. When a
//! larger magnitude arrives, the range doubles by merging bin pairs, so the counts are always
//! bit-identical to a single pass over all the data with `R = pow2ceil(max|x|)`, whatever the batch
//! order or the way the data was split between collectors that were later merged.

use serde::{Deserialize, Serialize};

use super::error::CalibError;

/// Default number of bins per side (normative).
pub const SIDE_BINS: usize = 8192;

/// Streaming statistics of one tensor: counts of finite, zero, NaN and ±Inf values, the exact
/// finite min and max, and the two magnitude histograms.
///
/// Memory is fixed: `2 · side_bins` `u64` counters (128 KiB at the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CollectorRepr", into = "CollectorRepr")]
pub struct Collector {
    side_bins: usize,
    /// `pos` bins followed by `neg` bins.
    bins: Vec<u64>,
    /// `R`: `None` until a finite non-zero value arrives; then a power of two ≥ max |x|.
    range: Option<f64>,
    n: u64,
    zero: u64,
    nan: u64,
    inf: u64,
    /// Exact finite min and max (f32 values widened); ±∞ while `n == 0`.
    vmin: f64,
    vmax: f64,
}

/// Raw histogram contents, for building a collector from known counts (tests, fixtures) with
/// [`Collector::from_raw`]. `n` is derived: `Σpos + Σneg + zero`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawHistogram {
    /// Counts of |x| for x > 0; the length is the side-bin count (a power of two ≥ 2).
    pub pos: Vec<u64>,
    /// Counts of |x| for x < 0; same length as `pos`.
    pub neg: Vec<u64>,
    /// `R` (a power of two); required when any count is non-zero, `None` otherwise.
    pub range: Option<f64>,
    /// Exact zeros (±0.0).
    pub zero: u64,
    /// NaN values seen.
    pub nan: u64,
    /// ±Inf values seen.
    pub inf: u64,
    /// Smallest finite value (ignored when no finite value exists).
    pub min: f64,
    /// Largest finite value (ignored when no finite value exists).
    pub max: f64,
}

/// First-pass statistics of one batch.
struct BatchStats {
    /// Finite min and max (±∞ when the batch has no finite value).
    lo: f32,
    hi: f32,
    zero: u64,
    nonfinite: u64,
}

impl BatchStats {
    /// Lanes of the vectorizable first pass.
    const LANES: usize = 16;
    /// Elements per block, so that the `u32` lane counters cannot overflow.
    const BLOCK: usize = 1 << 24;

    fn of(batch: &[f32]) -> BatchStats {
        const L: usize = BatchStats::LANES;
        let mut lo = [f32::INFINITY; L];
        let mut hi = [f32::NEG_INFINITY; L];
        let (mut zero, mut nonfinite) = (0u64, 0u64);
        let lane = |x: f32, lo: &mut f32, hi: &mut f32, z: &mut u32, nf: &mut u32| {
            let finite = x.abs() < f32::INFINITY;
            *nf += u32::from(!finite);
            *z += u32::from(x == 0.0);
            *lo = if (x < *lo) & finite { x } else { *lo };
            *hi = if (x > *hi) & finite { x } else { *hi };
        };
        for block in batch.chunks(Self::BLOCK) {
            let (mut z, mut nf) = ([0u32; L], [0u32; L]);
            let mut chunks = block.chunks_exact(L);
            for c in &mut chunks {
                for k in 0..L {
                    lane(c[k], &mut lo[k], &mut hi[k], &mut z[k], &mut nf[k]);
                }
            }
            for (k, &x) in chunks.remainder().iter().enumerate() {
                lane(x, &mut lo[k], &mut hi[k], &mut z[k], &mut nf[k]);
            }
            zero += z.iter().map(|&v| u64::from(v)).sum::<u64>();
            nonfinite += nf.iter().map(|&v| u64::from(v)).sum::<u64>();
        }
        BatchStats {
            lo: lo.into_iter().fold(f32::INFINITY, f32::min),
            hi: hi.into_iter().fold(f32::NEG_INFINITY, f32::max),
            zero,
            nonfinite,
        }
    }
}

/// Smallest power of two ≥ `a`, exactly (`a` must be finite, positive and normal).
pub(crate) fn pow2_ceil(a: f64) -> f64 {
    let bits = a.to_bits();
    let exp = (bits >> 52) & 0x7ff;
    let mant = bits & ((1u64 << 52) - 1);
    let exp = if mant == 0 { exp } else { exp + 1 };
    f64::from_bits(exp << 52)
}

fn is_pow2(r: f64) -> bool {
    r.is_normal() && r > 0.0 && r.to_bits() & ((1u64 << 52) - 1) == 0
}

impl Default for Collector {
    fn default() -> Self {
        Collector::new()
    }
}

impl Collector {
    /// An empty collector with [`SIDE_BINS`] bins per side.
    pub fn new() -> Self {
        Collector::empty(SIDE_BINS)
    }

    /// An empty collector with `side_bins` bins per side (a power of two ≥ 2).
    pub fn with_side_bins(side_bins: usize) -> Result<Self, CalibError> {
        if side_bins < 2 || !side_bins.is_power_of_two() {
            return Err(CalibError::InvalidSideBins(side_bins));
        }
        Ok(Collector::empty(side_bins))
    }

    fn empty(side_bins: usize) -> Self {
        Collector {
            side_bins,
            bins: vec![0; 2 * side_bins],
            range: None,
            n: 0,
            zero: 0,
            nan: 0,
            inf: 0,
            vmin: f64::INFINITY,
            vmax: f64::NEG_INFINITY,
        }
    }

    /// A collector holding the given counts, after checking that they are consistent: equal
    /// power-of-two side lengths, `range` a power of two present iff a count is non-zero, each
    /// side's extreme (`max`, `−min`) inside its highest occupied bin, `min ≤ 0 ≤ max` when there
    /// are zeros, and `max ≤ 0` / `min ≥ 0` for an empty positive / negative side.
    pub fn from_raw(raw: RawHistogram) -> Result<Self, CalibError> {
        let bad = |msg: String| Err(CalibError::InconsistentHistogram(msg));
        let nb = raw.pos.len();
        if nb < 2 || !nb.is_power_of_two() {
            return Err(CalibError::InvalidSideBins(nb));
        }
        if raw.neg.len() != nb {
            return bad(format!("pos has {nb} bins but neg has {}", raw.neg.len()));
        }
        let sum = |h: &[u64]| h.iter().try_fold(0u64, |s, &c| s.checked_add(c));
        let total = sum(&raw.pos)
            .zip(sum(&raw.neg))
            .and_then(|(p, q)| p.checked_add(q))
            .and_then(|z| z.checked_add(raw.zero));
        let Some(n) = total else {
            return bad("total count overflows u64".into());
        };
        let nonzero = n - raw.zero;
        match raw.range {
            Some(r) if !is_pow2(r) => return bad(format!("range {r} is not a power of two")),
            Some(_) if nonzero == 0 => return bad("range given without non-zero counts".into()),
            None if nonzero > 0 => return bad("non-zero counts need a range".into()),
            _ => {}
        }
        let mut bins = raw.pos.clone();
        bins.extend_from_slice(&raw.neg);
        let mut c = Collector {
            side_bins: nb,
            bins,
            range: raw.range,
            n,
            zero: raw.zero,
            nan: raw.nan,
            inf: raw.inf,
            vmin: f64::INFINITY,
            vmax: f64::NEG_INFINITY,
        };
        if n == 0 {
            return Ok(c);
        }
        let (lo, hi) = (raw.min, raw.max);
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return bad(format!("min {lo} / max {hi} are not finite and ordered"));
        }
        if raw.zero > 0 && !(lo <= 0.0 && hi >= 0.0) {
            return bad(format!("zeros present but [{lo}, {hi}] excludes 0"));
        }
        let w = raw.range.map_or(1.0, |r| r / nb as f64);
        for (name, side, top) in [("pos", &raw.pos, hi), ("neg", &raw.neg, -lo)] {
            match side.iter().rposition(|&x| x > 0) {
                None if top > 0.0 => return bad(format!("{name} side is empty but reaches {top}")),
                None => {}
                Some(b) => {
                    let (l, h) = (b as f64 * w, (b + 1) as f64 * w);
                    if !(top > l && top <= h) {
                        return bad(format!(
                            "{name} extreme {top} is outside its top bin ({l}, {h}]"
                        ));
                    }
                }
            }
        }
        c.vmin = lo;
        c.vmax = hi;
        Ok(c)
    }

    /// Streams one batch in. NaN and ±Inf are only counted. Finite values update `n`, min, max
    /// and the zero count; non-zero values go to the histograms, after the range doubled as many
    /// times as the batch maximum needs. Two passes over `batch`, no division per element.
    pub fn update(&mut self, batch: &[f32]) {
        let BatchStats {
            lo,
            hi,
            zero,
            nonfinite,
        } = BatchStats::of(batch);
        if nonfinite > 0 {
            let nan = batch.iter().filter(|x| x.is_nan()).count() as u64;
            self.nan += nan;
            self.inf += nonfinite - nan;
        }
        let finite = batch.len() as u64 - nonfinite;
        if finite == 0 {
            return;
        }
        self.n += finite;
        self.zero += zero;
        self.vmin = self.vmin.min(f64::from(lo));
        self.vmax = self.vmax.max(f64::from(hi));
        if zero == finite {
            return;
        }
        let amax = lo.abs().max(hi.abs());
        let a = f64::from(amax);
        let r = match self.range {
            None => {
                let r = pow2_ceil(a);
                self.range = Some(r);
                r
            }
            Some(mut r) => {
                while r < a {
                    self.double();
                    r *= 2.0;
                }
                r
            }
        };
        let nb = self.side_bins;
        // w = r / nb is a power of two, so multiplying by its inverse is exact
        let inv_w = nb as f64 / r;
        let last = nb as i64 - 1;
        let bins = &mut self.bins[..2 * nb];
        for &x in batch {
            let m = x.abs();
            if !(m > 0.0 && m <= amax) {
                continue; // zero, NaN or ±Inf
            }
            let t = f64::from(m) * inv_w; // in (0, nb]
            let f = t as i64; // (signed conversions are single instructions)
            // ceil(t) − 1: t − 1 for an integer t ≥ 1, floor(t) otherwise
            let idx = (f - i64::from(f as f64 == t)).clamp(0, last) as usize;
            let side = if x < 0.0 { nb } else { 0 };
            bins[side + idx] += 1;
        }
    }

    /// Doubles the range: `h[i] = h[2i] + h[2i+1]` for `i < side_bins/2`, zero above, on both
    /// sides; `R *= 2`. No-op while the range is unset (all counts are zero then).
    pub fn double(&mut self) {
        let Some(r) = self.range else { return };
        let nb = self.side_bins;
        for h in self.bins.chunks_exact_mut(nb) {
            for i in 0..nb / 2 {
                h[i] = h[2 * i] + h[2 * i + 1];
            }
            h[nb / 2..].fill(0);
        }
        self.range = Some(r * 2.0);
    }

    /// Adds `other` into `self` exactly (the result equals one collector fed with both streams,
    /// whatever the order). Fails only when the side-bin counts differ.
    pub fn merge(&mut self, other: &Collector) -> Result<(), CalibError> {
        if self.side_bins != other.side_bins {
            return Err(CalibError::SideBinsMismatch {
                left: self.side_bins,
                right: other.side_bins,
            });
        }
        self.n += other.n;
        self.zero += other.zero;
        self.nan += other.nan;
        self.inf += other.inf;
        self.vmin = self.vmin.min(other.vmin);
        self.vmax = self.vmax.max(other.vmax);
        let Some(ro) = other.range else {
            return Ok(());
        };
        let Some(mut r) = self.range else {
            self.range = Some(ro);
            self.bins.copy_from_slice(&other.bins);
            return Ok(());
        };
        while r < ro {
            self.double();
            r *= 2.0;
        }
        // other's bin j lands in j >> k after k doublings
        let mut k = 0u32;
        let mut x = ro;
        while x < r {
            x *= 2.0;
            k += 1;
        }
        let nb = self.side_bins;
        for (mine, theirs) in self
            .bins
            .chunks_exact_mut(nb)
            .zip(other.bins.chunks_exact(nb))
        {
            for (j, &c) in theirs.iter().enumerate() {
                if c != 0 {
                    mine[j.checked_shr(k).unwrap_or(0)] += c;
                }
            }
        }
        Ok(())
    }

    /// Bins per side.
    pub fn side_bins(&self) -> usize {
        self.side_bins
    }
    /// `R`, the power-of-two range of the histograms (`None` until a non-zero value was seen).
    pub fn range(&self) -> Option<f64> {
        self.range
    }
    /// Bin width `w = R / side_bins`.
    pub fn bin_width(&self) -> Option<f64> {
        self.range.map(|r| r / self.side_bins as f64)
    }
    /// Counts of |x| for x > 0.
    pub fn pos(&self) -> &[u64] {
        &self.bins[..self.side_bins]
    }
    /// Counts of |x| for x < 0.
    pub fn neg(&self) -> &[u64] {
        &self.bins[self.side_bins..]
    }
    /// Finite values seen, zeros included (`n`).
    pub fn count(&self) -> u64 {
        self.n
    }
    /// Finite non-zero values seen (`Z = Σpos + Σneg`).
    pub fn nonzero_count(&self) -> u64 {
        self.n - self.zero
    }
    /// Exact zeros seen (±0.0).
    pub fn zero_count(&self) -> u64 {
        self.zero
    }
    /// NaN values seen.
    pub fn nan_count(&self) -> u64 {
        self.nan
    }
    /// ±Inf values seen.
    pub fn inf_count(&self) -> u64 {
        self.inf
    }
    /// Smallest finite value, if any.
    pub fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.vmin)
    }
    /// Largest finite value, if any.
    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.vmax)
    }
}

/// Serialized form: occupied bins only, as `(index, count)` pairs; validated on the way back in.
#[derive(Serialize, Deserialize)]
struct CollectorRepr {
    side_bins: usize,
    range: Option<f64>,
    zero: u64,
    nan: u64,
    inf: u64,
    min: Option<f64>,
    max: Option<f64>,
    pos: Vec<(usize, u64)>,
    neg: Vec<(usize, u64)>,
}

impl From<Collector> for CollectorRepr {
    fn from(c: Collector) -> Self {
        let sparse = |h: &[u64]| {
            h.iter()
                .enumerate()
                .filter(|(_, x)| **x > 0)
                .map(|(i, &x)| (i, x))
                .collect()
        };
        CollectorRepr {
            side_bins: c.side_bins,
            range: c.range,
            zero: c.zero,
            nan: c.nan,
            inf: c.inf,
            min: c.min(),
            max: c.max(),
            pos: sparse(c.pos()),
            neg: sparse(c.neg()),
        }
    }
}

impl TryFrom<CollectorRepr> for Collector {
    type Error = CalibError;
    fn try_from(r: CollectorRepr) -> Result<Self, CalibError> {
        let nb = r.side_bins;
        if !(2..=1 << 24).contains(&nb) || !nb.is_power_of_two() {
            return Err(CalibError::InvalidSideBins(nb));
        }
        let dense = |pairs: &[(usize, u64)]| -> Result<Vec<u64>, CalibError> {
            let mut h = vec![0u64; nb];
            for &(i, x) in pairs {
                let slot = h.get_mut(i).ok_or_else(|| {
                    CalibError::InconsistentHistogram(format!("bin {i} out of {nb}"))
                })?;
                *slot = slot.checked_add(x).ok_or_else(|| {
                    CalibError::InconsistentHistogram("count overflows u64".into())
                })?;
            }
            Ok(h)
        };
        Collector::from_raw(RawHistogram {
            pos: dense(&r.pos)?,
            neg: dense(&r.neg)?,
            range: r.range,
            zero: r.zero,
            nan: r.nan,
            inf: r.inf,
            min: r.min.unwrap_or(f64::INFINITY),
            max: r.max.unwrap_or(f64::NEG_INFINITY),
        })
    }
}

#[cfg(test)]
mod tests;
