//! Softmax and LogSoftmax, numerically stable (the maximum is subtracted first).
//!
//! Before opset 13 the input is coerced to 2-D at `axis` (default 1) and each row of
//! the flattened trailing dims is normalized; from 13 `axis` (default −1) names the
//! single dim normalized over. Both become (outer, n, inner) blocks here.

use crate::ir::shape::normalize_axis;
use crate::ir::{Facts, Tensor};

use super::super::elementwise::kernel::{array, data, parallel};
use super::super::elementwise::scalar::{Elem, Float, with_float};
use super::super::util::infer_same;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use super::{accumulate, fold_slice};
use rayon::prelude::*;

#[derive(Debug)]
struct Softmax {
    axis: i64,
    /// Opset < 13: normalize over all dims from `axis` on.
    flatten: bool,
    log: bool,
}

pub(super) fn build(ctx: &BuildCtx, log: bool) -> OpResult<Box<dyn Op>> {
    let flatten = ctx.opset < 13;
    let axis = ctx.int_or("axis", if flatten { 1 } else { -1 })?;
    Ok(Box::new(Softmax { axis, flatten, log }))
}

impl Softmax {
    /// (outer, n, inner) for an input of `shape`.
    fn split(&self, shape: &[usize]) -> OpResult<(usize, usize, usize)> {
        let rank = shape.len();
        let a = normalize_axis(self.axis, rank).ok_or_else(|| OpError::Attr {
            name: "axis".into(),
            msg: format!("{} is out of range for a tensor of rank {rank}", self.axis),
        })?;
        let outer = shape[..a].iter().product();
        Ok(if self.flatten {
            (outer, shape[a..].iter().product(), 1)
        } else {
            (outer, shape[a], shape[a + 1..].iter().product())
        })
    }
}

impl Op for Softmax {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !d.is_float()
        {
            return Err(bad_dtype(0, d, "float32 or float64"));
        }
        if let Some(s) = &x.shape {
            self.split(s)?;
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (_, n, inner) = self.split(x.shape())?;
        let y = with_float!(x.dtype(), F => {
            let a = F::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
            F::wrap(array(a.shape(), softmax::<F>(&data(a), n, inner, self.log))?)
        }, return Err(bad_dtype(0, x.dtype(), "float32 or float64")));
        Ok(vec![y])
    }
}

fn softmax<F: Float>(x: &[F], n: usize, inner: usize, log: bool) -> Vec<F> {
    let mut out = vec![F::ZERO; x.len()];
    let block = n * inner;
    if block == 0 {
        return out;
    }
    let body = |(o, xb): (&mut [F], &[F])| {
        if inner == 1 {
            row(o, xb, log)
        } else {
            columns(o, xb, inner, log)
        }
    };
    if parallel(x.len()) && x.len() > block {
        out.par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .for_each(body);
    } else {
        out.chunks_mut(block).zip(x.chunks(block)).for_each(body);
    }
    out
}

/// One contiguous row.
fn row<F: Float>(o: &mut [F], x: &[F], log: bool) {
    let m = fold_slice(x, F::LOWEST, |a: F, b: F| a.max_nan(b));
    for (o, &v) in o.iter_mut().zip(x) {
        *o = (v - m).exp();
    }
    let sum = fold_slice(o, F::ZERO, |a: F, b: F| a + b);
    if log {
        let shift = m + sum.ln();
        for (o, &v) in o.iter_mut().zip(x) {
            *o = v - shift;
        }
    } else {
        let r = F::ONE / sum;
        for o in o.iter_mut() {
            *o = *o * r;
        }
    }
}

/// A block of `n` rows of `inner` columns, normalized down each column.
fn columns<F: Float>(o: &mut [F], x: &[F], inner: usize, log: bool) {
    let mut m = vec![F::LOWEST; inner];
    for r in x.chunks(inner) {
        accumulate(&mut m, r, |a: F, b: F| a.max_nan(b));
    }
    let mut sum = vec![F::ZERO; inner];
    for (orow, xrow) in o.chunks_mut(inner).zip(x.chunks(inner)) {
        for (((o, &v), &m), s) in orow.iter_mut().zip(xrow).zip(&m).zip(sum.iter_mut()) {
            let e = (v - m).exp();
            *o = e;
            *s = *s + e;
        }
    }
    if log {
        let shift: Vec<F> = m.iter().zip(&sum).map(|(&m, &s)| m + s.ln()).collect();
        for (orow, xrow) in o.chunks_mut(inner).zip(x.chunks(inner)) {
            for ((o, &v), &s) in orow.iter_mut().zip(xrow).zip(&shift) {
                *o = v - s;
            }
        }
    } else {
        let r: Vec<F> = sum.iter().map(|&s| F::ONE / s).collect();
        for orow in o.chunks_mut(inner) {
            for (o, &r) in orow.iter_mut().zip(&r) {
                *o = *o * r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f64]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = x.iter().map(|v| (v - m).exp()).sum();
        x.iter().map(|v| (v - m).exp() / s).collect()
    }

    #[test]
    fn rows_and_columns_agree_with_reference() {
        // [2, 3, 4] over axis 1 (opset 13): columns of length 3.
        let x: Vec<f32> = (0..24).map(|v| (v as f32 * 0.37).sin() * 1000.0).collect();
        let y = softmax::<f32>(&x, 3, 4, false);
        for b in 0..2 {
            for c in 0..4 {
                let col: Vec<f64> = (0..3).map(|r| x[b * 12 + r * 4 + c] as f64).collect();
                let want = reference(&col);
                for r in 0..3 {
                    assert!((y[b * 12 + r * 4 + c] as f64 - want[r]).abs() < 1e-6);
                }
            }
        }
        let ly = softmax::<f32>(&x, 12, 1, true);
        let row: Vec<f64> = x[12..].iter().map(|&v| v as f64).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ls = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for (g, v) in ly[12..].iter().zip(&row) {
            assert!((*g as f64 - (v - ls)).abs() < 1e-3 * (v - ls).abs().max(1.0));
        }
    }

    #[test]
    fn axis_semantics_by_opset() {
        let old = Softmax {
            axis: 1,
            flatten: true,
            log: false,
        };
        assert_eq!(old.split(&[2, 3, 4]).unwrap(), (2, 12, 1));
        let new = Softmax {
            axis: 1,
            flatten: false,
            log: false,
        };
        assert_eq!(new.split(&[2, 3, 4]).unwrap(), (2, 3, 4));
        assert!(new.split(&[]).is_err());
        assert!(
            Softmax {
                axis: 3,
                flatten: false,
                log: false
            }
            .split(&[2, 3, 4])
            .is_err()
        );
    }
}
