//! Ops that change only the shape, never the data order: Reshape, Flatten, Squeeze,
//! Unsqueeze (one memcpy each), and Shape, whose value is known at load.

use std::sync::Arc;

use super::{axis, const_ints, dim, has, int_values, numel};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{DType, Facts, Tensor};

/// Where an op's shape-like operand comes from (it moved from attribute to input in
/// later opsets).
#[derive(Debug, Clone)]
enum Src {
    Attr(Vec<i64>),
    Input,
    Absent,
}

#[derive(Debug, Clone)]
enum Kind {
    Reshape { allowzero: bool },
    Flatten { axis: i64 },
    Squeeze,
    Unsqueeze,
}

/// A shape-only op: the output is the input's data under a new shape.
#[derive(Debug)]
struct Relayout {
    kind: Kind,
    src: Src,
}

pub(super) fn build_reshape(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let src = if ctx.opset < 5 {
        Src::Attr(ctx.ints("shape")?.ok_or_else(|| OpError::Attr {
            name: "shape".into(),
            msg: "missing".into(),
        })?)
    } else {
        Src::Input
    };
    let allowzero = ctx.int_or("allowzero", 0)? != 0;
    Ok(Box::new(Relayout {
        kind: Kind::Reshape { allowzero },
        src,
    }))
}

pub(super) fn build_flatten(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Relayout {
        kind: Kind::Flatten {
            axis: ctx.int_or("axis", 1)?,
        },
        src: Src::Absent,
    }))
}

pub(super) fn build_squeeze(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let src = if ctx.opset < 13 {
        ctx.ints("axes")?.map(Src::Attr).unwrap_or(Src::Absent)
    } else {
        Src::Input
    };
    Ok(Box::new(Relayout {
        kind: Kind::Squeeze,
        src,
    }))
}

pub(super) fn build_unsqueeze(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let src = if ctx.opset < 13 {
        Src::Attr(ctx.ints("axes")?.ok_or_else(|| OpError::Attr {
            name: "axes".into(),
            msg: "missing".into(),
        })?)
    } else {
        Src::Input
    };
    Ok(Box::new(Relayout {
        kind: Kind::Unsqueeze,
        src,
    }))
}

impl Relayout {
    fn what(&self) -> &'static str {
        match self.kind {
            Kind::Reshape { .. } => "shape",
            _ => "axes",
        }
    }

    /// Output shape from the input shape and the operand values (`None` = absent).
    fn out_shape(&self, shape: &[usize], vals: Option<&[i64]>) -> OpResult<Vec<usize>> {
        let rank = shape.len();
        match &self.kind {
            Kind::Reshape { allowzero } => {
                let vals = vals.ok_or_else(|| OpError::Input {
                    index: 1,
                    msg: "the shape is missing".into(),
                })?;
                reshape_dims(shape, vals, *allowzero)
            }
            Kind::Flatten { axis } => {
                let a = if *axis < 0 {
                    *axis + rank as i64
                } else {
                    *axis
                };
                if !(0..=rank as i64).contains(&a) {
                    return Err(OpError::Attr {
                        name: "axis".into(),
                        msg: format!("{axis} is out of range for rank {rank}"),
                    });
                }
                let (outer, inner) = shape.split_at(a as usize);
                Ok(vec![numel(outer)?, numel(inner)?])
            }
            Kind::Squeeze => match vals {
                None => Ok(shape.iter().copied().filter(|&d| d != 1).collect()),
                Some(axes) => {
                    let mut drop = vec![false; rank];
                    for &a in axes {
                        let k = axis(a, rank, "squeeze axis")?;
                        if shape[k] != 1 {
                            return Err(OpError::Invalid(format!(
                                "cannot squeeze axis {a}: its size is {}, not 1",
                                shape[k]
                            )));
                        }
                        drop[k] = true;
                    }
                    Ok(shape
                        .iter()
                        .zip(&drop)
                        .filter(|(_, d)| !**d)
                        .map(|(s, _)| *s)
                        .collect())
                }
            },
            Kind::Unsqueeze => {
                let axes = vals.ok_or_else(|| OpError::Input {
                    index: 1,
                    msg: "the axes are missing".into(),
                })?;
                let out_rank = rank + axes.len();
                let mut new = vec![false; out_rank];
                for &a in axes {
                    let k = axis(a, out_rank, "unsqueeze axis")?;
                    if new[k] {
                        return Err(OpError::Invalid(format!("unsqueeze axis {a} is repeated")));
                    }
                    new[k] = true;
                }
                let mut it = shape.iter();
                Ok(new
                    .iter()
                    .map(|&n| if n { 1 } else { *it.next().unwrap_or(&1) })
                    .collect())
            }
        }
    }
}

/// Reshape's target: 0 copies the input dimension (unless `allowzero`), -1 is inferred.
pub(super) fn reshape_dims(shape: &[usize], vals: &[i64], allowzero: bool) -> OpResult<Vec<usize>> {
    let total = numel(shape)?;
    let mut out = Vec::with_capacity(vals.len());
    let mut infer_at = None;
    for (i, &v) in vals.iter().enumerate() {
        match v {
            -1 if infer_at.is_some() => {
                return Err(OpError::Invalid(
                    "reshape: more than one -1 in the shape".into(),
                ));
            }
            -1 => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allowzero => match shape.get(i) {
                Some(&d) => out.push(d),
                None => {
                    return Err(OpError::Invalid(format!(
                        "reshape: shape[{i}] = 0 copies a dimension the rank-{} input does not have",
                        shape.len()
                    )));
                }
            },
            v => out.push(dim(v, "reshape: dimension")?),
        }
    }
    if allowzero && infer_at.is_some() && vals.contains(&0) {
        return Err(OpError::Invalid(
            "reshape: allowzero with both 0 and -1 in the shape".into(),
        ));
    }
    let known = crate::ir::checked_numel(&out)
        .ok_or_else(|| OpError::Invalid("reshape: shape overflows".into()))?;
    if let Some(i) = infer_at {
        if known == 0 || total % known != 0 {
            return Err(OpError::Invalid(format!(
                "reshape: cannot infer -1 in {vals:?} for an input of {total} elements"
            )));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(OpError::Invalid(format!(
            "reshape: input shape {shape:?} ({total} elements) cannot become {vals:?} ({known} elements)"
        )));
    }
    numel(&out)?;
    Ok(out)
}

impl Op for Relayout {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let vals = match &self.src {
            Src::Attr(v) => Some(v.clone()),
            Src::Absent => None,
            Src::Input if !has(inputs, 1) => None,
            Src::Input => match const_ints(inputs, 1, self.what())? {
                Some(v) => Some(v),
                None => return Ok(vec![Facts::unknown_shape(f.dtype)]),
            },
        };
        let shape = match &f.shape {
            Some(s) => Some(self.out_shape(s, vals.as_deref())?),
            // Without the input shape, a reshape to fully explicit dimensions is still known.
            None => match (&self.kind, &vals) {
                (Kind::Reshape { allowzero }, Some(v))
                    if v.iter().all(|&d| d > 0 || (d == 0 && *allowzero)) =>
                {
                    Some(v.iter().map(|&d| d as usize).collect())
                }
                _ => None,
            },
        };
        Ok(vec![Facts {
            dtype: f.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let vals = match &self.src {
            Src::Attr(v) => Some(v.clone()),
            Src::Absent => None,
            Src::Input => match inputs.get(1).copied().flatten() {
                Some(t) => Some(int_values(t, 1, self.what())?),
                None => None,
            },
        };
        let shape = self.out_shape(x.shape(), vals.as_deref())?;
        let out = x.clone().reshaped(&shape).ok_or_else(|| {
            OpError::Invalid(format!(
                "internal: {} elements do not fit shape {shape:?}",
                x.len()
            ))
        })?;
        Ok(vec![out])
    }
}

/// `Shape`: the input's dimensions (a slice of them from opset 15), as int64.
#[derive(Debug)]
struct ShapeOp {
    start: i64,
    end: Option<i64>,
}

pub(super) fn build_shape(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(ShapeOp {
        start: ctx.int_or("start", 0)?,
        end: ctx.int("end")?,
    }))
}

impl ShapeOp {
    fn value(&self, shape: &[usize]) -> Tensor {
        let r = shape.len() as i64;
        let clip = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let (s, e) = (clip(self.start), clip(self.end.unwrap_or(r)));
        let dims: Vec<i64> = if s < e {
            shape[s..e].iter().map(|&d| d as i64).collect()
        } else {
            Vec::new()
        };
        Tensor::from_i64(&[dims.len()], dims)
    }
}

impl Op for ShapeOp {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        Ok(vec![match &f.shape {
            Some(s) => Facts::constant(Arc::new(self.value(s))),
            None => Facts::unknown_shape(Some(DType::I64)),
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        Ok(vec![self.value(input(inputs, 0)?.shape())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_zero_and_minus_one() {
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[2, 0, 1, -1], false).unwrap(),
            vec![2, 3, 1, 4]
        );
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[-1, 2, 3, 4], false).unwrap(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            reshape_dims(&[0, 3, 4], &[3, 4, 0], true).unwrap(),
            vec![3, 4, 0]
        );
        assert!(reshape_dims(&[2, 3, 4], &[5, -1], false).is_err());
        assert!(reshape_dims(&[2, 3, 4], &[-1, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[0, 0, 0], false).is_err());
        assert!(reshape_dims(&[0, 3], &[0, -1], true).is_err());
    }

    #[test]
    fn shape_slices_and_clips() {
        let op = ShapeOp {
            start: -10,
            end: Some(10),
        };
        assert_eq!(op.value(&[3, 4, 5]).to_i64_vec().unwrap(), vec![3, 4, 5]);
        let op = ShapeOp {
            start: 2,
            end: Some(1),
        };
        assert_eq!(op.value(&[3, 4, 5]).shape(), &[0]);
        let op = ShapeOp {
            start: 1,
            end: Some(-1),
        };
        assert_eq!(op.value(&[3, 4, 5]).to_i64_vec().unwrap(), vec![4]);
    }

    #[test]
    fn unsqueeze_unsorted_and_squeeze_checks() {
        let u = Relayout {
            kind: Kind::Unsqueeze,
            src: Src::Input,
        };
        assert_eq!(
            u.out_shape(&[3, 4, 5], Some(&[5, 4, 2])).unwrap(),
            vec![3, 4, 1, 5, 1, 1]
        );
        assert!(u.out_shape(&[3], Some(&[0, 0])).is_err());
        let s = Relayout {
            kind: Kind::Squeeze,
            src: Src::Input,
        };
        assert_eq!(
            s.out_shape(&[1, 3, 1, 5], Some(&[-2])).unwrap(),
            vec![1, 3, 5]
        );
        assert_eq!(s.out_shape(&[1, 3, 1, 5], None).unwrap(), vec![3, 5]);
        assert!(s.out_shape(&[1, 3], Some(&[1])).is_err());
        assert!(s.out_shape(&[1, 3], Some(&[2])).is_err());
    }
}
