//! Conv on the kernels: per sample and group, the GEMM strategy the geometry allows
//! (X read in place, shifted views of a padded copy, or im2col), or the direct
//! depthwise kernel; a fused epilogue runs on each finished piece of the output.

use crate::engine::kernels::Isa;
use crate::engine::kernels::depthwise::{PlaneEpilogue, depthwise};
use crate::engine::kernels::epilogue::{Chain, ChainIo, StoreBuf};
use crate::engine::kernels::gemm::{self, BBlock, BSource, Output, PackedA, RowEpilogue};
use crate::engine::kernels::im2col;
use crate::engine::kernels::window::{Geometry, Plane};

use super::Weights;

/// One Conv evaluation.
pub(super) struct Job<'a> {
    pub x: &'a [f32],
    pub xs: &'a [usize],
    pub w: &'a Weights,
    pub g: &'a Geometry,
    pub group: usize,
    pub bias: Option<&'a [f32]>,
    pub chain: &'a Chain,
    /// The chain's element-wise inputs, each shaped like the output.
    pub tensors: Vec<&'a [f32]>,
}

fn output<'a>(
    c: &'a mut [f32],
    ldc: usize,
    bias: Option<&'a [f32]>,
    epilogue: Option<&'a RowEpilogue<'a>>,
) -> Output<'a> {
    Output {
        c,
        ldc,
        bias,
        accumulate: false,
        epilogue,
    }
}

/// Where one group's GEMM output goes and what runs on it.
struct GroupOut<'a> {
    isa: Isa,
    chain: &'a Chain,
    io: &'a ChainIo<'a>,
    /// First output channel of the group, within the sample.
    channel0: usize,
    /// Flat offset of the group's first output element in the whole output.
    offset: usize,
    plane: usize,
}

impl GroupOut<'_> {
    /// The epilogue of GEMM rows (= output channels of the group) starting at `col`.
    fn rows(&self) -> impl Fn(usize, usize, &mut [f32]) + Sync + '_ {
        move |row, col, seg: &mut [f32]| {
            let at = self.offset + row * self.plane + col;
            self.chain
                .apply(self.isa, self.io, self.channel0 + row, at, seg);
        }
    }
}

impl Job<'_> {
    /// Computes the output into `out` (`[N, M, spatial]`) and the chain's stored values
    /// into `stores` (same shape each).
    pub fn run(&self, out: &mut [f32], stores: &mut [Vec<f32>]) {
        let isa = Isa::current();
        let g = self.g;
        let (n, c, m, group) = (self.xs[0], self.xs[1], self.w.shape[0], self.group);
        let in_size: usize = g.input.iter().product();
        let out_size: usize = g.output.iter().product();
        if n * m * out_size == 0 {
            return;
        }
        let io = ChainIo {
            tensors: self.tensors.clone(),
            stores: stores.iter_mut().map(|s| StoreBuf::new(s)).collect(),
        };
        let fused = !self.chain.is_empty();
        let parallel = rayon::current_thread_index().is_none();
        let plane = Plane::new(g);
        let (cg, mg) = (c / group, m / group);
        let taps: usize = g.kernel.iter().product();
        let strategy = Strategy::choose(g, plane.as_ref(), cg);
        // Offsets of the im2col rows inside the (padded) input of one group.
        let offs: Vec<usize> = match &strategy {
            Strategy::Pointwise => (0..cg).map(|ci| ci * in_size).collect(),
            Strategy::Shifted(s) => (0..cg * taps)
                .map(|k| {
                    let (ci, t) = (k / taps, k % taps);
                    ci * s.hp * s.wp + (t / s.p.kw) * s.p.dh * s.wp + (t % s.p.kw) * s.p.dw
                })
                .collect(),
            Strategy::Im2col => vec![],
        };
        let mut padded = match &strategy {
            Strategy::Shifted(s) => vec![0.0f32; s.padded_len(cg)],
            _ => vec![],
        };
        let mut wide = match &strategy {
            Strategy::Shifted(s) if s.wp != s.p.ow => vec![0.0f32; mg * s.p.oh * s.wp],
            _ => vec![],
        };
        for (ni, (xn, yn)) in self
            .x
            .chunks_exact(c * in_size)
            .zip(out.chunks_exact_mut(m * out_size))
            .take(n)
            .enumerate()
        {
            let sample = ni * m * out_size;
            if let (Some(wd), Some(p)) = (&self.w.depthwise, &plane)
                && cg == 1
            {
                let epi = |ch: usize, v: &mut [f32]| {
                    self.chain.apply(isa, &io, ch, sample + ch * out_size, v)
                };
                let epi: Option<&PlaneEpilogue> = if fused { Some(&epi) } else { None };
                depthwise(isa, xn, p, mg, wd, self.bias, yn, parallel, epi);
                continue;
            }
            let packed;
            let packs = match &self.w.depthwise {
                None => &self.w.packed,
                Some(raw) => {
                    // A depthwise-shaped weight on a layout the direct kernel does not take.
                    packed = (0..group)
                        .map(|gi| PackedA::new(isa, &raw[gi * mg * taps..], mg, taps, taps, 1))
                        .collect::<Vec<_>>();
                    &packed
                }
            };
            for (gi, pa) in packs.iter().enumerate() {
                let xg = &xn[gi * cg * in_size..(gi + 1) * cg * in_size];
                let yg = &mut yn[gi * mg * out_size..(gi + 1) * mg * out_size];
                let bias_g = self.bias.map(|b| &b[gi * mg..(gi + 1) * mg]);
                let dest = GroupOut {
                    isa,
                    chain: self.chain,
                    io: &io,
                    channel0: gi * mg,
                    offset: sample + gi * mg * out_size,
                    plane: out_size,
                };
                let rows = dest.rows();
                let epi: Option<&RowEpilogue> = if fused { Some(&rows) } else { None };
                let output = |c, ldc, epilogue| output(c, ldc, bias_g, epilogue);
                match &strategy {
                    Strategy::Pointwise => {
                        let src = BSource::Rows {
                            base: xg,
                            offs: &offs,
                        };
                        let o = output(yg, out_size, epi);
                        gemm::gemm(isa, pa, out_size, src, o, parallel);
                    }
                    Strategy::Shifted(s) => {
                        s.fill(xg, cg, &mut padded);
                        let nw = s.p.oh * s.wp;
                        let src = BSource::Rows {
                            base: &padded,
                            offs: &offs,
                        };
                        if wide.is_empty() {
                            gemm::gemm(isa, pa, nw, src, output(yg, out_size, epi), parallel);
                        } else {
                            gemm::gemm(isa, pa, nw, src, output(&mut wide, nw, None), parallel);
                            // The extra columns are dropped here; the epilogue runs on
                            // each output row as it lands.
                            let ow = s.p.ow;
                            for (r, (dst, src)) in yg
                                .chunks_exact_mut(ow)
                                .zip(wide.chunks_exact(s.wp))
                                .enumerate()
                            {
                                dst.copy_from_slice(&src[..ow]);
                                if fused {
                                    let (row, col) = (r / s.p.oh, (r % s.p.oh) * ow);
                                    rows(row, col, dst);
                                }
                            }
                        }
                    }
                    Strategy::Im2col => {
                        let pack = |blk: BBlock, dst: &mut [f32]| match &plane {
                            Some(p) => im2col::pack_plane(xg, p, blk, dst),
                            None => im2col::pack_nd(xg, g, blk, dst),
                        };
                        let o = output(yg, out_size, epi);
                        gemm::gemm(isa, pa, out_size, BSource::Pack(&pack), o, parallel);
                    }
                }
            }
        }
    }
}

/// How the GEMM reads the im2col matrix.
enum Strategy {
    /// 1×1, stride 1, no padding: X itself is B.
    Pointwise,
    /// Stride 1: B's rows are shifted views of a zero-padded copy of X, over a grid as wide
    /// as the padded rows (the extra columns are computed and dropped).
    Shifted(Shifted),
    /// Anything else: im2col into packed panels.
    Im2col,
}

struct Shifted {
    p: Plane,
    /// Rows and columns of the padded image.
    hp: usize,
    wp: usize,
}

impl Strategy {
    fn choose(g: &Geometry, plane: Option<&Plane>, cg: usize) -> Strategy {
        let unit = |v: &[usize]| v.iter().all(|&s| s == 1);
        if unit(&g.kernel)
            && unit(&g.strides)
            && g.pad_begin.iter().all(|&p| p == 0)
            && g.output == g.input
        {
            return Strategy::Pointwise;
        }
        match plane {
            Some(p) if p.sh == 1 && p.sw == 1 => {
                let hp = p.oh + (p.kh - 1) * p.dh;
                let wp = p.ow + (p.kw - 1) * p.dw;
                // Wider rows waste work on dropped columns; past a third, pack instead.
                if cg > 0 && 3 * wp <= 4 * p.ow {
                    Strategy::Shifted(Shifted { p: *p, hp, wp })
                } else {
                    Strategy::Im2col
                }
            }
            _ => Strategy::Im2col,
        }
    }
}

impl Shifted {
    /// Floats of the padded copy of `cg` channels, with room for the dropped columns of
    /// the last row to read past the end.
    fn padded_len(&self, cg: usize) -> usize {
        cg * self.hp * self.wp + (self.p.kw - 1) * self.p.dw
    }

    /// Copies `x` (`[cg, h, w]`) into `dst` with the padding zeroed.
    fn fill(&self, x: &[f32], cg: usize, dst: &mut [f32]) {
        let p = &self.p;
        let (pt, pl) = (p.pt as usize, p.pl as usize);
        let cols = p.w.min(self.wp - pl);
        for ci in 0..cg {
            let plane = &mut dst[ci * self.hp * self.wp..(ci + 1) * self.hp * self.wp];
            for (r, row) in plane.chunks_exact_mut(self.wp).enumerate() {
                match r.checked_sub(pt).filter(|&iy| iy < p.h) {
                    Some(iy) => {
                        row[..pl].fill(0.0);
                        row[pl..pl + cols].copy_from_slice(&x[ci * p.h * p.w + iy * p.w..][..cols]);
                        row[pl + cols..].fill(0.0);
                    }
                    None => row.fill(0.0),
                }
            }
        }
    }
}
