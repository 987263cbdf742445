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
}

/// Everything needed to turn an image file into a `[1, C, H, W]` float32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePreprocess {
    pub format: ImageFormat,
    /// Per channel, in the tensor's channel order; `x' = (x − mean) / std` on 0–255 values.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub resize: ResizeMode,
    /// Target (H, W).
    pub size: (usize, usize),
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
    let (nw, nh, x0, y0, pad) = match p.resize {
        ResizeMode::Stretch => (tw, th, 0, 0, None),
        ResizeMode::KeepRatioPad => {
            let nw = ((th as f64 * w as f64 / h as f64).ceil() as usize).clamp(1, tw);
            (nw, th, 0, 0, Some(None))
        }
        ResizeMode::Letterbox => {
            let s = (th as f64 / h as f64).min(tw as f64 / w as f64);
            let nw = ((w as f64 * s).round() as usize).clamp(1, tw);
            let nh = ((h as f64 * s).round() as usize).clamp(1, th);
            (nw, nh, (tw - nw) / 2, (th - nh) / 2, Some(Some(114.0f32)))
        }
    };
    let resized = resize_bilinear(&px, w, h, c, nw, nh);
    let mut out = crate::util::budget::try_vec(
        || format!("{}: the {c}×{th}×{tw} input tensor", path.display()),
        c * th * tw,
        0f32,
    )
    .map_err(|e| DataError::Config(e.to_string()))?;
    // Padding: zero after normalization, or a pixel value normalized like the image.
    if let Some(Some(v)) = pad {
        for ch in 0..c {
            out[ch * th * tw..(ch + 1) * th * tw].fill((v - p.mean[ch]) / p.std[ch]);
        }
    }
    for y in 0..nh {
        for x in 0..nw {
            for ch in 0..c {
                let v = resized[(y * nw + x) * c + ch] as f32;
                out[ch * th * tw + (y + y0) * tw + x + x0] = (v - p.mean[ch]) / p.std[ch];
            }
        }
    }
    Ok(Tensor::from_f32(&[1, c, th, tw], out))
}
