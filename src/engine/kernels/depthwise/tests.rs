//! The depthwise kernel against a direct f64 reference, on every ISA this CPU supports.

use super::*;

#[allow(clippy::too_many_arguments)]
fn plane(
    h: usize,
    w: usize,
    k: (usize, usize),
    s: (usize, usize),
    d: (usize, usize),
    pad: (isize, isize, usize, usize),
) -> Plane {
    let (pt, pl, pb, pr) = pad;
    let oh = (h + pt as usize + pb - (d.0 * (k.0 - 1) + 1)) / s.0 + 1;
    let ow = (w + pl as usize + pr - (d.1 * (k.1 - 1) + 1)) / s.1 + 1;
    Plane {
        h,
        w,
        kh: k.0,
        kw: k.1,
        sh: s.0,
        sw: s.1,
        dh: d.0,
        dw: d.1,
        pt,
        pl,
        oh,
        ow,
    }
}

fn reference(x: &[f32], p: &Plane, c: usize, mult: usize, w: &[f32], b: &[f32]) -> Vec<f64> {
    let taps = p.kh * p.kw;
    let mut y = vec![0.0f64; c * mult * p.oh * p.ow];
    for ci in 0..c {
        for m in 0..mult {
            let oc = ci * mult + m;
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let mut s = b[oc] as f64;
                    for ky in 0..p.kh {
                        for kx in 0..p.kw {
                            let iy = (oy * p.sh + ky * p.dh) as isize - p.pt;
                            let ix = (ox * p.sw + kx * p.dw) as isize - p.pl;
                            if iy >= 0 && ix >= 0 && (iy as usize) < p.h && (ix as usize) < p.w {
                                s += w[oc * taps + ky * p.kw + kx] as f64
                                    * x[ci * p.h * p.w + iy as usize * p.w + ix as usize] as f64;
                            }
                        }
                    }
                    y[(oc * p.oh + oy) * p.ow + ox] = s;
                }
            }
        }
    }
    y
}

#[test]
fn depthwise_matches_reference_on_awkward_sizes_on_every_isa() {
    let cases = [
        (3, 1, plane(1, 1, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0))),
        (5, 1, plane(7, 9, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1))),
        (2, 3, plane(6, 70, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1))),
        (4, 1, plane(12, 96, (5, 5), (2, 1), (1, 1), (2, 2, 2, 2))),
        (3, 2, plane(9, 17, (3, 5), (1, 3), (2, 1), (2, 1, 0, 3))),
        (1, 1, plane(4, 131, (1, 7), (1, 1), (1, 2), (0, 6, 0, 6))),
    ];
    for isa in Isa::supported() {
        for (c, mult, p) in &cases {
            let (c, mult) = (*c, *mult);
            let taps = p.kh * p.kw;
            let x: Vec<f32> = (0..c * p.h * p.w)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.02)
                .collect();
            let w: Vec<f32> = (0..c * mult * taps)
                .map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.1)
                .collect();
            let b: Vec<f32> = (0..c * mult).map(|i| i as f32 * 0.25).collect();
            let ohw = p.oh * p.ow;
            for parallel in [false, true] {
                let mut out = vec![f32::NAN; c * mult * ohw];
                let seen = std::sync::Mutex::new(vec![0usize; c * mult]);
                let epi = |ch: usize, v: &mut [f32]| {
                    assert_eq!(v.len(), ohw);
                    seen.lock().unwrap()[ch] += 1;
                    v.iter_mut().for_each(|x| *x = -*x);
                };
                depthwise(
                    isa,
                    &x,
                    p,
                    mult,
                    &w,
                    Some(&b),
                    &mut out,
                    parallel,
                    Some(&epi),
                );
                assert!(seen.into_inner().unwrap().iter().all(|&n| n == 1));
                let want = reference(&x, p, c, mult, &w, &b);
                for (i, (&g, &r)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (-(g as f64) - r).abs() <= 1e-5 * (1.0 + r.abs()),
                        "{isa} c{c} mult{mult} {p:?} [{i}]: {g} vs {r}"
                    );
                }
            }
        }
    }
}
