//! `qtune bench-tune -c CONFIG`: times what the tuner does most — an exclude_op toggle
//! re-evaluated incrementally, for layers early, in the middle and late in the graph, and a
//! full evaluation of a new setting — so the speed targets can be re-measured any time.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use qtune::session::{Origin, StageId};
use qtune::tune::{Quiet, Request, Tuner, grid};

use super::calibrate::open;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file.
    #[arg(short, long, value_name = "CONFIG")]
    pub config: PathBuf,
    /// Toggles per layer position (each toggle off and back on counts two), 1 to 1000.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub repeat: u16,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Times the first running estimate of an evaluation (what the TUI shows first).
struct FirstEstimate {
    t0: Instant,
    first: std::sync::Mutex<Option<f64>>,
}

impl FirstEstimate {
    fn start() -> FirstEstimate {
        FirstEstimate {
            t0: Instant::now(),
            first: std::sync::Mutex::new(None),
        }
    }

    fn seconds(&self) -> Option<f64> {
        self.first.lock().ok().and_then(|f| *f)
    }
}

impl qtune::tune::Observer for FirstEstimate {
    fn estimate(&self, _e: &qtune::eval::Estimate) {
        if let Ok(mut f) = self.first.lock() {
            f.get_or_insert_with(|| self.t0.elapsed().as_secs_f64());
        }
    }
}

fn min_of(v: &mut [f64]) -> Option<f64> {
    v.iter().copied().min_by(f64::total_cmp)
}

fn median_of(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

pub fn run(args: Args, model: Option<PathBuf>) -> Result<u8> {
    let ws = open(&args.config, model)?;
    if ws.layers.is_empty() {
        anyhow::bail!(
            "{}: the model has no quantizable layers (Conv, ConvTranspose, Gemm, MatMul): nothing to toggle",
            ws.config.model.display()
        );
    }
    let t0 = Instant::now();
    let ev = qtune::eval::Evaluator::new(&ws, &|_| {}).context("FP32 evaluation")?;
    let fp32_s = t0.elapsed().as_secs_f64();
    let mut tuner = Tuner::new(&ws, &ev, qtune::tune::new_session(&ws, &ev), None)?;
    // Every toggle runs, even back to a state evaluated before.
    tuner.reuse = false;
    let t0 = Instant::now();
    tuner.run_stage(StageId::Calibrate, &Quiet)?;
    let stage1_s = t0.elapsed().as_secs_f64();
    let names = ws.layer_names();
    let n = names.len();
    let picks = [
        (0, "first"),
        (n / 2, "middle"),
        (n.saturating_sub(1), "last"),
    ];
    let mut toggles = Vec::new();
    for (k, where_) in picks {
        let (mut times, mut firsts) = (Vec::new(), Vec::new());
        let mut rerun = 0;
        let name = names.get(k).cloned().unwrap_or_default();
        for _ in 0..args.repeat {
            for _ in 0..2 {
                let first = FirstEstimate::start();
                let i = tuner.toggle(&name, &first)?;
                times.push(first.t0.elapsed().as_secs_f64());
                firsts.extend(first.seconds());
                rerun = tuner.session.evaluation(i).map_or(0, |e| e.rerun.nodes_run);
            }
        }
        let (min, median) = (min_of(&mut times), median_of(&mut times));
        toggles.push(json!({
            "layer": name, "position": where_, "index": k,
            "min_s": min, "median_s": median,
            "median_first_estimate_s": median_of(&mut firsts),
            "steps_rerun": rerun, "steps_total": tuner.session.evaluations().next_back().map(|(_, e)| e.rerun.nodes_total),
        }));
    }
    // New settings as stage 5 meets them: stage 5's grid at the configured batch_count
    // (its histograms are collected already), each searched then evaluated in full.
    let configured = grid::configured(&ws.config);
    let fresh: Vec<_> = grid::traversal(&ws.config.tune.grid)
        .into_iter()
        .filter(|s| s.batch_count == configured.batch_count)
        .filter(|s| tuner.session.find_setting(s).is_none())
        .take(2 * args.repeat as usize)
        .collect();
    let (mut search_times, mut eval_times) = (Vec::new(), Vec::new());
    for setting in &fresh {
        let t = Instant::now();
        let i = tuner.register(setting, &Quiet)?;
        search_times.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        tuner.evaluate(
            Request {
                stage: StageId::Traverse,
                origin: Origin::Flow,
                setting: Some(i),
                exclude: Vec::new(),
                fp16: tuner.fp16(),
                rebase: false,
                // Timing a full evaluation of a new setting: no race.
                race: qtune::tune::Race::None,
            },
            &Quiet,
        )?;
        eval_times.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let new_setting = json!({
        "settings": fresh.len(),
        "median_search_s": median(&mut search_times),
        "median_evaluation_s": median(&mut eval_times),
        "min_evaluation_s": eval_times.first(),
    });
    let samples = ev.samples();
    let doc = json!({
        "config": args.config.display().to_string(),
        "eval_samples": samples,
        "threads": rayon::current_num_threads(),
        "fp32_evaluation_s": fp32_s,
        "stage1_s": stage1_s,
        "toggles": toggles,
        "new_setting": new_setting,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{samples} evaluation samples, {} threads: FP32 pass {fp32_s:.2} s, stage 1 (calibrate + first evaluation) {stage1_s:.2} s",
            rayon::current_num_threads()
        );
        for t in &toggles {
            println!(
                "toggle {:<7} layer {:<12} min {:.3} s  median {:.3} s  first estimate {:.3} s  ({} of {} steps re-run)",
                t["position"].as_str().unwrap_or(""),
                t["layer"].as_str().unwrap_or(""),
                t["min_s"].as_f64().unwrap_or(f64::NAN),
                t["median_s"].as_f64().unwrap_or(f64::NAN),
                t["median_first_estimate_s"].as_f64().unwrap_or(f64::NAN),
                t["steps_rerun"],
                t["steps_total"]
            );
        }
        if let (Some(search), Some(eval)) = (
            new_setting["median_search_s"].as_f64(),
            new_setting["median_evaluation_s"].as_f64(),
        ) {
            println!(
                "new setting ({} of stage 5's grid): median range search {search:.3} s, full evaluation {eval:.3} s",
                fresh.len()
            );
        }
    }
    Ok(0)
}
