//! `qtune calibrate` / `qtune eval` end to end on the demo, and their bad-input errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn qtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qtune"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run qtune")
}

fn assert_bad_input(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr, got: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr should mention `{n}`: {err}");
    }
}

/// A config for the demo model with its calibration data replaced by `calib` (a
/// preprocess entry written by the caller).
fn config(dir: &Path, entry: &str) -> PathBuf {
    let model = root().join("assets/demo/ppocr-cls.onnx");
    let text = format!(
        "model: {}\nbatch_count: 4\npreprocess_parameter:\n{entry}",
        model.display()
    );
    let path = dir.join("c.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_config_value_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "model: m.onnx\nquantize_algo: FULL_OFFSET\n").unwrap();
    let out = qtune(&["calibrate", "-c", path.to_str().unwrap()]);
    assert_bad_input(
        &out,
        &["bad.yaml:2", "quantize_algo", "FULL_OFFSET", "HALF_OFFSET"],
    );
}

#[test]
fn missing_data_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        dir.path(),
        "  - input_type: IMAGE\n    input_file_path: no/such/folder\n    size: [48, 192]\n",
    );
    let out = qtune(&["calibrate", "-c", c.to_str().unwrap()]);
    assert_bad_input(&out, &["no/such/folder"]);
}

#[test]
fn broken_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    std::fs::copy(
        root().join("assets/demo/calib/0000.png"),
        imgs.join("a.png"),
    )
    .unwrap();
    std::fs::write(
        imgs.join("b.png"),
        b"\x89PNG\r\n\x1a\nthis is not really a png",
    )
    .unwrap();
    let c = config(
        dir.path(),
        &format!(
            "  - input_type: IMAGE\n    input_file_path: {}\n    size: [48, 192]\n",
            imgs.display()
        ),
    );
    let out = qtune(&["calibrate", "-c", c.to_str().unwrap()]);
    assert_bad_input(&out, &["b.png", "not a readable PNG or JPEG"]);
}

#[test]
fn binary_with_wrong_magic_or_short_payload_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes: Vec<u8> = [510i32, 2, 3, 48, 192]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    bytes.extend(std::iter::repeat_n(0u8, 2 * 3 * 48 * 192 * 4 - 8));
    let short = dir.path().join("short.bin");
    std::fs::write(&short, &bytes).unwrap();
    let c = config(
        dir.path(),
        &format!(
            "  - input_type: BINARY\n    input_file_path: {}\n",
            short.display()
        ),
    );
    assert_bad_input(
        &qtune(&["calibrate", "-c", c.to_str().unwrap()]),
        &["short.bin", "payload"],
    );
    bytes[0] = 0;
    let magic = dir.path().join("magic.bin");
    std::fs::write(&magic, &bytes).unwrap();
    let c = config(
        dir.path(),
        &format!(
            "  - input_type: BINARY\n    input_file_path: {}\n",
            magic.display()
        ),
    );
    assert_bad_input(
        &qtune(&["calibrate", "-c", c.to_str().unwrap()]),
        &["magic.bin", "magic number"],
    );
}

#[test]
fn binary_calibration_file_works() {
    let dir = tempfile::tempdir().unwrap();
    let x = qtune::data::read_npy(&root().join("tests/fixtures/reference/ppocr-cls_input.npy"))
        .unwrap();
    let bin = dir.path().join("calib.bin");
    std::fs::write(&bin, qtune::data::binary::binary_bytes(&x).unwrap()).unwrap();
    let c = config(
        dir.path(),
        &format!(
            "  - input_type: BINARY\n    input_file_path: {}\n",
            bin.display()
        ),
    );
    let out = qtune(&["calibrate", "-c", c.to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["calibration_samples"], 4);
    assert_eq!(doc["plan"]["layers"].as_array().unwrap().len(), 54);
}

#[test]
fn demo_int8_loses_at_most_one_point() {
    let out = qtune(&["--quiet", "eval", "-c", "configs/default.yaml", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &doc["report"];
    let (fp32, int8) = (r["fp32"].as_f64().unwrap(), r["int8"].as_f64().unwrap());
    assert_eq!(r["samples"], 300);
    // ONNX Runtime's FP32 top-1 on these 300 lines is 0.990 with the same preprocessing.
    assert!((fp32 - 0.99).abs() < 0.0034, "FP32 top-1 {fp32}");
    assert!(int8 >= fp32 - 0.01, "INT8 top-1 {int8} vs FP32 {fp32}");
    assert_eq!(r["layers"].as_array().unwrap().len(), 54);
}

#[test]
fn params_of_another_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.yaml");
    let out = qtune(&[
        "--quiet",
        "calibrate",
        "-c",
        "configs/default.yaml",
        "-o",
        p.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("model_sha256: ", "model_sha256: 00");
    std::fs::write(&p, text).unwrap();
    let out = qtune(&[
        "eval",
        "-c",
        "configs/default.yaml",
        "--params",
        p.to_str().unwrap(),
    ]);
    assert_bad_input(&out, &["another model"]);
    let out = qtune(&[
        "export",
        "--params",
        p.to_str().unwrap(),
        "--qdq",
        dir.path().join("q.onnx").to_str().unwrap(),
    ]);
    assert_bad_input(&out, &["another model"]);
}

/// The demo model's height and width are dynamic: without `size`, the images' own size
/// is used when they all agree (and said on stderr); otherwise the error says why.
#[test]
fn a_dynamic_height_and_width_are_taken_from_images_that_agree() {
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("same");
    std::fs::create_dir(&same).unwrap();
    for i in 0..3 {
        std::fs::copy(
            root().join("assets/demo/calib/0000.png"),
            same.join(format!("{i}.png")),
        )
        .unwrap();
    }
    let entry = format!(
        "  - input_file_path: {}\n    mean_value: [127.5]\n    standard_deviation: [127.5]\n",
        same.display()
    );
    let out = qtune(&[
        "calibrate",
        "-c",
        config(dir.path(), &entry).to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("note: input `x`: the model's height and width are dynamic")
            && err.contains("taken from the 3 calibration image(s)"),
        "{err}"
    );

    let mixed = root().join("tests/fixtures/preprocess");
    let entry = format!("  - input_file_path: {}\n", mixed.display());
    let out = qtune(&[
        "calibrate",
        "-c",
        config(dir.path(), &entry).to_str().unwrap(),
    ]);
    assert_bad_input(
        &out,
        &["dynamic height or width", "differ in size", "size: [H, W]"],
    );

    let entry = format!(
        "  - input_file_path: {}\n    resize: letterbox\n",
        same.display()
    );
    let out = qtune(&[
        "calibrate",
        "-c",
        config(dir.path(), &entry).to_str().unwrap(),
    ]);
    assert_bad_input(&out, &["`resize: letterbox` needs a target size"]);
}

#[test]
fn crop_and_short_side_belong_to_the_short_side_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let calib = root().join("tests/fixtures/preprocess");
    for (extra, needles) in [
        (
            "    crop: [112, 112]\n",
            &["c.yaml:", "crop", "only with `resize: short_side`"][..],
        ),
        (
            "    resize: short_side\n    size: [112, 112]\n    crop: [96, 96]\n",
            &["crop", "differs from `size`"][..],
        ),
        (
            "    resize: short_side\n    short_side: 0\n    crop: [96, 96]\n",
            &["short_side", "allowed: 1..=16384"][..],
        ),
    ] {
        let entry = format!("  - input_file_path: {}\n{extra}", calib.display());
        let out = qtune(&[
            "calibrate",
            "-c",
            config(dir.path(), &entry).to_str().unwrap(),
        ]);
        assert_bad_input(&out, needles);
    }
    // The recipe itself runs (the demo takes any H×W).
    let entry = format!(
        "  - input_file_path: {}\n    resize: short_side\n    short_side: 56\n    crop: [48, 48]\n",
        calib.display()
    );
    let out = qtune(&[
        "calibrate",
        "-c",
        config(dir.path(), &entry).to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
