//! The 256-bit integer microkernels: AVX-VNNI (`vpdpbusd`, 6×16 tiles) and, for AVX2
//! without VNNI, a widening one (4×16 tiles): the even and odd bytes of B are
//! zero-extended to i16 lanes and `vpmaddwd` multiplies them by i16 weight pairs, adding
//! two exact products per i32 lane (no 16-bit saturation anywhere).

use std::arch::x86_64::*;

const NR: usize = 16;

/// `tile = a · b` (`a`: `[k4][6]` words, `b`: `[k4][16][4]` bytes, `tile`: 6×16).
///
/// # Safety
/// AVX2 and AVX-VNNI must be present; `a` holds `k4 * 6` words, `b` `k4 * 64` bytes and
/// `tile` 96 values.
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn vnni(k4: usize, a: *const i32, b: *const u8, tile: &mut [i32]) {
    const MR: usize = 6;
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for g in 0..k4 {
        // SAFETY: g < k4, inside both panels (the caller's contract).
        unsafe {
            let bg = b.add(g * NR * 4);
            let b0 = _mm256_loadu_si256(bg as *const __m256i);
            let b1 = _mm256_loadu_si256(bg.add(32) as *const __m256i);
            let ag = a.add(g * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let w = _mm256_set1_epi32(*ag.add(r));
                row[0] = _mm256_dpbusd_avx_epi32(row[0], b0, w);
                row[1] = _mm256_dpbusd_avx_epi32(row[1], b1, w);
            }
        }
    }
    // SAFETY: 6 rows of 16 values = the tile's 96.
    unsafe { store(&acc, tile) };
}

/// `tile = a · b` (`a`: `[k4][4][2]` words of i16 pairs (w0, w2), (w1, w3); `b`:
/// `[k4][16][4]` bytes; `tile`: 4×16).
///
/// # Safety
/// AVX2 must be present; `a` holds `k4 * 8` words, `b` `k4 * 64` bytes and `tile` 64
/// values.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn madd(k4: usize, a: *const i32, b: *const u8, tile: &mut [i32]) {
    const MR: usize = 4;
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    let low = _mm256_set1_epi16(0x00FF);
    for g in 0..k4 {
        // SAFETY: g < k4, inside both panels (the caller's contract).
        unsafe {
            let bg = b.add(g * NR * 4);
            let x0 = _mm256_loadu_si256(bg as *const __m256i);
            let x1 = _mm256_loadu_si256(bg.add(32) as *const __m256i);
            // Per i32 lane (one column): even = (b0, b2), odd = (b1, b3) as i16.
            let even = [_mm256_and_si256(x0, low), _mm256_and_si256(x1, low)];
            let odd = [_mm256_srli_epi16(x0, 8), _mm256_srli_epi16(x1, 8)];
            let ag = a.add(g * MR * 2);
            for (r, row) in acc.iter_mut().enumerate() {
                let we = _mm256_set1_epi32(*ag.add(2 * r));
                let wo = _mm256_set1_epi32(*ag.add(2 * r + 1));
                for v in 0..2 {
                    let s = _mm256_add_epi32(
                        _mm256_madd_epi16(even[v], we),
                        _mm256_madd_epi16(odd[v], wo),
                    );
                    row[v] = _mm256_add_epi32(row[v], s);
                }
            }
        }
    }
    // SAFETY: 4 rows of 16 values = the tile's 64.
    unsafe { store(&acc, tile) };
}

/// Stores `R` rows of two vectors into `tile` (row stride 16).
///
/// # Safety
/// AVX must be present and `tile` hold `16 R` values.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store<const R: usize>(acc: &[[__m256i; 2]; R], tile: &mut [i32]) {
    for (r, row) in acc.iter().enumerate() {
        for (v, &x) in row.iter().enumerate() {
            // SAFETY: r * 16 + 8 v + 8 ≤ 16 R.
            unsafe {
                _mm256_storeu_si256(tile.as_mut_ptr().add(r * NR + 8 * v) as *mut __m256i, x)
            };
        }
    }
}
