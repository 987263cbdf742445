//! `Gemm`: `Y = alpha · A' · B' + beta · C`, A' and B' optionally transposed, C
//! broadcast to `[M, N]` (unidirectionally). C is required before opset 11; opsets 1 and
//! 6 had a `broadcast` attribute (0 = C must already be `[M, N]`).

use ndarray::{ArrayD, IxDyn};

use crate::ir::{DType, Facts, Tensor};

use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};
use super::{Elem, Mat, contiguous, matmul_into};

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let strict_c = ctx.opset < 7 && ctx.int_or("broadcast", 0)? == 0;
    if ctx.opset < 11 && !ctx.has_input(2) {
        return Err(OpError::Input {
            index: 2,
            msg: format!("C is required before opset 11 (model opset {})", ctx.opset),
        });
    }
    Ok(Box::new(Gemm {
        alpha: ctx.float_or("alpha", 1.0)?,
        beta: ctx.float_or("beta", 1.0)?,
        trans_a: ctx.int_or("transA", 0)? != 0,
        trans_b: ctx.int_or("transB", 0)? != 0,
        strict_c,
    }))
}

#[derive(Debug)]
struct Gemm {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    strict_c: bool,
}

impl Gemm {
    /// (M, K, N) from the shapes of A and B.
    fn dims(&self, a: &[usize], b: &[usize]) -> OpResult<(usize, usize, usize)> {
        let (&[a0, a1], &[b0, b1]) = (a, b) else {
            return Err(OpError::Invalid(format!(
                "Gemm needs 2-D A and B, got {a:?} and {b:?}"
            )));
        };
        let (m, ka) = if self.trans_a { (a1, a0) } else { (a0, a1) };
        let (kb, n) = if self.trans_b { (b1, b0) } else { (b0, b1) };
        if ka != kb {
            return Err(OpError::Invalid(format!(
                "Gemm: A' is {m}×{ka} but B' is {kb}×{n} (transA={}, transB={})",
                self.trans_a as i32, self.trans_b as i32
            )));
        }
        Ok((m, ka, n))
    }

    fn check_c(&self, c: &[usize], m: usize, n: usize) -> OpResult<()> {
        let ok = if self.strict_c {
            c == [m, n]
        } else {
            c.len() <= 2
                && c.iter()
                    .rev()
                    .zip([n, m])
                    .all(|(&d, want)| d == 1 || d == want)
        };
        if ok {
            Ok(())
        } else {
            Err(OpError::Input {
                index: 2,
                msg: format!("C of shape {c:?} does not broadcast to [{m}, {n}]"),
            })
        }
    }

    fn compute<T: Elem>(
        &self,
        a: &ArrayD<T>,
        b: &ArrayD<T>,
        c: Option<&ArrayD<T>>,
    ) -> OpResult<ArrayD<T>> {
        let (m, k, n) = self.dims(a.shape(), b.shape())?;
        let (ad, bd) = (contiguous(a)?, contiguous(b)?);
        let (ac, bc) = (a.shape()[1], b.shape()[1]);
        let ma = if self.trans_a {
            Mat {
                data: ad,
                rs: 1,
                cs: ac,
            }
        } else {
            Mat {
                data: ad,
                rs: ac,
                cs: 1,
            }
        };
        let mb = if self.trans_b {
            Mat {
                data: bd,
                rs: 1,
                cs: bc,
            }
        } else {
            Mat {
                data: bd,
                rs: bc,
                cs: 1,
            }
        };
        let mut out = vec![T::ZERO; m * n];
        let accumulate = match c {
            Some(c) if self.beta != 0.0 => {
                self.check_c(c.shape(), m, n)?;
                let cd = contiguous(c)?;
                let beta = T::from_f32(self.beta);
                let (cm, cn) = match c.shape() {
                    [] => (1, 1),
                    [x] => (1, *x),
                    [x, y] => (*x, *y),
                    _ => unreachable!("rank checked in check_c"),
                };
                for (i, row) in out.chunks_exact_mut(n.max(1)).enumerate().take(m) {
                    let src = &cd[if cm == 1 { 0 } else { i * cn }..];
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = src[if cn == 1 { 0 } else { j }].mul(beta);
                    }
                }
                true
            }
            Some(c) => {
                self.check_c(c.shape(), m, n)?;
                false
            }
            None => false,
        };
        matmul_into(
            m,
            n,
            k,
            ma,
            mb,
            &mut out,
            T::from_f32(self.alpha),
            accumulate,
        );
        ArrayD::from_shape_vec(IxDyn(&[m, n]), out).map_err(|e| OpError::Invalid(e.to_string()))
    }
}

fn check_dtype(i: usize, d: Option<DType>) -> OpResult<()> {
    match d {
        Some(d) if !matches!(d, DType::F32 | DType::F64 | DType::I32 | DType::I64) => {
            Err(bad_dtype(i, d, "float32, float64, int32 or int64"))
        }
        _ => Ok(()),
    }
}

impl Op for Gemm {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (a, b) = (facts(inputs, 0)?, facts(inputs, 1)?);
        let c = inputs.get(2).copied().flatten();
        for (i, f) in [Some(a), Some(b), c].into_iter().enumerate() {
            if let Some(f) = f {
                check_dtype(i, f.dtype)?;
                if let (Some(d), Some(d0)) = (f.dtype, a.dtype)
                    && d != d0
                {
                    return Err(OpError::Input {
                        index: i,
                        msg: format!("type {} differs from A's {}", d.name(), d0.name()),
                    });
                }
            }
        }
        let shape = match (&a.shape, &b.shape) {
            (Some(sa), Some(sb)) => {
                let (m, _, n) = self.dims(sa, sb)?;
                if let Some(sc) = c.and_then(|c| c.shape.as_ref()) {
                    self.check_c(sc, m, n)?;
                }
                Some(vec![m, n])
            }
            _ => None,
        };
        Ok(vec![Facts {
            dtype: a.dtype.or(b.dtype),
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let c = inputs.get(2).copied().flatten();
        let mismatch = || OpError::Invalid("A, B and C must have the same type".into());
        macro_rules! go {
            ($v:ident, $x:expr, $y:expr) => {{
                let c = match c {
                    None => None,
                    Some(Tensor::$v(c)) => Some(c),
                    Some(_) => return Err(mismatch()),
                };
                Tensor::$v(self.compute($x, $y, c)?)
            }};
        }
        Ok(vec![match (a, b) {
            (Tensor::F32(x), Tensor::F32(y)) => go!(F32, x, y),
            (Tensor::F64(x), Tensor::F64(y)) => go!(F64, x, y),
            (Tensor::I32(x), Tensor::I32(y)) => go!(I32, x, y),
            (Tensor::I64(x), Tensor::I64(y)) => go!(I64, x, y),
            (x, _) if x.dtype() != b.dtype() => return Err(mismatch()),
            (x, _) => return Err(bad_dtype(0, x.dtype(), "float32, float64, int32 or int64")),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gemm(trans_a: bool, trans_b: bool, alpha: f32, beta: f32) -> Gemm {
        Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
            strict_c: false,
        }
    }

    #[test]
    fn transposes_scales_and_broadcasts_c() {
        // A' = [[1, 2], [3, 4]] given transposed; B' = identity given transposed.
        let a = Tensor::from_f32(&[2, 2], vec![1., 3., 2., 4.]);
        let b = Tensor::from_f32(&[2, 2], vec![1., 0., 0., 1.]);
        let c = Tensor::from_f32(&[2], vec![10., 20.]);
        let y = gemm(true, true, 2.0, 0.5)
            .run(&[Some(&a), Some(&b), Some(&c)])
            .unwrap()
            .remove(0);
        assert_eq!(y.to_f64_vec(), vec![7., 14., 11., 18.]);
        let bad_c = Tensor::from_f32(&[3], vec![0.; 3]);
        assert!(
            gemm(true, true, 1.0, 1.0)
                .run(&[Some(&a), Some(&b), Some(&bad_c)])
                .is_err()
        );
    }

    #[test]
    fn integer_gemm_without_c() {
        let a = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![2, 3]).unwrap());
        let b = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![4, 5]).unwrap());
        let y = gemm(false, false, 1.0, 1.0)
            .run(&[Some(&a), Some(&b), None])
            .unwrap()
            .remove(0);
        assert_eq!(y.to_f64_vec(), vec![23.0]);
    }
}
