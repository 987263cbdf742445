//! FP32 outputs against ONNX Runtime 1.32 (tests/fixtures/reference, made by
//! shared/tools/make_reference.py): max |qtune − ORT| ≤ 1e-4 · max(1, max |ORT|), on
//! every instruction set this CPU supports (scalar, AVX2, AVX-512 kernels).

use std::path::{Path, PathBuf};

use qtune::data::read_npy;
use qtune::engine::kernels::Isa;
use qtune::engine::{PlanOptions, Runner};
use qtune::onnx::load_model;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn check(model: &Path, name: &str) {
    let input = read_npy(&fixtures().join(format!("reference/{name}_input.npy"))).unwrap();
    let want = read_npy(&fixtures().join(format!("reference/{name}_output.npy"))).unwrap();
    for isa in Isa::supported() {
        let options = PlanOptions {
            isa: Some(isa),
            ..PlanOptions::default()
        };
        let runner = Runner::with_options(load_model(model).unwrap().graph, options).unwrap();
        let got = runner.run(vec![input.clone()]).unwrap().remove(0);
        assert_eq!(got.shape(), want.shape(), "{name}: output shape");
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let diff = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{name} ({isa}): max |qtune - ORT| = {diff:.3e} (bound {:.3e})",
            1e-4 * scale
        );
        assert!(
            diff <= 1e-4 * scale,
            "{name} ({isa}): max |qtune - ORT| = {diff:e} > {:e}",
            1e-4 * scale
        );
    }
}

#[test]
fn ppocr_cls_batch16() {
    check(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/ppocr-cls.onnx"),
        "ppocr-cls",
    );
}

#[test]
fn ppocr_det_480() {
    check(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/det/ppocr-det.onnx"),
        "ppocr-det",
    );
}

macro_rules! light {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            check(&fixtures().join(concat!("models/", $name, ".onnx")), concat!("light-", $name));
        }
    )*};
}

light! {
    light_alexnet => "bvlc_alexnet",
    light_densenet121 => "densenet121",
    light_inception_v1 => "inception_v1",
    light_inception_v2 => "inception_v2",
    light_resnet50 => "resnet50",
    light_shufflenet => "shufflenet",
    light_squeezenet => "squeezenet",
    light_vgg19 => "vgg19",
    light_zfnet512 => "zfnet512",
}
