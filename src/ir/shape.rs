//! Static facts about values (type, shape, constant value) and shape arithmetic.

use std::sync::Arc;

use super::tensor::{DType, Tensor};

/// What is known about a value before running: its type, its shape when static,
/// and its contents when it is a constant.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub dtype: Option<DType>,
    pub shape: Option<Vec<usize>>,
    pub value: Option<Arc<Tensor>>,
}

impl Facts {
    /// Facts of a value with a known type and shape.
    pub fn new(dtype: DType, shape: Vec<usize>) -> Facts {
        Facts {
            dtype: Some(dtype),
            shape: Some(shape),
            value: None,
        }
    }

    /// Facts of a value whose type is known but whose shape is not.
    pub fn unknown_shape(dtype: Option<DType>) -> Facts {
        Facts {
            dtype,
            shape: None,
            value: None,
        }
    }

    /// Facts of a constant.
    pub fn constant(t: Arc<Tensor>) -> Facts {
        Facts {
            dtype: Some(t.dtype()),
            shape: Some(t.shape().to_vec()),
            value: Some(t),
        }
    }

    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(|s| s.len())
    }
}

/// ONNX multidirectional (numpy) broadcasting of two shapes; `None` if incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Broadcast of several shapes; `None` if any pair is incompatible.
pub fn broadcast_all<'a>(shapes: impl IntoIterator<Item = &'a [usize]>) -> Option<Vec<usize>> {
    shapes
        .into_iter()
        .try_fold(Vec::new(), |acc, s| broadcast_shapes(&acc, s))
}

/// Normalizes a possibly negative axis for a tensor of `rank` (`None` if out of range).
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// Row-major strides of a shape, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Formats a shape as `[1,3,48,192]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[2, 3, 4], &[4]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shapes(&[2, 1, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shapes(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast_shapes(&[2, 3], &[4]), None);
        assert_eq!(
            broadcast_all([&[1usize, 3][..], &[2, 1], &[3]]),
            Some(vec![2, 3])
        );
    }

    #[test]
    fn axes_normalize() {
        assert_eq!(normalize_axis(-1, 4), Some(3));
        assert_eq!(normalize_axis(4, 4), None);
        assert_eq!(normalize_axis(-5, 4), None);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
    }
}
