//! The depthwise channel kernel in AVX2 (8 lanes) and AVX-512 (16 lanes): along each
//! output row, 4 vectors at a time, then single vectors, the last one masked; taps in
//! pairs on two accumulators.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::Channel;

/// `MASKS[8 - n..][..8]` enables the first `n` lanes.
const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// # Safety
/// AVX2 and FMA must be present; `buf` is the channel's padded plane (`rows · row`
/// floats) and `out` its `mult` output planes.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn channel_avx2(ch: &Channel, buf: &[f32], out: &mut [f32]) {
    let p = ch.p;
    let taps = p.kh * p.kw;
    let ohw = p.oh * p.ow;
    // Every read is below `oy·sh·row + offs[t] + ow ≤ rows·row`, the length of `buf`.
    assert!(buf.len() >= ch.lay.rows * ch.lay.row && out.len() >= ohw * (ch.w.len() / taps));
    let tail = p.ow % 8;
    // SAFETY: `MASKS[8 - tail..]` holds at least 8 i32.
    let mask = unsafe { _mm256_loadu_si256(MASKS[8 - tail..].as_ptr() as *const __m256i) };
    let offs = ch.offs;
    for (m, out_m) in out.chunks_exact_mut(ohw).enumerate() {
        let wm = &ch.w[m * taps..(m + 1) * taps];
        let bv = _mm256_set1_ps(ch.bias.map_or(0.0, |b| b[m]));
        for oy in 0..p.oh {
            // SAFETY: see the assertion above; `ox + 32 ≤ ow`, `ox + 8 ≤ ow` or masked lanes.
            unsafe {
                let base = buf.as_ptr().add(oy * p.sh * ch.lay.row);
                let dst = out_m.as_mut_ptr().add(oy * p.ow);
                let mut ox = 0;
                while ox + 32 <= p.ow {
                    let mut a = [bv; 4];
                    let mut b = [_mm256_setzero_ps(); 4];
                    let mut t = 0;
                    while t + 1 < taps {
                        let (w0, w1) = (_mm256_set1_ps(wm[t]), _mm256_set1_ps(wm[t + 1]));
                        let (s0, s1) = (base.add(offs[t] + ox), base.add(offs[t + 1] + ox));
                        for v in 0..4 {
                            a[v] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(s0.add(8 * v)), a[v]);
                            b[v] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(s1.add(8 * v)), b[v]);
                        }
                        t += 2;
                    }
                    if t < taps {
                        let w0 = _mm256_set1_ps(wm[t]);
                        let s0 = base.add(offs[t] + ox);
                        for (v, av) in a.iter_mut().enumerate() {
                            *av = _mm256_fmadd_ps(w0, _mm256_loadu_ps(s0.add(8 * v)), *av);
                        }
                    }
                    for v in 0..4 {
                        _mm256_storeu_ps(dst.add(ox + 8 * v), _mm256_add_ps(a[v], b[v]));
                    }
                    ox += 32;
                }
                while ox < p.ow {
                    let full = ox + 8 <= p.ow;
                    let load = |s: *const f32| {
                        if full {
                            _mm256_loadu_ps(s)
                        } else {
                            _mm256_maskload_ps(s, mask)
                        }
                    };
                    let (mut a, mut b) = (bv, _mm256_setzero_ps());
                    let mut t = 0;
                    while t + 1 < taps {
                        a = _mm256_fmadd_ps(_mm256_set1_ps(wm[t]), load(base.add(offs[t] + ox)), a);
                        b = _mm256_fmadd_ps(
                            _mm256_set1_ps(wm[t + 1]),
                            load(base.add(offs[t + 1] + ox)),
                            b,
                        );
                        t += 2;
                    }
                    if t < taps {
                        a = _mm256_fmadd_ps(_mm256_set1_ps(wm[t]), load(base.add(offs[t] + ox)), a);
                    }
                    let r = _mm256_add_ps(a, b);
                    if full {
                        _mm256_storeu_ps(dst.add(ox), r);
                    } else {
                        _mm256_maskstore_ps(dst.add(ox), mask, r);
                    }
                    ox += 8;
                }
            }
        }
    }
}

/// # Safety
/// AVX-512 F/BW/VL/DQ must be present; as `channel_avx2` otherwise.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
pub(super) unsafe fn channel_avx512(ch: &Channel, buf: &[f32], out: &mut [f32]) {
    let p = ch.p;
    let taps = p.kh * p.kw;
    let ohw = p.oh * p.ow;
    assert!(buf.len() >= ch.lay.rows * ch.lay.row && out.len() >= ohw * (ch.w.len() / taps));
    let tail: __mmask16 = ((1u32 << (p.ow % 16)) - 1) as __mmask16;
    let offs = ch.offs;
    for (m, out_m) in out.chunks_exact_mut(ohw).enumerate() {
        let wm = &ch.w[m * taps..(m + 1) * taps];
        let bv = _mm512_set1_ps(ch.bias.map_or(0.0, |b| b[m]));
        for oy in 0..p.oh {
            // SAFETY: reads stay below `oy·sh·row + offs[t] + ow ≤ rows·row` (full
            // vectors end at or before `ow`, the last is masked); writes stay in row oy.
            unsafe {
                let base = buf.as_ptr().add(oy * p.sh * ch.lay.row);
                let dst = out_m.as_mut_ptr().add(oy * p.ow);
                let mut ox = 0;
                while ox + 64 <= p.ow {
                    let mut a = [bv; 4];
                    let mut b = [_mm512_setzero_ps(); 4];
                    let mut t = 0;
                    while t + 1 < taps {
                        let (w0, w1) = (_mm512_set1_ps(wm[t]), _mm512_set1_ps(wm[t + 1]));
                        let (s0, s1) = (base.add(offs[t] + ox), base.add(offs[t + 1] + ox));
                        for v in 0..4 {
                            a[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(s0.add(16 * v)), a[v]);
                            b[v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(s1.add(16 * v)), b[v]);
                        }
                        t += 2;
                    }
                    if t < taps {
                        let w0 = _mm512_set1_ps(wm[t]);
                        let s0 = base.add(offs[t] + ox);
                        for (v, av) in a.iter_mut().enumerate() {
                            *av = _mm512_fmadd_ps(w0, _mm512_loadu_ps(s0.add(16 * v)), *av);
                        }
                    }
                    for v in 0..4 {
                        _mm512_storeu_ps(dst.add(ox + 16 * v), _mm512_add_ps(a[v], b[v]));
                    }
                    ox += 64;
                }
                while ox < p.ow {
                    let k: __mmask16 = if ox + 16 <= p.ow { 0xFFFF } else { tail };
                    let (mut a, mut b) = (bv, _mm512_setzero_ps());
                    let mut t = 0;
                    while t + 1 < taps {
                        let s0 = _mm512_maskz_loadu_ps(k, base.add(offs[t] + ox));
                        let s1 = _mm512_maskz_loadu_ps(k, base.add(offs[t + 1] + ox));
                        a = _mm512_fmadd_ps(_mm512_set1_ps(wm[t]), s0, a);
                        b = _mm512_fmadd_ps(_mm512_set1_ps(wm[t + 1]), s1, b);
                        t += 2;
                    }
                    if t < taps {
                        let s0 = _mm512_maskz_loadu_ps(k, base.add(offs[t] + ox));
                        a = _mm512_fmadd_ps(_mm512_set1_ps(wm[t]), s0, a);
                    }
                    _mm512_mask_storeu_ps(dst.add(ox), k, _mm512_add_ps(a, b));
                    ox += 16;
                }
            }
        }
    }
}
