//! LRN: y = x / (bias + alpha/size · Σ x²)^beta, the sum running over the channels
//! c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉ (clipped to the valid range) at the same place.
//! beta = 0.75 (AlexNet, GoogLeNet) avoids `powf` with two square roots.

use rayon::prelude::*;

use crate::ir::{Facts, Tensor};

use super::super::elementwise::kernel::{array, data, parallel};
use super::super::elementwise::scalar::{Float, with_float};
use super::super::util::infer_same;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use super::nc_split;

#[derive(Debug)]
struct Lrn {
    size: usize,
    alpha: f32,
    beta: f32,
    bias: f32,
}

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let size = ctx.int("size")?.ok_or_else(|| OpError::Attr {
        name: "size".into(),
        msg: "missing".into(),
    })?;
    if size < 1 {
        return Err(OpError::Attr {
            name: "size".into(),
            msg: format!("must be positive, got {size}"),
        });
    }
    Ok(Box::new(Lrn {
        size: size as usize,
        alpha: ctx.float_or("alpha", 1e-4)?,
        beta: ctx.float_or("beta", 0.75)?,
        bias: ctx.float_or("bias", 1.0)?,
    }))
}

impl Lrn {
    fn run_typed<F: Float>(&self, x: &Tensor) -> OpResult<Tensor> {
        let xa = F::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
        let (_, c, inner) = nc_split(xa.shape())?;
        let xs = data(xa);
        let mut out = vec![F::ZERO; xs.len()];
        let sample = c * inner;
        if sample > 0 {
            let body = |(o, s): (&mut [F], &[F])| self.sample(o, s, c, inner);
            if parallel(xs.len()) {
                out.par_chunks_mut(sample)
                    .zip(xs.par_chunks(sample))
                    .for_each(body);
            } else {
                out.chunks_mut(sample).zip(xs.chunks(sample)).for_each(body);
            }
        }
        Ok(F::wrap(array(xa.shape(), out)?))
    }

    /// One sample: `c` planes of `inner` elements.
    fn sample<F: Float>(&self, out: &mut [F], x: &[F], c: usize, inner: usize) {
        let (before, after) = ((self.size - 1) / 2, self.size / 2);
        let k = F::from_f32(self.alpha) / F::from_f64(self.size as f64);
        let bias = F::from_f32(self.bias);
        let beta = F::from_f32(self.beta);
        let three_quarters = self.beta == 0.75;
        let plane = |ch: usize| &x[ch * inner..(ch + 1) * inner];
        let mut sq = vec![F::ZERO; inner];
        for ch in 0..c {
            sq.fill(F::ZERO);
            for cc in ch.saturating_sub(before)..(ch + after + 1).min(c) {
                for (s, &v) in sq.iter_mut().zip(plane(cc)) {
                    *s = *s + v * v;
                }
            }
            let o = &mut out[ch * inner..(ch + 1) * inner];
            for ((o, &v), &s) in o.iter_mut().zip(plane(ch)).zip(&sq) {
                let t = bias + k * s;
                let d = if three_quarters {
                    t.sqrt() * t.sqrt().sqrt()
                } else {
                    t.powf(beta)
                };
                *o = v / d;
            }
        }
    }
}

impl Op for Lrn {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !d.is_float()
        {
            return Err(bad_dtype(0, d, "float32 or float64"));
        }
        if let Some(s) = &x.shape {
            nc_split(s)?;
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let y = with_float!(x.dtype(), F => self.run_typed::<F>(x)?, {
            return Err(bad_dtype(0, x.dtype(), "float32 or float64"))
        });
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        let x: Vec<f32> = (0..2 * 5 * 3)
            .map(|v| (v as f32 * 0.7).sin() * 3.0)
            .collect();
        let t = Tensor::from_f32(&[2, 5, 3], x.clone());
        for (size, beta) in [(3, 0.75), (4, 0.5), (1, 0.75)] {
            let op = Lrn {
                size,
                alpha: 0.1,
                beta,
                bias: 2.0,
            };
            let y = op.run(&[Some(&t)]).unwrap().remove(0).to_f64_vec();
            for n in 0..2 {
                for c in 0..5usize {
                    for i in 0..3 {
                        let lo = c.saturating_sub((size - 1) / 2);
                        let hi = (c + size / 2).min(4);
                        let s: f64 = (lo..=hi)
                            .map(|cc| (x[n * 15 + cc * 3 + i] as f64).powi(2))
                            .sum();
                        let want = x[n * 15 + c * 3 + i] as f64
                            / (2.0 + 0.1 / size as f64 * s).powf(beta as f64);
                        let got = y[n * 15 + c * 3 + i];
                        assert!(
                            (got - want).abs() < 1e-5,
                            "size {size} n {n} c {c}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
