//! Operators: element-wise unary ops (same shape in and out), Clip, Cast, Dropout.
//!
//! Each op compiles to a `Unary` holding a `Kind`; `run` matches on the kind once and
//! then runs a monomorphized loop over the contiguous data. `scalar` (the element
//! traits) is shared with the broadcasting, reduction, normalization and quantization
//! families; the loops and transcendental functions are kernels (`engine::kernels`),
//! re-exported here as `kernel` and `math` under their old paths.

pub(crate) mod cast;
mod classify;
mod clip;
mod dropout;
pub(crate) mod scalar;

pub(crate) use crate::engine::kernels::loops as kernel;
pub(crate) use crate::engine::kernels::math;

use ndarray::ArrayD;

use crate::ir::{DType, Facts, Tensor};

use super::util::infer_same;
use super::{BuildCtx, BuildFn, FuseInput, Op, OpError, OpResult, bad_dtype, facts, input};
use crate::engine::kernels::epilogue::Step;
use kernel::map_array;
use scalar::{Float, Num};

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("Abs", |_| unary(Kind::Abs)),
    ("Neg", |_| unary(Kind::Neg)),
    ("Ceil", |_| unary(Kind::Ceil)),
    ("Floor", |_| unary(Kind::Floor)),
    ("Exp", |_| unary(Kind::Exp)),
    ("Log", |_| unary(Kind::Log)),
    ("Sqrt", |_| unary(Kind::Sqrt)),
    ("Reciprocal", |_| unary(Kind::Reciprocal)),
    ("Erf", |_| unary(Kind::Erf)),
    ("Round", |_| unary(Kind::Round)),
    ("Sigmoid", |_| unary(Kind::Sigmoid)),
    ("Tanh", |_| unary(Kind::Tanh)),
    ("Relu", |_| unary(Kind::Relu)),
    ("LeakyRelu", |c| {
        unary(Kind::LeakyRelu(c.float_or("alpha", 0.01)?))
    }),
    ("Elu", |c| unary(Kind::Elu(c.float_or("alpha", 1.0)?))),
    ("HardSigmoid", |c| {
        unary(Kind::HardSigmoid(
            c.float_or("alpha", 0.2)?,
            c.float_or("beta", 0.5)?,
        ))
    }),
    ("HardSwish", |_| unary(Kind::HardSwish)),
    ("Softplus", |_| unary(Kind::Softplus)),
    ("Mish", |_| unary(Kind::Mish)),
    ("Gelu", build_gelu),
    ("Cos", |_| unary(Kind::Trig(Trig::Cos))),
    ("Sin", |_| unary(Kind::Trig(Trig::Sin))),
    ("Tan", |_| unary(Kind::Trig(Trig::Tan))),
    ("Acos", |_| unary(Kind::Trig(Trig::Acos))),
    ("Asin", |_| unary(Kind::Trig(Trig::Asin))),
    ("Atan", |_| unary(Kind::Trig(Trig::Atan))),
    ("Cosh", |_| unary(Kind::Trig(Trig::Cosh))),
    ("Sinh", |_| unary(Kind::Trig(Trig::Sinh))),
    ("Acosh", |_| unary(Kind::Trig(Trig::Acosh))),
    ("Asinh", |_| unary(Kind::Trig(Trig::Asinh))),
    ("Atanh", |_| unary(Kind::Trig(Trig::Atanh))),
    ("Sign", |_| unary(Kind::Sign)),
    ("Softsign", |_| unary(Kind::Softsign)),
    ("Selu", |c| {
        unary(Kind::Selu(
            c.float_or("alpha", 1.673_263_2)?,
            c.float_or("gamma", 1.050_701)?,
        ))
    }),
    ("Celu", |c| unary(Kind::Celu(c.float_or("alpha", 1.0)?))),
    ("ThresholdedRelu", |c| {
        unary(Kind::ThresholdedRelu(c.float_or("alpha", 1.0)?))
    }),
    ("Shrink", |c| {
        unary(Kind::Shrink(
            c.float_or("bias", 0.0)?,
            c.float_or("lambd", 0.5)?,
        ))
    }),
    ("Swish", |c| unary(Kind::Swish(c.float_or("alpha", 1.0)?))),
    ("IsNaN", classify::build_isnan),
    ("IsInf", classify::build_isinf),
    ("Not", |_| unary(Kind::Not)),
    ("Identity", |_| unary(Kind::Identity)),
    ("Clip", clip::build),
    ("Cast", cast::build),
    ("Dropout", dropout::build),
];

/// What a `Unary` computes; parameters are the node's attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Abs,
    Neg,
    Ceil,
    Floor,
    Exp,
    Log,
    Sqrt,
    Reciprocal,
    Erf,
    Round,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu(f32),
    Elu(f32),
    HardSigmoid(f32, f32),
    HardSwish,
    Softplus,
    Mish,
    Gelu {
        tanh: bool,
    },
    Trig(Trig),
    Sign,
    Softsign,
    /// alpha, gamma.
    Selu(f32, f32),
    Celu(f32),
    ThresholdedRelu(f32),
    /// bias, lambd.
    Shrink(f32, f32),
    Swish(f32),
    Not,
    Identity,
}

/// The trigonometric and hyperbolic functions, computed in f64 and rounded once.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Trig {
    Cos,
    Sin,
    Tan,
    Acos,
    Asin,
    Atan,
    Cosh,
    Sinh,
    Acosh,
    Asinh,
    Atanh,
}

impl Trig {
    fn eval(self, x: f64) -> f64 {
        match self {
            Trig::Cos => x.cos(),
            Trig::Sin => x.sin(),
            Trig::Tan => x.tan(),
            Trig::Acos => x.acos(),
            Trig::Asin => x.asin(),
            Trig::Atan => x.atan(),
            Trig::Cosh => x.cosh(),
            Trig::Sinh => x.sinh(),
            Trig::Acosh => x.acosh(),
            Trig::Asinh => x.asinh(),
            Trig::Atanh => x.atanh(),
        }
    }
}

impl Kind {
    /// Whether the op accepts elements of type `d` (the ONNX type constraints).
    fn accepts(self, d: DType) -> bool {
        match self {
            Kind::Identity => true,
            Kind::Not => d == DType::Bool,
            Kind::Abs | Kind::Sign => d != DType::Bool,
            Kind::Neg | Kind::Relu => !matches!(
                d,
                DType::U8 | DType::U16 | DType::U32 | DType::U64 | DType::Bool
            ),
            _ => d.is_float() || d.is_half(),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Identity => "any type",
            Kind::Not => "bool",
            Kind::Abs | Kind::Sign => "a numeric type",
            Kind::Neg | Kind::Relu => "a signed numeric type",
            _ => "a float type",
        }
    }
}

/// A unary element-wise op.
#[derive(Debug)]
struct Unary {
    kind: Kind,
}

fn unary(kind: Kind) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Unary { kind }))
}

fn build_gelu(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let approx = ctx.choice("approximate", "none", &["none", "tanh"])?;
    unary(Kind::Gelu {
        tanh: approx == "tanh",
    })
}

impl Op for Unary {
    fn epilogue_step(&self, inputs: &[FuseInput], _shape: &[usize]) -> Option<Step> {
        if !matches!(inputs, [FuseInput::Running]) {
            return None;
        }
        // Each step computes the formula of `float` below, on f32.
        Some(match self.kind {
            Kind::Relu => Step::Relu,
            Kind::LeakyRelu(alpha) => Step::LeakyRelu { alpha },
            Kind::HardSigmoid(alpha, beta) => Step::HardSigmoid { alpha, beta },
            Kind::HardSwish => Step::HardSwish,
            Kind::Sigmoid => Step::Sigmoid,
            _ => return None,
        })
    }

    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        if let Some(d) = facts(inputs, 0)?.dtype
            && !self.kind.accepts(d)
        {
            return Err(bad_dtype(0, d, self.kind.expected()));
        }
        infer_same(inputs)
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        if !self.kind.accepts(x.dtype()) {
            return Err(bad_dtype(0, x.dtype(), self.kind.expected()));
        }
        let y = match (self.kind, x) {
            (Kind::Identity, _) => x.clone(),
            (Kind::Not, Tensor::Bool(a)) => Tensor::Bool(map_array(a, |v: bool| !v)?),
            (_, Tensor::F32(a)) => Tensor::F32(float(self.kind, a)?),
            (_, Tensor::F64(a)) => Tensor::F64(float(self.kind, a)?),
            (_, Tensor::I64(a)) => Tensor::I64(int(self.kind, a)?),
            (_, Tensor::I32(a)) => Tensor::I32(int(self.kind, a)?),
            (_, Tensor::I8(a)) => Tensor::I8(int(self.kind, a)?),
            (_, Tensor::U8(a)) => Tensor::U8(int(self.kind, a)?),
            (_, Tensor::I16(a)) => Tensor::I16(int(self.kind, a)?),
            (_, Tensor::U16(a)) => Tensor::U16(int(self.kind, a)?),
            (_, Tensor::U32(a)) => Tensor::U32(int(self.kind, a)?),
            (_, Tensor::U64(a)) => Tensor::U64(int(self.kind, a)?),
            (_, Tensor::F16(a)) => Tensor::F16(via_f32(a, |w| float(self.kind, w))?),
            (_, Tensor::BF16(a)) => Tensor::BF16(via_f32(a, |w| float(self.kind, w))?),
            (_, Tensor::Bool(_)) => return Err(bad_dtype(0, x.dtype(), self.kind.expected())),
        };
        Ok(vec![y])
    }
}

/// A half-precision element: widened to f32 exactly, rounded back to nearest even.
pub(crate) trait Half: Copy + Send + Sync + Default + 'static {
    fn widen(self) -> f32;
    fn narrow(v: f32) -> Self;
}

impl Half for half::f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn narrow(v: f32) -> Self {
        half::f16::from_f32(v)
    }
}

impl Half for half::bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn narrow(v: f32) -> Self {
        half::bf16::from_f32(v)
    }
}

/// Runs an f32 computation on half-precision data, as numpy's float16 ufuncs do: the
/// inputs widened to f32, `f` computed there, each result rounded back once.
pub(crate) fn via_f32<H: Half>(
    a: &ArrayD<H>,
    f: impl FnOnce(&ArrayD<f32>) -> OpResult<ArrayD<f32>>,
) -> OpResult<ArrayD<H>> {
    Ok(f(&a.mapv(H::widen))?.mapv(H::narrow))
}

/// Clamps to [0, 1], keeping NaN.
#[inline(always)]
fn unit_clamp<F: Float>(v: F) -> F {
    if v < F::ZERO {
        F::ZERO
    } else if v > F::ONE {
        F::ONE
    } else {
        v
    }
}

/// ln(1 + eˣ) without overflow.
#[inline(always)]
fn softplus<F: Float>(x: F) -> F {
    let pos = if x > F::ZERO { x } else { F::ZERO };
    pos + (-x.abs()).exp().ln_1p()
}

fn float<F: Float>(kind: Kind, a: &ArrayD<F>) -> OpResult<ArrayD<F>> {
    let c = F::from_f32;
    let half = c(0.5);
    match kind {
        Kind::Abs => map_array(a, |x: F| x.abs()),
        Kind::Neg => map_array(a, |x: F| -x),
        Kind::Ceil => map_array(a, |x: F| x.ceil()),
        Kind::Floor => map_array(a, |x: F| x.floor()),
        Kind::Exp => map_array(a, |x: F| x.exp()),
        Kind::Log => map_array(a, |x: F| x.ln()),
        Kind::Sqrt => map_array(a, |x: F| x.sqrt()),
        Kind::Reciprocal => map_array(a, |x: F| F::ONE / x),
        Kind::Erf => map_array(a, |x: F| x.erf()),
        Kind::Round => map_array(a, |x: F| x.round_even()),
        Kind::Sigmoid => map_array(a, |x: F| F::ONE / (F::ONE + (-x).exp())),
        Kind::Tanh => map_array(a, |x: F| x.tanh()),
        Kind::Relu => map_array(a, |x: F| if x < F::ZERO { F::ZERO } else { x }),
        Kind::LeakyRelu(alpha) => {
            let alpha = c(alpha);
            map_array(a, move |x: F| if x < F::ZERO { x * alpha } else { x })
        }
        Kind::Elu(alpha) => {
            let alpha = c(alpha);
            map_array(
                a,
                move |x: F| if x < F::ZERO { alpha * x.exp_m1() } else { x },
            )
        }
        Kind::HardSigmoid(alpha, beta) => {
            let (alpha, beta) = (c(alpha), c(beta));
            map_array(a, move |x: F| unit_clamp(alpha * x + beta))
        }
        Kind::HardSwish => {
            let sixth = F::ONE / c(6.0);
            map_array(a, move |x: F| x * unit_clamp(x * sixth + half))
        }
        Kind::Softplus => map_array(a, |x: F| softplus(x)),
        Kind::Mish => map_array(a, |x: F| x * softplus(x).tanh()),
        Kind::Gelu { tanh: false } => {
            let r = F::from_f64(std::f64::consts::FRAC_1_SQRT_2);
            map_array(a, move |x: F| half * x * (F::ONE + (x * r).erf()))
        }
        Kind::Gelu { tanh: true } => {
            let k = F::from_f64((2.0 / std::f64::consts::PI).sqrt());
            let b = c(0.044715);
            map_array(a, move |x: F| {
                half * x * (F::ONE + (k * (x + b * x * x * x)).tanh())
            })
        }
        Kind::Trig(t) => map_array(a, move |x: F| F::from_f64(t.eval(x.to_f64()))),
        Kind::Sign => map_array(a, |x: F| {
            if x > F::ZERO {
                F::ONE
            } else if x < F::ZERO {
                -F::ONE
            } else {
                x // ±0 and NaN, as numpy
            }
        }),
        Kind::Softsign => map_array(a, |x: F| x / (F::ONE + x.abs())),
        Kind::Selu(alpha, gamma) => {
            let (alpha, gamma) = (c(alpha), c(gamma));
            map_array(a, move |x: F| {
                gamma
                    * if x > F::ZERO {
                        x
                    } else {
                        x.exp() * alpha - alpha
                    }
            })
        }
        Kind::Celu(alpha) => {
            let alpha = c(alpha);
            map_array(a, move |x: F| {
                let neg = alpha * (x / alpha).exp_m1();
                let pos = if x > F::ZERO { x } else { F::ZERO };
                pos + if neg < F::ZERO { neg } else { F::ZERO }
            })
        }
        Kind::ThresholdedRelu(alpha) => {
            let alpha = c(alpha);
            map_array(a, move |x: F| if x > alpha { x } else { F::ZERO })
        }
        Kind::Shrink(bias, lambd) => {
            let (bias, lambd) = (c(bias), c(lambd));
            map_array(a, move |x: F| {
                if x < -lambd {
                    x + bias
                } else if x > lambd {
                    x - bias
                } else {
                    F::ZERO
                }
            })
        }
        Kind::Swish(alpha) => {
            let alpha = c(alpha);
            map_array(a, move |x: F| x / (F::ONE + (-(alpha * x)).exp()))
        }
        Kind::Not | Kind::Identity => {
            Err(OpError::Invalid(format!("internal: {kind:?} on floats")))
        }
    }
}

fn int<T: Num>(kind: Kind, a: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    match kind {
        Kind::Abs => map_array(a, |x: T| if x < T::ZERO { T::ZERO.sub(x) } else { x }),
        Kind::Neg => map_array(a, |x: T| T::ZERO.sub(x)),
        Kind::Relu => map_array(a, |x: T| if x < T::ZERO { T::ZERO } else { x }),
        Kind::Sign => map_array(a, |x: T| {
            if x > T::ZERO {
                T::ONE
            } else if x < T::ZERO {
                T::ZERO.sub(T::ONE)
            } else {
                T::ZERO
            }
        }),
        _ => Err(OpError::Invalid(format!("internal: {kind:?} on integers"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: Kind, x: Tensor) -> Tensor {
        Unary { kind }.run(&[Some(&x)]).unwrap().remove(0)
    }

    #[test]
    fn round_is_half_to_even() {
        let y = run(
            Kind::Round,
            Tensor::from_f32(&[6], vec![0.5, 1.5, 2.5, -0.5, -2.5, 2.6]),
        );
        assert_eq!(y.to_f64_vec(), vec![0.0, 2.0, 2.0, -0.0, -2.0, 3.0]);
    }

    #[test]
    fn integer_abs_neg_relu_wrap_like_numpy() {
        let x =
            Tensor::I8(ArrayD::from_shape_vec(ndarray::IxDyn(&[3]), vec![-128i8, -3, 5]).unwrap());
        assert_eq!(
            run(Kind::Abs, x.clone()).to_f64_vec(),
            vec![-128.0, 3.0, 5.0]
        );
        assert_eq!(
            run(Kind::Neg, x.clone()).to_f64_vec(),
            vec![-128.0, 3.0, -5.0]
        );
        assert_eq!(run(Kind::Relu, x).to_f64_vec(), vec![0.0, 0.0, 5.0]);
    }

    #[test]
    fn wrong_types_are_errors() {
        let x = Tensor::from_f32(&[1], vec![1.0]);
        assert!(Unary { kind: Kind::Not }.run(&[Some(&x)]).is_err());
        let b = Tensor::Bool(ArrayD::from_elem(ndarray::IxDyn(&[1]), true));
        assert!(Unary { kind: Kind::Exp }.run(&[Some(&b)]).is_err());
        assert!(Unary { kind: Kind::Exp }.run(&[None]).is_err());
    }

    #[test]
    fn activations_match_definitions() {
        let x = Tensor::from_f32(&[5], vec![-4.0, -0.5, 0.0, 0.5, 4.0]);
        let hs = run(Kind::HardSwish, x.clone()).to_f64_vec();
        let sp = run(Kind::Softplus, x.clone()).to_f64_vec();
        let ge = run(Kind::Gelu { tanh: false }, x.clone()).to_f64_vec();
        for (i, v) in x.to_f64_vec().into_iter().enumerate() {
            assert!((hs[i] - v * ((v / 6.0 + 0.5).clamp(0.0, 1.0))).abs() < 1e-6);
            assert!((sp[i] - (1.0 + v.exp()).ln()).abs() < 1e-6);
            assert!((ge[i] - 0.5 * v * (1.0 + math::erf_f64(v / 2f64.sqrt()))).abs() < 1e-6);
        }
    }
}
