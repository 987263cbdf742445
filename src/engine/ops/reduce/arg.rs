//! ArgMax/ArgMin (the index of the extreme along one axis, int64) and Hardmax (1 at the
//! first maximum along the axis, 0 elsewhere).
//!
//! NaN counts as the extreme, as in numpy: the first NaN wins. Ties go to the first
//! index unless `select_last_index`.

use crate::ir::shape::normalize_axis;
use crate::ir::{DType, Facts, Tensor};

use super::super::elementwise::kernel::{array, data};
use super::super::elementwise::scalar::{Elem, Num, with_num};
use super::super::util::infer_same;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};

/// (outer, n, inner) blocks of `shape` around `axis`; `flatten`: all dims from `axis`.
pub(super) fn blocks(
    shape: &[usize],
    axis: i64,
    flatten: bool,
) -> OpResult<(usize, usize, usize, usize)> {
    let rank = shape.len();
    let a = normalize_axis(axis, rank).ok_or_else(|| OpError::Attr {
        name: "axis".into(),
        msg: format!("{axis} is out of range for a tensor of rank {rank}"),
    })?;
    let outer = shape[..a].iter().product();
    Ok(if flatten {
        (a, outer, shape[a..].iter().product(), 1)
    } else {
        (a, outer, shape[a], shape[a + 1..].iter().product())
    })
}

/// Whether `v` at a later index replaces `best` (max: larger; min: smaller).
#[inline]
fn replaces<T: Num>(v: T, best: T, max: bool, last: bool) -> bool {
    if best.is_nan() {
        return false;
    }
    if v.is_nan() {
        return true;
    }
    match (max, last) {
        (true, false) => v > best,
        (true, true) => v >= best,
        (false, false) => v < best,
        (false, true) => v <= best,
    }
}

/// Per (outer, inner) position, the index along the axis of the extreme.
fn arg<T: Num>(x: &[T], outer: usize, n: usize, inner: usize, max: bool, last: bool) -> Vec<i64> {
    let mut out = vec![0i64; outer * inner];
    if n == 0 {
        return out;
    }
    for o in 0..outer {
        let block = &x[o * n * inner..(o + 1) * n * inner];
        for i in 0..inner {
            let (mut best, mut at) = (block[i], 0);
            for k in 1..n {
                let v = block[k * inner + i];
                if replaces(v, best, max, last) {
                    (best, at) = (v, k);
                }
            }
            out[o * inner + i] = at as i64;
        }
    }
    out
}

#[derive(Debug)]
struct ArgExtreme {
    max: bool,
    axis: i64,
    keepdims: bool,
    last: bool,
}

pub(super) fn build(ctx: &BuildCtx, max: bool) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ArgExtreme {
        max,
        axis: ctx.int_or("axis", 0)?,
        keepdims: ctx.int_or("keepdims", 1)? != 0,
        last: ctx.int_or("select_last_index", 0)? != 0,
    }))
}

impl ArgExtreme {
    fn out_shape(&self, shape: &[usize]) -> OpResult<Vec<usize>> {
        let (a, ..) = blocks(shape, self.axis, false)?;
        let mut s = shape.to_vec();
        if self.keepdims {
            s[a] = 1;
        } else {
            s.remove(a);
        }
        Ok(s)
    }
}

impl Op for ArgExtreme {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if x.dtype == Some(DType::Bool) {
            return Err(bad_dtype(0, DType::Bool, "a numeric type"));
        }
        let shape = x.shape.as_deref().map(|s| self.out_shape(s)).transpose()?;
        Ok(vec![Facts {
            dtype: Some(DType::I64),
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (_, outer, n, inner) = blocks(x.shape(), self.axis, false)?;
        if n == 0 {
            return Err(OpError::Invalid("ArgMax/ArgMin over an empty axis".into()));
        }
        let shape = self.out_shape(x.shape())?;
        let idx = with_num!(x.dtype(), T => {
            let a = T::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
            arg::<T>(&data(a), outer, n, inner, self.max, self.last)
        }, return Err(bad_dtype(0, x.dtype(), "a numeric type")));
        Ok(vec![Tensor::I64(array(&shape, idx)?)])
    }
}

#[derive(Debug)]
struct Hardmax {
    axis: i64,
    flatten: bool,
}

/// Hardmax: before opset 13 the input is coerced to 2-D at `axis` (default 1), from 13
/// `axis` (default −1) is the single dim.
pub(super) fn build_hardmax(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let flatten = ctx.opset < 13;
    let axis = ctx.int_or("axis", if flatten { 1 } else { -1 })?;
    Ok(Box::new(Hardmax { axis, flatten }))
}

fn hardmax<T: Num>(x: &[T], outer: usize, n: usize, inner: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    for (p, k) in arg(x, outer, n, inner, true, false).into_iter().enumerate() {
        let (o, i) = (p / inner, p % inner);
        out[(o * n + k as usize) * inner + i] = T::ONE;
    }
    out
}

impl Op for Hardmax {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(s) = &facts(inputs, 0)?.shape {
            blocks(s, self.axis, self.flatten)?;
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (_, outer, n, inner) = blocks(x.shape(), self.axis, self.flatten)?;
        if n == 0 {
            return Ok(vec![x.clone()]);
        }
        let y = with_num!(x.dtype(), T => {
            let a = T::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
            T::wrap(array(a.shape(), hardmax::<T>(&data(a), outer, n, inner))?)
        }, return Err(bad_dtype(0, x.dtype(), "a numeric type")));
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_extremes_and_ties() {
        let x = [2.0f32, 1.0, 2.0, 3.0, 5.0, 3.0];
        // Shape [2, 3], axis 1.
        assert_eq!(arg(&x, 2, 3, 1, true, false), vec![0, 1]);
        assert_eq!(arg(&x, 2, 3, 1, true, true), vec![2, 1]);
        assert_eq!(arg(&x, 2, 3, 1, false, true), vec![1, 2]);
        // Axis 0.
        assert_eq!(arg(&x, 1, 2, 3, true, false), vec![1, 1, 1]);
        assert_eq!(arg(&[1.0f32, f32::NAN, 3.0], 1, 3, 1, true, false), vec![1]);
    }

    #[test]
    fn hardmax_marks_the_first_maximum() {
        let x = [1.0f32, 3.0, 3.0, 0.0];
        assert_eq!(hardmax(&x, 1, 4, 1), vec![0.0, 1.0, 0.0, 0.0]);
    }
}
