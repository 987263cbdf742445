//! Operators: loss functions. NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss
//! (NLL of the log-softmax over dim 1, optionally also returning the log-probabilities),
//! as the ONNX reference computes them.
//!
//! Input `x` has shape [N, C, d1, …], the integer target [N, d1, …]. Per position the
//! loss is `−x[n, t, d] · w[t]` (`w` = 1 without weights); positions whose target is
//! `ignore_index` contribute 0 and weigh 0. `none` returns the per-position losses,
//! `sum` their sum, `mean` their sum divided by the sum of the weights of the positions
//! (NaN when every position is ignored). Sums are accumulated in f64.

use crate::ir::{DType, Facts, Tensor};

use super::elementwise::kernel::{array, data};
use super::elementwise::scalar::{Elem, Float, with_float};
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("NegativeLogLikelihoodLoss", |c| build(c, false)),
    ("SoftmaxCrossEntropyLoss", |c| build(c, true)),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reduction {
    None,
    Sum,
    Mean,
}

#[derive(Debug)]
struct Loss {
    softmax: bool,
    reduction: Reduction,
    ignore_index: Option<i64>,
}

fn build(ctx: &BuildCtx, softmax: bool) -> OpResult<Box<dyn Op>> {
    let reduction = match ctx
        .choice("reduction", "mean", &["none", "sum", "mean"])?
        .as_str()
    {
        "none" => Reduction::None,
        "sum" => Reduction::Sum,
        _ => Reduction::Mean,
    };
    Ok(Box::new(Loss {
        softmax,
        reduction,
        ignore_index: ctx.int("ignore_index")?,
    }))
}

/// (N, C, D) of an input of `shape` (D = the product of the trailing dims).
fn dims(shape: &[usize]) -> OpResult<(usize, usize, usize)> {
    match shape {
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
        _ => Err(OpError::Input {
            index: 0,
            msg: format!("expected rank 2 or more, got shape {shape:?}"),
        }),
    }
}

impl Loss {
    fn out_shape(&self, x: &[usize], t: &[usize]) -> OpResult<Vec<usize>> {
        let want: Vec<usize> = x
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 1)
            .map(|(_, &d)| d)
            .collect();
        if x.len() < 2 || t != want.as_slice() {
            return Err(OpError::Input {
                index: 1,
                msg: format!("target of shape {t:?} for input of shape {x:?}"),
            });
        }
        Ok(if self.reduction == Reduction::None {
            t.to_vec()
        } else {
            vec![]
        })
    }

    /// The losses (reduced as asked) from log-probabilities `lp` of shape (N, C, D).
    fn loss<F: Float>(
        &self,
        lp: &[F],
        (n, c, d): (usize, usize, usize),
        t: &[i64],
        w: Option<&[F]>,
    ) -> OpResult<Vec<F>> {
        let mut per = vec![F::ZERO; n * d];
        let (mut total, mut weights) = (0.0f64, 0.0f64);
        for (p, &k) in t.iter().enumerate() {
            if Some(k) == self.ignore_index {
                continue;
            }
            let j = usize::try_from(k)
                .ok()
                .filter(|&j| j < c)
                .ok_or_else(|| OpError::Input {
                    index: 1,
                    msg: format!("target {k} is out of range for {c} classes"),
                })?;
            let wt = w.map_or(1.0, |w| w[j].to_f64());
            let (b, i) = (p / d, p % d);
            let l = -lp[(b * c + j) * d + i].to_f64() * wt;
            per[p] = F::from_f64(l);
            total += l;
            weights += wt;
        }
        Ok(match self.reduction {
            Reduction::None => per,
            Reduction::Sum => vec![F::from_f64(total)],
            Reduction::Mean => vec![F::from_f64(total / weights)],
        })
    }
}

/// The array of input `i` as `F`, the type of `x`.
fn typed<'a, F: Elem>(t: &'a Tensor, i: usize, x: &Tensor) -> OpResult<&'a ndarray::ArrayD<F>> {
    F::view(t).ok_or_else(|| bad_dtype(i, t.dtype(), x.dtype().name()))
}

/// Log-softmax over dim 1 of (N, C, D) data.
fn log_softmax<F: Float>(x: &[F], (n, c, d): (usize, usize, usize)) -> Vec<F> {
    let mut out = vec![F::ZERO; x.len()];
    for b in 0..n {
        for i in 0..d {
            let at = |j: usize| (b * c + j) * d + i;
            let m = (0..c)
                .map(|j| x[at(j)].to_f64())
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..c).map(|j| (x[at(j)].to_f64() - m).exp()).sum();
            let shift = m + s.ln();
            for j in 0..c {
                out[at(j)] = F::from_f64(x[at(j)].to_f64() - shift);
            }
        }
    }
    out
}

impl Op for Loss {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (x, t) = (facts(inputs, 0)?, facts(inputs, 1)?);
        if let Some(dt) = x.dtype
            && !dt.is_float()
        {
            return Err(bad_dtype(0, dt, "float32 or float64"));
        }
        if let Some(dt) = t.dtype
            && !matches!(dt, DType::I32 | DType::I64)
        {
            return Err(bad_dtype(1, dt, "int32 or int64"));
        }
        let shape = match (&x.shape, &t.shape) {
            (Some(xs), Some(ts)) => Some(self.out_shape(xs, ts)?),
            _ => None,
        };
        let mut out = vec![Facts {
            dtype: x.dtype,
            shape,
            value: None,
        }];
        if self.softmax {
            out.push(Facts {
                dtype: x.dtype,
                shape: x.shape.clone(),
                value: None,
            });
        }
        Ok(out)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, t) = (input(inputs, 0)?, input(inputs, 1)?);
        let shape = self.out_shape(x.shape(), t.shape())?;
        let dims = dims(x.shape())?;
        let target = t
            .to_i64_vec()
            .ok_or_else(|| bad_dtype(1, t.dtype(), "int32 or int64"))?;
        with_float!(x.dtype(), F => {
            let xs = data(typed::<F>(x, 0, x)?);
            let w = inputs.get(2).copied().flatten().map(|w| typed::<F>(w, 2, x)).transpose()?;
            let w = w.map(|w| data(w));
            if let Some(w) = &w && w.len() != dims.1 {
                return Err(OpError::Input { index: 2, msg: format!("{} weights for {} classes", w.len(), dims.1) });
            }
            let lp = if self.softmax { log_softmax(&xs, dims) } else { xs.into_owned() };
            let loss = self.loss(&lp, dims, &target, w.as_deref())?;
            let mut out = vec![F::wrap(array(&shape, loss)?)];
            if self.softmax {
                out.push(F::wrap(array(x.shape(), lp)?));
            }
            Ok(out)
        }, Err(bad_dtype(0, x.dtype(), "float32 or float64")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_reductions_weights_and_ignored_positions() {
        let x = Tensor::from_f32(&[2, 3], vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
        let t = Tensor::from_i64(&[2], vec![2, 0]);
        let w = Tensor::from_f32(&[3], vec![1.0, 1.0, 0.5]);
        let op = |reduction, ignore_index| Loss {
            softmax: false,
            reduction,
            ignore_index,
        };
        let y = op(Reduction::None, None)
            .run(&[Some(&x), Some(&t), None])
            .unwrap();
        assert_eq!(y[0], Tensor::from_f32(&[2], vec![3.0, 4.0]));
        let y = op(Reduction::Mean, None)
            .run(&[Some(&x), Some(&t), Some(&w)])
            .unwrap();
        assert_eq!(y[0], Tensor::from_f32(&[], vec![5.5 / 1.5]));
        let y = op(Reduction::Sum, Some(0))
            .run(&[Some(&x), Some(&t), None])
            .unwrap();
        assert_eq!(y[0], Tensor::from_f32(&[], vec![3.0]));
        let bad = Tensor::from_i64(&[2], vec![3, 0]);
        assert!(
            op(Reduction::Sum, None)
                .run(&[Some(&x), Some(&bad), None])
                .is_err()
        );
    }

    #[test]
    fn softmax_cross_entropy_returns_log_probabilities() {
        let x = Tensor::from_f32(&[1, 2], vec![0.0, 0.0]);
        let t = Tensor::from_i64(&[1], vec![1]);
        let op = Loss {
            softmax: true,
            reduction: Reduction::Mean,
            ignore_index: None,
        };
        let y = op.run(&[Some(&x), Some(&t)]).unwrap();
        let l2 = 2f32.ln();
        assert_eq!(y[0], Tensor::from_f32(&[], vec![l2]));
        assert_eq!(y[1], Tensor::from_f32(&[1, 2], vec![-l2, -l2]));
    }
}
