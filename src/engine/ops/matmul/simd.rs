//! The instruction-set-specific parts of the GEMM: the `MR × NR` microkernel and the
//! vectorised activation, each with an AVX2+FMA version chosen at run time and a
//! portable one.

use super::kernel::{Activation, MR, NR, Tile};

/// Whether this CPU has AVX2 and FMA (std caches the detection).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `tile (+)= a · b` over `kc` steps, where `a` is an A panel (`[kc][MR]`) and `b` a B
/// panel (`[kc][NR]`); then bias and activation as the tile says.
#[inline]
pub(super) fn microkernel(kc: usize, a: &[f32], b: &[f32], t: &Tile) {
    assert!(a.len() >= kc * MR && b.len() >= kc * NR && t.mr <= MR && t.nr <= NR);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA are present; the panel extents are checked above and the
        // tile pointer addresses `mr` rows of `nr` floats inside C (the driver's contract).
        unsafe { x86::microkernel_packed(kc, a.as_ptr(), b.as_ptr(), t) }
        return;
    }
    let mut acc = [[0.0f32; NR]; MR];
    for (k, ak) in a.chunks_exact(MR).take(kc).enumerate() {
        let bk = &b[k * NR..(k + 1) * NR];
        for (row, &av) in acc.iter_mut().zip(ak) {
            for (c, &bv) in row.iter_mut().zip(bk) {
                *c += av * bv;
            }
        }
    }
    store_scalar(&acc, t);
}

/// Stores a tile held in memory, element by element.
fn store_scalar(acc: &[[f32; NR]; MR], t: &Tile) {
    for (r, row) in acc.iter().enumerate().take(t.mr) {
        let bias = t.bias.map_or(0.0, |b| b[r]);
        for (j, &v) in row.iter().enumerate().take(t.nr) {
            // SAFETY: (r, j) is inside the tile, which lies inside C.
            unsafe {
                let p = t.c.add(r * t.ldc + j);
                let v = if t.accumulate { v + *p } else { v };
                *p = t.act.apply(v + bias);
            }
        }
    }
}

/// Applies `act` to every element of `v`.
pub fn activate(v: &mut [f32], act: Activation) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA are present.
        unsafe { x86::activate(v, act) };
        return;
    }
    for x in v {
        *x = act.apply(*x);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::super::kernel::{Activation, MR, NR, Tile};

    /// The activation on 8 lanes (same formulas as `Activation::apply`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub fn act8(v: __m256, act: Activation) -> __m256 {
        let zero = _mm256_setzero_ps();
        match act {
            Activation::Identity => v,
            Activation::Relu => _mm256_max_ps(v, zero),
            Activation::LeakyRelu { alpha } => {
                let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, zero);
                _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(alpha)), neg)
            }
            Activation::Clip { min, max } => {
                _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(min)), _mm256_set1_ps(max))
            }
            Activation::HardSigmoid { alpha, beta } => {
                let y = _mm256_add_ps(
                    _mm256_mul_ps(v, _mm256_set1_ps(alpha)),
                    _mm256_set1_ps(beta),
                );
                _mm256_min_ps(_mm256_max_ps(y, zero), _mm256_set1_ps(1.0))
            }
            Activation::HardSwish => {
                let y = _mm256_add_ps(_mm256_div_ps(v, _mm256_set1_ps(6.0)), _mm256_set1_ps(0.5));
                _mm256_mul_ps(
                    v,
                    _mm256_min_ps(_mm256_max_ps(y, zero), _mm256_set1_ps(1.0)),
                )
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA must be present; `a` holds `kc * MR` floats, `b` holds `kc * NR`, and
    /// the tile addresses `mr` rows (stride `ldc`) of `nr` writable floats.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn microkernel_packed(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
        // SAFETY: the caller's contract.
        unsafe { body(kc, a, b, t) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn body(kc: usize, a: *const f32, b: *const f32, t: &Tile) {
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
                    _mm256_storeu_ps(p, act8(v0, t.act));
                    _mm256_storeu_ps(p.add(8), act8(v1, t.act));
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
            super::store_scalar(&tmp, t);
        }
    }

    /// # Safety
    /// AVX2 and FMA must be present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn activate(v: &mut [f32], act: Activation) {
        let mut chunks = v.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly 8 floats.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), act8(_mm256_loadu_ps(c.as_ptr()), act)) };
        }
        for x in chunks.into_remainder() {
            *x = act.apply(*x);
        }
    }
}
