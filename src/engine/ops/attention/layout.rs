//! Data layout of Attention: the 3-D ↔ 4-D head split, the past/new concatenation and
//! the broadcast attention mask.

use super::{Geo, bad};
use crate::engine::ops::OpResult;
use crate::ir::Tensor;

/// `x` in [batch, heads, seq, d] order (from [batch, seq, heads·d] when `rank3`).
pub(super) fn to_bhsd(
    x: Vec<f64>,
    rank3: bool,
    (b, h, s, d): (usize, usize, usize, usize),
) -> Vec<f64> {
    if !rank3 {
        return x;
    }
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                let src = ((bi * s + si) * h + hi) * d;
                let dst = ((bi * h + hi) * s + si) * d;
                out[dst..dst + d].copy_from_slice(&x[src..src + d]);
            }
        }
    }
    out
}

/// `past` then `new` along the sequence of [batch, heads, seq, d] data.
pub(super) fn concat_seq(
    past: Option<&[f64]>,
    new: &[f64],
    bh: usize,
    (ps, s, d): (usize, usize, usize),
) -> Vec<f64> {
    let Some(past) = past else {
        return new.to_vec();
    };
    let mut out = Vec::with_capacity(past.len() + new.len());
    for i in 0..bh {
        out.extend_from_slice(&past[i * ps * d..(i + 1) * ps * d]);
        out.extend_from_slice(&new[i * s * d..(i + 1) * s * d]);
    }
    out
}

/// The attention mask, broadcast to [batch, q_heads, q_len, total] on access.
pub(super) struct Mask {
    values: Vec<f64>,
    dims: [usize; 4],
}

impl Mask {
    pub(super) fn new(t: &Tensor, g: &Geo) -> OpResult<Mask> {
        let s = t.shape();
        if s.is_empty() || s.len() > 4 {
            return Err(bad(format!("attn_mask of shape {s:?}")));
        }
        let mut dims = [1; 4];
        dims[4 - s.len()..].copy_from_slice(s);
        let want = [g.b, g.hq, g.sq];
        if dims[..3].iter().zip(want).any(|(&m, w)| m != 1 && m != w) || dims[3] > g.total() {
            return Err(bad(format!(
                "attn_mask of shape {s:?} does not broadcast to {:?}",
                [g.b, g.hq, g.sq, g.total()]
            )));
        }
        let values = match t {
            Tensor::Bool(a) => a
                .iter()
                .map(|&v| if v { 0.0 } else { f64::NEG_INFINITY })
                .collect(),
            _ => t.to_f64_vec(),
        };
        Ok(Mask { values, dims })
    }

    pub(super) fn at(&self, b: usize, h: usize, i: usize, j: usize) -> f64 {
        let [d0, d1, d2, d3] = self.dims;
        if j >= d3 {
            return f64::NEG_INFINITY;
        }
        let pick = |x: usize, d: usize| if d == 1 { 0 } else { x };
        self.values[((pick(b, d0) * d1 + pick(h, d1)) * d2 + pick(i, d2)) * d3 + j]
    }
}
