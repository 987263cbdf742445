//! Resize kernels: one gather for nearest, separable passes for linear and cubic, and a
//! fused pass for bilinear resizing of the two innermost axes (NCHW over H, W).

use ndarray::ArrayD;
use rayon::prelude::*;

use super::taps::{Coord, Taps, interp_taps, nearest_table};
use super::{AxisResize, Interp, Mode};
use crate::engine::ops::OpResult;
use crate::engine::ops::shape::{Elem, numel, parallel, row_major, to_array, typed};
use crate::ir::Tensor;

/// Rows per parallel task: enough tasks to balance, each at least ~16k elements.
fn rows_per_task(rows: usize, row_len: usize) -> usize {
    let by_threads = rows.div_ceil(rayon::current_num_threads() * 4);
    by_threads.max((1 << 14) / row_len.max(1)).max(1)
}

/// Nearest resize of any element type: each output row gathers from one input row.
pub(super) fn nearest<T: Elem>(
    x: &Tensor,
    out_shape: &[usize],
    plan: &[AxisResize],
    it: &Interp,
) -> OpResult<Tensor> {
    let src = row_major(typed::<T>(x, 0, x.dtype())?);
    let shape = x.shape();
    let r = shape.len();
    let n = numel(out_shape)?;
    if r == 0 || n == 0 || plan.is_empty() {
        return Ok(T::into_tensor(to_array(
            out_shape,
            if n == 0 { Vec::new() } else { src.to_vec() },
        )?));
    }
    let mut tabs: Vec<Vec<Option<usize>>> =
        shape.iter().map(|&d| (0..d).map(Some).collect()).collect();
    for a in plan {
        tabs[a.axis] = nearest_table(a, it);
    }
    let strides = crate::ir::shape::strides(shape);
    let fill = T::from_f64(it.extrapolation as f64);
    let inner = out_shape[r - 1];
    let last = &tabs[r - 1];
    // An integer upsampling factor on the last axis: each input element fills `rep` outputs.
    let rep = (shape[r - 1] > 0 && inner.is_multiple_of(shape[r - 1]))
        .then(|| inner / shape[r - 1])
        .filter(|&s| s > 1 && last.iter().enumerate().all(|(x, &t)| t == Some(x / s)));
    // Without extrapolation, the last axis is a plain index table.
    let last_plain: Option<Vec<usize>> = last.iter().copied().collect();
    let outer = &out_shape[..r - 1];
    let rows = |chunk: &mut [T], first: usize| {
        let mut idx = vec![0usize; r - 1];
        let mut rest = first;
        for k in (0..r - 1).rev() {
            idx[k] = rest % outer[k];
            rest /= outer[k];
        }
        let mut prev: Option<(Option<usize>, usize)> = None;
        for start in (0..chunk.len()).step_by(inner) {
            let base = idx
                .iter()
                .enumerate()
                .try_fold(0, |acc, (k, &o)| tabs[k][o].map(|s| acc + s * strides[k]));
            match (base, prev) {
                // Same source row as the previous output row: copy it.
                (b, Some((pb, ps))) if b == pb => chunk.copy_within(ps..ps + inner, start),
                (None, _) => chunk[start..start + inner].fill(fill),
                (Some(b), _) => {
                    let row = &mut chunk[start..start + inner];
                    let srow = &src[b..b + shape[r - 1]];
                    match (rep, &last_plain) {
                        (Some(s), _) => replicate(row, srow, s),
                        (None, Some(t)) => {
                            for (o, &t) in row.iter_mut().zip(t) {
                                *o = srow[t];
                            }
                        }
                        (None, None) => {
                            for (o, t) in row.iter_mut().zip(last) {
                                *o = t.map_or(fill, |t| srow[t]);
                            }
                        }
                    }
                }
            }
            prev = Some((base, start));
            for k in (0..r - 1).rev() {
                idx[k] += 1;
                if idx[k] < outer[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
    };
    let mut out = vec![fill; n];
    let total_rows = n / inner;
    if parallel(n) && total_rows > 1 {
        let per = rows_per_task(total_rows, inner);
        out.par_chunks_mut(per * inner)
            .enumerate()
            .for_each(|(k, c)| rows(c, k * per));
    } else {
        rows(&mut out, 0);
    }
    Ok(T::into_tensor(to_array(out_shape, out)?))
}

/// Writes each element of `src` `s` times in a row (`dst.len() == s * src.len()`).
fn replicate<T: Copy>(dst: &mut [T], src: &[T], s: usize) {
    fn fixed<T: Copy, const S: usize>(dst: &mut [T], src: &[T]) {
        for (o, &v) in dst.as_chunks_mut::<S>().0.iter_mut().zip(src) {
            *o = [v; S];
        }
    }
    match s {
        2 => fixed::<T, 2>(dst, src),
        3 => fixed::<T, 3>(dst, src),
        4 => fixed::<T, 4>(dst, src),
        8 => fixed::<T, 8>(dst, src),
        _ => {
            for (o, &v) in dst.chunks_exact_mut(s).zip(src) {
                o.fill(v);
            }
        }
    }
}

/// Linear or cubic resize of a float32 tensor.
pub(super) fn interpolate(
    a: &ArrayD<f32>,
    out_shape: &[usize],
    plan: &[AxisResize],
    it: &Interp,
) -> OpResult<Tensor> {
    let mut shape = a.shape().to_vec();
    let r = shape.len();
    let mut data = row_major(a).into_owned();
    if numel(out_shape)? == 0 {
        return Ok(Tensor::F32(to_array(out_shape, Vec::new())?));
    }
    let fused = r >= 2
        && plan.len() == 2
        && plan.iter().all(|p| p.axis >= r - 2)
        && it.mode == Mode::Linear
        && !it.antialias
        && it.coord != Coord::TfCropAndResize;
    if fused {
        let (h, w) = if plan[0].axis == r - 2 {
            (&plan[0], &plan[1])
        } else {
            (&plan[1], &plan[0])
        };
        let out = bilinear_2d(&data, &shape, &interp_taps(h, it), &interp_taps(w, it));
        return Ok(Tensor::F32(to_array(out_shape, out)?));
    }
    // Shrink first (less data for the other passes); among equals, the innermost first.
    let mut order: Vec<&AxisResize> = plan.iter().collect();
    order.sort_by(|p, q| {
        let (rp, rq) = (
            p.out_len as f64 / p.in_len.max(1) as f64,
            q.out_len as f64 / q.in_len.max(1) as f64,
        );
        rp.total_cmp(&rq).then(q.axis.cmp(&p.axis))
    });
    for p in order {
        data = resize_axis(&data, &shape, p.axis, &interp_taps(p, it), it.extrapolation);
        shape[p.axis] = p.out_len;
    }
    Ok(Tensor::F32(to_array(out_shape, data)?))
}

/// One separable pass: resizes axis `k` of `src` (row-major `shape`) with `taps`.
fn resize_axis(src: &[f32], shape: &[usize], k: usize, taps: &Taps, fill: f32) -> Vec<f32> {
    let in_len = shape[k];
    let out_len = taps.extrap.len();
    let inner: usize = shape[k + 1..].iter().product();
    let outer: usize = shape[..k].iter().product();
    let n = taps.n;
    let mut out = vec![0.0f32; outer * out_len * inner];
    // One output row = `inner` contiguous values at (o, y).
    let row = |oy: usize, dst: &mut [f32]| {
        let (o, y) = (oy / out_len, oy % out_len);
        if taps.extrap[y] {
            dst.fill(fill);
            return;
        }
        let base = o * in_len;
        let (idx, w) = (&taps.idx[y * n..(y + 1) * n], &taps.w[y * n..(y + 1) * n]);
        if inner == 1 {
            dst[0] = idx.iter().zip(w).map(|(&i, &w)| w * src[base + i]).sum();
            return;
        }
        for (t, (&i, &w)) in idx.iter().zip(w).enumerate() {
            let s = &src[(base + i) * inner..(base + i + 1) * inner];
            if t == 0 {
                dst.iter_mut().zip(s).for_each(|(d, &v)| *d = w * v);
            } else if w != 0.0 {
                dst.iter_mut().zip(s).for_each(|(d, &v)| *d += w * v);
            }
        }
    };
    let rows = outer * out_len;
    let work = |first: usize, chunk: &mut [f32]| {
        for (i, dst) in chunk.chunks_exact_mut(inner).enumerate() {
            row(first + i, dst);
        }
    };
    if parallel(out.len() * n) && rows > 1 {
        let per = rows_per_task(rows, inner);
        out.par_chunks_mut(per * inner)
            .enumerate()
            .for_each(|(c, chunk)| work(c * per, chunk));
    } else {
        work(0, &mut out);
    }
    out
}

/// Bilinear resize of the two innermost axes, fused: each input row is interpolated
/// horizontally once (two cached rows), then pairs of rows are blended vertically.
fn bilinear_2d(src: &[f32], shape: &[usize], th: &Taps, tw: &Taps) -> Vec<f32> {
    let r = shape.len();
    let (h, w) = (shape[r - 2], shape[r - 1]);
    let (oh, ow) = (th.extrap.len(), tw.extrap.len());
    let planes: usize = shape[..r - 2].iter().product();
    let mut out = vec![0.0f32; planes * oh * ow];
    let plane = |p: usize, dst: &mut [f32]| {
        let src = &src[p * h * w..(p + 1) * h * w];
        let mut bufs = [vec![0.0f32; ow], vec![0.0f32; ow]];
        let mut ids = [usize::MAX; 2];
        for (y, orow) in dst.chunks_exact_mut(ow).enumerate() {
            let need = [th.idx[2 * y], th.idx[2 * y + 1]];
            for &id in &need {
                if ids.contains(&id) {
                    continue;
                }
                let slot = if need.contains(&ids[0]) { 1 } else { 0 };
                let row = &src[id * w..(id + 1) * w];
                for (x, o) in bufs[slot].iter_mut().enumerate() {
                    let (i0, i1) = (tw.idx[2 * x], tw.idx[2 * x + 1]);
                    *o = tw.w[2 * x] * row[i0] + tw.w[2 * x + 1] * row[i1];
                }
                ids[slot] = id;
            }
            let s0 = if ids[0] == need[0] { 0 } else { 1 };
            let s1 = if ids[0] == need[1] { 0 } else { 1 };
            let (a0, a1) = (th.w[2 * y], th.w[2 * y + 1]);
            for ((o, &v0), &v1) in orow.iter_mut().zip(&bufs[s0]).zip(&bufs[s1]) {
                *o = a0 * v0 + a1 * v1;
            }
        }
    };
    let size = oh * ow;
    if parallel(out.len()) && planes > 1 {
        out.par_chunks_mut(size)
            .enumerate()
            .for_each(|(p, d)| plane(p, d));
    } else {
        out.chunks_mut(size)
            .enumerate()
            .for_each(|(p, d)| plane(p, d));
    }
    out
}
