use super::super::divergence::pq_for_range;
use super::super::histogram::{Collector, RawHistogram};
use super::*;

/// §9-A: candidate counts, inclusive end up to rounding, no clamping of the last ratio.
#[test]
fn spec_a_candidates() {
    let r = candidate_ratios(0.7, 1.3, 0.01).unwrap();
    assert_eq!(r.len(), 61);
    assert_eq!(r[0], 0.7);
    assert_eq!(r[60], 1.2999999999999998);
    let r = candidate_ratios(0.3, 1.7, 0.01).unwrap();
    assert_eq!(r.len(), 141);
    assert_eq!((r[0], r[140]), (0.3, 1.7000000000000002));
    assert_eq!(
        candidate_ratios(0.7, 1.3, 0.25).unwrap(),
        vec![0.7, 0.95, 1.2]
    );
    assert_eq!(candidate_ratios(1.0, 1.0, 0.01).unwrap(), vec![1.0]);
    assert!(matches!(
        candidate_ratios(1.0, 0.5, 0.01),
        Err(CalibError::InvalidParam {
            key: "end_ratio",
            ..
        })
    ));
    assert!(candidate_ratios(0.1, 1e6, 1e-3).is_err());
}

#[test]
fn selection_rules() {
    // exactly representable ratios, so that |r − 1| ties exactly
    let r = [0.5, 0.75, 1.0, 1.25, 1.5];
    // plain minimum
    assert_eq!(select(&r, &[5.0, 4.0, 3.0, 2.0, 2.5]), 3);
    // exact ties: closest to 1, then the larger ratio
    assert_eq!(select(&r, &[1.0, 1.0, 2.0, 1.0, 1.0]), 3);
    assert_eq!(select(&r, &[1.0, 2.0, 2.0, 2.0, 1.0]), 4);
    assert_eq!(select(&r, &[3.0, 1.0, 1.0, 1.0, 1.0]), 2);
    // within TIE_REL of the minimum counts as a tie; beyond it does not
    assert_eq!(select(&r, &[1.0, 1.0 + 0.5e-9, 9.0, 9.0, 9.0]), 1);
    assert_eq!(select(&r, &[1.0, 1.0 + 2e-9, 9.0, 9.0, 9.0]), 0);
    // TIE_ABS matters only near zero
    assert_eq!(select(&r, &[0.0, 0.5e-15, 9.0, 9.0, 9.0]), 1);
    // infinities are ignored; all infinite → the last candidate
    assert_eq!(
        select(&r, &[f64::INFINITY, 2.0, f64::INFINITY, 3.0, f64::INFINITY]),
        1
    );
    assert_eq!(select(&r, &[f64::INFINITY; 5]), 4);
    assert_eq!(select(&[], &[]), 0);
}

#[test]
fn boundary_flag() {
    let res = |chosen, n| SearchResult {
        base: Base::Symmetric(1.0),
        ratios: vec![1.0; n],
        ranges: vec![(0.0, 1.0); n],
        divergences: vec![0.0; n],
        chosen,
    };
    assert!(res(0, 3).boundary_hit());
    assert!(res(2, 3).boundary_hit());
    assert!(!res(1, 3).boundary_hit());
    // a single candidate is not a boundary hit
    assert!(!res(0, 1).boundary_hit());
}

#[test]
fn snapping_puts_zero_on_a_cell_edge() {
    let (lo, hi) = snap(-0.19482421875, 2.69775390625, 150);
    let c = (hi - lo) / 150.0;
    let k = lo / c;
    assert!((k - k.round()).abs() < 1e-9, "{k}");
    assert!((hi - lo - (2.69775390625 + 0.19482421875)).abs() < 1e-12);
    // an exact case: [−1.5, 2.5] in 4 cells of 1 → k = rhe(−1.5) = −2 → [−2, 2]
    assert_eq!(snap(-1.5, 2.5, 4), (-2.0, 2.0));
    assert_eq!(snap(-0.5, 3.5, 4), (-0.0, 4.0));
}

fn skewed_model() -> TensorModel {
    // a two-sided histogram with a gap and an outlier (w = 1/16, R = 4)
    let mut pos = vec![0u64; 64];
    let mut neg = vec![0u64; 64];
    for (b, c) in pos.iter_mut().enumerate().take(40) {
        *c = 1000 / (b as u64 + 1);
    }
    for (b, c) in neg.iter_mut().enumerate().take(12) {
        *c = 300 - 20 * b as u64;
    }
    pos[61] = 2;
    let c = Collector::from_raw(RawHistogram {
        pos,
        neg,
        range: Some(4.0),
        zero: 500,
        nan: 0,
        inf: 0,
        min: -0.7,
        max: 3.86,
    })
    .unwrap();
    TensorModel::new(&c)
}

/// The cached grid gives bit-identical P and Q to a direct evaluation at every edge.
#[test]
fn grid_cache_matches_direct_evaluation() {
    let model = skewed_model();
    for algo in QuantizeAlgo::ALL {
        let params = SearchParams {
            algo,
            bin: 7,
            start_ratio: 0.3,
            end_ratio: 1.7,
            step_ratio: 0.05,
            max_percentile: 0.999,
            ..SearchParams::default()
        };
        let Prepared::Search(s) = prepare(&model, &params).unwrap() else {
            panic!("expected a search");
        };
        for i in 0..s.ratios().len() {
            let (lo, hi) = s.pq_ranges[i];
            let naive = |t| cdf(&model, algo, t);
            let direct =
                pq_for_range(naive, model.nonzero as f64, lo, hi, s.grid_step(), 7).unwrap();
            assert_eq!(s.pq(i).unwrap(), direct, "{algo} candidate {i}");
        }
        assert!(s.pq(s.ratios().len()).is_none());
        // every curve of `curves` equals the single-type curve
        let all = s.curves();
        for kind in DivergenceType::ALL {
            let one = s.curve(kind);
            for (a, b) in all[kind.index()].iter().zip(&one) {
                assert!((a - b).abs() <= 1e-12 * b.abs(), "{kind}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn candidates_are_clamped_to_the_extremes() {
    let model = skewed_model();
    let params = SearchParams {
        algo: QuantizeAlgo::HalfOffset,
        start_ratio: 0.5,
        end_ratio: 3.0,
        step_ratio: 0.5,
        ..SearchParams::default()
    };
    let Prepared::Search(s) = prepare(&model, &params).unwrap() else {
        panic!("expected a search");
    };
    let Base::Asymmetric { min, max } = s.base() else {
        panic!("asymmetric base expected");
    };
    assert_eq!((min, max), (-0.7, 3.86));
    for &(lo, hi) in s.ranges() {
        assert!(
            lo >= -0.7 && hi <= 3.86 && lo < 0.0 && hi > 0.0,
            "{lo} {hi}"
        );
    }
    assert_eq!(s.ranges()[5], (-0.7, 3.86));
    let r = s.run(DivergenceType::Kl);
    // candidates 2.. are all clamped to the extremes: identical divergences
    assert!(r.divergences[2..].iter().all(|&d| d == r.divergences[2]));
    let g = s.grid_step();
    assert!((g - (3.86 + 0.7) / (PB as f64 * 150.0)).abs() < 1e-15);
}

#[test]
fn degenerate_cases_and_errors() {
    let mut c = Collector::new();
    c.update(&[f32::NAN, f32::INFINITY]);
    let m = TensorModel::new(&c);
    assert_eq!(
        prepare(&m, &SearchParams::default()).unwrap_err(),
        CalibError::NoFiniteValues { nan: 1, inf: 1 }
    );
    c.update(&[0.0]);
    let m = TensorModel::new(&c);
    assert!(matches!(
        prepare(&m, &SearchParams::default()),
        Ok(Prepared::AllZero)
    ));
    let bad = SearchParams {
        bin: 1,
        ..SearchParams::default()
    };
    assert!(matches!(
        prepare(&m, &bad),
        Err(CalibError::InvalidParam { key: "bin", .. })
    ));
    // a tiny percentile base far below an outlier needs too many grid points
    let mut pos = vec![0u64; 64];
    pos[0] = 1_000_000;
    pos[63] = 5;
    let c = Collector::from_raw(RawHistogram {
        pos,
        neg: vec![0; 64],
        range: Some(4.0),
        zero: 0,
        nan: 0,
        inf: 0,
        min: 0.001,
        max: 3.95,
    })
    .unwrap();
    let model = TensorModel::new(&c);
    let huge = SearchParams {
        algo: QuantizeAlgo::NonOffset,
        bin: 4096,
        max_percentile: 0.5,
        start_ratio: 1.0,
        end_ratio: 1000.0,
        step_ratio: 100.0,
        ..SearchParams::default()
    };
    assert!(matches!(
        prepare(&model, &huge),
        Err(CalibError::GridTooLarge { .. })
    ));
    // the same tensor with a sane end ratio is fine
    let sane = SearchParams {
        end_ratio: 2.0,
        step_ratio: 0.5,
        ..huge
    };
    assert!(matches!(prepare(&model, &sane), Ok(Prepared::Search(_))));
}
