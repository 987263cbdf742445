//! The GEMM for a B of at most `NARROW_N` columns (a fully connected layer at batch 1, a
//! MatMul by a vector): the tiled driver would spend a whole `mr × nr` register tile (16 or
//! 32 columns wide) on one real column, so here each A panel (`[k][mr]`, read once, in
//! order) is multiplied by the few columns of B directly. The loop is memory-bound on A;
//! it is compiled once per ISA so the compiler can use the wide registers, with the same
//! separate multiply and add in the same order everywhere, so every ISA gives the same bits.

use super::{BBlock, BSource, Layout, MR_MAX, Output, PackedA, with_scratch};
use crate::engine::kernels::isa::Isa;

/// Columns of B up to which `gemm` takes this path.
pub const NARROW_N: usize = 4;

/// `C = A · B + bias` for `n <= NARROW_N` columns (the contract of `super::gemm`, whose
/// checks have run; `a` is packed for `isa`).
pub(super) fn gemm_narrow(
    isa: Isa,
    a: &PackedA,
    n: usize,
    b: BSource,
    out: Output,
    parallel: bool,
) {
    debug_assert!(n <= NARROW_N && a.layout == Layout::of(isa));
    let (m, k, mr) = (a.m, a.k, a.layout.mr);
    let bt = dense_b(a.layout, k, n, b);
    let ldc = out.ldc;
    let (bias, accumulate, epilogue) = (out.bias, out.accumulate, out.epilogue);
    let panels = m.div_ceil(mr);
    // Row panel `p` of C: rows p·mr .. p·mr + rows, each `n` values at stride `ldc`.
    let run = |p: usize, c: &mut [f32]| {
        let rows = mr.min(m - p * mr);
        let panel = &a.data[p * k * mr..(p + 1) * k * mr];
        let mut acc = [[0.0f32; MR_MAX]; NARROW_N];
        panel_product(isa, panel, &bt, k, mr, n, &mut acc);
        for r in 0..rows {
            let seg = &mut c[r * ldc..r * ldc + n];
            for (j, v) in seg.iter_mut().enumerate() {
                let x = if accumulate {
                    acc[j][r] + *v
                } else {
                    acc[j][r]
                };
                *v = match bias {
                    Some(b) => x + b[p * mr + r],
                    None => x,
                };
            }
            if let Some(epi) = epilogue {
                epi(p * mr + r, 0, seg);
            }
        }
    };
    let chunk = mr * ldc;
    let threads = if parallel && m * k * n >= super::PARALLEL_MIN_MACS {
        rayon::current_num_threads()
    } else {
        1
    };
    if threads > 1 && chunk > 0 {
        use rayon::prelude::*;
        out.c
            .par_chunks_mut(chunk)
            .take(panels)
            .enumerate()
            .for_each(|(p, c)| run(p, c));
    } else if chunk > 0 {
        for (p, c) in out.c.chunks_mut(chunk).take(panels).enumerate() {
            run(p, c);
        }
    }
}

/// B as a dense `[k][n]` matrix.
fn dense_b(layout: Layout, k: usize, n: usize, b: BSource) -> Vec<f32> {
    let mut bt = vec![0.0f32; k * n];
    match b {
        BSource::Rows { base, offs } => {
            for (row, &o) in bt.chunks_exact_mut(n).zip(offs) {
                row.copy_from_slice(&base[o..o + n]);
            }
        }
        BSource::Pack(pack) => {
            let nr = layout.nr;
            with_scratch(k * nr, |buf| {
                let blk = BBlock {
                    k0: 0,
                    kc: k,
                    n0: 0,
                    nc: n,
                    nr,
                };
                pack(blk, buf);
                for (row, src) in bt.chunks_exact_mut(n).zip(buf.chunks_exact(nr)) {
                    row.copy_from_slice(&src[..n]);
                }
            });
        }
    }
    bt
}

/// `acc[j][r] = Σ_k panel[k][r] · bt[k][j]` for `r < mr`, `j < n`, on `isa`'s registers.
fn panel_product(
    isa: Isa,
    panel: &[f32],
    bt: &[f32],
    k: usize,
    mr: usize,
    n: usize,
    acc: &mut [[f32; MR_MAX]; NARROW_N],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the plan selects AVX-512 only on CPUs that have it (`Isa::current`); the
        // body is safe Rust (bounds-checked), compiled for wider registers.
        Isa::Avx512 => unsafe { product_avx512(panel, bt, k, mr, n, acc) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2.
        Isa::Avx2 => unsafe { product_avx2(panel, bt, k, mr, n, acc) },
        _ => product(panel, bt, k, mr, n, acc),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn product_avx512(
    panel: &[f32],
    bt: &[f32],
    k: usize,
    mr: usize,
    n: usize,
    acc: &mut [[f32; MR_MAX]; NARROW_N],
) {
    product(panel, bt, k, mr, n, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn product_avx2(
    panel: &[f32],
    bt: &[f32],
    k: usize,
    mr: usize,
    n: usize,
    acc: &mut [[f32; MR_MAX]; NARROW_N],
) {
    product(panel, bt, k, mr, n, acc)
}

/// The product for the layouts' `mr` (a constant, so the row loop is unrolled into
/// registers), any other `mr` through the same loop with a run-time bound.
#[inline(always)]
fn product(
    panel: &[f32],
    bt: &[f32],
    k: usize,
    mr: usize,
    n: usize,
    acc: &mut [[f32; MR_MAX]; NARROW_N],
) {
    match mr {
        6 => product_mr::<6>(panel, bt, k, n, acc),
        14 => product_mr::<14>(panel, bt, k, n, acc),
        _ => {
            for (ak, bk) in panel.chunks_exact(mr).zip(bt.chunks_exact(n)).take(k) {
                for (row, &bv) in acc.iter_mut().zip(bk) {
                    for (c, &av) in row.iter_mut().zip(ak) {
                        *c += av * bv;
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn product_mr<const MR: usize>(
    panel: &[f32],
    bt: &[f32],
    k: usize,
    n: usize,
    acc: &mut [[f32; MR_MAX]; NARROW_N],
) {
    let mut local = [[0.0f32; MR]; NARROW_N];
    for (ak, bk) in panel.chunks_exact(MR).zip(bt.chunks_exact(n)).take(k) {
        let ak = &ak[..MR];
        for (row, &bv) in local.iter_mut().zip(bk) {
            for r in 0..MR {
                row[r] += ak[r] * bv;
            }
        }
    }
    for (dst, src) in acc.iter_mut().zip(&local) {
        dst[..MR].copy_from_slice(src);
    }
}
