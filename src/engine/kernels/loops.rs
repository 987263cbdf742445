//! Loops over contiguous data shared by the element-wise, broadcasting, reduction,
//! normalization and quantization families: slices in, `Vec` out, split across rayon
//! workers for large tensors unless we already run inside one.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::isa::Isa;
use crate::engine::ops::{OpError, OpResult};

/// Elements below which a loop stays on the calling thread.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// Elements per rayon task.
pub(crate) const PAR_CHUNK: usize = 1 << 14;

/// Whether a loop over `n` elements should be split across rayon workers: large, and
/// not already inside a worker (the engine then runs samples in parallel).
#[inline]
pub(crate) fn parallel(n: usize) -> bool {
    n >= PAR_MIN && rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1
}

/// The elements of an array in row-major order, borrowed when it is in standard layout.
#[inline]
pub(crate) fn data<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// An array from a shape and row-major data.
#[inline]
pub(crate) fn array<T>(shape: &[usize], v: Vec<T>) -> OpResult<ArrayD<T>> {
    let n = v.len();
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|_| {
        OpError::Invalid(format!(
            "internal: {n} elements do not fill shape {shape:?}"
        ))
    })
}

/// A `Vec` of `n` elements written by `fill`, which receives them uninitialized: outputs
/// are written once instead of being zeroed first (a full extra pass over memory).
///
/// # Safety
/// `fill` must initialize every element of the slice it is given.
pub(crate) unsafe fn build_vec<O, F: FnOnce(&mut [MaybeUninit<O>])>(n: usize, fill: F) -> Vec<O> {
    let mut v: Vec<O> = Vec::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: the caller guarantees that `fill` initialized all `n` elements.
    unsafe { v.set_len(n) };
    v
}

/// Runs `f` compiled for the vector width of `isa` (AVX-512 or AVX2 when in force), so
/// the loops inlined into it vectorize over 16 or 8 lanes instead of SSE2's 4. Only the
/// registers are wider: the same IEEE operations in the same order (Rust never contracts
/// `a * b + c` into an FMA), so results are bit-identical on every ISA.
#[inline(always)]
pub(crate) fn wide_on<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::current` (where every `isa` comes from) is always supported.
        Isa::Avx512 => unsafe { avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { avx2(f) },
        _ => f(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f` applied to every element.
#[inline]
pub(crate) fn map<T, U, F>(src: &[T], f: F) -> Vec<U>
where
    T: Copy + Sync,
    U: Copy + Send + Sync + Default,
    F: Fn(T) -> U + Sync + Send,
{
    let isa = Isa::current();
    if parallel(src.len()) {
        let fill = |out: &mut [MaybeUninit<U>]| {
            out.par_chunks_mut(PAR_CHUNK)
                .zip(src.par_chunks(PAR_CHUNK))
                .for_each(|(o, s)| {
                    wide_on(isa, || {
                        for (o, &s) in o.iter_mut().zip(s) {
                            o.write(f(s));
                        }
                    })
                })
        };
        // SAFETY: the chunks of `out` and `src` pair up one to one and cover both.
        unsafe { build_vec(src.len(), fill) }
    } else {
        wide_on(isa, || src.iter().map(|&v| f(v)).collect())
    }
}

/// `f` applied element-wise to an array, keeping its shape.
#[inline]
pub(crate) fn map_array<T, U, F>(a: &ArrayD<T>, f: F) -> OpResult<ArrayD<U>>
where
    T: Copy + Sync,
    U: Copy + Send + Sync + Default,
    F: Fn(T) -> U + Sync + Send,
{
    array(a.shape(), map(&data(a), f))
}
