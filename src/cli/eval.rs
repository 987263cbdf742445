//! `qtune eval -c CONFIG [--params P] [--json]`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use serde_json::json;

use qtune::quant::ParamsRecord;
use qtune::quant::export::simulate;

use super::calibrate::open;
use super::progress::Bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file (YAML; see configs/template.yaml).
    #[arg(short, long, value_name = "CONFIG")]
    pub config: PathBuf,
    /// Use this parameter record (from `qtune calibrate -o`) instead of calibrating.
    #[arg(long, value_name = "PARAMS.yaml")]
    pub params: Option<PathBuf>,
    /// Machine-readable output (schema in README.md).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, model: Option<PathBuf>, quiet: bool) -> Result<u8> {
    let ws = open(&args.config, model)?;
    let plan = match &args.params {
        Some(p) => {
            let r = ParamsRecord::load(p)?;
            r.check_model(p, &ws.model.sha256, &ws.layer_names())?;
            r.plan
        }
        None => {
            let bar = Bar::new(
                quiet,
                ws.config.batch_count.min(ws.calib.len()),
                "calibrating",
            );
            let (plan, _) = ws.calibrate(&|i| bar.set(i), &AtomicBool::new(false))?;
            bar.finish();
            plan
        }
    };
    let exclude: HashSet<String> = ws.config.exclude_op.iter().cloned().collect();
    let names: HashSet<String> = ws.layer_names().into_iter().collect();
    if let Some(bad) = exclude.iter().find(|e| !names.contains(*e)) {
        anyhow::bail!(
            "{}: exclude_op names `{bad}`, which is not a quantizable layer of the model (see `qtune inspect`)",
            args.config.display()
        );
    }
    let (sim, warnings) = simulate(&ws.graph, &plan, &exclude)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let n = ws.eval.as_ref().map(|e| e.data.len()).unwrap_or(0);
    let bar = Bar::new(quiet, n, "FP32");
    let ev = qtune::eval::Evaluator::new(&ws, &|i| bar.set(i)).context("FP32 evaluation")?;
    bar.finish();
    let bar = Bar::new(quiet, n, "INT8");
    let quantized = |name: &str| {
        !exclude.contains(name) && plan.layer(name).is_some_and(|l| plan.is_calibrated(l))
    };
    let fp16 = ws.config.float_precision == qtune::config::FloatPrecision::Fp16;
    let report = ev.evaluate(&sim, &quantized, fp16, &|i| bar.set(i))?;
    bar.finish();
    if args.json {
        let doc = json!({
            "model": ws.config.model.display().to_string(),
            "model_sha256": ws.model.sha256,
            "exclude_op": ws.config.exclude_op,
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    let m = report.metric.as_str();
    println!(
        "metric {m} on {} samples (target: drop at most {})",
        report.samples, report.max_drop
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
            l.name, l.op_type, l.cosine, l.sqnr_db
        );
    }
    Ok(0)
}
