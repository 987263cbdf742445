//! Windowed pooling over NC… planes. Each output row (all spatial axes but the last
//! fixed) accumulates whole input rows: for every tap of the leading axes and every tap
//! `kw` of the last axis, the outputs whose window holds that tap form a contiguous
//! range, combined with the input row in one loop (a vectorizable slice loop at
//! stride 1). Padded taps are simply skipped.

use ndarray::ArrayD;
use rayon::prelude::*;

use super::Axis;
use crate::engine::ops::OpResult;
use crate::engine::ops::shape::{parallel, row_major, to_array};
use crate::ir::Tensor;

/// An element type MaxPool supports.
pub(super) trait MaxElem: Copy + Send + Sync + PartialOrd {
    const LOWEST: Self;
}

impl MaxElem for f32 {
    const LOWEST: f32 = f32::NEG_INFINITY;
}
impl MaxElem for f64 {
    const LOWEST: f64 = f64::NEG_INFINITY;
}
impl MaxElem for i8 {
    const LOWEST: i8 = i8::MIN;
}
impl MaxElem for u8 {
    const LOWEST: u8 = u8::MIN;
}

/// An element type AveragePool supports.
pub(super) trait AvgElem:
    Copy + Send + Sync + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    const ZERO: Self;
    fn recip(n: usize) -> Self;
}

impl AvgElem for f32 {
    const ZERO: f32 = 0.0;
    fn recip(n: usize) -> f32 {
        1.0 / n as f32
    }
}
impl AvgElem for f64 {
    const ZERO: f64 = 0.0;
    fn recip(n: usize) -> f64 {
        1.0 / n as f64
    }
}

/// For each tap `kw` of the last axis: the outputs `lo..hi` whose window holds an input
/// position for it, and the input position of output `lo`.
fn last_axis_runs(a: &Axis) -> Vec<(usize, usize, usize)> {
    (0..a.kernel)
        .filter_map(|j| {
            let off = j * a.dilation;
            let lo = a.pad_begin.saturating_sub(off).div_ceil(a.stride);
            let hi = (a.input + a.pad_begin)
                .saturating_sub(off)
                .div_ceil(a.stride)
                .min(a.output);
            (lo < hi).then(|| (lo, hi, lo * a.stride + off - a.pad_begin))
        })
        .collect()
}

/// Pools every plane of `src` into `out_shape` with `combine`, starting from `init`;
/// `finish(row_index_coords, row)` post-processes each output row (the average's divide).
fn pool_planes<T, C, F>(
    src: &[T],
    planes: usize,
    axes: &[Axis],
    out_shape: &[usize],
    init: T,
    combine: C,
    finish: F,
) -> OpResult<Vec<T>>
where
    T: Copy + Send + Sync,
    C: Fn(T, T) -> T + Sync,
    F: Fn(&[usize], &mut [T]) + Sync,
{
    let sp = axes.len();
    let in_plane: usize = axes.iter().map(|a| a.input).product();
    let out_plane: usize = axes.iter().map(|a| a.output).product();
    let mut out = vec![init; planes * out_plane];
    if out.is_empty() || in_plane == 0 {
        let _ = out_shape;
        return Ok(out);
    }
    let last = &axes[sp - 1];
    let (w, ow) = (last.input, last.output);
    let runs = last_axis_runs(last);
    let lead = &axes[..sp - 1];
    let in_strides = crate::ir::shape::strides(&axes.iter().map(|a| a.input).collect::<Vec<_>>());
    let taps_lead: usize = lead.iter().map(|a| a.kernel).product();
    let plane = |s: &[T], d: &mut [T]| {
        let mut o = vec![0usize; sp - 1];
        for row in d.chunks_exact_mut(ow) {
            // Every combination of taps over the leading axes.
            for t in 0..taps_lead {
                let mut rest = t;
                let mut off = 0;
                let mut inside = true;
                for k in (0..sp - 1).rev() {
                    let j = rest % lead[k].kernel;
                    rest /= lead[k].kernel;
                    match lead[k].pos(o[k], j) {
                        Some(p) => off += p * in_strides[k],
                        None => {
                            inside = false;
                            break;
                        }
                    }
                }
                if !inside {
                    continue;
                }
                let irow = &s[off..off + w];
                for &(lo, hi, p0) in &runs {
                    let dst = &mut row[lo..hi];
                    if last.stride == 1 {
                        for (d, &v) in dst.iter_mut().zip(&irow[p0..p0 + (hi - lo)]) {
                            *d = combine(*d, v);
                        }
                    } else {
                        for (d, &v) in dst.iter_mut().zip(irow[p0..].iter().step_by(last.stride)) {
                            *d = combine(*d, v);
                        }
                    }
                }
            }
            finish(&o, row);
            for k in (0..sp - 1).rev() {
                o[k] += 1;
                if o[k] < lead[k].output {
                    break;
                }
                o[k] = 0;
            }
        }
    };
    let work = out.len() * axes.iter().map(|a| a.kernel).product::<usize>();
    if parallel(work) && planes > 1 {
        out.par_chunks_mut(out_plane)
            .zip(src.par_chunks(in_plane))
            .for_each(|(d, s)| plane(s, d));
    } else {
        out.chunks_mut(out_plane)
            .zip(src.chunks(in_plane))
            .for_each(|(d, s)| plane(s, d));
    }
    Ok(out)
}

/// MaxPool values.
pub(super) fn max<T: MaxElem>(
    a: &ArrayD<T>,
    planes: usize,
    axes: &[Axis],
    out_shape: &[usize],
) -> OpResult<ArrayD<T>> {
    let src = row_major(a);
    let out = pool_planes(
        &src,
        planes,
        axes,
        out_shape,
        T::LOWEST,
        |m, v| if v > m { v } else { m },
        |_, _| {},
    )?;
    to_array(out_shape, out)
}

/// AveragePool: sums divided by the number of counted taps (a product over the axes).
pub(super) fn avg<T: AvgElem>(
    a: &ArrayD<T>,
    planes: usize,
    axes: &[Axis],
    out_shape: &[usize],
    include_pad: bool,
) -> OpResult<ArrayD<T>> {
    let src = row_major(a);
    let counts: Vec<Vec<usize>> = axes
        .iter()
        .map(|a| (0..a.output).map(|o| a.count(o, include_pad)).collect())
        .collect();
    let sp = axes.len();
    let finish = |o: &[usize], row: &mut [T]| {
        let lead: usize = o.iter().enumerate().map(|(k, &i)| counts[k][i]).product();
        for (v, &c) in row.iter_mut().zip(&counts[sp - 1]) {
            *v = *v * T::recip((lead * c).max(1));
        }
    };
    let out = pool_planes(&src, planes, axes, out_shape, T::ZERO, |s, v| s + v, finish)?;
    to_array(out_shape, out)
}

/// MaxPool with its Indices output: the first maximum of each window in scan order,
/// as a flat index into the whole input (spatial part column-major if `col_major`).
pub(super) fn max_with_indices(
    x: &Tensor,
    planes: usize,
    axes: &[Axis],
    out_shape: &[usize],
    col_major: bool,
) -> OpResult<Vec<Tensor>> {
    fn run<T: MaxElem>(
        a: &ArrayD<T>,
        planes: usize,
        axes: &[Axis],
        col_major: bool,
    ) -> (Vec<T>, Vec<i64>) {
        let src = row_major(a);
        let sp = axes.len();
        let dims: Vec<usize> = axes.iter().map(|a| a.input).collect();
        let row_strides = crate::ir::shape::strides(&dims);
        let idx_strides: Vec<usize> = if col_major {
            (0..sp).map(|k| dims[..k].iter().product()).collect()
        } else {
            row_strides.clone()
        };
        let in_plane: usize = dims.iter().product();
        let out_plane: usize = axes.iter().map(|a| a.output).product();
        let taps: usize = axes.iter().map(|a| a.kernel).product();
        let (mut vals, mut idx) = (
            Vec::with_capacity(planes * out_plane),
            Vec::with_capacity(planes * out_plane),
        );
        for p in 0..planes {
            let s = &src[p * in_plane..(p + 1) * in_plane];
            for q in 0..out_plane {
                let mut o = vec![0; sp];
                let mut rest = q;
                for k in (0..sp).rev() {
                    o[k] = rest % axes[k].output;
                    rest /= axes[k].output;
                }
                let mut best: Option<(T, usize)> = None;
                'taps: for t in 0..taps {
                    let (mut rest, mut off, mut flat) = (t, 0, 0);
                    for k in (0..sp).rev() {
                        let j = rest % axes[k].kernel;
                        rest /= axes[k].kernel;
                        let Some(pos) = axes[k].pos(o[k], j) else {
                            continue 'taps;
                        };
                        off += pos * row_strides[k];
                        flat += pos * idx_strides[k];
                    }
                    if best.is_none_or(|(b, _)| s[off] > b) {
                        best = Some((s[off], flat));
                    }
                }
                let (v, f) = best.unwrap_or((T::LOWEST, 0));
                vals.push(v);
                idx.push((p * in_plane + f) as i64);
            }
        }
        (vals, idx)
    }
    let (values, idx) = match x {
        Tensor::F32(a) => {
            let (v, i) = run(a, planes, axes, col_major);
            (Tensor::F32(to_array(out_shape, v)?), i)
        }
        Tensor::F64(a) => {
            let (v, i) = run(a, planes, axes, col_major);
            (Tensor::F64(to_array(out_shape, v)?), i)
        }
        Tensor::I8(a) => {
            let (v, i) = run(a, planes, axes, col_major);
            (Tensor::I8(to_array(out_shape, v)?), i)
        }
        Tensor::U8(a) => {
            let (v, i) = run(a, planes, axes, col_major);
            (Tensor::U8(to_array(out_shape, v)?), i)
        }
        other => {
            return Err(crate::engine::ops::bad_dtype(
                0,
                other.dtype(),
                "float32, float64, int8 or uint8",
            ));
        }
    };
    Ok(vec![values, Tensor::I64(to_array(out_shape, idx)?)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pb: usize,
        pe: usize,
        output: usize,
    ) -> Axis {
        Axis {
            input,
            output,
            kernel,
            stride,
            dilation,
            pad_begin: pb,
            padded: input + pb + pe,
        }
    }

    /// Naive reference over one axis.
    fn naive_max(x: &[f32], a: &Axis) -> Vec<f32> {
        (0..a.output)
            .map(|o| {
                (0..a.kernel)
                    .filter_map(|j| a.pos(o, j))
                    .map(|p| x[p])
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .collect()
    }

    #[test]
    fn runs_match_naive_windows() {
        let x: Vec<f32> = (0..11)
            .map(|v| ((v * 7) % 5) as f32 + v as f32 * 0.1)
            .collect();
        for (k, s, d, pb, pe) in [
            (3, 1, 1, 1, 1),
            (3, 2, 1, 0, 1),
            (2, 2, 1, 0, 0),
            (3, 3, 2, 2, 2),
            (5, 1, 1, 2, 2),
        ] {
            let span = (k - 1) * d + 1;
            let out = (11 + pb + pe - span) / s + 1;
            let a = axis(11, k, s, d, pb, pe, out);
            let arr = ArrayD::from_shape_vec(ndarray::IxDyn(&[1, 1, 11]), x.clone()).unwrap();
            let got = max(&arr, 1, std::slice::from_ref(&a), &[1, 1, out]).unwrap();
            assert_eq!(
                got.as_slice().unwrap(),
                naive_max(&x, &a).as_slice(),
                "k{k} s{s} d{d} p{pb},{pe}"
            );
        }
    }
}
