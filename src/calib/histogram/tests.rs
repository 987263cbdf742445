use super::*;

/// xorshift64* — a tiny deterministic generator for property tests.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// A heavy-tailed mix with zeros, exact bin edges, subnormals, huge values and non-finites.
    fn value(&mut self) -> f32 {
        let u = self.unit();
        match self.below(20) {
            0 => 0.0,
            1 => -0.0,
            2 => (self.below(64) as f32) * 0.125 - 4.0, // exact grid values
            3 => f32::from_bits(1 + self.below(1000) as u32), // subnormal
            4 => (u as f32 - 0.5) * 1e30,
            5 if u < 0.05 => f32::NAN,
            6 if u < 0.05 => f32::NEG_INFINITY,
            _ => {
                let g =
                    (-2.0 * (1.0 - u).ln()).sqrt() * (self.unit() * std::f64::consts::TAU).cos();
                (g * 3.0f64.powi(self.below(5) as i32 - 2)) as f32
            }
        }
    }
}

fn fill(c: &mut Collector, data: &[f32], chunk: usize) {
    for b in data.chunks(chunk.max(1)) {
        c.update(b);
    }
}

/// Reference: a one-shot histogram at R = pow2ceil(max|x|) with a plain division per element.
fn one_shot(data: &[f32], nb: usize) -> (Vec<u64>, Vec<u64>, Option<f64>) {
    let finite_nz: Vec<f64> = data
        .iter()
        .filter(|x| x.is_finite() && **x != 0.0)
        .map(|&x| f64::from(x))
        .collect();
    let (mut pos, mut neg) = (vec![0u64; nb], vec![0u64; nb]);
    let Some(a) = finite_nz.iter().map(|x| x.abs()).reduce(f64::max) else {
        return (pos, neg, None);
    };
    let r = pow2_ceil(a);
    let w = r / nb as f64;
    for x in finite_nz {
        let b = (((x.abs() / w).ceil() as i64 - 1).clamp(0, nb as i64 - 1)) as usize;
        if x > 0.0 {
            pos[b] += 1;
        } else {
            neg[b] += 1;
        }
    }
    (pos, neg, Some(r))
}

/// §9-B: SIDE_BINS = 8, two batches, the second doubling the range twice.
#[test]
fn spec_b_collector() {
    let mut c = Collector::with_side_bins(8).unwrap();
    c.update(&[0.3, -0.6, 0.0, 0.9, f32::NAN]);
    assert_eq!(c.range(), Some(1.0));
    assert_eq!(c.pos(), &[0, 0, 1, 0, 0, 0, 0, 1]);
    assert_eq!(c.neg(), &[0, 0, 0, 0, 1, 0, 0, 0]);
    c.update(&[2.5, -0.05, 1.0]);
    assert_eq!(c.range(), Some(4.0));
    assert_eq!(c.pos(), &[1, 2, 0, 0, 1, 0, 0, 0]);
    assert_eq!(c.neg(), &[1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        (c.count(), c.zero_count(), c.nan_count(), c.inf_count()),
        (7, 1, 1, 0)
    );
    assert_eq!(c.min(), Some(-0.6000000238418579));
    assert_eq!(c.max(), Some(2.5));
    assert_eq!(c.nonzero_count(), 6);
    let mut one = Collector::with_side_bins(8).unwrap();
    one.update(&[0.3, -0.6, 0.0, 0.9, 2.5, -0.05, 1.0]);
    assert_eq!(
        (one.pos(), one.neg(), one.range()),
        (c.pos(), c.neg(), c.range())
    );
}

#[test]
fn pow2_ceil_is_exact() {
    for (a, r) in [
        (1.0, 1.0),
        (0.75, 1.0),
        (3.0, 4.0),
        (4.0, 4.0),
        (4.000001, 8.0),
        (0.3, 0.5),
    ] {
        assert_eq!(pow2_ceil(a), r, "{a}");
    }
    let tiny = f64::from(f32::from_bits(1)); // 2^-149
    assert_eq!(pow2_ceil(tiny), tiny);
    assert_eq!(pow2_ceil(f64::from(f32::MAX)), 2f64.powi(128));
}

#[test]
fn bins_hold_half_open_intervals() {
    let mut c = Collector::with_side_bins(8).unwrap();
    // R = 1, w = 1/8: 0.5 is the upper edge of bin 3, 0.125 of bin 0, 1.0 of bin 7
    c.update(&[1.0, 0.5, 0.125, 0.12500001, -0.25]);
    assert_eq!(c.pos(), &[1, 1, 0, 1, 0, 0, 0, 1]);
    assert_eq!(c.neg(), &[0, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn extreme_values() {
    let mut c = Collector::new();
    let tiny = f32::from_bits(1);
    c.update(&[
        tiny,
        -tiny,
        f32::MAX,
        -0.0,
        f32::INFINITY,
        f32::NAN,
        f32::MIN,
    ]);
    assert_eq!(c.range(), Some(2f64.powi(128)));
    assert_eq!(
        (c.count(), c.zero_count(), c.nan_count(), c.inf_count()),
        (5, 1, 1, 1)
    );
    assert_eq!(c.pos()[0] + c.neg()[0], 2);
    assert_eq!(c.pos()[SIDE_BINS - 1], 1);
    assert_eq!(c.neg()[SIDE_BINS - 1], 1);
    let mut c = Collector::new();
    c.update(&[tiny]);
    assert_eq!(c.range(), Some(f64::from(tiny)));
    assert_eq!(c.pos()[SIDE_BINS - 1], 1);
    // batches without finite or without non-zero values
    let mut c = Collector::new();
    c.update(&[]);
    c.update(&[f32::NAN, f32::INFINITY]);
    assert_eq!((c.count(), c.min(), c.range()), (0, None, None));
    c.update(&[0.0, -0.0]);
    assert_eq!((c.count(), c.zero_count(), c.range()), (2, 2, None));
    assert_eq!((c.min(), c.max()), (Some(0.0), Some(0.0)));
}

#[test]
fn update_matches_one_shot_reference() {
    for seed in 1..6u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let data: Vec<f32> = (0..20_000).map(|_| rng.value()).collect();
        for nb in [8, 64, SIDE_BINS] {
            let mut c = Collector::with_side_bins(nb).unwrap();
            fill(&mut c, &data, 97 * seed as usize);
            let (pos, neg, r) = one_shot(&data, nb);
            assert_eq!(
                (c.pos(), c.neg(), c.range()),
                (&pos[..], &neg[..], r),
                "seed {seed} nb {nb}"
            );
            let finite: Vec<f32> = data.iter().copied().filter(|x| x.is_finite()).collect();
            assert_eq!(c.count(), finite.len() as u64);
            assert_eq!(
                c.zero_count(),
                finite.iter().filter(|x| **x == 0.0).count() as u64
            );
            assert_eq!(
                c.nan_count(),
                data.iter().filter(|x| x.is_nan()).count() as u64
            );
            let min = finite.iter().copied().fold(f32::INFINITY, f32::min);
            assert_eq!(c.min(), Some(f64::from(min)));
        }
    }
}

/// Merging collectors over any split and in any order equals one collector over all the data,
/// bit for bit; so does feeding the batches in any order.
#[test]
fn merge_is_exact_and_order_free() {
    for seed in 1..8u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        // scale grows between parts so that merges must double either side
        let parts: Vec<Vec<f32>> = (0..6)
            .map(|k| {
                let scale = 4f32.powi(rng.below(7) as i32 - 3);
                let len = rng.below(500) + (k % 2) * 3;
                (0..len).map(|_| rng.value() * scale).collect()
            })
            .collect();
        let nb = [8, 64, 1024][seed as usize % 3];
        let all: Vec<f32> = parts.concat();
        let mut whole = Collector::with_side_bins(nb).unwrap();
        whole.update(&all);
        let singles: Vec<Collector> = parts
            .iter()
            .map(|p| {
                let mut c = Collector::with_side_bins(nb).unwrap();
                fill(&mut c, p, 33);
                c
            })
            .collect();
        // forward, reverse and pairwise-tree merges
        let mut fwd = Collector::with_side_bins(nb).unwrap();
        for s in &singles {
            fwd.merge(s).unwrap();
        }
        let mut rev = Collector::with_side_bins(nb).unwrap();
        for s in singles.iter().rev() {
            rev.merge(s).unwrap();
        }
        let mut level = singles.clone();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| {
                    let mut a = pair[0].clone();
                    if let Some(b) = pair.get(1) {
                        a.merge(b).unwrap();
                    }
                    a
                })
                .collect();
        }
        // batches fed in reverse order
        let mut shuffled = Collector::with_side_bins(nb).unwrap();
        for p in parts.iter().rev() {
            shuffled.update(p);
        }
        for (name, c) in [
            ("fwd", &fwd),
            ("rev", &rev),
            ("tree", &level[0]),
            ("order", &shuffled),
        ] {
            assert_eq!(c, &whole, "seed {seed}: {name}");
        }
    }
}

#[test]
fn doubling_invariants() {
    let mut rng = Rng(42);
    let data: Vec<f32> = (0..5000).map(|_| rng.value()).collect();
    let mut c = Collector::with_side_bins(64).unwrap();
    c.update(&data);
    let nb = c.side_bins();
    let r0 = c.range().unwrap();
    // the data spans at least half of the bins
    let top = c
        .pos()
        .iter()
        .zip(c.neg())
        .rposition(|(a, b)| a + b > 0)
        .unwrap();
    assert!(top >= nb / 2, "top bin {top}");
    let total = c.nonzero_count();
    for k in 1..=3 {
        let before = c.clone();
        c.double();
        assert_eq!(c.range(), Some(r0 * f64::from(1u32 << k)));
        let sum: u64 = c.pos().iter().chain(c.neg()).sum();
        assert_eq!(sum, total);
        assert!(
            c.pos()[nb / 2..]
                .iter()
                .chain(&c.neg()[nb / 2..])
                .all(|&x| x == 0)
        );
        for i in 0..nb / 2 {
            assert_eq!(c.pos()[i], before.pos()[2 * i] + before.pos()[2 * i + 1]);
            assert_eq!(c.neg()[i], before.neg()[2 * i] + before.neg()[2 * i + 1]);
        }
    }
    // a value at the doubled range gives the same histogram as one fed from scratch
    let mut a = Collector::with_side_bins(64).unwrap();
    a.update(&data);
    a.update(&[(r0 * 7.5) as f32]);
    let mut b = Collector::with_side_bins(64).unwrap();
    let mut all = data.clone();
    all.push((r0 * 7.5) as f32);
    b.update(&all);
    assert_eq!(a, b);
    assert_eq!(a.range(), Some(r0 * 8.0));
    // doubling an empty collector does nothing
    let mut e = Collector::new();
    e.double();
    assert_eq!(e, Collector::new());
}

#[test]
fn merge_edge_cases() {
    let mut a = Collector::with_side_bins(8).unwrap();
    let b = Collector::with_side_bins(16).unwrap();
    assert_eq!(
        a.merge(&b),
        Err(CalibError::SideBinsMismatch { left: 8, right: 16 })
    );
    // empty into full and full into empty
    let mut full = Collector::with_side_bins(8).unwrap();
    full.update(&[1.5, -0.25, 0.0, f32::NAN]);
    let before = full.clone();
    full.merge(&Collector::with_side_bins(8).unwrap()).unwrap();
    assert_eq!(full, before);
    a.merge(&full).unwrap();
    assert_eq!(a, full);
    // a collector of zeros only contributes counts
    let mut z = Collector::with_side_bins(8).unwrap();
    z.update(&[0.0, 0.0]);
    a.merge(&z).unwrap();
    assert_eq!((a.count(), a.zero_count(), a.pos()), (5, 3, full.pos()));
    // a range 2^300 times smaller: the shift saturates at bin 0
    let mut big = Collector::with_side_bins(8).unwrap();
    big.update(&[f32::MAX]);
    let mut small = Collector::with_side_bins(8).unwrap();
    small.update(&[f32::from_bits(1)]);
    big.merge(&small).unwrap();
    assert_eq!(big.pos(), &[1, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        Collector::with_side_bins(6),
        Err(CalibError::InvalidSideBins(6))
    );
    assert_eq!(
        Collector::with_side_bins(1),
        Err(CalibError::InvalidSideBins(1))
    );
}

fn raw(pos: Vec<u64>, neg: Vec<u64>, range: Option<f64>, min: f64, max: f64) -> RawHistogram {
    RawHistogram {
        pos,
        neg,
        range,
        zero: 0,
        nan: 0,
        inf: 0,
        min,
        max,
    }
}

#[test]
fn from_raw_validates() {
    let ok = raw(vec![0, 2, 0, 1], vec![1, 0, 0, 0], Some(4.0), -0.5, 3.5);
    let c = Collector::from_raw(ok.clone()).unwrap();
    assert_eq!(
        (c.count(), c.nonzero_count(), c.bin_width()),
        (4, 4, Some(1.0))
    );
    let bad = |r: RawHistogram| Collector::from_raw(r).unwrap_err();
    assert!(matches!(
        bad(RawHistogram {
            range: Some(3.0),
            ..ok.clone()
        }),
        CalibError::InconsistentHistogram(_)
    ));
    assert!(matches!(
        bad(RawHistogram {
            range: None,
            ..ok.clone()
        }),
        CalibError::InconsistentHistogram(_)
    ));
    // max outside the top positive bin (3, 4]
    assert!(matches!(
        bad(RawHistogram {
            max: 2.5,
            ..ok.clone()
        }),
        CalibError::InconsistentHistogram(_)
    ));
    // zeros but min > 0
    let pos_only = raw(vec![1, 0], vec![0, 0], Some(2.0), 0.5, 0.5);
    Collector::from_raw(pos_only.clone()).unwrap();
    assert!(matches!(
        bad(RawHistogram {
            zero: 1,
            ..pos_only.clone()
        }),
        CalibError::InconsistentHistogram(_)
    ));
    assert!(matches!(
        bad(RawHistogram {
            neg: vec![0],
            ..pos_only.clone()
        }),
        CalibError::InconsistentHistogram(_)
    ));
    assert_eq!(
        bad(raw(vec![0; 3], vec![0; 3], None, 0.0, 0.0)),
        CalibError::InvalidSideBins(3)
    );
    assert!(matches!(
        bad(raw(vec![u64::MAX, 1], vec![0, 0], Some(2.0), 0.5, 1.5)),
        CalibError::InconsistentHistogram(_)
    ));
    // an empty histogram ignores min/max
    let empty = Collector::from_raw(raw(vec![0; 4], vec![0; 4], None, f64::NAN, 1.0)).unwrap();
    assert_eq!((empty.count(), empty.min()), (0, None));
}

#[test]
fn serde_round_trip_is_sparse_and_validated() {
    let mut rng = Rng(7);
    let data: Vec<f32> = (0..3000).map(|_| rng.value()).collect();
    let mut c = Collector::new();
    c.update(&data);
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.len() < 60_000, "{} bytes", json.len());
    let back: Collector = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    let empty = serde_json::to_string(&Collector::new()).unwrap();
    assert_eq!(
        serde_json::from_str::<Collector>(&empty).unwrap(),
        Collector::new()
    );
    let broken = r#"{"side_bins":8,"range":1.0,"zero":0,"nan":0,"inf":0,"min":0.5,"max":0.5,"pos":[[9,1]],"neg":[]}"#;
    assert!(serde_json::from_str::<Collector>(broken).is_err());
    let broken = r#"{"side_bins":12,"range":null,"zero":0,"nan":0,"inf":0,"min":null,"max":null,"pos":[],"neg":[]}"#;
    assert!(serde_json::from_str::<Collector>(broken).is_err());
}
