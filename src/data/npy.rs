//! NumPy `.npy` files (format versions 1–3, C order, little-endian or byte-sized types).

use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use crate::ir::{DType, MAX_ELEMENTS, Tensor, checked_numel};

/// Why an `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a .npy file ({reason})")]
    Format { path: String, reason: String },
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads an `.npy` file into a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    let bytes =
        crate::util::fs::read_input(path, crate::util::budget::limit()).map_err(|source| {
            NpyError::Io {
                path: path.display().to_string(),
                source,
            }
        })?;
    parse_npy(&bytes).map_err(|reason| NpyError::Format {
        path: path.display().to_string(),
        reason,
    })
}

/// Parses the bytes of an `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported format version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")?;
    let shape_text = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    if fortran.trim() != "False" {
        return Err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let dtype = match descr {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<i8" => DType::I64,
        "<i4" => DType::I32,
        "|i1" | "<i1" => DType::I8,
        "|u1" | "<u1" => DType::U8,
        "|b1" => DType::Bool,
        "<f2" => DType::F16,
        "<i2" => DType::I16,
        "<u2" => DType::U16,
        "<u4" => DType::U32,
        "<u8" => DType::U64,
        other => {
            return Err(format!(
                "element type '{other}' is not supported (use float16/32/64, int8/16/32/64, uint8/16/32/64 or bool, little-endian)"
            ));
        }
    };
    let shape = parse_shape(shape_text)?;
    let n = checked_numel(&shape)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or("the shape is too large")?;
    let data = &bytes[end..];
    let need = n * dtype.size();
    if data.len() != need {
        return Err(format!(
            "holds {} bytes of data, its shape {:?} needs {need}",
            data.len(),
            shape
        ));
    }
    let sh = IxDyn(&shape);
    macro_rules! decode {
        ($t:ty, $n:expr) => {
            ArrayD::from_shape_vec(
                sh,
                data.chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
            .map_err(|e| e.to_string())?
        };
    }
    Ok(match dtype {
        DType::F32 => Tensor::F32(decode!(f32, 4)),
        DType::F64 => Tensor::F64(decode!(f64, 8)),
        DType::I64 => Tensor::I64(decode!(i64, 8)),
        DType::I32 => Tensor::I32(decode!(i32, 4)),
        DType::I8 => Tensor::I8(
            ArrayD::from_shape_vec(sh, data.iter().map(|&b| b as i8).collect())
                .map_err(|e| e.to_string())?,
        ),
        DType::U8 => {
            Tensor::U8(ArrayD::from_shape_vec(sh, data.to_vec()).map_err(|e| e.to_string())?)
        }
        DType::Bool => Tensor::Bool(
            ArrayD::from_shape_vec(sh, data.iter().map(|&b| b != 0).collect())
                .map_err(|e| e.to_string())?,
        ),
        DType::F16 => Tensor::F16(decode!(half::f16, 2)),
        DType::I16 => Tensor::I16(decode!(i16, 2)),
        DType::U16 => Tensor::U16(decode!(u16, 2)),
        DType::U32 => Tensor::U32(decode!(u32, 4)),
        DType::U64 => Tensor::U64(decode!(u64, 8)),
        DType::BF16 => return Err("internal: numpy has no bfloat16".into()),
    })
}

/// The text of `key`'s value in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let k1 = format!("'{key}'");
    let at = header.find(&k1)? + k1.len();
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(&rest[..end])
}

fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or("bad 'shape'")?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad dimension '{s}' in 'shape'"))
        })
        .collect()
}

/// Serializes a tensor as `.npy` (version 1) bytes. numpy has no bfloat16: such a
/// tensor is written widened (exactly) to float32.
pub fn npy_bytes(t: &Tensor) -> Vec<u8> {
    if let Tensor::BF16(a) = t {
        return npy_bytes(&Tensor::F32(a.mapv(half::bf16::to_f32)));
    }
    let descr = match t.dtype() {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I64 => "<i8",
        DType::I32 => "<i4",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::Bool => "|b1",
        DType::F16 => "<f2",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::BF16 => "<f4", // widened above
    };
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let pad = 64 - (10 + header.len() + 1) % 64;
    header.push_str(&" ".repeat(pad % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.nbytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match t {
        Tensor::F32(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::F64(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I64(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I32(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I8(a) => a.iter().for_each(|v| out.push(*v as u8)),
        Tensor::U8(a) => out.extend(a.iter()),
        Tensor::Bool(a) => a.iter().for_each(|v| out.push(*v as u8)),
        Tensor::F16(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::I16(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::U16(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::U32(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::U64(a) => a
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Tensor::BF16(_) => {} // written widened above
    }
    out
}

/// Writes a tensor to an `.npy` file, atomically (see `util::fs::write_atomic`).
pub fn write_npy(path: &Path, t: &Tensor) -> Result<(), NpyError> {
    crate::util::fs::write_atomic(path, &npy_bytes(t)).map_err(|source| NpyError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        let ts = [
            Tensor::from_f32(&[2, 3], vec![1.5, -2.0, 0.0, 3.25, 4.0, -0.5]),
            Tensor::from_i64(&[3], vec![-1, 0, 7]),
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[2]), vec![-128, 127]).unwrap()),
            Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&[]), vec![true]).unwrap()),
        ];
        for t in ts {
            let b = npy_bytes(&t);
            assert_eq!((b.len() - t.nbytes()) % 64, 0, "header is 64-byte aligned");
            assert_eq!(parse_npy(&b).unwrap(), t);
        }
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(
            parse_npy(b"hello world, not numpy")
                .unwrap_err()
                .contains("magic")
        );
        let b = npy_bytes(&Tensor::from_f32(&[4], vec![1.0; 4]));
        assert!(
            parse_npy(&b[..b.len() - 2])
                .unwrap_err()
                .contains("bytes of data")
        );
        let huge = b"\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }       \n";
        assert!(parse_npy(huge).unwrap_err().contains("too large"));
    }
}
