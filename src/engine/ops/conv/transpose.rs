//! ConvTranspose: per sample and group, `col[M/group · taps, H·W] = Wᵀ · X` on the packed
//! GEMM, then col2im scatters and sums every column into the output
//! (`out = in · stride + k · dilation − pad_begin`).

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use crate::ir::{DType, Facts, Tensor};

use crate::engine::kernels::Isa;
use crate::engine::kernels::gemm::{self, BSource, Output, PackedA};
use crate::engine::kernels::window::Plane;

use super::super::matmul::contiguous;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input, input_f32};
use super::geometry::{ConvAttrs, Geometry, check_ranks};

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let attrs = ConvAttrs::parse(ctx, true)?;
    let weights = match ctx.const_input(1) {
        Some(w) => Some(TWeights::new(w, attrs.group)?),
        None => None,
    };
    Ok(Box::new(ConvTranspose { attrs, weights }))
}

/// `[C, M/group, k...]` packed as one `[M/group · taps, C/group]` matrix per group.
#[derive(Debug)]
struct TWeights {
    shape: Vec<usize>,
    packed: Vec<PackedA>,
}

impl TWeights {
    fn new(w: &Tensor, group: usize) -> OpResult<TWeights> {
        let Tensor::F32(a) = w else {
            return Err(bad_dtype(1, w.dtype(), "float32"));
        };
        let shape = a.shape().to_vec();
        if shape.len() < 3 {
            return Err(OpError::Input {
                index: 1,
                msg: format!("W has shape {shape:?}: need [C, M/group, k...]"),
            });
        }
        if shape[0] % group != 0 {
            return Err(OpError::Input {
                index: 1,
                msg: format!(
                    "{} input channels do not split into {group} groups",
                    shape[0]
                ),
            });
        }
        let data = contiguous(a)?;
        let cg = shape[0] / group;
        let rows: usize = shape[1..].iter().product();
        let isa = Isa::current();
        let packed = (0..group)
            .map(|g| PackedA::new(isa, &data[g * cg * rows..], rows, cg, 1, rows))
            .collect();
        Ok(TWeights { shape, packed })
    }
}

#[derive(Debug)]
struct ConvTranspose {
    attrs: ConvAttrs,
    weights: Option<TWeights>,
}

impl ConvTranspose {
    fn geometry(&self, xs: &[usize], ws: &[usize]) -> OpResult<(Vec<usize>, Geometry)> {
        if ws[0] != xs[1] {
            return Err(OpError::Invalid(format!(
                "X has {} channels but W {ws:?} expects {}",
                xs[1], ws[0]
            )));
        }
        if !ws[0].is_multiple_of(self.attrs.group) {
            return Err(OpError::Input {
                index: 1,
                msg: format!(
                    "{} input channels do not split into {} groups",
                    ws[0], self.attrs.group
                ),
            });
        }
        let g = self.attrs.transpose(&xs[2..], &ws[2..])?;
        let mut out = vec![xs[0], ws[1] * self.attrs.group];
        out.extend(&g.output);
        Ok((out, g))
    }
}

impl Op for ConvTranspose {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        for (i, f) in inputs.iter().enumerate().take(3) {
            if let Some(d) = f.and_then(|f| f.dtype)
                && d != DType::F32
            {
                return Err(bad_dtype(i, d, "float32"));
            }
        }
        let (x, w) = (facts(inputs, 0)?, facts(inputs, 1)?);
        let shape = match check_ranks(x, w)? {
            Some((xs, ws)) => {
                let (out, _) = self.geometry(xs, ws)?;
                if let Some(s) = inputs
                    .get(2)
                    .copied()
                    .flatten()
                    .and_then(|b| b.shape.as_deref())
                    && s != [out[1]]
                {
                    return Err(OpError::Input {
                        index: 2,
                        msg: format!("B has shape {s:?}, expected [{}]", out[1]),
                    });
                }
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
        let w = match &self.weights {
            Some(w) => w,
            None => {
                owned = TWeights::new(input(inputs, 1)?, self.attrs.group)?;
                &owned
            }
        };
        let xs = x.shape();
        if xs.len() != w.shape.len() {
            return Err(OpError::Input {
                index: 0,
                msg: format!("X has shape {xs:?} but W has rank {}", w.shape.len()),
            });
        }
        let (out_shape, g) = self.geometry(xs, &w.shape)?;
        let m = out_shape[1];
        let bias = match inputs.get(2).copied().flatten() {
            Some(b) if b.shape() != [m] => {
                return Err(OpError::Input {
                    index: 2,
                    msg: format!("B has shape {:?}, expected [{m}]", b.shape()),
                });
            }
            Some(_) => Some(contiguous(input_f32(inputs, 2)?)?),
            None => None,
        };
        let mut out = vec![0.0f32; out_shape.iter().product()];
        compute(contiguous(x)?, xs, w, &g, self.attrs.group, bias, &mut out);
        Ok(vec![Tensor::F32(
            ArrayD::from_shape_vec(IxDyn(&out_shape), out)
                .map_err(|e| OpError::Invalid(e.to_string()))?,
        )])
    }
}

fn compute(
    x: &[f32],
    xs: &[usize],
    w: &TWeights,
    g: &Geometry,
    group: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (n, c) = (xs[0], xs[1]);
    let (cg, mg) = (c / group, w.shape[1]);
    let taps: usize = g.kernel.iter().product();
    let in_size: usize = g.input.iter().product();
    let out_size: usize = g.output.iter().product();
    if n * mg * group * out_size == 0 {
        return;
    }
    let parallel = rayon::current_thread_index().is_none();
    let plane = Plane::new(g);
    let mut col = vec![0.0f32; mg * taps * in_size];
    let offs: Vec<usize> = (0..cg).map(|ci| ci * in_size).collect();
    for (xn, yn) in x
        .chunks_exact(c * in_size)
        .zip(out.chunks_exact_mut(group * mg * out_size))
        .take(n)
    {
        for (gi, pa) in w.packed.iter().enumerate() {
            let xg = &xn[gi * cg * in_size..(gi + 1) * cg * in_size];
            let yg = &mut yn[gi * mg * out_size..(gi + 1) * mg * out_size];
            if in_size > 0 {
                let o = Output::plain(&mut col, in_size);
                gemm::gemm(
                    Isa::current(),
                    pa,
                    in_size,
                    BSource::Rows {
                        base: xg,
                        offs: &offs,
                    },
                    o,
                    parallel,
                );
            }
            let job = |(m, y): (usize, &mut [f32])| {
                y.fill(bias.map_or(0.0, |b| b[gi * mg + m]));
                let cm = &col[m * taps * in_size..(m + 1) * taps * in_size];
                match &plane {
                    Some(p) => col2im_plane(cm, p, y),
                    None => col2im_nd(cm, g, y),
                }
            };
            if parallel && mg > 1 && col.len() >= 1 << 16 {
                yg.par_chunks_mut(out_size).enumerate().for_each(job);
            } else {
                yg.chunks_mut(out_size).enumerate().for_each(job);
            }
        }
    }
}

/// Adds the `[kh · kw, H · W]` columns of one output channel into its `[oh, ow]` plane.
/// `Plane` is read with H, W the input and oh, ow the output size.
fn col2im_plane(col: &[f32], p: &Plane, y: &mut [f32]) {
    let hw = p.h * p.w;
    for ky in 0..p.kh {
        for kx in 0..p.kw {
            let src = &col[(ky * p.kw + kx) * hw..][..hw];
            // Input columns whose output column ox = ix·sw + kx·dw − pl is inside [0, ow).
            let off = (kx * p.dw) as isize - p.pl;
            let sw = p.sw as isize;
            let lo = if off >= 0 {
                0
            } else {
                ((-off + sw - 1) / sw) as usize
            };
            let last = p.ow as isize - 1 - off;
            let hi = if last < 0 {
                0
            } else {
                (last / sw + 1) as usize
            };
            let (lo, hi) = (lo.min(p.w), hi.min(p.w));
            if lo >= hi {
                continue;
            }
            for iy in 0..p.h {
                let oy = (iy * p.sh + ky * p.dh) as isize - p.pt;
                if oy < 0 || oy >= p.oh as isize {
                    continue;
                }
                let row = &mut y[oy as usize * p.ow..(oy as usize + 1) * p.ow];
                let s = &src[iy * p.w..(iy + 1) * p.w];
                let ox0 = (lo as isize * sw + off) as usize;
                if p.sw == 1 {
                    for (d, &v) in row[ox0..ox0 + hi - lo].iter_mut().zip(&s[lo..hi]) {
                        *d += v;
                    }
                } else {
                    for (t, &v) in s[lo..hi].iter().enumerate() {
                        row[ox0 + t * p.sw] += v;
                    }
                }
            }
        }
    }
}

/// `col2im_plane` for any number of spatial axes.
fn col2im_nd(col: &[f32], g: &Geometry, y: &mut [f32]) {
    let r = g.input.len();
    let in_size: usize = g.input.iter().product();
    let taps: usize = g.kernel.iter().product();
    let (mut kidx, mut iidx) = (vec![0usize; r], vec![0usize; r]);
    for k in 0..taps {
        let mut rem = k;
        for i in (0..r).rev() {
            kidx[i] = rem % g.kernel[i];
            rem /= g.kernel[i];
        }
        for (i, &v) in col[k * in_size..(k + 1) * in_size].iter().enumerate() {
            let mut rem = i;
            for a in (0..r).rev() {
                iidx[a] = rem % g.input[a];
                rem /= g.input[a];
            }
            let mut at = 0usize;
            let mut inside = true;
            for a in 0..r {
                let pos =
                    (iidx[a] * g.strides[a] + kidx[a] * g.dilations[a]) as isize - g.pad_begin[a];
                if pos < 0 || pos >= g.output[a] as isize {
                    inside = false;
                    break;
                }
                at = at * g.output[a] + pos as usize;
            }
            if inside {
                y[at] += v;
            }
        }
    }
}
