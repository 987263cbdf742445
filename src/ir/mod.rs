//! Graph IR: tensors, graphs, static shapes and constant folding.
pub mod fold;
pub mod graph;
pub mod shape;
pub mod tensor;

pub use graph::{Attr, Dim, Graph, Node, NodeId, Value, ValueId, is_layer};
pub use shape::Facts;
pub use tensor::{DType, MAX_ELEMENTS, Tensor, checked_numel};
