//! The ONNX backend node tests (tests/fixtures/onnx-node, copied from onnx 1.23):
//! every case runs through the loader, the analysis and the engine, and its outputs
//! must match the expected ones (numpy's allclose with ONNX's rtol 1e-3, atol 1e-7).
//! Cases that are not run are listed, each with a reason, in tests/fixtures/onnx-node-skip.txt.
//!
//! `QTUNE_CONFORMANCE=substring cargo test --release --test conformance -- --nocapture`
//! runs only the matching cases and prints each failure.

mod common;

use std::path::{Path, PathBuf};

use common::{Outcome, run_case_on};
use qtune::engine::kernels::Isa;

const MIN_PASSING: usize = 540;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
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
        // Every kernel path the CPU supports must pass.
        let mut ok = true;
        for isa in Isa::supported() {
            let why = match run_case_on(dir, Some(isa)) {
                Outcome::Pass => continue,
                Outcome::Refused(e) => format!("refused: {e}"),
                Outcome::Wrong(e) => format!("wrong: {e}"),
                Outcome::Crash(e) => format!("panicked: {e}"),
            };
            failed.push(format!("{name} ({isa}): {why}"));
            ok = false;
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
