//! Recurrent ops, control flow and data-dependent shapes against ONNX Runtime, on the
//! small models of tests/fixtures/graph (made by tests/fixtures/make_graph_fixtures.py):
//! every output of every case, floats within 1e-4 · max(1, max |ORT|), integers and
//! booleans exactly, on every instruction set this CPU supports.

use std::path::{Path, PathBuf};

use qtune::data::read_npy;
use qtune::engine::kernels::Isa;
use qtune::engine::{PlanOptions, Runner};
use qtune::ir::Tensor;
use qtune::onnx::load_model;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graph")
}

/// The case names (model stems) that start with one of `prefixes`, sorted.
fn cases(prefixes: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/fixtures/graph")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".onnx").map(str::to_string)
        })
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .collect();
    v.sort();
    v
}

fn numbered(name: &str, kind: &str) -> Vec<Tensor> {
    (0..)
        .map(|k| dir().join(format!("{name}_{kind}_{k}.npy")))
        .take_while(|p| p.exists())
        .map(|p| read_npy(&p).unwrap())
        .collect()
}

/// Runs one case; returns the largest float error relative to its bound (≤ 1 passes).
fn check(name: &str) -> f64 {
    let inputs = numbered(name, "input");
    let wants = numbered(name, "output");
    assert!(!wants.is_empty(), "{name}: no outputs");
    let mut worst = 0.0f64;
    for isa in Isa::supported() {
        let options = PlanOptions {
            isa: Some(isa),
            ..PlanOptions::default()
        };
        let graph = load_model(&dir().join(format!("{name}.onnx")))
            .unwrap()
            .graph;
        let runner = Runner::with_options(graph, options).unwrap();
        let gots = runner
            .run(inputs.clone())
            .unwrap_or_else(|e| panic!("{name} ({isa}): {e}"));
        assert_eq!(gots.len(), wants.len(), "{name}: output count");
        for (k, (got, want)) in gots.iter().zip(&wants).enumerate() {
            assert_eq!(got.shape(), want.shape(), "{name} output {k}: shape");
            assert_eq!(got.dtype(), want.dtype(), "{name} output {k}: type");
            let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
            if !want.dtype().is_float() {
                assert_eq!(g, w, "{name} output {k} ({isa})");
                continue;
            }
            let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let diff = g
                .iter()
                .zip(&w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                diff <= 1e-4 * scale,
                "{name} output {k} ({isa}): max |qtune - ORT| = {diff:e} > {:e}",
                1e-4 * scale
            );
            worst = worst.max(diff / (1e-4 * scale));
        }
    }
    worst
}

fn check_all(prefixes: &[&str], at_least: usize) {
    let names = cases(prefixes);
    assert!(
        names.len() >= at_least,
        "{prefixes:?}: {} cases in tests/fixtures/graph, expected at least {at_least} (run make_graph_fixtures.py)",
        names.len()
    );
    for n in &names {
        let w = check(n);
        eprintln!("{n}: worst error {w:.3} of the bound");
    }
}

#[test]
fn recurrent_ops_match_onnx_runtime() {
    check_all(&["lstm_", "gru_", "rnn_"], 12);
}
