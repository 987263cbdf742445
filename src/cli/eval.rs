//! `qtune eval -c CONFIG [--params P | --session S] [--json] [--dump-outputs DIR]`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use serde_json::json;

use qtune::jobs::{PlanFrom, quantization, score};

use super::calibrate::open;
use super::progress::Bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file (YAML; see configs/template.yaml).
    #[arg(short, long, value_name = "CONFIG")]
    pub config: PathBuf,
    /// Use this parameter record (from `qtune calibrate -o`) instead of calibrating.
    #[arg(long, value_name = "PARAMS.yaml", conflicts_with = "session")]
    pub params: Option<PathBuf>,
    /// Evaluate this session's current result (what `export --session` writes).
    #[arg(long, value_name = "S")]
    pub session: Option<PathBuf>,
    /// Machine-readable output (schema in README.md).
    #[arg(long)]
    pub json: bool,
    /// Write what was scored: DIR/NNNNN_input_K.npy (the preprocessed input K of
    /// evaluation sample NNNNN) and DIR/NNNNN_output_K.npy (its INT8 output K).
    #[arg(long, value_name = "DIR")]
    pub dump_outputs: Option<PathBuf>,
}

pub fn run(args: Args, model: Option<PathBuf>, quiet: bool) -> Result<u8> {
    let ws = open(&args.config, model)?;
    let from = match (&args.params, &args.session) {
        (Some(p), _) => PlanFrom::Params(p),
        (None, Some(s)) => PlanFrom::Session(s),
        (None, None) => PlanFrom::Calibrate,
    };
    let bar = Bar::new(
        quiet,
        ws.config.batch_count.min(ws.calib.len()),
        "calibrating",
    );
    let q = quantization(&ws, from, &|i| bar.set(i), &AtomicBool::new(false))?;
    bar.finish();
    let n = ws.eval.as_ref().map(|e| e.data.len()).unwrap_or(0);
    let bar = Bar::new(quiet, n, "FP32");
    let ev = qtune::eval::Evaluator::new(&ws, &|i| bar.set(i)).context("FP32 evaluation")?;
    bar.finish();
    let bar = Bar::new(quiet, n, "INT8");
    let scored = score(&ws, &ev, &q, &|i| bar.set(i))?;
    bar.finish();
    if let Some(dir) = &args.dump_outputs {
        dump(dir, &ws, &scored.outputs)?;
    }
    let report = &scored.report;
    if args.json {
        let doc = json!({
            "model": ws.config.model.display().to_string(),
            "model_sha256": ws.model.sha256,
            "exclude_op": q.exclude,
            "source": q.origin,
            "float_precision": if q.fp16 { "FP16" } else { "FP32" },
            "degradations": scored.degradations,
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    for d in &scored.degradations {
        eprintln!("warning: {d}");
    }
    print_report(report, &q.origin, q.fp16);
    Ok(0)
}

/// Writes each evaluation sample's inputs and scored outputs as `.npy` files.
fn dump(
    dir: &std::path::Path,
    ws: &qtune::workspace::Workspace,
    outputs: &[Vec<qtune::ir::Tensor>],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let Some(set) = ws.eval.as_ref() else {
        return Ok(());
    };
    for (i, sample) in outputs.iter().enumerate() {
        for (k, t) in set.data.load(i)?.iter().enumerate() {
            qtune::data::write_npy(&dir.join(format!("{i:05}_input_{k}.npy")), t)?;
        }
        for (k, t) in sample.iter().enumerate() {
            qtune::data::write_npy(&dir.join(format!("{i:05}_output_{k}.npy")), t)?;
        }
    }
    Ok(())
}

fn print_report(report: &qtune::eval::EvalReport, origin: &str, fp16: bool) {
    let m = report.metric.as_str();
    println!("quantization: {origin}");
    println!(
        "metric {m} on {} samples (target: drop at most {}){}",
        report.samples,
        report.max_drop,
        if fp16 { "; float parts in FP16" } else { "" }
    );
    println!("  FP32  {:.4}", report.fp32);
    println!("  INT8  {:.4}", report.int8);
    println!(
        "  delta {:+.4}  {}",
        report.delta,
        if report.target_met {
            "target met"
        } else {
            "TARGET MISSED"
        }
    );
    if let Some(why) = &report.invalid {
        println!("  INVALID: {why}");
    }
    println!(
        "  outputs: cosine {:.6}, SQNR {:.2} dB",
        report.output_cosine, report.output_sqnr_db
    );
    println!("per-layer fidelity, worst first (INT8 run against FP32):");
    let w = report
        .layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "  {:<w$}  {:<13} {:>9}  {:>9}",
        "layer", "op", "cosine", "SQNR dB"
    );
    for l in report.worst_first() {
        let mark = if l.quantized { "" } else { "  (float)" };
        println!(
            "  {:<w$}  {:<13} {:>9.6}  {:>9.2}{mark}",
            qtune::util::text::escape_control(&l.name),
            qtune::util::text::escape_control(&l.op_type),
            l.cosine,
            l.sqnr_db
        );
    }
}
