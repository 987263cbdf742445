//! Ops defined by another value's shape or type: Size (the element count, known at load
//! whenever the input shape is static) and CastLike (Cast to the element type of input 1).

use std::sync::Arc;

use crate::engine::ops::elementwise::cast::cast;
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{Facts, Tensor};

#[derive(Debug)]
struct Size;

pub(super) fn build_size(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Size))
}

/// The element count as an int64 scalar.
fn size_of(shape: &[usize]) -> OpResult<Tensor> {
    let n = super::numel(shape)?;
    let n = i64::try_from(n).map_err(|_| OpError::Invalid(format!("{n} elements")))?;
    Ok(Tensor::scalar_i64(n))
}

impl Op for Size {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        Ok(vec![match &f.shape {
            Some(s) => Facts::constant(Arc::new(size_of(s)?)),
            None => Facts::new(crate::ir::DType::I64, vec![]),
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        Ok(vec![size_of(input(inputs, 0)?.shape())?])
    }
}

/// CastLike: `saturate` only concerns float8 types, which qtune does not compute with.
#[derive(Debug)]
struct CastLike;

pub(super) fn build_cast_like(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(CastLike))
}

impl Op for CastLike {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (x, like) = (facts(inputs, 0)?, facts(inputs, 1)?);
        Ok(vec![Facts {
            dtype: like.dtype,
            shape: x.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, like) = (input(inputs, 0)?, input(inputs, 1)?);
        Ok(vec![cast(x, like.dtype())?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn size_counts_elements_and_folds() {
        let x = Tensor::zeros(DType::F32, &[3, 0, 2]);
        assert_eq!(Size.run(&[Some(&x)]).unwrap()[0], Tensor::scalar_i64(0));
        let f = Facts::new(DType::F32, vec![3, 4]);
        let out = Size.infer(&[Some(&f)]).unwrap();
        assert_eq!(out[0].value.as_deref(), Some(&Tensor::scalar_i64(12)));
    }

    #[test]
    fn cast_like_takes_the_type_of_input_1() {
        let x = Tensor::from_f32(&[3], vec![1.7, -2.5, 0.0]);
        let like = Tensor::from_i64(&[0], vec![]);
        let y = CastLike.run(&[Some(&x), Some(&like)]).unwrap().remove(0);
        assert_eq!(y, Tensor::from_i64(&[3], vec![1, -2, 0]));
        let f = CastLike
            .infer(&[
                Some(&Facts::new(DType::F32, vec![3])),
                Some(&Facts::new(DType::Bool, vec![])),
            ])
            .unwrap();
        assert_eq!(
            (f[0].dtype, f[0].shape.clone()),
            (Some(DType::Bool), Some(vec![3]))
        );
    }
}
