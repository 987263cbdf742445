//! The AVX2+FMA microkernel: 6×16 tiles (12 accumulators of 8 lanes).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::Tile;

const MR: usize = 6;
const NR: usize = 16;

/// `tile (+)= a · b` (`a`: `[kc][6]`, `b`: `[kc][16]`), then the bias.
///
/// # Safety
/// AVX2 and FMA must be present; `a` holds `kc * 6` floats, `b` holds `kc * 16`, and
/// the tile addresses `mr ≤ 6` rows (stride `ldc`) of `nr ≤ 16` writable floats.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn microkernel(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    for k in 0..kc {
        // SAFETY: k < kc, inside both panels.
        unsafe {
            let bk = b.add(k * NR);
            let b0 = _mm256_loadu_ps(bk);
            let b1 = _mm256_loadu_ps(bk.add(8));
            let ak = a.add(k * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ak.add(r));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
        }
    }
    if t.mr == MR && t.nr == NR {
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: a full tile: 16 floats of row r are inside C.
            unsafe {
                let p = t.c.add(r * t.ldc);
                let (mut v0, mut v1) = (row[0], row[1]);
                if t.accumulate {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p.add(8)));
                }
                if let Some(b) = t.bias {
                    let bv = _mm256_set1_ps(b[r]);
                    v0 = _mm256_add_ps(v0, bv);
                    v1 = _mm256_add_ps(v1, bv);
                }
                _mm256_storeu_ps(p, v0);
                _mm256_storeu_ps(p.add(8), v1);
            }
        }
    } else {
        let mut tmp = [[0.0f32; NR]; MR];
        for (dst, row) in tmp.iter_mut().zip(&acc) {
            // SAFETY: each row of `tmp` holds 16 floats.
            unsafe {
                _mm256_storeu_ps(dst.as_mut_ptr(), row[0]);
                _mm256_storeu_ps(dst.as_mut_ptr().add(8), row[1]);
            }
        }
        super::scalar::store(&tmp, t);
    }
}
