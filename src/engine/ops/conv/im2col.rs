//! im2col straight into the GEMM's packed B layout: row `k = (c, ky, kx)` and column
//! `n = (oy, ox)` of the virtual im2col matrix is the input pixel the kernel tap `k`
//! reads for output pixel `n` (zero in the padding). Only the block the GEMM asks for
//! is ever written, so no K × N matrix is allocated.

use super::super::matmul::kernel::{BBlock, NR};
use super::geometry::Geometry;

/// A 2-D convolution over one group's input `[C, H, W]` (1-D maps to H = 1).
#[derive(Clone, Copy, Debug)]
pub(super) struct Plane {
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: isize,
    pub pl: isize,
    pub oh: usize,
    pub ow: usize,
}

impl Plane {
    /// The 2-D view of a 1-D or 2-D geometry (`None` for 3-D and up).
    pub fn new(g: &Geometry) -> Option<Plane> {
        let at = |v: &[usize], i: usize| v[v.len() - 2 + i];
        match g.input.len() {
            1 => Some(Plane {
                h: 1,
                w: g.input[0],
                kh: 1,
                kw: g.kernel[0],
                sh: 1,
                sw: g.strides[0],
                dh: 1,
                dw: g.dilations[0],
                pt: 0,
                pl: g.pad_begin[0],
                oh: 1,
                ow: g.output[0],
            }),
            2 => Some(Plane {
                h: at(&g.input, 0),
                w: at(&g.input, 1),
                kh: at(&g.kernel, 0),
                kw: at(&g.kernel, 1),
                sh: at(&g.strides, 0),
                sw: at(&g.strides, 1),
                dh: at(&g.dilations, 0),
                dw: at(&g.dilations, 1),
                pt: g.pad_begin[0],
                pl: g.pad_begin[1],
                oh: at(&g.output, 0),
                ow: at(&g.output, 1),
            }),
            _ => None,
        }
    }

    /// Output columns `[lo, hi)` whose tap `kx` lands inside the input row.
    fn valid_cols(&self, kx: usize) -> (usize, usize) {
        let off = (kx * self.dw) as isize - self.pl; // ix = ox * sw + off
        let sw = self.sw as isize;
        let lo = if off >= 0 { 0 } else { (-off + sw - 1) / sw };
        let last = self.w as isize - 1 - off;
        let hi = if last < 0 { 0 } else { last / sw + 1 };
        let lo = (lo as usize).min(self.ow);
        (lo, (hi as usize).clamp(lo, self.ow))
    }
}

/// Writes one row (`kk`) of a packed block: column `c` lives in panel `c / NR`.
struct RowWriter<'a> {
    dst: &'a mut [f32],
    panel: usize,
    row: usize,
}

impl RowWriter<'_> {
    #[inline]
    fn fill(&mut self, mut c: usize, mut len: usize, mut f: impl FnMut(usize) -> f32) {
        let mut t = 0;
        while len > 0 {
            let lane = c % NR;
            let l = len.min(NR - lane);
            let at = (c / NR) * self.panel + self.row + lane;
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
            let lane = c % NR;
            let l = len.min(NR - lane);
            let at = (c / NR) * self.panel + self.row + lane;
            self.dst[at..at + l].copy_from_slice(&src[s..s + l]);
            c += l;
            s += l;
            len -= l;
        }
    }
}

/// Packs block `blk` of the im2col matrix of `x` (one group's `[C, H, W]`).
pub(super) fn pack_plane(x: &[f32], p: &Plane, blk: BBlock, dst: &mut [f32]) {
    let taps = p.kh * p.kw;
    let plane = p.h * p.w;
    let padded = blk.nc.div_ceil(NR) * NR;
    for kk in 0..blk.kc {
        let k = blk.k0 + kk;
        let (ci, ky, kx) = (k / taps, (k % taps) / p.kw, k % p.kw);
        let src = &x[ci * plane..(ci + 1) * plane];
        let (lo, hi) = p.valid_cols(kx);
        let mut wr = RowWriter {
            dst: &mut *dst,
            panel: blk.kc * NR,
            row: kk * NR,
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
pub(super) fn pack_nd(x: &[f32], g: &Geometry, blk: BBlock, dst: &mut [f32]) {
    let r = g.input.len();
    let taps: usize = g.kernel.iter().product();
    let in_size: usize = g.input.iter().product();
    let padded = blk.nc.div_ceil(NR) * NR;
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
            panel: blk.kc * NR,
            row: kk * NR,
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
