//! Multidirectional (numpy) broadcasting over precomputed strides.
//!
//! The output shape is simplified first: dims of size 1 are dropped, and adjacent dims
//! are merged wherever every input steps through them contiguously (or not at all).
//! What is left is a list of outer dims walked with an odometer once per row, and one
//! inner dim along which each input either advances by 1 or stays put, so the inner
//! loop is a plain slice zip: same shape is one long row, a scalar is a row with a
//! fixed operand, and [1,C,1,1] against [N,C,H,W] is N·C rows of H·W with a fixed one.

use std::mem::MaybeUninit;

use ndarray::ArrayD;
use rayon::prelude::*;

use crate::engine::ops::elementwise::kernel::{
    PAR_CHUNK, array, build_vec, data, parallel, wide_on,
};
use crate::engine::ops::{OpError, OpResult};
use crate::ir::shape::broadcast_all;

/// The iteration plan of `N` inputs broadcast against each other.
#[derive(Debug)]
pub(crate) struct Bcast<const N: usize> {
    /// The output shape.
    pub shape: Vec<usize>,
    len: usize,
    /// Simplified outer dims (all but the innermost).
    outer: Vec<usize>,
    /// Per input: its stride along each outer dim (0 where broadcast).
    strides: [Vec<usize>; N],
    /// Length of the innermost simplified dim.
    inner: usize,
    /// Per input: 1 if it advances along the inner dim, 0 if broadcast.
    pub steps: [usize; N],
}

impl<const N: usize> Bcast<N> {
    pub fn new(shapes: [&[usize]; N]) -> OpResult<Bcast<N>> {
        let shape = broadcast_all(shapes.iter().copied()).ok_or_else(|| {
            let s: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
            OpError::Invalid(format!("shapes {} do not broadcast", s.join(" and ")))
        })?;
        let rank = shape.len();
        let len = shape.iter().product();
        // Per input, per output dim: the stride (0 where the input has size 1).
        let full: [Vec<usize>; N] = std::array::from_fn(|k| {
            let s = shapes[k];
            let pad = rank - s.len();
            let mut st = vec![0; rank];
            let mut acc = 1;
            for d in (0..s.len()).rev() {
                st[pad + d] = if s[d] == 1 { 0 } else { acc };
                acc *= s[d];
            }
            st
        });
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: [Vec<usize>; N] = std::array::from_fn(|_| Vec::new());
        for d in 0..rank {
            if shape[d] == 1 {
                continue;
            }
            let merge = dims.last().is_some_and(|_| {
                (0..N).all(|k| strides[k].last().copied() == Some(full[k][d] * shape[d]))
            });
            if merge {
                let last = dims.len() - 1;
                dims[last] *= shape[d];
                for k in 0..N {
                    strides[k][last] = full[k][d];
                }
            } else {
                dims.push(shape[d]);
                for k in 0..N {
                    strides[k].push(full[k][d]);
                }
            }
        }
        let inner = dims.pop().unwrap_or(1);
        let steps = std::array::from_fn(|k| strides[k].pop().unwrap_or(0));
        Ok(Bcast {
            shape,
            len,
            outer: dims,
            strides,
            inner,
            steps,
        })
    }

    /// Number of output elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Odometer position and input offsets at the start of row `row`.
    fn unravel(&self, mut row: usize) -> (Vec<usize>, [usize; N]) {
        let mut idx = vec![0; self.outer.len()];
        let mut offs = [0; N];
        for d in (0..self.outer.len()).rev() {
            idx[d] = row % self.outer[d];
            row /= self.outer[d];
            for (o, s) in offs.iter_mut().zip(&self.strides) {
                *o += idx[d] * s[d];
            }
        }
        (idx, offs)
    }

    fn advance(&self, idx: &mut [usize], offs: &mut [usize; N]) {
        for d in (0..self.outer.len()).rev() {
            idx[d] += 1;
            for (o, s) in offs.iter_mut().zip(&self.strides) {
                *o += s[d];
            }
            if idx[d] < self.outer[d] {
                return;
            }
            idx[d] = 0;
            for (o, s) in offs.iter_mut().zip(&self.strides) {
                *o -= s[d] * self.outer[d];
            }
        }
    }

    /// Calls `f(segment, offsets)` for consecutive pieces of `out` that each lie within
    /// one inner row and together cover all of `out` when its length is `len()` (else
    /// nothing is called); `offsets` are the inputs' flat indices at the segment's first
    /// element. Large outputs are split across rayon workers.
    pub fn for_segments<O, F>(&self, out: &mut [O], f: F)
    where
        O: Send,
        F: Fn(&mut [O], [usize; N]) + Sync + Send,
    {
        let isa = crate::engine::kernels::Isa::current();
        if self.len == 0 || out.len() != self.len {
            return;
        }
        let body = |start: usize, chunk: &mut [O]| {
            let (mut idx, mut offs) = self.unravel(start / self.inner);
            let mut col = start % self.inner;
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = (self.inner - col).min(rest.len());
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
                let at = std::array::from_fn(|k| offs[k] + col * self.steps[k]);
                wide_on(isa, || f(head, at));
                rest = tail;
                col = 0;
                self.advance(&mut idx, &mut offs);
            }
        };
        if parallel(out.len()) {
            out.par_chunks_mut(PAR_CHUNK)
                .enumerate()
                .for_each(|(i, c)| body(i * PAR_CHUNK, c));
        } else {
            body(0, out);
        }
    }
}

/// `f(a, b)` with `a` and `b` broadcast against each other.
pub(crate) fn zip2<A, B, O, F>(a: &ArrayD<A>, b: &ArrayD<B>, f: F) -> OpResult<ArrayD<O>>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Copy + Send + Sync + Default,
    F: Fn(A, B) -> O + Sync + Send,
{
    let bc = Bcast::new([a.shape(), b.shape()])?;
    let (da, db) = (data(a), data(b));
    let (da, db): (&[A], &[B]) = (&da, &db);
    let fill = |out: &mut [MaybeUninit<O>]| {
        bc.for_segments(out, |o, [oa, ob]| {
            let n = o.len();
            match bc.steps {
                [1, 1] => {
                    for ((o, &x), &y) in o.iter_mut().zip(&da[oa..oa + n]).zip(&db[ob..ob + n]) {
                        o.write(f(x, y));
                    }
                }
                [1, _] => {
                    let y = db[ob];
                    for (o, &x) in o.iter_mut().zip(&da[oa..oa + n]) {
                        o.write(f(x, y));
                    }
                }
                [_, 1] => {
                    let x = da[oa];
                    for (o, &y) in o.iter_mut().zip(&db[ob..ob + n]) {
                        o.write(f(x, y));
                    }
                }
                _ => o.fill(MaybeUninit::new(f(da[oa], db[ob]))),
            }
        })
    };
    // SAFETY: the segments cover the whole output, and each branch writes all of one.
    let out = unsafe { build_vec(bc.len(), fill) };
    array(&bc.shape, out)
}

/// `f(a, b, c)` with the three broadcast against each other.
pub(crate) fn zip3<A, B, C, O, F>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    c: &ArrayD<C>,
    f: F,
) -> OpResult<ArrayD<O>>
where
    A: Copy + Sync,
    B: Copy + Sync,
    C: Copy + Sync,
    O: Copy + Send + Sync + Default,
    F: Fn(A, B, C) -> O + Sync + Send,
{
    let bc = Bcast::new([a.shape(), b.shape(), c.shape()])?;
    let (da, db, dc) = (data(a), data(b), data(c));
    let (da, db, dc): (&[A], &[B], &[C]) = (&da, &db, &dc);
    let [sa, sb, sc] = bc.steps;
    let fill = |out: &mut [MaybeUninit<O>]| {
        bc.for_segments(out, |o, [oa, ob, oc]| {
            for (i, o) in o.iter_mut().enumerate() {
                o.write(f(da[oa + i * sa], db[ob + i * sb], dc[oc + i * sc]));
            }
        })
    };
    // SAFETY: the segments cover the whole output and each is written in full.
    let out = unsafe { build_vec(bc.len(), fill) };
    array(&bc.shape, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn arr(shape: &[usize]) -> ArrayD<f32> {
        let n = shape.iter().product();
        ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|v| v as f32).collect()).unwrap()
    }

    /// Broadcasting through ndarray, element by element: the naive reference.
    fn naive(a: &ArrayD<f32>, b: &ArrayD<f32>) -> ArrayD<f32> {
        let shape = broadcast_all([a.shape(), b.shape()]).unwrap();
        let (a, b) = (
            a.broadcast(IxDyn(&shape)).unwrap(),
            b.broadcast(IxDyn(&shape)).unwrap(),
        );
        ndarray::Zip::from(&a)
            .and(&b)
            .map_collect(|&x, &y| x * 1000.0 + y)
    }

    #[test]
    fn matches_naive_broadcasting() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3, 4], &[2, 3, 4]),
            (&[2, 3, 4], &[]),
            (&[], &[2, 3, 4]),
            (&[2, 3, 4, 5], &[1, 3, 1, 1]),
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[3, 1], &[1, 4]),
            (&[4, 1, 1], &[4, 5, 6]),
            (&[2, 3, 4], &[4]),
            (&[2, 1, 4], &[3, 1]),
            (&[1, 1], &[1]),
            (&[0, 3], &[3]),
            (&[5, 1, 7, 1], &[1, 6, 1, 3]),
        ];
        for (sa, sb) in cases {
            let (a, b) = (arr(sa), arr(sb));
            let got = zip2(&a, &b, |x: f32, y: f32| x * 1000.0 + y).unwrap();
            assert_eq!(got, naive(&a, &b), "{sa:?} with {sb:?}");
        }
    }

    #[test]
    fn large_tensors_split_across_workers_give_the_same_result() {
        let (a, b) = (arr(&[2, 7, 61, 67]), arr(&[7, 1, 67]));
        let got = zip2(&a, &b, |x: f32, y: f32| x * 1000.0 + y).unwrap();
        assert_eq!(got, naive(&a, &b));
    }

    #[test]
    fn incompatible_shapes_are_an_error() {
        assert!(zip2(&arr(&[2, 3]), &arr(&[4]), |x: f32, y: f32| x + y).is_err());
    }

    #[test]
    fn three_way() {
        let (a, b, c) = (arr(&[2, 1, 3]), arr(&[4, 1]), arr(&[1]));
        let got = zip3(&a, &b, &c, |x: f32, y: f32, z: f32| {
            x * 100.0 + y * 10.0 + z
        })
        .unwrap();
        assert_eq!(got.shape(), &[2, 4, 3]);
        assert_eq!(got[[1, 2, 0]], 3.0 * 100.0 + 2.0 * 10.0);
    }
}
