//! IsNaN and IsInf: bool tensors classifying float values (any float type).

use ndarray::ArrayD;

use crate::ir::{DType, Facts, Tensor};

use super::kernel::map_array;
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};

/// Which values are flagged.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Test {
    NaN,
    /// IsInf: detect +∞, detect −∞.
    Inf {
        pos: bool,
        neg: bool,
    },
}

#[derive(Debug)]
struct Classify(Test);

pub(super) fn build_isnan(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Classify(Test::NaN)))
}

pub(super) fn build_isinf(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let flag = |name: &str| -> OpResult<bool> {
        match ctx.int_or(name, 1)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(OpError::Attr {
                name: name.into(),
                msg: format!("{v} is not 0 or 1"),
            }),
        }
    };
    Ok(Box::new(Classify(Test::Inf {
        pos: flag("detect_positive")?,
        neg: flag("detect_negative")?,
    })))
}

impl Test {
    #[inline(always)]
    fn check(self, v: f64) -> bool {
        match self {
            Test::NaN => v.is_nan(),
            Test::Inf { pos, neg } => {
                (pos && v == f64::INFINITY) || (neg && v == f64::NEG_INFINITY)
            }
        }
    }
}

fn accepts(d: DType) -> bool {
    d.is_float() || d.is_half()
}

fn classify<T: Copy + Send + Sync>(
    a: &ArrayD<T>,
    test: Test,
    wide: impl Fn(T) -> f64 + Sync + Send,
) -> OpResult<ArrayD<bool>> {
    map_array(a, move |v: T| test.check(wide(v)))
}

impl Op for Classify {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !accepts(d)
        {
            return Err(bad_dtype(0, d, "a float type"));
        }
        Ok(vec![Facts {
            dtype: Some(DType::Bool),
            shape: x.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let t = self.0;
        let y = match input(inputs, 0)? {
            Tensor::F32(a) => classify(a, t, |v: f32| v as f64)?,
            Tensor::F64(a) => classify(a, t, |v: f64| v)?,
            Tensor::F16(a) => classify(a, t, |v: half::f16| v.to_f64())?,
            Tensor::BF16(a) => classify(a, t, |v: half::bf16| v.to_f64())?,
            x => return Err(bad_dtype(0, x.dtype(), "a float type")),
        };
        Ok(vec![Tensor::Bool(y)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_nan_and_signed_infinities() {
        let x = Tensor::from_f32(&[4], vec![1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        let run = |t: Test| Classify(t).run(&[Some(&x)]).unwrap().remove(0).to_f64_vec();
        assert_eq!(run(Test::NaN), vec![0.0, 1.0, 0.0, 0.0]);
        let both = Test::Inf {
            pos: true,
            neg: true,
        };
        assert_eq!(run(both), vec![0.0, 0.0, 1.0, 1.0]);
        let neg = Test::Inf {
            pos: false,
            neg: true,
        };
        assert_eq!(run(neg), vec![0.0, 0.0, 0.0, 1.0]);
        let i = Tensor::scalar_i64(1);
        assert!(Classify(Test::NaN).run(&[Some(&i)]).is_err());
    }
}
