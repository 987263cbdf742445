//! Operators: integer bit manipulation and boolean logic, all broadcasting: BitShift,
//! BitwiseAnd/Or/Xor/Not, the boolean And/Or/Xor, and Mod (integer and float).
//!
//! Integers compute in their own width as numpy does (shifts and remainders never trap:
//! a zero divisor gives 0, `MIN % -1` gives 0). Float `Mod` is numpy's `fmod` (fmod = 1)
//! or `mod` (fmod = 0, the remainder taking the divisor's sign); the halves compute it
//! in f32 and round back, as numpy's float16 loops do.

use ndarray::ArrayD;

use crate::ir::{DType, Facts, Tensor};

use super::binary::broadcast::zip2;
use super::elementwise::kernel::map_array;
use super::elementwise::scalar::{Elem, with_float};
use super::util::{infer_broadcast, infer_same};
use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, facts, input};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("BitShift", build_shift),
    ("BitwiseAnd", |_| Ok(Box::new(IntBinary(IntOp::And)))),
    ("BitwiseOr", |_| Ok(Box::new(IntBinary(IntOp::Or)))),
    ("BitwiseXor", |_| Ok(Box::new(IntBinary(IntOp::Xor)))),
    ("BitwiseNot", |_| Ok(Box::new(BitwiseNot))),
    ("And", |_| Ok(Box::new(Logic(LogicOp::And)))),
    ("Or", |_| Ok(Box::new(Logic(LogicOp::Or)))),
    ("Xor", |_| Ok(Box::new(Logic(LogicOp::Xor)))),
    ("Mod", build_mod),
];

/// Integer element types, with the bit and remainder operations numpy defines on them.
pub(crate) trait Int: Elem + PartialOrd {
    const BITS: u32;
    const ZERO: Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn not(self) -> Self;
    /// Shift amount as i128 (any integer fits).
    fn wide(self) -> i128;
    /// Left shift by `n < BITS`, bits shifted out are lost.
    fn shl(self, n: u32) -> Self;
    /// Right shift by `n < BITS`: arithmetic for signed types.
    fn shr(self, n: u32) -> Self;
    /// C's `%` (sign of the dividend); 0 for a zero divisor.
    fn rem(self, o: Self) -> Self;
    /// `self + o`, wrapping.
    fn add(self, o: Self) -> Self;
}

macro_rules! impl_int {
    ($($t:ty),*) => {$(
        impl Int for $t {
            const BITS: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            #[inline(always)]
            fn and(self, o: Self) -> Self { self & o }
            #[inline(always)]
            fn or(self, o: Self) -> Self { self | o }
            #[inline(always)]
            fn xor(self, o: Self) -> Self { self ^ o }
            #[inline(always)]
            fn not(self) -> Self { !self }
            #[inline(always)]
            fn wide(self) -> i128 { self as i128 }
            #[inline(always)]
            fn shl(self, n: u32) -> Self { self.wrapping_shl(n) }
            #[inline(always)]
            fn shr(self, n: u32) -> Self { self.wrapping_shr(n) }
            #[inline(always)]
            fn rem(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_rem(o) }
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
        }
    )*};
}

impl_int!(i8, i16, i32, i64, u8, u16, u32, u64);

/// Runs `$body` with `$T` bound to the Rust type of an integer `DType`; `$other` else.
macro_rules! with_int {
    ($dtype:expr, $T:ident => $body:expr, $other:expr) => {
        match $dtype {
            DType::I8 => {
                type $T = i8;
                $body
            }
            DType::I16 => {
                type $T = i16;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::U16 => {
                type $T = u16;
                $body
            }
            DType::U32 => {
                type $T = u32;
                $body
            }
            DType::U64 => {
                type $T = u64;
                $body
            }
            _ => $other,
        }
    };
}

/// Two inputs of the same type (known facts), or an error naming the second.
fn same_facts(inputs: &[Option<&Facts>]) -> OpResult<Option<DType>> {
    let (a, b) = (facts(inputs, 0)?.dtype, facts(inputs, 1)?.dtype);
    if let (Some(x), Some(y)) = (a, b)
        && x != y
    {
        return Err(mismatch(y, x));
    }
    Ok(a.or(b))
}

fn mismatch(got: DType, want: DType) -> OpError {
    OpError::Input {
        index: 1,
        msg: format!("type {} differs from {}", got.name(), want.name()),
    }
}

/// The two inputs, which must have the same type.
fn pair<'a>(inputs: &[Option<&'a Tensor>]) -> OpResult<(&'a Tensor, &'a Tensor)> {
    let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
    if a.dtype() != b.dtype() {
        return Err(mismatch(b.dtype(), a.dtype()));
    }
    Ok((a, b))
}

fn view<T: Elem>(t: &Tensor) -> OpResult<&ArrayD<T>> {
    T::view(t).ok_or_else(|| OpError::Invalid(format!("internal: expected {}", T::DTYPE.name())))
}

const INTS: &str = "an integer type";

#[derive(Clone, Copy, Debug)]
enum IntOp {
    And,
    Or,
    Xor,
    ShiftLeft,
    ShiftRight,
}

fn build_shift(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let dir = ctx.string("direction")?.ok_or_else(|| OpError::Attr {
        name: "direction".into(),
        msg: "missing".into(),
    })?;
    Ok(Box::new(IntBinary(match dir.as_str() {
        "LEFT" => IntOp::ShiftLeft,
        "RIGHT" => IntOp::ShiftRight,
        other => {
            return Err(OpError::Attr {
                name: "direction".into(),
                msg: format!("`{other}` is not LEFT or RIGHT"),
            });
        }
    })))
}

/// A broadcasting binary op on integers of one type.
#[derive(Debug)]
struct IntBinary(IntOp);

/// `x` shifted by `n` as the ONNX reference does: an amount outside `0..BITS` gives 0
/// (or, shifting a negative value right, −1).
#[inline(always)]
fn shift<T: Int>(left: bool, x: T, n: T) -> T {
    let n = n.wide();
    if (0..T::BITS as i128).contains(&n) {
        let n = n as u32;
        if left { x.shl(n) } else { x.shr(n) }
    } else if !left && x < T::ZERO {
        T::ZERO.not()
    } else {
        T::ZERO
    }
}

fn int_binary<T: Int>(op: IntOp, a: &ArrayD<T>, b: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    match op {
        IntOp::And => zip2(a, b, |x: T, y: T| x.and(y)),
        IntOp::Or => zip2(a, b, |x: T, y: T| x.or(y)),
        IntOp::Xor => zip2(a, b, |x: T, y: T| x.xor(y)),
        IntOp::ShiftLeft => zip2(a, b, |x: T, n: T| shift(true, x, n)),
        IntOp::ShiftRight => zip2(a, b, |x: T, n: T| shift(false, x, n)),
    }
}

impl Op for IntBinary {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = same_facts(inputs)?
            && !d.is_int()
        {
            return Err(bad_dtype(0, d, INTS));
        }
        infer_broadcast(inputs, None)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = pair(inputs)?;
        let y = with_int!(a.dtype(), T => T::wrap(int_binary::<T>(self.0, view(a)?, view(b)?)?),
            return Err(bad_dtype(0, a.dtype(), INTS)));
        Ok(vec![y])
    }
}

/// BitwiseNot: `!x` on an integer type.
#[derive(Debug)]
struct BitwiseNot;

impl Op for BitwiseNot {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = facts(inputs, 0)?.dtype
            && !d.is_int()
        {
            return Err(bad_dtype(0, d, INTS));
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let y = with_int!(x.dtype(), T => T::wrap(map_array(view::<T>(x)?, |v: T| v.not())?),
            return Err(bad_dtype(0, x.dtype(), INTS)));
        Ok(vec![y])
    }
}

#[derive(Clone, Copy, Debug)]
enum LogicOp {
    And,
    Or,
    Xor,
}

/// And, Or, Xor on bool tensors.
#[derive(Debug)]
struct Logic(LogicOp);

impl Op for Logic {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = same_facts(inputs)?
            && d != DType::Bool
        {
            return Err(bad_dtype(0, d, "bool"));
        }
        infer_broadcast(inputs, Some(DType::Bool))
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = match pair(inputs)? {
            (Tensor::Bool(a), Tensor::Bool(b)) => (a, b),
            (a, _) => return Err(bad_dtype(0, a.dtype(), "bool")),
        };
        let y = match self.0 {
            LogicOp::And => zip2(a, b, |x: bool, y: bool| x & y)?,
            LogicOp::Or => zip2(a, b, |x: bool, y: bool| x | y)?,
            LogicOp::Xor => zip2(a, b, |x: bool, y: bool| x ^ y)?,
        };
        Ok(vec![Tensor::Bool(y)])
    }
}

/// Mod: `fmod = 1` is C's fmod (the dividend's sign), `fmod = 0` numpy's `mod` (the
/// divisor's sign).
#[derive(Debug)]
struct Mod {
    fmod: bool,
}

fn build_mod(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let fmod = match ctx.int_or("fmod", 0)? {
        0 => false,
        1 => true,
        v => {
            return Err(OpError::Attr {
                name: "fmod".into(),
                msg: format!("{v} is not 0 or 1"),
            });
        }
    };
    Ok(Box::new(Mod { fmod }))
}

/// numpy's integer `mod`: the remainder with the divisor's sign (0 for a zero divisor).
#[inline(always)]
fn floor_mod<T: Int>(a: T, b: T) -> T {
    let r = a.rem(b);
    if r != T::ZERO && ((r < T::ZERO) != (b < T::ZERO)) {
        r.add(b)
    } else {
        r
    }
}

/// numpy's float `mod` (npy_divmod): fmod, moved into the divisor's sign, and a zero
/// result signed like the divisor.
#[inline(always)]
fn float_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if b == 0.0 {
        return m;
    }
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) { m + b } else { m }
    } else {
        0f64.copysign(b)
    }
}

/// `float_mod` in f32 (numpy's `npy_divmodf`, which its float16 loop also uses).
#[inline(always)]
fn float_mod_f32(a: f32, b: f32) -> f32 {
    let m = a % b;
    if b == 0.0 {
        return m;
    }
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) { m + b } else { m }
    } else {
        0f32.copysign(b)
    }
}

impl Mod {
    fn float<F: Elem + ModFloat>(&self, a: &ArrayD<F>, b: &ArrayD<F>) -> OpResult<ArrayD<F>> {
        if self.fmod {
            zip2(a, b, |x: F, y: F| x.fmod(y))
        } else {
            zip2(a, b, |x: F, y: F| x.npmod(y))
        }
    }

    fn half<H: super::elementwise::Half>(
        &self,
        a: &ArrayD<H>,
        b: &ArrayD<H>,
    ) -> OpResult<ArrayD<H>> {
        let fmod = self.fmod;
        zip2(a, b, move |x: H, y: H| {
            let (x, y) = (x.widen(), y.widen());
            H::narrow(if fmod { x % y } else { float_mod_f32(x, y) })
        })
    }
}

/// The two float remainders on f32 and f64.
trait ModFloat: Copy {
    fn fmod(self, o: Self) -> Self;
    fn npmod(self, o: Self) -> Self;
}

impl ModFloat for f32 {
    fn fmod(self, o: Self) -> Self {
        self % o
    }
    fn npmod(self, o: Self) -> Self {
        float_mod_f32(self, o)
    }
}

impl ModFloat for f64 {
    fn fmod(self, o: Self) -> Self {
        self % o
    }
    fn npmod(self, o: Self) -> Self {
        float_mod(self, o)
    }
}

impl Op for Mod {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = same_facts(inputs)?
            && d == DType::Bool
        {
            return Err(bad_dtype(0, d, "a numeric type"));
        }
        infer_broadcast(inputs, None)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = pair(inputs)?;
        let fmod = self.fmod;
        let y = match (a, b) {
            (Tensor::F16(x), Tensor::F16(y)) => Tensor::F16(self.half(x, y)?),
            (Tensor::BF16(x), Tensor::BF16(y)) => Tensor::BF16(self.half(x, y)?),
            _ if a.dtype().is_int() => with_int!(a.dtype(), T => {
                let (x, y) = (view::<T>(a)?, view::<T>(b)?);
                T::wrap(if fmod {
                    zip2(x, y, |p: T, q: T| p.rem(q))?
                } else {
                    zip2(x, y, floor_mod::<T>)?
                })
            }, return Err(bad_dtype(0, a.dtype(), "a numeric type"))),
            _ => with_float!(a.dtype(), F => F::wrap(self.float::<F>(view(a)?, view(b)?)?),
                return Err(bad_dtype(0, a.dtype(), "a numeric type"))),
        };
        Ok(vec![y])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn i8s(v: Vec<i8>) -> Tensor {
        Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).unwrap())
    }

    fn run(op: &dyn Op, a: &Tensor, b: &Tensor) -> Vec<f64> {
        op.run(&[Some(a), Some(b)]).unwrap().remove(0).to_f64_vec()
    }

    #[test]
    fn shifts_follow_the_reference_out_of_range() {
        let x = i8s(vec![1, -8, 64, -8, 5]);
        let n = i8s(vec![2, 1, 2, 9, -1]);
        let left = IntBinary(IntOp::ShiftLeft);
        assert_eq!(run(&left, &x, &n), vec![4.0, -16.0, 0.0, 0.0, 0.0]);
        let right = IntBinary(IntOp::ShiftRight);
        assert_eq!(run(&right, &x, &n), vec![0.0, -4.0, 16.0, -1.0, 0.0]);
    }

    #[test]
    fn integer_mod_signs_and_zero_divisor() {
        let a = i8s(vec![-4, 7, 5, 4, -7, 8, 3, -128]);
        let b = i8s(vec![2, -3, 8, -2, 3, 5, 0, -1]);
        let m = Mod { fmod: false };
        assert_eq!(
            run(&m, &a, &b),
            vec![0.0, -2.0, 5.0, 0.0, 2.0, 3.0, 0.0, 0.0]
        );
        let f = Mod { fmod: true };
        assert_eq!(
            run(&f, &a, &b),
            vec![0.0, 1.0, 5.0, 0.0, -1.0, 3.0, 0.0, 0.0]
        );
    }

    #[test]
    fn float_mod_edge_cases_match_numpy() {
        assert_eq!(float_mod(-3.0, f64::INFINITY), f64::INFINITY);
        assert_eq!(float_mod(1.0, f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert!(float_mod(0.0, -2.0).is_sign_negative());
        assert!(float_mod(-0.0, 2.0).is_sign_positive());
        assert!(float_mod(1.0, 0.0).is_nan());
        assert!(float_mod(f64::INFINITY, 2.0).is_nan());
        assert_eq!(float_mod(7.0, -3.0), -2.0);
    }

    #[test]
    fn logic_needs_bool_and_bitwise_needs_ints() {
        let t = Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&[2]), vec![true, false]).unwrap());
        let f = Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&[1]), vec![true]).unwrap());
        assert_eq!(run(&Logic(LogicOp::Xor), &t, &f), vec![0.0, 1.0]);
        assert!(IntBinary(IntOp::And).run(&[Some(&t), Some(&f)]).is_err());
        let x = Tensor::from_f32(&[1], vec![1.0]);
        assert!(Logic(LogicOp::And).run(&[Some(&x), Some(&x)]).is_err());
        assert!(BitwiseNot.run(&[Some(&x)]).is_err());
        let y = BitwiseNot.run(&[Some(&i8s(vec![0, 5]))]).unwrap().remove(0);
        assert_eq!(y.to_f64_vec(), vec![-1.0, -6.0]);
    }
}
