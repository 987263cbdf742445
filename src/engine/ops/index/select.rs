//! Ops whose output shape depends on input values: Compress (the slices where a
//! condition holds), NonZero (the coordinates of non-zero elements) and OneHot (depth
//! given by an input).

use crate::engine::ops::shape::{Elem, axis, numel, row_major, to_array, typed, with_elem};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{DType, Facts, Tensor};

#[derive(Debug)]
struct Compress {
    axis: Option<i64>,
}

pub(super) fn build_compress(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Compress {
        axis: ctx.int("axis")?,
    }))
}

fn compress<T: Elem>(x: &Tensor, keep: &[bool], ax: Option<usize>) -> OpResult<Tensor> {
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    let (shape, outer, d, inner) = match ax {
        None => (vec![data.len()], 1, data.len(), 1),
        Some(a) => {
            let s = x.shape();
            (
                s.to_vec(),
                s[..a].iter().product(),
                s[a],
                s[a + 1..].iter().product(),
            )
        }
    };
    if keep.len() > d {
        return Err(OpError::Input {
            index: 1,
            msg: format!("condition of length {} for an axis of size {d}", keep.len()),
        });
    }
    let rows: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
    let mut out = Vec::with_capacity(outer * rows.len() * inner);
    for o in 0..outer {
        for &r in &rows {
            let at = (o * d + r) * inner;
            out.extend_from_slice(&data[at..at + inner]);
        }
    }
    let mut shape = shape;
    shape[ax.unwrap_or(0)] = rows.len();
    Ok(T::into_tensor(to_array(&shape, out)?))
}

impl Op for Compress {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (x, c) = (facts(inputs, 0)?, facts(inputs, 1)?);
        let shape = match (&x.shape, &c.value) {
            (Some(s), Some(c)) => {
                let Tensor::Bool(c) = c.as_ref() else {
                    return Err(OpError::Input {
                        index: 1,
                        msg: "condition must be bool".into(),
                    });
                };
                let kept = c.iter().filter(|&&k| k).count();
                match self.axis {
                    None => Some(vec![kept]),
                    Some(a) => {
                        let mut s = s.clone();
                        let a = axis(a, s.len(), "axis")?;
                        s[a] = kept;
                        Some(s)
                    }
                }
            }
            _ => None,
        };
        Ok(vec![Facts {
            dtype: x.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, c) = (input(inputs, 0)?, input(inputs, 1)?);
        let Tensor::Bool(c) = c else {
            return Err(OpError::Input {
                index: 1,
                msg: format!("condition must be bool, got {}", c.dtype().name()),
            });
        };
        if c.ndim() != 1 {
            return Err(OpError::Input {
                index: 1,
                msg: format!("condition must be 1-D, got shape {:?}", c.shape()),
            });
        }
        let keep: Vec<bool> = c.iter().copied().collect();
        let ax = self.axis.map(|a| axis(a, x.rank(), "axis")).transpose()?;
        with_elem!(x.dtype(), T => compress::<T>(x, &keep, ax)).map(|t| vec![t])
    }
}

#[derive(Debug)]
struct NonZero;

pub(super) fn build_non_zero(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(NonZero))
}

impl Op for NonZero {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        facts(inputs, 0)?;
        Ok(vec![Facts::unknown_shape(Some(DType::I64))])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let shape = x.shape();
        if shape.is_empty() {
            return Err(OpError::Unsupported("NonZero of a scalar".into()));
        }
        let hits: Vec<usize> = x
            .to_f64_vec()
            .iter()
            .enumerate()
            .filter(|&(_, &v)| v != 0.0)
            .map(|(i, _)| i)
            .collect();
        let st = crate::ir::shape::strides(shape);
        let n = hits.len();
        let mut out = vec![0i64; shape.len() * n];
        for (k, &h) in hits.iter().enumerate() {
            for (d, &s) in st.iter().enumerate() {
                out[d * n + k] = ((h / s) % shape[d]) as i64;
            }
        }
        Ok(vec![Tensor::I64(to_array(&[shape.len(), n], out)?)])
    }
}

#[derive(Debug)]
struct OneHot {
    axis: i64,
}

pub(super) fn build_one_hot(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(OneHot {
        axis: ctx.int_or("axis", -1)?,
    }))
}

fn one_hot<T: Elem>(
    idx: &[f64],
    ishape: &[usize],
    depth: usize,
    ax: usize,
    v: &Tensor,
) -> OpResult<Tensor> {
    let vals = row_major(typed::<T>(v, 2, v.dtype())?);
    let [off, on] = vals[..] else {
        return Err(OpError::Input {
            index: 2,
            msg: format!("values must have 2 elements, got {}", vals.len()),
        });
    };
    let shape = [&ishape[..ax], &[depth], &ishape[ax..]].concat();
    let mut out = vec![off; numel(&shape)?];
    let inner: usize = ishape[ax..].iter().product();
    for (p, &i) in idx.iter().enumerate() {
        let i = i.trunc();
        let d = depth as f64;
        if i < -d || i >= d {
            continue;
        }
        let k = if i < 0.0 { i + d } else { i } as usize;
        let (o, r) = (p / inner.max(1), p % inner.max(1));
        out[(o * depth + k) * inner + r] = on;
    }
    Ok(T::into_tensor(to_array(&shape, out)?))
}

impl Op for OneHot {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let dtype = facts(inputs, 2)?.dtype;
        let (i, d) = (facts(inputs, 0)?, facts(inputs, 1)?);
        match (&i.shape, &d.value) {
            (Some(s), Some(depth)) => {
                let depth = depth_of(depth)?;
                let ax = axis(self.axis, s.len() + 1, "axis")?;
                let shape = [&s[..ax], &[depth], &s[ax..]].concat();
                Ok(vec![Facts {
                    dtype,
                    shape: Some(shape),
                    value: None,
                }])
            }
            _ => Ok(vec![Facts::unknown_shape(dtype)]),
        }
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (i, d, v) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let depth = depth_of(d)?;
        let ax = axis(self.axis, i.rank() + 1, "axis")?;
        let idx = i.to_f64_vec();
        with_elem!(v.dtype(), T => one_hot::<T>(&idx, i.shape(), depth, ax, v)).map(|t| vec![t])
    }
}

/// The depth input: one positive number (of any numeric type, truncated).
fn depth_of(t: &Tensor) -> OpResult<usize> {
    let v = t.to_f64_vec();
    match v[..] {
        [d] if d >= 1.0 && d <= crate::ir::MAX_ELEMENTS as f64 => Ok(d as usize),
        _ => Err(OpError::Input {
            index: 1,
            msg: format!("depth must be one positive number, got {v:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_along_an_axis_and_flattened() {
        let x = Tensor::from_i64(&[3, 2], (1..7).collect());
        let c = Tensor::Bool(to_array(&[2], vec![false, true]).unwrap());
        let y = Compress { axis: Some(0) }
            .run(&[Some(&x), Some(&c)])
            .unwrap();
        assert_eq!(y[0], Tensor::from_i64(&[1, 2], vec![3, 4]));
        let y = Compress { axis: Some(1) }
            .run(&[Some(&x), Some(&c)])
            .unwrap();
        assert_eq!(y[0], Tensor::from_i64(&[3, 1], vec![2, 4, 6]));
        let y = Compress { axis: None }.run(&[Some(&x), Some(&c)]).unwrap();
        assert_eq!(y[0], Tensor::from_i64(&[1], vec![2]));
    }

    #[test]
    fn non_zero_lists_coordinates_per_dim() {
        let x = Tensor::from_i64(&[2, 2], vec![1, 0, 1, 1]);
        let y = NonZero.run(&[Some(&x)]).unwrap();
        assert_eq!(y[0], Tensor::from_i64(&[2, 3], vec![0, 1, 1, 0, 0, 1]));
    }

    #[test]
    fn one_hot_with_negative_and_out_of_range_indices() {
        let i = Tensor::from_i64(&[3], vec![1, -1, 7]);
        let d = Tensor::scalar_f32(3.0);
        let v = Tensor::from_i64(&[2], vec![0, 5]);
        let y = OneHot { axis: -1 }
            .run(&[Some(&i), Some(&d), Some(&v)])
            .unwrap();
        assert_eq!(
            y[0],
            Tensor::from_i64(&[3, 3], vec![0, 5, 0, 0, 0, 5, 0, 0, 0])
        );
        let y = OneHot { axis: 0 }
            .run(&[Some(&i), Some(&d), Some(&v)])
            .unwrap();
        assert_eq!(
            y[0],
            Tensor::from_i64(&[3, 3], vec![0, 0, 0, 5, 0, 0, 0, 5, 0])
        );
    }
}
