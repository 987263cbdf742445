//! GatherElements (one index per output element, along one axis) and GatherND (index
//! tuples into the leading dims, after `batch_dims` shared leading dims).

use super::{index, offsets_without, strides};
use crate::engine::ops::shape::{
    Elem, axis, int_values, numel, row_major, to_array, typed, with_elem,
};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{DType, Facts, Tensor};

/// Checks that input `i`, when its type is known, holds int32 or int64 indices.
pub(super) fn check_indices(inputs: &[Option<&Facts>], i: usize) -> OpResult<()> {
    match facts(inputs, i)?.dtype {
        Some(DType::I64 | DType::I32) | None => Ok(()),
        Some(d) => Err(OpError::Input {
            index: i,
            msg: format!("indices must be int32 or int64, got {}", d.name()),
        }),
    }
}

#[derive(Debug)]
struct GatherElements {
    axis: i64,
}

pub(super) fn build_gather_elements(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(GatherElements {
        axis: ctx.int_or("axis", 0)?,
    }))
}

/// Checks that `data` and `indices` have the same rank; the normalized axis.
pub(super) fn same_rank_axis(data: &[usize], idx: &[usize], a: i64) -> OpResult<usize> {
    if data.len() != idx.len() {
        return Err(OpError::Invalid(format!(
            "data of shape {data:?} and indices of shape {idx:?} differ in rank"
        )));
    }
    axis(a, data.len(), "axis")
}

fn gather_elements<T: Elem>(
    x: &Tensor,
    idx: &[i64],
    ishape: &[usize],
    ax: usize,
) -> OpResult<Tensor> {
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    let st = strides(x.shape());
    let d = x.shape()[ax];
    let base = offsets_without(ishape, &st, ax);
    let out = base
        .iter()
        .zip(idx)
        .map(|(&b, &i)| Ok(data[b + index(i, d, 1)? * st[ax]]))
        .collect::<OpResult<Vec<T>>>()?;
    Ok(T::into_tensor(to_array(ishape, out)?))
}

impl Op for GatherElements {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        check_indices(inputs, 1)?;
        let (f, i) = (facts(inputs, 0)?, facts(inputs, 1)?);
        if let (Some(s), Some(is)) = (&f.shape, &i.shape) {
            same_rank_axis(s, is, self.axis)?;
        }
        Ok(vec![Facts {
            dtype: f.dtype,
            shape: i.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, i) = (input(inputs, 0)?, input(inputs, 1)?);
        let ax = same_rank_axis(x.shape(), i.shape(), self.axis)?;
        let idx = int_values(i, 1, "indices")?;
        with_elem!(x.dtype(), T => gather_elements::<T>(x, &idx, i.shape(), ax)).map(|t| vec![t])
    }
}

#[derive(Debug)]
struct GatherNd {
    batch_dims: usize,
}

pub(super) fn build_gather_nd(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let b = ctx.int_or("batch_dims", 0)?;
    let batch_dims = usize::try_from(b).map_err(|_| OpError::Attr {
        name: "batch_dims".into(),
        msg: format!("{b} is negative"),
    })?;
    Ok(Box::new(GatherNd { batch_dims }))
}

/// The geometry of index tuples into `data`: tuples of `m` coordinates that address
/// the dims after `b` shared leading (batch) dims; each selects a slice of `slice`
/// elements. Shared by GatherND and ScatterND (`b` = 0).
#[derive(Debug, PartialEq)]
pub(super) struct Tuples {
    pub m: usize,
    pub batches: usize,
    /// Tuples per batch.
    pub per_batch: usize,
    pub slice: usize,
    /// Elements of data per batch.
    pub batch_len: usize,
    /// Shape of the tuples' leading dims (indices shape without its last dim).
    pub lead: Vec<usize>,
}

pub(super) fn tuples(data: &[usize], idx: &[usize], b: usize) -> OpResult<Tuples> {
    let (r, q) = (data.len(), idx.len());
    let bad = |msg: String| Err(OpError::Invalid(msg));
    if q == 0 || r == 0 {
        return bad("data and indices must have rank 1 or more".into());
    }
    let m = idx[q - 1];
    if b >= q || b >= r || data[..b] != idx[..b] || b + m > r {
        return bad(format!(
            "indices of shape {idx:?} do not index data of shape {data:?} with batch_dims {b}"
        ));
    }
    Ok(Tuples {
        m,
        batches: data[..b].iter().product(),
        per_batch: idx[b..q - 1].iter().product(),
        slice: data[b + m..].iter().product(),
        batch_len: data[b..].iter().product(),
        lead: idx[..q - 1].to_vec(),
    })
}

impl Tuples {
    /// Per tuple (in order): the offset of its slice in the data.
    pub fn offsets(
        &self,
        data: &[usize],
        b: usize,
        idx: &[i64],
        input: usize,
    ) -> OpResult<Vec<usize>> {
        let n = self.batches * self.per_batch;
        let batch_of = |t: usize| (t / self.per_batch.max(1)) * self.batch_len;
        if self.m == 0 {
            // Empty tuples: each selects its whole batch.
            return Ok((0..n).map(batch_of).collect());
        }
        let st = strides(&data[b..]);
        let mut out = Vec::with_capacity(n);
        for (t, tuple) in idx.chunks_exact(self.m).enumerate() {
            let mut off = batch_of(t);
            for (j, &i) in tuple.iter().enumerate() {
                off += index(i, data[b + j], input)? * st[j];
            }
            out.push(off);
        }
        Ok(out)
    }

    pub fn out_shape(&self, data: &[usize], b: usize) -> Vec<usize> {
        [&self.lead[..], &data[b + self.m..]].concat()
    }
}

fn gather_nd<T: Elem>(x: &Tensor, i: &Tensor, b: usize) -> OpResult<Tensor> {
    let t = tuples(x.shape(), i.shape(), b)?;
    let idx = int_values(i, 1, "indices")?;
    let offs = t.offsets(x.shape(), b, &idx, 1)?;
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    let shape = t.out_shape(x.shape(), b);
    let mut out = Vec::with_capacity(numel(&shape)?);
    for o in offs {
        out.extend_from_slice(&data[o..o + t.slice]);
    }
    Ok(T::into_tensor(to_array(&shape, out)?))
}

impl Op for GatherNd {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        check_indices(inputs, 1)?;
        let (f, i) = (facts(inputs, 0)?, facts(inputs, 1)?);
        let shape = match (&f.shape, &i.shape) {
            (Some(s), Some(is)) => {
                Some(tuples(s, is, self.batch_dims)?.out_shape(s, self.batch_dims))
            }
            _ => None,
        };
        Ok(vec![Facts {
            dtype: f.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, i) = (input(inputs, 0)?, input(inputs, 1)?);
        with_elem!(x.dtype(), T => gather_nd::<T>(x, i, self.batch_dims)).map(|t| vec![t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: &dyn Op, ins: &[&Tensor]) -> Tensor {
        let v: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        op.run(&v).unwrap().remove(0)
    }

    #[test]
    fn gather_elements_follows_the_spec_examples() {
        let data = Tensor::from_f32(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let idx = Tensor::from_i64(&[2, 2], vec![0, 0, 1, 0]);
        let y = run(&GatherElements { axis: 1 }, &[&data, &idx]);
        assert_eq!(y, Tensor::from_f32(&[2, 2], vec![1.0, 1.0, 4.0, 3.0]));
        let data = Tensor::from_i64(&[3, 3], (1..10).collect());
        let idx = Tensor::from_i64(&[2, 3], vec![1, 2, 0, 2, 0, -3]);
        let y = run(&GatherElements { axis: 0 }, &[&data, &idx]);
        assert_eq!(y, Tensor::from_i64(&[2, 3], vec![4, 8, 3, 7, 2, 3]));
        let bad = Tensor::from_i64(&[2, 3], vec![3, 0, 0, 0, 0, 0]);
        assert!(
            GatherElements { axis: 0 }
                .run(&[Some(&data), Some(&bad)])
                .is_err()
        );
    }

    #[test]
    fn gather_nd_with_and_without_batch_dims() {
        let data = Tensor::from_i64(&[2, 2, 2], (0..8).collect());
        let idx = Tensor::from_i64(&[2, 2], vec![0, 1, 1, 0]);
        let y = run(&GatherNd { batch_dims: 0 }, &[&data, &idx]);
        assert_eq!(y, Tensor::from_i64(&[2, 2], vec![2, 3, 4, 5]));
        let idx = Tensor::from_i64(&[2, 1], vec![1, 0]);
        let y = run(&GatherNd { batch_dims: 1 }, &[&data, &idx]);
        assert_eq!(y, Tensor::from_i64(&[2, 2], vec![2, 3, 4, 5]));
        let idx = Tensor::from_i64(&[2, 1, 2], vec![1, 0, 0, 1]);
        let y = run(&GatherNd { batch_dims: 0 }, &[&data, &idx]);
        assert_eq!(y, Tensor::from_i64(&[2, 1, 2], vec![4, 5, 2, 3]));
    }
}
