//! ReduceLogSumExp as the ONNX reference computes it: shifted by the maximum of the
//! finite values of each reduced set, so large inputs do not overflow (`ln Σ e^(x−m) + m`).

use super::super::elementwise::scalar::Num;

/// For each element of `shape` (row-major), the index of its output value when the
/// dims flagged in `mask` are reduced.
pub(super) fn out_index(shape: &[usize], mask: &[bool]) -> Vec<usize> {
    let mut ostride = vec![0; shape.len()];
    let mut acc = 1;
    for d in (0..shape.len()).rev() {
        if !mask[d] {
            ostride[d] = acc;
            acc *= shape[d];
        }
    }
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let (mut idx, mut o) = (vec![0; shape.len()], 0);
    for _ in 0..n {
        out.push(o);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            o += ostride[d];
            if idx[d] < shape[d] {
                break;
            }
            o -= ostride[d] * shape[d];
            idx[d] = 0;
        }
    }
    out
}

/// `ln Σ eˣ` over the dims flagged in `mask`, in row-major order of the kept dims; −∞
/// for an empty set.
pub(super) fn log_sum_exp<T: Num>(
    x: &[T],
    shape: &[usize],
    mask: &[bool],
    out_len: usize,
) -> Vec<T> {
    let at = out_index(shape, mask);
    let mut m = vec![f64::NEG_INFINITY; out_len];
    for (&o, &v) in at.iter().zip(x) {
        let v = v.to_f64();
        if v.is_finite() && v > m[o] {
            m[o] = v;
        }
    }
    for v in &mut m {
        if v.is_infinite() {
            *v = 0.0;
        }
    }
    let mut s = vec![0.0f64; out_len];
    for (&o, &v) in at.iter().zip(x) {
        s[o] += (v.to_f64() - m[o]).exp();
    }
    s.iter()
        .zip(&m)
        .map(|(&s, &m)| T::from_f64(s.ln() + m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_is_shifted() {
        let x = [1000.0f32, 1000.0, 1.0, 2.0];
        let y = log_sum_exp(&x, &[2, 2], &[false, true], 2);
        assert!((y[0] - (1000.0 + 2f32.ln())).abs() < 1e-3);
        assert!((y[1] - (2.0 + (1.0 + (-1f32).exp()).ln())).abs() < 1e-5);
        let e = log_sum_exp::<f32>(&[], &[2, 0], &[false, true], 2);
        assert_eq!(e, vec![f32::NEG_INFINITY; 2]);
        assert_eq!(out_index(&[2, 3], &[true, false]), vec![0, 1, 2, 0, 1, 2]);
    }
}
