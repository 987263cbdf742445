use super::*;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Packs the row-major `k × n` matrix `b` (rows of `n` bytes).
fn row_major(b: &[u8], n: usize) -> impl Fn(QBlock, &mut [u8]) + Sync + '_ {
    move |blk: QBlock, dst: &mut [u8]| {
        for kk in 0..blk.k {
            for j in 0..blk.nc {
                dst[blk.index(kk, j)] = b[kk * n + blk.n0 + j];
            }
        }
    }
}

/// `Σ_k a[i, k] · b[k, j]` in i64.
fn reference(a: &[i8], b: &[u8], m: usize, k: usize, n: usize) -> Vec<i64> {
    let mut c = vec![0i64; m * n];
    for i in 0..m {
        for kk in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + kk] as i64 * b[kk * n + j] as i64;
            }
        }
    }
    c
}

fn check(kernel: QKernel, a: &[i8], b: &[u8], (m, k, n): (usize, usize, usize), parallel: bool) {
    let packed = PackedQA::new(kernel, a, m, k);
    let ldc = n + 3;
    let mut c = vec![i32::MIN; m * ldc];
    qgemm(&packed, n, &row_major(b, n), &mut c, ldc, parallel);
    let want = reference(a, b, m, k, n);
    for i in 0..m {
        for j in 0..n {
            assert_eq!(
                c[i * ldc + j] as i64,
                want[i * n + j],
                "{kernel:?} {m}×{k}×{n} at ({i}, {j})"
            );
        }
        assert!(
            c[i * ldc + n..(i + 1) * ldc].iter().all(|&x| x == i32::MIN),
            "wrote past n"
        );
        let sum: i64 = a[i * k..(i + 1) * k].iter().map(|&x| x as i64).sum();
        assert_eq!(packed.row_sums()[i] as i64, sum);
    }
}

#[test]
fn every_kernel_this_cpu_has_equals_exact_integer_arithmetic_on_random_shapes() {
    let kernels = QKernel::supported();
    assert_eq!(kernels[0], QKernel::Scalar);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for trial in 0..40 {
        let m = 1 + rng.below(21);
        let k = 1 + rng.below(if trial % 5 == 0 { 600 } else { 70 });
        let n = 1 + rng.below(if trial % 7 == 0 { 700 } else { 90 });
        let a: Vec<i8> = (0..m * k).map(|_| rng.next() as i8).collect();
        let b: Vec<u8> = (0..k * n).map(|_| rng.next() as u8).collect();
        for &kernel in &kernels {
            check(kernel, &a, &b, (m, k, n), trial % 2 == 0);
        }
    }
}

#[test]
fn extreme_values_do_not_saturate() {
    // 255 · (−128) summed over K, and 255 · 127: a 16-bit pair sum (vpmaddubsw) would
    // saturate at −32768 / 32767.
    for &kernel in &QKernel::supported() {
        for (av, bv) in [(-128i8, 255u8), (127, 255), (-128, 0)] {
            let (m, k, n) = (9, 301, 37);
            let a = vec![av; m * k];
            let b = vec![bv; k * n];
            check(kernel, &a, &b, (m, k, n), false);
        }
        // The deepest K the contract allows, one row and column.
        let k = MAX_DEPTH;
        check(kernel, &vec![-128i8; k], &vec![255u8; k], (1, k, 1), false);
    }
}

#[test]
fn each_isa_picks_a_kernel_it_can_run() {
    for isa in Isa::supported() {
        let k = QKernel::for_isa(isa);
        assert!(k.is_supported(), "{isa:?} → {k:?}");
        if isa.has_vnni() {
            assert!(k.is_vnni());
        }
    }
    assert_eq!(QKernel::for_isa(Isa::Scalar), QKernel::Scalar);
}
