//! Compiles the nodes of a graph and propagates static facts (types, shapes,
//! constants) through it, folding every node whose inputs are all constant.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ir::shape::fmt_shape;
use crate::ir::{Dim, Facts, Graph, MAX_ELEMENTS, Node, Tensor, ValueId, checked_numel};

use super::error::{EngineError, EngineResult};
use super::ops::{self, BuildCtx, Op};
use crate::util::budget::Tally;
use crate::util::text::escape_control;

/// The result of analysing a graph for concrete input shapes.
#[derive(Debug)]
pub struct Analysis {
    /// Facts per value (indexed by `ValueId`).
    pub facts: Vec<Facts>,
    /// Per node: the compiled op, or `None` when the node was folded to constants.
    pub ops: Vec<Option<Box<dyn Op>>>,
    /// Values computed at load (outputs of folded nodes).
    pub folded: HashMap<ValueId, Arc<Tensor>>,
}

/// An op type qtune cannot run, with the node that uses it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    pub op_type: String,
    pub node: String,
    pub opset: i64,
}

/// Op type as shown to users: `Conv`, or `com.microsoft.FusedConv` outside the default domain.
pub fn display_op_type(node: &Node) -> String {
    if node.domain.is_empty() || node.domain == "ai.onnx" {
        node.op_type.clone()
    } else {
        format!("{}.{}", node.domain, node.op_type)
    }
}

fn is_default_domain(node: &Node) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

/// Every node whose op type qtune does not support, in graph order.
pub fn unsupported_ops(graph: &Graph) -> Vec<Unsupported> {
    graph
        .nodes
        .iter()
        .filter(|n| !is_default_domain(n) || ops::builder(&n.op_type).is_none())
        .map(|n| Unsupported {
            op_type: display_op_type(n),
            node: n.name.clone(),
            opset: opset_of(graph, n),
        })
        .collect()
}

fn opset_of(graph: &Graph, node: &Node) -> i64 {
    if is_default_domain(node) {
        graph.opset
    } else {
        graph
            .other_opsets
            .iter()
            .find(|(d, _)| *d == node.domain)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    }
}

/// Fails with `UnsupportedOp` on the first node qtune cannot run.
pub fn check_supported(graph: &Graph) -> EngineResult<()> {
    match unsupported_ops(graph).into_iter().next() {
        None => Ok(()),
        Some(u) => Err(EngineError::UnsupportedOp {
            op_type: u.op_type,
            node: u.node,
            opset: u.opset,
        }),
    }
}

/// Compiles one node; `consts` holds the constant value of each input position, if any.
pub fn compile_node(
    graph: &Graph,
    node: &Node,
    consts: Vec<Option<&Tensor>>,
) -> EngineResult<Box<dyn Op>> {
    let build = ops::builder(&node.op_type)
        .filter(|_| is_default_domain(node))
        .ok_or_else(|| EngineError::UnsupportedOp {
            op_type: display_op_type(node),
            node: node.name.clone(),
            opset: opset_of(graph, node),
        })?;
    let ctx = BuildCtx {
        node,
        opset: graph.opset,
        consts,
    };
    build(&ctx).map_err(|e| op_error(node, e))
}

fn op_error(node: &Node, source: ops::OpError) -> EngineError {
    EngineError::Op {
        node: node.name.clone(),
        op_type: node.op_type.clone(),
        source,
    }
}

/// Checks concrete input shapes against the graph's declared inputs.
pub fn check_input_shapes(graph: &Graph, shapes: &[Vec<usize>]) -> EngineResult<()> {
    if shapes.len() != graph.inputs.len() {
        return Err(EngineError::Invalid(format!(
            "the model has {} input(s), {} given",
            graph.inputs.len(),
            shapes.len()
        )));
    }
    for (id, shape) in graph.inputs.iter().zip(shapes) {
        let v = graph.value(*id);
        let Some(declared) = &v.shape else { continue };
        let expect = || {
            let d: Vec<String> = declared
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => n.to_string(),
                    Dim::Dynamic(s) if s.is_empty() => "?".into(),
                    Dim::Dynamic(s) => s.clone(),
                })
                .collect();
            format!("[{}]", d.join(","))
        };
        let bad = declared.len() != shape.len()
            || declared
                .iter()
                .zip(shape)
                .any(|(d, &s)| matches!(d, Dim::Fixed(n) if *n != s));
        if bad {
            return Err(EngineError::Input {
                name: v.name.clone(),
                msg: format!("expected shape {}, got {}", expect(), fmt_shape(shape)),
            });
        }
    }
    Ok(())
}

/// Analyses `graph` for the given concrete input shapes (one per graph input).
pub fn analyze(graph: &Graph, input_shapes: &[Vec<usize>]) -> EngineResult<Analysis> {
    check_input_shapes(graph, input_shapes)?;
    analyze_with(graph, Some(input_shapes))
}

/// Analyses `graph` without binding input shapes: only what depends on constants alone
/// folds (weights built by `ConstantOfShape`, …), shape sub-graphs of the inputs stay.
pub fn analyze_unbound(graph: &Graph) -> EngineResult<Analysis> {
    analyze_with(graph, None)
}

/// A copy of `graph` with every constant-only node folded, input shapes left dynamic.
pub fn fold_constants(graph: &Graph) -> EngineResult<Graph> {
    let a = analyze_unbound(graph)?;
    let shapes: Vec<Option<Vec<usize>>> = vec![None; graph.values.len()];
    Ok(crate::ir::fold::apply(graph, &a.folded, &shapes))
}

fn analyze_with(graph: &Graph, input_shapes: Option<&[Vec<usize>]>) -> EngineResult<Analysis> {
    let mut facts: Vec<Facts> = graph
        .values
        .iter()
        .map(|v| Facts::unknown_shape(v.dtype))
        .collect();
    for (id, t) in &graph.constants {
        facts[id.0] = Facts::constant(t.clone());
    }
    for (id, shape) in graph.inputs.iter().zip(input_shapes.unwrap_or_default()) {
        facts[id.0].shape = Some(shape.clone());
        check_size(graph, *id, &facts[id.0], "(graph input)")?;
    }
    let mut ops_out = Vec::with_capacity(graph.nodes.len());
    let mut folded = HashMap::new();
    // Everything computed at load stays in memory: its total is bounded, not only each value.
    let mut held = Tally::default();
    for t in graph.constants.values() {
        held.add(String::new, t.nbytes() as u64)
            .map_err(|source| EngineError::OverBudget {
                node: "(the model's constants)".into(),
                source,
            })?;
    }
    for node in &graph.nodes {
        let consts: Vec<Option<&Tensor>> = node
            .inputs
            .iter()
            .map(|i| i.and_then(|v| facts[v.0].value.as_deref()))
            .collect();
        let op = compile_node(graph, node, consts)?;
        let in_facts: Vec<Option<&Facts>> =
            node.inputs.iter().map(|i| i.map(|v| &facts[v.0])).collect();
        let mut out = op.infer(&in_facts).map_err(|e| op_error(node, e))?;
        for (k, o) in node.outputs.iter().enumerate() {
            if let (Some(v), Some(f)) = (o, out.get(k)) {
                check_size(graph, *v, f, &node.name)?;
            }
        }
        let all_const = node
            .inputs
            .iter()
            .flatten()
            .all(|v| facts[v.0].value.is_some());
        let infer_known = node
            .outputs
            .iter()
            .enumerate()
            .all(|(k, o)| o.is_none() || out.get(k).is_some_and(|f| f.value.is_some()));
        if op.is_pure() && (all_const || infer_known) {
            if !infer_known {
                count_folded(graph, node, &out, &mut held)?;
                let ins: Vec<Option<&Tensor>> = node
                    .inputs
                    .iter()
                    .map(|i| i.and_then(|v| facts[v.0].value.as_deref()))
                    .collect();
                let vals = op.run(&ins).map_err(|e| op_error(node, e))?;
                out = vals
                    .into_iter()
                    .map(|t| Facts::constant(Arc::new(t)))
                    .collect();
            }
            for (k, o) in node.outputs.iter().enumerate() {
                if let Some(v) = o {
                    let f = out.get(k).cloned().unwrap_or_default();
                    if let Some(t) = &f.value {
                        folded.insert(*v, t.clone());
                    }
                    facts[v.0] = f;
                }
            }
            ops_out.push(None);
            continue;
        }
        for (k, o) in node.outputs.iter().enumerate() {
            if let Some(v) = o {
                let mut f = out.get(k).cloned().unwrap_or_default();
                if f.dtype.is_none() {
                    f.dtype = graph.value(*v).dtype;
                }
                facts[v.0] = f;
            }
        }
        ops_out.push(Some(op));
    }
    Ok(Analysis {
        facts,
        ops: ops_out,
        folded,
    })
}

/// Counts the outputs a folded node is about to compute against the load-time budget.
fn count_folded(graph: &Graph, node: &Node, out: &[Facts], held: &mut Tally) -> EngineResult<()> {
    for (k, o) in node.outputs.iter().enumerate() {
        let (Some(v), Some(f)) = (o, out.get(k)) else {
            continue;
        };
        let bytes = value_bytes(f).unwrap_or(0);
        held.add(
            || format!("folding `{}` at load", escape_control(graph.value_name(*v))),
            bytes,
        )
        .map_err(|source| EngineError::OverBudget {
            node: escape_control(&node.name),
            source,
        })?;
    }
    Ok(())
}

/// Bytes of a value of known shape (element size 4 when the type is unknown).
fn value_bytes(f: &Facts) -> Option<u64> {
    let n = checked_numel(f.shape.as_ref()?)? as u64;
    Some(n.saturating_mul(f.dtype.map_or(4, |d| d.size()) as u64))
}

fn check_size(graph: &Graph, v: ValueId, f: &Facts, node: &str) -> EngineResult<()> {
    let Some(shape) = &f.shape else { return Ok(()) };
    match checked_numel(shape) {
        Some(n) if n <= MAX_ELEMENTS => {}
        n => {
            return Err(EngineError::TooLarge {
                name: escape_control(graph.value_name(v)),
                node: escape_control(node),
                elements: n
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "more than 2^64".into()),
                shape: fmt_shape(shape),
                limit: MAX_ELEMENTS,
            });
        }
    }
    let bytes = value_bytes(f).unwrap_or(0);
    crate::util::budget::check(
        || format!("value `{}`", escape_control(graph.value_name(v))),
        bytes,
    )
    .map_err(|source| EngineError::OverBudget {
        node: escape_control(node),
        source,
    })
}

/// A copy of `graph` for fixed input shapes: folded nodes replaced by constants,
/// dead nodes removed, static shapes recorded on every value.
pub fn prepare(graph: &Graph, input_shapes: &[Vec<usize>]) -> EngineResult<Graph> {
    let a = analyze(graph, input_shapes)?;
    let shapes: Vec<Option<Vec<usize>>> = a.facts.iter().map(|f| f.shape.clone()).collect();
    Ok(crate::ir::fold::apply(graph, &a.folded, &shapes))
}
