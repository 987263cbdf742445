//! Transpose, and the two block rearrangements that are a transpose of a 6-D view:
//! DepthToSpace and SpaceToDepth.

use super::strided::permute;
use super::{row_major, to_array};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{Facts, Tensor};
use crate::map_tensor;

#[derive(Debug)]
struct Transpose {
    /// `None`: reverse the axes.
    perm: Option<Vec<i64>>,
}

pub(super) fn build_transpose(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Transpose {
        perm: ctx.ints("perm")?,
    }))
}

impl Transpose {
    fn perm(&self, rank: usize) -> OpResult<Vec<usize>> {
        let Some(p) = &self.perm else {
            return Ok((0..rank).rev().collect());
        };
        let bad = || OpError::Attr {
            name: "perm".into(),
            msg: format!("{p:?} is not a permutation of 0..{rank}"),
        };
        if p.len() != rank {
            return Err(bad());
        }
        let mut seen = vec![false; rank];
        let mut out = Vec::with_capacity(rank);
        for &a in p {
            let a = usize::try_from(a)
                .ok()
                .filter(|&a| a < rank && !seen[a])
                .ok_or_else(bad)?;
            seen[a] = true;
            out.push(a);
        }
        Ok(out)
    }
}

impl Op for Transpose {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let shape = match &f.shape {
            Some(s) => Some(self.perm(s.len())?.iter().map(|&p| s[p]).collect()),
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
        let shape = x.shape().to_vec();
        let perm = self.perm(shape.len())?;
        let oshape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        Ok(vec![
            map_tensor!(x, a => to_array(&oshape, permute(&row_major(a), &shape, &perm)?)?),
        ])
    }
}

/// DepthToSpace (`to_space`) or SpaceToDepth, in DCR or CRD order.
#[derive(Debug)]
struct Blocks {
    to_space: bool,
    block: usize,
    crd: bool,
}

pub(super) fn build_depth_to_space(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    build_blocks(ctx, true)
}

pub(super) fn build_space_to_depth(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    build_blocks(ctx, false)
}

fn build_blocks(ctx: &BuildCtx, to_space: bool) -> OpResult<Box<dyn Op>> {
    let b = ctx.int("blocksize")?.ok_or_else(|| OpError::Attr {
        name: "blocksize".into(),
        msg: "missing".into(),
    })?;
    let block = usize::try_from(b)
        .ok()
        // Bounded so that blocksize² and the output sizes cannot overflow.
        .filter(|&b| b > 0 && b <= 1 << 15)
        .ok_or_else(|| OpError::Attr {
            name: "blocksize".into(),
            msg: format!("{b} is not in 1..=32768"),
        })?;
    let crd = ctx.choice("mode", "DCR", &["DCR", "CRD"])? == "CRD";
    Ok(Box::new(Blocks {
        to_space,
        block,
        crd,
    }))
}

impl Blocks {
    /// The 6-D view of the input, the permutation to apply, and the output shape.
    fn plan(&self, s: &[usize]) -> OpResult<([usize; 6], [usize; 6], Vec<usize>)> {
        let &[n, c, h, w] = s else {
            return Err(OpError::Input {
                index: 0,
                msg: format!("expected a 4-D NCHW tensor, got shape {s:?}"),
            });
        };
        let b = self.block;
        if self.to_space {
            if c % (b * b) != 0 {
                return Err(OpError::Invalid(format!(
                    "{c} channels are not divisible by blocksize² = {}",
                    b * b
                )));
            }
            let c2 = c / (b * b);
            let out = vec![n, c2, h * b, w * b];
            Ok(if self.crd {
                ([n, c2, b, b, h, w], [0, 1, 4, 2, 5, 3], out)
            } else {
                ([n, b, b, c2, h, w], [0, 3, 4, 1, 5, 2], out)
            })
        } else {
            if h % b != 0 || w % b != 0 {
                return Err(OpError::Invalid(format!(
                    "spatial size {h}×{w} is not divisible by blocksize {b}"
                )));
            }
            let view = [n, c, h / b, b, w / b, b];
            let out = vec![n, c * b * b, h / b, w / b];
            Ok(if self.crd {
                (view, [0, 1, 3, 5, 2, 4], out)
            } else {
                (view, [0, 3, 5, 1, 2, 4], out)
            })
        }
    }
}

impl Op for Blocks {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let shape = match &f.shape {
            Some(s) => Some(self.plan(s)?.2),
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
        let (view, perm, out) = self.plan(x.shape())?;
        Ok(vec![
            map_tensor!(x, a => to_array(&out, permute(&row_major(a), &view, &perm)?)?),
        ])
    }
}
