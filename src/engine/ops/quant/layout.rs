//! Which scale and zero point apply to which element: per tensor, per axis, blocked.
//! The tensor is cut into rows that share one scale (`Params::Const`) or that line up
//! element by element with a run of scales (`Params::Slice`), so the kernels' inner
//! loops never index through the shape.

use rayon::prelude::*;

use super::Granularity;
use crate::engine::ops::elementwise::kernel::{PAR_CHUNK, parallel, wide_on};
use crate::engine::ops::{OpError, OpResult};
use crate::ir::shape::normalize_axis;

/// The quantization parameters of one row.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Params<'a> {
    Const(f32, i32),
    Slice(&'a [f32], &'a [i32]),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Layout {
    /// One scale for everything.
    Tensor,
    /// One scale per index along the axis; the tensor is [outer, channels, inner].
    Axis { channels: usize, inner: usize },
    /// The tensor is [outer, d, inner], the scale [outer, sd, inner]; element (o, j, i)
    /// uses scale (o, j / block, i).
    Blocked {
        d: usize,
        sd: usize,
        block: usize,
        inner: usize,
    },
}

impl Layout {
    pub fn new(
        x: &[usize],
        scale_len: usize,
        scale_shape: &[usize],
        zp_shape: Option<&[usize]>,
        g: &Granularity,
    ) -> OpResult<Layout> {
        if let Some(z) = zp_shape {
            let zn: usize = z.iter().product();
            if zn != scale_len || (z.len() > 1 && z != scale_shape) {
                return Err(OpError::Input {
                    index: 2,
                    msg: format!("zero point shape {z:?} differs from the scale's {scale_shape:?}"),
                });
            }
        }
        if scale_len == 1 && scale_shape.len() <= 1 {
            return Ok(Layout::Tensor);
        }
        if g.per_tensor_only {
            return Err(OpError::Input {
                index: 1,
                msg: format!("scale must be a scalar, got shape {scale_shape:?}"),
            });
        }
        let rank = x.len();
        let axis = normalize_axis(g.axis, rank).ok_or_else(|| OpError::Attr {
            name: "axis".into(),
            msg: format!("{} is out of range for an input of rank {rank}", g.axis),
        })?;
        let (d, inner) = (x[axis], x[axis + 1..].iter().product());
        if scale_shape.len() == 1 && g.block_size == 0 {
            if scale_len != d {
                return Err(OpError::Input {
                    index: 1,
                    msg: format!(
                        "per-axis scale has {scale_len} values, the input {d} along axis {axis}"
                    ),
                });
            }
            return Ok(Layout::Axis { channels: d, inner });
        }
        if scale_shape.len() != rank || g.block_size == 0 {
            return Err(OpError::Input {
                index: 1,
                msg: format!(
                    "scale shape {scale_shape:?} fits neither per-tensor, per-axis nor (with block_size) blocked quantization of {x:?}"
                ),
            });
        }
        let block = g.block_size as usize;
        let sd = scale_shape[axis];
        let same_elsewhere = (0..rank).all(|i| i == axis || scale_shape[i] == x[i]);
        if !same_elsewhere || sd != d.div_ceil(block) {
            return Err(OpError::Input {
                index: 1,
                msg: format!(
                    "blocked scale shape {scale_shape:?} does not match {x:?} with block_size {block} on axis {axis}"
                ),
            });
        }
        Ok(Layout::Blocked {
            d,
            sd,
            block,
            inner,
        })
    }

    /// Calls `f(out_row, x_row, params)` over the whole tensor, in parallel when large.
    pub fn for_rows<T, O, F>(&self, out: &mut [O], x: &[T], scale: &[f32], zp: &[i32], f: F)
    where
        T: Sync,
        O: Send,
        F: Fn(&mut [O], &[T], Params) + Sync + Send,
    {
        let isa = crate::engine::kernels::Isa::current();
        if x.is_empty() || out.len() != x.len() {
            return;
        }
        match *self {
            Layout::Tensor => rows(out, x, PAR_CHUNK, |_, o, xs| {
                wide_on(isa, || f(o, xs, Params::Const(scale[0], zp[0])))
            }),
            Layout::Axis { channels, inner: 1 } => rows(out, x, channels, |_, o, xs| {
                wide_on(isa, || f(o, xs, Params::Slice(scale, zp)))
            }),
            Layout::Axis { channels, inner } => rows(out, x, inner, |r, o, xs| {
                wide_on(isa, || {
                    f(o, xs, Params::Const(scale[r % channels], zp[r % channels]))
                })
            }),
            Layout::Blocked {
                d,
                sd,
                block,
                inner: 1,
            } => rows(out, x, d, |o_idx, o, xs| {
                let base = o_idx * sd;
                let s: Vec<f32> = (0..d).map(|j| scale[base + j / block]).collect();
                let z: Vec<i32> = (0..d).map(|j| zp[base + j / block]).collect();
                wide_on(isa, || f(o, xs, Params::Slice(&s, &z)))
            }),
            Layout::Blocked {
                d,
                sd,
                block,
                inner,
            } => rows(out, x, inner, |r, o, xs| {
                let (o_idx, j) = (r / d, r % d);
                let si = (o_idx * sd + j / block) * inner;
                wide_on(isa, || {
                    f(
                        o,
                        xs,
                        Params::Slice(&scale[si..si + inner], &zp[si..si + inner]),
                    )
                })
            }),
        }
    }
}

/// `f(row_index, out_row, x_row)` over rows of `len` elements (the last may be shorter).
fn rows<T, O, F>(out: &mut [O], x: &[T], len: usize, f: F)
where
    T: Sync,
    O: Send,
    F: Fn(usize, &mut [O], &[T]) + Sync + Send,
{
    let len = len.max(1);
    if parallel(x.len()) {
        let min = PAR_CHUNK.div_ceil(len);
        out.par_chunks_mut(len)
            .zip(x.par_chunks(len))
            .enumerate()
            .with_min_len(min)
            .for_each(|(r, (o, xs))| f(r, o, xs));
    } else {
        out.chunks_mut(len)
            .zip(x.chunks(len))
            .enumerate()
            .for_each(|(r, (o, xs))| f(r, o, xs));
    }
}
