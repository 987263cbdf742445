//! Errors of the engine boundary.

use super::ops::OpError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "unsupported op `{op_type}` (node `{node}`, opset {opset}): qtune cannot run this model (the supported ops are listed in README.md)"
    )]
    UnsupportedOp {
        op_type: String,
        node: String,
        opset: i64,
    },
    #[error("node `{node}` ({op_type}): {source}")]
    Op {
        node: String,
        op_type: String,
        source: OpError,
    },
    #[error("input `{name}`: {msg}")]
    Input { name: String, msg: String },
    #[error(
        "value `{name}` of node `{node}` would have {elements} elements (shape {shape}); the limit is {limit}"
    )]
    TooLarge {
        name: String,
        node: String,
        elements: String,
        shape: String,
        limit: usize,
    },
    #[error("{0}")]
    Invalid(String),
    /// A value (or all values folded at load) would not fit the memory budget.
    #[error("node `{node}`: {source}")]
    OverBudget {
        node: String,
        source: crate::util::budget::BudgetError,
    },
    #[error(transparent)]
    Isa(#[from] super::kernels::IsaError),
}

pub type EngineResult<T> = Result<T, EngineError>;
