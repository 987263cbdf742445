//! im2col straight into the GEMM's packed B layout: row `k = (c, ky, kx)` and column
//! `n = (oy, ox)` of the virtual im2col matrix is the input pixel the kernel tap `k`
//! reads for output pixel `n` (zero in the padding). Only the block the GEMM asks for
//! is ever written, so no K × N matrix is allocated.

use super::gemm::BBlock;
use super::window::{Geometry, Plane};

/// Writes one row (`kk`) of a packed block: column `c` lives in panel `c / nr`.
struct RowWriter<'a> {
    dst: &'a mut [f32],
    panel: usize,
    row: usize,
    nr: usize,
}

impl RowWriter<'_> {
    #[inline]
    fn fill(&mut self, mut c: usize, mut len: usize, mut f: impl FnMut(usize) -> f32) {
        let mut t = 0;
        while len > 0 {
            let lane = c % self.nr;
            let l = len.min(self.nr - lane);
            let at = (c / self.nr) * self.panel + self.row + lane;
            for (i, d) in self.dst[at..at + l].iter_mut().enumerate() {
                *d = f(t + i);
            }
            c += l;
            t += l;
            len -= l;
        }
    }

    #[inline]
    fn zeros(&mut self, c: usize, len: usize) {
        self.fill(c, len, |_| 0.0);
    }

    #[inline]
    fn copy(&mut self, mut c: usize, src: &[f32], stride: usize, mut len: usize) {
        if stride != 1 {
            self.fill(c, len, |t| src[t * stride]);
            return;
        }
        let mut s = 0;
        while len > 0 {
            let lane = c % self.nr;
            let l = len.min(self.nr - lane);
            let at = (c / self.nr) * self.panel + self.row + lane;
            self.dst[at..at + l].copy_from_slice(&src[s..s + l]);
            c += l;
            s += l;
            len -= l;
        }
    }
}

/// Packs block `blk` of the im2col matrix of `x` (one group's `[C, H, W]`).
pub fn pack_plane(x: &[f32], p: &Plane, blk: BBlock, dst: &mut [f32]) {
    let taps = p.kh * p.kw;
    let plane = p.h * p.w;
    let padded = blk.nc.div_ceil(blk.nr) * blk.nr;
    for kk in 0..blk.kc {
        let k = blk.k0 + kk;
        let (ci, ky, kx) = (k / taps, (k % taps) / p.kw, k % p.kw);
        let src = &x[ci * plane..(ci + 1) * plane];
        let (lo, hi) = p.valid_cols(kx);
        let mut wr = RowWriter {
            dst: &mut *dst,
            panel: blk.kc * blk.nr,
            row: kk * blk.nr,
            nr: blk.nr,
        };
        let (mut oy, mut ox) = (blk.n0 / p.ow, blk.n0 % p.ow);
        let mut c = 0;
        while c < blk.nc {
            let run = (p.ow - ox).min(blk.nc - c);
            let iy = (oy * p.sh + ky * p.dh) as isize - p.pt;
            if iy < 0 || iy >= p.h as isize {
                wr.zeros(c, run);
            } else {
                let row = &src[iy as usize * p.w..(iy as usize + 1) * p.w];
                let a = ox.max(lo).min(ox + run);
                let b = (ox + run).min(hi).max(a);
                wr.zeros(c, a - ox);
                if b > a {
                    let ix0 = ((a * p.sw + kx * p.dw) as isize - p.pl) as usize;
                    wr.copy(c + a - ox, &row[ix0..], p.sw, b - a);
                }
                wr.zeros(c + b - ox, ox + run - b);
            }
            c += run;
            oy += 1;
            ox = 0;
        }
        wr.zeros(blk.nc, padded - blk.nc);
    }
}

/// Packs block `blk` of the im2col matrix of `x` (one group's `[C, spatial...]`) for any
/// number of spatial axes (used for 3-D and up).
pub fn pack_nd(x: &[f32], g: &Geometry, blk: BBlock, dst: &mut [f32]) {
    let r = g.input.len();
    let taps: usize = g.kernel.iter().product();
    let in_size: usize = g.input.iter().product();
    let padded = blk.nc.div_ceil(blk.nr) * blk.nr;
    let mut kidx = vec![0usize; r];
    let mut oidx = vec![0usize; r];
    for kk in 0..blk.kc {
        let k = blk.k0 + kk;
        let ci = k / taps;
        let mut rem = k % taps;
        for i in (0..r).rev() {
            kidx[i] = rem % g.kernel[i];
            rem /= g.kernel[i];
        }
        let src = &x[ci * in_size..(ci + 1) * in_size];
        let mut wr = RowWriter {
            dst: &mut *dst,
            panel: blk.kc * blk.nr,
            row: kk * blk.nr,
            nr: blk.nr,
        };
        wr.fill(0, blk.nc, |t| {
            let mut rem = blk.n0 + t;
            for i in (0..r).rev() {
                oidx[i] = rem % g.output[i];
                rem /= g.output[i];
            }
            let mut at = 0usize;
            for i in 0..r {
                let pos =
                    (oidx[i] * g.strides[i] + kidx[i] * g.dilations[i]) as isize - g.pad_begin[i];
                if pos < 0 || pos >= g.input[i] as isize {
                    return 0.0;
                }
                at = at * g.input[i] + pos as usize;
            }
            src[at]
        });
        wr.zeros(blk.nc, padded - blk.nc);
    }
}
