//! Operators: shape family. Ops that compute shapes or move data without arithmetic:
//! Shape, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, DepthToSpace, SpaceToDepth,
//! Concat, Split, Slice, Gather, Expand, Tile, Pad, ConstantOfShape, Range, Size, and
//! CastLike (which reads the type of its second input).
//!
//! Every op whose output shape depends on the *values* of an input computes that shape
//! exactly in `infer` when the input is a constant, so shape sub-graphs fold at load
//! (`Shape` itself returns its value whenever the input shape is static).
//!
//! The helpers at the bottom (row-major data access, checked array construction, the
//! rayon gate) are also used by the resize and pool families.

mod concat;
mod expand;
mod fill;
mod layout;
mod like;
mod pad;
mod slice;
mod strided;
mod transpose;

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};

use super::{BuildFn, OpError, OpResult};
use crate::ir::{Facts, Tensor};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("Shape", layout::build_shape),
    ("Reshape", layout::build_reshape),
    ("Flatten", layout::build_flatten),
    ("Squeeze", layout::build_squeeze),
    ("Unsqueeze", layout::build_unsqueeze),
    ("Transpose", transpose::build_transpose),
    ("DepthToSpace", transpose::build_depth_to_space),
    ("SpaceToDepth", transpose::build_space_to_depth),
    ("Concat", concat::build_concat),
    ("Split", concat::build_split),
    ("Slice", slice::build_slice),
    ("Gather", slice::build_gather),
    ("Expand", expand::build_expand),
    ("Tile", expand::build_tile),
    ("Pad", pad::build_pad),
    ("ConstantOfShape", fill::build_constant_of_shape),
    ("Range", fill::build_range),
    ("Size", like::build_size),
    ("CastLike", like::build_cast_like),
];

/// Elements below which a data-moving loop stays on the calling thread.
const PAR_MIN: usize = 1 << 16;

/// Whether work over `n` elements should be split across rayon workers: large, and not
/// already inside a worker (the engine then runs the samples of a batch in parallel).
#[inline]
pub(crate) fn parallel(n: usize) -> bool {
    n >= PAR_MIN && rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1
}

/// The elements of an array in row-major order, borrowed when in standard layout.
#[inline]
pub(crate) fn row_major<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// An array from a shape and row-major data; an error (not a panic) if they disagree.
#[inline]
pub(crate) fn to_array<T>(shape: &[usize], v: Vec<T>) -> OpResult<ArrayD<T>> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|_| {
        OpError::Invalid(format!(
            "internal: {n} elements do not fill shape {shape:?}"
        ))
    })
}

/// The values of an integer input (axes, shapes, indices), or an error naming it.
pub(crate) fn int_values(t: &Tensor, index: usize, what: &str) -> OpResult<Vec<i64>> {
    t.to_i64_vec().ok_or_else(|| OpError::Input {
        index,
        msg: format!("{what} must be an integer tensor, got {}", t.dtype().name()),
    })
}

/// The values of input `i` when its facts carry a constant value (`None` otherwise,
/// including when the input is omitted).
pub(crate) fn const_ints(
    inputs: &[Option<&Facts>],
    i: usize,
    what: &str,
) -> OpResult<Option<Vec<i64>>> {
    match inputs
        .get(i)
        .copied()
        .flatten()
        .and_then(|f| f.value.as_deref())
    {
        Some(t) => int_values(t, i, what).map(Some),
        None => Ok(None),
    }
}

/// Whether optional input `i` is present.
pub(crate) fn has(inputs: &[Option<&Facts>], i: usize) -> bool {
    inputs.get(i).copied().flatten().is_some()
}

/// The values of the optional runtime input `i`, if present.
pub(crate) fn opt_ints(
    inputs: &[Option<&Tensor>],
    i: usize,
    what: &str,
) -> OpResult<Option<Vec<i64>>> {
    match inputs.get(i).copied().flatten() {
        Some(t) => int_values(t, i, what).map(Some),
        None => Ok(None),
    }
}

/// Normalizes axis `a` against `rank`, or an error naming `what`.
pub(crate) fn axis(a: i64, rank: usize, what: &str) -> OpResult<usize> {
    crate::ir::shape::normalize_axis(a, rank)
        .ok_or_else(|| OpError::Invalid(format!("{what} {a} is out of range for rank {rank}")))
}

/// Product of dimensions, or an error when it exceeds `MAX_ELEMENTS`. Zero dimensions
/// are no excuse: ndarray refuses shapes whose non-zero dimensions overflow.
pub(crate) fn numel(shape: &[usize]) -> OpResult<usize> {
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match nonzero {
        Some(n) if n <= crate::ir::MAX_ELEMENTS => Ok(if shape.contains(&0) { 0 } else { n }),
        n => Err(OpError::Invalid(format!(
            "shape {shape:?} has {} elements, more than the limit of {}",
            n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            crate::ir::MAX_ELEMENTS
        ))),
    }
}

/// A dimension from a value that must be non-negative.
pub(crate) fn dim(v: i64, what: &str) -> OpResult<usize> {
    usize::try_from(v).map_err(|_| OpError::Invalid(format!("{what} {v} is negative")))
}

/// An element type of `Tensor`: lets data-moving kernels be written once, generically.
pub(crate) trait Elem: Copy + Send + Sync + 'static {
    /// The array inside `t` when it holds this type.
    fn array_of(t: &Tensor) -> Option<&ArrayD<Self>>;
    fn into_tensor(a: ArrayD<Self>) -> Tensor;
    /// `v` converted as a numpy cast would (bool: non-zero).
    fn from_f64(v: f64) -> Self;
}

macro_rules! impl_elem {
    ($($t:ty => $v:ident, $x:ident => $conv:expr);*) => {$(
        impl Elem for $t {
            fn array_of(t: &Tensor) -> Option<&ArrayD<$t>> {
                match t {
                    Tensor::$v(a) => Some(a),
                    _ => None,
                }
            }
            fn into_tensor(a: ArrayD<$t>) -> Tensor {
                Tensor::$v(a)
            }
            fn from_f64($x: f64) -> $t {
                $conv
            }
        }
    )*};
}

impl_elem!(
    f32 => F32, v => v as f32;
    f64 => F64, v => v;
    i64 => I64, v => v as i64;
    i32 => I32, v => v as i32;
    i8 => I8, v => v as i8;
    u8 => U8, v => v as u8;
    bool => Bool, v => v != 0.0;
    half::f16 => F16, v => half::f16::from_f64(v);
    half::bf16 => BF16, v => half::bf16::from_f64(v);
    i16 => I16, v => v as i16;
    u16 => U16, v => v as u16;
    u32 => U32, v => v as u32;
    u64 => U64, v => v as u64
);

/// Runs `$body` with `$t` bound to the Rust element type of `$dtype`: the one dtype
/// dispatch of the engine (`elementwise::scalar`).
pub(crate) use super::elementwise::scalar::with_elem;

/// The array of input `index`, which must have element type `T` (that of input 0).
pub(crate) fn typed<T: Elem>(
    t: &Tensor,
    index: usize,
    want: crate::ir::DType,
) -> OpResult<&ArrayD<T>> {
    T::array_of(t).ok_or_else(|| OpError::Input {
        index,
        msg: format!(
            "type {} differs from input 0's {}",
            t.dtype().name(),
            want.name()
        ),
    })
}
