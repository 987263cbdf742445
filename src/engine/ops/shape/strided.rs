//! Materializing a strided view of a row-major buffer: the one copy loop behind
//! Transpose, Slice, Expand, DepthToSpace and SpaceToDepth.
//!
//! The view is first simplified (unit dimensions dropped, dimensions that stay adjacent
//! merged), so most real cases end up as a few long contiguous rows (memcpy), rows of
//! one repeated element (broadcast), or a 2-D transposition of the two innermost
//! dimensions, which is done in cache-sized tiles.

use rayon::prelude::*;

use super::parallel;
use crate::engine::ops::{OpError, OpResult};

/// Tile edge for 2-D transpositions, in elements (a band of rows), and the block
/// moved through registers.
const TILE: usize = 32;
const MB: usize = 8;

/// Dimensions and strides (in elements) of a view, innermost last.
#[derive(Debug, Clone, PartialEq)]
struct Dims {
    shape: Vec<usize>,
    strides: Vec<isize>,
}

/// Drops unit dimensions and merges neighbours that are contiguous with each other.
fn simplify(shape: &[usize], strides: &[isize]) -> Dims {
    let mut d = Dims {
        shape: Vec::with_capacity(shape.len()),
        strides: Vec::with_capacity(shape.len()),
    };
    for (&n, &s) in shape.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        match (d.shape.last_mut(), d.strides.last_mut()) {
            (Some(pn), Some(ps)) if *ps == s * n as isize => {
                *pn *= n;
                *ps = s;
            }
            _ => {
                d.shape.push(n);
                d.strides.push(s);
            }
        }
    }
    d
}

/// Iterates the source offsets of successive rows (all dimensions but the last).
struct Rows<'a> {
    dims: &'a [usize],
    strides: &'a [isize],
    idx: Vec<usize>,
    base: isize,
}

impl<'a> Rows<'a> {
    /// Positioned at row `start` (row-major over `dims`).
    fn new(dims: &'a [usize], strides: &'a [isize], offset: isize, start: usize) -> Rows<'a> {
        let mut idx = vec![0; dims.len()];
        let mut rest = start;
        let mut base = offset;
        for k in (0..dims.len()).rev() {
            idx[k] = rest % dims[k];
            rest /= dims[k];
            base += idx[k] as isize * strides[k];
        }
        Rows {
            dims,
            strides,
            idx,
            base,
        }
    }

    /// The current row's offset; then moves to the next row.
    fn next_base(&mut self) -> isize {
        let b = self.base;
        for k in (0..self.dims.len()).rev() {
            self.idx[k] += 1;
            self.base += self.strides[k];
            if self.idx[k] < self.dims[k] {
                break;
            }
            self.base -= self.strides[k] * self.dims[k] as isize;
            self.idx[k] = 0;
        }
        b
    }
}

/// The elements of the view `(offset, shape, strides)` of `src` in row-major order.
/// Strides are in elements and may be zero (broadcast) or negative (reversed).
pub(super) fn copy_view<T: Copy + Send + Sync>(
    src: &[T],
    offset: isize,
    shape: &[usize],
    strides: &[isize],
) -> OpResult<Vec<T>> {
    let n = super::numel(shape)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    // Every reachable offset must lie inside `src`, so the loops below cannot go astray.
    let (mut lo, mut hi) = (offset, offset);
    for (&d, &s) in shape.iter().zip(strides) {
        let span = (d as isize - 1) * s;
        if span < 0 { lo += span } else { hi += span }
    }
    if lo < 0 || hi >= src.len() as isize {
        return Err(OpError::Invalid(format!(
            "internal: view {shape:?}/{strides:?}+{offset} reaches outside {} elements",
            src.len()
        )));
    }
    let d = simplify(shape, strides);
    let r = d.shape.len();
    let mut out = vec![src[offset as usize]; n];
    if r == 0 {
        return Ok(out);
    }
    let (inner, istride) = (d.shape[r - 1], d.strides[r - 1]);
    if r >= 2 && istride != 1 && d.strides[r - 2] == 1 && inner >= 4 && d.shape[r - 2] >= 4 {
        transpose_tiles(src, offset, &d, &mut out);
        return Ok(out);
    }
    let outer = (&d.shape[..r - 1], &d.strides[..r - 1]);
    let fill = |chunk: &mut [T], first_row: usize| {
        let mut rows = Rows::new(outer.0, outer.1, offset, first_row);
        for row in chunk.chunks_exact_mut(inner) {
            let b = rows.next_base() as usize;
            match istride {
                1 => row.copy_from_slice(&src[b..b + inner]),
                0 => row.fill(src[b]),
                s => {
                    for (i, o) in row.iter_mut().enumerate() {
                        *o = src[(b as isize + i as isize * s) as usize];
                    }
                }
            }
        }
    };
    let rows_total = n / inner;
    if parallel(n) && rows_total > 1 {
        let rows_per = rows_total.div_ceil(rayon::current_num_threads() * 4).max(1);
        out.par_chunks_mut(rows_per * inner)
            .enumerate()
            .for_each(|(k, c)| fill(c, k * rows_per));
    } else {
        fill(&mut out, 0);
    }
    Ok(out)
}

/// The view's two innermost dimensions are a transposition (strides `[.., 1, s]`):
/// copies each `a × b` block in tiles so reads and writes both stay in cache.
fn transpose_tiles<T: Copy + Send + Sync>(src: &[T], offset: isize, d: &Dims, out: &mut [T]) {
    let r = d.shape.len();
    let (a, b, sb) = (d.shape[r - 2], d.shape[r - 1], d.strides[r - 1]);
    let outer = (&d.shape[..r - 2], &d.strides[..r - 2]);
    let block = |k: usize, blk: &mut [T]| {
        let base = Rows::new(outer.0, outer.1, offset, k).next_base();
        // One band = up to TILE output rows (i), all columns (j), moved in 8×8 blocks.
        let band = |bi: usize, rows: &mut [T]| {
            let i0 = bi * TILE;
            let ni = rows.len() / b;
            let at = |i: usize, j: usize| (base + j as isize * sb) as usize + i0 + i;
            let full_i = ni - ni % MB;
            let full_j = b - b % MB;
            for jb in (0..full_j).step_by(MB) {
                for ib in (0..full_i).step_by(MB) {
                    let mut blk = [[src[at(ib, jb)]; MB]; MB];
                    for (jj, col) in blk.iter_mut().enumerate() {
                        let s0 = at(ib, jb + jj);
                        col.copy_from_slice(&src[s0..s0 + MB]);
                    }
                    for ii in 0..MB {
                        let d = &mut rows[(ib + ii) * b + jb..(ib + ii) * b + jb + MB];
                        for (jj, v) in d.iter_mut().enumerate() {
                            *v = blk[jj][ii];
                        }
                    }
                }
            }
            // The ragged right and bottom edges.
            for i in 0..ni {
                let from = if i < full_i { full_j } else { 0 };
                for j in from..b {
                    rows[i * b + j] = src[at(i, j)];
                }
            }
        };
        if parallel(a * b) {
            blk.par_chunks_mut(TILE * b)
                .enumerate()
                .for_each(|(bi, rows)| band(bi, rows));
        } else {
            blk.chunks_mut(TILE * b)
                .enumerate()
                .for_each(|(bi, rows)| band(bi, rows));
        }
    };
    if parallel(out.len()) {
        out.par_chunks_mut(a * b)
            .enumerate()
            .for_each(|(k, blk)| block(k, blk));
    } else {
        out.chunks_mut(a * b)
            .enumerate()
            .for_each(|(k, blk)| block(k, blk));
    }
}

/// Row-major strides of `shape` as signed element counts.
pub(super) fn strides_of(shape: &[usize]) -> Vec<isize> {
    crate::ir::shape::strides(shape)
        .into_iter()
        .map(|s| s as isize)
        .collect()
}

/// `src` (of row-major `shape`) with its axes permuted: output axis `k` is input axis `perm[k]`.
pub(super) fn permute<T: Copy + Send + Sync>(
    src: &[T],
    shape: &[usize],
    perm: &[usize],
) -> OpResult<Vec<T>> {
    let st = strides_of(shape);
    let oshape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let ostrides: Vec<isize> = perm.iter().map(|&p| st[p]).collect();
    copy_view(src, 0, &oshape, &ostrides)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference: element by element through the full index.
    fn naive(src: &[i32], offset: isize, shape: &[usize], strides: &[isize]) -> Vec<i32> {
        let n: usize = shape.iter().product();
        (0..n)
            .map(|mut f| {
                let mut o = offset;
                for k in (0..shape.len()).rev() {
                    o += (f % shape[k]) as isize * strides[k];
                    f /= shape[k];
                }
                src[o as usize]
            })
            .collect()
    }

    #[test]
    fn simplify_merges_contiguous_and_drops_units() {
        let d = simplify(&[2, 1, 3, 4], &[12, 99, 4, 1]);
        assert_eq!(
            d,
            Dims {
                shape: vec![24],
                strides: vec![1]
            }
        );
        let d = simplify(&[2, 4, 3], &[12, 1, 4]);
        assert_eq!(
            d,
            Dims {
                shape: vec![2, 4, 3],
                strides: vec![12, 1, 4]
            }
        );
    }

    #[test]
    fn permutations_match_naive() {
        let shape = [3usize, 5, 7, 9];
        let src: Vec<i32> = (0..shape.iter().product::<usize>() as i32).collect();
        let st = strides_of(&shape);
        let perms: [[usize; 4]; 6] = [
            [0, 1, 2, 3],
            [0, 2, 1, 3],
            [0, 2, 3, 1],
            [3, 2, 1, 0],
            [1, 0, 3, 2],
            [0, 3, 1, 2],
        ];
        for p in perms {
            let os: Vec<usize> = p.iter().map(|&k| shape[k]).collect();
            let ost: Vec<isize> = p.iter().map(|&k| st[k]).collect();
            assert_eq!(
                permute(&src, &shape, &p).unwrap(),
                naive(&src, 0, &os, &ost),
                "perm {p:?}"
            );
        }
    }

    #[test]
    fn negative_and_zero_strides() {
        let src: Vec<i32> = (0..20).collect();
        let got = copy_view(&src, 19, &[2, 3, 4], &[-10, 0, -2]).unwrap();
        assert_eq!(got, naive(&src, 19, &[2, 3, 4], &[-10, 0, -2]));
        assert!(copy_view(&src, 19, &[2, 3], &[10, 1]).is_err());
        assert!(copy_view(&src, 0, &[0, 3], &[1, 1]).unwrap().is_empty());
    }
}
