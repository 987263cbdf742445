//! `qtune bench MODEL (--input X.npy … | --input-shape NAME=DIMS …) [--runs N] [--json]`:
//! times FP32 inference. tests/bench/engine_vs_ort.py runs it beside ONNX Runtime.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use qtune::data::read_npy;
use qtune::engine::Runner;
use qtune::engine::kernels::{cpu_features, default_isa};
use qtune::ir::{DType, Tensor};
use qtune::onnx::load_model;

use super::shapes::{InputShape, bind_shapes, parse_input_shape};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model.
    pub model: Option<PathBuf>,
    /// Input tensors as .npy files (one per graph input).
    #[arg(long = "input", value_name = "X.npy")]
    pub inputs: Vec<PathBuf>,
    /// Random inputs of this shape instead of files, e.g. `x=1,3,224,224`.
    #[arg(long = "input-shape", value_name = "NAME=DIMS", value_parser = parse_input_shape)]
    pub input_shape: Vec<InputShape>,
    /// Timed runs (after one warm-up run), 1 to 100000.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub runs: u32,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, global_model: Option<PathBuf>) -> Result<u8> {
    let path = super::model_path(args.model, global_model)?;
    let t0 = Instant::now();
    let model = load_model(&path)?;
    let runner = Runner::new(model.graph)?;
    let inputs: Vec<Tensor> = if !args.inputs.is_empty() {
        args.inputs
            .iter()
            .map(|p| read_npy(p))
            .collect::<Result<_, _>>()?
    } else {
        let Some(shapes) = bind_shapes(runner.graph(), &args.input_shape)? else {
            bail!(
                "the model has dynamic input dimensions: pass --input X.npy or --input-shape NAME=DIMS"
            );
        };
        let g = runner.graph();
        g.inputs
            .iter()
            .zip(&shapes)
            .map(|(id, s)| random_input(g.value(*id).dtype, s))
            .collect::<Result<_>>()?
    };
    runner.run(inputs.clone())?; // builds and caches the plan
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(args.runs as usize);
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        runner.run(inputs.clone())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let chronological = times.clone();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let threads = rayon::current_num_threads();
    let isa = default_isa().name();
    let features = cpu_features();
    if args.json {
        let doc = json!({"model": path.display().to_string(), "runs": times.len(), "threads": threads,
            "median_ms": median, "min_ms": times[0], "mean_ms": mean, "load_and_first_run_ms": load_ms,
            "isa": isa, "cpu_features": features, "times_ms": chronological});
        println!("{doc}");
    } else {
        println!(
            "{}: median {median:.2} ms, min {:.2} ms, mean {mean:.2} ms over {} runs ({threads} threads, {isa} kernels; load + first run {load_ms:.0} ms)\nCPU features: {}",
            path.display(),
            times[0],
            times.len(),
            features.join(" ")
        );
    }
    Ok(0)
}

/// A deterministic pseudo-random input (uniform in [-1, 1) for floats, zeros otherwise).
fn random_input(dtype: Option<DType>, shape: &[usize]) -> Result<Tensor> {
    // The same limits the engine applies to every value, before anything is allocated.
    let n = qtune::ir::checked_numel(shape)
        .filter(|&n| n <= qtune::ir::MAX_ELEMENTS)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--input-shape {shape:?}: more than {} elements",
                qtune::ir::MAX_ELEMENTS
            )
        })?;
    let size = dtype.map_or(4, DType::size) as u64;
    qtune::util::budget::check(|| format!("--input-shape {shape:?}"), n as u64 * size)?;
    match dtype {
        Some(DType::F32) => {
            let mut state = 0x9E3779B97F4A7C15u64;
            let data = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect();
            Ok(Tensor::from_f32(shape, data))
        }
        Some(d) => Ok(Tensor::zeros(d, shape)),
        None => bail!("an input has an unsupported element type"),
    }
}
