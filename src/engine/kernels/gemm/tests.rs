//! The GEMM against an f64 reference, on every ISA this CPU supports.

use super::*;

fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, bias: &[f32]) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bias[i] as f64;
            for l in 0..k {
                s += a[i * k + l] as f64 * b[l * n + j] as f64;
            }
            c[i * n + j] = s;
        }
    }
    c
}

/// Packs a block of a row-major matrix `b[k * ldb + n]`.
fn pack_b_rows(b: &[f32], ldb: usize, blk: BBlock, dst: &mut [f32]) {
    for (p, panel) in dst.chunks_exact_mut(blk.kc * blk.nr).enumerate() {
        let c0 = blk.n0 + p * blk.nr;
        let w = blk.nr.min(blk.n0 + blk.nc - c0);
        for (kk, out) in panel.chunks_exact_mut(blk.nr).enumerate() {
            copy_row(out, &b[(blk.k0 + kk) * ldb + c0..], w, blk.nr);
        }
    }
}

#[derive(Clone, Copy)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    parallel: bool,
    rows: bool,
    accumulate: bool,
}

fn check(isa: Isa, pack_isa: Isa, c: Case) {
    let Case { m, n, k, .. } = c;
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
        .collect();
    let bias: Vec<f32> = (0..m).map(|i| i as f32 * 0.5 - 1.0).collect();
    let pa = PackedA::new(pack_isa, &a, m, k, k, 1);
    let ldc = n + 3;
    let init = |i: usize, j: usize| (i * 3 + j) as f32 * 0.25;
    let mut out = vec![f32::NAN; m * ldc];
    for i in 0..m {
        for j in 0..n {
            out[i * ldc + j] = if c.accumulate { init(i, j) } else { f32::NAN };
        }
    }
    // The epilogue sees every finished element once: it doubles it and counts it.
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let epi = |row: usize, col: usize, v: &mut [f32]| {
        assert!(row < m && col + v.len() <= n);
        seen.fetch_add(v.len(), std::sync::atomic::Ordering::Relaxed);
        v.iter_mut().for_each(|x| *x *= 2.0);
    };
    let pack = |blk: BBlock, dst: &mut [f32]| pack_b_rows(&b, n, blk, dst);
    let offs: Vec<usize> = (0..k).map(|r| r * n).collect();
    let src = if c.rows {
        BSource::Rows {
            base: &b,
            offs: &offs,
        }
    } else {
        BSource::Pack(&pack)
    };
    let o = Output {
        c: &mut out,
        ldc,
        bias: Some(&bias),
        accumulate: c.accumulate,
        epilogue: Some(&epi),
    };
    gemm(isa, &pa, n, src, o, c.parallel);
    assert_eq!(
        seen.into_inner(),
        m * n,
        "{isa}: the epilogue saw every element"
    );
    let want = reference(&a, &b, m, n, k, &bias);
    for i in 0..m {
        for j in 0..n {
            let w = 2.0 * (want[i * n + j] + if c.accumulate { init(i, j) as f64 } else { 0.0 });
            let g = out[i * ldc + j] as f64;
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{isa} m{m} n{n} k{k} ({i},{j}): {g} vs {w}"
            );
        }
        for j in n..ldc.min(out.len() - i * ldc) {
            assert!(
                out[i * ldc + j].is_nan(),
                "{isa}: wrote past the row at ({i},{j})"
            );
        }
    }
}

#[test]
fn gemm_matches_reference_on_ragged_shapes_on_every_isa() {
    let shapes = [
        (1, 1, 1),
        (6, 16, 8),
        (7, 17, 3),
        (14, 32, 5),
        (15, 33, 2),
        (13, 40, 300),
        (24, 100, 600),
        (5, 3, 1000),
        (29, 47, 31),
        // narrow B (the fully connected layer at batch 1): its own path
        (29, 1, 700),
        (33, 2, 9),
        (100, 4, 3000),
        (15, 5, 40),
    ];
    for isa in Isa::supported() {
        for &(m, n, k) in &shapes {
            for rows in [false, true] {
                for parallel in [false, true] {
                    for accumulate in [false, true] {
                        let c = Case {
                            m,
                            n,
                            k,
                            parallel,
                            rows,
                            accumulate,
                        };
                        check(isa, isa, c);
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_splits_large_problems_across_threads() {
    for isa in Isa::supported() {
        let big = |m, n, k, rows| Case {
            m,
            n,
            k,
            parallel: true,
            rows,
            accumulate: false,
        };
        check(isa, isa, big(96, 900, 96, false));
        check(isa, isa, big(384, 49, 520, true));
    }
}

#[test]
fn a_packed_for_another_isa_is_repacked() {
    let all = Isa::supported();
    for &isa in &all {
        for &pack in &all {
            let c = Case {
                m: 17,
                n: 35,
                k: 9,
                parallel: false,
                rows: false,
                accumulate: false,
            };
            check(isa, pack, c);
        }
    }
}
