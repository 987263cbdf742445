//! `qtune export --params P --qdq OUT.onnx [--trt-cache OUT.cache]`.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Result, bail};

use qtune::engine::prepare;
use qtune::onnx::load_model;
use qtune::quant::export::{export_qdq, trt_cache};
use qtune::quant::{ParamsRecord, find_layers};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A parameter record from `qtune calibrate -o`.
    #[arg(long, value_name = "PARAMS.yaml")]
    pub params: PathBuf,
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
    let record = ParamsRecord::load(&args.params)?;
    let model_path = model.unwrap_or_else(|| PathBuf::from(&record.model));
    let m = load_model(&model_path)?;
    let prepared = prepare(&m.graph, &record.sample_shapes)?;
    let names: Vec<String> = find_layers(&prepared)
        .into_iter()
        .map(|l| l.info.name)
        .collect();
    record.check_model(&args.params, &m.sha256, &names)?;
    let exclude: HashSet<String> = record.config.exclude_op.iter().cloned().collect();
    if let Some(out) = &args.qdq {
        let config = qtune::config::yaml::to_string(&record.config).unwrap_or_default();
        let meta = vec![
            (
                "qtune_version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            ("qtune_config".to_string(), config),
            ("qtune_source_sha256".to_string(), m.sha256.clone()),
        ];
        let q = export_qdq(&m.graph, &record.plan, &exclude, &meta)?;
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
        let text = trt_cache(&record.plan, &exclude);
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
