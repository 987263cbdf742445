//! FP32 outputs against ONNX Runtime 1.32 (tests/fixtures/reference, made by
//! shared/tools/make_reference.py): max |qtune − ORT| ≤ 1e-4 · max(1, max |ORT|), on
//! every instruction set this CPU supports (scalar, AVX2, AVX-512 kernels).

use std::path::{Path, PathBuf};

use qtune::data::read_npy;
use qtune::engine::kernels::Isa;
use qtune::engine::{PlanOptions, Runner};
use qtune::ir::Tensor;
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
        assert_close(&format!("{name} ({isa})"), &got, &want);
    }
}

/// `got` has `want`'s shape and max |got − want| ≤ 1e-4 · max(1, max |want|).
fn assert_close(label: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{label}: shape");
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let bound = 1e-4 * w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let diff = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!("{label}: max |qtune - ORT| = {diff:.3e} (bound {bound:.3e})");
    assert!(
        diff <= bound,
        "{label}: max |qtune - ORT| = {diff:e} > {bound:e}"
    );
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

/// `shared/` (the models and references that are not committed): `QTUNE_SHARED`, else
/// `../shared` beside the repository. `None` when neither exists.
fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("QTUNE_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    dir.join("reference").is_dir().then_some(dir)
}

/// The numbered files `{stem}_K.npy` (K = 0, 1, …), or `{stem}.npy` alone.
fn numbered(dir: &Path, stem: &str) -> Vec<qtune::ir::Tensor> {
    let single = dir.join(format!("{stem}.npy"));
    if single.exists() {
        return vec![read_npy(&single).unwrap()];
    }
    (0..)
        .map(|k| dir.join(format!("{stem}_{k}.npy")))
        .take_while(|p| p.exists())
        .map(|p| read_npy(&p).unwrap())
        .collect()
}

/// A model of `shared/models/extra` against its ONNX Runtime reference (every input and
/// output), on every instruction set. Without `shared/` the test says so on stderr and
/// passes, unless `QTUNE_REQUIRE_SHARED=1` makes that a failure.
fn check_extra(model: &str) {
    let Some(shared) = shared_dir() else {
        assert!(
            std::env::var_os("QTUNE_REQUIRE_SHARED").is_none(),
            "QTUNE_REQUIRE_SHARED is set but shared/ is not found (set QTUNE_SHARED)"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("{model}: shared/ not found (set QTUNE_SHARED); not checked\n").as_bytes(),
        );
        return;
    };
    let name = format!("extra-{model}");
    let refs = shared.join("reference");
    let inputs = numbered(&refs, &format!("{name}_input"));
    let wants = numbered(&refs, &format!("{name}_output"));
    assert!(
        !inputs.is_empty() && !wants.is_empty(),
        "{name}: no reference files"
    );
    let path = shared.join(format!("models/extra/{model}.onnx"));
    for isa in Isa::supported() {
        let options = PlanOptions {
            isa: Some(isa),
            ..PlanOptions::default()
        };
        let runner = Runner::with_options(load_model(&path).unwrap().graph, options).unwrap();
        let gots = runner.run(inputs.clone()).unwrap();
        assert_eq!(gots.len(), wants.len(), "{name}: output count");
        for (k, (got, want)) in gots.iter().zip(&wants).enumerate() {
            assert_close(&format!("{name} output {k} ({isa})"), got, want);
        }
    }
}

#[test]
fn extra_ddddocr_crnn_lstm() {
    check_extra("ddddocr-crnn");
}

/// Control flow (`If`) is not supported yet: the model is refused at load with the op,
/// node and opset named (issue 12). When `If` lands, this becomes `check_extra`.
#[test]
fn extra_silero_vad_is_refused_naming_if() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let path = shared.join("models/extra/silero-vad-op15.onnx");
    let err = Runner::new(load_model(&path).unwrap().graph)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("If") && err.contains("/model/decoder/If"),
        "{err}"
    );
}
