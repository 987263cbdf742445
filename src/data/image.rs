//! Image files (PNG, JPEG) to model input tensors: decode, convert the colour format,
//! resize, normalize with per-channel mean and standard deviation, lay out as NCHW.

use std::path::Path;

use super::DataError;
use super::resample::resize_bilinear;
use crate::ir::Tensor;

/// Channel order of the tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ImageFormat {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
    #[serde(rename = "GRAY")]
    Gray,
}

impl ImageFormat {
    pub fn channels(self) -> usize {
        if self == ImageFormat::Gray { 1 } else { 3 }
    }
}

/// How an image is fitted to the model's input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Resize to exactly H×W, ignoring the aspect ratio.
    Stretch,
    /// PaddleOCR's text-line rule: height H, width min(W, ceil(H·w/h)), left-aligned,
    /// the rest of the width zero (after normalization).
    KeepRatioPad,
    /// Scale to fit inside H×W keeping the aspect ratio, centred, padded with grey 114
    /// (before normalization), as YOLO-style detectors expect.
    Letterbox,
    /// The ImageNet recipe of torchvision (`Resize(S)` then `CenterCrop((H, W))`): the short
    /// side scaled to `short_side` (the long side to ⌊S·long/short⌋), then the centre H×W
    /// cut out (offsets rounded half to even, as Python's `round`); an image smaller than
    /// the crop is padded with pixel value 0 (before normalization), centred.
    ShortSide,
}

impl ResizeMode {
    /// The configuration's name of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ResizeMode::Stretch => "stretch",
            ResizeMode::KeepRatioPad => "keep_ratio_pad",
            ResizeMode::Letterbox => "letterbox",
            ResizeMode::ShortSide => "short_side",
        }
    }
}

/// The short side `ShortSide` scales to when the configuration gives none: the crop's short
/// side over 0.875 (224 → 256, the ImageNet ratio).
pub fn default_short_side(size: (usize, usize)) -> usize {
    (size.0.min(size.1) as f64 / 0.875).round() as usize
}

/// Everything needed to turn an image file into a `[1, C, H, W]` float32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePreprocess {
    pub format: ImageFormat,
    /// Per channel, in the tensor's channel order; `x' = (x − mean) / std` on 0–255 values.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub resize: ResizeMode,
    /// Target (H, W): the tensor's height and width (for `ShortSide`, the crop).
    pub size: (usize, usize),
    /// For `ShortSide`: the short side after resizing (`default_short_side` when `None`).
    pub short_side: Option<usize>,
}

/// The most pixels an image may have (8192 × 8192): larger ones are refused from their
/// header, before decoding (a decompression bomb declares a size its file does not show).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// Decodes within limits: the header's size first, then the decoder's own allocation cap.
fn decode_bounded(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let unreadable = |e: image::ImageError| {
        format!(
            "not a readable PNG or JPEG image ({})",
            one_line(&e.to_string())
        )
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("cannot read it ({e})"))
    };
    let (w, h) = reader()?.into_dimensions().map_err(unreadable)?;
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(format!(
            "the image is {w}×{h} pixels, more than qtune decodes ({MAX_IMAGE_PIXELS} pixels, 8192×8192)"
        ));
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(1 << 30);
    r.limits(limits);
    r.decode().map_err(unreadable)
}

/// A decoder's message on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes `path` into interleaved 8-bit pixels (width, height, pixels) in `format`.
fn decode(path: &Path, format: ImageFormat) -> Result<(usize, usize, Vec<u8>), DataError> {
    let bad = |reason: String| DataError::File {
        path: path.display().to_string(),
        reason,
    };
    let bytes = crate::util::fs::read_input(path, crate::util::budget::limit())
        .map_err(|e| bad(e.to_string()))?;
    let img = decode_bounded(&bytes).map_err(bad)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(bad("the image is empty".into()));
    }
    let px = match format {
        ImageFormat::Gray => img.into_luma8().into_raw(),
        ImageFormat::Rgb => img.into_rgb8().into_raw(),
        ImageFormat::Bgr => {
            let mut v = img.into_rgb8().into_raw();
            v.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
            v
        }
    };
    Ok((w, h, px))
}

/// The (height, width) of an image file, from its header (nothing is decoded).
pub fn image_size(path: &Path) -> Result<(usize, usize), DataError> {
    let bad = |reason: String| DataError::File {
        path: path.display().to_string(),
        reason,
    };
    let bytes = crate::util::fs::read_input(path, crate::util::budget::limit())
        .map_err(|e| bad(e.to_string()))?;
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read it ({e})")))?
        .into_dimensions()
        .map_err(|e| {
            bad(format!(
                "not a readable PNG or JPEG image ({})",
                one_line(&e.to_string())
            ))
        })?;
    Ok((h as usize, w as usize))
}

/// Python's `round` (half to even) of a non-negative `x / 2`.
fn half_round_even(x: usize) -> usize {
    let q = x / 2;
    if x % 2 == 1 && q % 2 == 1 { q + 1 } else { q }
}

/// Where the resized `nw×nh` image lands in the `tw×th` tensor: (source x, source y,
/// destination x, destination y) of the copied region's top-left corner.
fn placement(p: &ImagePreprocess, nw: usize, nh: usize) -> (usize, usize, usize, usize) {
    let (th, tw) = p.size;
    match p.resize {
        ResizeMode::Letterbox => (0, 0, (tw - nw) / 2, (th - nh) / 2),
        ResizeMode::ShortSide => {
            // torchvision's CenterCrop: crop offsets round((n − t) / 2); pad (t − n) // 2.
            let (sx, dx) = if nw >= tw {
                (half_round_even(nw - tw), 0)
            } else {
                (0, (tw - nw) / 2)
            };
            let (sy, dy) = if nh >= th {
                (half_round_even(nh - th), 0)
            } else {
                (0, (th - nh) / 2)
            };
            (sx, sy, dx, dy)
        }
        ResizeMode::Stretch | ResizeMode::KeepRatioPad => (0, 0, 0, 0),
    }
}

/// The size (width, height) the image is resized to before it is placed, and the pixel
/// value of the padding around it (`None`: zero after normalization).
fn resized_size(p: &ImagePreprocess, w: usize, h: usize) -> (usize, usize, Option<f32>) {
    let (th, tw) = p.size;
    match p.resize {
        ResizeMode::Stretch => (tw, th, None),
        ResizeMode::KeepRatioPad => {
            let nw = ((th as f64 * w as f64 / h as f64).ceil() as usize).clamp(1, tw);
            (nw, th, None)
        }
        ResizeMode::Letterbox => {
            let s = (th as f64 / h as f64).min(tw as f64 / w as f64);
            let nw = ((w as f64 * s).round() as usize).clamp(1, tw);
            let nh = ((h as f64 * s).round() as usize).clamp(1, th);
            (nw, nh, Some(114.0))
        }
        ResizeMode::ShortSide => {
            let short = p.short_side.unwrap_or_else(|| default_short_side(p.size));
            // torchvision: the long side is int(short · long / short_in), truncated.
            let (nw, nh) = if w <= h {
                (short, (short as u64 * h as u64 / w as u64) as usize)
            } else {
                ((short as u64 * w as u64 / h as u64) as usize, short)
            };
            (nw.max(1), nh.max(1), Some(0.0))
        }
    }
}

/// Loads one image as a `[1, C, H, W]` float32 tensor.
pub fn load_image(path: &Path, p: &ImagePreprocess) -> Result<Tensor, DataError> {
    let c = p.format.channels();
    if p.mean.len() != c || p.std.len() != c {
        return Err(DataError::Config(format!(
            "mean_value and standard_deviation need {c} value(s) for image_format {:?}",
            p.format
        )));
    }
    let (w, h, px) = decode(path, p.format)?;
    let (th, tw) = p.size;
    let (nw, nh, pad) = resized_size(p, w, h);
    let area = |a: usize, b: usize| (a as u64).saturating_mul(b as u64);
    if area(nw, nh) > MAX_IMAGE_PIXELS {
        return Err(DataError::File {
            path: path.display().to_string(),
            reason: format!("resized to {nw}×{nh} pixels, more than qtune handles"),
        });
    }
    let resized = resize_bilinear(&px, w, h, c, nw, nh);
    let mut out = crate::util::budget::try_vec(
        || format!("{}: the {c}×{th}×{tw} input tensor", path.display()),
        c * th * tw,
        0f32,
    )
    .map_err(|e| DataError::Config(e.to_string()))?;
    // Padding: zero after normalization, or a pixel value normalized like the image.
    if let Some(v) = pad {
        for ch in 0..c {
            out[ch * th * tw..(ch + 1) * th * tw].fill((v - p.mean[ch]) / p.std[ch]);
        }
    }
    let (sx, sy, dx, dy) = placement(p, nw, nh);
    let (cw, ch_) = ((nw - sx).min(tw - dx), (nh - sy).min(th - dy));
    for y in 0..ch_ {
        for x in 0..cw {
            let src = ((y + sy) * nw + x + sx) * c;
            for ch in 0..c {
                let v = resized[src + ch] as f32;
                out[ch * th * tw + (y + dy) * tw + x + dx] = (v - p.mean[ch]) / p.std[ch];
            }
        }
    }
    Ok(Tensor::from_f32(&[1, c, th, tw], out))
}
