//! Global pooling: one reduction per contiguous (N, C) plane.

use ndarray::ArrayD;
use rayon::prelude::*;

use super::window::MaxElem;
use crate::engine::ops::OpResult;
use crate::engine::ops::shape::{parallel, row_major, to_array};

/// Sum of a slice with eight independent accumulators, so it vectorizes.
fn sum_f32(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Applies `f` to every plane of `src` (planes of `plane` elements), in parallel when large.
fn per_plane<T: Copy + Send + Sync, U: Copy + Send + Sync + Default>(
    src: &[T],
    plane: usize,
    f: impl Fn(&[T]) -> U + Sync,
) -> Vec<U> {
    let planes = src.len().checked_div(plane).unwrap_or(0);
    if plane == 0 {
        return Vec::new();
    }
    if parallel(src.len()) && planes > 1 {
        src.par_chunks(plane).map(&f).collect()
    } else {
        src.chunks(plane).map(f).collect()
    }
}

fn planes_of(shape: &[usize]) -> (usize, usize) {
    let planes = shape[0] * shape[1];
    (planes, shape[2..].iter().product())
}

/// GlobalAveragePool of a float32 tensor.
pub(super) fn mean_f32(a: &ArrayD<f32>, out_shape: &[usize]) -> OpResult<ArrayD<f32>> {
    let (planes, plane) = planes_of(a.shape());
    let src = row_major(a);
    let out = if plane == 0 {
        vec![f32::NAN; planes]
    } else {
        per_plane(&src, plane, |p| sum_f32(p) / plane as f32)
    };
    to_array(out_shape, out)
}

/// GlobalAveragePool of a float64 tensor.
pub(super) fn mean_f64(a: &ArrayD<f64>, out_shape: &[usize]) -> OpResult<ArrayD<f64>> {
    let (planes, plane) = planes_of(a.shape());
    let src = row_major(a);
    let out = if plane == 0 {
        vec![f64::NAN; planes]
    } else {
        per_plane(&src, plane, |p| p.iter().sum::<f64>() / plane as f64)
    };
    to_array(out_shape, out)
}

/// GlobalMaxPool.
pub(super) fn max<T: MaxElem + Default>(a: &ArrayD<T>, out_shape: &[usize]) -> OpResult<ArrayD<T>> {
    let (planes, plane) = planes_of(a.shape());
    let src = row_major(a);
    let out = if plane == 0 {
        vec![T::LOWEST; planes]
    } else {
        per_plane(&src, plane, |p| {
            p.iter().fold(T::LOWEST, |m, &v| if v > m { v } else { m })
        })
    };
    to_array(out_shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_matches_plain_sum() {
        let v: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        assert_eq!(sum_f32(&v), v.iter().sum::<f32>());
    }
}
