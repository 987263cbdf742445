//! A compact, fixed-size histogram of one tensor for the UI and saved sessions, derived from a
//! collector's fine histogram.

use serde::{Deserialize, Serialize};

use super::histogram::Collector;

/// Default number of display bins.
pub const DISPLAY_BINS: usize = 256;

/// `counts.len()` equal bins over `[lo, hi] = [min(vmin, 0), max(vmax, 0)]`, holding the finite
/// non-zero values; zeros, NaN and ±Inf are counted apart (zeros often dwarf everything else).
///
/// Each fine bin is assigned whole to the display bin that contains its midpoint (the highest
/// occupied fine bin of a side ends at the exact extreme), so counts stay exact integers and the
/// placement error is at most half a fine bin (`R/16384` at the default side-bin count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayHistogram {
    /// Left edge, `min(vmin, 0)` (0 when nothing finite was seen).
    pub lo: f64,
    /// Right edge, `max(vmax, 0)`.
    pub hi: f64,
    /// Counts of the non-zero finite values per display bin.
    pub counts: Vec<u64>,
    /// Exact zeros.
    pub zero: u64,
    /// NaN values.
    pub nan: u64,
    /// ±Inf values.
    pub inf: u64,
}

impl DisplayHistogram {
    /// Summarizes `c` into `bins` display bins (at least 1).
    pub fn from_collector(c: &Collector, bins: usize) -> DisplayHistogram {
        let bins = bins.max(1);
        let lo = c.min().map_or(0.0, |v| v.min(0.0));
        let hi = c.max().map_or(0.0, |v| v.max(0.0));
        let mut h = DisplayHistogram {
            lo,
            hi,
            counts: vec![0; bins],
            zero: c.zero_count(),
            nan: c.nan_count(),
            inf: c.inf_count(),
        };
        let Some(w) = c.bin_width() else { return h };
        for (side, sign, top) in [(c.pos(), 1.0, hi), (c.neg(), -1.0, -lo)] {
            let btop = side.iter().rposition(|&x| x > 0);
            for (b, &count) in side.iter().enumerate().filter(|(_, x)| **x > 0) {
                let left = b as f64 * w;
                let right = if Some(b) == btop {
                    top
                } else {
                    (b + 1) as f64 * w
                };
                let idx = h.bin_of(sign * 0.5 * (left + right));
                h.counts[idx] += count;
            }
        }
        h
    }

    /// Width of one display bin (0 when the range is empty).
    pub fn bin_width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len().max(1) as f64
    }

    /// The display bin holding `x` (clamped to the ends; 0 for an empty range or NaN).
    pub fn bin_of(&self, x: f64) -> usize {
        let n = self.counts.len();
        let span = self.hi - self.lo;
        if span.is_nan() || span <= 0.0 || n == 0 {
            return 0;
        }
        let t = ((x - self.lo) / span * n as f64).floor();
        if t.is_nan() {
            0
        } else {
            (t.max(0.0) as usize).min(n - 1)
        }
    }

    /// Finite values represented (zeros included).
    pub fn finite_count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.zero
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_exactly() {
        let mut c = Collector::new();
        let data: Vec<f32> = (0..10_000)
            .map(|i| ((i as f32) * 0.37).sin() * 3.0 - 0.5)
            .chain([0.0, 0.0, f32::NAN, f32::INFINITY])
            .collect();
        c.update(&data);
        let h = DisplayHistogram::from_collector(&c, DISPLAY_BINS);
        assert_eq!(h.counts.len(), DISPLAY_BINS);
        assert_eq!(h.finite_count(), c.count());
        assert_eq!((h.zero, h.nan, h.inf), (2, 1, 1));
        assert_eq!(h.lo, c.min().unwrap());
        assert_eq!(h.hi, c.max().unwrap());
        // compare with a direct histogram: every value lands within one display bin of its place
        let mut direct = vec![0u64; DISPLAY_BINS];
        for &x in data.iter().filter(|x| x.is_finite() && **x != 0.0) {
            direct[h.bin_of(f64::from(x))] += 1;
        }
        let moved: u64 = h
            .counts
            .iter()
            .zip(&direct)
            .map(|(a, b)| a.abs_diff(*b))
            .sum();
        assert!(moved * 20 < c.nonzero_count(), "moved {moved}");
        // the extremes land in the end bins
        assert!(h.counts[0] > 0 && h.counts[DISPLAY_BINS - 1] > 0);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<DisplayHistogram>(&json).unwrap(), h);
    }

    #[test]
    fn degenerate_inputs() {
        let empty = DisplayHistogram::from_collector(&Collector::new(), 0);
        assert_eq!(empty.counts, vec![0]);
        assert_eq!((empty.lo, empty.hi, empty.bin_width()), (0.0, 0.0, 0.0));
        let mut c = Collector::new();
        c.update(&[2.5; 7]);
        let h = DisplayHistogram::from_collector(&c, 16);
        assert_eq!((h.lo, h.hi), (0.0, 2.5));
        assert_eq!(h.counts[15], 7);
        assert_eq!(h.bin_of(f64::NAN), 0);
        assert_eq!(h.bin_of(-10.0), 0);
        assert_eq!(h.bin_of(10.0), 15);
    }
}
