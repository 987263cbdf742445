//! Trilu (keep the upper or lower triangle of the last two dims, shifted by `k`) and
//! EyeLike (ones on the `k`-th diagonal of a matrix shaped like the input).

use crate::engine::ops::shape::{Elem, row_major, to_array, typed, with_elem};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::tensor::onnx_type_name;
use crate::ir::{DType, Facts, Tensor};

#[derive(Debug)]
struct Trilu {
    upper: bool,
}

pub(super) fn build_trilu(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Trilu {
        upper: ctx.int_or("upper", 1)? != 0,
    }))
}

/// Whether element (i, j) is kept: on or above (upper) / below (lower) diagonal `k`.
fn kept(upper: bool, k: i64, i: usize, j: usize) -> bool {
    let d = j as i64 - i as i64;
    if upper { d >= k } else { d <= k }
}

fn trilu<T: Elem>(x: &Tensor, upper: bool, k: i64) -> OpResult<Tensor> {
    let shape = x.shape();
    let r = shape.len();
    if r < 2 {
        return Err(OpError::Input {
            index: 0,
            msg: format!("Trilu needs rank 2 or more, got shape {shape:?}"),
        });
    }
    let (rows, cols) = (shape[r - 2], shape[r - 1]);
    let mut out = row_major(typed::<T>(x, 0, x.dtype())?).into_owned();
    let zero = T::from_f64(0.0);
    for (p, v) in out.iter_mut().enumerate() {
        let (i, j) = ((p / cols.max(1)) % rows.max(1), p % cols.max(1));
        if !kept(upper, k, i, j) {
            *v = zero;
        }
    }
    Ok(T::into_tensor(to_array(shape, out)?))
}

impl Op for Trilu {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        crate::engine::ops::util::infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let k = match inputs.get(1).copied().flatten() {
            None => 0,
            Some(t) => match t.to_i64_vec().as_deref() {
                Some([k]) => *k,
                _ => {
                    return Err(OpError::Input {
                        index: 1,
                        msg: format!("k must be one integer, got shape {:?}", t.shape()),
                    });
                }
            },
        };
        let upper = self.upper;
        with_elem!(x.dtype(), T => trilu::<T>(x, upper, k)).map(|t| vec![t])
    }
}

#[derive(Debug)]
struct EyeLike {
    dtype: Option<DType>,
    k: i64,
}

pub(super) fn build_eye_like(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let dtype = match ctx.int("dtype")? {
        None => None,
        Some(code) => {
            let code = i32::try_from(code).unwrap_or(0);
            Some(DType::from_onnx(code).ok_or_else(|| OpError::Attr {
                name: "dtype".into(),
                msg: format!("element type {} is not supported", onnx_type_name(code)),
            })?)
        }
    };
    Ok(Box::new(EyeLike {
        dtype,
        k: ctx.int_or("k", 0)?,
    }))
}

fn eye<T: Elem>(rows: usize, cols: usize, k: i64) -> OpResult<Tensor> {
    let (zero, one) = (T::from_f64(0.0), T::from_f64(1.0));
    let out = (0..rows * cols)
        .map(|p| {
            if (p % cols) as i64 - (p / cols) as i64 == k {
                one
            } else {
                zero
            }
        })
        .collect();
    Ok(T::into_tensor(to_array(&[rows, cols], out)?))
}

impl Op for EyeLike {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        if let Some(s) = &f.shape
            && s.len() != 2
        {
            return Err(OpError::Input {
                index: 0,
                msg: format!("EyeLike needs a matrix, got shape {s:?}"),
            });
        }
        Ok(vec![Facts {
            dtype: self.dtype.or(f.dtype),
            shape: f.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let &[rows, cols] = x.shape() else {
            return Err(OpError::Input {
                index: 0,
                msg: format!("EyeLike needs a matrix, got shape {:?}", x.shape()),
            });
        };
        let k = self.k;
        with_elem!(self.dtype.unwrap_or(x.dtype()), T => eye::<T>(rows, cols, k)).map(|t| vec![t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trilu_keeps_a_triangle() {
        let x = Tensor::from_i64(&[2, 3], (1..7).collect());
        let k = Tensor::scalar_i64(1);
        let y = Trilu { upper: true }.run(&[Some(&x), Some(&k)]).unwrap();
        assert_eq!(y[0], Tensor::from_i64(&[2, 3], vec![0, 2, 3, 0, 0, 6]));
        let y = Trilu { upper: false }.run(&[Some(&x), None]).unwrap();
        assert_eq!(y[0], Tensor::from_i64(&[2, 3], vec![1, 0, 0, 4, 5, 0]));
    }

    #[test]
    fn eye_like_puts_ones_on_the_kth_diagonal() {
        let x = Tensor::zeros(DType::I32, &[2, 3]);
        let op = EyeLike {
            dtype: Some(DType::F32),
            k: -1,
        };
        let y = op.run(&[Some(&x)]).unwrap();
        assert_eq!(
            y[0],
            Tensor::from_f32(&[2, 3], vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        );
    }
}
