//! Small helpers shared by the op families.

use crate::ir::shape::broadcast_all;
use crate::ir::{DType, Facts};

use super::{OpError, OpResult, facts};

/// Output facts equal to input 0's type and shape (unary element-wise ops).
pub fn infer_same(inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
    let f = facts(inputs, 0)?;
    Ok(vec![Facts {
        dtype: f.dtype,
        shape: f.shape.clone(),
        value: None,
    }])
}

/// Output facts of a broadcasting op over all present inputs; `dtype` overrides
/// the output type (comparisons give bool), otherwise input 0's type is kept.
pub fn infer_broadcast(inputs: &[Option<&Facts>], dtype: Option<DType>) -> OpResult<Vec<Facts>> {
    let first = facts(inputs, 0)?;
    let present: Vec<&Facts> = inputs.iter().flatten().copied().collect();
    let shape = if present.iter().all(|f| f.shape.is_some()) {
        let shapes = present.iter().map(|f| f.shape.as_deref().unwrap_or(&[]));
        Some(broadcast_all(shapes).ok_or_else(|| {
            let s: Vec<String> = present
                .iter()
                .map(|f| format!("{:?}", f.shape.as_deref().unwrap_or(&[])))
                .collect();
            OpError::Invalid(format!("shapes {} do not broadcast", s.join(" and ")))
        })?)
    } else {
        None
    };
    Ok(vec![Facts {
        dtype: dtype.or(first.dtype),
        shape,
        value: None,
    }])
}
