//! Pow: the output has the base's type; base and exponent types may differ.
//!
//! float32 ^ float32 uses `powf` (squaring for the common constant exponent 2); every
//! other pairing computes in f64 as ONNX Runtime's `std::pow` does, then converts to the
//! base type (truncating for integers). An integer base with a non-negative integral
//! exponent is raised exactly (wrapping), like numpy.

use crate::ir::{DType, Facts, Tensor};

use super::super::elementwise::scalar::{Elem, Num, with_num};
use super::super::util::infer_broadcast;
use super::super::{Op, OpResult, bad_dtype, facts, input};
use super::{view, zip2};

#[derive(Debug)]
pub(super) struct Pow;

fn base_ok(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F64 | DType::I32 | DType::I64)
}

impl Op for Pow {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = facts(inputs, 0)?.dtype
            && !base_ok(d)
        {
            return Err(bad_dtype(0, d, "float32, float64, int32 or int64"));
        }
        if let Some(d) = facts(inputs, 1)?.dtype
            && d == DType::Bool
        {
            return Err(bad_dtype(1, d, "a numeric type"));
        }
        infer_broadcast(inputs, None)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        if !base_ok(a.dtype()) {
            return Err(bad_dtype(0, a.dtype(), "float32, float64, int32 or int64"));
        }
        let y = match (a, b) {
            (Tensor::F32(x), Tensor::F32(e)) => {
                let square = e.len() == 1 && e.iter().all(|&v| v == 2.0);
                if square {
                    Tensor::F32(zip2(x, e, |v: f32, _: f32| v * v)?)
                } else {
                    Tensor::F32(zip2(x, e, f32::powf)?)
                }
            }
            _ => with_num!(a.dtype(), T => {
                with_num!(b.dtype(), E => {
                    T::wrap(zip2(view::<T>(a)?, view::<E>(b)?, |v: T, e: E| T::pow_f64(v, e.to_f64()))?)
                }, return Err(bad_dtype(1, b.dtype(), "a numeric type")))
            }, return Err(bad_dtype(0, a.dtype(), "a numeric type"))),
        };
        Ok(vec![y])
    }
}

/// Raising to an exponent given as f64.
trait PowF64: Num {
    fn pow_f64(self, e: f64) -> Self;
}

impl<T: Num> PowF64 for T {
    #[inline(always)]
    fn pow_f64(self, e: f64) -> Self {
        if !T::IS_FLOAT && e >= 0.0 && e.fract() == 0.0 && e < 1e9 {
            let (mut base, mut n, mut acc) = (self, e as u64, T::ONE);
            while n > 0 {
                if n & 1 == 1 {
                    acc = acc.mul(base);
                }
                base = base.mul(base);
                n >>= 1;
            }
            acc
        } else {
            T::from_f64(self.to_f64().powf(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn mixed_types_follow_the_base() {
        let b = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1, 2, 3]).unwrap());
        let e = Tensor::from_f32(&[3], vec![4.0, 5.0, 0.5]);
        let y = Pow.run(&[Some(&b), Some(&e)]).unwrap().remove(0);
        assert_eq!(y.dtype(), DType::I32);
        assert_eq!(y.to_f64_vec(), vec![1.0, 32.0, 1.0]);
        let f = Tensor::from_f32(&[2], vec![2.0, -3.0]);
        let n = Tensor::from_i64(&[2], vec![3, -1]);
        let y = Pow.run(&[Some(&f), Some(&n)]).unwrap().remove(0);
        assert_eq!(y.dtype(), DType::F32);
        let v = y.to_f64_vec();
        assert_eq!(v[0], 8.0);
        assert!((v[1] + 1.0 / 3.0).abs() < 1e-7);
    }

    #[test]
    fn integer_exponents_are_exact() {
        let b = Tensor::from_i64(&[3], vec![3, -2, 10]);
        let e = Tensor::from_i64(&[3], vec![39, 3, -1]);
        let y = Pow.run(&[Some(&b), Some(&e)]).unwrap().remove(0);
        assert_eq!(y.to_i64_vec().unwrap(), vec![3i64.pow(39), -8, 0]);
    }
}
