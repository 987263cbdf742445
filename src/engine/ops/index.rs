//! Operators: indexing family. Ops that read or write elements at positions given by
//! another tensor's values: GatherElements, GatherND, ScatterElements (and the
//! deprecated Scatter), ScatterND, Compress, NonZero, OneHot, Trilu, EyeLike.
//!
//! Indices may be negative (counted from the end of their axis); an index out of range
//! is an error, never a clamp. Ops whose output shape depends on input values
//! (Compress, NonZero, OneHot) know it at load when those inputs are constants, and
//! leave it unknown otherwise (the plan then learns it when the op runs).

mod gather;
mod scatter;
mod select;
mod triangle;

use super::{BuildFn, OpError, OpResult};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("GatherElements", gather::build_gather_elements),
    ("GatherND", gather::build_gather_nd),
    ("ScatterElements", scatter::build_scatter_elements),
    ("Scatter", scatter::build_scatter_elements),
    ("ScatterND", scatter::build_scatter_nd),
    ("Compress", select::build_compress),
    ("NonZero", select::build_non_zero),
    ("OneHot", select::build_one_hot),
    ("Trilu", triangle::build_trilu),
    ("EyeLike", triangle::build_eye_like),
];

/// Index `i` of an axis of length `d` (negative counts from the end), or an error
/// naming input `input`.
fn index(i: i64, d: usize, input: usize) -> OpResult<usize> {
    let j = if i < 0 { i.saturating_add(d as i64) } else { i };
    usize::try_from(j)
        .ok()
        .filter(|&j| j < d)
        .ok_or_else(|| OpError::Input {
            index: input,
            msg: format!("index {i} is out of range for an axis of size {d}"),
        })
}

/// Row-major strides of `shape`, in elements.
fn strides(shape: &[usize]) -> Vec<usize> {
    crate::ir::shape::strides(shape)
}

/// For each element of a tensor of `shape` (row-major), the offset of the same position
/// in a tensor of strides `target` with the coordinate of `axis` left out (zero).
fn offsets_without(shape: &[usize], target: &[usize], axis: usize) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut coord = vec![0usize; shape.len()];
    let mut off = 0usize;
    for _ in 0..n {
        out.push(off);
        for d in (0..shape.len()).rev() {
            coord[d] += 1;
            if d != axis {
                off += target[d];
            }
            if coord[d] < shape[d] {
                break;
            }
            if d != axis {
                off -= target[d] * shape[d];
            }
            coord[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_skip_the_axis() {
        // A 2x3 walk into a 4x5 tensor, axis 1 left out.
        let o = offsets_without(&[2, 3], &[5, 1], 1);
        assert_eq!(o, vec![0, 0, 0, 5, 5, 5]);
        let o = offsets_without(&[2, 3], &[5, 1], 0);
        assert_eq!(o, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(index(-1, 4, 1).unwrap(), 3);
        assert!(index(4, 4, 1).is_err());
        assert!(index(-5, 4, 1).is_err());
    }
}
