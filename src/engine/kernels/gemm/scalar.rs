//! The portable microkernel: the 6×16 layout of `Layout::of(Isa::Scalar)` in plain Rust.

use super::Tile;

const MR: usize = 6;
const NR: usize = 16;

/// `tile (+)= a · b` (`a`: `[kc][6]`, `b`: `[kc][16]`), then the bias.
pub(super) fn microkernel(kc: usize, a: &[f32], b: &[f32], t: &Tile) {
    let mut acc = [[0.0f32; NR]; MR];
    for (k, ak) in a.chunks_exact(MR).take(kc).enumerate() {
        let bk = &b[k * NR..(k + 1) * NR];
        for (row, &av) in acc.iter_mut().zip(ak) {
            for (c, &bv) in row.iter_mut().zip(bk) {
                *c += av * bv;
            }
        }
    }
    store(&acc, t);
}

/// Stores a tile held in memory (`acc[r][j]`, at least `t.mr` rows of `t.nr` values),
/// element by element: accumulating into C if asked, then adding the bias.
pub(super) fn store<const W: usize>(acc: &[[f32; W]], t: &Tile) {
    for (r, row) in acc.iter().enumerate().take(t.mr) {
        let bias = t.bias.map(|b| b[r]);
        for (j, &v) in row.iter().enumerate().take(t.nr) {
            // SAFETY: (r, j) is inside the tile, which lies inside C (the driver's contract).
            unsafe {
                let p = t.c.add(r * t.ldc + j);
                let v = if t.accumulate { v + *p } else { v };
                *p = match bias {
                    Some(b) => v + b,
                    None => v,
                };
            }
        }
    }
}
