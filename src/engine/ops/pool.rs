//! Operators: pool family. AveragePool and MaxPool over 1-D, 2-D and 3-D windows
//! (kernel_shape, strides, pads or auto_pad, dilations, ceil_mode, count_include_pad;
//! MaxPool's optional Indices output with storage_order), GlobalAveragePool and
//! GlobalMaxPool.
//!
//! Window geometry follows the ONNX reference (`op_pool_common.py`): with ceil_mode a
//! last window that would start in the right padding is dropped, and with
//! count_include_pad the divisor counts padded positions but not the extra ones
//! ceil_mode adds. The kernels (`window`, `global`) work on one NCHW plane at a time.

mod global;
mod window;

use super::shape::numel;
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input};
use crate::ir::{DType, Facts, Tensor};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("MaxPool", build_max),
    ("AveragePool", build_avg),
    ("LpPool", build_lp),
    ("GlobalMaxPool", build_global_max),
    ("GlobalAveragePool", build_global_avg),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Max,
    Avg,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

#[derive(Debug)]
struct Pool {
    kind: Kind,
    kernel: Vec<usize>,
    strides: Option<Vec<i64>>,
    pads: Option<Vec<i64>>,
    dilations: Option<Vec<i64>>,
    auto_pad: AutoPad,
    ceil: bool,
    count_include_pad: bool,
    /// MaxPool's Indices: column-major spatial order when set.
    col_major: bool,
    /// MaxPool with the Indices output requested.
    indices: bool,
    /// LpPool's `p`: an average with count_include_pad of |x|^p, times the window
    /// size, to the power 1/p (the divisor is the window size when ceil_mode is 0).
    lp: Option<i32>,
}

fn build_max(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(build_pool(ctx, Kind::Max)?))
}

fn build_avg(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(build_pool(ctx, Kind::Avg)?))
}

fn build_lp(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let p = ctx.int_or("p", 2)?;
    let p = i32::try_from(p)
        .ok()
        .filter(|&p| (1..=64).contains(&p))
        .ok_or_else(|| OpError::Attr {
            name: "p".into(),
            msg: format!("{p} is not supported (1 to 64)"),
        })?;
    let mut pool = build_pool(ctx, Kind::Avg)?;
    if pool.ceil {
        return Err(OpError::Unsupported("LpPool with ceil_mode 1".into()));
    }
    pool.count_include_pad = true;
    pool.lp = Some(p);
    Ok(Box::new(pool))
}

fn build_pool(ctx: &BuildCtx, kind: Kind) -> OpResult<Pool> {
    let k = ctx.ints("kernel_shape")?.ok_or_else(|| OpError::Attr {
        name: "kernel_shape".into(),
        msg: "missing".into(),
    })?;
    let kernel = k
        .iter()
        .map(|&v| usize::try_from(v).ok().filter(|&v| v > 0 && v <= LIMIT))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| OpError::Attr {
            name: "kernel_shape".into(),
            msg: format!("{k:?} must be positive (and at most {LIMIT})"),
        })?;
    let auto_pad = match ctx
        .choice(
            "auto_pad",
            "NOTSET",
            &["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
        )?
        .as_str()
    {
        "SAME_UPPER" => AutoPad::SameUpper,
        "SAME_LOWER" => AutoPad::SameLower,
        "VALID" => AutoPad::Valid,
        _ => AutoPad::NotSet,
    };
    Ok(Pool {
        kind,
        kernel,
        strides: ctx.ints("strides")?,
        pads: ctx.ints("pads")?,
        dilations: ctx.ints("dilations")?,
        auto_pad,
        ceil: ctx.int_or("ceil_mode", 0)? != 0,
        count_include_pad: ctx.int_or("count_include_pad", 0)? != 0,
        col_major: ctx.int_or("storage_order", 0)? != 0,
        indices: kind == Kind::Max && ctx.node.output(1).is_some(),
        lp: None,
    })
}

/// Where the windows of one spatial axis lie.
#[derive(Debug, Clone, PartialEq)]
struct Axis {
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    /// Padded length the average divisor counts when count_include_pad (in + both pads).
    padded: usize,
}

impl Axis {
    /// Input position of tap `j` of window `o`, if it lies in the input.
    #[inline]
    fn pos(&self, o: usize, j: usize) -> Option<usize> {
        (o * self.stride + j * self.dilation)
            .checked_sub(self.pad_begin)
            .filter(|&p| p < self.input)
    }

    /// Number of taps of window `o` the average divides by.
    fn count(&self, o: usize, include_pad: bool) -> usize {
        (0..self.kernel)
            .filter(|&j| {
                let p = o * self.stride + j * self.dilation;
                if include_pad {
                    p < self.padded
                } else {
                    self.pos(o, j).is_some()
                }
            })
            .count()
    }
}

/// Bound on kernel sizes, strides, dilations and pads, so window arithmetic cannot overflow.
const LIMIT: usize = crate::ir::MAX_ELEMENTS;

fn positive(v: &Option<Vec<i64>>, n: usize, name: &str) -> OpResult<Vec<usize>> {
    match v {
        None => Ok(vec![1; n]),
        Some(v) if v.len() == n && v.iter().all(|&x| x > 0 && x <= LIMIT as i64) => {
            Ok(v.iter().map(|&x| x as usize).collect())
        }
        Some(v) => Err(OpError::Attr {
            name: name.into(),
            msg: format!("{v:?} must be {n} positive values (at most {LIMIT})"),
        }),
    }
}

impl Pool {
    /// The window geometry of each spatial axis for an input of `shape`.
    fn geometry(&self, shape: &[usize]) -> OpResult<Vec<Axis>> {
        let n = self.kernel.len();
        if shape.len() != n + 2 {
            return Err(OpError::Input {
                index: 0,
                msg: format!(
                    "a {n}-D kernel needs a rank-{} input, got shape {shape:?}",
                    n + 2
                ),
            });
        }
        let strides = positive(&self.strides, n, "strides")?;
        let dilations = positive(&self.dilations, n, "dilations")?;
        let pads: Vec<usize> = match &self.pads {
            Some(p) if self.auto_pad == AutoPad::NotSet => {
                if p.len() != 2 * n || p.iter().any(|&v| !(0..=LIMIT as i64).contains(&v)) {
                    return Err(OpError::Attr {
                        name: "pads".into(),
                        msg: format!(
                            "{p:?} must be {} non-negative values (at most {LIMIT})",
                            2 * n
                        ),
                    });
                }
                p.iter().map(|&v| v as usize).collect()
            }
            _ => vec![0; 2 * n],
        };
        let mut axes = Vec::with_capacity(n);
        for i in 0..n {
            let (input, k, s, d) = (shape[i + 2], self.kernel[i], strides[i], dilations[i]);
            let span = (k - 1) * d + 1;
            let (output, pb, pe) = match self.auto_pad {
                AutoPad::NotSet => {
                    let (pb, pe) = (pads[i], pads[n + i]);
                    let total = input + pb + pe;
                    if total < span {
                        return Err(OpError::Invalid(format!(
                            "window of {span} is larger than the padded input of {total} on spatial axis {i}"
                        )));
                    }
                    let mut out = if self.ceil {
                        (total - span).div_ceil(s) + 1
                    } else {
                        (total - span) / s + 1
                    };
                    // A last window starting in the right padding is dropped.
                    if self.ceil && (out - 1) * s >= input + pb {
                        out -= 1;
                    }
                    (out, pb, pe)
                }
                AutoPad::Valid => {
                    if input < span {
                        return Err(OpError::Invalid(format!(
                            "window of {span} is larger than the input of {input}"
                        )));
                    }
                    ((input - span) / s + 1, 0, 0)
                }
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let out = input.div_ceil(s);
                    let total = ((out.max(1) - 1) * s + span).saturating_sub(input);
                    let small = total / 2;
                    if self.auto_pad == AutoPad::SameUpper {
                        (out, small, total - small)
                    } else {
                        (out, total - small, small)
                    }
                }
            };
            axes.push(Axis {
                input,
                output,
                kernel: k,
                stride: s,
                dilation: d,
                pad_begin: pb,
                padded: input + pb + pe,
            });
        }
        Ok(axes)
    }

    fn out_shape(shape: &[usize], axes: &[Axis]) -> Vec<usize> {
        shape[..2]
            .iter()
            .copied()
            .chain(axes.iter().map(|a| a.output))
            .collect()
    }
}

impl Op for Pool {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        check_dtype(self.kind, f.dtype)?;
        let shape = match &f.shape {
            Some(s) => Some(Pool::out_shape(s, &self.geometry(s)?)),
            None => None,
        };
        let mut out = vec![Facts {
            dtype: f.dtype,
            shape: shape.clone(),
            value: None,
        }];
        if self.indices {
            out.push(Facts {
                dtype: Some(DType::I64),
                shape,
                value: None,
            });
        }
        Ok(out)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        check_dtype(self.kind, Some(x.dtype()))?;
        let axes = self.geometry(x.shape())?;
        let out_shape = Pool::out_shape(x.shape(), &axes);
        numel(&out_shape)?;
        let planes = x.shape()[0] * x.shape()[1];
        if self.indices {
            return window::max_with_indices(x, planes, &axes, &out_shape, self.col_major);
        }
        if let Some(p) = self.lp {
            return Ok(vec![self.lp_pool(x, p, &axes, &out_shape)?]);
        }
        let out = match (self.kind, x) {
            (Kind::Max, Tensor::F32(a)) => Tensor::F32(window::max(a, &axes, &out_shape)?),
            (Kind::Max, Tensor::F64(a)) => Tensor::F64(window::max(a, &axes, &out_shape)?),
            (Kind::Max, Tensor::I8(a)) => Tensor::I8(window::max(a, &axes, &out_shape)?),
            (Kind::Max, Tensor::U8(a)) => Tensor::U8(window::max(a, &axes, &out_shape)?),
            (Kind::Avg, Tensor::F32(a)) => {
                Tensor::F32(window::avg(a, &axes, &out_shape, self.count_include_pad)?)
            }
            (Kind::Avg, Tensor::F64(a)) => {
                Tensor::F64(window::avg(a, &axes, &out_shape, self.count_include_pad)?)
            }
            (_, other) => return Err(bad_dtype(0, other.dtype(), "a supported pooling type")),
        };
        Ok(vec![out])
    }
}

impl Pool {
    /// LpPool (see `lp`), in f64 for either float type.
    fn lp_pool(&self, x: &Tensor, p: i32, axes: &[Axis], out: &[usize]) -> OpResult<Tensor> {
        let k = self.kernel.iter().product::<usize>() as f64;
        let inv = 1.0 / p as f64;
        let pooled = |a: &ndarray::ArrayD<f64>| -> OpResult<ndarray::ArrayD<f64>> {
            let s = window::avg(&a.mapv(|v| v.abs().powi(p)), axes, out, true)?;
            Ok(s.mapv(|v| (v * k).powf(inv)))
        };
        Ok(match x {
            Tensor::F32(a) => Tensor::F32(pooled(&a.mapv(f64::from))?.mapv(|v| v as f32)),
            Tensor::F64(a) => Tensor::F64(pooled(a)?),
            other => return Err(bad_dtype(0, other.dtype(), "float32 or float64")),
        })
    }
}

fn check_dtype(kind: Kind, dtype: Option<DType>) -> OpResult<()> {
    let ok = match (kind, dtype) {
        (_, None) => true,
        (Kind::Max, Some(d)) => matches!(d, DType::F32 | DType::F64 | DType::I8 | DType::U8),
        (Kind::Avg, Some(d)) => matches!(d, DType::F32 | DType::F64),
    };
    match dtype {
        Some(d) if !ok => Err(bad_dtype(
            0,
            d,
            if kind == Kind::Max {
                "float32, float64, int8 or uint8"
            } else {
                "float32 or float64"
            },
        )),
        _ => Ok(()),
    }
}

/// GlobalMaxPool / GlobalAveragePool: one value per (N, C) plane.
#[derive(Debug)]
struct Global {
    kind: Kind,
}

fn build_global_max(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Global { kind: Kind::Max }))
}

fn build_global_avg(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Global { kind: Kind::Avg }))
}

fn global_shape(s: &[usize]) -> OpResult<Vec<usize>> {
    if s.len() < 3 {
        return Err(OpError::Input {
            index: 0,
            msg: format!("expected N, C and spatial axes, got shape {s:?}"),
        });
    }
    Ok(s.iter()
        .enumerate()
        .map(|(i, &d)| if i < 2 { d } else { 1 })
        .collect())
}

impl Op for Global {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        check_dtype(self.kind, f.dtype)?;
        let shape = match &f.shape {
            Some(s) => Some(global_shape(s)?),
            None => None,
        };
        Ok(vec![Facts {
            dtype: f.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        check_dtype(self.kind, Some(x.dtype()))?;
        let out_shape = global_shape(x.shape())?;
        let out = match (self.kind, x) {
            (Kind::Avg, Tensor::F32(a)) => Tensor::F32(global::mean_f32(a, &out_shape)?),
            (Kind::Avg, Tensor::F64(a)) => Tensor::F64(global::mean_f64(a, &out_shape)?),
            (Kind::Max, Tensor::F32(a)) => Tensor::F32(global::max(a, &out_shape)?),
            (Kind::Max, Tensor::F64(a)) => Tensor::F64(global::max(a, &out_shape)?),
            (Kind::Max, Tensor::I8(a)) => Tensor::I8(global::max(a, &out_shape)?),
            (Kind::Max, Tensor::U8(a)) => Tensor::U8(global::max(a, &out_shape)?),
            (_, other) => return Err(bad_dtype(0, other.dtype(), "a supported pooling type")),
        };
        Ok(vec![out])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(kernel: &[usize], strides: &[i64], pads: &[i64], ceil: bool) -> Pool {
        Pool {
            kind: Kind::Avg,
            kernel: kernel.to_vec(),
            strides: Some(strides.to_vec()),
            pads: Some(pads.to_vec()),
            dilations: None,
            auto_pad: AutoPad::NotSet,
            ceil,
            count_include_pad: true,
            col_major: false,
            indices: false,
            lp: None,
        }
    }

    #[test]
    fn lp_pool_is_the_p_norm_of_each_window() {
        let mut p = pool(&[2], &[1], &[0, 1], false);
        p.lp = Some(2);
        let x = Tensor::from_f32(&[1, 1, 3], vec![3.0, -4.0, 2.0]);
        let y = p.run(&[Some(&x)]).unwrap().remove(0).to_f64_vec();
        assert_eq!(y, vec![5.0, 20f64.sqrt() as f32 as f64, 2.0]);
    }

    #[test]
    fn ceil_mode_drops_a_window_starting_in_the_padding() {
        let g = pool(&[3, 3], &[3, 3], &[1, 1, 1, 1], true)
            .geometry(&[1, 3, 2, 2])
            .unwrap();
        assert_eq!(g[0].output, 1);
        assert_eq!(g[0].count(0, true), 3);
        let g = pool(&[1, 1], &[2, 2], &[0, 0, 0, 0], true)
            .geometry(&[1, 1, 2, 2])
            .unwrap();
        assert_eq!(g[0].output, 1);
        let g = pool(&[3, 3], &[2, 2], &[0, 0, 0, 0], true)
            .geometry(&[1, 1, 4, 4])
            .unwrap();
        assert_eq!((g[0].output, g[0].count(1, false)), (2, 2));
    }

    #[test]
    fn same_padding_splits_the_total() {
        let mut p = pool(&[3, 3], &[2, 2], &[0, 0, 0, 0], false);
        p.auto_pad = AutoPad::SameUpper;
        let g = p.geometry(&[1, 1, 5, 5]).unwrap();
        assert_eq!((g[0].output, g[0].pad_begin, g[0].padded), (3, 1, 7));
        p.kernel = vec![2, 2];
        p.strides = None;
        p.auto_pad = AutoPad::SameLower;
        let g = p.geometry(&[1, 1, 4, 4]).unwrap();
        assert_eq!((g[0].output, g[0].pad_begin, g[0].padded), (4, 1, 5));
    }

    #[test]
    fn bad_geometry_is_an_error() {
        assert!(
            pool(&[5, 5], &[1, 1], &[0, 0, 0, 0], false)
                .geometry(&[1, 1, 3, 3])
                .is_err()
        );
        assert!(
            pool(&[2, 2], &[1, 1], &[0, 0, 0, 0], false)
                .geometry(&[1, 3, 3])
                .is_err()
        );
        assert!(
            pool(&[2, 2], &[0, 1], &[0, 0, 0, 0], false)
                .geometry(&[1, 1, 3, 3])
                .is_err()
        );
    }
}
