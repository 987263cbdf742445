//! Cast, converting as numpy's `astype` does on x86-64 (which is also what ONNX
//! Runtime's `static_cast` does there): float → integer truncates toward zero, and an
//! out-of-range or NaN value gives what the CPU's conversion gives (the "integer
//! indefinite" of cvttsd2si, truncated to the target width); integer → integer wraps;
//! anything → bool is `x != 0` (NaN is true). `saturate` only concerns float8 types.

use crate::ir::tensor::onnx_type_name;
use crate::ir::{Attr, DType, Facts, Tensor};

use super::kernel::map_array;
use super::scalar::{Elem, with_elem};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};

#[derive(Debug)]
struct Cast {
    to: DType,
}

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let to = match ctx.node.attrs.get("to") {
        // Opset 1 names the type with a string.
        Some(Attr::String(s)) => dtype_from_name(s).ok_or_else(|| OpError::Attr {
            name: "to".into(),
            msg: format!("type `{s}` is not supported"),
        })?,
        _ => {
            let code = ctx.int("to")?.ok_or_else(|| OpError::Attr {
                name: "to".into(),
                msg: "missing".into(),
            })?;
            let code32 = i32::try_from(code).unwrap_or(0);
            DType::from_onnx(code32).ok_or_else(|| OpError::Attr {
                name: "to".into(),
                msg: format!("casting to {} is not supported", onnx_type_name(code32)),
            })?
        }
    };
    Ok(Box::new(Cast { to }))
}

fn dtype_from_name(s: &str) -> Option<DType> {
    Some(match s.to_ascii_uppercase().as_str() {
        "FLOAT" => DType::F32,
        "DOUBLE" => DType::F64,
        "INT64" => DType::I64,
        "INT32" => DType::I32,
        "INT8" => DType::I8,
        "UINT8" => DType::U8,
        "BOOL" => DType::Bool,
        "FLOAT16" => DType::F16,
        "BFLOAT16" => DType::BF16,
        "INT16" => DType::I16,
        "UINT16" => DType::U16,
        "UINT32" => DType::U32,
        "UINT64" => DType::U64,
        _ => return None,
    })
}

impl Op for Cast {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        Ok(vec![Facts {
            dtype: Some(self.to),
            shape: x.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        Ok(vec![cast(input(inputs, 0)?, self.to)?])
    }
}

/// `x` converted to `to` by the rules above.
pub(crate) fn cast(x: &Tensor, to: DType) -> OpResult<Tensor> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    with_elem!(x.dtype(), S => {
        let a = S::view(x).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))?;
        with_elem!(to, D => Ok(D::wrap(map_array(a, |v: S| v.cast::<D>())?)))
    })
}

/// A source element: converts itself to any target through the target's rules.
pub(crate) trait CastFrom: Elem {
    fn cast<D: CastTo>(self) -> D;
}

/// A target element: how floats and integers become it.
pub(crate) trait CastTo: Elem {
    fn from_float(v: f64) -> Self;
    /// From an `f32` directly (one rounding for f32 → f32/f64 and the same result as via f64 otherwise).
    fn from_f32(v: f32) -> Self {
        Self::from_float(v as f64)
    }
    /// From an integer (any source integer fits an i128).
    fn from_int(v: i128) -> Self;
}

/// cvttsd2si to 32 bits: truncation, or i32::MIN when out of range or NaN.
#[inline(always)]
fn x86_i32(v: f64) -> i32 {
    if (i32::MIN as f64..=i32::MAX as f64).contains(&v.trunc()) {
        v as i32
    } else {
        i32::MIN
    }
}

/// cvttsd2si to 64 bits: truncation, or i64::MIN when out of range or NaN.
#[inline(always)]
fn x86_i64(v: f64) -> i64 {
    const LIMIT: f64 = -(i64::MIN as f64);
    if (-LIMIT..LIMIT).contains(&v) {
        v as i64
    } else {
        i64::MIN
    }
}

impl CastTo for f32 {
    fn from_float(v: f64) -> Self {
        v as f32
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_int(v: i128) -> Self {
        v as f32
    }
}

impl CastTo for f64 {
    fn from_float(v: f64) -> Self {
        v
    }
    fn from_int(v: i128) -> Self {
        v as f64
    }
}

impl CastTo for i64 {
    fn from_float(v: f64) -> Self {
        x86_i64(v)
    }
    fn from_int(v: i128) -> Self {
        v as i64
    }
}

impl CastTo for i32 {
    fn from_float(v: f64) -> Self {
        x86_i32(v)
    }
    fn from_int(v: i128) -> Self {
        v as i32
    }
}

impl CastTo for i8 {
    fn from_float(v: f64) -> Self {
        x86_i32(v) as i8
    }
    fn from_int(v: i128) -> Self {
        v as i8
    }
}

impl CastTo for u8 {
    fn from_float(v: f64) -> Self {
        x86_i32(v) as u8
    }
    fn from_int(v: i128) -> Self {
        v as u8
    }
}

/// What C's `(uint64_t)double` gives on x86-64 (as numpy compiles it): values below
/// 2⁶³ go through cvttsd2si, the others through it after subtracting 2⁶³.
#[inline(always)]
fn x86_u64(v: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if v < TWO63 {
        x86_i64(v) as u64
    } else {
        (x86_i64(v - TWO63) as u64) ^ (1 << 63)
    }
}

macro_rules! cast_to_narrow_int {
    ($($t:ty),*) => {$(
        impl CastTo for $t {
            fn from_float(v: f64) -> Self {
                x86_i32(v) as $t
            }
            fn from_int(v: i128) -> Self {
                v as $t
            }
        }
    )*};
}

cast_to_narrow_int!(i16, u16);

impl CastTo for u32 {
    fn from_float(v: f64) -> Self {
        x86_i64(v) as u32
    }
    fn from_int(v: i128) -> Self {
        v as u32
    }
}

impl CastTo for u64 {
    fn from_float(v: f64) -> Self {
        x86_u64(v)
    }
    fn from_int(v: i128) -> Self {
        v as u64
    }
}

/// The halves round to nearest even, directly from the source (no double rounding).
macro_rules! cast_half {
    ($($t:ty),*) => {$(
        impl CastTo for $t {
            fn from_float(v: f64) -> Self {
                <$t>::from_f64(v)
            }
            fn from_f32(v: f32) -> Self {
                <$t>::from_f32(v)
            }
            fn from_int(v: i128) -> Self {
                <$t>::from_f64(v as f64)
            }
        }

        impl CastFrom for $t {
            #[inline(always)]
            fn cast<D: CastTo>(self) -> D {
                D::from_f32(self.to_f32())
            }
        }
    )*};
}

cast_half!(half::f16, half::bf16);

impl CastTo for bool {
    fn from_float(v: f64) -> Self {
        v != 0.0
    }
    fn from_int(v: i128) -> Self {
        v != 0
    }
}

impl CastFrom for f32 {
    #[inline(always)]
    fn cast<D: CastTo>(self) -> D {
        D::from_f32(self)
    }
}

impl CastFrom for f64 {
    #[inline(always)]
    fn cast<D: CastTo>(self) -> D {
        D::from_float(self)
    }
}

macro_rules! cast_from_int {
    ($($t:ty),*) => {$(
        impl CastFrom for $t {
            #[inline(always)]
            fn cast<D: CastTo>(self) -> D {
                D::from_int(self as i128)
            }
        }
    )*};
}

cast_from_int!(i64, i32, i8, u8, bool, i16, u16, u32, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_to_int_truncates_and_wraps_like_numpy() {
        let x = Tensor::from_f32(&[7], vec![2.9, -2.9, 300.0, -1.0, f32::NAN, 1e10, -0.5]);
        assert_eq!(
            cast(&x, DType::U8).unwrap().to_f64_vec(),
            vec![2.0, 254.0, 44.0, 255.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            cast(&x, DType::I8).unwrap().to_f64_vec(),
            vec![2.0, -2.0, 44.0, -1.0, 0.0, 0.0, 0.0]
        );
        let i32s = cast(&x, DType::I32).unwrap().to_f64_vec();
        assert_eq!(
            i32s,
            vec![
                2.0,
                -2.0,
                300.0,
                -1.0,
                i32::MIN as f64,
                i32::MIN as f64,
                0.0
            ]
        );
        assert_eq!(
            cast(&x, DType::Bool).unwrap().to_f64_vec(),
            vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        );
    }

    #[test]
    fn int_to_int_wraps_and_bool_is_nonzero() {
        let x = Tensor::from_i64(&[4], vec![-1, 256, 0, 130]);
        assert_eq!(
            cast(&x, DType::U8).unwrap().to_f64_vec(),
            vec![255.0, 0.0, 0.0, 130.0]
        );
        assert_eq!(
            cast(&x, DType::I8).unwrap().to_f64_vec(),
            vec![-1.0, 0.0, 0.0, -126.0]
        );
        assert_eq!(
            cast(&x, DType::Bool).unwrap().to_f64_vec(),
            vec![1.0, 1.0, 0.0, 1.0]
        );
        assert_eq!(
            cast(&x, DType::F64).unwrap().to_f64_vec(),
            vec![-1.0, 256.0, 0.0, 130.0]
        );
    }
}
