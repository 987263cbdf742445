//! Shared by the integration tests that build their own inputs: tiny ONNX models written
//! with qtune's protobuf structs, `.npy` files, and running the binary with a timeout.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use qtune::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_shape_proto::Dimension, tensor_shape_proto::dimension::Value as DimValue, type_proto,
};

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A float tensor value info; `None` dims are dynamic.
pub fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(n) => DimValue::DimValue(*n),
                                None => DimValue::DimParam("N".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn with_tensor_attr(mut n: NodeProto, attr: &str, t: TensorProto) -> NodeProto {
    n.attribute.push(AttributeProto {
        name: Some(attr.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    });
    n
}

pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

pub fn i64_tensor(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(7),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A float tensor whose data lives in an external file.
pub fn external_tensor(name: &str, dims: &[i64], location: &str, offset: u64) -> TensorProto {
    let n: i64 = dims.iter().product();
    let entry = |k: &str, v: String| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v),
    };
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(1),
        data_location: Some(1),
        external_data: vec![
            entry("location", location.into()),
            entry("offset", offset.to_string()),
            entry("length", (n * 4).to_string()),
        ],
        ..Default::default()
    }
}

/// The bytes of a model of one graph.
pub fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
    opset: i64,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("qtune-tests".into()),
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            input: inputs,
            output: outputs,
            initializer: inits,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `y = Relu(x)`, x [N, 3, 8, 8].
pub fn relu_model() -> Vec<u8> {
    model(
        vec![node("Relu", "relu", &["x"], &["y"])],
        vec![value("x", &[None, Some(3), Some(8), Some(8)])],
        vec![value("y", &[None, Some(3), Some(8), Some(8)])],
        vec![],
        13,
    )
}

/// `y = Add(x, w)` with `w` [4] held by the initializer `w` (the caller's).
pub fn add_model(w: TensorProto) -> Vec<u8> {
    model(
        vec![node("Add", "add", &["x", "w"], &["y"])],
        vec![value("x", &[Some(4)])],
        vec![value("y", &[Some(4)])],
        vec![w],
        13,
    )
}

/// The bytes of a float32 `.npy` file.
pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Runs qtune with `args` in `dir`, killing it after `limit` (then `None`).
pub fn qtune_in(dir: &Path, args: &[&str], limit: Duration) -> Option<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qtune"))
        .args(args)
        .current_dir(dir)
        .env("QTUNE_MEMORY_MB", "2048")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qtune");
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs qtune from the repository root; a run past 60 s fails the test.
pub fn qtune(args: &[&str]) -> Output {
    qtune_in(root(), args, Duration::from_secs(60)).expect("qtune finished within 60 s")
}

/// Asserts exit code 2 and one stderr line mentioning every needle.
pub fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention `{n}`: {err}");
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// A folder with a copy of the demo model and a configuration calibrating it on
/// `images` of the demo's calibration images (and evaluating on as many).
pub fn demo_workspace(images: usize) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("model.onnx");
    std::fs::copy(root().join("assets/demo/ppocr-cls.onnx"), &model).unwrap();
    let calib = d.path().join("calib");
    std::fs::create_dir(&calib).unwrap();
    let mut src: Vec<PathBuf> = std::fs::read_dir(root().join("assets/demo/calib"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    src.sort();
    for p in src.iter().take(images) {
        std::fs::copy(p, calib.join(p.file_name().unwrap())).unwrap();
    }
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model: model.onnx\nbatch_count: {images}\npreprocess_parameter:\n  - input_file_path: calib\n    mean_value: [127.5]\n    standard_deviation: [127.5]\n    resize: keep_ratio_pad\n    size: [48, 192]\n"
        ),
    )
    .unwrap();
    (d, cfg)
}
