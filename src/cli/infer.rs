//! `qtune infer MODEL [--input X.npy …] --out DIR` (one `--input` per graph input).

use std::path::PathBuf;

use anyhow::{Result, bail};

use qtune::data::{read_npy, write_npy};
use qtune::engine::Runner;
use qtune::onnx::load_model;

use super::guard::Input;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model.
    pub model: Option<PathBuf>,
    /// Input tensors as .npy files, one per graph input, in graph-input order (none for a
    /// model without inputs).
    #[arg(long = "input", value_name = "X.npy")]
    pub inputs: Vec<PathBuf>,
    /// Folder for the outputs: DIR/output_K.npy per graph output, in graph order.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: Args, global_model: Option<PathBuf>) -> Result<u8> {
    let path = super::model_path(args.model, global_model)?;
    let model = load_model(&path)?;
    let runner = Runner::new(model.graph)?;
    let expected = runner.graph().inputs.len();
    if args.inputs.len() != expected {
        let names: Vec<&str> = runner
            .graph()
            .inputs
            .iter()
            .map(|i| runner.graph().value_name(*i))
            .collect();
        bail!(
            "the model has {expected} input(s) ({}), {} --input given",
            names.join(", "),
            args.inputs.len()
        );
    }
    let outputs: Vec<PathBuf> = (0..runner.graph().outputs.len())
        .map(|k| args.out.join(format!("output_{k}.npy")))
        .collect();
    let mut read = vec![Input::new("the model", &path)];
    read.extend(args.inputs.iter().map(|p| Input::new("--input", p)));
    let named: Vec<(&str, &std::path::Path)> = outputs
        .iter()
        .map(|p| ("the output", p.as_path()))
        .collect();
    super::guard::check(&named, &read)?;
    let inputs = args
        .inputs
        .iter()
        .map(|p| read_npy(p))
        .collect::<Result<Vec<_>, _>>()?;
    let results = runner.run(inputs)?;
    std::fs::create_dir_all(&args.out).map_err(|e| qtune::Error::io(&args.out, e))?;
    for (t, p) in results.iter().zip(&outputs) {
        write_npy(p, t)?;
    }
    Ok(0)
}
