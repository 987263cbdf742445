//! The ONNX backend node tests (tests/fixtures/onnx-node, copied from onnx 1.23):
//! every case runs through the loader, the analysis and the engine, and its outputs
//! must match the expected ones (numpy's allclose with ONNX's rtol 1e-3, atol 1e-7).
//! Cases that are not run are listed, each with a reason, in tests/fixtures/onnx-node-skip.txt.
//!
//! Every case runs once per instruction set this CPU supports (scalar, AVX2, AVX-512
//! kernels), each plan forced to it.
//!
//! `QTUNE_CONFORMANCE=substring cargo test --release --test conformance -- --nocapture`
//! runs only the matching cases and prints each failure.

use std::path::{Path, PathBuf};

use prost::Message;
use qtune::engine::kernels::Isa;
use qtune::engine::{Plan, PlanOptions};
use qtune::ir::{MAX_ELEMENTS, Tensor};
use qtune::onnx::attrs::tensor_from_proto;
use qtune::onnx::load_model;
use qtune::onnx::proto::TensorProto;

const MIN_PASSING: usize = 540;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_pb(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tp =
        TensorProto::decode(bytes.as_slice()).map_err(|e| format!("{}: {e}", path.display()))?;
    tensor_from_proto(&tp, None, MAX_ELEMENTS).map_err(|e| format!("{}: {e}", path.display()))
}

fn numbered(dir: &Path, prefix: &str) -> Result<Vec<Tensor>, String> {
    (0..)
        .map(|k| dir.join(format!("{prefix}_{k}.pb")))
        .take_while(|p| p.exists())
        .map(|p| read_pb(&p))
        .collect()
}

fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!(
            "type {} instead of {}",
            got.dtype().name(),
            want.dtype().name()
        ));
    }
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?} instead of {:?}",
            got.shape(),
            want.shape()
        ));
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= 1e-7 + 1e-3 * b.abs()
        };
        if !ok {
            return Err(format!("element {i}: {a} instead of {b}"));
        }
    }
    Ok(())
}

fn run_case(dir: &Path, isa: Isa) -> Result<(), String> {
    let model = load_model(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let data = dir.join("test_data_set_0");
    let inputs = numbered(&data, "input")?;
    let expected = numbered(&data, "output")?;
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    let options = PlanOptions {
        isa: Some(isa),
        ..PlanOptions::default()
    };
    let plan = Plan::with_options(&model.graph, &shapes, options).map_err(|e| e.to_string())?;
    let outputs = plan.run(inputs).map_err(|e| e.to_string())?;
    if outputs.len() != expected.len() {
        return Err(format!(
            "{} outputs instead of {}",
            outputs.len(),
            expected.len()
        ));
    }
    for (k, (g, w)) in outputs.iter().zip(&expected).enumerate() {
        close(g, w).map_err(|e| format!("output {k}: {e}"))?;
    }
    Ok(())
}

fn skip_list() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(fixtures().join("onnx-node-skip.txt")).expect("skip manifest");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (name.to_string(), reason.trim().to_string())
        })
        .collect()
}

#[test]
fn onnx_backend_node_tests() {
    let root = fixtures().join("onnx-node");
    let filter = std::env::var("QTUNE_CONFORMANCE").ok();
    let skips = skip_list();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for (name, reason) in &skips {
        assert!(
            root.join(name).exists(),
            "skip manifest names `{name}`, which is not a case"
        );
        assert!(
            !reason.is_empty(),
            "skip manifest: `{name}` needs a one-line reason"
        );
    }
    let (mut passed, mut failed) = (Vec::new(), Vec::new());
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        if filter.is_none() && skips.iter().any(|(s, _)| *s == name) {
            continue;
        }
        let mut ok = true;
        for isa in Isa::supported() {
            let result = std::panic::catch_unwind(|| run_case(dir, isa))
                .unwrap_or_else(|_| Err("panicked".into()));
            if let Err(e) = result {
                failed.push(format!("{name} ({isa}): {e}"));
                ok = false;
            }
        }
        if ok {
            passed.push(name);
        }
    }
    for f in &failed {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "conformance on {:?}: {} passed, {} failed, {} skipped",
        Isa::supported(),
        passed.len(),
        failed.len(),
        skips.len()
    );
    if filter.is_none() {
        assert!(
            failed.is_empty(),
            "{} conformance cases fail:\n{}",
            failed.len(),
            failed.join("\n")
        );
        assert!(
            passed.len() >= MIN_PASSING,
            "only {} cases pass",
            passed.len()
        );
        assert_eq!(passed.len() + skips.len(), cases.len());
    }
}
