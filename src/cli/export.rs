//! `qtune export (--session S | --params P) --qdq OUT.onnx [--trt-cache OUT.cache]`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use qtune::engine::prepare;
use qtune::onnx::load_model;
use qtune::quant::export::{export_qdq, trt_cache};
use qtune::quant::{ParamsRecord, find_layers};

use super::guard::Input;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A parameter record from `qtune calibrate -o`.
    #[arg(
        long,
        value_name = "PARAMS.yaml",
        required_unless_present = "session",
        conflicts_with = "session"
    )]
    pub params: Option<PathBuf>,
    /// A tuning session: exports its current result (the flow's choice, or the user's
    /// last toggle), with its exclude_op.
    #[arg(long, value_name = "S")]
    pub session: Option<PathBuf>,
    /// Write the quantized model (QuantizeLinear/DequantizeLinear, opset >= 13) here.
    #[arg(long, value_name = "OUT.onnx")]
    pub qdq: Option<PathBuf>,
    /// Write a TensorRT INT8 calibration cache here.
    #[arg(long = "trt-cache", value_name = "OUT.cache")]
    pub trt_cache: Option<PathBuf>,
}

pub fn run(args: Args, model: Option<PathBuf>, quiet: bool) -> Result<u8> {
    if args.qdq.is_none() && args.trt_cache.is_none() {
        bail!("nothing to write: pass --qdq OUT.onnx and/or --trt-cache OUT.cache");
    }
    let source = match (&args.params, &args.session) {
        (Some(p), _) => from_params(p, model)?,
        (None, Some(s)) => from_session(s, model)?,
        (None, None) => bail!("pass --params P or --session S"),
    };
    let Source {
        m,
        plan,
        exclude,
        config,
        names,
    } = source;
    let mut outputs = Vec::new();
    if let Some(p) = &args.qdq {
        outputs.push(("--qdq", p.as_path()));
    }
    if let Some(p) = &args.trt_cache {
        outputs.push(("--trt-cache", p.as_path()));
    }
    let mut inputs = vec![Input::new("the model", &m.path)];
    if let Some(p) = &args.params {
        inputs.push(Input::new("the parameter record", p));
    }
    if let Some(p) = &args.session {
        inputs.push(Input::new("the session", p));
    }
    super::guard::check(&outputs, &inputs)?;
    if let Some(out) = &args.qdq {
        let config = qtune::config::yaml::to_string(&config).unwrap_or_default();
        let meta = vec![
            (
                "qtune_version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            ("qtune_config".to_string(), config),
            ("qtune_source_sha256".to_string(), m.sha256.clone()),
        ];
        let q = export_qdq(&m.graph, &plan, &exclude, &meta)?;
        for w in &q.warnings {
            eprintln!("warning: {w}");
        }
        qtune::util::write_atomic(out, &q.bytes).map_err(|e| qtune::Error::io(out, e))?;
        if !quiet {
            let quantized = names.iter().filter(|n| !exclude.contains(*n)).count();
            println!(
                "{}: QDQ model, opset {}, {quantized} of {} layers quantized",
                out.display(),
                q.opset,
                names.len()
            );
        }
    }
    if let Some(out) = &args.trt_cache {
        let text = trt_cache(&plan, &exclude);
        qtune::util::write_atomic(out, text.as_bytes()).map_err(|e| qtune::Error::io(out, e))?;
        if !quiet {
            println!(
                "{}: TensorRT calibration cache, {} tensors",
                out.display(),
                text.lines().count() - 1
            );
        }
    }
    Ok(0)
}

/// What to export: the model, the plan and the layers kept in float.
struct Source {
    m: qtune::onnx::Model,
    plan: qtune::quant::QuantPlan,
    exclude: HashSet<String>,
    /// The configuration, recorded in the exported model's metadata.
    config: qtune::config::RawConfig,
    names: Vec<String>,
}

fn from_params(path: &Path, model: Option<PathBuf>) -> Result<Source> {
    let record = ParamsRecord::load(path)?;
    let model_path = model.unwrap_or_else(|| PathBuf::from(&record.model));
    let m = load_model(&model_path)?;
    let prepared = prepare(&m.graph, &record.sample_shapes)?;
    let names: Vec<String> = find_layers(&prepared)
        .into_iter()
        .map(|l| l.info.name)
        .collect();
    record.check_model(path, &m.sha256, &names)?;
    Ok(Source {
        m,
        exclude: record.config.exclude_op.iter().cloned().collect(),
        plan: record.plan,
        config: record.config,
        names,
    })
}

fn from_session(path: &Path, model: Option<PathBuf>) -> Result<Source> {
    let s = qtune::session::load(path)?;
    let model_path = model.unwrap_or_else(|| PathBuf::from(&s.model));
    let m = load_model(&model_path)?;
    qtune::session::check_model(&s, path, &m.sha256, false)?;
    if s.sample_shapes.is_empty() {
        bail!(
            "{}: the session records no sample shapes; run `qtune tune` on it once to add them",
            path.display()
        );
    }
    let prepared = prepare(&m.graph, &s.sample_shapes)?;
    let layers = find_layers(&prepared);
    let (plan, exclude) = qtune::session::plan::current_plan(&s, &prepared, &layers)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut config = s.config.clone();
    config.exclude_op = exclude.clone();
    if let Some(k) = s.current.setting {
        let st = &s.settings[k].setting;
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
    Ok(Source {
        m,
        plan,
        exclude: exclude.into_iter().collect(),
        config,
        names: layers.into_iter().map(|l| l.info.name).collect(),
    })
}
