//! Image preprocessing against the Python pipeline the ONNX Runtime references were made
//! with (PIL bilinear resize, PaddleOCR's keep-ratio-and-pad rule, (x/255 − 0.5)/0.5).

use std::path::Path;

use qtune::data::image::{ImageFormat, ImagePreprocess, ResizeMode, load_image};
use qtune::data::read_npy;

#[test]
fn text_lines_match_the_reference_tensors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let want = read_npy(&root.join("tests/fixtures/reference/ppocr-cls_input.npy"))
        .unwrap()
        .to_f64_vec();
    let p = ImagePreprocess {
        format: ImageFormat::Rgb,
        mean: vec![127.5; 3],
        std: vec![127.5; 3],
        resize: ResizeMode::KeepRatioPad,
        size: (48, 192),
        short_side: None,
    };
    let per = 3 * 48 * 192;
    for i in 0..16 {
        let t = load_image(&root.join(format!("assets/demo/calib/{i:04}.png")), &p).unwrap();
        assert_eq!(t.shape(), &[1, 3, 48, 192]);
        let got = t.to_f64_vec();
        let diff = got
            .iter()
            .zip(&want[i * per..(i + 1) * per])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-6, "image {i}: max diff {diff}");
    }
}

/// The tensors of tests/fixtures/make_preprocess.py (torchvision's ImageNet recipe and a
/// letterbox, written with Pillow and numpy).
fn check_against(name: &str, expected: &str, p: &ImagePreprocess) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess");
    let want = read_npy(&dir.join(expected)).unwrap();
    let got = load_image(&dir.join(format!("{name}.png")), p).unwrap();
    assert_eq!(got.shape(), want.shape(), "{expected}");
    let diff = got
        .to_f64_vec()
        .iter()
        .zip(want.to_f64_vec())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-6, "{expected}: max diff {diff}");
}

fn imagenet(short_side: usize) -> ImagePreprocess {
    ImagePreprocess {
        format: ImageFormat::Rgb,
        mean: [0.485f32, 0.456, 0.406].iter().map(|m| m * 255.0).collect(),
        std: [0.229f32, 0.224, 0.225].iter().map(|s| s * 255.0).collect(),
        resize: ResizeMode::ShortSide,
        size: (112, 112),
        short_side: Some(short_side),
    }
}

#[test]
fn the_short_side_recipe_is_torchvisions_resize_and_centre_crop() {
    for name in ["wide", "tall", "small", "square"] {
        check_against(name, &format!("imagenet_{name}.npy"), &imagenet(128));
    }
    // The crop is larger than the resized image: padded with pixel 0, centred.
    check_against("wide", "pad_wide.npy", &imagenet(96));
}

#[test]
fn letterbox_fits_centres_and_pads_with_grey() {
    let p = ImagePreprocess {
        format: ImageFormat::Rgb,
        mean: vec![0.0; 3],
        std: vec![255.0; 3],
        resize: ResizeMode::Letterbox,
        size: (96, 96),
        short_side: None,
    };
    for name in ["wide", "tall", "small", "square"] {
        check_against(name, &format!("letterbox_{name}.npy"), &p);
    }
}

#[test]
fn the_default_short_side_is_the_imagenet_ratio() {
    assert_eq!(qtune::data::image::default_short_side((224, 224)), 256);
    assert_eq!(qtune::data::image::default_short_side((112, 160)), 128);
}
