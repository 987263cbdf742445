//! The library's jobs as every front end runs them — calibrate (or take a parameter
//! record, or a session's result) → build the quantized graph → evaluate → export — so a
//! configuration key means the same in `eval`, `tune`, the TUI and `export`. The CLI only
//! parses arguments and prints; the TUI only renders.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::config::{FloatPrecision, RawConfig};
use crate::engine::prepare;
use crate::error::{Error, Result};
use crate::eval::{EvalReport, Evaluator, Progress};
use crate::ir::Tensor;
use crate::onnx::{Model, load_model};
use crate::quant::export::{QdqModel, export_qdq, trt_cache};
use crate::quant::{LayerRef, ParamsRecord, QdqDecision, QuantPlan, find_layers};
use crate::session::{self, Session};
use crate::workspace::Workspace;

/// Where the quantization parameters come from.
#[derive(Clone, Copy, Debug)]
pub enum PlanFrom<'a> {
    /// Calibrate now with the configuration.
    Calibrate,
    /// A parameter record (`qtune calibrate -o`).
    Params(&'a Path),
    /// A session's current state (the flow's result, or what the user adopted).
    Session(&'a Path),
}

/// A quantization: the plan, the layers kept float, and what it is.
#[derive(Clone, Debug)]
pub struct Quantization {
    pub plan: QuantPlan,
    /// Layers kept float, in graph order.
    pub exclude: Vec<String>,
    /// What this is, for the user ("calibrated now", "PARAMS.yaml", "evaluation #17 of
    /// s.json (stage 7, …)").
    pub origin: String,
    /// The configuration it corresponds to (recorded in exported models).
    pub config: RawConfig,
    /// The float parts run in FP16 (`float_precision`).
    pub fp16: bool,
}

/// The quantization of `ws` taken `from` calibration, a record or a session.
pub fn quantization(
    ws: &Workspace,
    from: PlanFrom,
    progress: Progress,
    cancel: &AtomicBool,
) -> Result<Quantization> {
    let fp16 = ws.config.float_precision == FloatPrecision::Fp16;
    match from {
        PlanFrom::Calibrate => {
            let (plan, _) = ws.calibrate(progress, cancel)?;
            Ok(Quantization {
                plan,
                exclude: ws.config.exclude_op.clone(),
                origin: "calibrated with the configuration".into(),
                config: ws.config.raw.clone(),
                fp16,
            })
        }
        PlanFrom::Params(p) => {
            let r = ParamsRecord::load(p)?;
            r.check_model(p, &ws.model.sha256, &ws.layer_names())?;
            Ok(Quantization {
                plan: r.plan,
                exclude: ws.config.exclude_op.clone(),
                origin: format!("parameter record {}", p.display()),
                config: ws.config.raw.clone(),
                fp16,
            })
        }
        PlanFrom::Session(p) => {
            let s = session::load(p)?;
            session::check_model(&s, p, &ws.model.sha256)?;
            let mut q = session_quantization(&s, p, &ws.graph, &ws.layers)?;
            q.fp16 = fp16;
            Ok(q)
        }
    }
}

/// The current state of session `s` (read from `path`) as a quantization of `graph`
/// (the model prepared for the session's sample shapes).
fn session_quantization(
    s: &Session,
    path: &Path,
    graph: &crate::ir::Graph,
    layers: &[LayerRef],
) -> Result<Quantization> {
    let at = |e: crate::quant::QuantError| Error::Usage(format!("{}: {e}", path.display()));
    let setting = s.current.setting.ok_or_else(|| {
        Error::Usage(format!(
            "{}: the session's current result quantizes nothing (the FP16 fallback): there is no INT8 model",
            path.display()
        ))
    })?;
    let plan = session::plan::setting_plan(s, setting, graph, layers).map_err(at)?;
    let origin = match s.current_evaluation() {
        Some((id, e)) if e.setting == Some(setting) && e.exclude == s.current.exclude => {
            format!("{} of {}", s.describe(id), path.display())
        }
        _ => format!(
            "the current state of {} (not evaluated: {}, {} excluded)",
            path.display(),
            s.setting(setting)
                .map(|r| r.setting.label())
                .unwrap_or_default(),
            s.current.exclude.len()
        ),
    };
    let mut config = s.config.clone();
    config.exclude_op = s.current.exclude.clone();
    if let Some(st) = s.setting(setting).map(|r| r.setting) {
        config.quantize_algo = Some(st.quantize_algo);
        config.weight_type = Some(st.weight_type);
        config.bin = Some(st.bin);
        config.divergence = Some(st.divergence);
        config.start_ratio = Some(st.start_ratio);
        config.end_ratio = Some(st.end_ratio);
        config.step_ratio = Some(st.step_ratio);
        config.max_percentile = Some(st.max_percentile);
        config.batch_count = Some(st.batch_count as u64);
    }
    Ok(Quantization {
        plan,
        exclude: s.current.exclude.clone(),
        origin,
        config,
        fp16: s.float_precision == FloatPrecision::Fp16,
    })
}

/// An evaluation of a quantization, with everything needed to show it honestly.
pub struct Scored {
    pub report: EvalReport,
    /// Where the quantized model deviates from the configuration.
    pub degradations: Vec<String>,
    /// The INT8 outputs per sample, in model output order (what was scored).
    pub outputs: Vec<Vec<Tensor>>,
}

/// Builds the quantized graph of `q` and evaluates it against FP32.
pub fn score(
    ws: &Workspace,
    ev: &Evaluator,
    q: &Quantization,
    progress: Progress,
) -> Result<Scored> {
    let exclude: HashSet<String> = q.exclude.iter().cloned().collect();
    let graph = ws.quantized_graph(&q.plan, &exclude)?;
    let plan = &q.plan;
    let quantized = |name: &str| {
        !exclude.contains(name) && plan.layer(name).is_some_and(|l| plan.is_calibrated(l))
    };
    let (report, outputs) = ev.evaluate_keeping(&graph, &quantized, q.fp16, progress)?;
    Ok(Scored {
        report,
        degradations: ws.degradations(plan),
        outputs,
    })
}

/// What `export` writes from: the model as loaded, its QDQ decision, and the quantization.
pub struct ExportInput {
    pub model: Model,
    pub decision: QdqDecision,
    pub q: Quantization,
    /// The model's quantizable layers, in graph order.
    pub layers: Vec<String>,
}

/// Reads what to export from a parameter record or a session (no data needed), loading
/// the model it names (or `model`).
pub fn export_input(from: PlanFrom, model: Option<PathBuf>) -> Result<ExportInput> {
    match from {
        PlanFrom::Calibrate => Err(Error::Usage(
            "export needs --params P or --session S".into(),
        )),
        PlanFrom::Params(p) => {
            let record = ParamsRecord::load(p)?;
            let m = load_model(&model.unwrap_or_else(|| PathBuf::from(&record.model)))?;
            let prepared = prepare(&m.graph, &record.sample_shapes)?;
            let layers: Vec<String> = find_layers(&prepared)
                .into_iter()
                .map(|l| l.info.name)
                .collect();
            record.check_model(p, &m.sha256, &layers)?;
            let decision = crate::quant::decide(&m.graph)?;
            let q = Quantization {
                exclude: record.config.exclude_op.clone(),
                plan: record.plan,
                origin: format!("parameter record {}", p.display()),
                config: record.config,
                fp16: false,
            };
            Ok(ExportInput {
                model: m,
                decision,
                q,
                layers,
            })
        }
        PlanFrom::Session(p) => {
            let s = session::load(p)?;
            let m = load_model(&model.unwrap_or_else(|| PathBuf::from(&s.model)))?;
            session::check_model(&s, p, &m.sha256)?;
            if s.sample_shapes.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: the session records no sample shapes; run `qtune tune` on it once to add them",
                    p.display()
                )));
            }
            let prepared = prepare(&m.graph, &s.sample_shapes)?;
            let refs = find_layers(&prepared);
            let q = session_quantization(&s, p, &prepared, &refs)?;
            let decision = crate::quant::decide(&m.graph)?;
            let layers = refs.into_iter().map(|l| l.info.name).collect();
            Ok(ExportInput {
                model: m,
                decision,
                q,
                layers,
            })
        }
    }
}

impl ExportInput {
    /// The QDQ model, with qtune's metadata (version, configuration, source hash).
    pub fn qdq(&self) -> Result<QdqModel> {
        let config = crate::config::yaml::to_string(&self.q.config).unwrap_or_default();
        let meta = vec![
            (
                "qtune_version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            ("qtune_config".to_string(), config),
            ("qtune_source_sha256".to_string(), self.model.sha256.clone()),
            ("qtune_origin".to_string(), self.q.origin.clone()),
        ];
        let exclude: HashSet<String> = self.q.exclude.iter().cloned().collect();
        Ok(export_qdq(
            &self.model.graph,
            &self.q.plan,
            &exclude,
            &self.decision,
            &meta,
        )?)
    }

    /// The TensorRT INT8 calibration cache.
    pub fn trt_cache(&self) -> String {
        let exclude: HashSet<String> = self.q.exclude.iter().cloned().collect();
        trt_cache(&self.q.plan, &exclude)
    }

    /// Layers quantized in the export (not excluded).
    pub fn quantized_layers(&self) -> usize {
        self.layers
            .iter()
            .filter(|n| !self.q.exclude.contains(n))
            .count()
    }
}
