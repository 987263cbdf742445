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
