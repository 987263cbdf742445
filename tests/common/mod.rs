//! Running one ONNX backend test case (model.onnx + test_data_set_N/input_K.pb, output_K.pb)
//! through the loader, the analysis and the engine, shared by tests/conformance.rs and
//! tests/onnx_suite.rs.

#![allow(dead_code)]

use std::path::Path;

use prost::Message;
use qtune::engine::kernels::Isa;
use qtune::engine::{Plan, PlanOptions};
use qtune::ir::{MAX_ELEMENTS, Tensor};
use qtune::onnx::attrs::tensor_from_proto;
use qtune::onnx::load_model;
use qtune::onnx::proto::TensorProto;

/// How a case ended.
#[derive(Debug)]
pub enum Outcome {
    /// Every output of every data set matched.
    Pass,
    /// qtune returned an error (load, plan or run): the message.
    Refused(String),
    /// qtune computed outputs that do not match: which and how.
    Wrong(String),
    /// qtune panicked: the panic message.
    Crash(String),
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

/// numpy's `allclose(got, want, rtol=1e-3, atol=1e-7)` with NaN equal to NaN, after
/// checking type and shape (the ONNX backend runner's comparison).
pub fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
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

/// The data sets of a case, in order.
fn data_sets(dir: &Path) -> Vec<std::path::PathBuf> {
    (0..)
        .map(|k| dir.join(format!("test_data_set_{k}")))
        .take_while(|p| p.is_dir())
        .collect()
}

/// Runs one case; an error of qtune is `Err(Refused)`, a mismatch `Err(Wrong)`.
fn run_case_inner(dir: &Path, isa: Option<Isa>) -> Outcome {
    let model = match load_model(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    for data in data_sets(dir) {
        let inputs = match numbered(&data, "input") {
            Ok(v) => v,
            Err(e) => return Outcome::Refused(e),
        };
        let expected = match numbered(&data, "output") {
            Ok(v) => v,
            Err(e) => return Outcome::Refused(e),
        };
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let options = PlanOptions {
            isa,
            ..PlanOptions::default()
        };
        let plan = Plan::with_options(&model.graph, &shapes, options);
        let outputs = match plan.and_then(|p| p.run(inputs)) {
            Ok(o) => o,
            Err(e) => return Outcome::Refused(e.to_string()),
        };
        if outputs.len() != expected.len() {
            return Outcome::Wrong(format!(
                "{} outputs instead of {}",
                outputs.len(),
                expected.len()
            ));
        }
        for (k, (g, w)) in outputs.iter().zip(&expected).enumerate() {
            if let Err(e) = close(g, w) {
                return Outcome::Wrong(format!("output {k}: {e}"));
            }
        }
    }
    Outcome::Pass
}

/// Runs one case with the kernels the CPU supports best.
pub fn run_case(dir: &Path) -> Outcome {
    run_case_on(dir, None)
}

/// Runs one case with the kernels of `isa` (`None`: the best the CPU supports), catching
/// a panic as `Crash` so that one case cannot end a run.
pub fn run_case_on(dir: &Path, isa: Option<Isa>) -> Outcome {
    match std::panic::catch_unwind(|| run_case_inner(dir, isa)) {
        Ok(o) => o,
        Err(p) => Outcome::Crash(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()),
        ),
    }
}
