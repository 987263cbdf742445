//! The graph IR: values, nodes and constants, independent of the ONNX protobuf.
//!
//! A `Graph` is plain data. Passes (folding, quantization) rewrite it; the engine
//! compiles it into a plan; export writes it back as ONNX.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::tensor::{DType, Tensor};

/// Index of a value (tensor edge) in `Graph::values`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// Index of a node in `Graph::nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// A symbolic or unknown dimension (`dim_param`, or no value).
    Dynamic(String),
}

/// A value: a named tensor edge with the type and shape the model declares (if any).
#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub dtype: Option<DType>,
    pub shape: Option<Vec<Dim>>,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(Tensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
    /// A sub-graph or another kind qtune does not interpret; the text says which.
    Unsupported(&'static str),
}

/// A node: an operator applied to values.
#[derive(Clone, Debug)]
pub struct Node {
    /// Unique, never empty: the ONNX node name, or `<OpType>_<index>` when it had none.
    pub name: String,
    pub op_type: String,
    /// Operator domain; "" is the default ONNX domain.
    pub domain: String,
    /// Inputs in order; `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Outputs in order; `None` for an omitted optional output.
    pub outputs: Vec<Option<ValueId>>,
    pub attrs: BTreeMap<String, Attr>,
}

impl Node {
    /// The `i`-th input if present.
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    /// The `i`-th output if present.
    pub fn output(&self, i: usize) -> Option<ValueId> {
        self.outputs.get(i).copied().flatten()
    }
}

/// A model graph.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub values: Vec<Value>,
    /// Nodes in a valid topological order.
    pub nodes: Vec<Node>,
    /// Inputs the caller feeds (initializers excluded), in graph order.
    pub inputs: Vec<ValueId>,
    /// Graph outputs, in graph order.
    pub outputs: Vec<ValueId>,
    /// Constant values: initializers and folded constants.
    pub constants: HashMap<ValueId, Arc<Tensor>>,
    /// Version of the default ONNX domain.
    pub opset: i64,
    /// Other operator sets the model imports (domain, version).
    pub other_opsets: Vec<(String, i64)>,
    pub ir_version: i64,
    pub producer: String,
    /// Model metadata (`metadata_props`).
    pub metadata: Vec<(String, String)>,
}

impl Graph {
    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0]
    }

    pub fn value_name(&self, id: ValueId) -> &str {
        &self.values[id.0].name
    }

    /// Adds a value and returns its id.
    pub fn add_value(&mut self, name: impl Into<String>, dtype: Option<DType>) -> ValueId {
        self.values.push(Value {
            name: name.into(),
            dtype,
            shape: None,
        });
        ValueId(self.values.len() - 1)
    }

    /// Adds a constant value and returns its id.
    pub fn add_constant(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        let id = self.add_value(name, Some(t.dtype()));
        self.values[id.0].shape = Some(t.shape().iter().map(|&d| Dim::Fixed(d)).collect());
        self.constants.insert(id, Arc::new(t));
        id
    }

    /// Finds a value by name.
    pub fn find_value(&self, name: &str) -> Option<ValueId> {
        self.values.iter().position(|v| v.name == name).map(ValueId)
    }

    /// Finds a node by name.
    pub fn find_node(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name).map(NodeId)
    }

    /// For every value, the node producing it (constants and graph inputs have none).
    pub fn producers(&self) -> Vec<Option<NodeId>> {
        let mut p = vec![None; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for o in n.outputs.iter().flatten() {
                p[o.0] = Some(NodeId(i));
            }
        }
        p
    }

    /// For every value, the nodes consuming it, in node order.
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                if c[v.0].last() != Some(&NodeId(i)) {
                    c[v.0].push(NodeId(i));
                }
            }
        }
        c
    }

    /// Counts of each op type, sorted by op type.
    pub fn op_counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for n in &self.nodes {
            *m.entry(n.op_type.clone()).or_insert(0) += 1;
        }
        m
    }

    /// A unique value name derived from `base` (used by passes that add values).
    pub fn fresh_name(&self, base: &str) -> String {
        if self.find_value(base).is_none() {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| self.find_value(n).is_none())
            .expect("infinite")
    }
}

/// Quantizable layer types (DESIGN.md "Terms").
pub const QUANTIZABLE_OPS: [&str; 4] = ["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// Whether a node is a quantizable layer.
pub fn is_layer(node: &Node) -> bool {
    node.domain.is_empty() && QUANTIZABLE_OPS.contains(&node.op_type.as_str())
}
