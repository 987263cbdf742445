//! Concat and Split: contiguous chunks copied per outer index.

use super::{
    Elem, axis, const_ints, dim, has, numel, opt_ints, row_major, to_array, typed, with_elem,
};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{Facts, Tensor};

#[derive(Debug)]
struct Concat {
    axis: i64,
}

pub(super) fn build_concat(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    // Concat-1 defaulted the axis to 1; from opset 4 it is required.
    let axis = match ctx.int("axis")? {
        Some(a) => a,
        None if ctx.opset < 4 => 1,
        None => {
            return Err(OpError::Attr {
                name: "axis".into(),
                msg: "missing".into(),
            });
        }
    };
    Ok(Box::new(Concat { axis }))
}

impl Concat {
    /// The normalized axis and the output shape.
    fn out_shape(&self, shapes: &[&[usize]]) -> OpResult<(usize, Vec<usize>)> {
        let first = shapes
            .first()
            .ok_or_else(|| OpError::Invalid("Concat needs at least one input".into()))?;
        let rank = first.len();
        let ax = axis(self.axis, rank, "axis")?;
        let mut out = first.to_vec();
        out[ax] = 0;
        for (k, s) in shapes.iter().enumerate() {
            let same = s.len() == rank
                && s.iter()
                    .zip(first.iter())
                    .enumerate()
                    .all(|(i, (a, b))| i == ax || a == b);
            if !same {
                return Err(OpError::Input {
                    index: k,
                    msg: format!("shape {s:?} does not match {first:?} outside axis {ax}"),
                });
            }
            out[ax] += s[ax];
        }
        Ok((ax, out))
    }
}

impl Op for Concat {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let present: Vec<&Facts> = inputs.iter().flatten().copied().collect();
        let dtype = present.first().and_then(|f| f.dtype);
        if let Some(k) = present
            .iter()
            .position(|f| f.dtype.is_some() && f.dtype != dtype)
        {
            return Err(OpError::Input {
                index: k,
                msg: "element types of the inputs differ".into(),
            });
        }
        let shapes: Option<Vec<&[usize]>> = present.iter().map(|f| f.shape.as_deref()).collect();
        let shape = match shapes {
            Some(s) => Some(self.out_shape(&s)?.1),
            None => None,
        };
        Ok(vec![Facts {
            dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let xs: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
        let shapes: Vec<&[usize]> = xs.iter().map(|t| t.shape()).collect();
        let (ax, out_shape) = self.out_shape(&shapes)?;
        let dtype = input(inputs, 0)?.dtype();
        with_elem!(dtype, T => concat::<T>(&xs, ax, &out_shape)).map(|t| vec![t])
    }
}

fn concat<T: Elem>(xs: &[&Tensor], ax: usize, out_shape: &[usize]) -> OpResult<Tensor> {
    let dtype = xs[0].dtype();
    let datas = xs
        .iter()
        .enumerate()
        .map(|(k, t)| Ok(row_major(typed::<T>(t, k, dtype)?)))
        .collect::<OpResult<Vec<_>>>()?;
    let outer: usize = out_shape[..ax].iter().product();
    let inner: usize = out_shape[ax + 1..].iter().product();
    let chunks: Vec<usize> = xs.iter().map(|t| t.shape()[ax] * inner).collect();
    let mut out = Vec::with_capacity(numel(out_shape)?);
    for o in 0..outer {
        for (d, &c) in datas.iter().zip(&chunks) {
            out.extend_from_slice(&d[o * c..(o + 1) * c]);
        }
    }
    Ok(T::into_tensor(to_array(out_shape, out)?))
}

/// Where Split's sizes come from.
#[derive(Debug)]
enum Sizes {
    Attr(Vec<i64>),
    /// Input 1 (opset 13+; at opset 1 also allowed), absent = equal parts.
    Input,
    /// `num_outputs` (opset 18): equal parts, the last one smaller if uneven.
    Count(usize),
}

#[derive(Debug)]
struct Split {
    axis: i64,
    sizes: Sizes,
    outputs: usize,
}

pub(super) fn build_split(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let outputs = ctx.node.outputs.len();
    let attr = if ctx.opset < 13 {
        ctx.ints("split")?
    } else {
        None
    };
    let sizes = match (attr, ctx.int("num_outputs")?.filter(|_| ctx.opset >= 18)) {
        (Some(s), _) => Sizes::Attr(s),
        (None, Some(n)) => {
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n > 0 && n == outputs)
                .ok_or_else(|| OpError::Attr {
                    name: "num_outputs".into(),
                    msg: format!("{n} does not match the node's {outputs} outputs"),
                })?;
            Sizes::Count(n)
        }
        (None, None) => Sizes::Input,
    };
    Ok(Box::new(Split {
        axis: ctx.int_or("axis", 0)?,
        sizes,
        outputs,
    }))
}

impl Split {
    /// The size of each part along the axis of length `len`; `given` = the split input.
    fn parts(&self, len: usize, given: Option<&[i64]>) -> OpResult<Vec<usize>> {
        let explicit = match (&self.sizes, given) {
            (Sizes::Attr(s), _) => Some(s.as_slice()),
            (_, Some(s)) => Some(s),
            _ => None,
        };
        if let Some(s) = explicit {
            let parts = s
                .iter()
                .map(|&v| dim(v, "split size"))
                .collect::<OpResult<Vec<usize>>>()?;
            if parts.len() != self.outputs || parts.iter().sum::<usize>() != len {
                return Err(OpError::Invalid(format!(
                    "split sizes {s:?} must be {} values summing to the axis length {len}",
                    self.outputs
                )));
            }
            return Ok(parts);
        }
        let n = self.outputs.max(1);
        if let Sizes::Count(n) = self.sizes {
            let chunk = len.div_ceil(n);
            if chunk * (n - 1) > len {
                return Err(OpError::Invalid(format!(
                    "cannot split length {len} into {n} non-empty parts"
                )));
            }
            let mut parts = vec![chunk; n];
            parts[n - 1] = len - chunk * (n - 1);
            return Ok(parts);
        }
        if !len.is_multiple_of(n) {
            return Err(OpError::Invalid(format!(
                "axis length {len} does not split into {n} equal parts"
            )));
        }
        Ok(vec![len / n; n])
    }
}

impl Op for Split {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let unknown = || Ok(vec![Facts::unknown_shape(f.dtype); self.outputs]);
        let given = match (&self.sizes, has(inputs, 1)) {
            (Sizes::Input, true) => match const_ints(inputs, 1, "split")? {
                Some(v) => Some(v),
                None => return unknown(),
            },
            _ => None,
        };
        let Some(shape) = &f.shape else {
            return unknown();
        };
        let ax = axis(self.axis, shape.len(), "axis")?;
        let parts = self.parts(shape[ax], given.as_deref())?;
        Ok(parts
            .iter()
            .map(|&p| {
                let mut s = shape.clone();
                s[ax] = p;
                Facts {
                    dtype: f.dtype,
                    shape: Some(s),
                    value: None,
                }
            })
            .collect())
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let given = match self.sizes {
            Sizes::Input => opt_ints(inputs, 1, "split")?,
            _ => None,
        };
        let ax = axis(self.axis, x.rank(), "axis")?;
        let parts = self.parts(x.shape()[ax], given.as_deref())?;
        with_elem!(x.dtype(), T => split::<T>(x, ax, &parts))
    }
}

fn split<T: Elem>(x: &Tensor, ax: usize, parts: &[usize]) -> OpResult<Vec<Tensor>> {
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    let shape = x.shape();
    let outer: usize = shape[..ax].iter().product();
    let inner: usize = shape[ax + 1..].iter().product();
    let row = shape[ax] * inner;
    let mut start = 0;
    let mut outs = Vec::with_capacity(parts.len());
    for &p in parts {
        let (a, b) = (start * inner, (start + p) * inner);
        let mut v = Vec::with_capacity(outer * (b - a));
        for o in 0..outer {
            v.extend_from_slice(&data[o * row + a..o * row + b]);
        }
        let mut s = shape.to_vec();
        s[ax] = p;
        outs.push(T::into_tensor(to_array(&s, v)?));
        start += p;
    }
    Ok(outs)
}
