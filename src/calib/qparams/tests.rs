use super::*;

/// §9-I: half-to-even rounding, clamping, and the scale/offset of two ranges.
#[test]
fn spec_i_rounding() {
    let x = [0.25f32, 0.75, -0.25, 1.25, 200.0, -100.0];
    let u8q = ActivationQuant {
        algo: QuantizeAlgo::HalfOffset,
        scale: 0.5,
        offset: -10,
    };
    let got: Vec<i32> = x.iter().map(|&v| u8q.quantize(v)).collect();
    assert_eq!(got, [10, 12, 10, 12, 255, 0]);
    let i8q = ActivationQuant {
        algo: QuantizeAlgo::NonOffset,
        scale: 0.5,
        offset: 0,
    };
    let got: Vec<i32> = x.iter().map(|&v| i8q.quantize(v)).collect();
    assert_eq!(got, [0, 2, 0, 2, 127, -128]);

    let q = ActivationQuant::from_range(QuantizeAlgo::HalfOffset, -1.0, 3.0);
    assert_eq!(q.scale, 0.01568627543747425f64 as f32);
    assert_eq!((q.offset, q.zero_point(), q.amct_offset()), (-64, 64, -64));
    let got: Vec<i32> = [-1.0f32, 0.0, 3.0].iter().map(|&v| q.quantize(v)).collect();
    assert_eq!(got, [0, 64, 255]);

    let q = ActivationQuant::from_range(QuantizeAlgo::NonOffset, -6.0, 6.0);
    assert_eq!(q.scale, 0.04724409431219101f64 as f32);
    assert_eq!((q.offset, q.zero_point()), (0, 0));
    let got: Vec<i32> = [-6.0f32, -6.1, 6.0]
        .iter()
        .map(|&v| q.quantize(v))
        .collect();
    assert_eq!(got, [-127, -128, 127]);
    // NON_OFFSET takes T = max(|lo|, |hi|)
    assert_eq!(
        ActivationQuant::from_range(QuantizeAlgo::NonOffset, 0.0, 6.0),
        q
    );
}

#[test]
fn scale_offset_edge_cases() {
    for algo in QuantizeAlgo::ALL {
        // zero range, subnormal scale, NaN: scale 1.0, offset 0
        for (lo, hi) in [(0.0, 0.0), (-1e-40, 1e-40), (f64::NAN, 1.0)] {
            let q = ActivationQuant::from_range(algo, lo, hi);
            assert_eq!((q.scale, q.offset), (1.0, 0), "{algo} [{lo}, {hi}]");
        }
    }
    // the offset is clamped to [−255, 0]
    let q = ActivationQuant::from_range(QuantizeAlgo::HalfOffset, 0.5, 1.0);
    assert_eq!(q.offset, 0);
    let q = ActivationQuant::from_range(QuantizeAlgo::HalfOffset, -3.0, 0.0);
    assert_eq!((q.offset, q.zero_point()), (-255, 255));
    assert_eq!(q.quantize(0.0), 255);
    assert_eq!(q.quantize(-3.0), 0);
    assert_eq!(q.quantize(f32::NAN), 255);
    // grid values survive a fake-quantization round trip exactly
    let q = ActivationQuant::from_range(QuantizeAlgo::HalfOffset, -1.0, 3.0);
    for k in 0..=255 {
        let x = q.dequantize(k);
        assert_eq!(q.quantize(x), k);
        assert_eq!(q.fake_quant(x), x);
    }
    assert_eq!(q.q_bounds(), (0, 255));
    assert_eq!(q.fake_quant(1e9), q.dequantize(255));
}

/// §9-J: Conv weights per channel (with an all-zero channel) and per tensor; the axis rules.
#[test]
fn spec_j_weights() {
    let w = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0];
    let shape = [2, 1, 1, 3];
    let v = weight_quant(&w, &shape, WeightLayout::Conv, WeightType::Vector).unwrap();
    assert_eq!(v.axis, Some(0));
    assert_eq!(v.scales, [0.007874015718698502f64 as f32, 1.0]);
    let q = quantize_weights(&w, &shape, &v).unwrap();
    assert_eq!(q, [64, -127, 32, 0, 0, 0]);
    let s = weight_quant(&w, &shape, WeightLayout::Conv, WeightType::Scalar).unwrap();
    assert_eq!(s.axis, None);
    assert_eq!(s.scales, [0.007874015718698502f64 as f32]);

    assert_eq!(WeightLayout::Conv.channel_axis(4), Some(0));
    assert_eq!(
        WeightLayout::ConvTranspose { group: 1 }.channel_axis(4),
        Some(1)
    );
    assert_eq!(
        WeightLayout::Gemm { trans_b: false }.channel_axis(2),
        Some(1)
    );
    assert_eq!(
        WeightLayout::Gemm { trans_b: true }.channel_axis(2),
        Some(0)
    );
    assert_eq!(WeightLayout::MatMulB.channel_axis(2), Some(1));
    assert_eq!(WeightLayout::MatMulB.channel_axis(3), Some(2));
    assert_eq!(WeightLayout::MatMulB.channel_axis(1), None);
    assert_eq!(WeightLayout::PerTensor.channel_axis(4), None);
    assert_eq!(
        WeightLayout::ConvTranspose { group: 1 }.channel_axis(1),
        None
    );
}

#[test]
fn per_channel_along_inner_axes() {
    // Gemm B[K=2, N=3] with transB = 0: one scale per column
    let b = [1.0f32, -2.0, 0.5, -3.0, 1.0, 0.25];
    let wq = weight_quant(
        &b,
        &[2, 3],
        WeightLayout::Gemm { trans_b: false },
        WeightType::Vector,
    )
    .unwrap();
    assert_eq!(wq.axis, Some(1));
    let want = [3.0f64, 2.0, 0.5].map(|m| (m / 127.0) as f32);
    assert_eq!(wq.scales, want);
    let q = quantize_weights(&b, &[2, 3], &wq).unwrap();
    assert_eq!(q, [42, -127, 127, -127, 64, 64]);
    // ConvTranspose W[C=2, M/g=2, 1, 1] with group 2: scales along axis 1 ...
    let w = [1.0f32, 0.5, -4.0, 0.25];
    let wq = weight_quant(
        &w,
        &[2, 2, 1, 1],
        WeightLayout::ConvTranspose { group: 2 },
        WeightType::Vector,
    )
    .unwrap();
    assert_eq!(wq.axis, Some(1));
    assert_eq!(
        wq.scales,
        [(4.0f64 / 127.0) as f32, (0.5f64 / 127.0) as f32]
    );
    // ... and the M = 4 output channels share them by in-group index
    let bs = bias_scales(0.5, &wq.scales, 4).unwrap();
    assert_eq!(
        bs,
        [
            0.5 * wq.scales[0],
            0.5 * wq.scales[1],
            0.5 * wq.scales[0],
            0.5 * wq.scales[1]
        ]
    );
}

#[test]
fn bias_is_int32_with_f32_scale_product() {
    let sx = 0.02f32;
    let sw = [0.003f32, 0.5];
    let (q, s) = quantize_bias(&[1.0, -2.5], sx, &sw).unwrap();
    assert_eq!(s, [sx * sw[0], sx * sw[1]]);
    assert_eq!(q[0], (1.0f64 / f64::from(s[0])).round_ties_even() as i32);
    assert_eq!(q[1], -250);
    // per-tensor weight scale broadcasts; huge values clamp
    let (q, _) = quantize_bias(&[1e30, -1e30, 0.0], 1e-3, &[1e-3]).unwrap();
    assert_eq!(q, [i32::MAX, i32::MIN, 0]);
    // half to even at an exact tie: 2.5 → 2, 3.5 → 4
    let (q, _) = quantize_bias(&[2.5, 3.5], 1.0, &[1.0]).unwrap();
    assert_eq!(q, [2, 4]);
    assert!(matches!(
        quantize_bias(&[1.0, 2.0, 3.0], 1.0, &[1.0, 1.0]),
        Err(CalibError::ChannelMismatch {
            what: "bias",
            channels: 3,
            scales: 2
        })
    ));
    assert!(matches!(
        quantize_bias(&[f32::NAN], 1.0, &[1.0]),
        Err(CalibError::NonFinite {
            what: "bias",
            index: 0,
            ..
        })
    ));
    assert!(bias_scales(1.0, &[], 2).is_err());
}

#[test]
fn weight_errors() {
    assert!(matches!(
        weight_scales(&[1.0, 2.0, 3.0], &[2, 2], None),
        Err(CalibError::WeightShape {
            expected: 4,
            actual: 3,
            ..
        })
    ));
    assert!(matches!(
        weight_scales(&[1.0, 2.0], &[2], Some(1)),
        Err(CalibError::AxisOutOfRange { axis: 1, rank: 1 })
    ));
    assert!(matches!(
        weight_scales(&[1.0, f32::INFINITY], &[2], None),
        Err(CalibError::NonFinite {
            what: "weight",
            index: 1,
            ..
        })
    ));
    assert!(matches!(
        weight_scales(&[1.0; 4], &[usize::MAX, 2], None),
        Err(CalibError::WeightShape { .. })
    ));
    let wq = WeightQuant {
        axis: Some(0),
        scales: vec![1.0],
    };
    assert!(matches!(
        quantize_weights(&[1.0, 2.0], &[2], &wq),
        Err(CalibError::ChannelMismatch { what: "weight", .. })
    ));
    // empty tensors are fine
    assert_eq!(weight_scales(&[], &[0, 3], Some(1)).unwrap(), [1.0; 3]);
    assert_eq!(
        quantize_weights(
            &[],
            &[0, 3],
            &WeightQuant {
                axis: Some(1),
                scales: vec![1.0; 3]
            }
        )
        .unwrap(),
        Vec::<i8>::new()
    );
}
