//! Operators: binary family.

use super::BuildFn;

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[];
