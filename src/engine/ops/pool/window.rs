//! Windowed pooling. Max and sum are separable, so the spatial axes are pooled one pass
//! at a time, innermost first: the first pass reduces each input row to its windows in
//! registers, the later ones combine whole rows of the previous result (vectorized).
//! Padded taps are skipped; the average divides by a per-axis count in each pass.

use ndarray::ArrayD;
use rayon::prelude::*;

use super::Axis;
use crate::engine::ops::OpResult;
use crate::engine::ops::shape::{parallel, row_major, to_array};
use crate::ir::Tensor;

/// An element type MaxPool supports.
pub(super) trait MaxElem:
    Copy + Send + Sync + PartialOrd + std::ops::Mul<Output = Self>
{
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

/// For each output position of an axis: the input position of its first tap inside
/// the input, and how many of its taps are inside (they are consecutive).
fn windows(a: &Axis) -> Vec<(usize, usize)> {
    (0..a.output)
        .map(|o| {
            let mut taps = (0..a.kernel).filter_map(|j| a.pos(o, j));
            let first = taps.next();
            (first.unwrap_or(0), first.map_or(0, |_| 1 + taps.count()))
        })
        .collect()
}

/// The innermost pass over many rows: each padded row (padding = `init`, the identity
/// of `combine`) is split into `stride` phases, so tap `t` of every window reads one
/// contiguous slice of a phase and the windows combine in vectorizable loops.
fn pool_rows<T, C>(src: &[T], out: &mut [T], a: &Axis, init: T, combine: &C, scale: Option<&[T]>)
where
    T: Copy + std::ops::Mul<Output = T>,
    C: Fn(T, T) -> T,
{
    let (len, st, d, pb) = (a.input, a.stride, a.dilation, a.pad_begin);
    // Padded positions the windows reach (with ceil_mode, possibly past the pads).
    let total = (a.output - 1) * st + (a.kernel - 1) * d + 1;
    let plen = total.div_ceil(st);
    // The padded row (positions 0..plen·st), then its phases: phase r holds positions ≡ r mod st.
    let mut padded = vec![init; plen * st];
    let (lo, hi) = (pb.min(padded.len()), (pb + len).min(padded.len()));
    let mut phases = if st == 1 {
        Vec::new()
    } else {
        vec![init; plen * st]
    };
    for (srow, orow) in src.chunks_exact(len).zip(out.chunks_exact_mut(a.output)) {
        padded[lo..hi].copy_from_slice(&srow[..hi - lo]);
        let phases: &[T] = match st {
            1 => &padded,
            2 => {
                let (p0, p1) = phases.split_at_mut(plen);
                for ((e, o), &[x, y]) in p0
                    .iter_mut()
                    .zip(p1.iter_mut())
                    .zip(padded.as_chunks::<2>().0)
                {
                    *e = x;
                    *o = y;
                }
                &phases
            }
            _ => {
                for (k, c) in padded.chunks_exact(st).enumerate() {
                    for (r, &v) in c.iter().enumerate() {
                        phases[r * plen + k] = v;
                    }
                }
                &phases
            }
        };
        for t in 0..a.kernel {
            let off = t * d;
            let base = (off % st) * plen + off / st;
            let tap = &phases[base..base + a.output];
            if t == 0 {
                orow.copy_from_slice(tap);
            } else {
                for (o, &v) in orow.iter_mut().zip(tap) {
                    *o = combine(*o, v);
                }
            }
        }
        if let Some(sc) = scale {
            for (o, &f) in orow.iter_mut().zip(sc) {
                *o = *o * f;
            }
        }
    }
}

/// One pooling pass along an axis of `src`, seen as `[outer, a.input, inner]`:
/// combines each window's taps (rows of `inner` values), then multiplies by
/// `scale[o]` if given (the average's per-axis divisor).
fn pool_axis<T, C>(
    src: &[T],
    inner: usize,
    a: &Axis,
    init: T,
    combine: &C,
    scale: Option<&[T]>,
) -> Vec<T>
where
    T: Copy + Send + Sync + std::ops::Mul<Output = T>,
    C: Fn(T, T) -> T + Sync,
{
    let win = windows(a);
    let (len, d) = (a.input, a.dilation);
    let in_block = len * inner;
    let out_block = a.output * inner;
    let outer = src.len().checked_div(in_block).unwrap_or(0);
    let mut out = vec![init; outer * out_block];
    if out.is_empty() || in_block == 0 {
        return out;
    }
    // Whole runs of blocks (`s`: input blocks, `o`: their output blocks).
    let blocks = |s: &[T], o: &mut [T]| {
        if inner == 1 {
            return pool_rows(s, o, a, init, combine, scale);
        }
        for (s, o) in s.chunks_exact(in_block).zip(o.chunks_exact_mut(out_block)) {
            for (p, (dst, &(st, cnt))) in o.chunks_exact_mut(inner).zip(&win).enumerate() {
                for t in 0..cnt {
                    let row = &s[(st + t * d) * inner..(st + t * d + 1) * inner];
                    if t == 0 {
                        dst.copy_from_slice(row);
                    } else {
                        dst.iter_mut()
                            .zip(row)
                            .for_each(|(m, &x)| *m = combine(*m, x));
                    }
                }
                if let Some(sc) = scale {
                    let f = sc[p];
                    dst.iter_mut().for_each(|m| *m = *m * f);
                }
            }
        }
    };
    if parallel(out.len() * a.kernel) && outer > 1 {
        let per = outer.div_ceil(rayon::current_num_threads() * 4).max(1);
        out.par_chunks_mut(per * out_block)
            .zip(src.par_chunks(per * in_block))
            .for_each(|(o, s)| blocks(s, o));
    } else {
        blocks(src, &mut out);
    }
    out
}

/// Pools the spatial axes one after the other, innermost first (pooling is separable:
/// a max of maxima, a sum of sums), each pass shrinking the data for the next.
fn pool_separable<T, C>(
    src: &[T],
    axes: &[Axis],
    init: T,
    combine: C,
    scales: Option<&[Vec<T>]>,
) -> Vec<T>
where
    T: Copy + Send + Sync + std::ops::Mul<Output = T>,
    C: Fn(T, T) -> T + Sync,
{
    let mut inner = 1;
    let mut cur: Option<Vec<T>> = None;
    for k in (0..axes.len()).rev() {
        let s = cur.as_deref().unwrap_or(src);
        let next = pool_axis(
            s,
            inner,
            &axes[k],
            init,
            &combine,
            scales.map(|sc| sc[k].as_slice()),
        );
        inner *= axes[k].output;
        cur = Some(next);
    }
    cur.unwrap_or_else(|| src.to_vec())
}

/// MaxPool values.
pub(super) fn max<T: MaxElem>(
    a: &ArrayD<T>,
    axes: &[Axis],
    out_shape: &[usize],
) -> OpResult<ArrayD<T>> {
    let src = row_major(a);
    let out = pool_separable(
        &src,
        axes,
        T::LOWEST,
        |m, v| if v > m { v } else { m },
        None,
    );
    to_array(out_shape, out)
}

/// AveragePool: sums divided by the number of counted taps (a product over the axes,
/// applied per axis).
pub(super) fn avg<T: AvgElem>(
    a: &ArrayD<T>,
    axes: &[Axis],
    out_shape: &[usize],
    include_pad: bool,
) -> OpResult<ArrayD<T>> {
    let src = row_major(a);
    let scales: Vec<Vec<T>> = axes
        .iter()
        .map(|a| {
            (0..a.output)
                .map(|o| T::recip(a.count(o, include_pad).max(1)))
                .collect()
        })
        .collect();
    let out = pool_separable(&src, axes, T::ZERO, |s, v| s + v, Some(&scales));
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
            let got = max(&arr, std::slice::from_ref(&a), &[1, 1, out]).unwrap();
            assert_eq!(
                got.as_slice().unwrap(),
                naive_max(&x, &a).as_slice(),
                "k{k} s{s} d{d} p{pb},{pe}"
            );
        }
    }
}
