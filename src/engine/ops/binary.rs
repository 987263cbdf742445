//! Operators: broadcasting element-wise ops: arithmetic, comparisons, PRelu, Pow,
//! the variadic Max/Min/Sum/Mean, and Where.
//!
//! All go through `broadcast::zip2`/`zip3`, which walk precomputed strides with a
//! contiguous inner loop (see there for the fast paths).

pub(crate) mod broadcast;
mod legacy;
mod pow;
mod variadic;

use ndarray::ArrayD;

use crate::ir::shape::broadcast_shapes;
use crate::ir::{DType, Facts, Tensor};

use super::elementwise::scalar::{Elem, Num, with_elem, with_num};
use super::util::infer_broadcast;
use super::{BuildFn, FuseInput, Op, OpError, OpResult, bad_dtype, facts, input};
use crate::engine::kernels::epilogue::{BinOp, Step};
use broadcast::{zip2, zip3};
use legacy::legacy;

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("Add", |c| legacy(c, Box::new(Arith(ArithOp::Add)))),
    ("Sub", |c| legacy(c, Box::new(Arith(ArithOp::Sub)))),
    ("Mul", |c| legacy(c, Box::new(Arith(ArithOp::Mul)))),
    ("Div", |c| legacy(c, Box::new(Arith(ArithOp::Div)))),
    ("Equal", |c| legacy(c, Box::new(Compare(CmpOp::Equal)))),
    ("Greater", |c| legacy(c, Box::new(Compare(CmpOp::Greater)))),
    ("Less", |c| legacy(c, Box::new(Compare(CmpOp::Less)))),
    ("LessOrEqual", |_| Ok(Box::new(Compare(CmpOp::LessOrEqual)))),
    ("GreaterOrEqual", |_| {
        Ok(Box::new(Compare(CmpOp::GreaterOrEqual)))
    }),
    ("PRelu", |c| legacy(c, Box::new(PRelu))),
    ("Pow", |c| legacy(c, Box::new(pow::Pow))),
    ("Max", variadic::build_max),
    ("Min", variadic::build_min),
    ("Sum", variadic::build_sum),
    ("Mean", variadic::build_mean),
    ("Where", |_| Ok(Box::new(Where))),
];

/// Checks that every present input with a known type has the type of the first one.
fn check_same_dtype(inputs: &[Option<&Facts>]) -> OpResult<Option<DType>> {
    let mut first: Option<DType> = None;
    for (i, f) in inputs.iter().enumerate() {
        let Some(d) = f.and_then(|f| f.dtype) else {
            continue;
        };
        match first {
            None => first = Some(d),
            Some(t) if t != d => {
                return Err(OpError::Input {
                    index: i,
                    msg: format!("type {} differs from {}", d.name(), t.name()),
                });
            }
            Some(_) => {}
        }
    }
    Ok(first)
}

/// Two inputs of the same type, or an error naming the second.
fn same_pair<'a>(inputs: &[Option<&'a Tensor>]) -> OpResult<(&'a Tensor, &'a Tensor)> {
    let (a, b) = (input(inputs, 0)?, input(inputs, 1)?);
    if a.dtype() != b.dtype() {
        return Err(OpError::Input {
            index: 1,
            msg: format!(
                "type {} differs from {}",
                b.dtype().name(),
                a.dtype().name()
            ),
        });
    }
    Ok((a, b))
}

/// Views `t` as an array of `T` (the caller dispatched on its type).
fn view<T: Elem>(t: &Tensor) -> OpResult<&ArrayD<T>> {
    T::view(t).ok_or_else(|| OpError::Invalid(format!("internal: expected {}", T::DTYPE.name())))
}

#[derive(Clone, Copy, Debug)]
enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Add, Sub, Mul, Div on any numeric type (integers wrap; integer Div truncates toward
/// zero and gives 0 for a zero divisor).
#[derive(Debug)]
struct Arith(ArithOp);

impl Op for Arith {
    fn epilogue_step(&self, inputs: &[FuseInput], shape: &[usize]) -> Option<Step> {
        let op = match self.0 {
            ArithOp::Add => BinOp::Add,
            ArithOp::Sub => BinOp::Sub,
            ArithOp::Mul => BinOp::Mul,
            ArithOp::Div => BinOp::Div,
        };
        binary_step(op, inputs, shape)
    }

    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = check_same_dtype(inputs)?
            && d == DType::Bool
        {
            return Err(bad_dtype(0, d, "a numeric type"));
        }
        infer_broadcast(inputs, None)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = same_pair(inputs)?;
        let y = with_num!(a.dtype(), T => T::wrap(arith::<T>(self.0, view(a)?, view(b)?)?), {
            return Err(bad_dtype(0, a.dtype(), "a numeric type"))
        });
        Ok(vec![y])
    }
}

/// `x op other` (or `other op x`) as a fused step, when one input is the running value
/// and the other an operand a chain can read.
pub(crate) fn binary_step(op: BinOp, inputs: &[FuseInput], shape: &[usize]) -> Option<Step> {
    let (rhs, swapped) = match inputs {
        [FuseInput::Running, other] => (other.operand(shape)?, false),
        [other, FuseInput::Running] => (other.operand(shape)?, true),
        _ => return None,
    };
    Some(Step::Binary { op, rhs, swapped })
}

fn arith<T: Num>(op: ArithOp, a: &ArrayD<T>, b: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    match op {
        ArithOp::Add => zip2(a, b, |x: T, y: T| x.add(y)),
        ArithOp::Sub => zip2(a, b, |x: T, y: T| x.sub(y)),
        ArithOp::Mul => zip2(a, b, |x: T, y: T| x.mul(y)),
        ArithOp::Div => zip2(a, b, |x: T, y: T| x.div(y)),
    }
}

#[derive(Clone, Copy, Debug)]
enum CmpOp {
    Equal,
    Greater,
    Less,
    LessOrEqual,
    GreaterOrEqual,
}

/// Equal, Greater, Less, LessOrEqual, GreaterOrEqual: bool results (false against NaN).
#[derive(Debug)]
struct Compare(CmpOp);

impl Op for Compare {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        check_same_dtype(inputs)?;
        infer_broadcast(inputs, Some(DType::Bool))
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (a, b) = same_pair(inputs)?;
        let y = with_elem!(a.dtype(), T => compare::<T>(self.0, view(a)?, view(b)?)?);
        Ok(vec![Tensor::Bool(y)])
    }
}

fn compare<T: Elem + PartialOrd>(
    op: CmpOp,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> OpResult<ArrayD<bool>> {
    match op {
        CmpOp::Equal => zip2(a, b, |x: T, y: T| x == y),
        CmpOp::Greater => zip2(a, b, |x: T, y: T| x > y),
        CmpOp::Less => zip2(a, b, |x: T, y: T| x < y),
        CmpOp::LessOrEqual => zip2(a, b, |x: T, y: T| x <= y),
        CmpOp::GreaterOrEqual => zip2(a, b, |x: T, y: T| x >= y),
    }
}

/// PRelu: x < 0 ? slope·x : x, with the slope broadcast to x (unidirectionally).
#[derive(Debug)]
struct PRelu;

fn check_prelu_shapes(x: &[usize], slope: &[usize]) -> OpResult<()> {
    if broadcast_shapes(x, slope).as_deref() != Some(x) {
        return Err(OpError::Input {
            index: 1,
            msg: format!("slope shape {slope:?} does not broadcast to {x:?}"),
        });
    }
    Ok(())
}

impl Op for PRelu {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = check_same_dtype(inputs)?
            && matches!(d, DType::Bool | DType::U8)
        {
            return Err(bad_dtype(0, d, "a signed numeric type"));
        }
        let (x, s) = (facts(inputs, 0)?, facts(inputs, 1)?);
        if let (Some(xs), Some(ss)) = (&x.shape, &s.shape) {
            check_prelu_shapes(xs, ss)?;
        }
        Ok(vec![Facts {
            dtype: x.dtype,
            shape: x.shape.clone(),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, s) = same_pair(inputs)?;
        check_prelu_shapes(x.shape(), s.shape())?;
        let y = with_num!(x.dtype(), T => T::wrap(prelu::<T>(view(x)?, view(s)?)?), {
            return Err(bad_dtype(0, x.dtype(), "a signed numeric type"))
        });
        Ok(vec![y])
    }
}

fn prelu<T: Num>(x: &ArrayD<T>, slope: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    zip2(
        x,
        slope,
        |v: T, k: T| if v < T::ZERO { v.mul(k) } else { v },
    )
}

/// Where(condition, x, y), all three broadcast.
#[derive(Debug)]
struct Where;

impl Op for Where {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = facts(inputs, 0)?.dtype
            && d != DType::Bool
        {
            return Err(bad_dtype(0, d, "bool"));
        }
        let (x, y) = (facts(inputs, 1)?, facts(inputs, 2)?);
        if let (Some(dx), Some(dy)) = (x.dtype, y.dtype)
            && dx != dy
        {
            return Err(OpError::Input {
                index: 2,
                msg: format!("type {} differs from {}", dy.name(), dx.name()),
            });
        }
        let mut out = infer_broadcast(inputs, None)?;
        out[0].dtype = x.dtype.or(y.dtype);
        Ok(out)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let c = match input(inputs, 0)? {
            Tensor::Bool(c) => c,
            t => return Err(bad_dtype(0, t.dtype(), "bool")),
        };
        let (x, y) = (input(inputs, 1)?, input(inputs, 2)?);
        if x.dtype() != y.dtype() {
            return Err(OpError::Input {
                index: 2,
                msg: format!(
                    "type {} differs from {}",
                    y.dtype().name(),
                    x.dtype().name()
                ),
            });
        }
        let out = with_elem!(x.dtype(), T => {
            T::wrap(zip3(c, view::<T>(x)?, view::<T>(y)?, |c: bool, a: T, b: T| if c { a } else { b })?)
        });
        Ok(vec![out])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn i32s(shape: &[usize], v: Vec<i32>) -> Tensor {
        Tensor::I32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    #[test]
    fn integer_division_truncates_and_survives_zero() {
        let (a, b) = (
            i32s(&[5], vec![-3, 3, -3, 3, 7]),
            i32s(&[5], vec![2, 2, -2, -2, 0]),
        );
        let y = Arith(ArithOp::Div)
            .run(&[Some(&a), Some(&b)])
            .unwrap()
            .remove(0);
        assert_eq!(y.to_f64_vec(), vec![-1.0, 1.0, 1.0, -1.0, 0.0]);
        let (m, n) = (i32s(&[1], vec![i32::MIN]), i32s(&[1], vec![-1]));
        assert!(Arith(ArithOp::Div).run(&[Some(&m), Some(&n)]).is_ok());
    }

    #[test]
    fn mixed_types_are_errors() {
        let (a, b) = (Tensor::scalar_f32(1.0), Tensor::scalar_i64(1));
        assert!(Arith(ArithOp::Add).run(&[Some(&a), Some(&b)]).is_err());
        assert!(Compare(CmpOp::Less).run(&[Some(&a), Some(&b)]).is_err());
        let fa = Facts::new(DType::F32, vec![2]);
        let fb = Facts::new(DType::I64, vec![2]);
        assert!(Arith(ArithOp::Add).infer(&[Some(&fa), Some(&fb)]).is_err());
    }

    #[test]
    fn prelu_per_channel() {
        let x = Tensor::from_f32(&[1, 2, 2], vec![-1.0, 2.0, -3.0, 4.0]);
        let s = Tensor::from_f32(&[2, 1], vec![0.5, 0.25]);
        let y = PRelu.run(&[Some(&x), Some(&s)]).unwrap().remove(0);
        assert_eq!(y.to_f64_vec(), vec![-0.5, 2.0, -0.75, 4.0]);
        let bad = Tensor::from_f32(&[3], vec![0.0; 3]);
        assert!(PRelu.run(&[Some(&x), Some(&bad)]).is_err());
    }
}
