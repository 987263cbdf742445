//! LayerNormalization (opset 17): each row of the dims from `axis` on is normalized by
//! its own mean and variance, then scaled and shifted by `Scale` and optional `B`, which
//! broadcast unidirectionally to X. Optional outputs: `Mean` and `InvStdDev`, shaped
//! like X with the normalized dims set to 1, in float32 (`stash_type` 1, the only
//! stash type among our element types).

use crate::ir::shape::{broadcast_shapes, normalize_axis};
use crate::ir::{DType, Facts, Tensor};

use super::super::binary::broadcast::zip2;
use super::super::elementwise::kernel::{array, data, parallel};
use super::super::elementwise::scalar::{Float, with_float};
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use super::{is_float, moments};
use rayon::prelude::*;

/// An output row and its input row.
type Row<'a, F> = (&'a mut [F], &'a [F]);

#[derive(Debug)]
struct LayerNorm {
    axis: i64,
    epsilon: f32,
}

/// The attributes LayerNormalization and RMSNormalization share: `axis` (default -1) and
/// `epsilon` (default 1e-5); `stash_type` must be 1 (float32), the only one supported.
pub(super) fn axis_and_epsilon(ctx: &BuildCtx) -> OpResult<(i64, f32)> {
    let stash = ctx.int_or("stash_type", 1)?;
    if stash != 1 {
        return Err(OpError::Attr {
            name: "stash_type".into(),
            msg: format!("{stash} is not supported (only 1, float32)"),
        });
    }
    Ok((ctx.int_or("axis", -1)?, ctx.float_or("epsilon", 1e-5)?))
}

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let (axis, epsilon) = axis_and_epsilon(ctx)?;
    Ok(Box::new(LayerNorm { axis, epsilon }))
}

impl LayerNorm {
    fn axis(&self, rank: usize) -> OpResult<usize> {
        normalize_axis(self.axis, rank).ok_or_else(|| OpError::Attr {
            name: "axis".into(),
            msg: format!("{} is out of range for a tensor of rank {rank}", self.axis),
        })
    }

    fn run_typed<F: Float>(&self, x: &Tensor, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let xa = F::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
        let shape = xa.shape().to_vec();
        let axis = self.axis(shape.len())?;
        let d: usize = shape[axis..].iter().product();
        let params: Vec<Option<&ndarray::ArrayD<F>>> = [1, 2]
            .iter()
            .map(|&i| match inputs.get(i).copied().flatten() {
                None if i == 2 => Ok(None),
                t => {
                    let t = t.ok_or_else(|| OpError::Input {
                        index: i,
                        msg: "missing".into(),
                    })?;
                    check_param(i, &shape, t.shape())?;
                    F::view(t)
                        .map(Some)
                        .ok_or_else(|| bad_dtype(i, t.dtype(), x.dtype().name()))
                }
            })
            .collect::<OpResult<_>>()?;
        // Scale and B apply per element of a row when they only span the normalized dims.
        let per_row =
            |p: Option<&ndarray::ArrayD<F>>| p.is_none_or(|p| spans_row(&shape, axis, p.shape()));
        let fused = params.iter().all(|p| per_row(*p));
        let xs = data(xa);
        let rows: usize = shape[..axis].iter().product();
        let mut y = vec![F::ZERO; xs.len()];
        // Rows of no elements (d = 0) keep NaN statistics.
        let mut mean = vec![f32::NAN; rows];
        let mut inv = vec![f32::NAN; rows];
        let eps = self.epsilon as f64;
        let (scale, bias) = (params[0].map(|p| data(p)), params[1].map(|p| data(p)));
        let body = |((o, row), (m, s)): (Row<F>, (&mut f32, &mut f32))| {
            let (mu, var) = moments(row);
            let r = 1.0 / (var + eps).sqrt();
            *m = mu as f32;
            *s = r as f32;
            let (mu, r) = (F::from_f64(mu), F::from_f64(r));
            match (fused, &scale, &bias) {
                (true, Some(sc), Some(b)) => {
                    for (((o, &v), &k), &b) in o.iter_mut().zip(row).zip(sc.iter()).zip(b.iter()) {
                        *o = (v - mu) * r * k + b;
                    }
                }
                (true, Some(sc), None) => {
                    for ((o, &v), &k) in o.iter_mut().zip(row).zip(sc.iter()) {
                        *o = (v - mu) * r * k;
                    }
                }
                _ => {
                    for (o, &v) in o.iter_mut().zip(row) {
                        *o = (v - mu) * r;
                    }
                }
            }
        };
        if d > 0 {
            if parallel(xs.len()) && rows > 1 {
                y.par_chunks_mut(d)
                    .zip(xs.par_chunks(d))
                    .zip(mean.par_iter_mut().zip(inv.par_iter_mut()))
                    .for_each(body);
            } else {
                y.chunks_mut(d)
                    .zip(xs.chunks(d))
                    .zip(mean.iter_mut().zip(inv.iter_mut()))
                    .for_each(body);
            }
        }
        let mut ya = array(&shape, y)?;
        if !fused {
            if let Some(sc) = params[0] {
                ya = zip2(&ya, sc, |v: F, k: F| v * k)?;
            }
            if let Some(b) = params[1] {
                ya = zip2(&ya, b, |v: F, k: F| v + k)?;
            }
        }
        let stat_shape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, &s)| if i < axis { s } else { 1 })
            .collect();
        Ok(vec![
            F::wrap(ya),
            Tensor::F32(array(&stat_shape, mean)?),
            Tensor::F32(array(&stat_shape, inv)?),
        ])
    }
}

/// Whether `p`, aligned to the right of `x`, is 1 before `axis` and equal to `x` after.
fn spans_row(x: &[usize], axis: usize, p: &[usize]) -> bool {
    let Some(pad) = x.len().checked_sub(p.len()) else {
        return false;
    };
    (0..x.len()).all(|i| {
        let pd = if i < pad { 1 } else { p[i - pad] };
        if i < axis { pd == 1 } else { pd == x[i] }
    })
}

/// Scale or B must broadcast to X without changing X's shape.
fn check_param(i: usize, x: &[usize], p: &[usize]) -> OpResult<()> {
    if broadcast_shapes(x, p).as_deref() != Some(x) {
        return Err(OpError::Input {
            index: i,
            msg: format!("shape {p:?} does not broadcast to {x:?}"),
        });
    }
    Ok(())
}

impl Op for LayerNorm {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        for i in 0..3 {
            let Some(Some(f)) = inputs.get(i) else {
                continue;
            };
            if !is_float(f.dtype) {
                return Err(bad_dtype(
                    i,
                    f.dtype.unwrap_or(DType::Bool),
                    "float32 or float64",
                ));
            }
            if let (Some(xs), Some(ps)) = (&x.shape, &f.shape) {
                check_param(i, xs, ps)?;
            }
        }
        let stat = match &x.shape {
            Some(s) => {
                let axis = self.axis(s.len())?;
                Some(
                    s.iter()
                        .enumerate()
                        .map(|(i, &d)| if i < axis { d } else { 1 })
                        .collect(),
                )
            }
            None => None,
        };
        Ok(vec![
            Facts {
                dtype: x.dtype,
                shape: x.shape.clone(),
                value: None,
            },
            Facts {
                dtype: Some(DType::F32),
                shape: stat.clone(),
                value: None,
            },
            Facts {
                dtype: Some(DType::F32),
                shape: stat,
                value: None,
            },
        ])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        with_float!(x.dtype(), F => self.run_typed::<F>(x, inputs), Err(bad_dtype(0, x.dtype(), "float32 or float64")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_rows_and_broadcasts_parameters() {
        let x = Tensor::from_f32(&[2, 2], vec![1.0, 3.0, 2.0, 6.0]);
        let scale = Tensor::from_f32(&[2], vec![1.0, 2.0]);
        let bias = Tensor::from_f32(&[2, 1], vec![0.0, 10.0]);
        let op = LayerNorm {
            axis: -1,
            epsilon: 0.0,
        };
        let out = op.run(&[Some(&x), Some(&scale), Some(&bias)]).unwrap();
        assert_eq!(out[0].to_f64_vec(), vec![-1.0, 2.0, 9.0, 12.0]);
        assert_eq!(out[1].to_f64_vec(), vec![2.0, 4.0]);
        assert_eq!(out[2].to_f64_vec(), vec![1.0, 0.5]);
        assert_eq!(out[1].shape(), &[2, 1]);
        let bad = Tensor::from_f32(&[3], vec![1.0; 3]);
        assert!(op.run(&[Some(&x), Some(&bad), None]).is_err());
        assert!(spans_row(&[4, 2, 3], 1, &[1, 2, 3]) && spans_row(&[4, 2, 3], 1, &[2, 3]));
        assert!(!spans_row(&[3, 3], 1, &[3, 1]) && !spans_row(&[4, 2, 3], 1, &[3]));
    }
}
