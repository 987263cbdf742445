//! Hand-computed values (each also checked against ONNX Runtime 1.x when written).

use ndarray::{ArrayD, IxDyn};

use super::*;

fn gran(axis: i64, block_size: i64) -> Granularity {
    Granularity {
        axis,
        block_size,
        per_tensor_only: false,
    }
}

fn q(x: Tensor, s: Tensor, z: Option<Tensor>, axis: i64, block: i64) -> OpResult<Tensor> {
    let op = Quantize {
        gran: gran(axis, block),
        output_dtype: None,
    };
    Ok(op.run(&[Some(&x), Some(&s), z.as_ref()])?.remove(0))
}

fn dq(x: Tensor, s: Tensor, z: Option<Tensor>, axis: i64) -> OpResult<Tensor> {
    Ok(Dequantize {
        gran: gran(axis, 0),
    }
    .run(&[Some(&x), Some(&s), z.as_ref()])?
    .remove(0))
}

fn u8s(shape: &[usize], v: Vec<u8>) -> Tensor {
    Tensor::U8(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

fn i8s(shape: &[usize], v: Vec<i8>) -> Tensor {
    Tensor::I8(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
}

#[test]
fn per_tensor_uint8_saturates() {
    // The ONNX example: x / 2 + 128.
    let x = Tensor::from_f32(&[6], vec![0.0, 2.0, 3.0, 1000.0, -254.0, -1000.0]);
    let y = q(x, Tensor::scalar_f32(2.0), Some(u8s(&[], vec![128])), 1, 0).unwrap();
    assert_eq!(y, u8s(&[6], vec![128, 129, 130, 255, 1, 0]));
}

#[test]
fn rounds_half_to_even_and_maps_nan_to_the_minimum() {
    let x = Tensor::from_f32(
        &[9],
        vec![0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1000.0, -1000.0, f32::NAN],
    );
    let y = q(
        x.clone(),
        Tensor::scalar_f32(1.0),
        Some(i8s(&[], vec![0])),
        1,
        0,
    )
    .unwrap();
    assert_eq!(y, i8s(&[9], vec![0, 2, 2, 0, -2, -2, 127, -128, -128]));
    let y = q(x, Tensor::scalar_f32(1.0), Some(u8s(&[], vec![10])), 1, 0).unwrap();
    assert_eq!(y, u8s(&[9], vec![10, 12, 12, 10, 8, 8, 255, 0, 0]));
}

#[test]
fn divides_instead_of_multiplying_by_the_reciprocal() {
    // 4.9677525 / 0.109181374 is exactly 45.5 in float32 (→ 46); times 1/scale gives 45.499996.
    let x = Tensor::from_f32(
        &[4],
        vec![4.967_752_5, -0.425_648_5, 0.098_105_06, -2.534_638_6],
    );
    let y = q(
        x.clone(),
        Tensor::scalar_f32(0.109_181_374),
        Some(i8s(&[], vec![0])),
        1,
        0,
    )
    .unwrap();
    assert_eq!(y, i8s(&[4], vec![46, -4, 1, -23]));
    let y = q(
        x,
        Tensor::scalar_f32(0.009_153_731),
        Some(i8s(&[], vec![0])),
        1,
        0,
    )
    .unwrap();
    assert_eq!(y, i8s(&[4], vec![127, -46, 11, -128]));
}

#[test]
fn zero_point_absent_means_uint8_zero() {
    let x = Tensor::from_f32(&[3], vec![-1.0, 0.6, 300.0]);
    assert_eq!(
        q(x, Tensor::scalar_f32(1.0), None, 1, 0).unwrap(),
        u8s(&[3], vec![0, 1, 255])
    );
}

#[test]
fn per_axis_rows_and_columns() {
    // [2, 3, 2] along axis 1: scales 1, 2, 4 with zero points 0, 1, 2.
    let x = Tensor::from_f32(
        &[2, 3, 2],
        vec![1.0, 2.0, 3.0, 5.0, 4.0, 10.0, -1.0, 0.4, 9.0, 1.0, 2.0, 6.0],
    );
    let (s, z) = (
        Tensor::from_f32(&[3], vec![1.0, 2.0, 4.0]),
        u8s(&[3], vec![0, 1, 2]),
    );
    let y = q(x, s.clone(), Some(z.clone()), 1, 0).unwrap();
    assert_eq!(y, u8s(&[2, 3, 2], vec![1, 2, 3, 3, 3, 4, 0, 0, 5, 1, 2, 4]));
    // The last axis (inner rows of one element): x of shape [2, 3].
    let x = Tensor::from_f32(&[2, 3], vec![1.0, 3.0, 10.0, 2.0, 2.0, -8.0]);
    let y = q(x, s, Some(z), -1, 0).unwrap();
    assert_eq!(y, u8s(&[2, 3], vec![1, 3, 4, 2, 2, 0]));
}

#[test]
fn blocked_along_an_axis() {
    let x = Tensor::from_f32(&[2, 4], (0..8).map(|v| v as f32 * 1.3).collect());
    let s = Tensor::from_f32(&[2, 2], vec![2.0, 0.5, 1.0, 4.0]);
    let z = u8s(&[2, 2], vec![0, 1, 2, 3]);
    let y = q(x.clone(), s.clone(), Some(z.clone()), 1, 2).unwrap();
    assert_eq!(y, u8s(&[2, 4], vec![0, 1, 6, 9, 7, 8, 5, 5]));
    // The same blocks seen with an inner dim: x [2, 4, 1], scales [2, 2, 1].
    let x3 = x.clone().reshaped(&[2, 4, 1]).unwrap();
    let y3 = q(
        x3,
        s.clone().reshaped(&[2, 2, 1]).unwrap(),
        Some(z.clone().reshaped(&[2, 2, 1]).unwrap()),
        1,
        2,
    );
    assert_eq!(y3.unwrap().to_f64_vec(), y.to_f64_vec());
    // Blocks of 3 also need 2 scales per row (the last block is short).
    let y = q(x.clone(), s.clone(), Some(z.clone()), 1, 3).unwrap();
    assert_eq!(y, u8s(&[2, 4], vec![0, 1, 1, 9, 7, 8, 10, 5]));
    // Without block_size the 2-D scale is an error, as is a wrong block count.
    assert!(q(x.clone(), s.clone(), Some(z.clone()), 1, 0).is_err());
    assert!(q(x, s, Some(z), 1, 4).is_err());
}

#[test]
fn dequantize_per_tensor_axis_and_int32() {
    let y = dq(
        u8s(&[4], vec![0, 3, 128, 255]),
        Tensor::scalar_f32(2.0),
        Some(u8s(&[], vec![128])),
        1,
    )
    .unwrap();
    assert_eq!(y.to_f64_vec(), vec![-256.0, -250.0, 0.0, 254.0]);
    let x = i8s(&[1, 2, 2], vec![-128, 127, 5, -5]);
    let y = dq(
        x,
        Tensor::from_f32(&[2], vec![0.5, 0.25]),
        Some(i8s(&[2], vec![0, -1])),
        1,
    )
    .unwrap();
    assert_eq!(y.to_f64_vec(), vec![-64.0, 63.5, 1.5, -1.0]);
    let bias = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![-1_000_000, 7]).unwrap());
    let y = dq(bias, Tensor::from_f32(&[2], vec![0.001, 0.5]), None, 0).unwrap();
    assert_eq!(y, Tensor::from_f32(&[2], vec![-1_000_000.0 * 0.001, 3.5]));
}

#[test]
fn quantize_dequantize_round_trip() {
    let x = Tensor::from_f32(&[5], vec![-1.0, -0.26, 0.0, 0.74, 3.0]);
    let (s, z) = (Tensor::scalar_f32(0.5), u8s(&[], vec![3]));
    let qx = q(x, s.clone(), Some(z.clone()), 1, 0).unwrap();
    assert_eq!(qx, u8s(&[5], vec![1, 2, 3, 4, 9]));
    assert_eq!(
        dq(qx, s, Some(z), 1).unwrap().to_f64_vec(),
        vec![-1.0, -0.5, 0.0, 0.5, 3.0]
    );
}

#[test]
fn mismatches_are_errors() {
    let x = Tensor::from_f32(&[2, 3], vec![0.0; 6]);
    assert!(q(x.clone(), Tensor::from_f32(&[2], vec![1.0; 2]), None, 1, 0).is_err());
    assert!(
        q(
            x.clone(),
            Tensor::scalar_f32(1.0),
            Some(u8s(&[2], vec![0; 2])),
            1,
            0
        )
        .is_err()
    );
    assert!(q(x.clone(), Tensor::from_f32(&[3], vec![1.0; 3]), None, 2, 0).is_err());
    let op = Quantize {
        gran: gran(1, 0),
        output_dtype: Some(DType::I8),
    };
    let (s, z) = (Tensor::scalar_f32(1.0), u8s(&[], vec![0]));
    assert!(op.run(&[Some(&x), Some(&s), Some(&z)]).is_err());
    assert_eq!(
        op.run(&[Some(&x), Some(&s), None]).unwrap()[0].dtype(),
        DType::I8
    );
    let old = Quantize {
        gran: Granularity {
            axis: 1,
            block_size: 0,
            per_tensor_only: true,
        },
        output_dtype: None,
    };
    assert!(
        old.run(&[Some(&x), Some(&Tensor::from_f32(&[3], vec![1.0; 3])), None])
            .is_err()
    );
    assert!(
        dq(
            u8s(&[2], vec![0, 1]),
            Tensor::scalar_f32(1.0),
            Some(i8s(&[], vec![0])),
            1
        )
        .is_err()
    );
}

#[test]
fn large_tensors_match_the_scalar_definition() {
    let n = 1 << 17;
    let xs: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.37 - 185.0)
        .collect();
    let x = Tensor::from_f32(&[4, 8, n / 32], xs.clone());
    let s: Vec<f32> = (0..8).map(|c| 0.1 + c as f32 * 0.05).collect();
    let z: Vec<u8> = (0..8).map(|c| 120 + c as u8).collect();
    let y = q(
        x,
        Tensor::from_f32(&[8], s.clone()),
        Some(u8s(&[8], z.clone())),
        1,
        0,
    )
    .unwrap();
    let got = y.to_f64_vec();
    for (i, &v) in xs.iter().enumerate() {
        let c = (i / (n / 32)) % 8;
        let want = ((v / s[c]).round_ties_even() + z[c] as f32).clamp(0.0, 255.0);
        assert_eq!(got[i], want as f64, "element {i}");
    }
}
