//! `qtune inspect MODEL [--input-shape NAME=DIMS] [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use qtune::engine::{analyze, unsupported_ops};
use qtune::ir::{Dim, Graph, ValueId, is_layer};
use qtune::onnx::load_model;

use super::shapes::{InputShape, bind_shapes, parse_input_shape};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model.
    pub model: Option<PathBuf>,
    /// Bind an input's shape, e.g. `x=1,3,48,192` (repeatable); dynamic
    /// dimensions must be bound for static shapes to be shown.
    #[arg(long = "input-shape", value_name = "NAME=DIMS", value_parser = parse_input_shape)]
    pub input_shape: Vec<InputShape>,
    /// Machine-readable output (schema in README.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Io {
    name: String,
    dtype: Option<&'static str>,
    /// Declared dimensions: numbers, or names/"?" for dynamic ones.
    shape: Option<Vec<serde_json::Value>>,
    /// Static shape once inputs are bound.
    bound: Option<Vec<usize>>,
}

#[derive(Serialize)]
struct Layer {
    name: String,
    op_type: String,
    input: String,
    weight_shape: Option<Vec<usize>>,
    output_shape: Option<Vec<usize>>,
}

pub fn run(args: Args, global_model: Option<PathBuf>) -> Result<u8> {
    let path = super::model_path(args.model, global_model)?;
    let model = load_model(&path)?;
    let g = &model.graph;
    let unsupported = unsupported_ops(g);
    let bound = bind_shapes(g, &args.input_shape)?;
    let facts = match (&bound, unsupported.is_empty()) {
        (Some(shapes), true) => Some(analyze(g, shapes)?.facts),
        _ => None,
    };
    let static_shape = |v: ValueId| facts.as_ref().and_then(|f| f[v.0].shape.clone());
    let io = |v: ValueId| Io {
        name: g.value_name(v).to_string(),
        dtype: g.value(v).dtype.map(|d| d.name()),
        shape: g
            .value(v)
            .shape
            .as_ref()
            .map(|dims| dims.iter().map(dim_json).collect()),
        bound: static_shape(v),
    };
    let inputs: Vec<Io> = g.inputs.iter().map(|&v| io(v)).collect();
    let outputs: Vec<Io> = g.outputs.iter().map(|&v| io(v)).collect();
    let layers: Vec<Layer> = g
        .nodes
        .iter()
        .filter(|n| is_layer(n))
        .map(|n| {
            let weight = n.input(1);
            Layer {
                name: n.name.clone(),
                op_type: n.op_type.clone(),
                input: n
                    .input(0)
                    .map(|v| g.value_name(v).to_string())
                    .unwrap_or_default(),
                weight_shape: weight.and_then(|w| {
                    static_shape(w).or_else(|| g.constants.get(&w).map(|t| t.shape().to_vec()))
                }),
                output_shape: n.output(0).and_then(static_shape),
            }
        })
        .collect();
    let ops = g.op_counts();
    if args.json {
        let doc = json!({
            "model": path.display().to_string(),
            "sha256": model.sha256,
            "opset": g.opset,
            "ir_version": g.ir_version,
            "producer": g.producer,
            "inputs": inputs,
            "outputs": outputs,
            "op_counts": ops,
            "layers": layers,
            "unsupported": unsupported,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    println!("model     {}", path.display());
    println!("sha256    {}", model.sha256);
    println!(
        "opset     {} (IR {}, producer {})",
        g.opset,
        g.ir_version,
        if g.producer.is_empty() {
            "?".to_string()
        } else {
            esc(&g.producer)
        }
    );
    print_io("inputs", &inputs, g);
    print_io("outputs", &outputs, g);
    let ops_line: Vec<String> = ops.iter().map(|(k, v)| format!("{} {v}", esc(k))).collect();
    println!("ops       {} nodes: {}", g.nodes.len(), ops_line.join(", "));
    println!(
        "layers    {} quantizable (Conv, ConvTranspose, Gemm, MatMul)",
        layers.len()
    );
    let width = layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for l in &layers {
        let w = l
            .weight_shape
            .as_ref()
            .map(|s| format!("{s:?}"))
            .unwrap_or_else(|| "-".into());
        let o = l
            .output_shape
            .as_ref()
            .map(|s| format!(" -> {s:?}"))
            .unwrap_or_default();
        println!(
            "  {:<width$}  {:<13} weight {w}{o}",
            esc(&l.name),
            esc(&l.op_type)
        );
    }
    if unsupported.is_empty() {
        println!("unsupported ops: none");
    } else {
        println!("unsupported ops: {}", unsupported.len());
        for u in &unsupported {
            println!(
                "  {} (node `{}`, opset {})",
                esc(&u.op_type),
                esc(&u.node),
                u.opset
            );
        }
    }
    if bound.is_none() && !g.inputs.is_empty() {
        println!("(dynamic input dimensions: pass --input-shape NAME=DIMS to see static shapes)");
    }
    let _ = Graph::default;
    Ok(0)
}

/// A model-provided name, safe for the terminal.
fn esc(s: &str) -> String {
    qtune::util::text::escape_control(s)
}

fn dim_json(d: &Dim) -> serde_json::Value {
    match d {
        Dim::Fixed(n) => json!(n),
        Dim::Dynamic(s) if s.is_empty() => json!("?"),
        Dim::Dynamic(s) => json!(s),
    }
}

fn print_io(title: &str, list: &[Io], _g: &Graph) {
    println!("{title}");
    for i in list {
        let declared = i
            .shape
            .as_ref()
            .map(|d| {
                let s: Vec<String> = d
                    .iter()
                    .map(|v| v.to_string().trim_matches('"').to_string())
                    .collect();
                format!("[{}]", s.join(","))
            })
            .unwrap_or_else(|| "(no shape)".into());
        let bound = i
            .bound
            .as_ref()
            .map(|b| format!("  bound {b:?}"))
            .unwrap_or_default();
        println!(
            "  {}  {}  {declared}{bound}",
            esc(&i.name),
            i.dtype.unwrap_or("?")
        );
    }
}
