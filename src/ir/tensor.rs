//! Tensors: one enum over the element types qtune computes with, each an owned
//! `ndarray::ArrayD` in standard (C-contiguous) layout.

use ndarray::{ArrayD, IxDyn};

/// Element type of a tensor. The ONNX codes are those of `TensorProto.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DType {
    F32,
    F64,
    I64,
    I32,
    I8,
    U8,
    Bool,
    /// IEEE half precision; computed by widening to f32 and rounding back (nearest even).
    F16,
    /// bfloat16; computed like `F16`.
    BF16,
    I16,
    U16,
    U32,
    U64,
}

impl DType {
    /// Maps an ONNX `TensorProto.DataType` code; `None` for types qtune does not compute with.
    pub fn from_onnx(code: i32) -> Option<DType> {
        Some(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            11 => DType::F64,
            4 => DType::U16,
            5 => DType::I16,
            10 => DType::F16,
            12 => DType::U32,
            13 => DType::U64,
            16 => DType::BF16,
            _ => return None,
        })
    }

    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F64 => 11,
            DType::U16 => 4,
            DType::I16 => 5,
            DType::F16 => 10,
            DType::U32 => 12,
            DType::U64 => 13,
            DType::BF16 => 16,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Lower-case name as ONNX and numpy spell it (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
        }
    }

    /// float32 or float64: the types the float kernels compute in directly.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// float16 or bfloat16: stored narrow, computed in f32 and rounded back.
    pub fn is_half(self) -> bool {
        matches!(self, DType::F16 | DType::BF16)
    }

    /// Any integer type (not bool).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I64
                | DType::I32
                | DType::I16
                | DType::I8
                | DType::U8
                | DType::U16
                | DType::U32
                | DType::U64
        )
    }
}

/// Name of an ONNX data type code, for error messages about types qtune does not support.
pub fn onnx_type_name(code: i32) -> &'static str {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        16 => "bfloat16",
        _ => "an 8-bit float or packed type",
    }
}

/// A tensor value. Invariant: the array is in standard layout.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    Bool(ArrayD<bool>),
    F16(ArrayD<half::f16>),
    BF16(ArrayD<half::bf16>),
    I16(ArrayD<i16>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
}

/// Applies `$body` to the array inside any `Tensor` variant, binding it to `$a`.
#[macro_export]
macro_rules! match_tensor {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::ir::Tensor::F32($a) => $body,
            $crate::ir::Tensor::F64($a) => $body,
            $crate::ir::Tensor::I64($a) => $body,
            $crate::ir::Tensor::I32($a) => $body,
            $crate::ir::Tensor::I8($a) => $body,
            $crate::ir::Tensor::U8($a) => $body,
            $crate::ir::Tensor::Bool($a) => $body,
            $crate::ir::Tensor::F16($a) => $body,
            $crate::ir::Tensor::BF16($a) => $body,
            $crate::ir::Tensor::I16($a) => $body,
            $crate::ir::Tensor::U16($a) => $body,
            $crate::ir::Tensor::U32($a) => $body,
            $crate::ir::Tensor::U64($a) => $body,
        }
    };
}

/// Like `match_tensor!`, but rebuilds a tensor of the same variant from `$body`'s array.
#[macro_export]
macro_rules! map_tensor {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::ir::Tensor::F32($a) => $crate::ir::Tensor::F32($body),
            $crate::ir::Tensor::F64($a) => $crate::ir::Tensor::F64($body),
            $crate::ir::Tensor::I64($a) => $crate::ir::Tensor::I64($body),
            $crate::ir::Tensor::I32($a) => $crate::ir::Tensor::I32($body),
            $crate::ir::Tensor::I8($a) => $crate::ir::Tensor::I8($body),
            $crate::ir::Tensor::U8($a) => $crate::ir::Tensor::U8($body),
            $crate::ir::Tensor::Bool($a) => $crate::ir::Tensor::Bool($body),
            $crate::ir::Tensor::F16($a) => $crate::ir::Tensor::F16($body),
            $crate::ir::Tensor::BF16($a) => $crate::ir::Tensor::BF16($body),
            $crate::ir::Tensor::I16($a) => $crate::ir::Tensor::I16($body),
            $crate::ir::Tensor::U16($a) => $crate::ir::Tensor::U16($body),
            $crate::ir::Tensor::U32($a) => $crate::ir::Tensor::U32($body),
            $crate::ir::Tensor::U64($a) => $crate::ir::Tensor::U64($body),
        }
    };
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I64(_) => DType::I64,
            Tensor::I32(_) => DType::I32,
            Tensor::I8(_) => DType::I8,
            Tensor::U8(_) => DType::U8,
            Tensor::Bool(_) => DType::Bool,
            Tensor::F16(_) => DType::F16,
            Tensor::BF16(_) => DType::BF16,
            Tensor::I16(_) => DType::I16,
            Tensor::U16(_) => DType::U16,
            Tensor::U32(_) => DType::U32,
            Tensor::U64(_) => DType::U64,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match_tensor!(self, a => a.shape())
    }

    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match_tensor!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A tensor of zeros (false) of the given type and shape.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
        let s = IxDyn(shape);
        match dtype {
            DType::F32 => Tensor::F32(ArrayD::zeros(s)),
            DType::F64 => Tensor::F64(ArrayD::zeros(s)),
            DType::I64 => Tensor::I64(ArrayD::zeros(s)),
            DType::I32 => Tensor::I32(ArrayD::zeros(s)),
            DType::I8 => Tensor::I8(ArrayD::zeros(s)),
            DType::U8 => Tensor::U8(ArrayD::zeros(s)),
            DType::Bool => Tensor::Bool(ArrayD::from_elem(s, false)),
            DType::F16 => Tensor::F16(ArrayD::from_elem(s, half::f16::ZERO)),
            DType::BF16 => Tensor::BF16(ArrayD::from_elem(s, half::bf16::ZERO)),
            DType::I16 => Tensor::I16(ArrayD::zeros(s)),
            DType::U16 => Tensor::U16(ArrayD::zeros(s)),
            DType::U32 => Tensor::U32(ArrayD::zeros(s)),
            DType::U64 => Tensor::U64(ArrayD::zeros(s)),
        }
    }

    /// A float32 tensor from a shape and row-major data. Panics if the sizes disagree
    /// (a programming error; loaders validate sizes before calling this).
    pub fn from_f32(shape: &[usize], data: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape matches data"))
    }

    /// An int64 tensor from a shape and row-major data (sizes must agree).
    pub fn from_i64(shape: &[usize], data: Vec<i64>) -> Tensor {
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape matches data"))
    }

    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor::F32(ArrayD::from_elem(IxDyn(&[]), v))
    }

    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor::I64(ArrayD::from_elem(IxDyn(&[]), v))
    }

    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    pub fn into_f32(self) -> Option<ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    /// The values of an integer (or bool) tensor widened to i64, in row-major order;
    /// `None` for float tensors. Used for shape-like inputs (axes, shapes, indices).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            Tensor::I64(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::I8(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U8(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::I16(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U16(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U32(a) => a.iter().map(|&v| v as i64).collect(),
            // Values above i64::MAX cannot be shapes, axes or indices: refuse them all.
            Tensor::U64(a) => a
                .iter()
                .map(|&v| i64::try_from(v).ok())
                .collect::<Option<Vec<i64>>>()?,
            Tensor::F32(_) | Tensor::F64(_) | Tensor::F16(_) | Tensor::BF16(_) => return None,
        })
    }

    /// The values widened to f64 in row-major order (bool as 0/1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Tensor::F32(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::F64(a) => a.iter().copied().collect(),
            Tensor::I64(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::I32(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::I8(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U8(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| v as u8 as f64).collect(),
            Tensor::F16(a) => a.iter().map(|&v| v.to_f64()).collect(),
            Tensor::BF16(a) => a.iter().map(|&v| v.to_f64()).collect(),
            Tensor::I16(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U16(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U32(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U64(a) => a.iter().map(|&v| v as f64).collect(),
        }
    }

    /// The same data with a new shape of equal element count (`None` if the counts differ).
    pub fn reshaped(self, shape: &[usize]) -> Option<Tensor> {
        if shape.iter().product::<usize>() != self.len() {
            return None;
        }
        Some(map_tensor!(self, a => {
            let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
            a.into_shape_with_order(IxDyn(shape)).expect("element count checked")
        }))
    }

    /// Bytes held by the data (for memory budgets).
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
    }
}

/// Largest number of elements one value may have (4 GiB of float32). A model that
/// declares more is refused before anything is allocated.
pub const MAX_ELEMENTS: usize = 1 << 30;

/// Number of elements of a shape, or `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_codes_round_trip() {
        for d in [
            DType::F32,
            DType::F64,
            DType::I64,
            DType::I32,
            DType::I8,
            DType::U8,
            DType::Bool,
            DType::F16,
            DType::BF16,
            DType::I16,
            DType::U16,
            DType::U32,
            DType::U64,
        ] {
            assert_eq!(DType::from_onnx(d.onnx_code()), Some(d));
            assert_eq!(onnx_type_name(d.onnx_code()), d.name());
        }
        assert_eq!(DType::from_onnx(8), None);
    }

    #[test]
    fn reshape_keeps_data_and_checks_count() {
        let t = Tensor::from_f32(&[2, 3], vec![0., 1., 2., 3., 4., 5.]);
        let r = t.clone().reshaped(&[3, 2]).unwrap();
        assert_eq!(r.shape(), &[3, 2]);
        assert_eq!(r.to_f64_vec(), t.to_f64_vec());
        assert!(t.reshaped(&[4]).is_none());
    }

    #[test]
    fn numel_overflow_is_none() {
        assert_eq!(checked_numel(&[2, 3]), Some(6));
        assert_eq!(checked_numel(&[usize::MAX, 2]), None);
        assert_eq!(checked_numel(&[]), Some(1));
    }
}
