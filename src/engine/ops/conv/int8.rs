//! Conv of a quantized layer in integer arithmetic: the input is the float output of a
//! per-tensor `DequantizeLinear` (so each element is `(q − z) · s` for an 8-bit `q`), the
//! weight a `DequantizeLinear` of int8 constants (per tensor or per output channel, zero
//! point 0), the bias float. The op recovers `q` exactly (`round(y / s)` is exact for
//! |q − z| ≤ 255), shifts signed activations by +128 into u8, runs the integer GEMM
//! (`kernels::qgemm`) on bytes (im2col on bytes, padding with the zero point) and writes
//! `(Σ q·w − z' · Σ w) · s_x · s_w[m] + bias[m]`: what the float fake-quant path computes,
//! up to float rounding (the integer sum is exact; the float path rounds every product
//! and partial sum).

use ndarray::{ArrayD, IxDyn};

use crate::engine::kernels::qgemm::{self, MAX_DEPTH, PackedQA, QBlock, QKernel};
use crate::engine::kernels::window::Plane;
use crate::ir::{DType, Facts, Tensor};

use super::super::{BuildCtx, Op, OpError, OpResult, input_f32};
use super::geometry::{ConvAttrs, check_ranks};
use super::{check_bias, conv_geometry};

/// What the plan found around a Conv whose input and weight are dequantized.
#[derive(Clone, Debug)]
pub struct QuantConv<'a> {
    /// The input's scale and zero point, and whether it is int8 (else uint8).
    pub x_scale: f32,
    pub x_zero: i32,
    pub x_signed: bool,
    /// The int8 weights `[M, C/group, k...]`, row-major.
    pub w: &'a [i8],
    pub w_shape: &'a [usize],
    /// One scale, or one per output channel.
    pub w_scales: &'a [f32],
    pub bias: Option<Vec<f32>>,
}

/// A Conv running on `kernel`, or `None` when this Conv is not one the integer path
/// takes (depthwise, 3-D and up, a K whose sums could overflow i32, scales that are not
/// finite and positive) and stays float.
pub fn build(ctx: &BuildCtx, q: QuantConv, kernel: QKernel) -> OpResult<Option<Box<dyn Op>>> {
    let attrs = ConvAttrs::parse(ctx, false)?;
    let ws = q.w_shape;
    let m = ws.first().copied().unwrap_or(0);
    let group = attrs.group;
    let ok_scales = q.x_scale.is_finite()
        && q.x_scale > 0.0
        && q.w_scales.iter().all(|s| s.is_finite() && *s > 0.0)
        && (q.w_scales.len() == 1 || q.w_scales.len() == m);
    if !(3..=4).contains(&ws.len())
        || m == 0
        || !m.is_multiple_of(group)
        || (ws[1] == 1 && group > 1)
        || !ok_scales
        || q.bias.as_ref().is_some_and(|b| b.len() != m)
        || !(0..=255).contains(&(q.x_zero + if q.x_signed { 128 } else { 0 }))
    {
        return Ok(None);
    }
    let k: usize = ws[1..].iter().product();
    if k > MAX_DEPTH || q.w.len() != m * k {
        return Ok(None);
    }
    let mg = m / group;
    let packed = (0..group)
        .map(|g| PackedQA::new(kernel, &q.w[g * mg * k..(g + 1) * mg * k], mg, k))
        .collect();
    let scale = (0..m)
        .map(|i| q.x_scale as f64 * q.w_scales[if q.w_scales.len() == 1 { 0 } else { i }] as f64)
        .collect();
    Ok(Some(Box::new(IntConv {
        attrs,
        w_shape: ws.to_vec(),
        packed,
        scale,
        bias: q.bias,
        x_scale: q.x_scale,
        zero: q.x_zero + if q.x_signed { 128 } else { 0 },
    })))
}

/// A compiled integer Conv.
#[derive(Debug)]
pub struct IntConv {
    attrs: ConvAttrs,
    w_shape: Vec<usize>,
    /// One packed `[M/group, C/group · taps]` matrix per group.
    packed: Vec<PackedQA>,
    /// `s_x · s_w[m]` per output channel.
    scale: Vec<f64>,
    bias: Option<Vec<f32>>,
    x_scale: f32,
    /// The input's zero point as a u8 (shifted by 128 for int8 activations).
    zero: i32,
}

impl IntConv {
    /// The kernel the weights were packed for.
    pub fn kernel(&self) -> QKernel {
        self.packed[0].kernel()
    }

    /// The input as shifted bytes: `round(y / s) + z'`, clamped to 0..=255.
    fn quantize(&self, x: &[f32]) -> Vec<u8> {
        let (s, z) = (self.x_scale, self.zero as f32);
        x.iter()
            .map(|&y| ((y / s).round_ties_even() + z).clamp(0.0, 255.0) as u8)
            .collect()
    }
}

impl Op for IntConv {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = super::super::facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && d != DType::F32
        {
            return Err(super::super::bad_dtype(0, d, "float32"));
        }
        let w = Facts {
            dtype: Some(DType::I8),
            shape: Some(self.w_shape.clone()),
            value: None,
        };
        let shape = match check_ranks(x, &w)? {
            Some((xs, ws)) => Some(conv_geometry(&self.attrs, xs, ws)?.0),
            None => None,
        };
        check_bias(inputs.get(2).copied().flatten(), self.w_shape[0])?;
        Ok(vec![Facts {
            dtype: Some(DType::F32),
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input_f32(inputs, 0)?;
        let xs = x.shape();
        if xs.len() != self.w_shape.len() {
            return Err(OpError::Input {
                index: 0,
                msg: format!("X has shape {xs:?} but W has rank {}", self.w_shape.len()),
            });
        }
        let (out_shape, geom) = conv_geometry(&self.attrs, xs, &self.w_shape)?;
        let plane =
            Plane::new(&geom).ok_or_else(|| OpError::Invalid("not a 1-D or 2-D Conv".into()))?;
        let bytes = self.quantize(super::super::matmul::contiguous(x)?);
        let (n, c, m, group) = (xs[0], xs[1], self.w_shape[0], self.attrs.group);
        let (cg, mg) = (c / group, m / group);
        let (in_size, cols) = (plane.h * plane.w, plane.oh * plane.ow);
        let mut out = vec![0.0f32; n * m * cols];
        let mut acc = vec![0i32; mg * cols];
        for s in 0..n {
            for (g, a) in self.packed.iter().enumerate() {
                let x0 = (s * c + g * cg) * in_size;
                let src = &bytes[x0..x0 + cg * in_size];
                let pack =
                    |blk: QBlock, dst: &mut [u8]| im2col(src, &plane, self.zero as u8, blk, dst);
                qgemm::qgemm(a, cols, &pack, &mut acc, cols, true);
                for (i, (row, &sum)) in acc.chunks_exact(cols).zip(a.row_sums()).enumerate() {
                    let ch = g * mg + i;
                    let comp = self.zero as i64 * sum as i64;
                    let (sc, b) = (
                        self.scale[ch],
                        self.bias.as_ref().map_or(0.0, |b| b[ch] as f64),
                    );
                    let dst = &mut out[(s * m + ch) * cols..(s * m + ch + 1) * cols];
                    for (o, &v) in dst.iter_mut().zip(row) {
                        *o = ((v as i64 - comp) as f64 * sc + b) as f32;
                    }
                }
            }
        }
        let y = ArrayD::from_shape_vec(IxDyn(&out_shape), out)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        Ok(vec![Tensor::F32(y)])
    }
}

/// Packs block `blk` of the im2col matrix of one group's bytes `x` (`[C, H, W]`), with
/// `zero` (the quantized 0.0) where a tap falls in the padding.
fn im2col(x: &[u8], p: &Plane, zero: u8, blk: QBlock, dst: &mut [u8]) {
    let taps = p.kh * p.kw;
    let (in_size, cols) = (p.h * p.w, blk.nc);
    // Per column: the top-left input position of its window.
    let base: Vec<(isize, isize)> = (blk.n0..blk.n0 + cols)
        .map(|o| {
            let (oy, ox) = (o / p.ow, o % p.ow);
            ((oy * p.sh) as isize - p.pt, (ox * p.sw) as isize - p.pl)
        })
        .collect();
    for kk in 0..blk.k {
        let (ci, t) = (kk / taps, kk % taps);
        let (dy, dx) = (((t / p.kw) * p.dh) as isize, ((t % p.kw) * p.dw) as isize);
        let plane = &x[ci * in_size..(ci + 1) * in_size];
        for (j, &(y0, x0)) in base.iter().enumerate() {
            let (iy, ix) = (y0 + dy, x0 + dx);
            let v = if iy >= 0 && ix >= 0 && (iy as usize) < p.h && (ix as usize) < p.w {
                plane[iy as usize * p.w + ix as usize]
            } else {
                zero
            };
            dst[blk.index(kk, j)] = v;
        }
    }
}
