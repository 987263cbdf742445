//! `qtune tune -c CONFIG --session S [--json]`: the whole flow, headless, autosaved.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde_json::json;

use qtune::config::FloatPrecision;
use qtune::session::{self, EvalId, Session, StageState};
use qtune::tune::{Observer, Opened, Tuner, Work, open_session};

use super::calibrate::open;
use super::progress::Bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file (YAML; see configs/template.yaml, section `tune:`).
    #[arg(short, long, value_name = "CONFIG")]
    pub config: PathBuf,
    /// The session file: created, or resumed when it exists (saved after every evaluation).
    #[arg(long, value_name = "S")]
    pub session: PathBuf,
    /// The session file holds another model's session: move it aside (to
    /// S.<sha12>.bak) and start afresh for this model.
    #[arg(long)]
    pub force: bool,
    /// Keep going after a stage meets the target, looking for a better result.
    #[arg(long = "continue")]
    pub continue_after_target: bool,
    /// Memory budget of the re-evaluation caches, in MiB (overrides tune.cache_memory_mb).
    #[arg(long, value_name = "MIB")]
    pub cache_mb: Option<usize>,
    /// Machine-readable output (schema in README.md).
    #[arg(long)]
    pub json: bool,
}

/// Progress bars on stderr (on a terminal), one per piece of work, labelled with the
/// running stage and how far it is (`step 5 45/432`).
struct Progress {
    quiet: bool,
    bar: Mutex<Option<(Work, usize, Bar)>>,
    stage: Mutex<String>,
}

impl Observer for Progress {
    fn changed(&self, session: &Session) {
        let label = session
            .stages
            .iter()
            .find(|r| r.state == StageState::Running)
            .map(|r| match r.evaluations_total {
                0 => format!("step {}", r.stage.step()),
                total => format!("step {} {}/{total}", r.stage.step(), r.evaluations_done),
            })
            .unwrap_or_default();
        if let Ok(mut s) = self.stage.lock() {
            *s = label;
        }
    }

    fn progress(&self, work: Work, done: usize, total: usize) {
        let Ok(mut slot) = self.bar.lock() else {
            return;
        };
        let fresh = !matches!(&*slot, Some((w, t, _)) if *w == work && *t == total);
        if fresh {
            if let Some((_, _, b)) = slot.take() {
                b.finish();
            }
            *slot = Some((work, total, Bar::new(self.quiet, total, work_name(work))));
        }
        if let Some((w, _, b)) = &*slot {
            let stage = self.stage.lock().map(|s| s.clone()).unwrap_or_default();
            b.set_message(format!("{stage} {}", work_name(*w)).trim_start());
            b.set(done);
        }
    }
}

fn work_name(work: Work) -> &'static str {
    match work {
        Work::Calibrating => "calibrating",
        Work::Searching => "settings",
        Work::Evaluating => "evaluating",
    }
}

pub fn run(args: Args, model: Option<PathBuf>, quiet: bool) -> Result<u8> {
    let mut ws = open(&args.config, model)?;
    super::guard::check(
        &[("--session", &args.session)],
        &super::guard::config_inputs(&args.config, &ws.config),
    )?;
    if args.continue_after_target {
        ws.config.tune.continue_after_target = true;
    }
    if let Some(mb) = args.cache_mb {
        ws.config.tune.cache_bytes = mb << 20;
    }
    // A damaged session is refused before any work, and never written.
    if args.session.exists() {
        session::load(&args.session)?;
    }
    let n = ws.eval.as_ref().map_or(0, |e| e.data.len());
    let bar = Bar::new(quiet, n, "FP32");
    let ev = qtune::eval::Evaluator::new(&ws, &|i| bar.set(i)).context("FP32 evaluation")?;
    bar.finish();
    let (s, file, opened) = open_session(&args.session, &ws, &ev, args.force)?;
    if let Opened::Replaced { backup } = &opened {
        eprintln!(
            "qtune: {} held a session of another model; moved to {} (--force), starting afresh",
            args.session.display(),
            backup.display()
        );
    }
    let mut tuner = Tuner::new(&ws, &ev, s, Some(file))?;
    tuner.session.log(match opened {
        Opened::Resumed => "resumed by qtune tune",
        _ => "started by qtune tune",
    });
    for d in &tuner.session.degradations {
        eprintln!("warning: {d}");
    }
    let obs = Progress {
        quiet,
        bar: Mutex::new(None),
        stage: Mutex::new(String::new()),
    };
    super::interrupt::forward_to(tuner.cancel.clone());
    let flow = tuner.run_flow(&obs);
    if let Some((_, _, b)) = obs.bar.lock().ok().and_then(|mut s| s.take()) {
        b.finish();
    }
    let outcome = match flow {
        Err(qtune::Error::Cancelled) if super::interrupt::interrupted() => {
            tuner.session.log("interrupted (Ctrl-C) in qtune tune");
            tuner.save()?;
            tuner.compact()?;
            eprintln!(
                "qtune: interrupted; {} holds the {} evaluations done (the one in flight was dropped); the same command resumes",
                args.session.display(),
                tuner.session.evaluation_count()
            );
            return Ok(130);
        }
        other => other?,
    };
    let s = &tuner.session;
    let met = outcome.met_stage.is_some();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary(s, &args.session, &outcome))?
        );
    } else {
        print_table(s, &outcome);
    }
    Ok(if met { 0 } else { 1 })
}

/// The `--json` document (schema in README.md).
fn summary(
    s: &Session,
    path: &std::path::Path,
    outcome: &qtune::tune::FlowOutcome,
) -> serde_json::Value {
    let eval_json = |i: EvalId| {
        let Some(e) = s.evaluation(i) else {
            return serde_json::Value::Null;
        };
        json!({
            "evaluation": i.0,
            "stage": e.stage.step(),
            "setting": s.setting_of(i).map(|r| r.setting),
            "exclude_op": e.exclude,
            "excluded_macs": s.excluded_macs(&e.exclude),
            "fp16": e.fp16,
            "int8": e.report.int8,
            "delta": e.report.delta,
            "target_met": e.report.target_met,
        })
    };
    let conclusion = match (outcome.met_stage, outcome.fallback) {
        (Some(_), _) => "int8",
        (None, Some(_)) => "fp16",
        (None, None) => "none",
    };
    json!({
        "session": path.display().to_string(),
        "model": s.model,
        "metric": s.metric.as_str(),
        "fp32": s.fp32_metric,
        "max_drop": s.max_drop,
        "min_value": s.min_value,
        "float_precision": if s.float_precision == FloatPrecision::Fp16 { "FP16" } else { "FP32" },
        "degradations": s.degradations,
        "target_met": outcome.met_stage.is_some(),
        "met_stage": outcome.met_stage.map(|m| m.step()),
        "conclusion": conclusion,
        "result": outcome.chosen.map(eval_json),
        "fallback": outcome.fallback.map(eval_json),
        "adopted": outcome.adopted,
        "stages": s.stages.iter().map(|r| json!({
            "step": r.stage.step(),
            "name": r.stage.title(),
            "state": r.state,
            "evaluations": r.evaluations_done,
            "total": r.evaluations_total,
            "duplicates": r.duplicates,
            "stopped": s.evaluations().filter(|(_, e)| e.stage == r.stage && e.stopped.is_some()).count(),
            "seconds": r.seconds,
            "note": r.note,
            "best": r.best.map(eval_json),
            "exclude_searches": r.searches,
        })).collect::<Vec<_>>(),
        "evaluations_run": s.evaluation_count(),
    })
}

fn print_table(s: &Session, outcome: &qtune::tune::FlowOutcome) {
    let fp32 = s.fp32_metric.unwrap_or(f64::NAN);
    let target = match s.min_value {
        Some(v) => format!("at least {v}"),
        None => format!("drop at most {}", s.max_drop),
    };
    println!(
        "metric {} · FP32 {fp32:.4} · target: {target}",
        s.metric.as_str()
    );
    if s.float_precision == FloatPrecision::Fp16 {
        println!("float parts (excluded layers and non-layer ops) run in FP16");
    }
    println!(
        "{:<5} {:<42} {:<8} {:>9} {:>8} {:>7} {:>8}",
        "step", "stage", "state", "metric", "delta", "evals", "time"
    );
    for r in s.stages.iter() {
        print_stage(s, r);
    }
    print_outcome(s, outcome);
}

fn print_stage(s: &Session, r: &qtune::session::StageRecord) {
    let state = match r.state {
        StageState::Pending => "pending",
        StageState::Running => "stopped",
        StageState::Met => "MET",
        StageState::Missed => "missed",
        StageState::Skipped => "skipped",
    };
    let best = r.best.and_then(|b| s.evaluation(b));
    let (metric, delta) = best.map_or((String::new(), String::new()), |e| {
        (
            format!("{:.4}", e.report.int8),
            format!("{:+.4}", e.report.delta),
        )
    });
    let evals = if r.evaluations_total > 0 {
        format!("{}/{}", r.evaluations_done, r.evaluations_total)
    } else {
        String::new()
    };
    println!(
        "{:<5} {:<42} {:<8} {:>9} {:>8} {:>7} {:>7.1}s",
        r.stage.step(),
        r.stage.title(),
        state,
        metric,
        delta,
        evals,
        r.seconds
    );
    if let Some(setting) = r.best.and_then(|b| s.setting_of(b)) {
        println!("      best setting: {}", setting.setting.label());
    }
    if let Some(e) = best.filter(|e| !e.exclude.is_empty() && r.stage.is_int8()) {
        println!(
            "      best exclude_op ({}): {}",
            e.exclude.len(),
            e.exclude.join(", ")
        );
    }
    if r.duplicates > 0 {
        println!(
            "      {} setting(s) quantized identically to an earlier one: evaluated once",
            r.duplicates
        );
    }
    for x in &r.searches {
        println!(
            "      {:<15} {:>4} evaluations → {} layer(s) excluded, metric {:.4}{}",
            x.strategy,
            x.evaluations,
            x.exclude.len(),
            x.metric.unwrap_or(f64::NAN),
            if x.target_met { " (target met)" } else { "" }
        );
        if let Some(why) = &x.stopped {
            println!("      {:<15} {why}", "");
        }
    }
    if let Some(note) = &r.note {
        println!("      {note}");
    }
}

fn print_outcome(s: &Session, outcome: &qtune::tune::FlowOutcome) {
    match (outcome.met_stage, outcome.chosen) {
        (Some(m), Some(i)) => {
            println!("target met at stage {}: result {}", m.step(), s.describe(i))
        }
        (None, chosen) => {
            println!("target NOT met by any INT8 stage");
            if let Some(i) = outcome.fallback {
                println!(
                    "stage 8 (the seed's conclusion): quantization does not suit this model at this target; deploy it in FP16 ({})",
                    s.describe(i)
                );
            }
            if let Some(i) = chosen {
                println!("best INT8 result found: {}", s.describe(i));
            }
        }
        (Some(m), None) => println!("target met at stage {}", m.step()),
    }
    if let Some((i, e)) = s.current_evaluation() {
        println!(
            "current state ({}, what `qtune export --session` writes): {i}, exclude_op {:?}",
            if outcome.adopted {
                "the flow's result"
            } else {
                "kept"
            },
            e.exclude
        );
    }
}
