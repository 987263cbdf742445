//! LpNormalization, MeanVarianceNormalization and GroupNormalization, on float32 and
//! float64 with statistics accumulated in f64.
//!
//! - LpNormalization: x divided by its L1 or L2 norm along `axis` (0 where the norm is 0,
//!   as the reference's `where(norm == 0, 0, x / norm)`).
//! - MeanVarianceNormalization: `(x − E[x]) / (sqrt(E[x²] − E[x]²) + 1e-9)` over `axes`
//!   (default [0, 2, 3]), the function body's formula.
//! - GroupNormalization: X [N, C, …] in `num_groups` groups of channels, each normalized
//!   by its mean and variance, then per channel `scale`·y + `bias` (opset 21; opset 18's
//!   per-group scale and bias are refused).

use ndarray::{ArrayD, Dimension};

use crate::ir::shape::normalize_axis;
use crate::ir::{Facts, Tensor};

use super::super::elementwise::kernel::{array, data};
use super::super::elementwise::scalar::{Float, with_float};
use super::super::util::infer_same;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use super::moments;

const FLOATS: &str = "float32 or float64";

fn check_float(inputs: &[Option<&Facts>]) -> OpResult<()> {
    for (i, f) in inputs.iter().enumerate() {
        if let Some(d) = f.and_then(|f| f.dtype)
            && !d.is_float()
        {
            return Err(bad_dtype(i, d, FLOATS));
        }
    }
    Ok(())
}

fn attr_err(name: &str, msg: String) -> OpError {
    OpError::Attr {
        name: name.into(),
        msg,
    }
}

fn view<F: Float>(t: &Tensor, index: usize) -> OpResult<&ArrayD<F>> {
    F::view(t).ok_or_else(|| bad_dtype(index, t.dtype(), F::DTYPE.name()))
}

#[derive(Debug)]
struct LpNorm {
    axis: i64,
    l2: bool,
}

pub(super) fn build_lp(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let l2 = match ctx.int_or("p", 2)? {
        1 => false,
        2 => true,
        p => return Err(attr_err("p", format!("{p} is not 1 or 2"))),
    };
    Ok(Box::new(LpNorm {
        axis: ctx.int_or("axis", -1)?,
        l2,
    }))
}

impl LpNorm {
    fn run_typed<F: Float>(&self, x: &Tensor) -> OpResult<Tensor> {
        let xa = view::<F>(x, 0)?;
        let shape = xa.shape();
        let axis = normalize_axis(self.axis, shape.len())
            .ok_or_else(|| attr_err("axis", format!("{} is out of range", self.axis)))?;
        let (len, inner) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
        let xs = data(xa);
        let mut y = vec![F::ZERO; xs.len()];
        if len > 0 && inner > 0 {
            for (o, block) in y.chunks_mut(len * inner).zip(xs.chunks(len * inner)) {
                for j in 0..inner {
                    let lane = (0..len).map(|k| block[k * inner + j].to_f64());
                    let norm = if self.l2 {
                        lane.map(|v| v * v).sum::<f64>().sqrt()
                    } else {
                        lane.map(f64::abs).sum::<f64>()
                    };
                    let n = F::from_f64(norm);
                    for k in 0..len {
                        let i = k * inner + j;
                        o[i] = if n == F::ZERO { F::ZERO } else { block[i] / n };
                    }
                }
            }
        }
        Ok(F::wrap(array(shape, y)?))
    }
}

impl Op for LpNorm {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        check_float(inputs)?;
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let y = with_float!(x.dtype(), F => self.run_typed::<F>(x)?,
            return Err(bad_dtype(0, x.dtype(), FLOATS)));
        Ok(vec![y])
    }
}

#[derive(Debug)]
struct Mvn {
    axes: Vec<i64>,
}

pub(super) fn build_mvn(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Mvn {
        axes: ctx.ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]),
    }))
}

impl Mvn {
    /// Per dim: whether it is reduced.
    fn mask(&self, rank: usize) -> OpResult<Vec<bool>> {
        let mut m = vec![false; rank];
        for &a in &self.axes {
            let ax = normalize_axis(a, rank)
                .ok_or_else(|| attr_err("axes", format!("{a} is out of range for rank {rank}")))?;
            m[ax] = true;
        }
        Ok(m)
    }

    fn run_typed<F: Float>(&self, x: &Tensor) -> OpResult<Tensor> {
        let xa = view::<F>(x, 0)?;
        let shape = xa.shape();
        let mask = self.mask(shape.len())?;
        // Each element's group: its row-major index over the kept dims.
        let mut group = Vec::with_capacity(xa.len());
        let groups: usize = shape
            .iter()
            .zip(&mask)
            .filter(|(_, m)| !**m)
            .map(|(d, _)| d)
            .product();
        for (idx, _) in xa.indexed_iter() {
            let mut g = 0;
            for (d, (&i, &m)) in idx.slice().iter().zip(&mask).enumerate() {
                if !m {
                    g = g * shape[d] + i;
                }
            }
            group.push(g);
        }
        let (mut sum, mut sq, mut count) =
            (vec![0f64; groups], vec![0f64; groups], vec![0usize; groups]);
        let xs = data(xa);
        for (&v, &g) in xs.iter().zip(&group) {
            let v = v.to_f64();
            sum[g] += v;
            sq[g] += v * v;
            count[g] += 1;
        }
        let stats: Vec<(F, F)> = (0..groups)
            .map(|g| {
                let n = count[g] as f64;
                let (mean, ex2) = (sum[g] / n, sq[g] / n);
                let std = (ex2 - mean * mean).max(0.0).sqrt() + 1e-9;
                (F::from_f64(mean), F::from_f64(std))
            })
            .collect();
        let y: Vec<F> = xs
            .iter()
            .zip(&group)
            .map(|(&v, &g)| (v - stats[g].0) / stats[g].1)
            .collect();
        Ok(F::wrap(array(shape, y)?))
    }
}

impl Op for Mvn {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        check_float(inputs)?;
        if let Some(s) = &facts(inputs, 0)?.shape {
            self.mask(s.len())?;
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let y = with_float!(x.dtype(), F => self.run_typed::<F>(x)?,
            return Err(bad_dtype(0, x.dtype(), FLOATS)));
        Ok(vec![y])
    }
}

#[derive(Debug)]
struct GroupNorm {
    groups: usize,
    epsilon: f32,
}

pub(super) fn build_group(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    if ctx.opset < 21 {
        return Err(OpError::Unsupported(format!(
            "GroupNormalization before opset 21 (per-group scale), opset {}",
            ctx.opset
        )));
    }
    let stash = ctx.int_or("stash_type", 1)?;
    if stash != 1 {
        return Err(attr_err(
            "stash_type",
            format!("{stash} is not supported (only 1)"),
        ));
    }
    let g = ctx
        .int("num_groups")?
        .ok_or_else(|| attr_err("num_groups", "missing".into()))?;
    let groups = usize::try_from(g)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| attr_err("num_groups", format!("{g} must be positive")))?;
    Ok(Box::new(GroupNorm {
        groups,
        epsilon: ctx.float_or("epsilon", 1e-5)?,
    }))
}

impl GroupNorm {
    /// (N, C, spatial size) after checking C against the groups and the parameters.
    fn dims(
        &self,
        x: &[usize],
        scale: &[usize],
        bias: &[usize],
    ) -> OpResult<(usize, usize, usize)> {
        if x.len() < 2 {
            return Err(OpError::Input {
                index: 0,
                msg: format!("needs at least 2 dims, has shape {x:?}"),
            });
        }
        let c = x[1];
        if !c.is_multiple_of(self.groups) {
            return Err(attr_err(
                "num_groups",
                format!("{} does not divide the {c} channels", self.groups),
            ));
        }
        for (i, p) in [(1, scale), (2, bias)] {
            if p != [c] {
                return Err(OpError::Input {
                    index: i,
                    msg: format!("shape {p:?} is not [{c}]"),
                });
            }
        }
        Ok((x[0], c, x[2..].iter().product()))
    }

    fn run_typed<F: Float>(&self, x: &Tensor, s: &Tensor, b: &Tensor) -> OpResult<Tensor> {
        let (xa, sa, ba) = (view::<F>(x, 0)?, view::<F>(s, 1)?, view::<F>(b, 2)?);
        let (_, c, spatial) = self.dims(xa.shape(), sa.shape(), ba.shape())?;
        let (scale, bias) = (data(sa), data(ba));
        let per = c / self.groups * spatial;
        let xs = data(xa);
        let mut y = vec![F::ZERO; xs.len()];
        if per > 0 {
            for (gi, (o, block)) in y.chunks_mut(per).zip(xs.chunks(per)).enumerate() {
                let (mean, var) = moments(block);
                let r = F::from_f64(1.0 / (var + self.epsilon as f64).sqrt());
                let mean = F::from_f64(mean);
                let c0 = (gi % self.groups) * (c / self.groups);
                for (k, (o, &v)) in o.iter_mut().zip(block).enumerate() {
                    let ch = c0 + k / spatial.max(1);
                    *o = (v - mean) * r * scale[ch] + bias[ch];
                }
            }
        }
        Ok(F::wrap(array(xa.shape(), y)?))
    }
}

impl Op for GroupNorm {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        check_float(inputs)?;
        let f = |i| facts(inputs, i).map(|f| f.shape.clone());
        if let (Some(x), Some(s), Some(b)) = (f(0)?, f(1)?, f(2)?) {
            self.dims(&x, &s, &b)?;
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, s, b) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let y = with_float!(x.dtype(), F => self.run_typed::<F>(x, s, b)?,
            return Err(bad_dtype(0, x.dtype(), FLOATS)));
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: &dyn Op, ins: &[&Tensor]) -> Vec<f64> {
        let ins: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        op.run(&ins).unwrap().remove(0).to_f64_vec()
    }

    #[test]
    fn lp_norms_along_an_axis_with_zero_lanes() {
        let x = Tensor::from_f32(&[2, 2], vec![3.0, 0.0, 4.0, 0.0]);
        let l2 = LpNorm { axis: 0, l2: true };
        assert_eq!(
            run(&l2, &[&x]),
            vec![0.6f32 as f64, 0.0, 0.8f32 as f64, 0.0]
        );
        let l1 = LpNorm {
            axis: -1,
            l2: false,
        };
        assert_eq!(run(&l1, &[&x]), vec![1.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn mvn_and_group_norm_standardize() {
        let x = Tensor::from_f32(&[1, 2, 1, 2], vec![1.0, 3.0, 10.0, 10.0]);
        let y = run(
            &Mvn {
                axes: vec![0, 2, 3],
            },
            &[&x],
        );
        assert!((y[0] + 1.0).abs() < 1e-6 && (y[1] - 1.0).abs() < 1e-6);
        assert_eq!((y[2], y[3]), (0.0, 0.0));
        let s = Tensor::from_f32(&[2], vec![2.0, 1.0]);
        let b = Tensor::from_f32(&[2], vec![0.0, 5.0]);
        let g = GroupNorm {
            groups: 2,
            epsilon: 0.0,
        };
        let y = run(&g, &[&x, &s, &b]);
        assert!((y[0] + 2.0).abs() < 1e-6 && (y[1] - 2.0).abs() < 1e-6);
        let bad = Tensor::from_f32(&[3], vec![1.0; 3]);
        assert!(g.run(&[Some(&x), Some(&bad), Some(&b)]).is_err());
    }
}
