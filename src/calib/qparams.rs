//! Scales, offsets and the quantize/dequantize rules (CALIBRATION.md §7): activations (int8
//! without offset, or uint8 with offset), weights (int8 per tensor or per channel, no search) and
//! biases (int32). Rounding is half-to-even everywhere, as ONNX `QuantizeLinear` does.

use serde::{Deserialize, Serialize};

use super::error::CalibError;
use super::params::{QuantizeAlgo, WeightType};

/// `f32(v)`, replaced by 1.0 when below the smallest normal f32 (or not finite), as in ORT.
fn stored_scale(v: f64) -> Option<f32> {
    let s = v as f32;
    (s >= f32::MIN_POSITIVE && s.is_finite()).then_some(s)
}

/// Quantization parameters of one activation tensor: `scale` and `offset` with
/// `q = clamp(rhe(x/scale) − offset, …)` and `x̂ = (q + offset)·scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationQuant {
    /// int8 without offset, or uint8 with offset.
    pub algo: QuantizeAlgo,
    /// The f32 scale.
    pub scale: f32,
    /// The offset in `[−255, 0]` (HALF_OFFSET) or 0 (NON_OFFSET). ONNX zero point = −offset.
    pub offset: i32,
}

impl ActivationQuant {
    /// Scale and offset of a calibrated range (§7). NON_OFFSET: `T = max(|lo|, |hi|)`,
    /// `scale = f32(T/127)`, offset 0. HALF_OFFSET: `scale = f32((hi − lo)/255)`,
    /// `offset = clamp(rhe(lo/scale), −255, 0)`. A scale below `f32::MIN_POSITIVE` (or a
    /// non-finite range) gives scale 1.0 with offset 0.
    pub fn from_range(algo: QuantizeAlgo, lo: f64, hi: f64) -> ActivationQuant {
        let unit = ActivationQuant {
            algo,
            scale: 1.0,
            offset: 0,
        };
        if !(lo.is_finite() && hi.is_finite()) {
            return unit;
        }
        match algo {
            QuantizeAlgo::NonOffset => match stored_scale(lo.abs().max(hi.abs()) / 127.0) {
                Some(scale) => ActivationQuant { scale, ..unit },
                None => unit,
            },
            QuantizeAlgo::HalfOffset => match stored_scale((hi - lo) / 255.0) {
                Some(scale) => {
                    let off = (lo / f64::from(scale)).round_ties_even();
                    ActivationQuant {
                        scale,
                        offset: off.clamp(-255.0, 0.0) as i32,
                        ..unit
                    }
                }
                None => unit,
            },
        }
    }

    /// The ONNX zero point: 0 for int8, `−offset` (0..=255) for uint8.
    pub fn zero_point(&self) -> i32 {
        -self.offset
    }

    /// The AMCT int8 form of the offset, `−offset − 128` (HALF_OFFSET only).
    pub fn amct_offset(&self) -> i32 {
        -self.offset - 128
    }

    /// Smallest and largest quantized value: −128..=127 (int8) or 0..=255 (uint8).
    pub fn q_bounds(&self) -> (i32, i32) {
        match self.algo {
            QuantizeAlgo::NonOffset => (-128, 127),
            QuantizeAlgo::HalfOffset => (0, 255),
        }
    }

    /// `clamp(rhe(x/scale) − offset, qmin, qmax)`, with `x/scale` in f32 (NaN gives the zero point).
    pub fn quantize(&self, x: f32) -> i32 {
        let (qmin, qmax) = self.q_bounds();
        let r = f64::from((x / self.scale).round_ties_even()) - f64::from(self.offset);
        if r.is_nan() {
            return self.zero_point().clamp(qmin, qmax);
        }
        r.clamp(f64::from(qmin), f64::from(qmax)) as i32
    }

    /// `x̂ = (q + offset)·scale` in f32.
    pub fn dequantize(&self, q: i32) -> f32 {
        (q + self.offset) as f32 * self.scale
    }

    /// `dequantize(quantize(x))`.
    pub fn fake_quant(&self, x: f32) -> f32 {
        self.dequantize(self.quantize(x))
    }
}

/// How a quantized op holds its constant weight, which decides the per-channel axis (ORT's
/// conventions; emit it as the `DequantizeLinear` `axis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WeightLayout {
    /// Conv, W[M, C/g, kH, kW] (depthwise included): axis 0.
    Conv,
    /// ConvTranspose, W[C, M/g, kH, kW]: axis 1. With `group > 1` each scale is shared by the same
    /// in-group output channel of every group (see [`bias_scales`]).
    ConvTranspose {
        /// The `group` attribute.
        group: usize,
    },
    /// Gemm input B: `transB = 0` → axis 1 (B[K, N]); `transB = 1` → axis 0 (B[N, K]).
    Gemm {
        /// The `transB` attribute.
        trans_b: bool,
    },
    /// MatMul with a constant B of rank ≥ 2: axis rank−1 (the output columns); per tensor for a
    /// rank-1 B.
    MatMulB,
    /// Anything else (a constant A, Gather, …): per tensor.
    PerTensor,
}

impl WeightLayout {
    /// The channel axis for a weight of rank `rank`, or `None` for per-tensor (also when the rank
    /// is too small for the layout).
    pub fn channel_axis(self, rank: usize) -> Option<usize> {
        let axis = match self {
            WeightLayout::Conv => 0,
            WeightLayout::ConvTranspose { .. } => 1,
            WeightLayout::Gemm { trans_b } => usize::from(!trans_b),
            WeightLayout::MatMulB if rank >= 2 => rank - 1,
            WeightLayout::MatMulB | WeightLayout::PerTensor => return None,
        };
        (axis < rank).then_some(axis)
    }
}

/// Scales of one weight tensor: `axis = None` for a single per-tensor scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightQuant {
    /// Channel axis (`DequantizeLinear` `axis`), or `None` per tensor.
    pub axis: Option<usize>,
    /// One scale per channel along `axis`, or a single scale.
    pub scales: Vec<f32>,
}

/// `(outer, channels, inner)` sizes around `axis` after checking `data` against `shape`.
fn split_dims(
    len: usize,
    shape: &[usize],
    axis: Option<usize>,
) -> Result<(usize, usize, usize), CalibError> {
    let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if expected != Some(len) {
        return Err(CalibError::WeightShape {
            shape: shape.to_vec(),
            expected: expected.unwrap_or(usize::MAX),
            actual: len,
        });
    }
    match axis {
        None => Ok((1, 1, len)),
        Some(a) if a >= shape.len() => Err(CalibError::AxisOutOfRange {
            axis: a,
            rank: shape.len(),
        }),
        Some(a) => Ok((
            shape[..a].iter().product(),
            shape[a],
            shape[a + 1..].iter().product(),
        )),
    }
}

fn check_finite(what: &'static str, data: &[f32]) -> Result<(), CalibError> {
    match data.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(CalibError::NonFinite {
            what,
            index,
            value: data[index],
        }),
        None => Ok(()),
    }
}

/// `scale = f32(max|w|/127)` over the whole tensor (`axis = None`) or per slice along `axis`;
/// an all-zero channel gets 1.0. Errors on a shape mismatch, a bad axis or a non-finite weight.
pub fn weight_scales(
    data: &[f32],
    shape: &[usize],
    axis: Option<usize>,
) -> Result<Vec<f32>, CalibError> {
    let (_, ch, inner) = split_dims(data.len(), shape, axis)?;
    check_finite("weight", data)?;
    let mut amax = vec![0f32; ch];
    if inner > 0 {
        for (i, block) in data.chunks_exact(inner).enumerate() {
            let m = &mut amax[i % ch];
            *m = block.iter().fold(*m, |a, x| a.max(x.abs()));
        }
    }
    Ok(amax
        .into_iter()
        .map(|a| stored_scale(f64::from(a) / 127.0).unwrap_or(1.0))
        .collect())
}

/// The scales of a weight for an op layout and `weight_type` (VECTOR_TYPE uses the layout's
/// channel axis when it has one; SCALAR_TYPE is always per tensor).
pub fn weight_quant(
    data: &[f32],
    shape: &[usize],
    layout: WeightLayout,
    weight_type: WeightType,
) -> Result<WeightQuant, CalibError> {
    let axis = match weight_type {
        WeightType::Vector => layout.channel_axis(shape.len()),
        WeightType::Scalar => None,
    };
    Ok(WeightQuant {
        axis,
        scales: weight_scales(data, shape, axis)?,
    })
}

/// int8 weights `q = clamp(rhe(w/scale), −127, 127)` with `w/scale` in f32, using
/// `wq.scales[c]` for the elements of channel `c` along `wq.axis`.
pub fn quantize_weights(
    data: &[f32],
    shape: &[usize],
    wq: &WeightQuant,
) -> Result<Vec<i8>, CalibError> {
    let (_, ch, inner) = split_dims(data.len(), shape, wq.axis)?;
    if wq.scales.len() != ch {
        return Err(CalibError::ChannelMismatch {
            what: "weight",
            channels: ch,
            scales: wq.scales.len(),
        });
    }
    let mut out = Vec::with_capacity(data.len());
    if inner > 0 {
        for (i, block) in data.chunks_exact(inner).enumerate() {
            let s = wq.scales[i % ch];
            out.extend(
                block
                    .iter()
                    .map(|&w| (w / s).round_ties_even().clamp(-127.0, 127.0) as i8),
            );
        }
    }
    Ok(out)
}

/// Bias scales `scale_b[c] = f32(scale_x) · f32(scale_w[map(c)])` (an f32 multiply, as in ORT) for
/// `channels` output channels. `map(c)` is 0 for one per-tensor scale, `c` when there is one
/// scale per output channel, and `c mod scales` when `channels` is a multiple of the scale count
/// (ConvTranspose with group > 1: output channel `c` uses its in-group index).
pub fn bias_scales(
    scale_x: f32,
    weight_scales: &[f32],
    channels: usize,
) -> Result<Vec<f32>, CalibError> {
    let k = weight_scales.len();
    if k == 0 || (k != 1 && !channels.is_multiple_of(k)) {
        return Err(CalibError::ChannelMismatch {
            what: "bias",
            channels,
            scales: k,
        });
    }
    Ok((0..channels)
        .map(|c| scale_x * weight_scales[c % k])
        .collect())
}

/// int32 bias `q = clamp(rhe(b/scale_b), −2^31, 2^31−1)` with the scales of [`bias_scales`]; the
/// division is done in f64. Returns the quantized values and the scales.
pub fn quantize_bias(
    bias: &[f32],
    scale_x: f32,
    weight_scales: &[f32],
) -> Result<(Vec<i32>, Vec<f32>), CalibError> {
    check_finite("bias", bias)?;
    let scales = bias_scales(scale_x, weight_scales, bias.len())?;
    let q = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| {
            let r = (f64::from(b) / f64::from(s)).round_ties_even();
            if r.is_nan() {
                0
            } else {
                r.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
            }
        })
        .collect();
    Ok((q, scales))
}

#[cfg(test)]
mod tests;
