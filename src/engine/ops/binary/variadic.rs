//! Max, Min, Sum, Mean over 1..n inputs broadcast together, folded pairwise.
//! Max and Min propagate NaN (numpy's `maximum`/`minimum`).

use ndarray::ArrayD;

use crate::ir::{DType, Facts, Tensor};

use super::super::elementwise::kernel::map_array;
use super::super::elementwise::scalar::{Elem, Num, with_num};
use super::super::util::infer_broadcast;
use super::super::{BuildCtx, Op, OpError, OpResult, bad_dtype, input};
use super::{binary_step, check_same_dtype, view, zip2};
use crate::engine::kernels::epilogue::{BinOp, Step};
use crate::engine::ops::FuseInput;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fold {
    Max,
    Min,
    Sum,
    Mean,
}

#[derive(Debug)]
struct Variadic(Fold);

pub(super) fn build_max(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Variadic(Fold::Max)))
}

pub(super) fn build_min(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Variadic(Fold::Min)))
}

pub(super) fn build_sum(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Variadic(Fold::Sum)))
}

pub(super) fn build_mean(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Variadic(Fold::Mean)))
}

impl Variadic {
    fn accepts(&self, d: DType) -> bool {
        match self.0 {
            Fold::Mean => d.is_float(),
            _ => d != DType::Bool,
        }
    }

    fn expected(&self) -> &'static str {
        if self.0 == Fold::Mean {
            "float32 or float64"
        } else {
            "a numeric type"
        }
    }

    fn fold<T: Num>(&self, inputs: &[&Tensor]) -> OpResult<ArrayD<T>> {
        let first = view::<T>(inputs[0])?;
        let mut acc: Option<ArrayD<T>> = None;
        for t in &inputs[1..] {
            let b = view::<T>(t)?;
            let a = acc.as_ref().unwrap_or(first);
            acc = Some(match self.0 {
                Fold::Max => zip2(a, b, |x: T, y: T| x.max_nan(y))?,
                Fold::Min => zip2(a, b, |x: T, y: T| x.min_nan(y))?,
                Fold::Sum | Fold::Mean => zip2(a, b, |x: T, y: T| x.add(y))?,
            });
        }
        let acc = acc.unwrap_or_else(|| first.clone());
        if self.0 == Fold::Mean && inputs.len() > 1 {
            let n = T::from_f64(inputs.len() as f64);
            return map_array(&acc, move |v: T| v.div(n));
        }
        Ok(acc)
    }
}

impl Op for Variadic {
    fn epilogue_step(&self, inputs: &[FuseInput], shape: &[usize]) -> Option<Step> {
        // Sum of two is one addition (`fold`); more would be several, in order.
        match self.0 {
            Fold::Sum if inputs.len() == 2 => binary_step(BinOp::Add, inputs, shape),
            _ => None,
        }
    }

    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = check_same_dtype(inputs)?
            && !self.accepts(d)
        {
            return Err(bad_dtype(0, d, self.expected()));
        }
        infer_broadcast(inputs, None)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let ts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        let first = input(inputs, 0)?;
        if let Some((i, t)) = ts
            .iter()
            .enumerate()
            .find(|(_, t)| t.dtype() != first.dtype())
        {
            return Err(OpError::Input {
                index: i,
                msg: format!(
                    "type {} differs from {}",
                    t.dtype().name(),
                    first.dtype().name()
                ),
            });
        }
        if !self.accepts(first.dtype()) {
            return Err(bad_dtype(0, first.dtype(), self.expected()));
        }
        let y = with_num!(first.dtype(), T => T::wrap(self.fold::<T>(&ts)?), {
            return Err(bad_dtype(0, first.dtype(), self.expected()))
        });
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_broadcast_and_propagate_nan() {
        let a = Tensor::from_f32(&[3], vec![1.0, f32::NAN, 5.0]);
        let b = Tensor::from_f32(&[2, 1], vec![2.0, 4.0]);
        let y = Variadic(Fold::Max)
            .run(&[Some(&a), Some(&b)])
            .unwrap()
            .remove(0);
        assert_eq!(y.shape(), &[2, 3]);
        let v = y.to_f64_vec();
        assert_eq!((v[0], v[2], v[3], v[5]), (2.0, 5.0, 4.0, 5.0));
        assert!(v[1].is_nan() && v[4].is_nan());
        let m = Variadic(Fold::Mean)
            .run(&[Some(&a), Some(&b), Some(&b)])
            .unwrap()
            .remove(0);
        assert_eq!(m.to_f64_vec()[0], (5.0f32 / 3.0) as f64);
        let one = Variadic(Fold::Sum).run(&[Some(&b)]).unwrap().remove(0);
        assert_eq!(one, b);
    }
}
