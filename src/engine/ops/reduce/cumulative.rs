//! CumSum and CumProd along the axis given by input 1 (a one-element integer tensor),
//! optionally `exclusive` (each output leaves out its own element) and `reverse`
//! (accumulating from the end).

use crate::ir::{DType, Facts, Tensor};

use super::super::elementwise::kernel::{array, data};
use super::super::elementwise::scalar::{Elem, Num, with_num};
use super::super::util::infer_same;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use super::arg::blocks;

#[derive(Debug)]
struct Cumulative {
    prod: bool,
    exclusive: bool,
    reverse: bool,
}

pub(super) fn build(ctx: &BuildCtx, prod: bool) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Cumulative {
        prod,
        exclusive: ctx.int_or("exclusive", 0)? != 0,
        reverse: ctx.int_or("reverse", 0)? != 0,
    }))
}

fn cumulate<T: Num>(x: &[T], outer: usize, n: usize, inner: usize, op: &Cumulative) -> Vec<T> {
    let (init, f): (T, fn(T, T) -> T) = if op.prod {
        (T::ONE, <T as Num>::mul)
    } else {
        (T::ZERO, <T as Num>::add)
    };
    let mut out = vec![init; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = init;
            for step in 0..n {
                let k = if op.reverse { n - 1 - step } else { step };
                let p = (o * n + k) * inner + i;
                if op.exclusive {
                    out[p] = acc;
                    acc = f(acc, x[p]);
                } else {
                    acc = f(acc, x[p]);
                    out[p] = acc;
                }
            }
        }
    }
    out
}

impl Op for Cumulative {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = facts(inputs, 0)?.dtype
            && d == DType::Bool
        {
            return Err(bad_dtype(0, d, "a numeric type"));
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, a) = (input(inputs, 0)?, input(inputs, 1)?);
        let axis = match a.to_i64_vec().as_deref() {
            Some([v]) => *v,
            _ => {
                return Err(OpError::Input {
                    index: 1,
                    msg: format!("axis must be one integer, got shape {:?}", a.shape()),
                });
            }
        };
        let (_, outer, n, inner) = blocks(x.shape(), axis, false)?;
        let y = with_num!(x.dtype(), T => {
            let v = T::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
            T::wrap(array(v.shape(), cumulate::<T>(&data(v), outer, n, inner, self))?)
        }, return Err(bad_dtype(0, x.dtype(), "a numeric type")));
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_and_reverse() {
        let x = [1.0f64, 2.0, 3.0, 4.0];
        let op = |prod, exclusive, reverse| Cumulative {
            prod,
            exclusive,
            reverse,
        };
        assert_eq!(
            cumulate(&x, 1, 4, 1, &op(false, false, false)),
            vec![1.0, 3.0, 6.0, 10.0]
        );
        assert_eq!(
            cumulate(&x, 1, 4, 1, &op(false, true, false)),
            vec![0.0, 1.0, 3.0, 6.0]
        );
        assert_eq!(
            cumulate(&x, 1, 4, 1, &op(false, true, true)),
            vec![9.0, 7.0, 4.0, 0.0]
        );
        assert_eq!(
            cumulate(&x, 1, 4, 1, &op(true, false, true)),
            vec![24.0, 24.0, 12.0, 4.0]
        );
        // Shape [2, 2], axis 0.
        assert_eq!(
            cumulate(&x, 1, 2, 2, &op(false, false, false)),
            vec![1.0, 2.0, 4.0, 6.0]
        );
    }
}
