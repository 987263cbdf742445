//! `qtune` with no arguments. Until the TUI lands, it runs the FP32 engine on the
//! bundled demo model and compares the result with ONNX Runtime's stored output.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use qtune::data::read_npy;
use qtune::engine::Runner;
use qtune::onnx::load_model;

const DEMO_MODEL: &str = "assets/demo/ppocr-cls.onnx";
const DEMO_INPUT: &str = "tests/fixtures/reference/ppocr-cls_input.npy";
const DEMO_OUTPUT: &str = "tests/fixtures/reference/ppocr-cls_output.npy";

pub fn run(quiet: bool) -> Result<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = load_model(&root.join(DEMO_MODEL)).context("the bundled demo model")?;
    let input = read_npy(&root.join(DEMO_INPUT))?;
    let reference = read_npy(&root.join(DEMO_OUTPUT))?;
    let batch = input.shape()[0];
    let runner = Runner::new(model.graph)?;
    let t = Instant::now();
    let out = runner.run(vec![input])?.remove(0);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let (got, want) = (out.to_f64_vec(), reference.to_f64_vec());
    let max_diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    if !quiet {
        println!("qtune demo: PP-OCR text-direction classifier ({DEMO_MODEL}), FP32, batch {batch}");
    }
    for (i, p) in got.chunks(2).enumerate() {
        println!("  line {i:2}: P(0°) = {:.4}  P(180°) = {:.4}  -> {}", p[0], p[1], if p[1] > p[0] { "180" } else { "0" });
    }
    println!("{batch} lines in {ms:.1} ms; max |qtune - ONNX Runtime| = {max_diff:.2e}");
    Ok(0)
}
