//! Operators: MatMul (numpy semantics) and Gemm. float32 products run on the packed
//! GEMM of `kernels::gemm` (the ISA in force); float64 and integer ones on a plain loop.

mod gemm_op;

use ndarray::{ArrayD, IxDyn};

use crate::ir::shape::broadcast_shapes;
use crate::ir::{DType, Facts, Tensor};

use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input};
use crate::engine::kernels::Isa;
use crate::engine::kernels::gemm::{self, BBlock, BSource, Output, PackedA};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[("MatMul", build_matmul), ("Gemm", gemm_op::build)];

/// Element types the products support, with the arithmetic they need.
pub(crate) trait Elem: Copy + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn from_f32(v: f32) -> Self;
    /// `c (+)= alpha · a · b` on a fast kernel, when there is one for this type (the
    /// arguments as `matmul_into` takes them, already checked); `false`: not done.
    #[allow(clippy::too_many_arguments)]
    fn fast_matmul(
        _m: usize,
        _n: usize,
        _k: usize,
        _a: Mat<Self>,
        _b: Mat<Self>,
        _c: &mut [Self],
        _alpha: Self,
        _accumulate: bool,
    ) -> bool {
        false
    }
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Elem for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                self + a * b
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn from_f32(v: f32) -> Self {
                v as $t
            }
        }
    };
}
macro_rules! impl_int {
    ($t:ty) => {
        impl Elem for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                self.wrapping_add(a.wrapping_mul(b))
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn from_f32(v: f32) -> Self {
                v as $t
            }
        }
    };
}
impl_float!(f64);

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        self + a * b
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn fast_matmul(
        m: usize,
        n: usize,
        k: usize,
        a: Mat<f32>,
        b: Mat<f32>,
        c: &mut [f32],
        alpha: f32,
        accumulate: bool,
    ) -> bool {
        let isa = Isa::current();
        let pa = if alpha == 1.0 {
            PackedA::from_fn(isa, m, k, |i, j| a.data[i * a.rs + j * a.cs])
        } else {
            PackedA::from_fn(isa, m, k, |i, j| a.data[i * a.rs + j * a.cs] * alpha)
        };
        let parallel = rayon::current_thread_index().is_none();
        let out = Output {
            c,
            ldc: n,
            bias: None,
            accumulate,
            epilogue: None,
        };
        if b.cs == 1 {
            let offs: Vec<usize> = (0..k).map(|r| r * b.rs).collect();
            let src = BSource::Rows {
                base: b.data,
                offs: &offs,
            };
            gemm::gemm(isa, &pa, n, src, out, parallel);
        } else {
            let pack = |blk: BBlock, dst: &mut [f32]| {
                for (p, panel) in dst.chunks_exact_mut(blk.kc * blk.nr).enumerate() {
                    let c0 = blk.n0 + p * blk.nr;
                    let w = blk.nr.min(blk.n0 + blk.nc - c0);
                    for (kk, row) in panel.chunks_exact_mut(blk.nr).enumerate() {
                        let r = (blk.k0 + kk) * b.rs;
                        for (j, d) in row.iter_mut().enumerate() {
                            *d = if j < w {
                                b.data[r + (c0 + j) * b.cs]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            };
            gemm::gemm(isa, &pa, n, BSource::Pack(&pack), out, parallel);
        }
        true
    }
}
impl_int!(i32);
impl_int!(i64);

/// A strided read-only matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

/// `c[m, n] (row-major, contiguous) = alpha · a[m, k] · b[k, n] (+ c when `accumulate`)`.
pub(crate) fn matmul_into<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<T>,
    b: Mat<T>,
    c: &mut [T],
    alpha: T,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last =
        |x: &Mat<T>, rows: usize, cols: usize| (rows - 1) * x.rs + cols.saturating_sub(1) * x.cs;
    assert!(c.len() >= m * n, "matmul: output too small");
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::ZERO);
        }
        return;
    }
    assert!(
        last(&a, m, k) < a.data.len() && last(&b, k, n) < b.data.len(),
        "matmul: operand too small"
    );
    if T::fast_matmul(m, n, k, a, b, c, alpha, accumulate) {
        return;
    }
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        if !accumulate {
            row.fill(T::ZERO);
        }
        for l in 0..k {
            let av = a.data[i * a.rs + l * a.cs].mul(alpha);
            for (j, cv) in row.iter_mut().enumerate() {
                *cv = cv.mul_add(av, b.data[l * b.rs + j * b.cs]);
            }
        }
    }
}

fn build_matmul(_ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(MatMul))
}

/// `MatMul`: numpy's matmul (1-D operands promoted and the added axis removed, batch
/// dimensions broadcast).
#[derive(Debug)]
struct MatMul;

/// The shapes of one MatMul: batch dims, m, k, n and the output shape.
struct MatMulShape {
    batch: Vec<usize>,
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    out: Vec<usize>,
}

fn matmul_shape(a: &[usize], b: &[usize]) -> OpResult<MatMulShape> {
    if a.is_empty() || b.is_empty() {
        return Err(OpError::Invalid(
            "MatMul needs operands of rank 1 or more".into(),
        ));
    }
    let (m, ka, a_batch) = match a {
        [k] => (1, *k, vec![]),
        _ => (a[a.len() - 2], a[a.len() - 1], a[..a.len() - 2].to_vec()),
    };
    let (kb, n, b_batch) = match b {
        [k] => (*k, 1, vec![]),
        _ => (b[b.len() - 2], b[b.len() - 1], b[..b.len() - 2].to_vec()),
    };
    if ka != kb {
        return Err(OpError::Invalid(format!(
            "MatMul of shapes {a:?} and {b:?}: inner dimensions {ka} and {kb} differ"
        )));
    }
    let batch = broadcast_shapes(&a_batch, &b_batch).ok_or_else(|| {
        OpError::Invalid(format!(
            "MatMul of shapes {a:?} and {b:?}: batch dimensions do not broadcast"
        ))
    })?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(MatMulShape {
        batch,
        a_batch,
        b_batch,
        m,
        k: ka,
        n,
        out,
    })
}

fn check_dtypes(a: Option<DType>, b: Option<DType>) -> OpResult<Option<DType>> {
    for (i, d) in [a, b].into_iter().enumerate() {
        if let Some(d) = d
            && !matches!(d, DType::F32 | DType::F64 | DType::I32 | DType::I64)
        {
            return Err(bad_dtype(i, d, "float32, float64, int32 or int64"));
        }
    }
    if let (Some(x), Some(y)) = (a, b)
        && x != y
    {
        return Err(OpError::Invalid(format!(
            "operands of types {} and {} differ",
            x.name(),
            y.name()
        )));
    }
    Ok(a.or(b))
}

impl Op for MatMul {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (a, b) = (facts(inputs, 0)?, facts(inputs, 1)?);
        let dtype = check_dtypes(a.dtype, b.dtype)?;
        let shape = match (&a.shape, &b.shape) {
            (Some(sa), Some(sb)) => Some(matmul_shape(sa, sb)?.out),
            _ => None,
        };
        Ok(vec![Facts {
            dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        check_dtypes(Some(a.dtype()), Some(b.dtype()))?;
        let s = matmul_shape(a.shape(), b.shape())?;
        Ok(vec![match (a, b) {
            (Tensor::F32(x), Tensor::F32(y)) => Tensor::F32(batched(x, y, &s)?),
            (Tensor::F64(x), Tensor::F64(y)) => Tensor::F64(batched(x, y, &s)?),
            (Tensor::I32(x), Tensor::I32(y)) => Tensor::I32(batched(x, y, &s)?),
            (Tensor::I64(x), Tensor::I64(y)) => Tensor::I64(batched(x, y, &s)?),
            _ => return Err(OpError::Invalid("operand types differ".into())),
        }])
    }
}

/// Strides (in elements) of `dims` right-aligned within `batch`, 0 where broadcast.
fn batch_strides(dims: &[usize], batch: &[usize], matrix: usize) -> Vec<usize> {
    let mut strides = vec![0; batch.len()];
    let mut s = matrix;
    for (i, &d) in dims.iter().enumerate().rev() {
        let j = batch.len() - dims.len() + i;
        strides[j] = if d == 1 { 0 } else { s };
        s *= d;
    }
    strides
}

fn batched<T: Elem>(a: &ArrayD<T>, b: &ArrayD<T>, s: &MatMulShape) -> OpResult<ArrayD<T>> {
    let (ad, bd) = (contiguous(a)?, contiguous(b)?);
    let (m, k, n) = (s.m, s.k, s.n);
    let count: usize = s.batch.iter().product();
    let mut out = vec![T::ZERO; count * m * n];
    // B shared by every batch entry: fold the batch into the rows of A.
    if s.b_batch.iter().all(|&d| d == 1) && s.a_batch.iter().product::<usize>() == count {
        let rows = count * m;
        matmul_into(
            rows,
            n,
            k,
            Mat {
                data: ad,
                rs: k,
                cs: 1,
            },
            Mat {
                data: bd,
                rs: n,
                cs: 1,
            },
            &mut out,
            T::ONE,
            false,
        );
    } else {
        let sa = batch_strides(&s.a_batch, &s.batch, m * k);
        let sb = batch_strides(&s.b_batch, &s.batch, k * n);
        let mut idx = vec![0usize; s.batch.len()];
        for (bi, c) in out.chunks_exact_mut((m * n).max(1)).enumerate().take(count) {
            let oa: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
            let ob: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
            let ma = Mat {
                data: &ad[oa..],
                rs: k,
                cs: 1,
            };
            let mb = Mat {
                data: &bd[ob..],
                rs: n,
                cs: 1,
            };
            matmul_into(m, n, k, ma, mb, c, T::ONE, false);
            if bi + 1 < count {
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    if idx[d] < s.batch[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&s.out), out).map_err(|e| OpError::Invalid(e.to_string()))
}

/// The data of a standard-layout array as a slice.
pub(crate) fn contiguous<T>(a: &ArrayD<T>) -> OpResult<&[T]> {
    a.as_slice()
        .ok_or_else(|| OpError::Invalid("tensor is not in standard layout".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: Tensor, b: Tensor) -> Tensor {
        MatMul.run(&[Some(&a), Some(&b)]).unwrap().remove(0)
    }

    #[test]
    fn one_d_operands_drop_their_axis() {
        let a = Tensor::from_f32(&[3], vec![1., 2., 3.]);
        let b = Tensor::from_f32(&[3], vec![4., 5., 6.]);
        let y = run(a, b);
        assert_eq!(y.shape(), &[] as &[usize]);
        assert_eq!(y.to_f64_vec(), vec![32.0]);
        let a = Tensor::from_f32(&[2], vec![1., 2.]);
        let b = Tensor::from_f32(&[3, 2, 1], vec![1., 1., 2., 2., 3., 3.]);
        let y = run(a, b);
        assert_eq!(y.shape(), &[3, 1]);
        assert_eq!(y.to_f64_vec(), vec![3., 6., 9.]);
    }

    #[test]
    fn batches_broadcast_and_ints_work() {
        let a = Tensor::I64(
            ArrayD::from_shape_vec(IxDyn(&[2, 1, 2, 2]), vec![1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
        );
        let b =
            Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[3, 2, 1]), vec![1, 0, 0, 1, 1, 1]).unwrap());
        let y = run(a, b);
        assert_eq!(y.shape(), &[2, 3, 2, 1]);
        assert_eq!(
            y.to_f64_vec(),
            vec![1., 3., 2., 4., 3., 7., 5., 7., 6., 8., 11., 15.]
        );
    }

    #[test]
    fn mismatched_inner_dims_are_errors() {
        let a = Tensor::from_f32(&[2, 3], vec![0.; 6]);
        let b = Tensor::from_f32(&[2, 3], vec![0.; 6]);
        assert!(MatMul.run(&[Some(&a), Some(&b)]).is_err());
        let fa = Facts::new(DType::F32, vec![2, 3]);
        assert!(MatMul.infer(&[Some(&fa), Some(&fa)]).is_err());
    }
}
