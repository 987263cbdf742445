//! Subcommands. Each returns the process exit code (0 success, 1 failed target, 130
//! interrupted `tune`);
//! errors exit with 2 (bad input) from `main`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod bench;
mod bench_tune;
mod calibrate;
mod demo;
mod eval;
mod export;
mod guard;
mod infer;
mod inspect;
mod interrupt;
mod progress;
mod review;
mod shapes;
mod tui;
mod tune;

/// Post-training INT8 quantization of ONNX models: calibrate, simulate, measure, tune.
#[derive(Parser, Debug)]
#[command(name = "qtune", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads, 1 to 1024 (default: one per core).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Model file; overrides the model named in a configuration.
    #[arg(long, global = true, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Print only results and errors (no progress).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Terminal UI: ASCII only (no braille, block or box-drawing glyphs). Also implied by
    /// a locale that is not UTF-8.
    #[arg(long, global = true)]
    pub ascii: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a model's inputs, outputs, op counts, quantizable layers and unsupported ops.
    Inspect(inspect::Args),
    /// FP32 inference: writes DIR/output_K.npy for each graph output, in graph order.
    Infer(infer::Args),
    /// Calibrate a model with a configuration; write the parameter record.
    Calibrate(calibrate::Args),
    /// Measure FP32 and INT8 accuracy, their delta, and per-layer fidelity.
    Eval(eval::Args),
    /// Write the quantized model as QDQ ONNX and/or a TensorRT calibration cache.
    Export(export::Args),
    /// Time FP32 inference of a model (median of repeated runs).
    Bench(bench::Args),
    /// Time exclude_op toggles (incremental re-evaluation) and new stage-5 settings on a
    /// configuration.
    #[command(name = "bench-tune")]
    BenchTune(bench_tune::Args),
    /// Run the tuning flow (stages 1-8) headless into a session; exit 1 if the target is
    /// missed. Ctrl-C stops at the next safe point, saves, and exits 130; the same command
    /// resumes.
    Tune(tune::Args),
    /// The terminal UI on a configuration: live histograms, curves, accuracy, stages.
    Tui(tui::Args),
    /// A saved session in the terminal UI, read-only; no model or data needed.
    Review(review::Args),
    /// Frame draw time of the terminal UI on a synthetic session.
    #[command(name = "bench-tui", hide = true)]
    BenchTui(tui::BenchArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<u8> {
    // An override naming no ISA, or one this CPU lacks, is refused before any work.
    qtune::engine::kernels::isa_from_env().context(qtune::engine::kernels::ISA_ENV)?;
    if let Ok(v) = std::env::var(qtune::engine::INT8_ENV)
        && qtune::engine::Int8Mode::parse(&v).is_none()
    {
        anyhow::bail!(
            "{}: `{v}` is not one of float, int, auto",
            qtune::engine::INT8_ENV
        );
    }
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global()
            .context("starting the thread pool")?;
    }
    match cli.command {
        None => tui::demo(cli.quiet, cli.ascii),
        Some(Command::Inspect(a)) => inspect::run(a, cli.model),
        Some(Command::Infer(a)) => infer::run(a, cli.model),
        Some(Command::Calibrate(a)) => calibrate::run(a, cli.model, cli.quiet),
        Some(Command::Eval(a)) => eval::run(a, cli.model, cli.quiet),
        Some(Command::Export(a)) => export::run(a, cli.model, cli.quiet),
        Some(Command::Bench(a)) => bench::run(a, cli.model),
        Some(Command::BenchTune(a)) => bench_tune::run(a, cli.model),
        Some(Command::Tune(a)) => tune::run(a, cli.model, cli.quiet),
        Some(Command::Tui(a)) => tui::run(a, cli.model, cli.ascii),
        Some(Command::Review(a)) => review::run(a, cli.ascii),
        Some(Command::BenchTui(a)) => tui::bench(a),
    }
}

/// The model path: the positional argument, or `--model`.
fn model_path(positional: Option<PathBuf>, global: Option<PathBuf>) -> Result<PathBuf> {
    positional
        .or(global)
        .context("no model given (pass MODEL or --model PATH)")
}
