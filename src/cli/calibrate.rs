//! `qtune calibrate -c CONFIG [-o PARAMS.yaml] [--json]`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;

use qtune::util::text::escape_control;
use qtune::workspace::Workspace;

use super::progress::Bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file (YAML; see configs/template.yaml).
    #[arg(short, long, value_name = "CONFIG")]
    pub config: PathBuf,
    /// Write the parameter record here (YAML).
    #[arg(short, long, value_name = "PARAMS.yaml")]
    pub output: Option<PathBuf>,
    /// Print the parameter record as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Opens the workspace of a configuration, applying `--model`.
pub fn open(config: &std::path::Path, model: Option<PathBuf>) -> Result<Workspace> {
    let mut cfg = qtune::config::Config::load(config)?;
    if let Some(m) = model {
        cfg.model = m;
    }
    let ws = Workspace::open(cfg)?;
    for n in &ws.notes {
        eprintln!("note: {}", escape_control(n));
    }
    Ok(ws)
}

pub fn run(args: Args, model: Option<PathBuf>, quiet: bool) -> Result<u8> {
    let t0 = Instant::now();
    let ws = open(&args.config, model)?;
    if let Some(out) = &args.output {
        super::guard::check(
            &[("-o", out)],
            &super::guard::config_inputs(&args.config, &ws.config),
        )?;
    }
    let n = ws.config.batch_count.min(ws.calib.len());
    let bar = Bar::new(quiet, n, "calibrating");
    let (plan, samples) = ws.calibrate(&|i| bar.set(i), &AtomicBool::new(false))?;
    bar.finish();
    let record = ws.record(plan, samples);
    if let Some(out) = &args.output {
        record.save(out)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(0);
    }
    let p = &record.plan;
    println!(
        "{}: {} layers, {} activations calibrated on {samples} sample(s) in {:.2} s ({} {}, bin {}, {} {}..{} step {}, max_percentile {})",
        ws.config.model.display(),
        p.layers.len(),
        p.activations.len(),
        t0.elapsed().as_secs_f64(),
        p.algo,
        ws.config.weight_type,
        ws.config.search.effective_bin(),
        ws.config.search.divergence,
        ws.config.search.start_ratio,
        ws.config.search.end_ratio,
        ws.config.search.step_ratio,
        ws.config.search.max_percentile
    );
    if samples < ws.config.batch_count {
        eprintln!(
            "warning: batch_count is {}, but only {samples} calibration sample(s) exist",
            ws.config.batch_count
        );
    }
    let w = p
        .layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<w$}  {:<13} {:>22}  {:>11}  {:>4}  {:>5}  {:>10}  weight scales",
        "layer", "op", "range", "scale", "zp", "ratio", "divergence"
    );
    for l in &p.layers {
        let a = l.activations.first().and_then(|a| p.activations.get(a));
        let (range, scale, zp, ratio, div) = match a {
            Some(a) => (
                format!("[{:.4}, {:.4}]", a.lo + 0.0, a.hi + 0.0),
                format!("{:.6}", a.scale),
                a.zero_point().to_string(),
                a.ratio
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_else(|| "-".into()),
                a.divergence()
                    .map(|d| format!("{d:.3e}"))
                    .unwrap_or_else(|| "-".into()),
            ),
            None => (
                "(float)".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ),
        };
        let ws_text = p
            .weights
            .get(&l.name)
            .map(|wq| {
                let (lo, hi) = wq
                    .scales
                    .iter()
                    .fold((f32::MAX, 0f32), |(a, b), &s| (a.min(s), b.max(s)));
                if wq.scales.len() == 1 {
                    format!("{lo:.3e}")
                } else {
                    format!("{} ch, {lo:.2e}..{hi:.2e}", wq.scales.len())
                }
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<w$}  {:<13} {range:>22}  {scale:>11}  {zp:>4}  {ratio:>5}  {div:>10}  {ws_text}",
            escape_control(&l.name),
            escape_control(&l.op_type)
        );
    }
    for (name, p) in &p.activations {
        for warn in p.warnings() {
            eprintln!("warning: `{}`: {warn}", escape_control(name));
        }
    }
    for (name, why) in &p.uncalibrated {
        eprintln!("warning: `{}` stays float: {why}", escape_control(name));
    }
    if let Some(out) = &args.output {
        println!("parameter record written to {}", out.display());
    }
    Ok(0)
}
