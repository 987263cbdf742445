//! ScatterElements (and Scatter, its deprecated name) and ScatterND: a copy of the data
//! with elements (or slices) at indexed positions replaced by the updates, or combined
//! with them by `reduction` (add, mul, max, min). Updates apply in order, so with
//! `none` the last of duplicate indices wins, as in the ONNX reference.

use super::gather::{check_indices, same_rank_axis, tuples};
use super::{index, offsets_without, strides};
use crate::engine::ops::elementwise::kernel::{array, data};
use crate::engine::ops::elementwise::scalar::{Elem, Num, with_elem, with_num};
use crate::engine::ops::shape::int_values;
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use crate::ir::{Facts, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

fn reduction(ctx: &BuildCtx) -> OpResult<Reduction> {
    Ok(
        match ctx
            .choice("reduction", "none", &["none", "add", "mul", "max", "min"])?
            .as_str()
        {
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            _ => Reduction::None,
        },
    )
}

/// `dst = dst ⊕ src` for the reduction.
#[inline]
fn combine<T: Num>(r: Reduction, dst: &mut T, src: T) {
    *dst = match r {
        Reduction::None => src,
        Reduction::Add => dst.add(src),
        Reduction::Mul => dst.mul(src),
        Reduction::Max => dst.max_nan(src),
        Reduction::Min => dst.min_nan(src),
    };
}

/// Runs `f` with the tensor's element type; bool supports only `none`.
macro_rules! dispatch {
    ($r:expr, $x:expr, $T:ident => $body:expr) => {
        if $r == Reduction::None {
            with_elem!($x.dtype(), $T => $body)
        } else {
            with_num!($x.dtype(), $T => $body, Err(bad_dtype(0, $x.dtype(), "a numeric type for a reduction")))
        }
    };
}

/// Facts of a scatter: the data's. Checks the index type.
fn infer_scatter(inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
    check_indices(inputs, 1)?;
    let f = facts(inputs, 0)?;
    let u = facts(inputs, 2)?;
    if let (Some(a), Some(b)) = (f.dtype, u.dtype)
        && a != b
    {
        return Err(OpError::Input {
            index: 2,
            msg: format!("updates of type {} for data of type {}", b.name(), a.name()),
        });
    }
    Ok(vec![Facts {
        dtype: f.dtype,
        shape: f.shape.clone(),
        value: None,
    }])
}

/// The data and updates of a scatter as row-major vectors of `T`.
fn operands<T: Elem>(x: &Tensor, u: &Tensor) -> OpResult<(Vec<T>, Vec<T>)> {
    fn view<'a, T: Elem>(t: &'a Tensor, i: usize, x: &Tensor) -> OpResult<&'a ndarray::ArrayD<T>> {
        T::view(t).ok_or_else(|| OpError::Input {
            index: i,
            msg: format!(
                "type {} differs from the data's {}",
                t.dtype().name(),
                x.dtype().name()
            ),
        })
    }
    Ok((
        data(view::<T>(x, 0, x)?).into_owned(),
        data(view::<T>(u, 2, x)?).into_owned(),
    ))
}

#[derive(Debug)]
struct ScatterElements {
    axis: i64,
    reduction: Reduction,
}

pub(super) fn build_scatter_elements(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ScatterElements {
        axis: ctx.int_or("axis", 0)?,
        reduction: reduction(ctx)?,
    }))
}

trait Combine: Elem {
    fn put(r: Reduction, dst: &mut Self, src: Self);
}

impl<T: Num> Combine for T {
    fn put(r: Reduction, dst: &mut T, src: T) {
        combine(r, dst, src)
    }
}

impl Combine for bool {
    fn put(_: Reduction, dst: &mut bool, src: bool) {
        *dst = src;
    }
}

fn scatter_elements<T: Combine>(
    x: &Tensor,
    i: &Tensor,
    u: &Tensor,
    ax: usize,
    r: Reduction,
) -> OpResult<Tensor> {
    if i.shape() != u.shape() {
        return Err(OpError::Invalid(format!(
            "indices of shape {:?} and updates of shape {:?} differ",
            i.shape(),
            u.shape()
        )));
    }
    let (mut out, upd) = operands::<T>(x, u)?;
    let idx = int_values(i, 1, "indices")?;
    let st = strides(x.shape());
    let d = x.shape()[ax];
    for ((b, k), v) in offsets_without(i.shape(), &st, ax)
        .into_iter()
        .zip(idx)
        .zip(upd)
    {
        T::put(r, &mut out[b + index(k, d, 1)? * st[ax]], v);
    }
    Ok(T::wrap(array(x.shape(), out)?))
}

impl Op for ScatterElements {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let out = infer_scatter(inputs)?;
        if let (Some(s), Some(is)) = (&facts(inputs, 0)?.shape, &facts(inputs, 1)?.shape) {
            same_rank_axis(s, is, self.axis)?;
        }
        Ok(out)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, i, u) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let ax = same_rank_axis(x.shape(), i.shape(), self.axis)?;
        let r = self.reduction;
        dispatch!(r, x, T => scatter_elements::<T>(x, i, u, ax, r)).map(|t| vec![t])
    }
}

#[derive(Debug)]
struct ScatterNd {
    reduction: Reduction,
}

pub(super) fn build_scatter_nd(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ScatterNd {
        reduction: reduction(ctx)?,
    }))
}

fn scatter_nd<T: Combine>(x: &Tensor, i: &Tensor, u: &Tensor, r: Reduction) -> OpResult<Tensor> {
    let t = tuples(x.shape(), i.shape(), 0)?;
    if u.shape() != t.out_shape(x.shape(), 0).as_slice() {
        return Err(OpError::Invalid(format!(
            "updates of shape {:?} do not fit indices of shape {:?} into data of shape {:?}",
            u.shape(),
            i.shape(),
            x.shape()
        )));
    }
    let idx = int_values(i, 1, "indices")?;
    let offs = t.offsets(x.shape(), 0, &idx, 1)?;
    let (mut out, upd) = operands::<T>(x, u)?;
    for (o, src) in offs.into_iter().zip(upd.chunks(t.slice.max(1))) {
        for (d, &s) in out[o..o + t.slice].iter_mut().zip(src) {
            T::put(r, d, s);
        }
    }
    Ok(T::wrap(array(x.shape(), out)?))
}

impl Op for ScatterNd {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        infer_scatter(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, i, u) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let r = self.reduction;
        dispatch!(r, x, T => scatter_nd::<T>(x, i, u, r)).map(|t| vec![t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_elements_with_reductions() {
        let data = Tensor::from_f32(&[1, 5], vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        let idx = Tensor::from_i64(&[1, 2], vec![1, 1]);
        let upd = Tensor::from_f32(&[1, 2], vec![1.1, 2.1]);
        let op = |r| ScatterElements {
            axis: 1,
            reduction: r,
        };
        let y = op(Reduction::Add)
            .run(&[Some(&data), Some(&idx), Some(&upd)])
            .unwrap();
        assert_eq!(
            y[0],
            Tensor::from_f32(&[1, 5], vec![1.0, 5.2, 3.0, 4.0, 5.0])
        );
        let y = op(Reduction::None)
            .run(&[Some(&data), Some(&idx), Some(&upd)])
            .unwrap();
        assert_eq!(
            y[0],
            Tensor::from_f32(&[1, 5], vec![1.0, 2.1, 3.0, 4.0, 5.0])
        );
        let neg = Tensor::from_i64(&[1, 2], vec![-1, -5]);
        let y = op(Reduction::Max)
            .run(&[Some(&data), Some(&neg), Some(&upd)])
            .unwrap();
        assert_eq!(
            y[0],
            Tensor::from_f32(&[1, 5], vec![2.1, 2.0, 3.0, 4.0, 5.0])
        );
    }

    #[test]
    fn scatter_nd_replaces_slices() {
        let data = Tensor::from_i64(&[4, 2], (0..8).collect());
        let idx = Tensor::from_i64(&[2, 1], vec![3, 0]);
        let upd = Tensor::from_i64(&[2, 2], vec![10, 11, 12, 13]);
        let op = ScatterNd {
            reduction: Reduction::Mul,
        };
        let y = op.run(&[Some(&data), Some(&idx), Some(&upd)]).unwrap();
        assert_eq!(
            y[0],
            Tensor::from_i64(&[4, 2], vec![0, 13, 2, 3, 4, 5, 60, 77])
        );
        let short = Tensor::from_i64(&[2, 1], vec![10, 11]);
        assert!(op.run(&[Some(&data), Some(&idx), Some(&short)]).is_err());
    }
}
