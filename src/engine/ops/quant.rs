//! Operators: QuantizeLinear and DequantizeLinear, bit-exact with ONNX Runtime.
//!
//!   QuantizeLinear:   q = saturate(round_half_even(x / scale) + zero_point)
//!   DequantizeLinear: y = (q − zero_point) · scale
//!
//! both in float32 (x / scale is a true division, not a multiplication by 1/scale).
//! The granularity follows the scale's shape: one element is per tensor, a 1-D scale
//! of length shape[axis] is per axis, and a scale of the input's rank is blocked along
//! `axis` in blocks of `block_size` (opset 21). The zero point is optional (0); the
//! quantized type is the zero point's, else `output_dtype`, else uint8. DequantizeLinear
//! takes uint8, int8 and int32 (biases, zero point 0).
//!
//! Each element is one pass of a fused loop: divide, clamp to the range shifted by the
//! zero point, round (add 1.5·2²³ and read the integer from the mantissa: ties to even,
//! exact after the clamp), add the zero point, convert. Clamping before rounding equals
//! rounding first because the bounds are integers. No saturating float → int cast, so
//! the loop vectorizes; large tensors split across rayon.

mod layout;

use std::mem::MaybeUninit;

use crate::ir::tensor::onnx_type_name;
use crate::ir::{DType, Facts, Tensor};

use super::elementwise::kernel::{array, build_vec, data};
use super::elementwise::math::round_small_to_i32;
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input};
use layout::{Layout, Params};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("QuantizeLinear", build_quantize),
    ("DequantizeLinear", build_dequantize),
];

/// Attributes shared by both ops.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Granularity {
    axis: i64,
    block_size: i64,
    /// Opset 10: per-tensor only.
    per_tensor_only: bool,
}

fn granularity(ctx: &BuildCtx) -> OpResult<Granularity> {
    let block_size = ctx.int_or("block_size", 0)?;
    if block_size < 0 {
        return Err(OpError::Attr {
            name: "block_size".into(),
            msg: format!("must be positive, got {block_size}"),
        });
    }
    Ok(Granularity {
        axis: ctx.int_or("axis", 1)?,
        block_size,
        per_tensor_only: ctx.opset < 13,
    })
}

/// The `output_dtype` attribute (0 or absent = unset).
fn output_dtype(ctx: &BuildCtx) -> OpResult<Option<DType>> {
    match ctx.int("output_dtype")? {
        None | Some(0) => Ok(None),
        Some(code) => {
            let c = i32::try_from(code).unwrap_or(0);
            DType::from_onnx(c).map(Some).ok_or_else(|| OpError::Attr {
                name: "output_dtype".into(),
                msg: format!("{} is not supported", onnx_type_name(c)),
            })
        }
    }
}

#[derive(Debug)]
struct Quantize {
    gran: Granularity,
    output_dtype: Option<DType>,
}

fn build_quantize(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    if let Some(p) = ctx.int("precision")?
        && p != 0
        && p != 1
    {
        return Err(OpError::Attr {
            name: "precision".into(),
            msg: format!("{} is not supported", onnx_type_name(p as i32)),
        });
    }
    let output_dtype = output_dtype(ctx)?;
    if let Some(d) = output_dtype
        && !matches!(d, DType::U8 | DType::I8)
    {
        return Err(OpError::Attr {
            name: "output_dtype".into(),
            msg: format!("quantizing to {} is not supported", d.name()),
        });
    }
    Ok(Box::new(Quantize {
        gran: granularity(ctx)?,
        output_dtype,
    }))
}

impl Quantize {
    /// The quantized type from the zero point's type (if known) and the attribute.
    fn qtype(&self, zp: Option<DType>) -> OpResult<DType> {
        let t = match (zp, self.output_dtype) {
            (Some(z), Some(o)) if z != o => {
                return Err(OpError::Input {
                    index: 2,
                    msg: format!(
                        "zero point type {} differs from output_dtype {}",
                        z.name(),
                        o.name()
                    ),
                });
            }
            (Some(z), _) => z,
            (None, Some(o)) => o,
            (None, None) => DType::U8,
        };
        if !matches!(t, DType::U8 | DType::I8) {
            return Err(bad_dtype(2, t, "uint8 or int8"));
        }
        Ok(t)
    }
}

impl Op for Quantize {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !matches!(d, DType::F32 | DType::I32)
        {
            return Err(bad_dtype(0, d, "float32 or int32"));
        }
        check_scale_facts(facts(inputs, 1)?)?;
        let q = match inputs.get(2).copied().flatten() {
            Some(z) => z.dtype.map(|d| self.qtype(Some(d))).transpose()?,
            None => Some(self.qtype(None)?),
        };
        check_layout_facts(&self.gran, inputs)?;
        Ok(vec![Facts {
            dtype: q,
            shape: x.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let xs: std::borrow::Cow<[f32]> = match x {
            Tensor::F32(a) => data(a),
            Tensor::I32(a) => data(a).iter().map(|&v| v as f32).collect::<Vec<_>>().into(),
            t => return Err(bad_dtype(0, t.dtype(), "float32 or int32")),
        };
        let scale = scale_of(inputs)?;
        let zp = inputs.get(2).copied().flatten();
        let qtype = self.qtype(zp.map(Tensor::dtype))?;
        let layout = Layout::new(
            x.shape(),
            scale.len(),
            scale_shape(inputs)?,
            zp.map(Tensor::shape),
            &self.gran,
        )?;
        let zps = zero_points(zp, scale.len())?;
        let y = match qtype {
            DType::U8 => Tensor::U8(array(
                x.shape(),
                quantize::<u8>(&xs, &scale, &zps, &layout),
            )?),
            DType::I8 => Tensor::I8(array(
                x.shape(),
                quantize::<i8>(&xs, &scale, &zps, &layout),
            )?),
            d => return Err(bad_dtype(2, d, "uint8 or int8")),
        };
        Ok(vec![y])
    }
}

/// `QuantizeLinear` followed by `DequantizeLinear` with the same scale and zero point
/// (a plan fuses such a pair when the quantized value has no other use): the float32
/// result of the two ops, bit for bit, without the 8-bit intermediate.
#[derive(Debug)]
struct FakeQuantize {
    q: Quantize,
}

/// The fused op of the nodes `q` (`QuantizeLinear`) and `dq` (`DequantizeLinear`), when
/// their attributes agree; the caller checks that `dq` reads `q`'s output with `q`'s scale
/// and zero point.
pub fn fuse_qdq(qc: &BuildCtx, dqc: &BuildCtx) -> Option<Box<dyn Op>> {
    if qc.node.op_type != "QuantizeLinear" || dqc.node.op_type != "DequantizeLinear" {
        return None;
    }
    build_quantize(qc).ok()?;
    build_dequantize(dqc).ok()?;
    let q = Quantize {
        gran: granularity(qc).ok()?,
        output_dtype: output_dtype(qc).ok()?,
    };
    (q.gran == granularity(dqc).ok()?).then(|| Box::new(FakeQuantize { q }) as Box<dyn Op>)
}

impl Op for FakeQuantize {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let mut f = self.q.infer(inputs)?;
        f[0].dtype = Some(DType::F32);
        Ok(f)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let xs: std::borrow::Cow<[f32]> = match x {
            Tensor::F32(a) => data(a),
            Tensor::I32(a) => data(a).iter().map(|&v| v as f32).collect::<Vec<_>>().into(),
            t => return Err(bad_dtype(0, t.dtype(), "float32 or int32")),
        };
        let scale = scale_of(inputs)?;
        let zp = inputs.get(2).copied().flatten();
        let qtype = self.q.qtype(zp.map(Tensor::dtype))?;
        let layout = Layout::new(
            x.shape(),
            scale.len(),
            scale_shape(inputs)?,
            zp.map(Tensor::shape),
            &self.q.gran,
        )?;
        let zps = zero_points(zp, scale.len())?;
        let y = match qtype {
            DType::U8 => fake_quantize::<u8>(&xs, &scale, &zps, &layout),
            DType::I8 => fake_quantize::<i8>(&xs, &scale, &zps, &layout),
            d => return Err(bad_dtype(2, d, "uint8 or int8")),
        };
        Ok(vec![Tensor::F32(array(x.shape(), y)?)])
    }
}

#[derive(Debug)]
struct Dequantize {
    gran: Granularity,
}

fn build_dequantize(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    if let Some(d) = output_dtype(ctx)?
        && d != DType::F32
    {
        return Err(OpError::Attr {
            name: "output_dtype".into(),
            msg: format!("{} is not supported", d.name()),
        });
    }
    Ok(Box::new(Dequantize {
        gran: granularity(ctx)?,
    }))
}

impl Op for Dequantize {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !matches!(d, DType::U8 | DType::I8 | DType::I32)
        {
            return Err(bad_dtype(0, d, "uint8, int8 or int32"));
        }
        check_scale_facts(facts(inputs, 1)?)?;
        if let (Some(d), Some(Some(z))) = (x.dtype, inputs.get(2))
            && z.dtype.is_some_and(|zd| zd != d)
        {
            return Err(OpError::Input {
                index: 2,
                msg: format!("zero point type differs from the input's {}", d.name()),
            });
        }
        check_layout_facts(&self.gran, inputs)?;
        Ok(vec![Facts {
            dtype: Some(DType::F32),
            shape: x.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let scale = scale_of(inputs)?;
        let zp = inputs.get(2).copied().flatten();
        if let Some(z) = zp
            && z.dtype() != x.dtype()
        {
            return Err(OpError::Input {
                index: 2,
                msg: format!(
                    "zero point type {} differs from the input's {}",
                    z.dtype().name(),
                    x.dtype().name()
                ),
            });
        }
        let layout = Layout::new(
            x.shape(),
            scale.len(),
            scale_shape(inputs)?,
            zp.map(Tensor::shape),
            &self.gran,
        )?;
        let zps = zero_points(zp, scale.len())?;
        let y = match x {
            Tensor::U8(a) => dequantize(&data(a), &scale, &zps, &layout),
            Tensor::I8(a) => dequantize(&data(a), &scale, &zps, &layout),
            Tensor::I32(a) => dequantize(&data(a), &scale, &zps, &layout),
            t => return Err(bad_dtype(0, t.dtype(), "uint8, int8 or int32")),
        };
        Ok(vec![Tensor::F32(array(x.shape(), y)?)])
    }
}

fn check_scale_facts(s: &Facts) -> OpResult<()> {
    match s.dtype {
        Some(d) if d != DType::F32 => Err(bad_dtype(1, d, "float32")),
        _ => Ok(()),
    }
}

/// Validates the granularity when the shapes are known.
fn check_layout_facts(gran: &Granularity, inputs: &[Option<&Facts>]) -> OpResult<()> {
    let (x, s) = (facts(inputs, 0)?, facts(inputs, 1)?);
    let zp = inputs.get(2).copied().flatten();
    if let (Some(xs), Some(ss)) = (&x.shape, &s.shape) {
        let zs = zp.and_then(|z| z.shape.as_deref());
        if zp.is_none_or(|z| z.shape.is_some()) {
            Layout::new(xs, ss.iter().product(), ss, zs, gran)?;
        }
    }
    Ok(())
}

fn scale_of(inputs: &[Option<&Tensor>]) -> OpResult<Vec<f32>> {
    match input(inputs, 1)? {
        Tensor::F32(a) => Ok(data(a).into_owned()),
        t => Err(bad_dtype(1, t.dtype(), "float32")),
    }
}

fn scale_shape<'a>(inputs: &[Option<&'a Tensor>]) -> OpResult<&'a [usize]> {
    Ok(input(inputs, 1)?.shape())
}

/// The zero points widened to i32 (zeros when absent).
fn zero_points(zp: Option<&Tensor>, n: usize) -> OpResult<Vec<i32>> {
    let Some(z) = zp else { return Ok(vec![0; n]) };
    if z.len() != n {
        return Err(OpError::Input {
            index: 2,
            msg: format!("zero point has {} values, the scale {n}", z.len()),
        });
    }
    match z {
        Tensor::U8(a) => Ok(a.iter().map(|&v| v as i32).collect()),
        Tensor::I8(a) => Ok(a.iter().map(|&v| v as i32).collect()),
        Tensor::I32(a) => Ok(a.iter().copied().collect()),
        t => Err(bad_dtype(2, t.dtype(), "uint8, int8 or int32")),
    }
}

/// A quantized element type.
pub(crate) trait QType: Copy + Send + Sync + Default {
    const MIN: i32;
    const MAX: i32;
    fn from_i32(v: i32) -> Self;
    fn to_i32(self) -> i32;
}

impl QType for u8 {
    const MIN: i32 = 0;
    const MAX: i32 = 255;
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v as u8
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
}

impl QType for i8 {
    const MIN: i32 = -128;
    const MAX: i32 = 127;
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v as i8
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self as i32
    }
}

impl QType for i32 {
    const MIN: i32 = i32::MIN;
    const MAX: i32 = i32::MAX;
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self
    }
}

/// round_half_even(x / s) + zp, saturated to Q: the fused loop body.
#[inline(always)]
fn quantize_one<Q: QType>(x: f32, s: f32, zp: i32) -> Q {
    let (lo, hi) = ((Q::MIN - zp) as f32, (Q::MAX - zp) as f32);
    let v = (x / s).max(lo).min(hi);
    Q::from_i32(round_small_to_i32(v) + zp)
}

/// QuantizeLinear over the whole tensor.
pub(crate) fn quantize<Q: QType>(x: &[f32], scale: &[f32], zp: &[i32], layout: &Layout) -> Vec<Q> {
    let fill = |out: &mut [MaybeUninit<Q>]| {
        layout.for_rows(out, x, scale, zp, |o, xs, p| match p {
            Params::Const(s, z) => {
                let xs = &xs[..o.len()];
                for (o, &v) in o.iter_mut().zip(xs) {
                    o.write(quantize_one(v, s, z));
                }
            }
            Params::Slice(s, z) => {
                let (xs, s, z) = (&xs[..o.len()], &s[..o.len()], &z[..o.len()]);
                for (((o, &v), &s), &z) in o.iter_mut().zip(xs).zip(s).zip(z) {
                    o.write(quantize_one(v, s, z));
                }
            }
        })
    };
    // SAFETY: `for_rows` hands out rows covering all of `out` (its length is `x.len()`),
    // and each arm writes every element of its row or panics on a short input slice.
    unsafe { build_vec(x.len(), fill) }
}

/// QuantizeLinear then DequantizeLinear, element by element: the very expressions of
/// `quantize` and `dequantize`.
#[inline(always)]
fn fake_one<Q: QType>(x: f32, s: f32, zp: i32) -> f32 {
    quantize_one::<Q>(x, s, zp).to_i32().wrapping_sub(zp) as f32 * s
}

/// `dequantize(quantize(x))` in one pass.
pub(crate) fn fake_quantize<Q: QType>(
    x: &[f32],
    scale: &[f32],
    zp: &[i32],
    layout: &Layout,
) -> Vec<f32> {
    let fill = |out: &mut [MaybeUninit<f32>]| {
        layout.for_rows(out, x, scale, zp, |o, xs, p| match p {
            Params::Const(s, z) => {
                let xs = &xs[..o.len()];
                for (o, &v) in o.iter_mut().zip(xs) {
                    o.write(fake_one::<Q>(v, s, z));
                }
            }
            Params::Slice(s, z) => {
                let (xs, s, z) = (&xs[..o.len()], &s[..o.len()], &z[..o.len()]);
                for (((o, &v), &s), &z) in o.iter_mut().zip(xs).zip(s).zip(z) {
                    o.write(fake_one::<Q>(v, s, z));
                }
            }
        })
    };
    // SAFETY: as in `quantize`.
    unsafe { build_vec(x.len(), fill) }
}

/// DequantizeLinear over the whole tensor.
pub(crate) fn dequantize<Q: QType>(
    x: &[Q],
    scale: &[f32],
    zp: &[i32],
    layout: &Layout,
) -> Vec<f32> {
    let fill = |out: &mut [MaybeUninit<f32>]| {
        layout.for_rows(out, x, scale, zp, |o, xs, p| match p {
            Params::Const(s, z) => {
                let xs = &xs[..o.len()];
                for (o, &v) in o.iter_mut().zip(xs) {
                    o.write(v.to_i32().wrapping_sub(z) as f32 * s);
                }
            }
            Params::Slice(s, z) => {
                let (xs, s, z) = (&xs[..o.len()], &s[..o.len()], &z[..o.len()]);
                for (((o, &v), &s), &z) in o.iter_mut().zip(xs).zip(s).zip(z) {
                    o.write(v.to_i32().wrapping_sub(z) as f32 * s);
                }
            }
        })
    };
    // SAFETY: as in `quantize`.
    unsafe { build_vec(x.len(), fill) }
}

#[cfg(test)]
mod tests;
