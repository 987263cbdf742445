//! Operators: one file per family, each exporting `OPS`, a table from ONNX op type to a
//! builder. A builder reads the node's attributes (branching on the opset where the
//! spec changed) and returns a compiled `Op` that infers static facts and runs.

use std::fmt::Debug;

use ndarray::ArrayD;

use crate::engine::kernels::epilogue::{Chain, Operand, Step};
use crate::ir::{Attr, DType, Facts, Node, Tensor};

pub mod attention;
pub mod binary;
pub mod bitwise;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod quant;
pub mod recurrent;
pub mod reduce;
pub mod resize;
pub mod shape;
pub mod util;

/// Errors of one operator; the engine adds the node name and op type.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("attribute `{name}`: {msg}")]
    Attr { name: String, msg: String },
    #[error("input {index}: {msg}")]
    Input { index: usize, msg: String },
    #[error("{0}")]
    Invalid(String),
    #[error("not supported: {0}")]
    Unsupported(String),
}

pub type OpResult<T> = Result<T, OpError>;

/// A compiled operator.
pub trait Op: Send + Sync + Debug {
    /// Facts of the outputs from the facts of the inputs (`None` = omitted optional input).
    /// Shapes may stay unknown (`None`) when they depend on non-constant input values.
    /// A result may carry a `value` when it is known without running (e.g. `Shape`).
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>>;

    /// Computes the outputs (`None` = omitted optional input). Outputs are returned for
    /// every declared output position the op produces, in order.
    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>>;

    /// Whether `run` is a pure function of its inputs, so it may be folded at load.
    fn is_pure(&self) -> bool {
        true
    }

    /// This op as one step of a fused epilogue (`kernels::epilogue`), when on float32
    /// it computes, element by element, exactly what the step computes: `inputs` says
    /// per input position what it is (the running value, a constant, …) and `shape` is
    /// the running value's shape, which the output keeps. `None`: not fusable.
    fn epilogue_step(&self, inputs: &[FuseInput], shape: &[usize]) -> Option<Step> {
        let _ = (inputs, shape);
        None
    }

    /// This op with `chain` run on its output (a plan's fusion of the element-wise ops
    /// that follow it), when it supports epilogues. The fused op reads the chain's
    /// element-wise inputs after its own and returns the chain's result, then the
    /// chain's stored values.
    fn with_epilogue(&self, chain: Chain) -> Option<Box<dyn Op>> {
        let _ = chain;
        None
    }
}

/// What an input of an op is, as a fused epilogue would see it (`Op::epilogue_step`).
#[derive(Clone, Copy, Debug)]
pub enum FuseInput<'a> {
    /// The chain's running value.
    Running,
    /// A constant.
    Const(&'a Tensor),
    /// A computed float32 value of the running value's shape, read element-wise
    /// (`Operand::Tensor` with this index).
    Tensor(usize),
    /// An earlier value of the chain (`Operand::Saved` with this slot).
    Saved(usize),
    /// Omitted (an optional input).
    Absent,
    /// Anything else: the op is not fusable.
    Other,
}

impl FuseInput<'_> {
    /// The operand this input is for a binary step against a running value of `shape`.
    pub fn operand(self, shape: &[usize]) -> Option<Operand> {
        match self {
            FuseInput::Const(Tensor::F32(a)) => {
                let v: Vec<f32> = a.iter().copied().collect();
                Operand::from_const(a.shape(), &v, shape)
            }
            FuseInput::Tensor(k) => Some(Operand::Tensor(k)),
            FuseInput::Saved(s) => Some(Operand::Saved(s)),
            _ => None,
        }
    }

    /// A constant float32 scalar's value.
    pub fn scalar(self) -> Option<f32> {
        match self {
            FuseInput::Const(Tensor::F32(a)) if a.len() == 1 => a.iter().next().copied(),
            _ => None,
        }
    }
}

/// What a builder sees: the node, the opset, and the constant inputs known at build time.
pub struct BuildCtx<'a> {
    pub node: &'a Node,
    pub opset: i64,
    /// Per input position: the constant value when the input is a constant.
    pub consts: Vec<Option<&'a Tensor>>,
}

/// Builds a compiled op from a node.
pub type BuildFn = fn(&BuildCtx) -> OpResult<Box<dyn Op>>;

/// All op families. Order does not matter; an op type appears once.
fn families() -> [&'static [(&'static str, BuildFn)]; 15] {
    [
        elementwise::OPS,
        binary::OPS,
        bitwise::OPS,
        reduce::OPS,
        norm::OPS,
        quant::OPS,
        shape::OPS,
        resize::OPS,
        pool::OPS,
        conv::OPS,
        matmul::OPS,
        recurrent::OPS,
        index::OPS,
        loss::OPS,
        attention::OPS,
    ]
}

/// The builder for an op type of the default domain, if qtune supports it.
pub fn builder(op_type: &str) -> Option<BuildFn> {
    families()
        .iter()
        .flat_map(|f| f.iter())
        .find(|(name, _)| *name == op_type)
        .map(|(_, b)| *b)
}

/// Every supported op type, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    let mut v: Vec<&str> = families()
        .iter()
        .flat_map(|f| f.iter())
        .map(|(n, _)| *n)
        .collect();
    v.sort_unstable();
    v
}

impl<'a> BuildCtx<'a> {
    fn attr(&self, name: &str) -> Option<&'a Attr> {
        self.node.attrs.get(name)
    }

    fn attr_err(&self, name: &str, msg: impl Into<String>) -> OpError {
        OpError::Attr {
            name: name.to_string(),
            msg: msg.into(),
        }
    }

    /// An integer attribute, if present.
    pub fn int(&self, name: &str) -> OpResult<Option<i64>> {
        match self.attr(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(other) => {
                Err(self.attr_err(name, format!("expected an int, found {}", kind(other))))
            }
        }
    }

    pub fn int_or(&self, name: &str, default: i64) -> OpResult<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// A float attribute, if present (an int is accepted and widened).
    pub fn float(&self, name: &str) -> OpResult<Option<f32>> {
        match self.attr(name) {
            None => Ok(None),
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(Attr::Int(v)) => Ok(Some(*v as f32)),
            Some(other) => {
                Err(self.attr_err(name, format!("expected a float, found {}", kind(other))))
            }
        }
    }

    pub fn float_or(&self, name: &str, default: f32) -> OpResult<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    /// A list-of-ints attribute, if present.
    pub fn ints(&self, name: &str) -> OpResult<Option<Vec<i64>>> {
        match self.attr(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(v)) => Ok(Some(vec![*v])),
            Some(other) => Err(self.attr_err(
                name,
                format!("expected a list of ints, found {}", kind(other)),
            )),
        }
    }

    /// A list-of-floats attribute, if present.
    pub fn floats(&self, name: &str) -> OpResult<Option<Vec<f32>>> {
        match self.attr(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(Attr::Float(v)) => Ok(Some(vec![*v])),
            Some(other) => Err(self.attr_err(
                name,
                format!("expected a list of floats, found {}", kind(other)),
            )),
        }
    }

    /// A string attribute, if present.
    pub fn string(&self, name: &str) -> OpResult<Option<String>> {
        match self.attr(name) {
            None => Ok(None),
            Some(Attr::String(v)) => Ok(Some(v.clone())),
            Some(other) => {
                Err(self.attr_err(name, format!("expected a string, found {}", kind(other))))
            }
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> OpResult<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    /// A string attribute that must be one of `allowed` (default when absent).
    pub fn choice(&self, name: &str, default: &str, allowed: &[&str]) -> OpResult<String> {
        let v = self.string_or(name, default)?;
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(self.attr_err(name, format!("`{v}` is not one of {}", allowed.join(", "))))
        }
    }

    /// A tensor attribute, if present.
    pub fn tensor(&self, name: &str) -> OpResult<Option<&'a Tensor>> {
        match self.attr(name) {
            None => Ok(None),
            Some(Attr::Tensor(t)) => Ok(Some(t)),
            Some(other) => {
                Err(self.attr_err(name, format!("expected a tensor, found {}", kind(other))))
            }
        }
    }

    /// Number of input positions (including omitted optional ones).
    pub fn num_inputs(&self) -> usize {
        self.node.inputs.len()
    }

    /// Whether input `i` is present.
    pub fn has_input(&self, i: usize) -> bool {
        self.node.input(i).is_some()
    }

    /// The constant value of input `i`, when it is a constant.
    pub fn const_input(&self, i: usize) -> Option<&'a Tensor> {
        self.consts.get(i).copied().flatten()
    }
}

fn kind(a: &Attr) -> &'static str {
    match a {
        Attr::Float(_) => "a float",
        Attr::Int(_) => "an int",
        Attr::String(_) => "a string",
        Attr::Tensor(_) => "a tensor",
        Attr::Floats(_) => "a list of floats",
        Attr::Ints(_) => "a list of ints",
        Attr::Strings(_) => "a list of strings",
        Attr::Unsupported(k) => k,
    }
}

/// The required input `i`.
pub fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> OpResult<&'a Tensor> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OpError::Input {
            index: i,
            msg: "missing".into(),
        })
}

/// The required float32 input `i`.
pub fn input_f32<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> OpResult<&'a ArrayD<f32>> {
    let t = input(inputs, i)?;
    t.as_f32().ok_or_else(|| OpError::Input {
        index: i,
        msg: format!("expected float32, got {}", t.dtype().name()),
    })
}

/// The facts of required input `i`.
pub fn facts<'a>(inputs: &[Option<&'a Facts>], i: usize) -> OpResult<&'a Facts> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OpError::Input {
            index: i,
            msg: "missing".into(),
        })
}

/// An error for an input of the wrong type.
pub fn bad_dtype(index: usize, got: DType, expected: &str) -> OpError {
    OpError::Input {
        index,
        msg: format!(
            "type {} is not supported here (expected {expected})",
            got.name()
        ),
    }
}
