//! Broadcasting before opset 7. With `broadcast = 1`, Add/Sub/Mul/Div/Pow and the
//! comparisons line B's dims up with A's starting at `axis` (default: the trailing
//! dims, which is numpy's rule), e.g. B [C] against A [N, C, H, W] with axis 1 is per
//! channel. PRelu's slope of length C was per channel. Both become numpy broadcasting
//! by giving B trailing dims of size 1, so the wrapped op is the modern one.

use crate::ir::shape::fmt_shape;
use crate::ir::{Facts, Tensor};

use super::super::{BuildCtx, Op, OpError, OpResult, facts, input};

#[derive(Debug)]
struct AxisAligned {
    inner: Box<dyn Op>,
    rule: Rule,
}

#[derive(Clone, Copy, Debug)]
enum Rule {
    /// `broadcast = 1` with an `axis` attribute.
    Axis(i64),
    /// PRelu: a 1-D slope of length C applies per channel of [N, C, ...].
    Channel,
}

/// Wraps `op` when the node uses pre-opset-7 broadcasting; returns it unchanged otherwise.
pub(super) fn legacy(ctx: &BuildCtx, op: Box<dyn Op>) -> OpResult<Box<dyn Op>> {
    if ctx.opset >= 7 {
        return Ok(op);
    }
    let rule = if ctx.node.op_type == "PRelu" {
        Rule::Channel
    } else {
        match (ctx.int_or("broadcast", 0)?, ctx.int("axis")?) {
            (0, _) | (_, None) => return Ok(op),
            (_, Some(axis)) => Rule::Axis(axis),
        }
    };
    Ok(Box::new(AxisAligned { inner: op, rule }))
}

impl AxisAligned {
    /// The shape B takes so that numpy broadcasting does what the old rule meant.
    fn aligned(&self, a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
        let rank = a.len();
        let ones = match self.rule {
            Rule::Channel if b.len() == 1 && rank > 2 && b[0] != 1 && b[0] == a[1] => rank - 2,
            Rule::Channel => 0,
            Rule::Axis(axis) => {
                let ax = if axis < 0 { axis + rank as i64 } else { axis };
                usize::try_from(ax)
                    .ok()
                    .and_then(|ax| rank.checked_sub(ax + b.len()))
                    .ok_or_else(|| OpError::Attr {
                        name: "axis".into(),
                        msg: format!(
                            "B of shape {} does not fit A of shape {} from axis {axis}",
                            fmt_shape(b),
                            fmt_shape(a)
                        ),
                    })?
            }
        };
        Ok(b.iter()
            .copied()
            .chain(std::iter::repeat_n(1, ones))
            .collect())
    }
}

impl Op for AxisAligned {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (a, b) = (facts(inputs, 0)?, facts(inputs, 1)?);
        let mut b2 = Facts {
            dtype: b.dtype,
            shape: b.shape.clone(),
            value: None,
        };
        if let (Some(sa), Some(sb)) = (&a.shape, &b.shape) {
            b2.shape = Some(self.aligned(sa, sb)?);
        }
        self.inner.infer(&[Some(a), Some(&b2)])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
        let shape = self.aligned(a.shape(), b.shape())?;
        if shape == b.shape() {
            return self.inner.run(&[Some(a), Some(b)]);
        }
        let b2 = b
            .clone()
            .reshaped(&shape)
            .ok_or_else(|| OpError::Invalid("internal: legacy reshape".into()))?;
        self.inner.run(&[Some(a), Some(&b2)])
    }

    fn is_pure(&self) -> bool {
        self.inner.is_pure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ops::binary::{Arith, ArithOp, PRelu};

    #[test]
    fn old_axis_broadcasting_is_per_channel() {
        let op = AxisAligned {
            inner: Box::new(Arith(ArithOp::Add)),
            rule: Rule::Axis(1),
        };
        let a = Tensor::from_f32(&[1, 2, 1, 3], vec![0.0; 6]);
        let b = Tensor::from_f32(&[2], vec![1.0, 2.0]);
        let y = op.run(&[Some(&a), Some(&b)]).unwrap().remove(0);
        assert_eq!(y.to_f64_vec(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        let fa = Facts::new(crate::ir::DType::F32, vec![1, 2, 1, 3]);
        let fb = Facts::new(crate::ir::DType::F32, vec![2]);
        assert_eq!(
            op.infer(&[Some(&fa), Some(&fb)]).unwrap()[0].shape,
            Some(vec![1, 2, 1, 3])
        );
        let bad = AxisAligned {
            inner: Box::new(Arith(ArithOp::Add)),
            rule: Rule::Axis(3),
        };
        assert!(bad.run(&[Some(&a), Some(&b)]).is_err());
    }

    #[test]
    fn old_prelu_slope_is_per_channel() {
        let op = AxisAligned {
            inner: Box::new(PRelu),
            rule: Rule::Channel,
        };
        let x = Tensor::from_f32(&[1, 2, 2], vec![-1.0, -1.0, -1.0, 1.0]);
        let s = Tensor::from_f32(&[2], vec![0.5, 0.25]);
        let y = op.run(&[Some(&x), Some(&s)]).unwrap().remove(0);
        assert_eq!(y.to_f64_vec(), vec![-0.5, -0.5, -0.25, 1.0]);
    }
}
