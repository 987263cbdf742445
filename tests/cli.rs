//! The command line as users and scripts call it: outputs, exit codes, and one clear
//! line on stderr (exit code 2, never a panic) for every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bad(name: &str) -> PathBuf {
    root().join("tests/fixtures/bad").join(name)
}

fn qtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qtune"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run qtune")
}

/// Asserts exit code 2 and a single stderr line containing every `needle`.
fn assert_bad_input(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr, got: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention `{n}`: {err}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn not_protobuf_is_refused() {
    let out = qtune(&["inspect", s(&bad("not_onnx.onnx"))]);
    assert_bad_input(&out, &["not_onnx.onnx"]);
}

#[test]
fn truncated_model_is_refused() {
    let out = qtune(&["inspect", s(&bad("truncated.onnx"))]);
    assert_bad_input(&out, &["truncated.onnx"]);
}

#[test]
fn unsupported_op_names_type_node_and_opset() {
    let out = qtune(&[
        "infer",
        s(&bad("unsupported_op.onnx")),
        "--input",
        s(&bad("x_ok.npy")),
        "--out",
        "/tmp/qtune-x",
    ]);
    assert_bad_input(&out, &["Unique", "unique_scores", "opset 11"]);
    // inspect lists it instead of failing
    let out = qtune(&["inspect", s(&bad("unsupported_op.onnx")), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["unsupported"][0]["op_type"], "Unique");
    assert_eq!(doc["unsupported"][0]["node"], "unique_scores");
}

#[test]
fn wrong_rank_and_dtype_are_refused() {
    let relu = bad("relu.onnx");
    let out = qtune(&[
        "infer",
        s(&relu),
        "--input",
        s(&bad("x_rank3.npy")),
        "--out",
        "/tmp/qtune-x",
    ]);
    assert_bad_input(&out, &["`x`", "[3,8,8]"]);
    let out = qtune(&[
        "infer",
        s(&relu),
        "--input",
        s(&bad("x_float64.npy")),
        "--out",
        "/tmp/qtune-x",
    ]);
    assert_bad_input(&out, &["`x`", "float64"]);
}

#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let x = bad("x_ok.npy");
    for m in ["huge_initializer.onnx", "huge_constant_of_shape.onnx"] {
        let out = qtune(&[
            "infer",
            s(&bad(m)),
            "--input",
            s(&x),
            "--out",
            "/tmp/qtune-x",
        ]);
        assert_bad_input(&out, &["1000000000000"]);
    }
    let out = qtune(&["inspect", s(&bad("huge_input.onnx"))]);
    assert_bad_input(&out, &["1000000000000"]);
}

#[test]
fn npy_that_is_not_one_is_refused() {
    let out = qtune(&[
        "infer",
        s(&bad("relu.onnx")),
        "--input",
        s(&bad("not_npy.npy")),
        "--out",
        "/tmp/qtune-x",
    ]);
    assert_bad_input(&out, &["not_npy.npy", "not a .npy"]);
}

#[test]
fn infer_writes_one_npy_per_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = qtune(&[
        "infer",
        s(&bad("relu.onnx")),
        "--input",
        s(&bad("x_ok.npy")),
        "--out",
        s(dir.path()),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = qtune::data::read_npy(&dir.path().join("output_0.npy")).unwrap();
    let x = qtune::data::read_npy(&bad("x_ok.npy")).unwrap();
    let expect: Vec<f64> = x.to_f64_vec().iter().map(|v| v.max(0.0)).collect();
    assert_eq!(y.shape(), x.shape());
    assert_eq!(y.to_f64_vec(), expect);
}

#[test]
fn inspect_json_lists_layers() {
    let out = qtune(&[
        "inspect",
        "assets/demo/ppocr-cls.onnx",
        "--input-shape",
        "x=1,3,48,192",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["opset"], 11);
    assert_eq!(
        doc["inputs"][0]["bound"],
        serde_json::json!([1, 3, 48, 192])
    );
    assert_eq!(doc["outputs"][0]["bound"], serde_json::json!([1, 2]));
    let layers = doc["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 54);
    assert_eq!(layers[0]["op_type"], "Conv");
    assert!(doc["unsupported"].as_array().unwrap().is_empty());
}

/// A model whose only node is a Constant: it has no graph inputs.
fn constant_model(dir: &Path) -> PathBuf {
    use prost::Message;
    use qtune::onnx::proto::*;
    let value = TensorProto {
        dims: vec![2],
        data_type: Some(1),
        float_data: vec![1.5, -2.0],
        name: Some("v".into()),
        ..Default::default()
    };
    let node = NodeProto {
        op_type: Some("Constant".into()),
        output: vec!["y".into()],
        attribute: vec![AttributeProto {
            name: Some("value".into()),
            r#type: Some(attribute_proto::AttributeType::Tensor as i32),
            t: Some(value),
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = ValueInfoProto {
        name: Some("y".into()),
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![node],
            output: vec![out],
            name: Some("g".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = dir.join("constant.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

#[test]
fn infer_runs_a_model_without_inputs_and_missing_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let m = constant_model(dir.path());
    let out_dir = dir.path().join("out");
    let out = qtune(&["infer", s(&m), "--out", s(&out_dir)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let y = qtune::data::read_npy(&out_dir.join("output_0.npy")).unwrap();
    assert_eq!(y.to_f64_vec(), vec![1.5, -2.0]);
    // an --input too many is counted against the model's inputs
    let out = qtune(&[
        "infer",
        s(&m),
        "--input",
        s(&bad("x_ok.npy")),
        "--out",
        s(&out_dir),
    ]);
    assert_bad_input(&out, &["0 input(s)", "1 --input given"]);
    // clap's list of what is missing stays on the one line
    assert_bad_input(&qtune(&["infer", s(&m)]), &["not provided", "--out <DIR>"]);
}
