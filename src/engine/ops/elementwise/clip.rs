//! Clip: bounds are attributes before opset 11 (float only), optional scalar inputs
//! from 11 (any numeric type from 12). With min > max every element becomes max.

use ndarray::ArrayD;

use crate::ir::{Facts, Tensor};

use super::kernel::map_array;
use super::scalar::{Elem, Num, with_num};
use crate::engine::kernels::epilogue::Step;
use crate::engine::ops::util::infer_same;
use crate::engine::ops::{BuildCtx, FuseInput, Op, OpError, OpResult, bad_dtype, facts, input};

#[derive(Debug)]
struct Clip {
    /// Bounds from attributes (opset < 11); `None` reads inputs 1 and 2.
    attrs: Option<(f32, f32)>,
}

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let attrs = if ctx.opset < 11 {
        Some((
            ctx.float_or("min", f32::MIN)?,
            ctx.float_or("max", f32::MAX)?,
        ))
    } else {
        None
    };
    Ok(Box::new(Clip { attrs }))
}

impl Op for Clip {
    fn epilogue_step(&self, inputs: &[FuseInput], _shape: &[usize]) -> Option<Step> {
        let bound = |i: usize, default: f32| match inputs.get(i) {
            None | Some(FuseInput::Absent) => Some(default),
            Some(b) => b.scalar(),
        };
        let (lo, hi) = match (inputs.first(), self.attrs) {
            (Some(FuseInput::Running), Some((lo, hi))) if inputs.len() == 1 => (lo, hi),
            (Some(FuseInput::Running), None) => {
                (bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?)
            }
            _ => return None,
        };
        Some(Step::Clip { lo, hi })
    }

    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype {
            if d == crate::ir::DType::Bool || (self.attrs.is_some() && !d.is_float()) {
                return Err(bad_dtype(0, d, "a numeric type"));
            }
            for i in [1, 2] {
                if let Some(Some(b)) = inputs.get(i) {
                    check_bound(i, d, b.dtype, b.shape.as_deref())?;
                }
            }
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let y = with_num!(x.dtype(), T => T::wrap(self.clip::<T>(x, inputs)?), {
            return Err(bad_dtype(0, x.dtype(), "a numeric type"))
        });
        Ok(vec![y])
    }
}

fn check_bound(
    i: usize,
    d: crate::ir::DType,
    bd: Option<crate::ir::DType>,
    shape: Option<&[usize]>,
) -> OpResult<()> {
    if let Some(bd) = bd
        && bd != d
    {
        return Err(OpError::Input {
            index: i,
            msg: format!("type {} differs from the input's {}", bd.name(), d.name()),
        });
    }
    if let Some(s) = shape
        && s.iter().product::<usize>() != 1
    {
        return Err(OpError::Input {
            index: i,
            msg: format!("a bound must be a scalar, got shape {s:?}"),
        });
    }
    Ok(())
}

impl Clip {
    fn clip<T: Num>(&self, x: &Tensor, inputs: &[Option<&Tensor>]) -> OpResult<ArrayD<T>> {
        let a = T::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
        let (lo, hi) = match self.attrs {
            Some((lo, hi)) => (T::from_f64(lo as f64), T::from_f64(hi as f64)),
            None => (
                bound::<T>(inputs, 1)?.unwrap_or(T::LOWEST),
                bound::<T>(inputs, 2)?.unwrap_or(T::HIGHEST),
            ),
        };
        map_array(a, move |v: T| {
            let v = if v < lo { lo } else { v };
            if v > hi { hi } else { v }
        })
    }
}

fn bound<T: Num>(inputs: &[Option<&Tensor>], i: usize) -> OpResult<Option<T>> {
    let Some(Some(t)) = inputs.get(i) else {
        return Ok(None);
    };
    check_bound(i, T::DTYPE, Some(t.dtype()), Some(t.shape()))?;
    let a = T::view(t).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
    Ok(a.iter().next().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_above_max_gives_max_and_nan_passes() {
        let x = Tensor::from_f32(&[4], vec![-2.0, 0.0, 6.0, f32::NAN]);
        let (lo, hi) = (Tensor::scalar_f32(2.0), Tensor::scalar_f32(1.0));
        let y = Clip { attrs: None }
            .run(&[Some(&x), Some(&lo), Some(&hi)])
            .unwrap()
            .remove(0);
        let v = y.to_f64_vec();
        assert_eq!(&v[..3], &[1.0, 1.0, 1.0]);
        assert!(v[3].is_nan());
    }

    #[test]
    fn integer_bounds_default_to_the_type_range() {
        let x =
            Tensor::I8(ArrayD::from_shape_vec(ndarray::IxDyn(&[3]), vec![-128i8, 0, 127]).unwrap());
        let lo = Tensor::I8(ArrayD::from_elem(ndarray::IxDyn(&[]), -5i8));
        let y = Clip { attrs: None }
            .run(&[Some(&x), Some(&lo), None])
            .unwrap()
            .remove(0);
        assert_eq!(y.to_f64_vec(), vec![-5.0, 0.0, 127.0]);
        let bad = Tensor::scalar_f32(1.0);
        assert!(
            Clip { attrs: None }
                .run(&[Some(&x), Some(&bad), None])
                .is_err()
        );
    }
}
