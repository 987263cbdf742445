//! Operators: ReduceMax, ReduceMin, ReduceMean, ReduceSum, ReduceProd, ReduceL1,
//! ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp, and Softmax/LogSoftmax,
//! Hardmax, ArgMax/ArgMin, TopK, CumSum/CumProd.
//!
//! `axes` is an attribute up to opset 12 (ReduceSum) or 17 (the others) and an optional
//! input afterwards; an empty or absent list reduces everything unless
//! `noop_with_empty_axes` is set. Reducing an empty set gives the identity of the
//! reduction: 0 for sums, 1 for a product, −∞ (the type's minimum) for max, +∞ for min,
//! NaN for a mean, and for the composite reductions what their formula gives (−∞ for
//! the log-sums). The composite ones are a map, a sum (or product) and a map: L1 sums
//! |x|, L2 is √Σx², LogSumExp is ln Σ eˣ (shifted by the maximum, `composite`); L2 and
//! the log-sums take float types only. With `noop_with_empty_axes` and no axes these
//! apply their maps element-wise (ReduceSumSquare gives x²), as the ONNX reference does.
//!
//! The kernel simplifies the shape into alternating kept/reduced groups of dims, then
//! walks the outer groups once, reducing the innermost group as a contiguous slice
//! (reduced inner group) or accumulating whole rows (kept inner group).

mod arg;
mod composite;
mod cumulative;
mod softmax;
mod topk;

use rayon::prelude::*;

use crate::ir::shape::normalize_axis;
use crate::ir::{DType, Facts, Tensor};

use super::elementwise::kernel::{array, data, map, parallel};
use super::elementwise::scalar::{Elem, Num, with_num};
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("ReduceMax", |c| build(c, Reduction::Max, 18)),
    ("ReduceMin", |c| build(c, Reduction::Min, 18)),
    ("ReduceMean", |c| build(c, Reduction::Mean, 18)),
    ("ReduceSum", |c| build(c, Reduction::Sum, 13)),
    ("ReduceProd", |c| build(c, Reduction::Prod, 18)),
    ("ReduceL1", |c| build(c, Reduction::L1, 18)),
    ("ReduceL2", |c| build(c, Reduction::L2, 18)),
    ("ReduceSumSquare", |c| build(c, Reduction::SumSquare, 18)),
    ("ReduceLogSum", |c| build(c, Reduction::LogSum, 18)),
    ("ReduceLogSumExp", |c| build(c, Reduction::LogSumExp, 18)),
    ("Hardmax", arg::build_hardmax),
    ("ArgMax", |c| arg::build(c, true)),
    ("ArgMin", |c| arg::build(c, false)),
    ("TopK", topk::build),
    ("CumSum", |c| cumulative::build(c, false)),
    ("CumProd", |c| cumulative::build(c, true)),
    ("Softmax", |c| softmax::build(c, false)),
    ("LogSoftmax", |c| softmax::build(c, true)),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reduction {
    Max,
    Min,
    Mean,
    Sum,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

impl Reduction {
    /// Whether the reduction takes float types only.
    fn float_only(self) -> bool {
        matches!(
            self,
            Reduction::L2 | Reduction::LogSum | Reduction::LogSumExp
        )
    }

    /// The map applied to each element before summing (composite reductions).
    #[inline(always)]
    fn pre<T: Num>(self, v: T) -> T {
        match self {
            Reduction::L1 if v < T::ZERO => T::ZERO.sub(v),
            Reduction::L2 | Reduction::SumSquare => v.mul(v),
            _ => v,
        }
    }

    /// The map applied to each reduced value (composite reductions).
    #[inline(always)]
    fn post<T: Num>(self, v: T) -> T {
        match self {
            Reduction::L2 => T::from_f64(v.to_f64().sqrt()),
            Reduction::LogSum => T::from_f64(v.to_f64().ln()),
            _ => v,
        }
    }

    fn is_composite(self) -> bool {
        matches!(
            self,
            Reduction::L1
                | Reduction::L2
                | Reduction::SumSquare
                | Reduction::LogSum
                | Reduction::LogSumExp
        )
    }
}

/// Where the axes come from.
#[derive(Debug)]
enum Axes {
    /// The `axes` attribute (absent = all).
    Attr(Option<Vec<i64>>),
    /// Input 1: its value when constant at build time; `None` when it is omitted.
    Input(Option<Option<Vec<i64>>>),
}

#[derive(Debug)]
struct Reduce {
    kind: Reduction,
    axes: Axes,
    keepdims: bool,
    noop_with_empty_axes: bool,
}

/// `input_from`: the opset at which `axes` became an input.
fn build(ctx: &BuildCtx, kind: Reduction, input_from: i64) -> OpResult<Box<dyn Op>> {
    let axes = if ctx.opset < input_from {
        Axes::Attr(ctx.ints("axes")?)
    } else if !ctx.has_input(1) {
        Axes::Input(Some(None))
    } else {
        match ctx.const_input(1) {
            Some(t) => Axes::Input(Some(Some(axes_of(t)?))),
            None => Axes::Input(None),
        }
    };
    Ok(Box::new(Reduce {
        kind,
        axes,
        keepdims: ctx.int_or("keepdims", 1)? != 0,
        noop_with_empty_axes: ctx.int_or("noop_with_empty_axes", 0)? != 0,
    }))
}

fn axes_of(t: &Tensor) -> OpResult<Vec<i64>> {
    if t.rank() > 1 {
        return Err(OpError::Input {
            index: 1,
            msg: format!("axes must be 1-D, got shape {:?}", t.shape()),
        });
    }
    t.to_i64_vec()
        .ok_or_else(|| bad_dtype(1, t.dtype(), "int64"))
}

impl Reduce {
    /// Max and Min take any type; Sum and Mean no bool, and no halves (numpy accumulates
    /// those in f32, which the per-step rounding of `Num` for halves would not reproduce).
    fn accepts(&self, d: DType) -> bool {
        if self.kind.float_only() {
            return d.is_float();
        }
        matches!(self.kind, Reduction::Max | Reduction::Min) || !(d == DType::Bool || d.is_half())
    }

    /// The axes list known at build time (`None` = depends on a runtime input).
    fn static_axes(&self) -> Option<Option<&[i64]>> {
        match &self.axes {
            Axes::Attr(a) => Some(a.as_deref()),
            Axes::Input(Some(a)) => Some(a.as_deref()),
            Axes::Input(None) => None,
        }
    }

    /// Per dim of an input of `rank`: whether it is reduced; `None` = no-op (identity).
    fn mask(&self, axes: Option<&[i64]>, rank: usize) -> OpResult<Option<Vec<bool>>> {
        let axes = axes.unwrap_or(&[]);
        if axes.is_empty() {
            return Ok(if self.noop_with_empty_axes {
                None
            } else {
                Some(vec![true; rank])
            });
        }
        let mut mask = vec![false; rank];
        for &a in axes {
            let i = normalize_axis(a, rank).ok_or_else(|| {
                OpError::Invalid(format!(
                    "axis {a} is out of range for a tensor of rank {rank}"
                ))
            })?;
            mask[i] = true;
        }
        Ok(Some(mask))
    }

    fn out_shape(&self, shape: &[usize], mask: &[bool]) -> Vec<usize> {
        shape
            .iter()
            .zip(mask)
            .filter_map(|(&d, &m)| match (m, self.keepdims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect()
    }
}

impl Op for Reduce {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !self.accepts(d)
        {
            return Err(bad_dtype(0, d, "a numeric type"));
        }
        let shape = match (&x.shape, self.static_axes()) {
            (Some(s), Some(axes)) => match self.mask(axes, s.len())? {
                None => Some(s.clone()),
                Some(m) => Some(self.out_shape(s, &m)),
            },
            _ => None,
        };
        Ok(vec![Facts {
            dtype: x.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        if !self.accepts(x.dtype()) {
            return Err(bad_dtype(0, x.dtype(), "a numeric type"));
        }
        let runtime;
        let axes = match self.static_axes() {
            Some(a) => a,
            None => {
                runtime = match inputs.get(1).copied().flatten() {
                    Some(t) => Some(axes_of(t)?),
                    None => None,
                };
                runtime.as_deref()
            }
        };
        let mask = match self.mask(axes, x.rank())? {
            Some(m) => m,
            None if self.kind.is_composite() => vec![false; x.rank()],
            None => return Ok(vec![x.clone()]),
        };
        let shape = self.out_shape(x.shape(), &mask);
        let y = match x {
            Tensor::Bool(a) => {
                let bytes: Vec<u8> = data(a).iter().map(|&b| b as u8).collect();
                let r = reduce::<u8>(self.kind, &bytes, a.shape(), &mask);
                Tensor::Bool(array(&shape, r.into_iter().map(|v| v != 0).collect())?)
            }
            _ => with_num!(x.dtype(), T => {
                let a = T::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
                T::wrap(array(&shape, reduce::<T>(self.kind, &data(a), a.shape(), &mask))?)
            }, return Err(bad_dtype(0, x.dtype(), "a numeric type"))),
        };
        Ok(vec![y])
    }
}

/// One group of consecutive dims that are all kept or all reduced.
#[derive(Clone, Copy, Debug)]
struct Group {
    len: usize,
    reduced: bool,
}

/// The shape as alternating kept/reduced groups (size-1 dims dropped).
fn groups(shape: &[usize], mask: &[bool]) -> Vec<Group> {
    let mut g: Vec<Group> = Vec::new();
    for (&d, &r) in shape.iter().zip(mask) {
        if d == 1 {
            continue;
        }
        match g.last_mut() {
            Some(last) if last.reduced == r => last.len *= d,
            _ => g.push(Group { len: d, reduced: r }),
        }
    }
    g
}

/// Reduces `x` (of `shape`) over the dims flagged in `mask`; the result is in row-major
/// order of the kept dims.
fn reduce<T: Num>(kind: Reduction, x: &[T], shape: &[usize], mask: &[bool]) -> Vec<T> {
    if kind == Reduction::LogSumExp {
        let out_len = shape
            .iter()
            .zip(mask)
            .filter(|&(_, &m)| !m)
            .map(|(&d, _)| d)
            .product();
        return composite::log_sum_exp(x, shape, mask, out_len);
    }
    if kind.is_composite() {
        let pre = map(x, move |v: T| kind.pre(v));
        let sum = reduce(Reduction::Sum, &pre, shape, mask);
        return map(&sum, move |v: T| kind.post(v));
    }
    let count: usize = shape
        .iter()
        .zip(mask)
        .filter(|&(_, &m)| m)
        .map(|(&d, _)| d)
        .product();
    let out_len: usize = shape
        .iter()
        .zip(mask)
        .filter(|&(_, &m)| !m)
        .map(|(&d, _)| d)
        .product();
    let out = match kind {
        Reduction::Max => reduce_with(x, shape, mask, out_len, T::LOWEST, |a: T, b: T| {
            a.max_nan(b)
        }),
        Reduction::Min => reduce_with(x, shape, mask, out_len, T::HIGHEST, |a: T, b: T| {
            a.min_nan(b)
        }),
        Reduction::Prod => reduce_with(x, shape, mask, out_len, T::ONE, |a: T, b: T| a.mul(b)),
        _ => reduce_with(x, shape, mask, out_len, T::ZERO, |a: T, b: T| a.add(b)),
    };
    if kind == Reduction::Mean {
        if count == 0 {
            let empty = if T::IS_FLOAT {
                T::from_f64(f64::NAN)
            } else {
                T::ZERO
            };
            return vec![empty; out.len()];
        }
        let n = T::from_f64(count as f64);
        return map(&out, move |v: T| v.div(n));
    }
    out
}

/// Folds `x` with `f` (associative and commutative, `init` its identity).
fn reduce_with<T: Num, F>(
    x: &[T],
    shape: &[usize],
    mask: &[bool],
    out_len: usize,
    init: T,
    f: F,
) -> Vec<T>
where
    F: Fn(T, T) -> T + Sync + Send + Copy,
{
    let mut out = vec![init; out_len];
    if x.is_empty() || out_len == 0 {
        return out;
    }
    let g = groups(shape, mask);
    match g.as_slice() {
        [] => out[0] = x[0],
        [Group { reduced: true, .. }] => out[0] = fold_slice(x, init, f),
        [Group { reduced: false, .. }] => out.copy_from_slice(x),
        // Rows reduced to one value each: softmax-like, global pooling.
        [
            Group { reduced: false, .. },
            Group {
                reduced: true,
                len: r,
            },
        ] => {
            let r = *r;
            let body = |(o, row): (&mut T, &[T])| *o = fold_slice(row, init, f);
            if parallel(x.len()) {
                out.par_iter_mut().zip(x.par_chunks(r)).for_each(body);
            } else {
                out.iter_mut().zip(x.chunks(r)).for_each(body);
            }
        }
        // Leading dims reduced: accumulate rows, split by columns when large.
        [
            Group {
                reduced: true,
                len: r,
            },
            Group {
                reduced: false,
                len: k,
            },
        ] => {
            let (r, k) = (*r, *k);
            if parallel(x.len()) {
                let cols = 4096;
                out.par_chunks_mut(cols).enumerate().for_each(|(c, o)| {
                    for i in 0..r {
                        let row = &x[i * k + c * cols..i * k + c * cols + o.len()];
                        accumulate(o, row, f);
                    }
                });
            } else {
                for row in x.chunks(k) {
                    accumulate(&mut out, row, f);
                }
            }
        }
        _ => reduce_general(x, &g, &mut out, init, f),
    }
    out
}

/// Any pattern of groups: one odometer over all but the innermost group.
fn reduce_general<T: Num, F: Fn(T, T) -> T + Copy>(
    x: &[T],
    g: &[Group],
    out: &mut [T],
    init: T,
    f: F,
) {
    let Some((last, outer)) = g.split_last() else {
        return;
    };
    let inner = last.len;
    // Output strides of the outer groups (0 for reduced ones).
    let mut ostride = vec![0; outer.len()];
    let mut acc = if last.reduced { 1 } else { inner };
    for (i, grp) in outer.iter().enumerate().rev() {
        if !grp.reduced {
            ostride[i] = acc;
            acc *= grp.len;
        }
    }
    let mut idx = vec![0; outer.len()];
    let mut o = 0;
    for chunk in x.chunks(inner) {
        if last.reduced {
            out[o] = f(out[o], fold_slice(chunk, init, f));
        } else {
            accumulate(&mut out[o..o + inner], chunk, f);
        }
        for d in (0..outer.len()).rev() {
            idx[d] += 1;
            o += ostride[d];
            if idx[d] < outer[d].len {
                break;
            }
            o -= ostride[d] * outer[d].len;
            idx[d] = 0;
        }
    }
}

/// `acc[i] = f(acc[i], row[i])`.
#[inline(always)]
fn accumulate<T: Copy, F: Fn(T, T) -> T>(acc: &mut [T], row: &[T], f: F) {
    for (a, &v) in acc.iter_mut().zip(row) {
        *a = f(*a, v);
    }
}

/// Folds a slice with eight independent accumulators (vectorizes, and sums with less
/// rounding error than one running total).
#[inline(always)]
fn fold_slice<T: Copy, F: Fn(T, T) -> T>(s: &[T], init: T, f: F) -> T {
    let mut lanes = [init; 8];
    let chunks = s.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = f(*l, v);
        }
    }
    let mut r = rest.iter().fold(init, |a, &v| f(a, v));
    for l in lanes {
        r = f(r, l);
    }
    r
}

#[cfg(test)]
mod tests;
