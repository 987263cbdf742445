//! Operators: Conv and ConvTranspose (1-D, 2-D, 3-D; groups, dilations, strides, pads,
//! auto_pad, optional bias), float32.
//!
//! Conv runs as one GEMM per sample and group, `Y[M, H'W'] = W[M, C·kh·kw] · im2col(X)`,
//! on the packed kernel of `matmul::kernel`: constant weights are packed once at build
//! time, and im2col writes straight into the GEMM's packed panels (1×1 stride-1
//! convolutions read X as it is). Depthwise convolutions (one input channel per group)
//! run a direct kernel instead. A fused activation may be attached (see `build_conv`).

mod depthwise;
mod geometry;
mod im2col;
#[cfg(test)]
mod tests;
mod transpose;

use ndarray::{ArrayD, IxDyn};

use crate::ir::{DType, Facts, Tensor};

use super::matmul::kernel::{self, Activation, BBlock, BSource, Output, PackedA};
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input, input_f32};
use geometry::{ConvAttrs, Geometry, check_ranks};
use im2col::Plane;

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[("Conv", build_conv), ("ConvTranspose", transpose::build)];

/// Builds Conv. Besides the ONNX attributes it reads `activation` (`Relu`, `LeakyRelu`,
/// `Clip`, `HardSigmoid`, `HardSwish`) and `activation_params` (alpha / min, max / alpha,
/// beta), named as on ONNX Runtime's `com.microsoft.FusedConv`, so that a graph pass
/// can fuse the activation that follows a Conv into it.
fn build_conv(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let attrs = ConvAttrs::parse(ctx, false)?;
    let act = fused_activation(ctx)?;
    let weights = match ctx.const_input(1) {
        Some(w) => Some(Weights::new(w, attrs.group)?),
        None => None,
    };
    let bias = match ctx.const_input(2) {
        Some(Tensor::F32(b)) => Some(b.iter().copied().collect()),
        _ => None,
    };
    Ok(Box::new(Conv {
        attrs,
        act,
        weights,
        bias,
    }))
}

fn fused_activation(ctx: &BuildCtx) -> OpResult<Activation> {
    let Some(name) = ctx.string("activation")? else {
        return Ok(Activation::Identity);
    };
    let p = ctx.floats("activation_params")?.unwrap_or_default();
    let arg = |i: usize, default: f32| p.get(i).copied().unwrap_or(default);
    Ok(match name.as_str() {
        "Relu" => Activation::Relu,
        "LeakyRelu" => Activation::LeakyRelu {
            alpha: arg(0, 0.01),
        },
        "Clip" => Activation::Clip {
            min: arg(0, f32::NEG_INFINITY),
            max: arg(1, f32::INFINITY),
        },
        "HardSigmoid" => Activation::HardSigmoid {
            alpha: arg(0, 0.2),
            beta: arg(1, 0.5),
        },
        "HardSwish" => Activation::HardSwish,
        other => {
            return Err(OpError::Attr {
                name: "activation".into(),
                msg: format!("`{other}` cannot be fused"),
            });
        }
    })
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
            .map(|g| PackedA::new(&data[g * mg * k..], mg, k, k, 1))
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
    /// Applied to every output after the bias.
    pub act: Activation,
    weights: Option<Weights>,
    bias: Option<Vec<f32>>,
}

impl Conv {
    /// Output shape and geometry from the shapes of X and W.
    fn geometry(&self, xs: &[usize], ws: &[usize]) -> OpResult<(Vec<usize>, Geometry)> {
        let c = xs[1];
        let group = self.attrs.group;
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
        let g = self.attrs.conv(&xs[2..], &ws[2..])?;
        let mut out = vec![xs[0], ws[0]];
        out.extend(&g.output);
        Ok((out, g))
    }
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
        Ok(vec![Facts {
            dtype: Some(DType::F32),
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input_f32(inputs, 0)?;
        let owned;
        let weights = match &self.weights {
            Some(w) => w,
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
            (Some(b), _) => Some(b.as_slice()),
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
        let mut out = vec![0.0f32; out_shape.iter().product()];
        let xd = super::matmul::contiguous(x)?;
        self.compute(xd, xs, weights, &geom, bias, &mut out);
        Ok(vec![Tensor::F32(
            ArrayD::from_shape_vec(IxDyn(&out_shape), out)
                .map_err(|e| OpError::Invalid(e.to_string()))?,
        )])
    }
}

impl Conv {
    fn compute(
        &self,
        x: &[f32],
        xs: &[usize],
        w: &Weights,
        g: &Geometry,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (n, c, m, group) = (xs[0], xs[1], w.shape[0], self.attrs.group);
        let in_size: usize = g.input.iter().product();
        let out_size: usize = g.output.iter().product();
        if n * m * out_size == 0 {
            return;
        }
        let parallel = rayon::current_thread_index().is_none();
        let plane = Plane::new(g);
        let (cg, mg) = (c / group, m / group);
        let taps: usize = g.kernel.iter().product();
        let strategy = Strategy::choose(g, plane.as_ref(), cg);
        // Offsets of the im2col rows inside the (padded) input of one group.
        let offs: Vec<usize> = match &strategy {
            Strategy::Pointwise => (0..cg).map(|ci| ci * in_size).collect(),
            Strategy::Shifted(s) => (0..cg * taps)
                .map(|k| {
                    let (ci, t) = (k / taps, k % taps);
                    ci * s.hp * s.wp + (t / s.p.kw) * s.p.dh * s.wp + (t % s.p.kw) * s.p.dw
                })
                .collect(),
            Strategy::Im2col => vec![],
        };
        let mut padded = match &strategy {
            Strategy::Shifted(s) => vec![0.0f32; s.padded_len(cg)],
            _ => vec![],
        };
        let mut wide = match &strategy {
            Strategy::Shifted(s) if s.wp != s.p.ow => vec![0.0f32; mg * s.p.oh * s.wp],
            _ => vec![],
        };
        for (xn, yn) in x
            .chunks_exact(c * in_size)
            .zip(out.chunks_exact_mut(m * out_size))
            .take(n)
        {
            if let (Some(wd), Some(p)) = (&w.depthwise, &plane)
                && cg == 1
            {
                depthwise::depthwise(xn, p, mg, wd, bias, self.act, yn, parallel);
                continue;
            }
            let packed;
            let packs = match &w.depthwise {
                None => &w.packed,
                Some(raw) => {
                    // A depthwise-shaped weight on a layout the direct kernel does not take.
                    packed = (0..group)
                        .map(|gi| PackedA::new(&raw[gi * mg * taps..], mg, taps, taps, 1))
                        .collect::<Vec<_>>();
                    &packed
                }
            };
            for (gi, pa) in packs.iter().enumerate() {
                let xg = &xn[gi * cg * in_size..(gi + 1) * cg * in_size];
                let yg = &mut yn[gi * mg * out_size..(gi + 1) * mg * out_size];
                let bias_g = bias.map(|b| &b[gi * mg..(gi + 1) * mg]);
                match &strategy {
                    Strategy::Pointwise => {
                        let o = Output {
                            c: yg,
                            ldc: out_size,
                            bias: bias_g,
                            act: self.act,
                        };
                        kernel::gemm(
                            pa,
                            out_size,
                            BSource::Rows {
                                base: xg,
                                offs: &offs,
                            },
                            o,
                            parallel,
                        );
                    }
                    Strategy::Shifted(s) => {
                        s.fill(xg, cg, &mut padded);
                        let nw = s.p.oh * s.wp;
                        let src = BSource::Rows {
                            base: &padded,
                            offs: &offs,
                        };
                        if wide.is_empty() {
                            let o = Output {
                                c: yg,
                                ldc: out_size,
                                bias: bias_g,
                                act: self.act,
                            };
                            kernel::gemm(pa, nw, src, o, parallel);
                        } else {
                            let o = Output {
                                c: &mut wide,
                                ldc: nw,
                                bias: bias_g,
                                act: self.act,
                            };
                            kernel::gemm(pa, nw, src, o, parallel);
                            for (dst, src) in
                                yg.chunks_exact_mut(s.p.ow).zip(wide.chunks_exact(s.wp))
                            {
                                dst.copy_from_slice(&src[..s.p.ow]);
                            }
                        }
                    }
                    Strategy::Im2col => {
                        let pack = |blk: BBlock, dst: &mut [f32]| match &plane {
                            Some(p) => im2col::pack_plane(xg, p, blk, dst),
                            None => im2col::pack_nd(xg, g, blk, dst),
                        };
                        let o = Output {
                            c: yg,
                            ldc: out_size,
                            bias: bias_g,
                            act: self.act,
                        };
                        kernel::gemm(pa, out_size, BSource::Pack(&pack), o, parallel);
                    }
                }
            }
        }
    }
}

/// How the GEMM reads the im2col matrix.
enum Strategy {
    /// 1×1, stride 1, no padding: X itself is B.
    Pointwise,
    /// Stride 1: B's rows are shifted views of a zero-padded copy of X, over a grid as wide
    /// as the padded rows (the extra columns are computed and dropped).
    Shifted(Shifted),
    /// Anything else: im2col into packed panels.
    Im2col,
}

struct Shifted {
    p: Plane,
    /// Rows and columns of the padded image.
    hp: usize,
    wp: usize,
}

impl Strategy {
    fn choose(g: &Geometry, plane: Option<&Plane>, cg: usize) -> Strategy {
        let unit = |v: &[usize]| v.iter().all(|&s| s == 1);
        if unit(&g.kernel)
            && unit(&g.strides)
            && g.pad_begin.iter().all(|&p| p == 0)
            && g.output == g.input
        {
            return Strategy::Pointwise;
        }
        match plane {
            Some(p) if p.sh == 1 && p.sw == 1 => {
                let hp = p.oh + (p.kh - 1) * p.dh;
                let wp = p.ow + (p.kw - 1) * p.dw;
                // Wider rows waste work on dropped columns; past a third, pack instead.
                if cg > 0 && 3 * wp <= 4 * p.ow {
                    Strategy::Shifted(Shifted { p: *p, hp, wp })
                } else {
                    Strategy::Im2col
                }
            }
            _ => Strategy::Im2col,
        }
    }
}

impl Shifted {
    /// Floats of the padded copy of `cg` channels, with room for the dropped columns of
    /// the last row to read past the end.
    fn padded_len(&self, cg: usize) -> usize {
        cg * self.hp * self.wp + (self.p.kw - 1) * self.p.dw
    }

    /// Copies `x` (`[cg, h, w]`) into `dst` with the padding zeroed.
    fn fill(&self, x: &[f32], cg: usize, dst: &mut [f32]) {
        let p = &self.p;
        let (pt, pl) = (p.pt as usize, p.pl as usize);
        let cols = p.w.min(self.wp - pl);
        for ci in 0..cg {
            let plane = &mut dst[ci * self.hp * self.wp..(ci + 1) * self.hp * self.wp];
            for (r, row) in plane.chunks_exact_mut(self.wp).enumerate() {
                match r.checked_sub(pt).filter(|&iy| iy < p.h) {
                    Some(iy) => {
                        row[..pl].fill(0.0);
                        row[pl..pl + cols].copy_from_slice(&x[ci * p.h * p.w + iy * p.w..][..cols]);
                        row[pl + cols..].fill(0.0);
                    }
                    None => row.fill(0.0),
                }
            }
        }
    }
}
