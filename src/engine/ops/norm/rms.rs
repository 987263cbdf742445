//! RMSNormalization (opset 23): each row of the dims from `axis` on is divided by its
//! root mean square, `sqrt(mean(x²) + epsilon)`, then multiplied by `Scale`, which
//! broadcasts unidirectionally to X. The statistics are accumulated in f64 (`stash_type`
//! 1 asks for at least float32).

use crate::ir::shape::{broadcast_shapes, normalize_axis};
use crate::ir::{Facts, Tensor};

use super::super::binary::broadcast::zip2;
use super::super::elementwise::kernel::{array, data};
use super::super::elementwise::scalar::{Float, with_float};
use super::super::util::infer_same;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};

#[derive(Debug)]
struct RmsNorm {
    axis: i64,
    epsilon: f32,
}

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let (axis, epsilon) = super::layer::axis_and_epsilon(ctx)?;
    Ok(Box::new(RmsNorm { axis, epsilon }))
}

/// Scale must broadcast to X without changing X's shape.
fn check_scale(x: &[usize], s: &[usize]) -> OpResult<()> {
    if broadcast_shapes(x, s).as_deref() != Some(x) {
        return Err(OpError::Input {
            index: 1,
            msg: format!("shape {s:?} does not broadcast to {x:?}"),
        });
    }
    Ok(())
}

impl RmsNorm {
    fn axis(&self, rank: usize) -> OpResult<usize> {
        normalize_axis(self.axis, rank).ok_or_else(|| OpError::Attr {
            name: "axis".into(),
            msg: format!("{} is out of range for a tensor of rank {rank}", self.axis),
        })
    }

    fn run_typed<F: Float>(&self, x: &Tensor, scale: &Tensor) -> OpResult<Tensor> {
        let internal = || OpError::Invalid("internal: type dispatch".into());
        let xa = F::view(x).ok_or_else(internal)?;
        let sa = F::view(scale).ok_or_else(|| bad_dtype(1, scale.dtype(), x.dtype().name()))?;
        let shape = xa.shape().to_vec();
        check_scale(&shape, sa.shape())?;
        let axis = self.axis(shape.len())?;
        let d: usize = shape[axis..].iter().product();
        let xs = data(xa);
        let mut y = vec![F::ZERO; xs.len()];
        let eps = self.epsilon as f64;
        if d > 0 {
            for (o, row) in y.chunks_mut(d).zip(xs.chunks(d)) {
                let ms = row.iter().map(|&v| v.to_f64() * v.to_f64()).sum::<f64>() / d as f64;
                let r = F::from_f64(1.0 / (ms + eps).sqrt());
                for (o, &v) in o.iter_mut().zip(row) {
                    *o = v * r;
                }
            }
        }
        let ya = array(&shape, y)?;
        Ok(F::wrap(zip2(&ya, sa, |v: F, k: F| v * k)?))
    }
}

impl Op for RmsNorm {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (x, s) = (facts(inputs, 0)?, facts(inputs, 1)?);
        for (i, f) in [x, s].into_iter().enumerate() {
            if let Some(d) = f.dtype
                && !d.is_float()
            {
                return Err(bad_dtype(i, d, "float32 or float64"));
            }
        }
        if let (Some(dx), Some(ds)) = (x.dtype, s.dtype)
            && dx != ds
        {
            return Err(bad_dtype(1, ds, dx.name()));
        }
        if let (Some(xs), Some(ss)) = (&x.shape, &s.shape) {
            check_scale(xs, ss)?;
            self.axis(xs.len())?;
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, s) = (input(inputs, 0)?, input(inputs, 1)?);
        let y = with_float!(x.dtype(), F => self.run_typed::<F>(x, s)?,
            return Err(bad_dtype(0, x.dtype(), "float32 or float64")));
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_rows_by_their_rms_and_scales() {
        let x = Tensor::from_f32(&[2, 2], vec![3.0, 4.0, 1.0, -1.0]);
        let s = Tensor::from_f32(&[2], vec![1.0, 2.0]);
        let op = RmsNorm {
            axis: -1,
            epsilon: 0.0,
        };
        let y = op
            .run(&[Some(&x), Some(&s)])
            .unwrap()
            .remove(0)
            .to_f64_vec();
        let r = (12.5f64).sqrt();
        let want = [3.0 / r, 8.0 / r, 1.0, -2.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let bad = Tensor::from_f32(&[3], vec![1.0; 3]);
        assert!(op.run(&[Some(&x), Some(&bad)]).is_err());
    }
}
