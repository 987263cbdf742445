//! Loading an ONNX model file into the graph IR.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};

use super::attrs::{TensorError, attr_from_proto, tensor_from_proto};
use super::proto::{
    GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto,
    tensor_shape_proto::dimension::Value as DimValue,
};
use crate::ir::tensor::onnx_type_name;
use crate::ir::{Attr, DType, Dim, Graph, MAX_ELEMENTS, Node, Tensor, Value, ValueId};
use crate::util::budget::Tally;
use crate::util::text::escape_control;

/// Errors loading a model; each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an ONNX model (protobuf decoding failed: {reason})")]
    NotOnnx { path: PathBuf, reason: String },
    #[error("{path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
    #[error("{path}: tensor `{name}`: {source}")]
    Tensor {
        path: PathBuf,
        name: String,
        source: TensorError,
    },
}

/// A loaded model: its graph, where it came from, and the SHA-256 of the file.
#[derive(Clone, Debug)]
pub struct Model {
    pub graph: Graph,
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the model file.
    pub sha256: String,
}

/// Lowest default-domain opset qtune reads (the importers branch on the opset where an op
/// changed; the ONNX suites test opsets 1 and 6 too).
pub const MIN_OPSET: i64 = 1;
/// Highest default-domain opset qtune reads.
pub const MAX_OPSET: i64 = 28;

/// Reads and converts an ONNX model file.
pub fn load_model(path: &Path) -> Result<Model, LoadError> {
    let bytes =
        crate::util::fs::read_input(path, crate::util::budget::limit()).map_err(|source| {
            LoadError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let graph = graph_from_bytes(&bytes, path)?;
    Ok(Model {
        graph,
        path: path.to_path_buf(),
        sha256,
    })
}

/// Why a model without a default-domain opset cannot run: it uses only other domains
/// (`ai.onnx.ml`, training), whose ops qtune does not run, or it is not a model at all.
fn no_default_opset(gp: &GraphProto, others: &[(String, i64)]) -> String {
    let first = gp.node.first();
    match (others.is_empty(), first) {
        (false, Some(n)) => {
            let domain = n.domain.clone().unwrap_or_default();
            let op = escape_control(n.op_type.as_deref().unwrap_or("?"));
            let shown = if domain.is_empty() {
                op
            } else {
                format!("{}.{op}", escape_control(&domain))
            };
            let imports: Vec<String> = others
                .iter()
                .map(|(d, v)| format!("{} {v}", escape_control(d)))
                .collect();
            format!(
                "unsupported op `{shown}` (node `{}`): the model imports only {} and no \
                 opset of the default ONNX domain, the only one qtune runs",
                escape_control(n.name.as_deref().unwrap_or("")),
                imports.join(", ")
            )
        }
        _ => "no opset for the default ONNX domain (truncated, or not an ONNX model)".into(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Converts serialized ONNX bytes; `path` is used for messages and external data.
pub fn graph_from_bytes(bytes: &[u8], path: &Path) -> Result<Graph, LoadError> {
    let invalid = |msg: String| LoadError::Invalid {
        path: path.to_path_buf(),
        msg,
    };
    let model = ModelProto::decode(bytes).map_err(|e| LoadError::NotOnnx {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let gp = model.graph.as_ref().ok_or_else(|| {
        invalid("the file holds no graph (truncated, or not an ONNX model)".into())
    })?;
    let mut opset = None;
    let mut other_opsets = Vec::new();
    for o in &model.opset_import {
        let d = o.domain.clone().unwrap_or_default();
        if d.is_empty() || d == "ai.onnx" {
            opset = o.version;
        } else {
            other_opsets.push((d, o.version.unwrap_or(0)));
        }
    }
    let opset = opset.ok_or_else(|| invalid(no_default_opset(gp, &other_opsets)))?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(invalid(format!(
            "opset {opset} of the default ONNX domain is not supported; qtune reads opsets {MIN_OPSET} to {MAX_OPSET}"
        )));
    }
    let dir = path.parent();
    let mut b = Builder {
        g: Graph::default(),
        by_name: HashMap::new(),
        path,
        constants: Tally::default(),
    };
    b.g.opset = opset;
    b.g.other_opsets = other_opsets;
    b.g.ir_version = model.ir_version.unwrap_or(0);
    b.g.producer = model.producer_name.clone().unwrap_or_default();
    b.g.metadata = model
        .metadata_props
        .iter()
        .map(|p| {
            (
                p.key.clone().unwrap_or_default(),
                p.value.clone().unwrap_or_default(),
            )
        })
        .collect();

    for init in &gp.initializer {
        let name = init.name.clone().unwrap_or_default();
        b.count_constant(init, &name)?;
        let t = tensor_from_proto(init, dir, MAX_ELEMENTS).map_err(|source| LoadError::Tensor {
            path: path.to_path_buf(),
            name: name.clone(),
            source,
        })?;
        let id = b.g.add_constant(name.clone(), t);
        b.by_name.insert(name, id);
    }
    for vi in &gp.input {
        let name = vi.name.clone().unwrap_or_default();
        if b.by_name.contains_key(&name) {
            continue; // an input with an initializer is a constant with a default
        }
        let (dtype, shape) = b.value_type(vi)?;
        let id = b.g.add_value(name.clone(), Some(dtype));
        b.g.values[id.0].shape = shape;
        b.by_name.insert(name, id);
        b.g.inputs.push(id);
    }
    let order = topo_order(&gp.node, &b.by_name.keys().cloned().collect()).map_err(&invalid)?;
    let mut taken: HashSet<String> = HashSet::new();
    for idx in order {
        b.add_node(&gp.node[idx], idx, dir, &mut taken)?;
    }
    for vi in &gp.output {
        let name = vi.name.clone().unwrap_or_default();
        let id = *b.by_name.get(&name).ok_or_else(|| {
            invalid(format!(
                "graph output `{name}` is not computed by any node (truncated model?)"
            ))
        })?;
        if let Ok((dt, shape)) = b.value_type(vi) {
            let v = &mut b.g.values[id.0];
            v.dtype = v.dtype.or(Some(dt));
            if v.shape.is_none() {
                v.shape = shape;
            }
        }
        b.g.outputs.push(id);
    }
    if b.g.outputs.is_empty() {
        return Err(invalid("the graph has no outputs".into()));
    }
    Ok(b.g)
}

struct Builder<'p> {
    g: Graph,
    by_name: HashMap<String, ValueId>,
    path: &'p Path,
    /// Bytes of every constant so far, against the memory budget.
    constants: Tally,
}

impl Builder<'_> {
    /// Counts a constant's declared size against the budget before it is decoded.
    fn count_constant(&mut self, t: &TensorProto, name: &str) -> Result<(), LoadError> {
        let size = DType::from_onnx(t.data_type.unwrap_or(0)).map_or(1, DType::size) as u64;
        let n = t
            .dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))
            .unwrap_or(u64::MAX);
        if n > MAX_ELEMENTS as u64 {
            return Ok(()); // tensor_from_proto refuses it, naming the element count
        }
        self.constants
            .add(
                || format!("constant `{}`", escape_control(name)),
                n.saturating_mul(size),
            )
            .map_err(|e| self.invalid(e.to_string()))
    }

    fn invalid(&self, msg: String) -> LoadError {
        LoadError::Invalid {
            path: self.path.to_path_buf(),
            msg,
        }
    }

    fn value_type(&self, vi: &ValueInfoProto) -> Result<(DType, Option<Vec<Dim>>), LoadError> {
        let name = vi.name.clone().unwrap_or_default();
        let tt = match vi
            .r#type
            .as_ref()
            .and_then(|t: &TypeProto| t.value.as_ref())
        {
            Some(super::proto::type_proto::Value::TensorType(tt)) => tt,
            _ => return Err(self.invalid(format!("value `{name}` is not a tensor"))),
        };
        let code = tt.elem_type.unwrap_or(0);
        let dtype = DType::from_onnx(code).ok_or_else(|| {
            self.invalid(format!(
                "value `{name}` has element type {}, which qtune does not support",
                onnx_type_name(code)
            ))
        })?;
        let shape = tt.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(v)) if *v > 0 => Dim::Fixed(*v as usize),
                    Some(DimValue::DimValue(0)) => Dim::Fixed(0),
                    Some(DimValue::DimParam(p)) => Dim::Dynamic(p.clone()),
                    _ => Dim::Dynamic(String::new()),
                })
                .collect()
        });
        Ok((dtype, shape))
    }

    fn add_node(
        &mut self,
        np: &NodeProto,
        index: usize,
        dir: Option<&Path>,
        taken: &mut HashSet<String>,
    ) -> Result<(), LoadError> {
        let op_type = np.op_type.clone().unwrap_or_default();
        let domain = np.domain.clone().unwrap_or_default();
        let mut name = np
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{op_type}_{index}"));
        if taken.contains(&name) {
            name = format!("{name}_{index}");
        }
        taken.insert(name.clone());
        let mut attrs = BTreeMap::new();
        for a in &np.attribute {
            let an = a.name.clone().unwrap_or_default();
            if let Some(t) = &a.t {
                self.count_constant(t, &format!("{name}.{an}"))?;
            }
            let v = attr_from_proto(a, dir, MAX_ELEMENTS).map_err(|source| LoadError::Tensor {
                path: self.path.to_path_buf(),
                name: format!("{name}.{an}"),
                source,
            })?;
            attrs.insert(an, v);
        }
        if op_type == "Constant" && (domain.is_empty() || domain == "ai.onnx") {
            let out = np.output.first().cloned().unwrap_or_default();
            let t = constant_value(&attrs)
                .map_err(|m| self.invalid(format!("Constant node `{name}`: {m}")))?;
            let id = self.g.add_constant(out.clone(), t);
            self.by_name.insert(out, id);
            return Ok(());
        }
        let mut inputs = Vec::with_capacity(np.input.len());
        for i in &np.input {
            if i.is_empty() {
                inputs.push(None);
            } else {
                let id = *self.by_name.get(i).ok_or_else(|| {
                    self.invalid(format!("node `{name}` ({op_type}) reads `{i}`, which nothing defines (truncated model?)"))
                })?;
                inputs.push(Some(id));
            }
        }
        let mut outputs = Vec::with_capacity(np.output.len());
        for o in &np.output {
            if o.is_empty() {
                outputs.push(None);
                continue;
            }
            if self.by_name.contains_key(o) {
                return Err(self.invalid(format!("value `{o}` is defined twice (node `{name}`)")));
            }
            let id = self.g.add_value(o.clone(), None);
            self.by_name.insert(o.clone(), id);
            outputs.push(Some(id));
        }
        self.g.nodes.push(Node {
            name,
            op_type,
            domain,
            inputs,
            outputs,
            attrs,
        });
        Ok(())
    }
}

/// The tensor of a `Constant` node from whichever `value*` attribute it has.
fn constant_value(attrs: &BTreeMap<String, Attr>) -> Result<Tensor, String> {
    let (k, v) = attrs.iter().next().ok_or("no value attribute")?;
    Ok(match (k.as_str(), v) {
        ("value", Attr::Tensor(t)) => t.clone(),
        ("value_float", Attr::Float(f)) => Tensor::scalar_f32(*f),
        ("value_floats", Attr::Floats(f)) => Tensor::from_f32(&[f.len()], f.clone()),
        ("value_int", Attr::Int(i)) => Tensor::scalar_i64(*i),
        ("value_ints", Attr::Ints(i)) => Tensor::from_i64(&[i.len()], i.clone()),
        (k, _) => {
            return Err(format!(
                "attribute `{k}` is not supported (strings and sparse tensors are not)"
            ));
        }
    })
}

/// Node indices in a topological order (stable: the file order when it is valid).
fn topo_order(nodes: &[NodeProto], known: &HashSet<String>) -> Result<Vec<usize>, String> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(o.as_str(), i);
        }
    }
    let mut state = vec![0u8; nodes.len()]; // 0 new, 1 visiting, 2 done
    let mut order = Vec::with_capacity(nodes.len());
    for start in 0..nodes.len() {
        if state[start] != 0 {
            continue;
        }
        // Iterative DFS: (node, next input index).
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some((n, k)) = stack.pop() {
            let inputs = &nodes[n].input;
            if k < inputs.len() {
                stack.push((n, k + 1));
                let name = inputs[k].as_str();
                if name.is_empty() || known.contains(name) {
                    continue;
                }
                if let Some(&p) = producer.get(name) {
                    match state[p] {
                        0 => {
                            state[p] = 1;
                            stack.push((p, 0));
                        }
                        1 => return Err(format!("the graph has a cycle through `{name}`")),
                        _ => {}
                    }
                }
            } else {
                state[n] = 2;
                order.push(n);
            }
        }
    }
    Ok(order)
}

/// Shares a constant tensor; convenience for tests building graphs by hand.
pub fn shared(t: Tensor) -> Arc<Tensor> {
    Arc::new(t)
}

#[allow(dead_code)]
fn _assert_value_is_send(v: Value) -> impl Send {
    v
}

#[cfg(test)]
mod tests {
    use super::super::proto::OperatorSetIdProto;
    use super::*;

    fn model(opsets: &[(&str, i64)], node_domain: &str, op: &str) -> Vec<u8> {
        let node = NodeProto {
            op_type: Some(op.into()),
            domain: Some(node_domain.into()),
            name: Some("n0".into()),
            ..Default::default()
        };
        ModelProto {
            ir_version: Some(8),
            opset_import: opsets
                .iter()
                .map(|(d, v)| OperatorSetIdProto {
                    domain: Some(d.to_string()),
                    version: Some(*v),
                })
                .collect(),
            graph: Some(GraphProto {
                node: vec![node],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_model_of_another_domain_names_its_op_not_a_truncated_file() {
        let bytes = model(&[("ai.onnx.ml", 3)], "ai.onnx.ml", "Binarizer");
        let e = graph_from_bytes(&bytes, Path::new("m.onnx")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("unsupported op `ai.onnx.ml.Binarizer` (node `n0`)"),
            "{msg}"
        );
        assert!(msg.contains("imports only ai.onnx.ml 3"), "{msg}");
        // nothing imported at all: not a model
        let bytes = model(&[], "", "Relu");
        let e = graph_from_bytes(&bytes, Path::new("m.onnx")).unwrap_err();
        assert!(e.to_string().contains("not an ONNX model"), "{e}");
    }
}
