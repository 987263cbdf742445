//! Dropout. In inference (always before opset 12; from 12 unless the `training_mode`
//! input is true and the `ratio` input above 0) the output is the input and the
//! optional mask is all true.
//!
//! In training mode each element is kept when a uniform draw in [0, 1) is ≥ `ratio`,
//! and scaled by 1/(1 − ratio). The draws are numpy's `RandomState(seed).uniform`
//! (MT19937, 53-bit doubles), which is what the ONNX reference implementation and
//! therefore the backend tests use: with a `seed` attribute the op is a deterministic
//! function of its inputs. Without one ONNX asks for a fresh random seed, so the op is
//! then not pure (never folded) and each run draws a new mask.

use std::hash::{BuildHasher, Hasher};

use ndarray::ArrayD;

use crate::ir::{DType, Facts, Tensor};

use super::kernel::{array, data};
use super::scalar::{Float, with_float};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, bad_dtype, facts, input};

#[derive(Debug)]
struct Dropout {
    /// Opset ≥ 12: ratio and training mode are inputs.
    training_inputs: bool,
    seed: Option<i64>,
    /// The node has a mask output.
    mask: bool,
    /// The mask is bool (opset ≥ 10) rather than the input's type.
    bool_mask: bool,
    /// Training mode may be on (input 2 present and not a constant false).
    may_train: bool,
}

pub(super) fn build(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let training_inputs = ctx.opset >= 12;
    let may_train = training_inputs
        && ctx.has_input(2)
        && match ctx.const_input(2) {
            Some(t) => t.to_i64_vec().is_none_or(|v| v.iter().any(|&b| b != 0)),
            None => true,
        };
    let seed = if training_inputs {
        ctx.int("seed")?
    } else {
        None
    };
    Ok(Box::new(Dropout {
        training_inputs,
        seed,
        mask: ctx.node.output(1).is_some(),
        bool_mask: ctx.opset >= 10,
        may_train,
    }))
}

impl Op for Dropout {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = facts(inputs, 0)?;
        if let Some(d) = x.dtype
            && !d.is_float()
        {
            return Err(bad_dtype(0, d, "float32 or float64"));
        }
        if let Some(Some(t)) = inputs.get(2)
            && t.dtype.is_some_and(|d| d != DType::Bool)
        {
            return Err(OpError::Input {
                index: 2,
                msg: "training_mode must be bool".into(),
            });
        }
        let mask_type = if self.bool_mask {
            Some(DType::Bool)
        } else {
            x.dtype
        };
        Ok(vec![
            Facts {
                dtype: x.dtype,
                shape: x.shape.clone(),
                value: None,
            },
            Facts {
                dtype: mask_type,
                shape: x.shape.clone(),
                value: None,
            },
        ])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let (ratio, training) = if self.training_inputs {
            self.mode(inputs)?
        } else {
            (0.0, false)
        };
        if training && ratio > 0.0 {
            return with_float!(x.dtype(), F => {
                let a = F::view_of(x)?;
                self.train::<F>(a, ratio)
            }, Err(bad_dtype(0, x.dtype(), "float32 or float64")));
        }
        if !x.dtype().is_float() {
            return Err(bad_dtype(0, x.dtype(), "float32 or float64"));
        }
        let mut out = vec![x.clone()];
        if self.mask {
            let dt = if self.bool_mask {
                DType::Bool
            } else {
                x.dtype()
            };
            out.push(ones(dt, x.shape()));
        }
        Ok(out)
    }

    fn is_pure(&self) -> bool {
        !self.may_train || self.seed.is_some()
    }
}

impl Dropout {
    /// (ratio, training_mode) from inputs 1 and 2.
    fn mode(&self, inputs: &[Option<&Tensor>]) -> OpResult<(f32, bool)> {
        let training = match inputs.get(2).copied().flatten() {
            None => false,
            Some(Tensor::Bool(t)) if t.len() == 1 => t.iter().any(|&b| b),
            Some(_) => {
                return Err(OpError::Input {
                    index: 2,
                    msg: "training_mode must be a bool scalar".into(),
                });
            }
        };
        let ratio = match inputs.get(1).copied().flatten() {
            None => 0.5,
            Some(t) if t.len() == 1 && t.dtype().is_float() => t.to_f64_vec()[0] as f32,
            Some(_) => {
                return Err(OpError::Input {
                    index: 1,
                    msg: "ratio must be a float scalar".into(),
                });
            }
        };
        if training && !(0.0..1.0).contains(&ratio) {
            return Err(OpError::Input {
                index: 1,
                msg: format!("ratio {ratio} is outside [0, 1)"),
            });
        }
        Ok((ratio, training))
    }

    fn train<F: Float>(&self, a: &ArrayD<F>, ratio: f32) -> OpResult<Vec<Tensor>> {
        let seed = self.seed.map(|s| s as u32).unwrap_or_else(fresh_seed);
        let mut rng = Mt19937::new(seed);
        let keep: Vec<bool> = (0..a.len())
            .map(|_| rng.next_f64() >= ratio as f64)
            .collect();
        // The reference computes the scale in the ratio's precision (float32).
        let scale = F::from_f32(1.0 / (1.0 - ratio));
        let y: Vec<F> = data(a)
            .iter()
            .zip(&keep)
            .map(|(&v, &k)| if k { v * scale } else { F::ZERO })
            .collect();
        let mut out = vec![F::wrap(array(a.shape(), y)?)];
        if self.mask {
            out.push(Tensor::Bool(array(a.shape(), keep)?));
        }
        Ok(out)
    }
}

trait ViewOf: Float {
    fn view_of(t: &Tensor) -> OpResult<&ArrayD<Self>> {
        Self::view(t).ok_or_else(|| OpError::Invalid("internal: type dispatch".into()))
    }
}

impl<F: Float> ViewOf for F {}

/// A tensor of ones (true) of the given type.
fn ones(dtype: DType, shape: &[usize]) -> Tensor {
    let s = ndarray::IxDyn(shape);
    match dtype {
        DType::F32 => Tensor::F32(ArrayD::from_elem(s, 1.0)),
        DType::F64 => Tensor::F64(ArrayD::from_elem(s, 1.0)),
        DType::I64 => Tensor::I64(ArrayD::from_elem(s, 1)),
        DType::I32 => Tensor::I32(ArrayD::from_elem(s, 1)),
        DType::I8 => Tensor::I8(ArrayD::from_elem(s, 1)),
        DType::U8 => Tensor::U8(ArrayD::from_elem(s, 1)),
        DType::Bool => Tensor::Bool(ArrayD::from_elem(s, true)),
        DType::F16 => Tensor::F16(ArrayD::from_elem(s, half::f16::ONE)),
        DType::BF16 => Tensor::BF16(ArrayD::from_elem(s, half::bf16::ONE)),
        DType::I16 => Tensor::I16(ArrayD::from_elem(s, 1)),
        DType::U16 => Tensor::U16(ArrayD::from_elem(s, 1)),
        DType::U32 => Tensor::U32(ArrayD::from_elem(s, 1)),
        DType::U64 => Tensor::U64(ArrayD::from_elem(s, 1)),
    }
}

/// A seed from the process's hash randomness, for Dropout without a `seed`.
fn fresh_seed() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() as u32
}

/// The Mersenne Twister as numpy's legacy `RandomState` seeds and uses it.
struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) from 53 random bits (numpy's `random_sample`).
    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mersenne_twister_matches_numpy() {
        // numpy.random.RandomState(0).uniform(0, 1, 3), and draws 700 and 701.
        let mut r = Mt19937::new(0);
        for want in [0.5488135039273248, 0.7151893663724195, 0.6027633760716439] {
            assert_eq!(r.next_f64(), want);
        }
        let mut r = Mt19937::new(0);
        for _ in 0..700 {
            r.next_f64();
        }
        assert_eq!(r.next_f64(), 0.37321595574479416);
        assert_eq!(r.next_f64(), 0.22286381801498023);
    }

    #[test]
    fn inference_is_identity_with_true_mask() {
        let op = Dropout {
            training_inputs: true,
            seed: None,
            mask: true,
            bool_mask: true,
            may_train: false,
        };
        let x = Tensor::from_f32(&[3], vec![1.0, -2.0, 3.0]);
        let out = op.run(&[Some(&x), Some(&Tensor::scalar_f32(0.5))]).unwrap();
        assert_eq!(out[0], x);
        assert_eq!(out[1].to_f64_vec(), vec![1.0; 3]);
    }
}
