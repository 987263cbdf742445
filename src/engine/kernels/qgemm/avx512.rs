//! The AVX512-VNNI integer microkernel: 8×32 tiles, `vpdpbusd` (four exact u8 × s8
//! products added to each i32 lane, no saturation).

use std::arch::x86_64::*;

const MR: usize = 8;
const NR: usize = 32;

/// `tile = a · b` (`a`: `[k4][8]` words, `b`: `[k4][32][4]` bytes, `tile`: 8×32).
///
/// # Safety
/// AVX-512 F and VNNI must be present; `a` holds `k4 * 8` words, `b` `k4 * 128` bytes and
/// `tile` 256 values.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn vnni(k4: usize, a: *const i32, b: *const u8, tile: &mut [i32]) {
    let mut acc = [[_mm512_setzero_si512(); 2]; MR];
    for g in 0..k4 {
        // SAFETY: g < k4, inside both panels (the caller's contract).
        unsafe {
            let bg = b.add(g * NR * 4);
            let b0 = _mm512_loadu_si512(bg as *const __m512i);
            let b1 = _mm512_loadu_si512(bg.add(64) as *const __m512i);
            let ag = a.add(g * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_epi32(*ag.add(r));
                row[0] = _mm512_dpbusd_epi32(row[0], b0, w);
                row[1] = _mm512_dpbusd_epi32(row[1], b1, w);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            // SAFETY: r * 32 + 16 v + 16 ≤ 256 = tile length.
            unsafe {
                _mm512_storeu_si512(tile.as_mut_ptr().add(r * NR + 16 * v) as *mut __m512i, x)
            };
        }
    }
}
