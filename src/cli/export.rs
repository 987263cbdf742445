//! `qtune export (--params P | --session S) [--qdq OUT.onnx] [--trt-cache OUT.cache]`.

use std::path::PathBuf;

use anyhow::{Result, bail};

use qtune::jobs::{PlanFrom, export_input};

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
    /// A tuning session: exports its current result (the flow's result, or the result the
    /// user adopted or toggled last), with its exclude_op; says which evaluation it is.
    #[arg(long, value_name = "S")]
    pub session: Option<PathBuf>,
    /// Write the quantized model (QuantizeLinear/DequantizeLinear, opset >= 13 when the
    /// model converts) here: the very graph qtune evaluated.
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
    let from = match (&args.params, &args.session) {
        (Some(p), _) => PlanFrom::Params(p),
        (None, Some(s)) => PlanFrom::Session(s),
        (None, None) => bail!("pass --params P or --session S"),
    };
    let input = export_input(from, model)?;
    let mut outputs = Vec::new();
    if let Some(p) = &args.qdq {
        outputs.push(("--qdq", p.as_path()));
    }
    if let Some(p) = &args.trt_cache {
        outputs.push(("--trt-cache", p.as_path()));
    }
    let mut inputs = vec![Input::new("the model", &input.model.path)];
    if let Some(p) = &args.params {
        inputs.push(Input::new("the parameter record", p));
    }
    if let Some(p) = &args.session {
        inputs.push(Input::new("the session", p));
    }
    super::guard::check(&outputs, &inputs)?;
    for d in &input.decision.degradations {
        eprintln!("warning: {d}");
    }
    if !quiet {
        println!("exporting {}", input.q.origin);
    }
    if let Some(out) = &args.qdq {
        let q = input.qdq()?;
        qtune::util::write_atomic(out, &q.bytes).map_err(|e| qtune::Error::io(out, e))?;
        if !quiet {
            println!(
                "{}: QDQ model, opset {}, {} of {} layers quantized",
                out.display(),
                q.opset,
                input.quantized_layers(),
                input.layers.len()
            );
        }
    }
    if let Some(out) = &args.trt_cache {
        let text = input.trt_cache();
        qtune::util::write_atomic(out, text.as_bytes()).map_err(|e| qtune::Error::io(out, e))?;
        if !quiet {
            println!(
                "{}: TensorRT calibration cache, {} tensors",
                out.display(),
                text.lines().count().saturating_sub(1)
            );
        }
    }
    Ok(0)
}
