//! Expand and Tile, both a strided view with zero strides over the input.

use super::strided::{copy_view, strides_of};
use super::{Elem, const_ints, dim, int_values, row_major, to_array, typed, with_elem};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::shape::broadcast_shapes;
use crate::ir::{Facts, Tensor};

#[derive(Debug)]
struct Expand;

pub(super) fn build_expand(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Expand))
}

/// Expand's output shape: `shape` broadcast with the input's (in both directions).
fn expand_shape(x: &[usize], vals: &[i64]) -> OpResult<Vec<usize>> {
    let target = vals
        .iter()
        .map(|&v| dim(v, "expand: dimension"))
        .collect::<OpResult<Vec<usize>>>()?;
    broadcast_shapes(x, &target).ok_or_else(|| {
        OpError::Invalid(format!("input shape {x:?} does not broadcast to {vals:?}"))
    })
}

/// The view of `shape` broadcast to `out` (same rank or lower): zero strides where it repeats.
fn broadcast_view(shape: &[usize], out: &[usize]) -> Vec<isize> {
    let st = strides_of(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|k| {
            if k < lead || shape[k - lead] != out[k] {
                0
            } else {
                st[k - lead]
            }
        })
        .collect()
}

fn expand<T: Elem>(
    x: &Tensor,
    out: &[usize],
    view: &[usize],
    strides: &[isize],
) -> OpResult<Tensor> {
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    Ok(T::into_tensor(to_array(
        out,
        copy_view(&data, 0, view, strides)?,
    )?))
}

impl Op for Expand {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let shape = match (&f.shape, const_ints(inputs, 1, "shape")?) {
            (Some(s), Some(v)) => Some(expand_shape(s, &v)?),
            _ => None,
        };
        Ok(vec![Facts {
            dtype: f.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let out = expand_shape(x.shape(), &int_values(input(inputs, 1)?, 1, "shape")?)?;
        let strides = broadcast_view(x.shape(), &out);
        with_elem!(x.dtype(), T => expand::<T>(x, &out, &out, &strides)).map(|t| vec![t])
    }
}

#[derive(Debug)]
struct Tile;

pub(super) fn build_tile(_: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Tile))
}

fn tile_shape(x: &[usize], repeats: &[i64]) -> OpResult<Vec<usize>> {
    if repeats.len() != x.len() {
        return Err(OpError::Input {
            index: 1,
            msg: format!("{} repeats for a rank-{} input", repeats.len(), x.len()),
        });
    }
    x.iter()
        .zip(repeats)
        .map(|(&d, &r)| {
            d.checked_mul(dim(r, "tile: repeat")?)
                .ok_or_else(|| OpError::Invalid("tile: size overflows".into()))
        })
        .collect()
}

impl Op for Tile {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let shape = match (&f.shape, const_ints(inputs, 1, "repeats")?) {
            (Some(s), Some(r)) => Some(tile_shape(s, &r)?),
            _ => None,
        };
        Ok(vec![Facts {
            dtype: f.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let reps = int_values(input(inputs, 1)?, 1, "repeats")?;
        let out = tile_shape(x.shape(), &reps)?;
        // Output axis k of size r·d is the row-major pair (repeat r: stride 0, element d).
        let st = strides_of(x.shape());
        let mut view = Vec::with_capacity(2 * out.len());
        let mut strides = Vec::with_capacity(2 * out.len());
        for (k, &r) in reps.iter().enumerate() {
            view.extend([r as usize, x.shape()[k]]);
            strides.extend([0, st[k]]);
        }
        with_elem!(x.dtype(), T => expand::<T>(x, &out, &view, &strides)).map(|t| vec![t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_repeats_blocks() {
        let x = Tensor::from_i64(&[2, 2], vec![0, 1, 2, 3]);
        let y = Tile
            .run(&[Some(&x), Some(&Tensor::from_i64(&[2], vec![2, 3]))])
            .unwrap();
        assert_eq!(y[0].shape(), &[4, 6]);
        assert_eq!(
            y[0].to_i64_vec().unwrap(),
            vec![
                0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3
            ]
        );
    }

    #[test]
    fn expand_is_bidirectional() {
        assert_eq!(expand_shape(&[3, 1], &[2, 1, 6]).unwrap(), vec![2, 3, 6]);
        assert_eq!(expand_shape(&[3, 1], &[3, 4]).unwrap(), vec![3, 4]);
        assert!(expand_shape(&[3, 2], &[4, 4]).is_err());
        assert!(expand_shape(&[3], &[-1]).is_err());
    }
}
