//! The float32 GEMM behind Conv, ConvTranspose, MatMul and Gemm:
//! `C[m, n] (+)= A[m, k] · B[k, n]` (+ a per-row bias, then an epilogue per finished row
//! segment), with A packed once (the weights) and B packed block by block by a
//! caller-supplied packer (a plain copy for 1×1 convolutions, im2col for the others), so
//! that no im2col matrix is ever materialised whole.
//!
//! Blocking follows BLIS: for each block of `nc` columns and `kc` rows of B, the packer
//! writes B as `nr`-column panels (`[panel][k][nr]`); the microkernel multiplies an
//! `mr`-row panel of A (`[k][mr]`) by one B panel into an `mr × nr` tile of C held in
//! registers. The register blocking depends on the ISA (`Layout::of`): 14×32 for
//! AVX-512 (28 accumulators), 6×16 for AVX2+FMA and for the portable kernel.

use super::isa::Isa;

mod avx2;
mod avx512;
mod narrow;
mod scalar;

/// Largest `mr` of any layout.
pub const MR_MAX: usize = 14;
/// Largest `nr` of any layout.
pub const NR_MAX: usize = 32;
/// Bytes of packed B per block, meant to stay in L2.
const B_BLOCK_BYTES: usize = 256 * 1024;
/// Multiply-adds below which a GEMM is not worth splitting across threads.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// The register blocking of an ISA's microkernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Rows of an A panel (output channels per tile).
    pub mr: usize,
    /// Columns of a B panel (output pixels per tile).
    pub nr: usize,
    /// Largest K block for packed B: one B panel (`kc × nr` floats) stays in L1.
    kc_max: usize,
    /// Largest K block when B rows are read in place (scattered, so fewer fit in L1).
    kc_rows: usize,
}

impl Layout {
    /// The blocking the ISA's microkernel uses.
    pub fn of(isa: Isa) -> Layout {
        match isa {
            Isa::Scalar | Isa::Avx2 => Layout {
                mr: 6,
                nr: 16,
                kc_max: 256,
                kc_rows: 128,
            },
            Isa::Avx512 => Layout {
                mr: 14,
                nr: 32,
                kc_max: 256,
                kc_rows: 256,
            },
        }
    }
}

/// A matrix packed as `mr`-row panels, `[panel][k][mr]`, rows past `m` zero.
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    k: usize,
    layout: Layout,
    data: Vec<f32>,
}

impl PackedA {
    /// Packs the `m × k` matrix whose element `(i, j)` is `a[i * rs + j * cs]` for the
    /// microkernel of `isa`. The caller guarantees that every such index is inside `a`.
    pub fn new(isa: Isa, a: &[f32], m: usize, k: usize, rs: usize, cs: usize) -> PackedA {
        PackedA::from_fn(isa, m, k, |i, j| a[i * rs + j * cs])
    }

    /// Packs the `m × k` matrix whose element `(i, j)` is `f(i, j)`.
    pub fn from_fn(isa: Isa, m: usize, k: usize, f: impl Fn(usize, usize) -> f32) -> PackedA {
        let layout = Layout::of(isa);
        let mr = layout.mr;
        let panels = m.div_ceil(mr);
        let mut data = vec![0.0; panels * k * mr];
        for p in 0..panels {
            let dst = &mut data[p * k * mr..(p + 1) * k * mr];
            for r in 0..mr.min(m - p * mr) {
                for j in 0..k {
                    dst[j * mr + r] = f(p * mr + r, j);
                }
            }
        }
        PackedA { m, k, layout, data }
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn depth(&self) -> usize {
        self.k
    }

    /// Element `(i, j)` of the packed matrix.
    fn get(&self, i: usize, j: usize) -> f32 {
        let mr = self.layout.mr;
        self.data[(i / mr) * self.k * mr + j * mr + i % mr]
    }

    fn panel(&self, p: usize, k0: usize) -> &[f32] {
        let mr = self.layout.mr;
        &self.data[p * self.k * mr + k0 * mr..]
    }
}

/// A block of B the packer must write: rows `k0..k0 + kc`, columns `n0..n0 + nc`,
/// as `nc.div_ceil(nr)` panels of `kc × nr` floats, columns past `nc` zero.
#[derive(Clone, Copy, Debug)]
pub struct BBlock {
    pub k0: usize,
    pub kc: usize,
    pub n0: usize,
    pub nc: usize,
    /// Panel width.
    pub nr: usize,
}

/// Writes a block of B into its packed form (exactly `nc.div_ceil(nr) * kc * nr` floats).
pub type PackB<'a> = dyn Fn(BBlock, &mut [f32]) + Sync + 'a;

/// Called on every finished segment of a row of C (`row`, first column, the values),
/// after the bias: a fused epilogue.
pub type RowEpilogue<'a> = dyn Fn(usize, usize, &mut [f32]) + Sync + 'a;

/// Where the GEMM gets B from.
#[derive(Clone, Copy)]
pub enum BSource<'a> {
    /// A packer called per block (im2col).
    Pack(&'a PackB<'a>),
    /// `B(k, n) = base[offs[k] + n]`: rows of another buffer, copied panel by panel (a 1×1
    /// convolution's input, or shifted views of a padded image: no im2col matrix).
    Rows { base: &'a [f32], offs: &'a [usize] },
}

/// `dst[..w] = src[..w]`, `dst[w..nr] = 0`.
#[inline(always)]
pub fn copy_row(dst: &mut [f32], src: &[f32], w: usize, nr: usize) {
    dst[..w].copy_from_slice(&src[..w]);
    dst[w..nr].fill(0.0);
}

/// Where the GEMM writes: C with row stride `ldc`, a per-row bias, and an epilogue.
pub struct Output<'a> {
    pub c: &'a mut [f32],
    pub ldc: usize,
    pub bias: Option<&'a [f32]>,
    /// Add the product to what C holds (Gemm's `beta · C`), instead of overwriting it.
    pub accumulate: bool,
    pub epilogue: Option<&'a RowEpilogue<'a>>,
}

impl<'a> Output<'a> {
    /// C overwritten, no bias, no epilogue.
    pub fn plain(c: &'a mut [f32], ldc: usize) -> Output<'a> {
        Output {
            c,
            ldc,
            bias: None,
            accumulate: false,
            epilogue: None,
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the tasks that share this pointer write disjoint tiles of C.
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`: the sharing tasks write disjoint tiles.
unsafe impl Sync for SendPtr {}

/// `C = A · B + bias` for `n` columns of B on the microkernel of `isa` (an A packed for
/// another ISA is repacked first). `parallel` lets the work spread over the rayon pool
/// (callers pass `false` inside a rayon worker).
pub fn gemm(isa: Isa, a: &PackedA, n: usize, b: BSource, out: Output, parallel: bool) {
    let layout = Layout::of(isa);
    if a.layout != layout {
        let repacked = PackedA::from_fn(isa, a.m, a.k, |i, j| a.get(i, j));
        return gemm(isa, &repacked, n, b, out, parallel);
    }
    let (m, k) = (a.m, a.k);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        out.c.len() >= (m - 1) * out.ldc + n,
        "C is too small for the GEMM"
    );
    if let Some(b) = out.bias {
        assert!(b.len() >= m, "bias shorter than the rows of C");
    }
    if let BSource::Rows { base, offs } = b {
        assert!(offs.len() >= k, "one offset per row of B");
        assert!(
            offs[..k].iter().all(|&o| o + n <= base.len()),
            "B rows run past their buffer"
        );
    }
    if n <= narrow::NARROW_N {
        return narrow::gemm_narrow(isa, a, n, b, out, parallel);
    }
    let (mr, nr) = (layout.mr, layout.nr);
    let kc_max = match b {
        BSource::Rows { .. } => layout.kc_rows,
        BSource::Pack(_) => layout.kc_max,
    };
    let kb_count = k.div_ceil(kc_max).max(1);
    let kc = k.div_ceil(kb_count).max(1);
    let nc_cache = (B_BLOCK_BYTES / (kc * 4) / nr * nr).max(nr);
    let threads = if parallel && m * n * k >= PARALLEL_MIN_MACS {
        rayon::current_num_threads()
    } else {
        1
    };
    // Split N into blocks, then M into ranges of whole panels when N alone gives too few tasks.
    let want = if threads > 1 { 2 * threads } else { 1 };
    let nc = if threads > 1 {
        nc_cache.min(n.div_ceil(want).next_multiple_of(nr))
    } else {
        nc_cache
    };
    let n_blocks = n.div_ceil(nc);
    let panels = m.div_ceil(mr);
    let m_split = if n_blocks >= want {
        1
    } else {
        want.div_ceil(n_blocks).min(panels)
    };
    let panels_per_task = panels.div_ceil(m_split);
    let tasks = n_blocks * panels.div_ceil(panels_per_task);
    let ctx = Ctx {
        isa,
        layout,
        a,
        n,
        k,
        kc,
        nc,
        c: SendPtr(out.c.as_mut_ptr()),
        ldc: out.ldc,
        bias: out.bias,
        accumulate: out.accumulate,
        epilogue: out.epilogue,
        b,
    };
    let run = |t: usize| {
        let nb = t % n_blocks;
        let mp = t / n_blocks;
        let p0 = mp * panels_per_task;
        let p1 = (p0 + panels_per_task).min(panels);
        ctx.block(nb * nc, p0, p1);
    };
    if tasks == 1 {
        run(0);
    } else {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(run);
    }
}

struct Ctx<'a, 'b> {
    isa: Isa,
    layout: Layout,
    a: &'a PackedA,
    n: usize,
    k: usize,
    kc: usize,
    nc: usize,
    c: SendPtr,
    ldc: usize,
    bias: Option<&'a [f32]>,
    accumulate: bool,
    epilogue: Option<&'a RowEpilogue<'a>>,
    b: BSource<'b>,
}

// SAFETY: `Ctx` is shared by tasks that write disjoint tiles of C through `c`; everything
// else it holds is read-only and `Sync`.
unsafe impl Sync for Ctx<'_, '_> {}

impl Ctx<'_, '_> {
    /// Columns `n0..n0 + nc` of C for the A panels `p0..p1`.
    fn block(&self, n0: usize, p0: usize, p1: usize) {
        let (mr, nr) = (self.layout.mr, self.layout.nr);
        let nc = self.nc.min(self.n - n0);
        let npanels = nc.div_ceil(nr);
        let scratch = match self.b {
            BSource::Pack(_) => npanels * self.kc * nr,
            BSource::Rows { .. } => self.kc * nr,
        };
        with_scratch(scratch, |buf| {
            let mut k0 = 0;
            while k0 < self.k {
                let kc = self.kc.min(self.k - k0);
                if let BSource::Pack(pack) = self.b {
                    let blk = BBlock { k0, kc, n0, nc, nr };
                    pack(blk, &mut buf[..npanels * kc * nr]);
                }
                let first = k0 == 0;
                let last = k0 + kc == self.k;
                for np in 0..npanels {
                    let col = n0 + np * nr;
                    let w = nr.min(n0 + nc - col);
                    // B rows read in place are copied into a contiguous panel first: the
                    // panel is then read once per A panel from L1, where rows scattered
                    // over channel planes conflict in the cache (measured: ResNet-50
                    // ~20% faster, the PP-OCR detector ~10%).
                    let panel: &[f32] = match self.b {
                        BSource::Pack(_) => &buf[np * kc * nr..(np + 1) * kc * nr],
                        BSource::Rows { base, offs } => {
                            for (kk, dst) in buf[..kc * nr].chunks_exact_mut(nr).enumerate() {
                                copy_row(dst, &base[offs[k0 + kk] + col..], w, nr);
                            }
                            &buf[..kc * nr]
                        }
                    };
                    for p in p0..p1 {
                        let row = p * mr;
                        let rows = mr.min(self.a.m - row);
                        let tile = Tile {
                            // SAFETY: row < m and col < n, inside C (checked in `gemm`);
                            // tasks own disjoint (row, column) tiles.
                            c: unsafe { self.c.0.add(row * self.ldc + col) },
                            ldc: self.ldc,
                            mr: rows,
                            nr: w,
                            accumulate: !first || self.accumulate,
                            bias: if last {
                                self.bias.map(|b| &b[row..row + rows])
                            } else {
                                None
                            },
                        };
                        microkernel(self.isa, kc, &self.a.panel(p, k0)[..kc * mr], panel, &tile);
                    }
                }
                k0 += kc;
            }
        });
        if let Some(epi) = self.epilogue {
            for row in p0 * mr..(p1 * mr).min(self.a.m) {
                // SAFETY: this task owns columns n0..n0 + nc of these rows of C, all
                // finished; the range is inside C (checked in `gemm`).
                let seg = unsafe {
                    std::slice::from_raw_parts_mut(self.c.0.add(row * self.ldc + n0), nc)
                };
                epi(row, n0, seg);
            }
        }
    }
}

/// One `mr × nr` tile of C (`mr`, `nr` at most the layout's) and what to do when
/// storing it.
pub(crate) struct Tile<'a> {
    pub c: *mut f32,
    pub ldc: usize,
    pub mr: usize,
    pub nr: usize,
    /// Add to the values already in C (a later K block, or an accumulating GEMM).
    pub accumulate: bool,
    pub bias: Option<&'a [f32]>,
}

/// `tile (+)= a · b` over `kc` steps, where `a` is an A panel (`[kc][mr]`) and `b` a B
/// panel (`[kc][nr]`) of `isa`'s layout; then the bias if the tile has one.
#[inline]
fn microkernel(isa: Isa, kc: usize, a: &[f32], b: &[f32], t: &Tile) {
    let l = Layout::of(isa);
    assert!(a.len() >= kc * l.mr && b.len() >= kc * l.nr && t.mr <= l.mr && t.nr <= l.nr);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the plan only selects AVX-512 on CPUs that have it (`Isa::current`); the
        // panel extents are checked above and the tile addresses `mr` rows of `nr`
        // floats inside C (the driver's contract).
        Isa::Avx512 => unsafe { avx512::microkernel(kc, a.as_ptr(), b.as_ptr(), t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Isa::Avx2 => unsafe { avx2::microkernel(kc, a.as_ptr(), b.as_ptr(), t) },
        _ => scalar::microkernel(kc, a, b, t),
    }
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` on a per-thread buffer of at least `len` floats (contents unspecified).
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.take());
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.set(buf));
    r
}

#[cfg(test)]
mod tests;
