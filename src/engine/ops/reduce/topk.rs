//! TopK: the `k` largest (or smallest) elements along an axis and their int64 indices,
//! always sorted (also when `sorted` is 0, which leaves the order unspecified), ties
//! broken by the lower index, NaN ordered above every number, as the ONNX reference does.
//!
//! `k` is an attribute in opset 1 and a one-element int64 input from opset 10; with a
//! constant `k` the output shapes are known at load, otherwise when the op runs.

use std::cmp::Ordering;

use crate::ir::{DType, Facts, Tensor};

use super::super::elementwise::kernel::{array, data};
use super::super::elementwise::scalar::{Elem, Num, with_num};
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use super::arg::blocks;

#[derive(Debug)]
struct TopK {
    /// The attribute of opset 1; `None`: input 1.
    k: Option<i64>,
    axis: i64,
    largest: bool,
}

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let k = if ctx.opset < 10 {
        Some(ctx.int("k")?.ok_or_else(|| OpError::Attr {
            name: "k".into(),
            msg: "missing".into(),
        })?)
    } else {
        None
    };
    Ok(Box::new(TopK {
        k,
        axis: ctx.int_or("axis", -1)?,
        largest: ctx.int_or("largest", 1)? != 0,
    }))
}

fn k_of(t: &Tensor) -> OpResult<i64> {
    match t.to_i64_vec().as_deref() {
        Some([k]) => Ok(*k),
        _ => Err(OpError::Input {
            index: 1,
            msg: format!("k must be one integer, got shape {:?}", t.shape()),
        }),
    }
}

/// Total order with NaN above every number.
fn order<T: Num>(a: T, b: T) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn top_k<T: Num>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    k: usize,
    largest: bool,
) -> (Vec<T>, Vec<i64>) {
    let mut vals = vec![T::ZERO; outer * k * inner];
    let mut idx = vec![0i64; outer * k * inner];
    let mut order_buf: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| x[(o * n + j) * inner + i];
            order_buf.clear();
            order_buf.extend(0..n);
            order_buf.sort_by(|&p, &q| {
                let c = order(at(p), at(q));
                (if largest { c.reverse() } else { c }).then(p.cmp(&q))
            });
            for (r, &j) in order_buf.iter().take(k).enumerate() {
                let dst = (o * k + r) * inner + i;
                vals[dst] = at(j);
                idx[dst] = j as i64;
            }
        }
    }
    (vals, idx)
}

impl TopK {
    fn shape(&self, shape: &[usize], k: i64) -> OpResult<(Vec<usize>, usize)> {
        let (a, _, n, _) = blocks(shape, self.axis, false)?;
        let k = usize::try_from(k)
            .ok()
            .filter(|&k| k <= n)
            .ok_or_else(|| OpError::Input {
                index: 1,
                msg: format!("k = {k} for an axis of size {n}"),
            })?;
        let mut s = shape.to_vec();
        s[a] = k;
        Ok((s, k))
    }
}

impl Op for TopK {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if x.dtype == Some(DType::Bool) {
            return Err(bad_dtype(0, DType::Bool, "a numeric type"));
        }
        let k = match self.k {
            Some(k) => Some(k),
            None => facts(inputs, 1)?.value.as_deref().map(k_of).transpose()?,
        };
        let shape = match (&x.shape, k) {
            (Some(s), Some(k)) => Some(self.shape(s, k)?.0),
            _ => None,
        };
        Ok(vec![
            Facts {
                dtype: x.dtype,
                shape: shape.clone(),
                value: None,
            },
            Facts {
                dtype: Some(DType::I64),
                shape,
                value: None,
            },
        ])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let k = match self.k {
            Some(k) => k,
            None => k_of(input(inputs, 1)?)?,
        };
        let (shape, k) = self.shape(x.shape(), k)?;
        let (_, outer, n, inner) = blocks(x.shape(), self.axis, false)?;
        with_num!(x.dtype(), T => {
            let a = T::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
            let (v, i) = top_k::<T>(&data(a), outer, n, inner, k, self.largest);
            Ok(vec![T::wrap(array(&shape, v)?), Tensor::I64(array(&shape, i)?)])
        }, Err(bad_dtype(0, x.dtype(), "a numeric type")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_sorts_and_breaks_ties_by_index() {
        let x = [1.0f32, 3.0, 2.0, 3.0];
        assert_eq!(
            top_k(&x, 1, 4, 1, 3, true),
            (vec![3.0, 3.0, 2.0], vec![1, 3, 2])
        );
        assert_eq!(top_k(&x, 1, 4, 1, 2, false), (vec![1.0, 2.0], vec![0, 2]));
        // Shape [2, 2], axis 0.
        assert_eq!(top_k(&x, 1, 2, 2, 1, true), (vec![2.0, 3.0], vec![1, 0]));
    }
}
