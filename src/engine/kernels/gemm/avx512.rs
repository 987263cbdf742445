//! The AVX-512 microkernel: 14×32 tiles (28 accumulators of 16 lanes; A is broadcast
//! from memory, B loaded as two vectors per step). Narrower tiles (the last A panel of
//! a matrix whose rows are not a multiple of 14, the last 1–16 columns) run a copy
//! compiled for their size, with masked loads and stores at the column edge.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::Tile;

const MR: usize = 14;
const NR: usize = 32;

/// `tile (+)= a · b` (`a`: `[kc][14]`, `b`: `[kc][32]`), then the bias.
///
/// # Safety
/// AVX-512 F/BW/VL/DQ must be present; `a` holds `kc * 14` floats, `b` holds `kc * 32`,
/// and the tile addresses `mr ≤ 14` rows (stride `ldc`) of `nr ≤ 32` writable floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
pub(super) unsafe fn microkernel(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match (t.mr, t.nr > 16) {
                // SAFETY: the caller's contract, with R = t.mr and V covering t.nr.
                $(($r, true) => unsafe { tile::<$r, 2>(kc, a, b, t) },
                  // SAFETY: as above, one vector covering t.nr ≤ 16.
                  ($r, false) => unsafe { tile::<$r, 1>(kc, a, b, t) },)*
                _ => {}
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14);
}

/// Lanes `0..n` (n ≤ 16) as a mask.
#[inline(always)]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// An `R × 16V` tile.
///
/// # Safety
/// As `microkernel`, with `R == t.mr` and `16 (V - 1) < t.nr ≤ 16 V`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
unsafe fn tile<const R: usize, const V: usize>(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for k in 0..kc {
        // SAFETY: k < kc, inside both panels; V ≤ 2 vectors of the 32-wide B row.
        unsafe {
            let bk = b.add(k * NR);
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(bk.add(16 * v));
            }
            let ak = a.add(k * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ak.add(r));
                for (x, &bx) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, bx, *x);
                }
            }
        }
    }
    let masks: [__mmask16; V] = std::array::from_fn(|v| lanes(t.nr.saturating_sub(16 * v)));
    for (r, row) in acc.iter().enumerate() {
        let bias = t.bias.map(|b| _mm512_set1_ps(b[r]));
        for (v, &x) in row.iter().enumerate() {
            // SAFETY: row r < mr and the masked lanes are columns < nr of the tile.
            unsafe {
                let p = t.c.add(r * t.ldc + 16 * v);
                let m = masks[v];
                let mut x = x;
                if t.accumulate {
                    x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, p));
                }
                if let Some(bv) = bias {
                    x = _mm512_add_ps(x, bv);
                }
                _mm512_mask_storeu_ps(p, m, x);
            }
        }
    }
}
