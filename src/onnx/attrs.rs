//! Conversion of ONNX attributes and tensors (incl. external data) into IR values.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use super::proto::{
    AttributeProto, TensorProto, attribute_proto::AttributeType, tensor_proto::DataLocation,
};
use crate::ir::tensor::onnx_type_name;
use crate::ir::{Attr, DType, Tensor, checked_numel};

/// Why a tensor could not be decoded (the caller adds which tensor).
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("element type {0} is not supported")]
    DType(&'static str),
    #[error("negative dimension {0}")]
    NegativeDim(i64),
    #[error("declares {0} elements, more than qtune accepts ({1})")]
    TooLarge(String, usize),
    #[error("holds {got} bytes of data, its shape needs {need}")]
    Length { got: usize, need: usize },
    #[error("external data: {0}")]
    External(String),
}

/// Decodes a `TensorProto`. `dir` is the model's folder, for external data.
pub fn tensor_from_proto(
    t: &TensorProto,
    dir: Option<&Path>,
    max_elements: usize,
) -> Result<Tensor, TensorError> {
    let code = t.data_type.unwrap_or(0);
    let dtype = DType::from_onnx(code).ok_or(TensorError::DType(onnx_type_name(code)))?;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(TensorError::NegativeDim(d));
        }
        shape.push(d as usize);
    }
    let n = match checked_numel(&shape) {
        Some(n) if n <= max_elements => n,
        n => {
            let s = n
                .map(|n| n.to_string())
                .unwrap_or_else(|| "more than 2^64".into());
            return Err(TensorError::TooLarge(s, max_elements));
        }
    };
    let external;
    let raw: Option<&[u8]> = if t.data_location == Some(DataLocation::External as i32) {
        external = read_external(t, dir, n * dtype.size())?;
        Some(&external)
    } else {
        t.raw_data
            .as_deref()
            .filter(|r| !r.is_empty() || n == 0 && t.has_no_typed_data())
    };
    if let Some(raw) = raw {
        let need = n * dtype.size();
        if raw.len() != need {
            return Err(TensorError::Length {
                got: raw.len(),
                need,
            });
        }
        return Ok(from_le_bytes(dtype, &shape, raw));
    }
    let sh = IxDyn(&shape);
    let t =
        match dtype {
            DType::F32 => check(t.float_data.len(), n, 4)
                .map(|_| Tensor::F32(arr(sh, t.float_data.clone())))?,
            DType::F64 => check(t.double_data.len(), n, 8)
                .map(|_| Tensor::F64(arr(sh, t.double_data.clone())))?,
            DType::I64 => check(t.int64_data.len(), n, 8)
                .map(|_| Tensor::I64(arr(sh, t.int64_data.clone())))?,
            DType::I32 => check(t.int32_data.len(), n, 4)
                .map(|_| Tensor::I32(arr(sh, t.int32_data.clone())))?,
            DType::I8 => check(t.int32_data.len(), n, 4)
                .map(|_| Tensor::I8(arr(sh, t.int32_data.iter().map(|&v| v as i8).collect())))?,
            DType::U8 => check(t.int32_data.len(), n, 4)
                .map(|_| Tensor::U8(arr(sh, t.int32_data.iter().map(|&v| v as u8).collect())))?,
            DType::Bool => check(t.int32_data.len(), n, 4)
                .map(|_| Tensor::Bool(arr(sh, t.int32_data.iter().map(|&v| v != 0).collect())))?,
            // 16-bit types hold one value (the bit pattern, for the halves) per int32.
            DType::I16 => check(t.int32_data.len(), n, 4)
                .map(|_| Tensor::I16(arr(sh, t.int32_data.iter().map(|&v| v as i16).collect())))?,
            DType::U16 => check(t.int32_data.len(), n, 4)
                .map(|_| Tensor::U16(arr(sh, t.int32_data.iter().map(|&v| v as u16).collect())))?,
            DType::F16 => check(t.int32_data.len(), n, 4).map(|_| {
                let v = t.int32_data.iter().map(|&v| half::f16::from_bits(v as u16));
                Tensor::F16(arr(sh, v.collect()))
            })?,
            DType::BF16 => check(t.int32_data.len(), n, 4).map(|_| {
                let v = t
                    .int32_data
                    .iter()
                    .map(|&v| half::bf16::from_bits(v as u16));
                Tensor::BF16(arr(sh, v.collect()))
            })?,
            DType::U32 => check(t.uint64_data.len(), n, 8)
                .map(|_| Tensor::U32(arr(sh, t.uint64_data.iter().map(|&v| v as u32).collect())))?,
            DType::U64 => check(t.uint64_data.len(), n, 8)
                .map(|_| Tensor::U64(arr(sh, t.uint64_data.clone())))?,
        };
    Ok(t)
}

trait NoTyped {
    fn has_no_typed_data(&self) -> bool;
}

impl NoTyped for TensorProto {
    fn has_no_typed_data(&self) -> bool {
        self.float_data.is_empty()
            && self.double_data.is_empty()
            && self.int32_data.is_empty()
            && self.int64_data.is_empty()
            && self.uint64_data.is_empty()
    }
}

fn check(got: usize, need: usize, per: usize) -> Result<(), TensorError> {
    if got == need {
        Ok(())
    } else {
        Err(TensorError::Length {
            got: got * per,
            need: need * per,
        })
    }
}

fn arr<T>(shape: IxDyn, data: Vec<T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(shape, data).expect("length checked")
}

fn from_le_bytes(dtype: DType, shape: &[usize], raw: &[u8]) -> Tensor {
    let sh = IxDyn(shape);
    macro_rules! decode {
        ($t:ty, $n:expr) => {
            arr(
                sh,
                raw.chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                    .collect(),
            )
        };
    }
    match dtype {
        DType::F32 => Tensor::F32(decode!(f32, 4)),
        DType::F64 => Tensor::F64(decode!(f64, 8)),
        DType::I64 => Tensor::I64(decode!(i64, 8)),
        DType::I32 => Tensor::I32(decode!(i32, 4)),
        DType::I8 => Tensor::I8(arr(sh, raw.iter().map(|&b| b as i8).collect())),
        DType::U8 => Tensor::U8(arr(sh, raw.to_vec())),
        DType::Bool => Tensor::Bool(arr(sh, raw.iter().map(|&b| b != 0).collect())),
        DType::F16 => Tensor::F16(decode!(half::f16, 2)),
        DType::BF16 => Tensor::BF16(decode!(half::bf16, 2)),
        DType::I16 => Tensor::I16(decode!(i16, 2)),
        DType::U16 => Tensor::U16(decode!(u16, 2)),
        DType::U32 => Tensor::U32(decode!(u32, 4)),
        DType::U64 => Tensor::U64(decode!(u64, 8)),
    }
}

fn read_external(t: &TensorProto, dir: Option<&Path>, need: usize) -> Result<Vec<u8>, TensorError> {
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key.as_deref() == Some(k))
            .and_then(|e| e.value.clone())
    };
    let location =
        get("location").ok_or_else(|| TensorError::External("no `location` entry".into()))?;
    let parse = |k: &str| -> Result<Option<u64>, TensorError> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| TensorError::External(format!("bad `{k}` value `{v}`")))
            })
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?.map(|l| l as usize).unwrap_or(need);
    if length != need {
        return Err(TensorError::Length { got: length, need });
    }
    let path = confined(dir.unwrap_or(Path::new(".")), &location)?;
    use std::io::{Read, Seek, SeekFrom};
    let mut f = crate::util::fs::open_input(&path)
        .map_err(|e| TensorError::External(format!("{}: {e}", path.display())))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if offset.saturating_add(need as u64) > size {
        return Err(TensorError::External(format!(
            "{}: needs bytes {}..{}, the file has {size}",
            path.display(),
            offset,
            offset.saturating_add(need as u64)
        )));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(need)
        .map_err(|_| TensorError::External(format!("{need} bytes cannot be allocated")))?;
    buf.resize(need, 0);
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| TensorError::External(format!("{}: {e}", path.display())))?;
    Ok(buf)
}

/// The external data file `location` of a model in `dir`: it must lie inside the model's
/// folder once every `..` and symlink is resolved (as ONNX Runtime requires), so a model
/// cannot read `/etc/passwd` into its weights.
fn confined(dir: &Path, location: &str) -> Result<std::path::PathBuf, TensorError> {
    let outside = || {
        TensorError::External(format!(
            "location `{}` is outside the model's folder; external data must lie beside the model",
            crate::util::text::escape_control(location)
        ))
    };
    let rel = Path::new(location);
    if location.is_empty() || rel.is_absolute() {
        return Err(outside());
    }
    let base = std::fs::canonicalize(dir)
        .map_err(|e| TensorError::External(format!("{}: {e}", dir.display())))?;
    let joined = base.join(rel);
    let real = std::fs::canonicalize(&joined)
        .map_err(|e| TensorError::External(format!("{}: {e}", joined.display())))?;
    if !real.starts_with(&base) || real == base {
        return Err(outside());
    }
    Ok(real)
}

/// Converts an attribute. Tensors inside attributes use `dir` for external data.
pub fn attr_from_proto(
    a: &AttributeProto,
    dir: Option<&Path>,
    max_elements: usize,
) -> Result<Attr, TensorError> {
    let ty = a.r#type.and_then(|t| AttributeType::try_from(t).ok());
    Ok(match ty {
        Some(AttributeType::Float) => Attr::Float(a.f.unwrap_or(0.0)),
        Some(AttributeType::Int) => Attr::Int(a.i.unwrap_or(0)),
        Some(AttributeType::String) => {
            Attr::String(String::from_utf8_lossy(a.s.as_deref().unwrap_or(&[])).into_owned())
        }
        Some(AttributeType::Tensor) => match &a.t {
            Some(t) => Attr::Tensor(tensor_from_proto(t, dir, max_elements)?),
            None => Attr::Unsupported("an empty tensor attribute"),
        },
        Some(AttributeType::Floats) => Attr::Floats(a.floats.clone()),
        Some(AttributeType::Ints) => Attr::Ints(a.ints.clone()),
        Some(AttributeType::Strings) => Attr::Strings(
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        Some(AttributeType::Graph | AttributeType::Graphs) => Attr::Unsupported("a sub-graph"),
        Some(AttributeType::SparseTensor | AttributeType::SparseTensors) => {
            Attr::Unsupported("a sparse tensor")
        }
        Some(AttributeType::TypeProto | AttributeType::TypeProtos) => Attr::Unsupported("a type"),
        Some(AttributeType::Tensors) => Attr::Unsupported("a list of tensors"),
        // IR < 2 had no `type`: infer it from the populated field.
        Some(AttributeType::Undefined) | None => infer_untyped(a, dir, max_elements)?,
    })
}

fn infer_untyped(a: &AttributeProto, dir: Option<&Path>, max: usize) -> Result<Attr, TensorError> {
    Ok(if let Some(f) = a.f {
        Attr::Float(f)
    } else if let Some(i) = a.i {
        Attr::Int(i)
    } else if let Some(s) = &a.s {
        Attr::String(String::from_utf8_lossy(s).into_owned())
    } else if let Some(t) = &a.t {
        Attr::Tensor(tensor_from_proto(t, dir, max)?)
    } else if !a.floats.is_empty() {
        Attr::Floats(a.floats.clone())
    } else if !a.ints.is_empty() {
        Attr::Ints(a.ints.clone())
    } else if !a.strings.is_empty() {
        Attr::Strings(
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )
    } else {
        Attr::Ints(Vec::new())
    })
}
