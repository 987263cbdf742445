//! Operators: BatchNormalization, InstanceNormalization, LayerNormalization, LRN.
//!
//! Per-channel normalizations reduce to y = x·a[c] + b[c] over [N, C, spatial] planes
//! (`affine`). Statistics (training-mode BatchNormalization, InstanceNormalization,
//! LayerNormalization) are accumulated in f64, two-pass.

mod group;
mod layer;
mod lrn;
mod rms;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::ir::{DType, Facts, Tensor};

use super::elementwise::kernel::{PAR_CHUNK, array, build_vec, data, parallel, wide_on};
use super::elementwise::scalar::{Float, with_float};
use super::{BuildCtx, BuildFn, FuseInput, Op, OpError, OpResult, bad_dtype, facts, input};
use crate::engine::kernels::epilogue::Step;

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("BatchNormalization", build_batchnorm),
    ("InstanceNormalization", build_instancenorm),
    ("LayerNormalization", layer::build),
    ("LRN", lrn::build),
    ("RMSNormalization", rms::build),
    ("LpNormalization", group::build_lp),
    ("MeanVarianceNormalization", group::build_mvn),
    ("GroupNormalization", group::build_group),
];

/// y = x·a[c] + b[c] for x of shape [N, C, inner...] (flattened), `a` and `b` of length C.
fn affine<F: Float>(x: &[F], channels: usize, inner: usize, a: &[F], b: &[F]) -> Vec<F> {
    let isa = crate::engine::kernels::Isa::current();
    if inner == 0 || channels == 0 {
        return Vec::new();
    }
    let body = |(i, (o, xs)): (usize, (&mut [MaybeUninit<F>], &[F]))| {
        let c = i % channels;
        let (a, b) = (a[c], b[c]);
        wide_on(isa, || {
            for (o, &v) in o.iter_mut().zip(xs) {
                o.write(v * a + b);
            }
        })
    };
    let fill = |out: &mut [MaybeUninit<F>]| {
        if parallel(x.len()) {
            let min = PAR_CHUNK.div_ceil(inner);
            out.par_chunks_mut(inner)
                .zip(x.par_chunks(inner))
                .with_min_len(min)
                .enumerate()
                .for_each(body);
        } else {
            out.chunks_mut(inner)
                .zip(x.chunks(inner))
                .enumerate()
                .for_each(body);
        }
    };
    // SAFETY: the output rows pair up with input rows of the same length and cover all.
    unsafe { build_vec(x.len(), fill) }
}

/// Mean and population variance of a slice, in f64.
fn moments<F: Float>(s: &[F]) -> (f64, f64) {
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = s.len() as f64;
    let mean = s.iter().map(|v| v.to_f64()).sum::<f64>() / n;
    let var = s.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

/// (N, C, inner) of an input with at least 2 dims.
fn nc_split(shape: &[usize]) -> OpResult<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(OpError::Input {
            index: 0,
            msg: format!("expected at least 2 dims [N, C, ...], got {shape:?}"),
        });
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// A per-channel parameter: float of the input's precision, `len` elements.
fn param<F: Float>(inputs: &[Option<&Tensor>], i: usize, len: usize) -> OpResult<Vec<F>> {
    let t = input(inputs, i)?;
    if !t.dtype().is_float() {
        return Err(bad_dtype(i, t.dtype(), "float32 or float64"));
    }
    if t.len() != len {
        return Err(OpError::Input {
            index: i,
            msg: format!("expected {len} values, got shape {:?}", t.shape()),
        });
    }
    Ok(t.to_f64_vec().into_iter().map(F::from_f64).collect())
}

fn check_params(
    inputs: &[Option<&Facts>],
    range: std::ops::Range<usize>,
    len: Option<usize>,
) -> OpResult<()> {
    for i in range {
        let f = facts(inputs, i)?;
        if let Some(d) = f.dtype
            && !d.is_float()
        {
            return Err(bad_dtype(i, d, "float32 or float64"));
        }
        if let (Some(s), Some(len)) = (&f.shape, len)
            && s.iter().product::<usize>() != len
        {
            return Err(OpError::Input {
                index: i,
                msg: format!("expected {len} values, got shape {s:?}"),
            });
        }
    }
    Ok(())
}

#[derive(Debug)]
struct BatchNorm {
    epsilon: f32,
    momentum: f32,
    /// Normalize with the batch's statistics and output the updated running ones.
    training: bool,
    /// Opset < 14 training also outputs the batch mean and variance.
    saved_outputs: bool,
    /// `spatial = 0` (opsets 7–8): one parameter per element of a sample, not per channel.
    per_element: bool,
}

fn build_batchnorm(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let extra_outputs = ctx.node.output(1).is_some();
    let training = if ctx.opset >= 14 {
        ctx.int_or("training_mode", 0)? != 0
    } else {
        extra_outputs
    };
    Ok(Box::new(BatchNorm {
        epsilon: ctx.float_or("epsilon", 1e-5)?,
        momentum: ctx.float_or("momentum", 0.9)?,
        training,
        saved_outputs: ctx.opset < 14,
        per_element: ctx.opset < 9 && ctx.int_or("spatial", 1)? == 0,
    }))
}

impl BatchNorm {
    /// (N, units, inner): units are channels, or all elements of a sample with spatial = 0.
    fn split(&self, shape: &[usize]) -> OpResult<(usize, usize, usize)> {
        let (n, c, inner) = nc_split(shape)?;
        Ok(if self.per_element {
            (n, c * inner, 1)
        } else {
            (n, c, inner)
        })
    }

    fn run_typed<F: Float>(&self, x: &Tensor, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let xa = F::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
        let (n, units, inner) = self.split(xa.shape())?;
        let xs = data(xa);
        let [scale, bias, mean, var] = [1, 2, 3, 4].map(|i| param::<F>(inputs, i, units));
        let (scale, bias, mean, var) = (scale?, bias?, mean?, var?);
        let eps = self.epsilon as f64;
        let (use_mean, use_var) = if self.training {
            batch_moments(&xs, n, units, inner)
        } else {
            (
                mean.iter().map(|v| v.to_f64()).collect(),
                var.iter().map(|v| v.to_f64()).collect(),
            )
        };
        let (a, b) = coefficients(&scale, &bias, &use_mean, &use_var, eps);
        let y = F::wrap(array(xa.shape(), affine(&xs, units, inner, &a, &b))?);
        if !self.training {
            return Ok(vec![y]);
        }
        let m = self.momentum as f64;
        let running = |old: &[F], batch: &[f64]| -> OpResult<Tensor> {
            let v = old
                .iter()
                .zip(batch)
                .map(|(o, b)| F::from_f64(o.to_f64() * m + b * (1.0 - m)))
                .collect();
            Ok(F::wrap(array(&[units], v)?))
        };
        let mut out = vec![y, running(&mean, &use_mean)?, running(&var, &use_var)?];
        if self.saved_outputs {
            for s in [&use_mean, &use_var] {
                out.push(F::wrap(array(
                    &[units],
                    s.iter().map(|&v| F::from_f64(v)).collect(),
                )?));
            }
        }
        Ok(out)
    }
}

/// `y = x·a + b` for each unit: `a = scale / √(var + ε)`, `b = bias − mean·a`.
fn coefficients<F: Float>(
    scale: &[F],
    bias: &[F],
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> (Vec<F>, Vec<F>) {
    let a: Vec<F> = (0..scale.len())
        .map(|c| F::from_f64(scale[c].to_f64() / (var[c] + eps).sqrt()))
        .collect();
    let b: Vec<F> = (0..scale.len())
        .map(|c| F::from_f64(bias[c].to_f64() - mean[c] * a[c].to_f64()))
        .collect();
    (a, b)
}

/// Per channel: mean and population variance over the batch and spatial dims.
fn batch_moments<F: Float>(x: &[F], n: usize, c: usize, inner: usize) -> (Vec<f64>, Vec<f64>) {
    let count = (n * inner) as f64;
    let plane = |b: usize, ch: usize| &x[(b * c + ch) * inner..(b * c + ch + 1) * inner];
    let mean: Vec<f64> = (0..c)
        .map(|ch| {
            (0..n)
                .flat_map(|b| plane(b, ch))
                .map(|v| v.to_f64())
                .sum::<f64>()
                / count
        })
        .collect();
    let var = (0..c)
        .map(|ch| {
            (0..n)
                .flat_map(|b| plane(b, ch))
                .map(|v| (v.to_f64() - mean[ch]).powi(2))
                .sum::<f64>()
                / count
        })
        .collect();
    (mean, var)
}

impl Op for BatchNorm {
    fn epilogue_step(&self, inputs: &[FuseInput], shape: &[usize]) -> Option<Step> {
        if self.training || self.per_element || shape.len() < 2 || inputs.len() != 5 {
            return None;
        }
        let units = shape[1];
        let param = |i: usize| match inputs[i] {
            FuseInput::Const(Tensor::F32(a)) if a.len() == units => {
                Some(a.iter().copied().collect::<Vec<f32>>())
            }
            _ => None,
        };
        if !matches!(inputs[0], FuseInput::Running) {
            return None;
        }
        let (scale, bias, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
        let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (a, b) = coefficients(
            &scale,
            &bias,
            &wide(&mean),
            &wide(&var),
            self.epsilon as f64,
        );
        Some(Step::Affine {
            a: a.into(),
            b: b.into(),
        })
    }

    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !d.is_float()
        {
            return Err(bad_dtype(0, d, "float32 or float64"));
        }
        let units = x
            .shape
            .as_deref()
            .map(|s| self.split(s))
            .transpose()?
            .map(|(_, u, _)| u);
        check_params(inputs, 1..5, units)?;
        let stat = Facts {
            dtype: x.dtype,
            shape: units.map(|u| vec![u]),
            value: None,
        };
        let mut out = vec![Facts {
            dtype: x.dtype,
            shape: x.shape.clone(),
            value: None,
        }];
        if self.training {
            out.extend(std::iter::repeat_n(
                stat,
                if self.saved_outputs { 4 } else { 2 },
            ));
        }
        Ok(out)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        with_float!(x.dtype(), F => self.run_typed::<F>(x, inputs), Err(bad_dtype(0, x.dtype(), "float32 or float64")))
    }
}

/// InstanceNormalization: each (sample, channel) plane normalized by its own moments.
#[derive(Debug)]
struct InstanceNorm {
    epsilon: f32,
}

fn build_instancenorm(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(InstanceNorm {
        epsilon: ctx.float_or("epsilon", 1e-5)?,
    }))
}

impl InstanceNorm {
    fn run_typed<F: Float>(&self, x: &Tensor, inputs: &[Option<&Tensor>]) -> OpResult<Tensor> {
        let xa = F::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
        let (n, c, inner) = nc_split(xa.shape())?;
        let (scale, bias) = (param::<F>(inputs, 1, c)?, param::<F>(inputs, 2, c)?);
        let xs = data(xa);
        let eps = self.epsilon as f64;
        let mut out = vec![F::ZERO; xs.len()];
        if inner > 0 {
            let body = |(i, (o, p)): (usize, (&mut [F], &[F]))| {
                let (mean, var) = moments(p);
                let a = scale[i % c].to_f64() / (var + eps).sqrt();
                let b = bias[i % c].to_f64() - mean * a;
                let (a, b) = (F::from_f64(a), F::from_f64(b));
                for (o, &v) in o.iter_mut().zip(p) {
                    *o = v * a + b;
                }
            };
            if parallel(xs.len()) && n * c > 1 {
                out.par_chunks_mut(inner)
                    .zip(xs.par_chunks(inner))
                    .enumerate()
                    .for_each(body);
            } else {
                out.chunks_mut(inner)
                    .zip(xs.chunks(inner))
                    .enumerate()
                    .for_each(body);
            }
        }
        Ok(F::wrap(array(xa.shape(), out)?))
    }
}

impl Op for InstanceNorm {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !d.is_float()
        {
            return Err(bad_dtype(0, d, "float32 or float64"));
        }
        let c = x
            .shape
            .as_deref()
            .map(nc_split)
            .transpose()?
            .map(|(_, c, _)| c);
        check_params(inputs, 1..3, c)?;
        Ok(vec![Facts {
            dtype: x.dtype,
            shape: x.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let y = with_float!(x.dtype(), F => self.run_typed::<F>(x, inputs)?, {
            return Err(bad_dtype(0, x.dtype(), "float32 or float64"))
        });
        Ok(vec![y])
    }
}

/// Whether a dtype is one the normalizations compute in.
fn is_float(d: Option<DType>) -> bool {
    d.is_none_or(|d| d.is_float())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32(shape, v.to_vec())
    }

    #[test]
    fn batchnorm_inference_and_training() {
        let x = t(&[2, 2, 1, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let (s, b) = (t(&[2], &[1.0, 2.0]), t(&[2], &[0.0, 1.0]));
        let (m, v) = (t(&[2], &[1.0, 2.0]), t(&[2], &[4.0, 1.0]));
        let ins = [Some(&x), Some(&s), Some(&b), Some(&m), Some(&v)];
        let inf = BatchNorm {
            epsilon: 0.0,
            momentum: 0.9,
            training: false,
            saved_outputs: false,
            per_element: false,
        };
        let y = inf.run(&ins).unwrap().remove(0).to_f64_vec();
        assert_eq!(y, vec![0.0, 0.5, 3.0, 5.0, 2.0, 2.5, 11.0, 13.0]);
        let tr = BatchNorm {
            training: true,
            ..inf
        };
        let out = tr.run(&ins).unwrap();
        // Channel 0 holds 1, 2, 5, 6: mean 3.5, variance 4.25.
        let rm = out[1].to_f64_vec();
        let rv = out[2].to_f64_vec();
        assert!((rm[0] - (0.9 + 0.35)).abs() < 1e-6 && (rv[0] - (3.6 + 0.425)).abs() < 1e-6);
        assert!((out[0].to_f64_vec()[0] - (1.0 - 3.5) / 4.25f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn instancenorm_normalizes_each_plane() {
        let x = t(&[1, 2, 3], &[1.0, 2.0, 3.0, 10.0, 10.0, 10.0]);
        let (s, b) = (t(&[2], &[2.0, 1.0]), t(&[2], &[1.0, -1.0]));
        let y = InstanceNorm { epsilon: 0.0 }
            .run(&[Some(&x), Some(&s), Some(&b)])
            .unwrap()
            .remove(0);
        let r = (1.5f64).sqrt();
        let want = [1.0 - 2.0 * r, 1.0, 1.0 + 2.0 * r];
        for (g, w) in y.to_f64_vec().iter().zip(want) {
            assert!((g - w).abs() < 1e-5);
        }
        assert!(y.to_f64_vec()[3..].iter().all(|v| v.is_nan()));
        let bad = t(&[3], &[1.0; 3]);
        assert!(
            InstanceNorm { epsilon: 0.0 }
                .run(&[Some(&x), Some(&bad), Some(&b)])
                .is_err()
        );
    }
}
