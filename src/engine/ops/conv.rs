//! Operators: Conv and ConvTranspose (1-D, 2-D, 3-D; groups, dilations, strides, pads,
//! auto_pad, optional bias), float32.
//!
//! Conv runs as one GEMM per sample and group, `Y[M, H'W'] = W[M, C·kh·kw] · im2col(X)`,
//! on the packed kernel of `kernels::gemm`: constant weights are packed once at build
//! time (for the ISA in force then), and im2col writes straight into the GEMM's packed
//! panels (1×1 stride-1 convolutions read X as it is). Depthwise convolutions (one
//! input channel per group) run a direct kernel instead. A plan may fuse the
//! element-wise ops that follow a Conv into it as an epilogue (`Op::with_epilogue`,
//! see `kernels::epilogue`): the fused op then reads the chain's element-wise inputs
//! after X, W and B, and returns the chain's result followed by its stored values.

mod compute;
mod geometry;
pub mod int8;
#[cfg(test)]
mod tests;
mod transpose;

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use crate::engine::kernels::Isa;
use crate::engine::kernels::epilogue::Chain;
use crate::engine::kernels::gemm::PackedA;
use crate::ir::{DType, Facts, Tensor};

use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input, input_f32};
use geometry::{ConvAttrs, Geometry, check_ranks};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[("Conv", build_conv), ("ConvTranspose", transpose::build)];

fn build_conv(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let attrs = ConvAttrs::parse(ctx, false)?;
    let weights = match ctx.const_input(1) {
        Some(w) => Some(Arc::new(Weights::new(w, attrs.group)?)),
        None => None,
    };
    let bias = match ctx.const_input(2) {
        Some(Tensor::F32(b)) => Some(b.iter().copied().collect()),
        _ => None,
    };
    Ok(Box::new(Conv {
        attrs,
        weights,
        bias,
        chain: Arc::new(Chain::default()),
    }))
}

/// The weights in the form the kernels use.
#[derive(Debug)]
struct Weights {
    /// `[M, C/group, k...]`.
    shape: Vec<usize>,
    /// One input channel per group: the raw `[M, taps]` weights for the direct kernel.
    depthwise: Option<Vec<f32>>,
    /// Otherwise one packed `[M/group, C/group · taps]` matrix per group.
    packed: Vec<PackedA>,
}

impl Weights {
    fn new(w: &Tensor, group: usize) -> OpResult<Weights> {
        let Tensor::F32(a) = w else {
            return Err(bad_dtype(1, w.dtype(), "float32"));
        };
        let shape = a.shape().to_vec();
        if shape.len() < 3 {
            return Err(OpError::Input {
                index: 1,
                msg: format!("W has shape {shape:?}: need [M, C/group, k...]"),
            });
        }
        if shape[0] % group != 0 {
            return Err(OpError::Input {
                index: 1,
                msg: format!(
                    "{} output channels do not split into {group} groups",
                    shape[0]
                ),
            });
        }
        let data = super::matmul::contiguous(a)?;
        if shape[1] == 1 && shape.len() <= 4 {
            return Ok(Weights {
                shape,
                depthwise: Some(data.to_vec()),
                packed: vec![],
            });
        }
        let mg = shape[0] / group;
        let k: usize = shape[1..].iter().product();
        let packed = (0..group)
            .map(|g| PackedA::new(Isa::current(), &data[g * mg * k..], mg, k, k, 1))
            .collect();
        Ok(Weights {
            shape,
            depthwise: None,
            packed,
        })
    }
}

/// A compiled Conv.
#[derive(Debug)]
pub struct Conv {
    attrs: ConvAttrs,
    weights: Option<Arc<Weights>>,
    bias: Option<Arc<[f32]>>,
    /// Applied to every output after the bias (empty: none).
    chain: Arc<Chain>,
}

impl Conv {
    /// Output shape and geometry from the shapes of X and W.
    fn geometry(&self, xs: &[usize], ws: &[usize]) -> OpResult<(Vec<usize>, Geometry)> {
        conv_geometry(&self.attrs, xs, ws)
    }
}

/// Output shape and geometry of a Conv with `attrs` from the shapes of X and W.
fn conv_geometry(
    attrs: &ConvAttrs,
    xs: &[usize],
    ws: &[usize],
) -> OpResult<(Vec<usize>, Geometry)> {
    let c = xs[1];
    let group = attrs.group;
    if ws[1] * group != c {
        return Err(OpError::Invalid(format!(
            "X has {c} channels but W {:?} with group {group} expects {}",
            ws,
            ws[1] * group
        )));
    }
    if !ws[0].is_multiple_of(group) {
        return Err(OpError::Input {
            index: 1,
            msg: format!("{} output channels do not split into {group} groups", ws[0]),
        });
    }
    let g = attrs.conv(&xs[2..], &ws[2..])?;
    let mut out = vec![xs[0], ws[0]];
    out.extend(&g.output);
    Ok((out, g))
}

fn check_bias(b: Option<&Facts>, m: usize) -> OpResult<()> {
    if let Some(s) = b.and_then(|b| b.shape.as_deref())
        && s != [m]
    {
        return Err(OpError::Input {
            index: 2,
            msg: format!("B has shape {s:?}, expected [{m}]"),
        });
    }
    Ok(())
}

fn check_f32(inputs: &[Option<&Facts>]) -> OpResult<()> {
    for (i, f) in inputs.iter().enumerate().take(3) {
        if let Some(d) = f.and_then(|f| f.dtype)
            && d != DType::F32
        {
            return Err(bad_dtype(i, d, "float32"));
        }
    }
    Ok(())
}

impl Op for Conv {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        check_f32(inputs)?;
        let (x, w) = (facts(inputs, 0)?, facts(inputs, 1)?);
        let shape = match check_ranks(x, w)? {
            Some((xs, ws)) => {
                let (out, _) = self.geometry(xs, ws)?;
                check_bias(inputs.get(2).copied().flatten(), ws[0])?;
                Some(out)
            }
            None => None,
        };
        let f = Facts {
            dtype: Some(DType::F32),
            shape,
            value: None,
        };
        Ok(vec![f; 1 + self.chain.arity().1])
    }

    fn with_epilogue(&self, chain: Chain) -> Option<Box<dyn Op>> {
        if !self.chain.is_empty() {
            return None;
        }
        Some(Box::new(Conv {
            attrs: self.attrs.clone(),
            weights: self.weights.clone(),
            bias: self.bias.clone(),
            chain: Arc::new(chain),
        }))
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input_f32(inputs, 0)?;
        let owned;
        let weights = match &self.weights {
            Some(w) => &**w,
            None => {
                owned = Weights::new(input(inputs, 1)?, self.attrs.group)?;
                &owned
            }
        };
        let xs = x.shape();
        if xs.len() != weights.shape.len() {
            return Err(OpError::Input {
                index: 0,
                msg: format!("X has shape {xs:?} but W has rank {}", weights.shape.len()),
            });
        }
        let (out_shape, geom) = self.geometry(xs, &weights.shape)?;
        let m = weights.shape[0];
        let bias_in;
        let bias = match (&self.bias, inputs.get(2).copied().flatten()) {
            (Some(b), _) => Some(&b[..]),
            (None, Some(b)) => {
                bias_in = input_f32(inputs, 2)?;
                if b.shape() != [m] {
                    return Err(OpError::Input {
                        index: 2,
                        msg: format!("B has shape {:?}, expected [{m}]", b.shape()),
                    });
                }
                Some(super::matmul::contiguous(bias_in)?)
            }
            (None, None) => None,
        };
        let len: usize = out_shape.iter().product();
        let (n_tensors, n_stores) = self.chain.arity();
        let tensors = (0..n_tensors)
            .map(|k| {
                let t = input_f32(inputs, 3 + k)?;
                if t.shape() != out_shape.as_slice() {
                    return Err(OpError::Input {
                        index: 3 + k,
                        msg: format!("shape {:?}, expected {out_shape:?}", t.shape()),
                    });
                }
                super::matmul::contiguous(t)
            })
            .collect::<OpResult<Vec<_>>>()?;
        let mut out = vec![0.0f32; len];
        let mut stores = vec![vec![0.0f32; len]; n_stores];
        let xd = super::matmul::contiguous(x)?;
        compute::Job {
            x: xd,
            xs,
            w: weights,
            g: &geom,
            group: self.attrs.group,
            bias,
            chain: &self.chain,
            tensors,
        }
        .run(&mut out, &mut stores);
        std::iter::once(out)
            .chain(stores)
            .map(|v| {
                ArrayD::from_shape_vec(IxDyn(&out_shape), v)
                    .map(Tensor::F32)
                    .map_err(|e| OpError::Invalid(e.to_string()))
            })
            .collect()
    }
}
