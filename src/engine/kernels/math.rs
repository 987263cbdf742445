//! Transcendental functions for the hot loops. The `f32` ones are branch-free (selects
//! instead of branches, integer tricks instead of `floor`/`ldexp` calls) so that a loop
//! over a slice vectorizes on baseline x86-64; they stay within a few ulp of the exact
//! result, well inside the tolerance of ONNX Runtime's own approximations.

/// 1.5 · 2²³: adding and subtracting it rounds an `f32` of magnitude below 2²² to the
/// nearest integer, ties to even (the default rounding mode), without a libm call.
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;

/// Rounds half to even to an integer; exact for |x| < 2²², which callers guarantee by
/// clamping first. The integer is read from the mantissa bits of x + 1.5·2²³, so a loop
/// of these vectorizes (a float → int `as` cast, which saturates, does not).
#[inline(always)]
pub(crate) fn round_small_to_i32(x: f32) -> i32 {
    ((x + ROUND_MAGIC).to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32)
}

/// eˣ in `f32` (Cody–Waite range reduction and a degree-6 polynomial; 2ⁿ is built
/// from the exponent bits, split in two factors so that results down to the
/// subnormal range and overflow to +∞ come out right).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-104.0, 89.0);
    let t = xc * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5e-1)
        * (r * r)
        + r
        + 1.0;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let y = p * s1 * s2;
    if x.is_nan() { x } else { y }
}

/// tanh in `f32`: an odd polynomial near 0, 1 − 2/(e²ˣ + 1) elsewhere.
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let s = x * x;
    let small =
        ((((-5.704_988_7e-3 * s + 2.063_909e-2) * s - 5.373_971_6e-2) * s + 1.333_144_2e-1) * s
            - 3.333_328e-1)
            * s
            * x
            + x;
    let large = (1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0)).copysign(x);
    if a < 0.625 { small } else { large }
}

/// The error function in `f64`, to about 1e-15 relative: for |x| < 2.5 the series
/// erf x = 2/√π · e^(−x²) · Σ (2x²)ⁿ x / (1·3·…·(2n+1)), whose terms are all positive;
/// above, 1 − erfc x with erfc from its continued fraction.
pub(crate) fn erf_f64(x: f64) -> f64 {
    const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        let x2 = a * a;
        let (mut term, mut sum, mut k) = (a, a, 1.0);
        while term > sum * 1e-17 {
            term *= 2.0 * x2 / (2.0 * k + 1.0);
            sum += term;
            k += 1.0;
        }
        FRAC_2_SQRT_PI * (-x2).exp() * sum
    } else if a < 6.0 {
        // erfc a = e^(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated bottom-up.
        let mut t = a;
        for k in (1..=80).rev() {
            t = a + 0.5 * k as f64 / t;
        }
        1.0 - FRAC_2_SQRT_PI * 0.5 * (-a * a).exp() / t
    } else {
        1.0
    };
    r.copysign(x)
}

/// Horner evaluation of the polynomial with coefficients `c` (constant term first).
#[inline(always)]
fn horner(c: &[f64], t: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * t + k)
}

/// Chebyshev fits (converted to monomials; our own, made with numpy against Python's
/// `math.erf`): erf(x)/x in t = 2x² − 1 on |x| < 1, and erfc(x)·e^(x²) in t = x − 2 on
/// [1, 3] and in t = (x − 4.5)/1.5 on [3, 6].
const ERF_SMALL: [f64; 9] = [
    0.9654687386698851,
    -0.14053608901552933,
    0.019852496688085492,
    -0.0022854856569551217,
    0.00021751716322587766,
    -1.7536824685215895e-05,
    1.2233626253355109e-06,
    -7.557492978094161e-08,
    4.138773590511846e-09,
];
const ERFCX_MID: [f64; 13] = [
    0.2553956763141132,
    -0.10679646149194902,
    0.04180275225167496,
    -0.015460647824857964,
    0.005440744131717845,
    -0.001831584484791726,
    0.0005924367237673422,
    -0.0001850484177673195,
    5.582213484842669e-05,
    -1.5853221961492628e-05,
    4.4935507048649e-06,
    -1.6170170738405431e-06,
    4.385580496091279e-07,
];
const ERFCX_FAR: [f64; 12] = [
    0.12248480424817057,
    -0.03902389290219539,
    0.012179534064768344,
    -0.003727945624245049,
    0.0011201401799831423,
    -0.00033070435153060847,
    9.610382165270437e-05,
    -2.746441541630062e-05,
    7.548620467012764e-06,
    -2.0856232636923277e-06,
    7.285293420977723e-07,
    -1.98770247195057e-07,
];

/// The error function for `f32` results: erf to 2e-11 relative, and 1 − |erf| (what
/// Gelu needs for negative inputs) to 3e-10 relative; some 10× faster than `erf_f64`.
#[inline]
pub(crate) fn erf_fast(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 1.0 {
        a * horner(&ERF_SMALL, 2.0 * a * a - 1.0)
    } else if a < 3.0 {
        1.0 - (-a * a).exp() * horner(&ERFCX_MID, a - 2.0)
    } else if a < 6.0 {
        1.0 - (-a * a).exp() * horner(&ERFCX_FAR, (a - 4.5) / 1.5)
    } else if a.is_nan() {
        return x;
    } else {
        1.0
    };
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut x = -103.0f32;
        while x < 88.7 {
            let want = (x as f64).exp() as f32;
            let got = exp_f32(x);
            if want.is_normal() {
                assert!(ulps(got, want) <= 2, "exp({x}) = {got}, want {want}");
            } else {
                assert!(
                    (got - want).abs() <= f32::MIN_POSITIVE * 1e-6,
                    "exp({x}) = {got}, want {want}"
                );
            }
            x += 0.0137;
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_and_sigmoid_are_close() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let t = (x as f64).tanh() as f32;
            assert!(
                ulps(tanh_f32(x), t) <= 3,
                "tanh({x}) = {}, want {t}",
                tanh_f32(x)
            );
            let s = (1.0 / (1.0 + (-(x as f64)).exp())) as f32;
            let sg = 1.0 / (1.0 + exp_f32(-x));
            assert!(ulps(sg, s) <= 3, "sigmoid({x}) = {sg}, want {s}");
            x += 0.00731;
        }
        assert_eq!(tanh_f32(1e-20), 1e-20);
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn erf_matches_reference_values() {
        // Python's math.erf.
        let cases = [
            (1e-8, 1.1283791670955126e-08),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (1.7, 0.9837904585907745),
            (2.4999, 0.9995928300996666),
            (2.5, 0.999593047982555),
            (3.0, 0.9999779095030014),
            (4.0, 0.9999999845827421),
            (5.5, 0.9999999999999927),
        ];
        for (x, want) in cases {
            let got = erf_f64(x);
            assert!(
                (got - want).abs() <= 4e-16 * want,
                "erf({x}) = {got}, want {want}"
            );
            assert_eq!(erf_f64(-x), -got);
        }
        assert_eq!(erf_f64(0.0), 0.0);
        assert_eq!(erf_f64(f64::INFINITY), 1.0);
        assert_eq!(erf_f64(f64::NEG_INFINITY), -1.0);
        assert!(erf_f64(f64::NAN).is_nan());
    }

    #[test]
    fn fast_erf_agrees_with_the_series() {
        let mut x = -7.0;
        while x < 7.0 {
            let (want, got) = (erf_f64(x), erf_fast(x));
            assert!(
                (got - want).abs() <= 3e-11 * want.abs(),
                "erf({x}) = {got}, want {want}"
            );
            if x.abs() > 0.5 && 1.0 - want.abs() > 1e-6 {
                let (c, cg) = (1.0 - want.abs(), 1.0 - got.abs());
                assert!((cg - c).abs() <= 1e-9 * c, "erfc({x}) = {cg}, want {c}");
            }
            x += 0.000917;
        }
        assert!(erf_fast(f64::NAN).is_nan());
        assert_eq!(erf_fast(f64::INFINITY), 1.0);
        assert_eq!(erf_fast(-0.0), -0.0);
    }

    #[test]
    fn magic_rounding_is_half_to_even() {
        let cases = [
            (0.5f32, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (3.7, 4),
            (-3.2, -3),
            (-255.0, -255),
        ];
        for (x, want) in cases {
            assert_eq!(round_small_to_i32(x), want, "{x}");
        }
    }
}
