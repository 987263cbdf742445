//! End-to-end worked examples E–H of CALIBRATION.md §9 (values from `tools/calib_ref.py`,
//! printed at full precision). Tolerances: chosen index exact, T/lo/hi relative 1e-9,
//! divergence relative 1e-6, scale equal as f32.

use super::*;

mod formula;

use formula::{formula_f, formula_g};

fn assert_rel(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs(),
        "{what}: got {got:.17e}, want {want:.17e}"
    );
}

fn assert_curve(got: &[(f64, f64)], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&(_, g), &w)) in got.iter().zip(want).enumerate() {
        assert_rel(g, w, 1e-6, &format!("{what}[{i}]"));
    }
}

fn params(algo: QuantizeAlgo, kind: DivergenceType, bin: u32, p: f64) -> SearchParams {
    SearchParams {
        algo,
        bin,
        divergence: kind,
        max_percentile: p,
        ..SearchParams::default()
    }
}

fn collector(pos: Vec<u64>, neg: Vec<u64>, range: f64, zero: u64, min: f64, max: f64) -> Collector {
    Collector::from_raw(RawHistogram {
        pos,
        neg,
        range: Some(range),
        zero,
        nan: 0,
        inf: 0,
        min,
        max,
    })
    .unwrap()
}

/// §9-E counts: round(1000·exp(−b/8)) for b < 48, [3, 0, 2, 1] at 60..64; max 63.4.
#[rustfmt::skip]
const E_COUNTS: [u64; 48] = [
    1000, 882, 779, 687, 607, 535, 472, 417, 368, 325, 287, 253, 223, 197, 174, 153, 135, 119, 105,
    93, 82, 72, 64, 56, 50, 44, 39, 34, 30, 27, 24, 21, 18, 16, 14, 13, 11, 10, 9, 8, 7, 6, 5, 5,
    4, 4, 3, 3,
];

#[rustfmt::skip]
const E_KL: [f64; 10] = [
    0.8232404631304768, 0.45549067682906375, 0.23996602537963163, 0.1346973787969953,
    0.03870877749980044, 0.02417440413608444, 0.020416136645282183, 0.03356574421327613,
    0.03941306942128502, 0.039300254012733245,
];
#[rustfmt::skip]
const E_SYMKL: [f64; 10] = [
    1.2942084255129793, 0.6496437216103461, 0.3276301634984292, 0.17823363910111456,
    0.06167172008093389, 0.041789553080914615, 0.03923750114520515, 0.05750660959467714,
    0.0693581281061497, 0.07928177725808572,
];
#[rustfmt::skip]
const E_JSD: [f64; 10] = [
    0.13719036942092283, 0.061677292639849356, 0.02862867177064909, 0.01420385380943174,
    0.006663812510587109, 0.004772081890313642, 0.004778620318571909, 0.006021290518519064,
    0.0074902684058082295, 0.009849975630772372,
];

/// §9-E: small symmetric search (SIDE_BINS 64, w = 1, bin 8, ratios 0.1..1.0 step 0.1, p = 1),
/// with the full curves of the three types.
#[test]
fn spec_e_small_search() {
    let mut pos = vec![0u64; 64];
    pos[..48].copy_from_slice(&E_COUNTS);
    pos[60..].copy_from_slice(&[3, 0, 2, 1]);
    let c = collector(pos, vec![0; 64], 64.0, 0, 0.0, 63.4);
    assert_eq!(c.bin_width(), Some(1.0));
    let base = SearchParams {
        algo: QuantizeAlgo::NonOffset,
        bin: 8,
        start_ratio: 0.1,
        end_ratio: 1.0,
        step_ratio: 0.1,
        max_percentile: 1.0,
        ..SearchParams::default()
    };
    let cases = [
        (DivergenceType::Kl, &E_KL, 6, 44.38, 0.3494488298892975),
        (
            DivergenceType::SymKl,
            &E_SYMKL,
            6,
            44.38,
            0.3494488298892975,
        ),
        (DivergenceType::Jsd, &E_JSD, 5, 38.04, 0.2995275557041168),
    ];
    let all = divergence_curves(&c, &base).unwrap().unwrap();
    for (kind, curve, idx, t, scale) in cases {
        let r = calibrate_tensor(
            &c,
            &SearchParams {
                divergence: kind,
                ..base
            },
        )
        .unwrap();
        assert_eq!(r.case, CalibCase::Searched);
        assert_curve(&r.curve, curve, kind.as_str());
        assert_eq!(r.chosen, Some(idx), "{kind}");
        assert_rel(r.hi, t, 1e-9, "T");
        assert_eq!(r.lo, -r.hi);
        assert_eq!(r.scale, scale as f32, "{kind}");
        assert_eq!(r.base, Some(Base::Symmetric(63.4)));
        assert!(!r.boundary_hit);
        // the all-types curves agree and select the same candidate
        let pairs: Vec<(f64, f64)> = all
            .ratios
            .iter()
            .copied()
            .zip(all.curve(kind).iter().copied())
            .collect();
        assert_curve(&pairs, curve, "all");
        assert_eq!(all.chosen(kind), idx);
    }
    assert_eq!(all.ranges[6], (-44.38, 44.38));
}

/// §9-H: degenerate tensors through a default collector, default parameters.
#[test]
fn spec_h_degenerate_tensors() {
    let run = |data: &[f32], algo| {
        let mut c = Collector::new();
        c.update(data);
        calibrate_tensor(
            &c,
            &SearchParams {
                algo,
                ..SearchParams::default()
            },
        )
        .unwrap()
    };
    let (non, half) = (QuantizeAlgo::NonOffset, QuantizeAlgo::HalfOffset);
    for algo in [non, half] {
        let r = run(&[0.0; 10], algo);
        assert_eq!(
            (r.case, r.lo, r.hi, r.scale, r.offset),
            (CalibCase::AllZero, 0.0, 0.0, 1.0, 0)
        );
        assert!(r.curve.is_empty() && r.ratio.is_none());
    }
    let r = run(&[2.5; 10], non);
    assert_eq!((r.case, r.threshold()), (CalibCase::SingleBin, 2.5));
    assert_eq!(r.scale, 0.019685039296746254f64 as f32);
    let r = run(&[2.5; 10], half);
    assert_eq!(
        (r.case, r.lo, r.hi, r.offset),
        (CalibCase::SingleBin, 0.0, 2.5, 0)
    );
    assert_eq!(r.scale, 0.009803921915590763f64 as f32);

    let neg_only = [-0.5, -1.0, -3.0, -2.0, -2.0, -1.5];
    let r = run(&neg_only, non);
    assert_eq!((r.case, r.ratio), (CalibCase::Searched, Some(1.0)));
    assert_eq!((r.lo, r.hi), (-3.0, 3.0));
    assert_eq!(r.scale, 0.023622047156095505f64 as f32);
    let r = run(&neg_only, half);
    assert_eq!((r.case, r.ratio), (CalibCase::Searched, Some(1.0)));
    assert_eq!(
        (r.lo, r.hi, r.offset, r.zero_point()),
        (-3.0, 0.0, -255, 255)
    );
    assert_eq!(r.scale, 0.0117647061124444f64 as f32);

    let bad = [f32::NAN, f32::INFINITY, -1.25];
    let r = run(&bad, non);
    assert_eq!((r.nan_count, r.inf_count), (1, 1));
    assert_eq!((r.case, r.threshold()), (CalibCase::SingleBin, 1.25));
    assert_eq!(r.scale, 0.009842519648373127f64 as f32);
    assert_eq!(r.warnings(), [CalibWarning::NonFinite { nan: 1, inf: 1 }]);
    let r = run(&bad, half);
    assert_eq!((r.lo, r.hi, r.offset), (-1.25, 0.0, -255));
    assert_eq!(r.scale, 0.0049019609577953815f64 as f32);

    // n = 0: an error, the tensor stays float
    let mut c = Collector::new();
    c.update(&[f32::NAN]);
    assert_eq!(
        calibrate_tensor(&c, &SearchParams::default()),
        Err(CalibError::NoFiniteValues { nan: 1, inf: 0 })
    );
    assert!(divergence_curves(&Collector::new(), &SearchParams::default()).is_err());
    assert_eq!(
        divergence_curves(&c_zero(), &SearchParams::default()),
        Ok(None)
    );
}

fn c_zero() -> Collector {
    let mut c = Collector::new();
    c.update(&[0.0]);
    c
}

#[test]
fn params_serialize_with_infinite_divergences() {
    let c = formula_f();
    let r = calibrate_tensor(
        &c,
        &params(QuantizeAlgo::NonOffset, DivergenceType::Jsd, 100, 0.99999),
    )
    .unwrap();
    let mut r2 = r.clone();
    r2.curve[3].1 = f64::INFINITY;
    for v in [r, r2] {
        // serde_yaml parses floats exactly
        let yaml = serde_yaml::to_string(&v).unwrap();
        assert_eq!(serde_yaml::from_str::<ActivationParams>(&yaml).unwrap(), v);
        // serde_json without its `float_roundtrip` feature may be 1 ulp off
        let json = serde_json::to_string(&v).unwrap();
        let back: ActivationParams = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (back.chosen, back.scale, back.offset),
            (v.chosen, v.scale, v.offset)
        );
        for (a, b) in back.curve.iter().zip(&v.curve) {
            assert!(
                a.1 == b.1 || (a.1 - b.1).abs() <= 1e-15 * b.1,
                "{a:?} vs {b:?}"
            );
        }
    }
    let all = divergence_curves(&c, &SearchParams::default())
        .unwrap()
        .unwrap();
    let yaml = serde_yaml::to_string(&all).unwrap();
    assert_eq!(serde_yaml::from_str::<AllCurves>(&yaml).unwrap(), all);
}

/// Timing of one wide search (141 candidates, bin 250, SIDE_BINS 8192) on the §9-F histogram:
/// `cargo test --release --lib calib::spec_tests::timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_wide_search() {
    let c = formula_f();
    let wide = SearchParams {
        algo: QuantizeAlgo::NonOffset,
        bin: 250,
        start_ratio: 0.3,
        end_ratio: 1.7,
        max_percentile: 0.99999,
        ..SearchParams::default()
    };
    let half = SearchParams {
        algo: QuantizeAlgo::HalfOffset,
        ..wide
    };
    let g = formula_g();
    for (name, coll, p) in [("NON_OFFSET/F", &c, wide), ("HALF_OFFSET/G", &g, half)] {
        let model = TensorModel::new(coll);
        let t0 = std::time::Instant::now();
        let reps = 20;
        for _ in 0..reps {
            std::hint::black_box(calibrate_model(&model, &p).unwrap());
        }
        let one = t0.elapsed() / reps;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(divergence_curves(coll, &p).unwrap());
        }
        let all = t0.elapsed() / reps;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            std::hint::black_box(TensorModel::new(coll));
        }
        let setup = t0.elapsed() / reps;
        eprintln!("{name}: one search {one:?}, all three curves {all:?}, model setup {setup:?}");
    }
    let data: Vec<f32> = (0..4_000_000)
        .map(|i| ((i as f32) * 0.618).sin() * 2.0)
        .collect();
    let mut col = Collector::new();
    let t0 = std::time::Instant::now();
    for b in data.chunks(100_000) {
        col.update(b);
    }
    let dt = t0.elapsed();
    eprintln!(
        "update: {:.2} ns/value",
        dt.as_nanos() as f64 / data.len() as f64
    );
}
