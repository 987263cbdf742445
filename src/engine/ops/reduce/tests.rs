//! Tests of the reduction kernel and ops.

use super::*;

/// Naive reference: visit every element, compute its output index.
fn naive(x: &[f64], shape: &[usize], mask: &[bool]) -> Vec<f64> {
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect();
    let mut out = vec![0.0; out_shape.iter().product()];
    for (i, &v) in x.iter().enumerate() {
        let (mut rem, mut o, mut stride) = (i, 0, 1);
        for d in (0..shape.len()).rev() {
            let idx = rem % shape[d];
            rem /= shape[d];
            if !mask[d] {
                o += idx * stride;
            }
            stride *= out_shape[d];
        }
        out[o] += v;
    }
    out
}

#[test]
fn every_axis_pattern_matches_the_naive_sum() {
    let shape = [3usize, 4, 1, 5, 2];
    let n: usize = shape.iter().product();
    let x: Vec<f64> = (0..n).map(|v| (v * 7 % 11) as f64).collect();
    for bits in 0..32u32 {
        let mask: Vec<bool> = (0..5).map(|i| bits & (1 << i) != 0).collect();
        let got = reduce::<f64>(Reduction::Sum, &x, &shape, &mask);
        assert_eq!(got, naive(&x, &shape, &mask), "mask {mask:?}");
    }
}

#[test]
fn empty_sets_give_identities() {
    let shape = [2usize, 0, 4];
    let mask = [false, true, false];
    assert_eq!(
        reduce::<f32>(Reduction::Max, &[], &shape, &mask),
        vec![f32::NEG_INFINITY; 8]
    );
    assert_eq!(
        reduce::<f32>(Reduction::Min, &[], &shape, &mask),
        vec![f32::INFINITY; 8]
    );
    assert_eq!(
        reduce::<f32>(Reduction::Sum, &[], &shape, &mask),
        vec![0.0; 8]
    );
    assert!(
        reduce::<f32>(Reduction::Mean, &[], &shape, &mask)
            .iter()
            .all(|v| v.is_nan())
    );
    assert_eq!(
        reduce::<i32>(Reduction::Max, &[], &shape, &mask),
        vec![i32::MIN; 8]
    );
}

#[test]
fn runtime_axes_and_noop() {
    let op = Reduce {
        kind: Reduction::Mean,
        axes: Axes::Input(None),
        keepdims: false,
        noop_with_empty_axes: true,
    };
    let x = Tensor::from_f32(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let axes = Tensor::from_i64(&[1], vec![-1]);
    let y = op.run(&[Some(&x), Some(&axes)]).unwrap().remove(0);
    assert_eq!((y.shape(), y.to_f64_vec()), (&[2usize][..], vec![2.0, 5.0]));
    let none = Tensor::from_i64(&[0], vec![]);
    assert_eq!(op.run(&[Some(&x), Some(&none)]).unwrap()[0], x);
    let bad = Tensor::from_i64(&[1], vec![2]);
    assert!(op.run(&[Some(&x), Some(&bad)]).is_err());
}

#[test]
fn large_reductions_agree_with_sequential() {
    let shape = [64usize, 1024];
    let x: Vec<f32> = (0..64 * 1024).map(|v| (v % 13) as f32).collect();
    for mask in [[false, true], [true, false]] {
        let got = reduce::<f32>(Reduction::Sum, &x, &shape, &mask);
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want: Vec<f32> = naive(&xs, &shape, &mask)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        assert_eq!(got, want);
    }
}
