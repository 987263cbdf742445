//! Per-axis tables: where each output position samples the input, and with which
//! weights. Coordinates are computed in f64 exactly as the ONNX reference does.

use super::{AxisResize, Interp, Mode};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

impl Coord {
    /// From an attribute value already checked against the allowed names.
    pub(super) fn parse(s: &str) -> Coord {
        match s {
            "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
            "pytorch_half_pixel" => Coord::PytorchHalfPixel,
            "align_corners" => Coord::AlignCorners,
            "asymmetric" => Coord::Asymmetric,
            "tf_crop_and_resize" => Coord::TfCropAndResize,
            _ => Coord::HalfPixel,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    /// Resize-10 (no nearest_mode yet), as ONNX Runtime does it: floor when upsampling,
    /// ceil when downsampling.
    Simple,
}

impl NearestMode {
    pub(super) fn parse(s: &str) -> NearestMode {
        match s {
            "round_prefer_ceil" => NearestMode::RoundPreferCeil,
            "floor" => NearestMode::Floor,
            "ceil" => NearestMode::Ceil,
            _ => NearestMode::RoundPreferFloor,
        }
    }
}

/// The input coordinate output position `y` maps to; `None` when tf_crop_and_resize
/// puts it outside the input (the output is then the extrapolation value).
pub(super) fn source_coord(coord: Coord, y: usize, a: &AxisResize) -> Option<f64> {
    let (y, inw, s) = (y as f64, a.in_len as f64, a.scale);
    // The reference uses the unrounded output length scale·in, not the integer one.
    let outw = s * inw;
    Some(match coord {
        Coord::AlignCorners if outw == 1.0 => 0.0,
        Coord::AlignCorners => y * (inw - 1.0) / (outw - 1.0),
        Coord::Asymmetric => y / s,
        Coord::PytorchHalfPixel if outw == 1.0 => -0.5,
        Coord::PytorchHalfPixel | Coord::HalfPixel => (y + 0.5) / s - 0.5,
        Coord::HalfPixelSymmetric => {
            let adjustment = a.out_len as f64 / outw;
            let offset = inw / 2.0 * (1.0 - adjustment);
            offset + (y + 0.5) / s - 0.5
        }
        Coord::TfCropAndResize => {
            let (r0, r1) = a.roi;
            let x = if outw == 1.0 {
                (r1 - r0) * (inw - 1.0) / 2.0
            } else {
                y * (r1 - r0) * (inw - 1.0) / (outw - 1.0)
            } + r0 * (inw - 1.0);
            if x < 0.0 || x > inw - 1.0 {
                return None;
            }
            x
        }
    })
}

/// For nearest mode: the input index of each output position (`None`: extrapolated).
pub(super) fn nearest_table(a: &AxisResize, it: &Interp) -> Vec<Option<usize>> {
    let last = a.in_len.saturating_sub(1) as f64;
    (0..a.out_len)
        .map(|y| {
            let x = source_coord(it.coord, y, a)?;
            let f = x.floor();
            let i = if x == f {
                x
            } else {
                match it.nearest {
                    NearestMode::RoundPreferFloor if x - f <= 0.5 => f,
                    NearestMode::RoundPreferCeil if x - f < 0.5 => f,
                    NearestMode::Floor => f,
                    NearestMode::Simple if a.scale >= 1.0 => x.trunc(),
                    _ => f + 1.0,
                }
            };
            Some(i.clamp(0.0, last) as usize)
        })
        .collect()
}

/// For linear and cubic modes: `n` taps per output position.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Taps {
    pub n: usize,
    /// `out_len × n` input indices, clamped into the axis (edge padding).
    pub idx: Vec<usize>,
    /// `out_len × n` weights.
    pub w: Vec<f32>,
    /// Per output position: outside the crop region (the extrapolation value).
    pub extrap: Vec<bool>,
}

fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// Tap offsets `j` (relative to `base`) and the weight of each, for `ratio` in (0, 1].
fn kernel(it: &Interp, ratio: f64, scale: f64, out: &mut Vec<(i64, f64)>) {
    out.clear();
    let s = scale.min(1.0);
    match (it.mode, it.antialias) {
        (Mode::Linear, false) => out.extend([(0, 1.0 - ratio), (1, ratio)]),
        (Mode::Linear, true) => {
            let start = (-1.0 / s).floor() as i64 + 1;
            for j in start..(2 - start) {
                out.push((j, (1.0 - ((j as f64 - ratio) * s).abs()).clamp(0.0, 1.0)));
            }
        }
        (Mode::Cubic, false) => {
            for j in -1..3 {
                out.push((j, cubic(j as f64 - ratio, it.cubic_a)));
            }
        }
        (Mode::Cubic, true) => {
            let start = (-2.0 / s).floor() as i64 + 1;
            for j in start..(2 - start) {
                out.push((j, cubic(s * (j as f64 - ratio), it.cubic_a)));
            }
        }
        (Mode::Nearest, _) => out.push((1, 1.0)),
    }
    if it.antialias {
        let sum: f64 = out.iter().map(|t| t.1).sum();
        if sum != 0.0 {
            out.iter_mut().for_each(|t| t.1 /= sum);
        }
    }
}

/// The interpolation taps of one axis.
pub(super) fn interp_taps(a: &AxisResize, it: &Interp) -> Taps {
    let mut taps = Taps {
        n: 0,
        idx: Vec::new(),
        w: Vec::new(),
        extrap: Vec::with_capacity(a.out_len),
    };
    let (len, last) = (a.in_len as i64, a.in_len as i64 - 1);
    let mut k = Vec::new();
    for y in 0..a.out_len {
        let x = source_coord(it.coord, y, a);
        let xv = x.unwrap_or(0.0);
        // `base + ratio = x` with ratio in (0, 1]: an integer x takes the tap on its left.
        let f = xv.floor();
        let base = if xv == f { f - 1.0 } else { f };
        kernel(it, xv - base, a.scale, &mut k);
        taps.n = k.len();
        if it.exclude_outside {
            let inside = |j: i64| (0..len).contains(&(base as i64 + j));
            let sum: f64 = k.iter().filter(|t| inside(t.0)).map(|t| t.1).sum();
            for t in k.iter_mut() {
                t.1 = if !inside(t.0) {
                    0.0
                } else if sum != 0.0 {
                    t.1 / sum
                } else {
                    t.1
                };
            }
        }
        for &(j, w) in &k {
            taps.idx
                .push((base as i64 + j).clamp(0, last.max(0)) as usize);
            taps.w.push(w as f32);
        }
        taps.extrap.push(x.is_none());
    }
    taps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(mode: Mode, coord: Coord) -> Interp {
        Interp {
            mode,
            coord,
            nearest: NearestMode::RoundPreferFloor,
            cubic_a: -0.75,
            exclude_outside: false,
            antialias: false,
            extrapolation: 0.0,
        }
    }

    fn axis(in_len: usize, out_len: usize, scale: f64) -> AxisResize {
        AxisResize {
            axis: 0,
            in_len,
            out_len,
            scale,
            roi: (0.0, 1.0),
        }
    }

    #[test]
    fn nearest_half_pixel_x2_replicates() {
        let t = nearest_table(&axis(3, 6, 2.0), &interp(Mode::Nearest, Coord::HalfPixel));
        assert_eq!(t, [0, 0, 1, 1, 2, 2].map(Some).to_vec());
        let mut it = interp(Mode::Nearest, Coord::Asymmetric);
        it.nearest = NearestMode::Floor;
        assert_eq!(
            nearest_table(&axis(3, 6, 2.0), &it),
            [0, 0, 1, 1, 2, 2].map(Some).to_vec()
        );
    }

    #[test]
    fn linear_align_corners_uses_unrounded_length() {
        // Reference: 4 → 2 at scale 0.6 samples x = 0 and x = 3/1.4.
        let t = interp_taps(&axis(4, 2, 0.6), &interp(Mode::Linear, Coord::AlignCorners));
        assert_eq!(t.n, 2);
        assert_eq!(&t.idx[2..], &[2, 3]);
        assert!((t.w[3] as f64 - (3.0 / 1.4 - 2.0)).abs() < 1e-6);
        // x = 0 exactly: all weight on index 0.
        assert_eq!((t.idx[1], t.w[1]), (0, 1.0));
    }

    #[test]
    fn cubic_weights_sum_to_one() {
        let t = interp_taps(&axis(4, 8, 2.0), &interp(Mode::Cubic, Coord::HalfPixel));
        assert_eq!(t.n, 4);
        for w in t.w.chunks(4) {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
