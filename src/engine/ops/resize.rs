//! Operators: resize family. `Resize` (opsets 10, 11, 13, 18, 19): nearest (every
//! nearest_mode), n-linear and cubic (with antialias), every coordinate transformation
//! mode, scales or sizes, `axes` and keep_aspect_ratio_policy.
//!
//! Semantics follow the ONNX reference implementation, which the backend tests were
//! generated with: resizing is separable, so each resized axis gets a table mapping
//! output positions to input taps and weights (`taps`), and the kernels (`kernels`)
//! apply the tables. Nearest is one gather over all axes (with fast paths for integer
//! upsampling factors); linear and cubic run one pass per axis, with a fused pass for
//! bilinear resizing of the two innermost axes.

mod kernels;
mod taps;

use super::shape::{has, with_elem};
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, facts, input};
use crate::ir::{DType, Facts, Tensor};

use taps::{Coord, NearestMode};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[("Resize", build_resize)];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// Interpolation settings shared by every axis.
#[derive(Debug, Clone)]
struct Interp {
    mode: Mode,
    coord: Coord,
    nearest: NearestMode,
    cubic_a: f64,
    exclude_outside: bool,
    antialias: bool,
    extrapolation: f32,
}

#[derive(Debug)]
struct Resize {
    interp: Interp,
    axes: Option<Vec<i64>>,
    policy: Policy,
    /// Input positions of roi, scales and sizes (Resize-10 has only scales, at 1).
    roi_at: Option<usize>,
    scales_at: usize,
    sizes_at: Option<usize>,
}

fn build_resize(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let old = ctx.opset < 11;
    let modes: &[&str] = if old {
        &["nearest", "linear"]
    } else {
        &["nearest", "linear", "cubic"]
    };
    let mode = match ctx.choice("mode", "nearest", modes)?.as_str() {
        "linear" => Mode::Linear,
        "cubic" => Mode::Cubic,
        _ => Mode::Nearest,
    };
    // Resize-10 had neither attribute: asymmetric coordinates, ORT's "simple" rounding.
    let (coord, nearest) = if old {
        (Coord::Asymmetric, NearestMode::Simple)
    } else {
        let coord = ctx.choice(
            "coordinate_transformation_mode",
            "half_pixel",
            &[
                "half_pixel",
                "half_pixel_symmetric",
                "pytorch_half_pixel",
                "align_corners",
                "asymmetric",
                "tf_crop_and_resize",
            ],
        )?;
        let nearest = ctx.choice(
            "nearest_mode",
            "round_prefer_floor",
            &["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
        )?;
        (Coord::parse(&coord), NearestMode::parse(&nearest))
    };
    let antialias = ctx.int_or("antialias", 0)? != 0;
    if antialias && mode == Mode::Nearest {
        return Err(OpError::Attr {
            name: "antialias".into(),
            msg: "is not defined for mode nearest".into(),
        });
    }
    let policy = match ctx
        .choice(
            "keep_aspect_ratio_policy",
            "stretch",
            &["stretch", "not_larger", "not_smaller"],
        )?
        .as_str()
    {
        "not_larger" => Policy::NotLarger,
        "not_smaller" => Policy::NotSmaller,
        _ => Policy::Stretch,
    };
    let interp = Interp {
        mode,
        coord,
        nearest,
        cubic_a: ctx.float_or("cubic_coeff_a", -0.75)? as f64,
        exclude_outside: ctx.int_or("exclude_outside", 0)? != 0,
        antialias,
        extrapolation: ctx.float_or("extrapolation_value", 0.0)?,
    };
    let (roi_at, scales_at, sizes_at) = if old {
        (None, 1, None)
    } else {
        (Some(1), 2, Some(3))
    };
    Ok(Box::new(Resize {
        interp,
        axes: ctx.ints("axes")?,
        policy,
        roi_at,
        scales_at,
        sizes_at,
    }))
}

/// One resized axis: lengths, scale factor and (tf_crop_and_resize) region of interest.
#[derive(Debug, Clone, PartialEq)]
struct AxisResize {
    axis: usize,
    in_len: usize,
    out_len: usize,
    scale: f64,
    roi: (f64, f64),
}

/// The operand values of one run: roi, scales and sizes (empty = absent).
#[derive(Debug, Default)]
struct Operands {
    roi: Vec<f64>,
    scales: Vec<f64>,
    sizes: Vec<i64>,
}

impl Resize {
    /// Output shape and the axes that actually change (identity axes are skipped).
    fn plan(&self, shape: &[usize], ops: &Operands) -> OpResult<(Vec<usize>, Vec<AxisResize>)> {
        let r = shape.len();
        let axes: Vec<usize> = match &self.axes {
            None => (0..r).collect(),
            Some(a) => {
                let mut seen = vec![false; r];
                let mut out = Vec::with_capacity(a.len());
                for &v in a {
                    let k = super::shape::axis(v, r, "resize axis")?;
                    if std::mem::replace(&mut seen[k], true) {
                        return Err(OpError::Attr {
                            name: "axes".into(),
                            msg: format!("axis {v} is repeated"),
                        });
                    }
                    out.push(k);
                }
                out
            }
        };
        let n = axes.len();
        let mut out_shape = shape.to_vec();
        let mut scales = vec![1.0f64; n];
        if !ops.sizes.is_empty() {
            if ops.sizes.len() != n {
                return Err(OpError::Invalid(format!(
                    "{} sizes for {n} resized axes",
                    ops.sizes.len()
                )));
            }
            for (i, &a) in axes.iter().enumerate() {
                let s = super::shape::dim(ops.sizes[i], "resize: size")?;
                if shape[a] == 0 && s != 0 {
                    return Err(OpError::Invalid(format!(
                        "cannot resize the empty axis {a} to {s}"
                    )));
                }
                out_shape[a] = s;
                scales[i] = if shape[a] == 0 {
                    1.0
                } else {
                    s as f64 / shape[a] as f64
                };
            }
            if self.policy != Policy::Stretch {
                let pick = if self.policy == Policy::NotLarger {
                    f64::min
                } else {
                    f64::max
                };
                let s = scales.iter().copied().reduce(pick).unwrap_or(1.0);
                for (i, &a) in axes.iter().enumerate() {
                    scales[i] = s;
                    out_shape[a] = (s * shape[a] as f64 + 0.5).floor() as usize;
                }
            }
        } else if !ops.scales.is_empty() {
            if ops.scales.len() != n {
                return Err(OpError::Invalid(format!(
                    "{} scales for {n} resized axes",
                    ops.scales.len()
                )));
            }
            for (i, &a) in axes.iter().enumerate() {
                let s = ops.scales[i];
                if !(s > 0.0 && s.is_finite()) {
                    return Err(OpError::Invalid(format!(
                        "scale {s} for axis {a} must be positive"
                    )));
                }
                scales[i] = s;
                out_shape[a] = (s * shape[a] as f64).floor() as usize;
            }
        } else {
            return Err(OpError::Invalid(
                "Resize needs either scales or sizes".into(),
            ));
        }
        super::shape::numel(&out_shape)?;
        let crop = self.interp.coord == Coord::TfCropAndResize;
        if crop && ops.roi.len() != 2 * n {
            return Err(OpError::Invalid(format!(
                "tf_crop_and_resize needs {} roi values, got {}",
                2 * n,
                ops.roi.len()
            )));
        }
        let mut plan = Vec::new();
        for (i, &a) in axes.iter().enumerate() {
            let roi = if crop {
                (ops.roi[i], ops.roi[n + i])
            } else {
                (0.0, 1.0)
            };
            let identity = (scales[i] - 1.0).abs() <= 1e-9
                && out_shape[a] == shape[a]
                && (!crop || roi == (0.0, 1.0));
            if !identity {
                plan.push(AxisResize {
                    axis: a,
                    in_len: shape[a],
                    out_len: out_shape[a],
                    scale: scales[i],
                    roi,
                });
            }
        }
        Ok((out_shape, plan))
    }

    /// The operands from runtime tensors (`get(i)` = input `i` if present).
    fn operands<'a>(&self, get: impl Fn(usize) -> Option<&'a Tensor>) -> OpResult<Operands> {
        let floats = |t: Option<&Tensor>| t.map(|t| t.to_f64_vec()).unwrap_or_default();
        let sizes = match self.sizes_at.and_then(&get) {
            Some(t) => super::shape::int_values(t, 3, "sizes")?,
            None => Vec::new(),
        };
        Ok(Operands {
            roi: floats(self.roi_at.and_then(&get)),
            scales: floats(get(self.scales_at)),
            sizes,
        })
    }
}

impl Op for Resize {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        if let Some(dt) = f.dtype
            && self.interp.mode != Mode::Nearest
            && dt != DType::F32
        {
            return Err(OpError::Unsupported(format!(
                "{:?} resizing of {} tensors",
                self.interp.mode,
                dt.name()
            )));
        }
        let unknown = Ok(vec![Facts::unknown_shape(f.dtype)]);
        // The shape depends on the values of scales and sizes (roi only moves samples).
        let mut known = Vec::new();
        for i in [Some(self.scales_at), self.sizes_at].into_iter().flatten() {
            if has(inputs, i) {
                match inputs[i].and_then(|f| f.value.as_deref()) {
                    Some(t) => known.push((i, t)),
                    None => return unknown,
                }
            }
        }
        let Some(shape) = &f.shape else {
            return unknown;
        };
        let get = |i: usize| known.iter().find(|(k, _)| *k == i).map(|(_, t)| *t);
        let mut ops = self.operands(get)?;
        if self.interp.coord == Coord::TfCropAndResize {
            // The roi is checked when running; its length is needed only for the shape check.
            let n = self.axes.as_ref().map_or(shape.len(), |a| a.len());
            ops.roi = vec![0.0; 2 * n];
        }
        Ok(vec![Facts {
            dtype: f.dtype,
            shape: Some(self.plan(shape, &ops)?.0),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let ops = self.operands(|i| inputs.get(i).copied().flatten())?;
        let (out_shape, plan) = self.plan(x.shape(), &ops)?;
        let out = match self.interp.mode {
            Mode::Nearest => {
                with_elem!(x.dtype(), T => kernels::nearest::<T>(x, &out_shape, &plan, &self.interp)?)
            }
            _ => match x {
                Tensor::F32(a) => kernels::interpolate(a, &out_shape, &plan, &self.interp)?,
                other => {
                    return Err(super::bad_dtype(
                        0,
                        other.dtype(),
                        "float32 for linear and cubic modes",
                    ));
                }
            },
        };
        Ok(vec![out])
    }
}
