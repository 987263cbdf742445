//! Ops that make tensors from scalars: ConstantOfShape and Range.

use ndarray::{ArrayD, IxDyn};

use super::{const_ints, dim, int_values, numel};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{DType, Facts, Tensor};
use crate::map_tensor;

/// ConstantOfShape: a tensor of the given shape filled with `value`'s single element.
#[derive(Debug)]
struct ConstantOfShape {
    /// A one-element tensor of the output's type.
    value: Tensor,
}

pub(super) fn build_constant_of_shape(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let value = match ctx.tensor("value")? {
        None => Tensor::scalar_f32(0.0),
        Some(t) if t.len() == 1 => t.clone(),
        Some(t) => {
            return Err(OpError::Attr {
                name: "value".into(),
                msg: format!("must hold one element, has {}", t.len()),
            });
        }
    };
    Ok(Box::new(ConstantOfShape { value }))
}

fn shape_from(vals: &[i64]) -> OpResult<Vec<usize>> {
    let s = vals
        .iter()
        .map(|&v| dim(v, "ConstantOfShape: dimension"))
        .collect::<OpResult<Vec<usize>>>()?;
    numel(&s)?;
    Ok(s)
}

impl Op for ConstantOfShape {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        facts(inputs, 0)?;
        let shape = match const_ints(inputs, 0, "shape")? {
            Some(v) => Some(shape_from(&v)?),
            None => None,
        };
        Ok(vec![Facts {
            dtype: Some(self.value.dtype()),
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let shape = shape_from(&int_values(input(inputs, 0)?, 0, "shape")?)?;
        let t = &self.value;
        Ok(vec![
            map_tensor!(t, a => ArrayD::from_elem(IxDyn(&shape), a.iter().next().copied().unwrap_or_default())),
        ])
    }
}

/// Range: `start + i·delta` for `i` in `0..max(ceil((limit - start) / delta), 0)`.
#[derive(Debug)]
struct Range;

pub(super) fn build_range(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Range))
}

/// Number of elements, from the three scalars.
fn range_len(start: &Tensor, limit: &Tensor, delta: &Tensor) -> OpResult<usize> {
    for (i, t) in [start, limit, delta].into_iter().enumerate() {
        if t.len() != 1 {
            return Err(OpError::Input {
                index: i,
                msg: format!("must be a scalar, has shape {:?}", t.shape()),
            });
        }
        if t.dtype() != start.dtype() {
            return Err(OpError::Input {
                index: i,
                msg: "the three inputs must have the same type".into(),
            });
        }
    }
    let n = match start.dtype() {
        DType::F32 | DType::F64 => {
            let f = |t: &Tensor| t.to_f64_vec()[0];
            let (s, l, d) = (f(start), f(limit), f(delta));
            if d == 0.0 || !d.is_finite() {
                return Err(OpError::Input {
                    index: 2,
                    msg: format!("delta {d} must be finite and non-zero"),
                });
            }
            ((l - s) / d).ceil().max(0.0)
        }
        DType::I64 | DType::I32 => {
            let f = |t: &Tensor| t.to_i64_vec().map_or(0, |v| v[0]) as i128;
            let (s, l, d) = (f(start), f(limit), f(delta));
            if d == 0 {
                return Err(OpError::Input {
                    index: 2,
                    msg: "delta must be non-zero".into(),
                });
            }
            let span = l - s;
            // ceil(span / d) for integers of either sign.
            let q = span / d + i128::from(span % d != 0 && ((span < 0) == (d < 0)));
            q.max(0) as f64
        }
        other => {
            return Err(crate::engine::ops::bad_dtype(
                0,
                other,
                "float32, float64, int32 or int64",
            ));
        }
    };
    if n > crate::ir::MAX_ELEMENTS as f64 {
        return Err(OpError::Invalid(format!(
            "range of {n} elements is too large"
        )));
    }
    Ok(n as usize)
}

impl Op for Range {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let vals: Option<Vec<&Tensor>> = (0..3)
            .map(|i| facts(inputs, i).ok().and_then(|f| f.value.as_deref()))
            .collect();
        let shape = match vals {
            Some(v) => Some(vec![range_len(v[0], v[1], v[2])?]),
            None => None,
        };
        Ok(vec![Facts {
            dtype: f.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (s, l, d) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let n = range_len(s, l, d)?;
        let first = |t: &Tensor| t.to_f64_vec()[0];
        let ints = |t: &Tensor| t.to_i64_vec().map_or(0, |v| v[0]);
        let shape = IxDyn(&[n]);
        Ok(vec![match s.dtype() {
            DType::F32 => {
                let (s, d) = (first(s) as f32, first(d) as f32);
                Tensor::F32(ArrayD::from_shape_fn(shape, |i| s + i[0] as f32 * d))
            }
            DType::F64 => {
                let (s, d) = (first(s), first(d));
                Tensor::F64(ArrayD::from_shape_fn(shape, |i| s + i[0] as f64 * d))
            }
            DType::I32 => {
                let (s, d) = (ints(s), ints(d));
                Tensor::I32(ArrayD::from_shape_fn(shape, |i| {
                    s.wrapping_add((i[0] as i64).wrapping_mul(d)) as i32
                }))
            }
            _ => {
                let (s, d) = (ints(s), ints(d));
                Tensor::I64(ArrayD::from_shape_fn(shape, |i| {
                    s.wrapping_add((i[0] as i64).wrapping_mul(d))
                }))
            }
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_lengths() {
        let i = |v: i64| Tensor::scalar_i64(v);
        assert_eq!(range_len(&i(10), &i(6), &i(-3)).unwrap(), 2);
        assert_eq!(range_len(&i(0), &i(10), &i(3)).unwrap(), 4);
        assert_eq!(range_len(&i(0), &i(-10), &i(3)).unwrap(), 0);
        assert!(range_len(&i(0), &i(1), &i(0)).is_err());
        let f = |v: f32| Tensor::scalar_f32(v);
        assert_eq!(range_len(&f(1.0), &f(5.0), &f(2.0)).unwrap(), 2);
    }
}
