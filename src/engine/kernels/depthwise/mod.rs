//! Direct depthwise convolution (group = input channels, any channel multiplier): per
//! input channel, the plane is copied once into a zero-padded buffer whose rows are
//! split by stride phase (`row[t * stride + q]` stored at `q * len + t`), so that every
//! kernel tap becomes a contiguous multiply-add over a whole output row, for any kernel
//! size, stride and dilation. The SIMD versions (`x86`) vectorize along the output row.

use rayon::prelude::*;

use super::gemm::with_scratch;
use super::isa::Isa;
use super::window::Plane;

mod x86;

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

/// Called on each finished output channel plane (`channel` within the sample, values):
/// a fused epilogue.
pub type PlaneEpilogue<'a> = dyn Fn(usize, &mut [f32]) + Sync + 'a;

/// What one channel's kernel needs besides its data.
struct Channel<'a> {
    p: &'a Plane,
    lay: Layout,
    /// Offset of tap t from the start of the first padded row an output row reads.
    offs: &'a [usize],
    /// `[mult, taps]` weights of this input channel's outputs.
    w: &'a [f32],
    bias: Option<&'a [f32]>,
}

/// One sample: `x` is `[C, H, W]`, `w` is `[C · mult, kh · kw]`, `out` is
/// `[C · mult, oh · ow]`; `epilogue` runs on each output plane once it is done.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    isa: Isa,
    x: &[f32],
    p: &Plane,
    mult: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    parallel: bool,
    epilogue: Option<&PlaneEpilogue>,
) {
    let (plane, taps, ohw) = (p.h * p.w, p.kh * p.kw, p.oh * p.ow);
    if ohw == 0 || mult == 0 {
        return;
    }
    let lay = Layout::new(p);
    assert!(x.len() >= plane * (out.len() / (mult * ohw)) && w.len() * ohw >= out.len() * taps);
    let offs: Vec<usize> = (0..taps)
        .map(|t| {
            let (ky, kx) = (t / p.kw, t % p.kw);
            ky * p.dh * lay.row + ((kx * p.dw) % p.sw) * lay.phase + (kx * p.dw) / p.sw
        })
        .collect();
    let job = |(c, out_c): (usize, &mut [f32])| {
        let ch = Channel {
            p,
            lay,
            offs: &offs,
            w: &w[c * mult * taps..(c + 1) * mult * taps],
            bias: bias.map(|b| &b[c * mult..(c + 1) * mult]),
        };
        let x_c = &x[c * plane..(c + 1) * plane];
        with_scratch(lay.rows * lay.row, |buf| {
            fill_padded(x_c, p, &lay, buf);
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `isa` comes from `Isa::current`, always supported by the CPU.
                Isa::Avx512 => unsafe { x86::channel_avx512(&ch, buf, out_c) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => unsafe { x86::channel_avx2(&ch, buf, out_c) },
                _ => channel(&ch, buf, out_c),
            }
        });
        if let Some(epi) = epilogue {
            for (m, plane_m) in out_c.chunks_exact_mut(ohw).enumerate() {
                epi(c * mult + m, plane_m);
            }
        }
    };
    if parallel && x.len() * taps >= 1 << 16 {
        out.par_chunks_mut(mult * ohw).enumerate().for_each(job);
    } else {
        out.chunks_mut(mult * ohw).enumerate().for_each(job);
    }
}

/// One input channel (already in `buf`, padded) and its `mult` output channels.
fn channel(ch: &Channel, buf: &[f32], out: &mut [f32]) {
    let p = ch.p;
    let taps = p.kh * p.kw;
    let ohw = p.oh * p.ow;
    for (m, out_m) in out.chunks_exact_mut(ohw).enumerate() {
        let wm = &ch.w[m * taps..(m + 1) * taps];
        let b = ch.bias.map_or(0.0, |b| b[m]);
        for (oy, orow) in out_m.chunks_exact_mut(p.ow).enumerate() {
            orow.fill(b);
            for (t, &wv) in wm.iter().enumerate() {
                let src = &buf[oy * p.sh * ch.lay.row + ch.offs[t]..][..p.ow];
                for (o, &s) in orow.iter_mut().zip(src) {
                    *o += wv * s;
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

#[cfg(test)]
mod tests;
