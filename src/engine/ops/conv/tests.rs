//! Every Conv path (pointwise, shifted, im2col, N-D, depthwise) against a naive reference.

use super::*;
use crate::engine::kernels::epilogue::Step;
use crate::engine::kernels::with_isa;

struct Case {
    x: Vec<usize>,
    w: Vec<usize>,
    group: usize,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

/// Direct N-D convolution in f64.
fn reference(c: &Case, x: &[f32], w: &[f32], b: &[f32], out: &[usize]) -> Vec<f32> {
    let r = c.x.len() - 2;
    let (cin, m) = (c.x[1], c.w[0]);
    let (cg, mg) = (cin / c.group, m / c.group);
    let osp: usize = out[2..].iter().product();
    let taps: usize = c.w[2..].iter().product();
    let isp: usize = c.x[2..].iter().product();
    let mut y = vec![0f32; out.iter().product()];
    for n in 0..c.x[0] {
        for oc in 0..m {
            let g = oc / mg;
            for o in 0..osp {
                let mut oi = vec![0; r];
                let mut rem = o;
                for a in (0..r).rev() {
                    oi[a] = rem % out[2 + a];
                    rem /= out[2 + a];
                }
                let mut s = b[oc] as f64;
                for ci in 0..cg {
                    for t in 0..taps {
                        let mut rem = t;
                        let mut at = 0usize;
                        let mut inside = true;
                        for a in (0..r).rev() {
                            let k = rem % c.w[2 + a];
                            rem /= c.w[2 + a];
                            let pos = (oi[a] * c.strides[a] + k * c.dilations[a]) as isize
                                - c.pads[a] as isize;
                            if pos < 0 || pos >= c.x[2 + a] as isize {
                                inside = false;
                            }
                        }
                        if !inside {
                            continue;
                        }
                        let mut rem = t;
                        let mut idx = vec![0; r];
                        for a in (0..r).rev() {
                            let k = rem % c.w[2 + a];
                            rem /= c.w[2 + a];
                            idx[a] = (oi[a] * c.strides[a] + k * c.dilations[a]) - c.pads[a];
                        }
                        for a in 0..r {
                            at = at * c.x[2 + a] + idx[a];
                        }
                        let xv = x[(n * cin + g * cg + ci) * isp + at] as f64;
                        s += xv * w[(oc * cg + ci) * taps + t] as f64;
                    }
                }
                y[(n * m + oc) * osp + o] = s as f32;
            }
        }
    }
    y
}

fn check(c: Case, constant_w: bool) {
    let r = c.x.len() - 2;
    let xv = values(c.x.iter().product(), 1);
    let wv = values(c.w.iter().product(), 2);
    let bv = values(c.w[0], 3);
    let xt = Tensor::from_f32(&c.x, xv.clone());
    let wt = Tensor::from_f32(&c.w, wv.clone());
    let bt = Tensor::from_f32(&[c.w[0]], bv.clone());
    let mut pads = c.pads.clone();
    pads.extend(vec![1; r]);
    let attrs = ConvAttrs {
        auto_pad: geometry::AutoPad::NotSet,
        kernel: None,
        strides: Some(c.strides.clone()),
        dilations: Some(c.dilations.clone()),
        pads: Some(pads),
        group: c.group,
        output_padding: None,
        output_shape: None,
    };
    // The conv output is stored (an observed value) and then goes through a Relu.
    let chain = Chain {
        steps: vec![Step::Store(0), Step::Relu],
        slots: 0,
    };
    for isa in Isa::supported() {
        let (y, pre) = with_isa(isa, || {
            let weights = constant_w.then(|| Arc::new(Weights::new(&wt, c.group).unwrap()));
            let conv = Conv {
                attrs: attrs.clone(),
                weights,
                bias: None,
                chain: Arc::new(Chain::default()),
            };
            let fused = conv.with_epilogue(chain.clone()).unwrap();
            let mut y = fused.run(&[Some(&xt), Some(&wt), Some(&bt)]).unwrap();
            assert_eq!(y.len(), 2);
            let pre = y.remove(1);
            (y.remove(0), pre)
        });
        // End pads of 1 on every axis: the reference reads taps outside X as zero.
        let out: Vec<usize> = y.shape().to_vec();
        let want = reference(&c, &xv, &wv, &bv, &out);
        let got = y.into_f32().unwrap();
        let got = got.as_slice().unwrap();
        let pre = pre.into_f32().unwrap();
        let pre = pre.as_slice().unwrap();
        assert_eq!(got.len(), want.len(), "{:?} {:?}", c.x, c.w);
        for (i, ((g, p), w)) in got.iter().zip(pre).zip(&want).enumerate() {
            assert!(
                (p - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{isa} x{:?} w{:?} s{:?} [{i}]: {p} vs {w}",
                c.x,
                c.w,
                c.strides
            );
            assert_eq!(g.to_bits(), (if *p < 0.0 { 0.0 } else { *p }).to_bits());
        }
    }
}

fn case2d(x: [usize; 4], w: [usize; 4], group: usize, s: usize, d: usize, p: usize) -> Case {
    Case {
        x: x.to_vec(),
        w: w.to_vec(),
        group,
        strides: vec![s, s],
        dilations: vec![d, d],
        pads: vec![p, p],
    }
}

#[test]
fn every_2d_path_matches_the_reference() {
    let cases = [
        case2d([1, 5, 7, 37], [7, 5, 1, 1], 1, 1, 1, 0), // pointwise
        case2d([1, 5, 9, 9], [7, 5, 1, 1], 1, 2, 1, 0),  // 1×1 stride 2: im2col
        case2d([2, 6, 11, 40], [13, 6, 3, 3], 1, 1, 1, 1), // shifted
        case2d([1, 6, 11, 13], [8, 3, 3, 3], 2, 2, 1, 1), // grouped, strided: im2col
        case2d([1, 4, 12, 12], [5, 4, 3, 3], 1, 1, 2, 2), // dilated, shifted
        case2d([1, 4, 6, 5], [5, 4, 5, 5], 1, 1, 1, 2),  // too wide for shifted
        case2d([1, 8, 9, 45], [8, 1, 3, 3], 8, 1, 1, 1), // depthwise
        case2d([1, 8, 9, 45], [16, 1, 5, 5], 8, 2, 1, 2), // depthwise ×2, stride 2
        case2d([1, 3, 9, 70], [3, 1, 3, 3], 3, 1, 2, 1), // depthwise dilated, long rows
    ];
    for c in cases {
        check(c, true);
    }
    check(case2d([1, 6, 10, 10], [6, 3, 3, 3], 2, 1, 1, 1), false);
}

#[test]
fn one_and_three_d_match_the_reference() {
    let c = Case {
        x: vec![1, 3, 20],
        w: vec![4, 3, 3],
        group: 1,
        strides: vec![2],
        dilations: vec![1],
        pads: vec![1],
    };
    check(c, true);
    let c = Case {
        x: vec![1, 4, 20],
        w: vec![4, 1, 3],
        group: 4,
        strides: vec![1],
        dilations: vec![1],
        pads: vec![1],
    };
    check(c, true);
    let c = Case {
        x: vec![1, 2, 5, 6, 7],
        w: vec![3, 2, 3, 2, 3],
        group: 1,
        strides: vec![1, 2, 1],
        dilations: vec![1, 1, 2],
        pads: vec![1, 0, 2],
    };
    check(c, true);
}
