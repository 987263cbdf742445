//! Pad: constant, reflect, edge and wrap modes; negative pads crop.
//!
//! Each output axis maps its positions to a source position (or to the constant);
//! rows are then filled with one memcpy for the interior and a few edge elements.

use super::{Elem, const_ints, has, int_values, numel, row_major, to_array, typed, with_elem};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{Facts, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// Pad-1/Pad-2 take pads and value as attributes; from opset 11 they are inputs
/// (pads, constant_value, and axes from opset 18).
#[derive(Debug)]
struct Pad {
    mode: Mode,
    attr_pads: Option<Vec<i64>>,
    attr_value: f64,
}

pub(super) fn build_pad(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let mode = match ctx
        .choice("mode", "constant", &["constant", "reflect", "edge", "wrap"])?
        .as_str()
    {
        "reflect" => Mode::Reflect,
        "edge" => Mode::Edge,
        "wrap" => Mode::Wrap,
        _ => Mode::Constant,
    };
    let attr_pads = if ctx.opset < 11 {
        let name = if ctx.opset < 2 { "paddings" } else { "pads" };
        Some(ctx.ints(name)?.ok_or_else(|| OpError::Attr {
            name: name.into(),
            msg: "missing".into(),
        })?)
    } else {
        None
    };
    Ok(Box::new(Pad {
        mode,
        attr_pads,
        attr_value: ctx.float_or("value", 0.0)? as f64,
    }))
}

/// Per axis: (pad before, pad after), possibly negative.
fn per_axis(rank: usize, pads: &[i64], axes: Option<&[i64]>) -> OpResult<Vec<(i64, i64)>> {
    let axes: Vec<usize> = match axes {
        None => (0..rank).collect(),
        Some(a) => a
            .iter()
            .map(|&a| super::axis(a, rank, "pad axis"))
            .collect::<OpResult<_>>()?,
    };
    if pads.len() != 2 * axes.len() {
        return Err(OpError::Invalid(format!(
            "{} pads for {} axes (need twice as many)",
            pads.len(),
            axes.len()
        )));
    }
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[a] = (pads[i], pads[axes.len() + i]);
    }
    Ok(out)
}

fn padded_shape(shape: &[usize], pads: &[(i64, i64)]) -> OpResult<Vec<usize>> {
    shape
        .iter()
        .zip(pads)
        .map(|(&d, &(b, e))| {
            let n = (d as i64).checked_add(b).and_then(|n| n.checked_add(e));
            n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                OpError::Invalid(format!(
                    "pads ({b}, {e}) give an invalid size for dimension {d}"
                ))
            })
        })
        .collect()
}

/// Source position of each output position along one axis (`None`: the constant).
fn axis_map(d: usize, out: usize, before: i64, mode: Mode) -> OpResult<Vec<Option<usize>>> {
    let n = d as i64;
    if n == 0 && out > 0 && mode != Mode::Constant {
        return Err(OpError::Invalid(format!(
            "{mode:?} padding of an empty axis"
        )));
    }
    Ok((0..out as i64)
        .map(|o| {
            let s = o.saturating_sub(before);
            if (0..n).contains(&s) {
                return Some(s as usize);
            }
            match mode {
                Mode::Constant => None,
                Mode::Edge => Some(s.clamp(0, n - 1) as usize),
                Mode::Wrap => Some(s.rem_euclid(n) as usize),
                Mode::Reflect if n == 1 => Some(0),
                Mode::Reflect => {
                    let p = 2 * (n - 1);
                    let m = s.rem_euclid(p);
                    Some(if m < n { m } else { p - m } as usize)
                }
            }
        })
        .collect())
}

fn pad<T: Elem>(
    x: &Tensor,
    out_shape: &[usize],
    maps: &[Vec<Option<usize>>],
    last_before: i64,
    value: T,
) -> OpResult<Tensor> {
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    let n = numel(out_shape)?;
    let mut out = vec![value; n];
    let r = out_shape.len();
    if n == 0 || r == 0 {
        if r == 0 {
            out = data.to_vec();
        }
        return Ok(T::into_tensor(to_array(out_shape, out)?));
    }
    let st = crate::ir::shape::strides(x.shape());
    let last = &maps[r - 1];
    // The interior of the last axis (outputs copying the input row): one memcpy per row.
    let (n_out, n_in) = (last.len() as i64, x.shape()[r - 1] as i64);
    let lo = last_before.clamp(0, n_out) as usize;
    let hi = last_before.saturating_add(n_in).clamp(lo as i64, n_out) as usize;
    let inner = out_shape[r - 1];
    let mut idx = vec![0usize; r - 1];
    for row in out.chunks_exact_mut(inner) {
        let base: Option<usize> = idx
            .iter()
            .enumerate()
            .try_fold(0, |acc, (k, &i)| maps[k][i].map(|s| acc + s * st[k]));
        if let Some(b) = base {
            if hi > lo
                && let Some(s0) = last[lo]
            {
                row[lo..hi].copy_from_slice(&data[b + s0..b + s0 + hi - lo]);
            }
            for o in (0..lo).chain(hi..last.len()) {
                if let Some(s) = last[o] {
                    row[o] = data[b + s];
                }
            }
        }
        for k in (0..r - 1).rev() {
            idx[k] += 1;
            if idx[k] < out_shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Ok(T::into_tensor(to_array(out_shape, out)?))
}

impl Op for Pad {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let unknown = Ok(vec![Facts::unknown_shape(f.dtype)]);
        let pads = match &self.attr_pads {
            Some(p) => p.clone(),
            None => match const_ints(inputs, 1, "pads")? {
                Some(p) => p,
                None => return unknown,
            },
        };
        let axes = match (
            self.attr_pads.is_none() && has(inputs, 3),
            const_ints(inputs, 3, "axes")?,
        ) {
            (true, None) => return unknown,
            (_, a) => a,
        };
        let Some(shape) = &f.shape else {
            return unknown;
        };
        let p = per_axis(shape.len(), &pads, axes.as_deref())?;
        Ok(vec![Facts {
            dtype: f.dtype,
            shape: Some(padded_shape(shape, &p)?),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (pads, axes) = match &self.attr_pads {
            Some(p) => (p.clone(), None),
            None => (
                int_values(input(inputs, 1)?, 1, "pads")?,
                super::opt_ints(inputs, 3, "axes")?,
            ),
        };
        let p = per_axis(x.rank(), &pads, axes.as_deref())?;
        let out_shape = padded_shape(x.shape(), &p)?;
        numel(&out_shape)?;
        let maps = x
            .shape()
            .iter()
            .zip(&p)
            .zip(&out_shape)
            .map(|((&d, &(b, _)), &o)| axis_map(d, o, b, self.mode))
            .collect::<OpResult<Vec<_>>>()?;
        let value = inputs.get(2).copied().flatten().filter(|t| !t.is_empty());
        with_elem!(x.dtype(), T => {
            let v: T = match value {
                Some(t) => match T::array_of(t) {
                    Some(a) => a.iter().next().copied().unwrap_or(T::from_f64(0.0)),
                    None => T::from_f64(t.to_f64_vec()[0]),
                },
                None => T::from_f64(self.attr_value),
            };
            pad::<T>(x, &out_shape, &maps, p.last().map_or(0, |p| p.0), v)
        })
        .map(|t| vec![t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maps_per_mode() {
        let m = |mode| axis_map(3, 8, 3, mode).unwrap();
        let some = |v: &[usize]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        assert_eq!(m(Mode::Reflect), some(&[1, 2, 1, 0, 1, 2, 1, 0]));
        assert_eq!(m(Mode::Edge), some(&[0, 0, 0, 0, 1, 2, 2, 2]));
        assert_eq!(m(Mode::Wrap), some(&[0, 1, 2, 0, 1, 2, 0, 1]));
        assert_eq!(
            m(Mode::Constant),
            vec![None, None, None, Some(0), Some(1), Some(2), None, None]
        );
        // Negative pads crop.
        assert_eq!(axis_map(4, 2, -1, Mode::Constant).unwrap(), some(&[1, 2]));
        assert!(axis_map(0, 2, 1, Mode::Edge).is_err());
    }

    #[test]
    fn pads_constant_2d() {
        let x = Tensor::from_i64(&[2, 2], vec![1, 2, 3, 4]);
        let op = Pad {
            mode: Mode::Constant,
            attr_pads: Some(vec![1, 0, 0, 1]),
            attr_value: 9.0,
        };
        let y = op.run(&[Some(&x)]).unwrap();
        assert_eq!(y[0].shape(), &[3, 3]);
        assert_eq!(y[0].to_i64_vec().unwrap(), vec![9, 9, 9, 1, 2, 9, 3, 4, 9]);
    }
}
