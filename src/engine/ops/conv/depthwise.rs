//! Direct depthwise convolution (group = input channels, any channel multiplier): per
//! input channel, the plane is copied once into a zero-padded buffer whose rows are
//! split by stride phase (`row[t * stride + q]` stored at `q * len + t`), so that every
//! kernel tap becomes a contiguous multiply-add over a whole output row, for any kernel
//! size, stride and dilation.

use rayon::prelude::*;

use super::super::matmul::kernel::{Activation, with_scratch};
use super::super::matmul::simd::has_avx2;
use super::im2col::Plane;

/// Padded-plane layout of one input channel.
#[derive(Clone, Copy)]
struct Layout {
    /// Rows and columns of the padded plane the taps reach.
    rows: usize,
    cols: usize,
    /// Length of one stride phase of a row, and of a whole stored row.
    phase: usize,
    row: usize,
}

impl Layout {
    fn new(p: &Plane) -> Layout {
        let rows = (p.oh - 1) * p.sh + (p.kh - 1) * p.dh + 1;
        let cols = (p.ow - 1) * p.sw + (p.kw - 1) * p.dw + 1;
        let phase = cols.div_ceil(p.sw);
        Layout {
            rows,
            cols,
            phase,
            row: phase * p.sw,
        }
    }
}

/// One sample: `x` is `[C, H, W]`, `w` is `[C · mult, kh · kw]`, `out` is `[C · mult, oh · ow]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn depthwise(
    x: &[f32],
    p: &Plane,
    mult: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    parallel: bool,
) {
    let (plane, taps, ohw) = (p.h * p.w, p.kh * p.kw, p.oh * p.ow);
    if ohw == 0 || mult == 0 {
        return;
    }
    let lay = Layout::new(p);
    let job = |(c, out_c): (usize, &mut [f32])| {
        let x_c = &x[c * plane..(c + 1) * plane];
        let w_c = &w[c * mult * taps..(c + 1) * mult * taps];
        let b_c = bias.map(|b| &b[c * mult..(c + 1) * mult]);
        with_scratch(lay.rows * lay.row, |buf| {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: AVX2 and FMA are present.
                unsafe { channel_avx2(x_c, p, &lay, w_c, b_c, act, out_c, buf) };
                return;
            }
            channel(x_c, p, &lay, w_c, b_c, act, out_c, buf);
        });
    };
    let chunks = out.chunks_mut(mult * ohw).enumerate();
    if parallel && x.len() * taps >= 1 << 16 {
        out.par_chunks_mut(mult * ohw).enumerate().for_each(job);
    } else {
        chunks.for_each(job);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn channel_avx2(
    x: &[f32],
    p: &Plane,
    lay: &Layout,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    buf: &mut [f32],
) {
    use std::arch::x86_64::*;

    use super::super::matmul::simd::x86::act8;

    fill_padded(x, p, lay, buf);
    let taps = p.kh * p.kw;
    let ohw = p.oh * p.ow;
    // Offset of tap t from the start of the first padded row an output row reads.
    let offs: Vec<usize> = (0..taps)
        .map(|t| {
            let (ky, kx) = (t / p.kw, t % p.kw);
            ky * p.dh * lay.row + ((kx * p.dw) % p.sw) * lay.phase + (kx * p.dw) / p.sw
        })
        .collect();
    // Every read is below `oy·sh·row + offs[t] + ow ≤ rows·row`, the length of `buf`.
    assert!(buf.len() >= lay.rows * lay.row && out.len() >= ohw * (w.len() / taps.max(1)));
    let tail = p.ow % 8;
    // SAFETY: `MASKS[8 - tail..]` holds at least 8 i32.
    let mask = unsafe { _mm256_loadu_si256(MASKS[8 - tail..].as_ptr() as *const __m256i) };
    for (m, out_m) in out.chunks_exact_mut(ohw).enumerate() {
        let wm = &w[m * taps..(m + 1) * taps];
        let bv = _mm256_set1_ps(bias.map_or(0.0, |b| b[m]));
        for oy in 0..p.oh {
            // SAFETY: see the assertion above; `ox + 32 ≤ ow`, `ox + 8 ≤ ow` or masked lanes.
            unsafe {
                let base = buf.as_ptr().add(oy * p.sh * lay.row);
                let dst = out_m.as_mut_ptr().add(oy * p.ow);
                let mut ox = 0;
                while ox + 32 <= p.ow {
                    let mut a = [bv, bv, bv, bv];
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
                        _mm256_storeu_ps(dst.add(ox + 8 * v), act8(_mm256_add_ps(a[v], b[v]), act));
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
                    let r = act8(_mm256_add_ps(a, b), act);
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

/// `MASKS[8 - n..][..8]` enables the first `n` lanes.
#[cfg(target_arch = "x86_64")]
const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// One input channel and its `mult` output channels.
#[allow(clippy::too_many_arguments)]
fn channel(
    x: &[f32],
    p: &Plane,
    lay: &Layout,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    buf: &mut [f32],
) {
    fill_padded(x, p, lay, buf);
    let taps = p.kh * p.kw;
    let ohw = p.oh * p.ow;
    for (m, out_m) in out.chunks_exact_mut(ohw).enumerate() {
        let wm = &w[m * taps..(m + 1) * taps];
        let b = bias.map_or(0.0, |b| b[m]);
        for (oy, orow) in out_m.chunks_exact_mut(p.ow).enumerate() {
            orow.fill(b);
            for ky in 0..p.kh {
                let prow = &buf[(oy * p.sh + ky * p.dh) * lay.row..][..lay.row];
                for kx in 0..p.kw {
                    let wv = wm[ky * p.kw + kx];
                    let (q, off) = ((kx * p.dw) % p.sw, (kx * p.dw) / p.sw);
                    let src = &prow[q * lay.phase + off..][..p.ow];
                    for (o, &s) in orow.iter_mut().zip(src) {
                        *o += wv * s;
                    }
                }
            }
            if act != Activation::Identity {
                for o in orow.iter_mut() {
                    *o = act.apply(*o);
                }
            }
        }
    }
}

/// Copies channel `x` into `buf` zero-padded and split by column phase.
#[inline(always)]
fn fill_padded(x: &[f32], p: &Plane, lay: &Layout, buf: &mut [f32]) {
    for r in 0..lay.rows {
        let dst = &mut buf[r * lay.row..(r + 1) * lay.row];
        let iy = r as isize - p.pt;
        if iy < 0 || iy >= p.h as isize {
            dst.fill(0.0);
            continue;
        }
        let src = &x[iy as usize * p.w..(iy as usize + 1) * p.w];
        if p.sw == 1 {
            // Columns [0, cols): input column ix = col - pl.
            let lead = (p.pl.max(0) as usize).min(lay.cols);
            let skip = (-p.pl).max(0) as usize;
            let n = p.w.saturating_sub(skip).min(lay.cols - lead);
            dst[..lead].fill(0.0);
            dst[lead..lead + n].copy_from_slice(&src[skip..skip + n]);
            dst[lead + n..].fill(0.0);
        } else {
            for q in 0..p.sw {
                for (t, d) in dst[q * lay.phase..(q + 1) * lay.phase]
                    .iter_mut()
                    .enumerate()
                {
                    let ix = (t * p.sw + q) as isize - p.pl;
                    *d = if ix >= 0 && ix < p.w as isize {
                        src[ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}
