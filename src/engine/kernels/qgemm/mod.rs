//! The integer GEMM behind quantized layers: `C[m, n] = Σ_k A[m, k] · B[k, n]` exactly in
//! i32, with A signed 8-bit (the weights, packed once) and B unsigned 8-bit (activations,
//! packed block by block by a caller-supplied packer, e.g. im2col on bytes).
//!
//! No intermediate ever saturates: with VNNI (`vpdpbusd`, AVX512-VNNI on 512-bit
//! vectors or AVX-VNNI on 256-bit ones) each i32 lane adds four exact u8 × s8 products;
//! without it (AVX2) both operands are widened to i16 and `vpmaddwd` adds two exact
//! products per lane (never `vpmaddubsw`, whose i16 pair sums saturate); the portable
//! kernel multiplies in i32. Signed activations are shifted by +128 into u8 by the caller,
//! who subtracts `128 · Σ_k A[m, k]` (`PackedQA::row_sums`) afterwards; any activation
//! zero point is handled the same way. Exactness needs `k · 255 · 128 < 2³¹`
//! (`MAX_DEPTH`).
//!
//! Layout: K is padded to a multiple of 4. A is packed as `mr`-row panels of 4-byte
//! groups (`[panel][k/4][mr]` words); B as `nr`-column panels `[k/4][nr][4]` bytes, so one
//! 32-bit lane of a B vector holds four consecutive k of one column, and one broadcast
//! word of A holds the matching four weights of one row.

use super::isa::Isa;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;
#[cfg(test)]
mod tests;

/// Largest K for which the i32 sums are exact for any u8 × s8 data.
pub const MAX_DEPTH: usize = (i32::MAX as usize) / (255 * 128);
/// Largest `mr` of any kernel.
const MR_MAX: usize = 8;
/// Largest `nr` of any kernel.
const NR_MAX: usize = 32;
/// Columns of B packed per task (a multiple of every `nr`).
const NC: usize = 256;
/// Multiply-adds below which the GEMM is not split across threads.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// One integer microkernel; which ones a CPU can run is `QKernel::supported`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QKernel {
    /// Portable Rust, i32 multiply-adds.
    Scalar,
    /// AVX2: u8 and s8 widened to i16, `vpmaddwd` (two exact products per i32 lane).
    Avx2Madd,
    /// AVX-VNNI: `vpdpbusd` on 256-bit vectors.
    Avx2Vnni,
    /// AVX512-VNNI: `vpdpbusd` on 512-bit vectors.
    Avx512Vnni,
}

impl QKernel {
    /// Every kernel, most portable first.
    pub const ALL: [QKernel; 4] = [
        QKernel::Scalar,
        QKernel::Avx2Madd,
        QKernel::Avx2Vnni,
        QKernel::Avx512Vnni,
    ];

    /// The kernel used for `isa`: its vector width with VNNI when the CPU has it, AVX2's
    /// widening kernel for AVX2 (and AVX-512 without VNNI), else the portable one.
    pub fn for_isa(isa: Isa) -> QKernel {
        match isa {
            Isa::Avx512 if isa.has_vnni() => QKernel::Avx512Vnni,
            Isa::Avx512 if Isa::Avx2.has_vnni() => QKernel::Avx2Vnni,
            Isa::Avx2 if isa.has_vnni() => QKernel::Avx2Vnni,
            Isa::Avx512 | Isa::Avx2 if isa.is_supported() => QKernel::Avx2Madd,
            _ => QKernel::Scalar,
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            QKernel::Scalar => true,
            QKernel::Avx2Madd => Isa::Avx2.is_supported(),
            QKernel::Avx2Vnni => Isa::Avx2.has_vnni(),
            QKernel::Avx512Vnni => Isa::Avx512.has_vnni(),
        }
    }

    /// Every kernel this CPU can run.
    pub fn supported() -> Vec<QKernel> {
        QKernel::ALL
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// Whether the kernel uses the 8-bit dot-product instructions.
    pub fn is_vnni(self) -> bool {
        matches!(self, QKernel::Avx2Vnni | QKernel::Avx512Vnni)
    }

    /// A short name for reports (`scalar`, `avx2-madd`, `avx-vnni`, `avx512-vnni`).
    pub fn name(self) -> &'static str {
        match self {
            QKernel::Scalar => "scalar",
            QKernel::Avx2Madd => "avx2-madd",
            QKernel::Avx2Vnni => "avx-vnni",
            QKernel::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Register blocking: (`mr`, `nr`, words of A per row and 4-k group).
    fn layout(self) -> (usize, usize, usize) {
        match self {
            QKernel::Scalar => (4, 16, 1),
            QKernel::Avx2Madd => (4, 16, 2),
            QKernel::Avx2Vnni => (6, 16, 1),
            QKernel::Avx512Vnni => (8, 32, 1),
        }
    }
}

/// Signed 8-bit weights `[m, k]` packed for one kernel, with their row sums.
#[derive(Clone, Debug)]
pub struct PackedQA {
    kernel: QKernel,
    m: usize,
    k: usize,
    /// `[panel][k/4][mr][words]`.
    data: Vec<i32>,
    row_sums: Vec<i32>,
}

impl PackedQA {
    /// Packs the `m × k` matrix whose element `(i, j)` is `a[i * k + j]` for `kernel`.
    /// Panics if `a` is shorter than `m * k` (a caller bug).
    pub fn new(kernel: QKernel, a: &[i8], m: usize, k: usize) -> PackedQA {
        assert!(a.len() >= m * k, "A is smaller than m × k");
        let (mr, _, words) = kernel.layout();
        let k4 = k.div_ceil(4);
        let panels = m.div_ceil(mr);
        let mut data = vec![0i32; panels * k4 * mr * words];
        let at = |i: usize, j: usize| if j < k { a[i * k + j] } else { 0 };
        for i in 0..m {
            let (p, r) = (i / mr, i % mr);
            for g in 0..k4 {
                let w: [i8; 4] = std::array::from_fn(|t| at(i, 4 * g + t));
                let dst = ((p * k4 + g) * mr + r) * words;
                if words == 1 {
                    data[dst] = i32::from_le_bytes(w.map(|x| x as u8));
                } else {
                    // vpmaddwd pairs: (w0, w2) against the even bytes of B, (w1, w3) the odd.
                    let pair = |lo: i8, hi: i8| {
                        (lo as i16 as u16 as u32 | ((hi as i16 as u16 as u32) << 16)) as i32
                    };
                    data[dst] = pair(w[0], w[2]);
                    data[dst + 1] = pair(w[1], w[3]);
                }
            }
        }
        let row_sums = (0..m)
            .map(|i| a[i * k..(i + 1) * k].iter().map(|&x| x as i32).sum())
            .collect();
        PackedQA {
            kernel,
            m,
            k,
            data,
            row_sums,
        }
    }

    pub fn kernel(&self) -> QKernel {
        self.kernel
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub fn depth(&self) -> usize {
        self.k
    }

    /// `Σ_k A[i, k]` per row `i`: the compensation of a zero point (`C − z · row_sums`).
    pub fn row_sums(&self) -> &[i32] {
        &self.row_sums
    }

    fn panel(&self, p: usize) -> &[i32] {
        let (mr, _, words) = self.kernel.layout();
        let len = self.k.div_ceil(4) * mr * words;
        &self.data[p * len..(p + 1) * len]
    }
}

/// A block of B the packer must write: columns `n0..n0 + nc` of all `k` rows as
/// `nc.div_ceil(nr)` panels of `[k.div_ceil(4)][nr][4]` bytes, every byte past row `k` or
/// column `n0 + nc` zero (the buffer is zeroed beforehand).
#[derive(Clone, Copy, Debug)]
pub struct QBlock {
    pub n0: usize,
    pub nc: usize,
    pub k: usize,
    pub nr: usize,
}

impl QBlock {
    /// Where byte `(kk, col)` of the block (col relative to `n0`) goes.
    #[inline(always)]
    pub fn index(&self, kk: usize, col: usize) -> usize {
        let k4 = self.k.div_ceil(4);
        ((col / self.nr) * k4 + kk / 4) * self.nr * 4 + (col % self.nr) * 4 + kk % 4
    }
}

/// Writes a block of B into its packed form (the buffer arrives zeroed).
pub type PackQB<'a> = dyn Fn(QBlock, &mut [u8]) + Sync + 'a;

#[derive(Clone, Copy)]
struct SendPtr(*mut i32);
// SAFETY: the tasks sharing this pointer write disjoint column blocks of C.
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`: the sharing tasks write disjoint parts.
unsafe impl Sync for SendPtr {}

/// `C[i * ldc + j] = Σ_k A[i, k] · B[k, j]` for `j < n`, B produced by `pack`.
/// `parallel` lets the work spread over the rayon pool. Panics when C is too small or
/// `k > MAX_DEPTH` (caller bugs).
pub fn qgemm(a: &PackedQA, n: usize, pack: &PackQB, c: &mut [i32], ldc: usize, parallel: bool) {
    let (m, k) = (a.m, a.k);
    if m == 0 || n == 0 {
        return;
    }
    assert!(k <= MAX_DEPTH, "K = {k} could overflow i32");
    assert!(c.len() >= (m - 1) * ldc + n && ldc >= n, "C is too small");
    assert!(a.kernel.is_supported(), "the CPU lacks {:?}", a.kernel);
    let blocks = n.div_ceil(NC);
    let c = SendPtr(c.as_mut_ptr());
    let run = |b: usize| {
        let n0 = b * NC;
        // SAFETY: block b owns columns n0..n0 + nc of every row of C (checked above).
        unsafe { block(a, n0, NC.min(n - n0), pack, c, ldc) };
    };
    if parallel && blocks > 1 && m * n * k >= PARALLEL_MIN_MACS {
        use rayon::prelude::*;
        (0..blocks).into_par_iter().for_each(run);
    } else {
        (0..blocks).for_each(run);
    }
}

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Columns `n0..n0 + nc` of C.
///
/// # Safety
/// `c` addresses `a.m` rows of stride `ldc` holding columns up to `n0 + nc`, and no other
/// thread writes these columns meanwhile.
unsafe fn block(a: &PackedQA, n0: usize, nc: usize, pack: &PackQB, c: SendPtr, ldc: usize) {
    let (mr, nr, _) = a.kernel.layout();
    let k4 = a.k.div_ceil(4);
    let npanels = nc.div_ceil(nr);
    let len = npanels * k4 * nr * 4;
    let mut buf = SCRATCH.with(|s| s.take());
    buf.clear();
    buf.resize(len, 0);
    pack(QBlock { n0, nc, k: a.k, nr }, &mut buf);
    let mut tile = [0i32; MR_MAX * NR_MAX];
    for np in 0..npanels {
        let bp = &buf[np * k4 * nr * 4..(np + 1) * k4 * nr * 4];
        let col = np * nr;
        let w = nr.min(nc - col);
        for p in 0..a.m.div_ceil(mr) {
            microkernel(a.kernel, k4, a.panel(p), bp, &mut tile);
            let rows = mr.min(a.m - p * mr);
            for r in 0..rows {
                // SAFETY: row p·mr + r < m, columns n0 + col .. + w inside the block.
                unsafe {
                    let dst = c.0.add((p * mr + r) * ldc + n0 + col);
                    std::ptr::copy_nonoverlapping(tile[r * nr..].as_ptr(), dst, w);
                }
            }
        }
    }
    SCRATCH.with(|s| s.set(buf));
}

/// `tile[r * nr + j] = Σ a · b` over the `k4` groups of one A panel and one B panel.
fn microkernel(kernel: QKernel, k4: usize, a: &[i32], b: &[u8], tile: &mut [i32]) {
    let (mr, nr, words) = kernel.layout();
    assert!(a.len() >= k4 * mr * words && b.len() >= k4 * nr * 4 && tile.len() >= mr * nr);
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `qgemm` checked the CPU has the kernel's features; extents checked above.
        QKernel::Avx512Vnni => unsafe { avx512::vnni(k4, a.as_ptr(), b.as_ptr(), tile) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        QKernel::Avx2Vnni => unsafe { avx2::vnni(k4, a.as_ptr(), b.as_ptr(), tile) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        QKernel::Avx2Madd => unsafe { avx2::madd(k4, a.as_ptr(), b.as_ptr(), tile) },
        _ => scalar::kernel(mr, nr, k4, a, b, tile),
    }
}
