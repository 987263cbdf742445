//! A session as Markdown, to paste into a report (`qtune review S --print`): what was
//! tuned, every stage with its best result, the flow's result and its blacklist, stage 7's
//! blacklists with the sensitivities behind the ranking, and the worst layers.

use std::fmt::Write;

use super::{EvalId, Session, StageId, StageState};

/// Layers listed under "worst layers" and "sensitivity".
const TOP: usize = 10;

/// The summary of `s` (Markdown; plain text reads well too).
pub fn markdown(s: &Session) -> String {
    let mut o = String::new();
    let model = std::path::Path::new(&s.model)
        .file_name()
        .map_or(s.model.clone(), |f| f.to_string_lossy().into_owned());
    let _ = writeln!(o, "# qtune session: {model}\n");
    let _ = writeln!(o, "- model: `{}`", s.model);
    if let Some(c) = &s.config_file {
        let _ = writeln!(o, "- configuration: `{c}`");
    }
    let fp32 = s.fp32_metric.map_or("not measured".into(), num);
    let target = match (s.min_value, s.threshold()) {
        (Some(m), _) => format!("INT8 >= {}", num(m)),
        (None, Some(t)) => format!("INT8 >= {} (FP32 - {})", num(t), num(s.max_drop)),
        (None, None) => format!("INT8 >= FP32 - {}", num(s.max_drop)),
    };
    let _ = writeln!(
        o,
        "- metric: {} on {} samples; FP32 {fp32}; target {target}",
        s.metric.as_str(),
        s.eval_samples
    );
    let _ = writeln!(
        o,
        "- {} evaluations of {} settings; {} quantizable layers",
        s.evaluation_count(),
        s.settings_len(),
        s.layers.len()
    );
    let current = s
        .current
        .evaluation
        .filter(|&i| s.evaluation(i).is_some())
        .map_or("not evaluated".into(), |i| s.describe(i));
    let _ = writeln!(
        o,
        "- current state (what `export --session` writes): {current}\n"
    );
    stages(&mut o, s);
    let result = result(s);
    let _ = writeln!(o, "## Result\n");
    match result {
        Some(i) => {
            let _ = writeln!(o, "{}\n", s.describe(i));
            if let Some(e) = s.evaluation(i) {
                let _ = writeln!(o, "- delta vs FP32: {}", signed(e.report.delta));
                let met = if e.report.target_met { "met" } else { "missed" };
                let _ = writeln!(o, "- target: {met}");
                let _ = writeln!(o, "- exclude_op: {}\n", list(&e.exclude));
            }
        }
        None => {
            let _ = writeln!(o, "no INT8 result yet\n");
        }
    }
    blacklists(&mut o, s);
    worst_layers(&mut o, s, result);
    o
}

/// The flow's result: the first met INT8 stage's best, else the best INT8 evaluation.
pub fn result(s: &Session) -> Option<EvalId> {
    s.met_stage()
        .and_then(|m| s.stage(m).best)
        .or_else(|| s.best_evaluation())
        .filter(|&i| s.evaluation(i).is_some())
}

fn stages(o: &mut String, s: &Session) {
    let _ = writeln!(o, "## Stages\n");
    let _ = writeln!(
        o,
        "| step | stage | state | best | INT8 | delta vs FP32 | excluded | evaluations | time |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for st in StageId::ALL {
        let r = s.stage(st);
        let state = match r.state {
            StageState::Pending => "pending",
            StageState::Running => "interrupted",
            StageState::Met => "target met",
            StageState::Missed => "target missed",
            StageState::Skipped => "skipped",
        };
        let (best, m, d, x) = match s.stage_best(st) {
            Some((i, e)) => (
                i.to_string(),
                num(e.metric()),
                signed(e.report.delta),
                e.exclude.len().to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {state} | {best} | {m} | {d} | {x} | {}/{} | {:.0} s |",
            st.step(),
            st.title(),
            r.evaluations_done,
            r.evaluations_total,
            r.seconds
        );
    }
    for r in s.stages.iter().filter(|r| r.note.is_some()) {
        let _ = writeln!(
            o,
            "\nstage {}: {}",
            r.stage.step(),
            r.note.as_deref().unwrap_or_default()
        );
    }
    let _ = writeln!(o);
}

fn blacklists(o: &mut String, s: &Session) {
    let searches = &s.stage(StageId::Exclude).searches;
    if searches.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Stage 7 blacklists\n");
    let _ = writeln!(
        o,
        "| search | result | layers | INT8 | target | evaluations | exclude_op |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for x in searches {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            x.strategy.replace('_', "-"),
            x.result.map_or("-".into(), |i| i.to_string()),
            x.exclude.len(),
            x.metric.map_or("-".into(), num),
            if x.target_met { "met" } else { "missed" },
            x.evaluations,
            list(&x.exclude)
        );
    }
    if let Some(x) = searches.iter().find(|x| !x.ranking.is_empty()) {
        let _ = writeln!(
            o,
            "\nSensitivity (metric gained by excluding the layer alone), top {TOP}:\n"
        );
        let _ = writeln!(o, "| rank | layer | gain |");
        let _ = writeln!(o, "|---|---|---|");
        for (k, (name, gain)) in x.ranking.iter().take(TOP).enumerate() {
            let _ = writeln!(o, "| {} | `{name}` | {} |", k + 1, signed(*gain));
        }
    }
    let _ = writeln!(o);
}

fn worst_layers(o: &mut String, s: &Session, result: Option<EvalId>) {
    let Some((i, e)) = result.and_then(|i| Some((i, s.evaluation(i)?))) else {
        return;
    };
    let mut layers: Vec<_> = e.report.layers.iter().filter(|l| l.quantized).collect();
    if layers.is_empty() {
        return;
    }
    layers.sort_by(|a, b| a.sqnr_db.total_cmp(&b.sqnr_db));
    let _ = writeln!(o, "## Worst layers of {i} (lowest SQNR first)\n");
    let _ = writeln!(o, "| layer | op | SQNR (dB) | cosine |");
    let _ = writeln!(o, "|---|---|---|---|");
    for l in layers.iter().take(TOP) {
        let _ = writeln!(
            o,
            "| `{}` | {} | {:.1} | {:.5} |",
            l.name, l.op_type, l.sqnr_db, l.cosine
        );
    }
    let _ = writeln!(o);
}

/// A metric as printed (4 decimals).
fn num(x: f64) -> String {
    format!("{x:.4}")
}

/// A signed delta; what rounds to zero prints as +0.0000.
fn signed(x: f64) -> String {
    let x = if x.abs() < 5e-5 { 0.0 } else { x };
    format!("{x:+.4}")
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
