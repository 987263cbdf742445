//! Separable antialiased bilinear resampling of 8-bit images, following Pillow's
//! `Image.resize(..., BILINEAR)` integer algorithm (triangle filter whose support grows with
//! the downscale factor, 22-bit fixed-point weights, horizontal pass then vertical pass,
//! each rounded and clipped to 8 bits). Matching Pillow keeps qtune's preprocessing
//! bit-identical to the Python pipelines that models are usually evaluated with.

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index and fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

fn coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut k: Vec<f64> = (0..n)
            .map(|x| {
                let t = ((x + xmin) as f64 - center + 0.5) * ss;
                (1.0 - t.abs()).max(0.0)
            })
            .collect();
        let sum: f64 = k.iter().sum();
        if sum != 0.0 {
            k.iter_mut().for_each(|w| *w /= sum);
        }
        let one = (1u32 << PRECISION_BITS) as f64;
        let fixed = k
            .iter()
            .map(|&w| {
                if w < 0.0 {
                    (-0.5 + w * one) as i32
                } else {
                    (0.5 + w * one) as i32
                }
            })
            .collect();
        bounds.push((xmin, n));
        weights.push(fixed);
    }
    Coeffs { bounds, weights }
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an interleaved 8-bit image (`channels` per pixel) from `w×h` to `ow×oh`.
pub fn resize_bilinear(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    ow: usize,
    oh: usize,
) -> Vec<u8> {
    let horizontal = if ow != w {
        let c = coeffs(w, ow);
        let mut out = vec![0u8; ow * h * channels];
        for y in 0..h {
            let row = &src[y * w * channels..(y + 1) * w * channels];
            for (x, ((xmin, n), k)) in c.bounds.iter().zip(&c.weights).enumerate() {
                for ch in 0..channels {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for i in 0..*n {
                        ss += row[(xmin + i) * channels + ch] as i64 * k[i] as i64;
                    }
                    out[(y * ow + x) * channels + ch] = clip8(ss);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if oh == h {
        return horizontal;
    }
    let c = coeffs(h, oh);
    let stride = ow * channels;
    let mut out = vec![0u8; oh * stride];
    for (y, ((ymin, n), k)) in c.bounds.iter().zip(&c.weights).enumerate() {
        for x in 0..stride {
            let mut ss: i64 = 1 << (PRECISION_BITS - 1);
            for i in 0..*n {
                ss += horizontal[(ymin + i) * stride + x] as i64 * k[i] as i64;
            }
            out[y * stride + x] = clip8(ss);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_a_copy() {
        let img: Vec<u8> = (0..24).collect();
        assert_eq!(resize_bilinear(&img, 4, 2, 3, 4, 2), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = vec![77u8; 10 * 7 * 3];
        assert!(
            resize_bilinear(&img, 10, 7, 3, 4, 13)
                .iter()
                .all(|&v| v == 77)
        );
    }

    #[test]
    fn matches_pillow_on_a_ramp() {
        // Pillow 13: Image.fromarray(np.arange(8, dtype=np.uint8)[None]*30).resize((3,1), BILINEAR)
        let img: Vec<u8> = (0..8).map(|v| v * 30).collect();
        assert_eq!(resize_bilinear(&img, 8, 1, 1, 3, 1), vec![33, 105, 177]);
    }
}
