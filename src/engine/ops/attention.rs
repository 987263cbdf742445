//! Operators: Attention (opset 23/24), scaled dot-product attention as the ONNX
//! reference computes it, in f64 and rounded once to the input type.
//!
//! Q, K, V are 4-D [batch, heads, seq, head_size] or 3-D [batch, seq, heads·head_size]
//! (then `q_num_heads` and `kv_num_heads` give the heads). `past_key`/`past_value` are
//! prepended along the sequence (giving `present_key`/`present_value`); with fewer K/V
//! heads than Q heads, each K/V head serves a consecutive group of Q heads. Scores are
//! `scale · Q·Kᵀ` (default scale 1/√head_size), then `softcap · tanh(x / softcap)` when
//! `softcap` > 0, plus a bias: the mask (bool: 0 where true, −∞ where false; float:
//! added; a mask shorter than the keys is padded with false/−∞), −∞ beyond the causal
//! frontier `j ≤ i + offset` when `is_causal`, outside the `left_window_size` /
//! `right_window_size` window, and at keys past `nonpad_kv_seqlen[b]`; `offset` is the
//! past length, or `nonpad_kv_seqlen[b] − q_len`. Softmax over the keys gives 0 for a
//! row whose bias is −∞ everywhere. Output 3 (`qk_matmul_output_mode`) is the
//! soft-capped scores (modes 0 and 1), the biased scores (2) or the probabilities (3).

mod layout;

use layout::{Mask, concat_seq, to_bhsd};

use crate::ir::{Facts, Tensor};

use super::elementwise::scalar::{Float, with_float};
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[("Attention", build)];

#[derive(Debug)]
struct Attention {
    causal: bool,
    q_heads: Option<usize>,
    kv_heads: Option<usize>,
    mode: i64,
    scale: Option<f64>,
    softcap: f64,
    left: i64,
    right: i64,
}

fn heads(ctx: &BuildCtx, name: &str) -> OpResult<Option<usize>> {
    ctx.int(name)?
        .map(|v| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| OpError::Attr {
                    name: name.into(),
                    msg: format!("{v} is not a positive count"),
                })
        })
        .transpose()
}

fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let mode = ctx.int_or("qk_matmul_output_mode", 0)?;
    if !(0..=3).contains(&mode) {
        return Err(OpError::Attr {
            name: "qk_matmul_output_mode".into(),
            msg: format!("{mode} is not 0-3"),
        });
    }
    Ok(Box::new(Attention {
        causal: ctx.int_or("is_causal", 0)? != 0,
        q_heads: heads(ctx, "q_num_heads")?,
        kv_heads: heads(ctx, "kv_num_heads")?,
        mode,
        scale: ctx.float("scale")?.map(f64::from),
        softcap: f64::from(ctx.float_or("softcap", 0.0)?),
        left: ctx.int_or("left_window_size", -1)?,
        right: ctx.int_or("right_window_size", -1)?,
    }))
}

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Geo {
    rank3: bool,
    b: usize,
    hq: usize,
    hkv: usize,
    sq: usize,
    /// New keys (without the past).
    skv: usize,
    past: usize,
    dk: usize,
    dv: usize,
}

fn bad(msg: String) -> OpError {
    OpError::Invalid(msg)
}

impl Attention {
    fn geometry(
        &self,
        q: &[usize],
        k: &[usize],
        v: &[usize],
        past: Option<&[usize]>,
    ) -> OpResult<Geo> {
        let split = |hidden: usize, h: Option<usize>, what: &str| -> OpResult<(usize, usize)> {
            let h = h.ok_or_else(|| bad(format!("3-D inputs need the `{what}` attribute")))?;
            if !hidden.is_multiple_of(h) {
                return Err(bad(format!(
                    "hidden size {hidden} is not a multiple of {h} heads"
                )));
            }
            Ok((h, hidden / h))
        };
        let g = match (q, k, v) {
            ([b, sq, hq_d], [kb, skv, hk_d], [vb, vs, hv_d]) => {
                let (hq, dk) = split(*hq_d, self.q_heads, "q_num_heads")?;
                let (hkv, kd) = split(*hk_d, self.kv_heads, "kv_num_heads")?;
                let (_, dv) = split(*hv_d, self.kv_heads, "kv_num_heads")?;
                if kb != b || vb != b || vs != skv || kd != dk {
                    return Err(bad(format!("Q {q:?}, K {k:?} and V {v:?} do not agree")));
                }
                Geo {
                    rank3: true,
                    b: *b,
                    hq,
                    hkv,
                    sq: *sq,
                    skv: *skv,
                    past: 0,
                    dk,
                    dv,
                }
            }
            ([b, hq, sq, dk], [kb, hkv, skv, kd], [vb, vh, vs, dv]) => {
                if kb != b || vb != b || vh != hkv || vs != skv || kd != dk {
                    return Err(bad(format!("Q {q:?}, K {k:?} and V {v:?} do not agree")));
                }
                Geo {
                    rank3: false,
                    b: *b,
                    hq: *hq,
                    hkv: *hkv,
                    sq: *sq,
                    skv: *skv,
                    past: 0,
                    dk: *dk,
                    dv: *dv,
                }
            }
            _ => {
                return Err(bad(format!(
                    "Q {q:?}, K {k:?}, V {v:?}: expected three 3-D or 4-D inputs"
                )));
            }
        };
        if g.hkv == 0 || g.hq % g.hkv != 0 {
            return Err(bad(format!(
                "{} query heads for {} key/value heads",
                g.hq, g.hkv
            )));
        }
        let past = match past {
            None => 0,
            Some([pb, ph, ps, pd]) if *pb == g.b && *ph == g.hkv && *pd == g.dk => *ps,
            Some(p) => return Err(bad(format!("past_key of shape {p:?} does not fit K {k:?}"))),
        };
        Ok(Geo { past, ..g })
    }
}

impl Geo {
    fn total(&self) -> usize {
        self.past + self.skv
    }

    /// Shapes of Y, present_key, present_value, qk_matmul_output.
    fn shapes(&self) -> [Vec<usize>; 4] {
        let y = if self.rank3 {
            vec![self.b, self.sq, self.hq * self.dv]
        } else {
            vec![self.b, self.hq, self.sq, self.dv]
        };
        [
            y,
            vec![self.b, self.hkv, self.total(), self.dk],
            vec![self.b, self.hkv, self.total(), self.dv],
            vec![self.b, self.hq, self.sq, self.total()],
        ]
    }
}

/// The inputs of one call in [batch, heads, seq, d] order, keys and values with the past.
struct Operands {
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    mask: Option<Mask>,
    /// Per batch: the number of valid keys (`nonpad_kv_seqlen`).
    nonpad: Option<Vec<i64>>,
}

/// The four outputs, in [batch, heads, seq, ·] order (Y before the 3-D reshape).
struct Outputs {
    y: Vec<f64>,
    qk: Vec<f64>,
}

impl Attention {
    /// The bias of key `j` for query `i` of batch `b`, head `h`.
    fn bias(&self, ops: &Operands, g: &Geo, (b, h, i, j): (usize, usize, usize, usize)) -> f64 {
        let mut bias = ops.mask.as_ref().map_or(0.0, |m| m.at(b, h, i, j));
        let offset = match &ops.nonpad {
            Some(n) if g.past == 0 => n[b] - g.sq as i64,
            _ => g.past as i64,
        };
        let diff = i as i64 + offset - j as i64;
        let outside = (self.causal && diff < 0)
            || (self.left >= 0 && diff > self.left)
            || (self.right >= 0 && -diff > self.right)
            || ops.nonpad.as_ref().is_some_and(|n| j as i64 >= n[b]);
        if outside {
            bias = f64::NEG_INFINITY;
        }
        bias
    }

    fn compute(&self, ops: &Operands, g: &Geo) -> Outputs {
        let t = g.total();
        let scale = self.scale.unwrap_or(1.0 / (g.dk as f64).sqrt());
        let group = g.hq / g.hkv;
        let mut y = vec![0.0; g.b * g.hq * g.sq * g.dv];
        let mut qk_out = vec![0.0; g.b * g.hq * g.sq * t];
        let (mut scores, mut biased) = (vec![0.0; t], vec![0.0; t]);
        for b in 0..g.b {
            for h in 0..g.hq {
                let kh = b * g.hkv + h / group;
                for i in 0..g.sq {
                    let qrow = &ops.q[((b * g.hq + h) * g.sq + i) * g.dk..][..g.dk];
                    let mut all_masked = true;
                    for j in 0..t {
                        let krow = &ops.k[(kh * t + j) * g.dk..][..g.dk];
                        let mut s = scale * qrow.iter().zip(krow).map(|(a, c)| a * c).sum::<f64>();
                        if self.softcap > 0.0 {
                            s = (s / self.softcap).tanh() * self.softcap;
                        }
                        let bias = self.bias(ops, g, (b, h, i, j));
                        all_masked &= bias == f64::NEG_INFINITY;
                        scores[j] = s;
                        biased[j] = s + bias;
                    }
                    let p = softmax(&biased, all_masked);
                    let row = ((b * g.hq + h) * g.sq + i) * t;
                    let shown = match self.mode {
                        2 => &biased,
                        3 => &p,
                        _ => &scores,
                    };
                    qk_out[row..row + t].copy_from_slice(shown);
                    let out = &mut y[((b * g.hq + h) * g.sq + i) * g.dv..][..g.dv];
                    for (j, &pj) in p.iter().enumerate() {
                        let vrow = &ops.v[(kh * t + j) * g.dv..][..g.dv];
                        for (o, &v) in out.iter_mut().zip(vrow) {
                            *o += pj * v;
                        }
                    }
                }
            }
        }
        Outputs { y, qk: qk_out }
    }
}

/// Softmax of one row as the reference guards it: a row whose maximum is −∞ is shifted
/// by 0, a zero sum divides by 1, and a row masked everywhere gives zeros. NaN propagates.
fn softmax(x: &[f64], all_masked: bool) -> Vec<f64> {
    if all_masked {
        return vec![0.0; x.len()];
    }
    let m = x.iter().fold(f64::NEG_INFINITY, |a, &v| {
        if v.is_nan() || a.is_nan() {
            f64::NAN
        } else {
            a.max(v)
        }
    });
    let shift = if m == f64::NEG_INFINITY { 0.0 } else { m };
    let e: Vec<f64> = x.iter().map(|&v| (v - shift).exp()).collect();
    let s: f64 = e.iter().sum();
    let s = if s == 0.0 { 1.0 } else { s };
    e.into_iter().map(|v| v / s).collect()
}

fn opt<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    inputs.get(i).copied().flatten()
}

fn wrap<F: Float>(shape: &[usize], v: &[f64]) -> OpResult<Tensor> {
    let data = v.iter().map(|&x| F::from_f64(x)).collect();
    Ok(F::wrap(super::elementwise::kernel::array(shape, data)?))
}

impl Op for Attention {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (q, k, v) = (facts(inputs, 0)?, facts(inputs, 1)?, facts(inputs, 2)?);
        if let Some(d) = q.dtype
            && !d.is_float()
        {
            return Err(bad_dtype(0, d, "float32 or float64"));
        }
        let past = inputs.get(4).copied().flatten();
        let shapes = match (&q.shape, &k.shape, &v.shape, past.map(|p| &p.shape)) {
            (Some(qs), Some(ks), Some(vs), None) => Some(self.geometry(qs, ks, vs, None)?.shapes()),
            (Some(qs), Some(ks), Some(vs), Some(Some(ps))) => {
                Some(self.geometry(qs, ks, vs, Some(ps))?.shapes())
            }
            _ => None,
        };
        Ok((0..4)
            .map(|i| Facts {
                dtype: q.dtype,
                shape: shapes.as_ref().map(|s| s[i].clone()),
                value: None,
            })
            .collect())
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (q, k, v) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let (pk, pv) = (opt(inputs, 4), opt(inputs, 5));
        if pk.is_some() != pv.is_some() {
            return Err(bad("past_key and past_value must be given together".into()));
        }
        let g = self.geometry(q.shape(), k.shape(), v.shape(), pk.map(|t| t.shape()))?;
        if let Some(p) = pv
            && p.shape() != [g.b, g.hkv, g.past, g.dv]
        {
            return Err(bad(format!(
                "past_value of shape {:?} does not fit V {:?}",
                p.shape(),
                v.shape()
            )));
        }
        for (i, t) in [(1, k), (2, v)]
            .into_iter()
            .chain(pk.map(|t| (4, t)))
            .chain(pv.map(|t| (5, t)))
        {
            if t.dtype() != q.dtype() {
                return Err(bad_dtype(i, t.dtype(), q.dtype().name()));
            }
        }
        let nonpad = opt(inputs, 6)
            .map(|t| {
                t.to_i64_vec()
                    .ok_or_else(|| bad_dtype(6, t.dtype(), "int64"))
            })
            .transpose()?;
        if let Some(n) = &nonpad
            && (n.len() != g.b || pk.is_some())
        {
            return Err(bad(
                "nonpad_kv_seqlen needs one length per batch and no past".into(),
            ));
        }
        let bh = g.b * g.hkv;
        let k4 = to_bhsd(k.to_f64_vec(), g.rank3, (g.b, g.hkv, g.skv, g.dk));
        let v4 = to_bhsd(v.to_f64_vec(), g.rank3, (g.b, g.hkv, g.skv, g.dv));
        let ops = Operands {
            q: to_bhsd(q.to_f64_vec(), g.rank3, (g.b, g.hq, g.sq, g.dk)),
            k: concat_seq(
                pk.map(|t| t.to_f64_vec()).as_deref(),
                &k4,
                bh,
                (g.past, g.skv, g.dk),
            ),
            v: concat_seq(
                pv.map(|t| t.to_f64_vec()).as_deref(),
                &v4,
                bh,
                (g.past, g.skv, g.dv),
            ),
            mask: opt(inputs, 3).map(|m| Mask::new(m, &g)).transpose()?,
            nonpad,
        };
        let out = self.compute(&ops, &g);
        let y = if g.rank3 {
            // [b, h, s, dv] → [b, s, h·dv]: the inverse of `to_bhsd`.
            let mut t = vec![0.0; out.y.len()];
            for b in 0..g.b {
                for h in 0..g.hq {
                    for s in 0..g.sq {
                        let src = ((b * g.hq + h) * g.sq + s) * g.dv;
                        let dst = ((b * g.sq + s) * g.hq + h) * g.dv;
                        t[dst..dst + g.dv].copy_from_slice(&out.y[src..src + g.dv]);
                    }
                }
            }
            t
        } else {
            out.y
        };
        let shapes = g.shapes();
        with_float!(q.dtype(), F => Ok(vec![
            wrap::<F>(&shapes[0], &y)?,
            wrap::<F>(&shapes[1], &ops.k)?,
            wrap::<F>(&shapes[2], &ops.v)?,
            wrap::<F>(&shapes[3], &out.qk)?,
        ]), Err(bad_dtype(0, q.dtype(), "float32 or float64")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> Attention {
        Attention {
            causal: false,
            q_heads: None,
            kv_heads: None,
            mode: 0,
            scale: Some(1.0),
            softcap: 0.0,
            left: -1,
            right: -1,
        }
    }

    #[test]
    fn one_query_two_keys() {
        // Q·K = [0, ln 3] with scale 1: probabilities [1/4, 3/4].
        let q = Tensor::from_f32(&[1, 1, 1, 1], vec![1.0]);
        let k = Tensor::from_f32(&[1, 1, 2, 1], vec![0.0, 3f32.ln()]);
        let v = Tensor::from_f32(&[1, 1, 2, 1], vec![4.0, 8.0]);
        let y = op().run(&[Some(&q), Some(&k), Some(&v)]).unwrap();
        let got = y[0].to_f64_vec()[0];
        assert!((got - 7.0).abs() < 1e-5, "{got}");
        let causal = Attention {
            causal: true,
            ..op()
        };
        let y = causal.run(&[Some(&q), Some(&k), Some(&v)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![4.0]);
        // A mask that hides everything gives zeros.
        let m = Tensor::Bool(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[1, 2]), false));
        let y = op().run(&[Some(&q), Some(&k), Some(&v), Some(&m)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![0.0]);
    }

    #[test]
    fn three_d_layout_round_trips() {
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        // [b=1, s=2, h=3, d=2] → [b, h, s, d].
        let y = to_bhsd(x, true, (1, 3, 2, 2));
        assert_eq!(
            y,
            vec![0.0, 1.0, 6.0, 7.0, 2.0, 3.0, 8.0, 9.0, 4.0, 5.0, 10.0, 11.0]
        );
    }
}
