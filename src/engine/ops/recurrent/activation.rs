//! The activation functions the recurrent ops accept (`activations`), with their
//! `activation_alpha` / `activation_beta` parameters.

/// One activation function with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Relu,
    Tanh,
    Sigmoid,
    Affine(f32, f32),
    LeakyRelu(f32),
    ThresholdedRelu(f32),
    ScaledTanh(f32, f32),
    HardSigmoid(f32, f32),
    Elu(f32),
    Softsign,
    Softplus,
}

impl Act {
    /// Applies the function to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Relu => x.max(0.0),
            Act::Tanh => x.tanh(),
            Act::Sigmoid => sigmoid(x),
            Act::Affine(a, b) => a * x + b,
            Act::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Act::ThresholdedRelu(a) => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            Act::ScaledTanh(a, b) => a * (b * x).tanh(),
            Act::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            Act::Elu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            Act::Softsign => x / (1.0 + x.abs()),
            Act::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Parses the names (case-insensitive). Each function that takes an alpha (beta)
/// consumes the next entry of `alphas` (`betas`), or uses the ONNX default when the list
/// is exhausted.
pub fn parse_all(names: &[String], alphas: &[f32], betas: &[f32]) -> Result<Vec<Act>, String> {
    let mut a = alphas.iter().copied();
    let mut b = betas.iter().copied();
    names
        .iter()
        .map(|n| {
            Ok(match n.to_ascii_lowercase().as_str() {
                "relu" => Act::Relu,
                "tanh" => Act::Tanh,
                "sigmoid" => Act::Sigmoid,
                "affine" => Act::Affine(a.next().unwrap_or(1.0), b.next().unwrap_or(0.0)),
                "leakyrelu" => Act::LeakyRelu(a.next().unwrap_or(0.01)),
                "thresholdedrelu" => Act::ThresholdedRelu(a.next().unwrap_or(1.0)),
                "scaledtanh" => Act::ScaledTanh(a.next().unwrap_or(1.0), b.next().unwrap_or(1.0)),
                "hardsigmoid" => Act::HardSigmoid(a.next().unwrap_or(0.2), b.next().unwrap_or(0.5)),
                "elu" => Act::Elu(a.next().unwrap_or(1.0)),
                "softsign" => Act::Softsign,
                "softplus" => Act::Softplus,
                _ => return Err(format!("unknown activation `{n}`")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_consumed_in_order() {
        let names: Vec<String> = ["LeakyRelu", "Tanh", "HardSigmoid"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let acts = parse_all(&names, &[0.1, 0.3], &[0.6]).unwrap();
        assert_eq!(
            acts,
            vec![Act::LeakyRelu(0.1), Act::Tanh, Act::HardSigmoid(0.3, 0.6)]
        );
        assert!(parse_all(&["Swish".to_string()], &[], &[]).is_err());
    }

    #[test]
    fn sigmoid_is_stable_at_both_ends() {
        assert_eq!(Act::Sigmoid.apply(-1000.0), 0.0);
        assert_eq!(Act::Sigmoid.apply(1000.0), 1.0);
        assert!((Act::Sigmoid.apply(0.0) - 0.5).abs() < 1e-7);
    }
}
