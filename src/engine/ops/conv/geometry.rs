//! The attributes shared by Conv and ConvTranspose (opsets 1, 11, 22 of both: the
//! attribute set did not change) and the output size and padding they imply.

use crate::ir::Facts;

use super::super::{BuildCtx, OpError, OpResult};
pub(crate) use crate::engine::kernels::window::Geometry;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

/// The attributes as written on the node; per-axis lists are checked against the
/// input rank once it is known.
#[derive(Clone, Debug)]
pub(super) struct ConvAttrs {
    pub auto_pad: AutoPad,
    pub kernel: Option<Vec<usize>>,
    pub strides: Option<Vec<usize>>,
    pub dilations: Option<Vec<usize>>,
    pub pads: Option<Vec<usize>>,
    pub group: usize,
    /// ConvTranspose only.
    pub output_padding: Option<Vec<usize>>,
    /// ConvTranspose only: the spatial output size.
    pub output_shape: Option<Vec<usize>>,
}

fn positive(ctx: &BuildCtx, name: &str) -> OpResult<Option<Vec<usize>>> {
    non_negative(ctx, name, 1)
}

fn non_negative(ctx: &BuildCtx, name: &str, min: i64) -> OpResult<Option<Vec<usize>>> {
    let Some(v) = ctx.ints(name)? else {
        return Ok(None);
    };
    if let Some(bad) = v.iter().find(|&&x| x < min || x > 1 << 30) {
        let what = if min == 1 { "positive" } else { "non-negative" };
        return Err(OpError::Attr {
            name: name.into(),
            msg: format!("{bad} is not {what}"),
        });
    }
    Ok(Some(v.into_iter().map(|x| x as usize).collect()))
}

impl ConvAttrs {
    pub fn parse(ctx: &BuildCtx, transpose: bool) -> OpResult<ConvAttrs> {
        let auto_pad = match ctx
            .choice(
                "auto_pad",
                "NOTSET",
                &["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
            )?
            .as_str()
        {
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            _ => AutoPad::NotSet,
        };
        let group = ctx.int_or("group", 1)?;
        if !(1..=1 << 30).contains(&group) {
            return Err(OpError::Attr {
                name: "group".into(),
                msg: format!("{group} is not positive"),
            });
        }
        let pads = non_negative(ctx, "pads", 0)?;
        if let Some(p) = &pads
            && p.len() % 2 != 0
        {
            return Err(OpError::Attr {
                name: "pads".into(),
                msg: format!("{} values: not begin and end per axis", p.len()),
            });
        }
        Ok(ConvAttrs {
            auto_pad,
            kernel: positive(ctx, "kernel_shape")?,
            strides: positive(ctx, "strides")?,
            dilations: positive(ctx, "dilations")?,
            pads,
            group: group as usize,
            output_padding: if transpose {
                non_negative(ctx, "output_padding", 0)?
            } else {
                None
            },
            output_shape: if transpose {
                non_negative(ctx, "output_shape", 0)?
            } else {
                None
            },
        })
    }

    /// Kernel, strides and dilations for `r` spatial axes, with `w_kernel` the kernel
    /// dims of the weight.
    fn common(
        &self,
        r: usize,
        w_kernel: &[usize],
    ) -> OpResult<(Vec<usize>, Vec<usize>, Vec<usize>)> {
        let per_axis = |name: &str, v: &Option<Vec<usize>>| -> OpResult<Vec<usize>> {
            match v {
                None => Ok(vec![1; r]),
                Some(v) if v.len() == r => Ok(v.clone()),
                Some(v) => Err(OpError::Attr {
                    name: name.into(),
                    msg: format!("{} values for {r} spatial axes", v.len()),
                }),
            }
        };
        if let Some(k) = &self.kernel
            && k.as_slice() != w_kernel
        {
            return Err(OpError::Attr {
                name: "kernel_shape".into(),
                msg: format!("{k:?} differs from the weight's kernel {w_kernel:?}"),
            });
        }
        Ok((
            w_kernel.to_vec(),
            per_axis("strides", &self.strides)?,
            per_axis("dilations", &self.dilations)?,
        ))
    }

    fn explicit_pads(&self, r: usize) -> OpResult<(Vec<usize>, Vec<usize>)> {
        match &self.pads {
            None => Ok((vec![0; r], vec![0; r])),
            Some(p) if p.len() == 2 * r => Ok((p[..r].to_vec(), p[r..].to_vec())),
            Some(p) => Err(OpError::Attr {
                name: "pads".into(),
                msg: format!("{} values for {r} spatial axes", p.len()),
            }),
        }
    }

    /// Conv: output size `floor((in + pads - dilated kernel) / stride) + 1` per axis.
    pub fn conv(&self, input: &[usize], w_kernel: &[usize]) -> OpResult<Geometry> {
        let r = input.len();
        let (kernel, strides, dilations) = self.common(r, w_kernel)?;
        let (mut pb, mut pe) = self.explicit_pads(r)?;
        let mut output = vec![0; r];
        for i in 0..r {
            let dk = (kernel[i] - 1) * dilations[i] + 1;
            match self.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let out = input[i].div_ceil(strides[i]);
                    let total = ((out.max(1) - 1) * strides[i] + dk).saturating_sub(input[i]);
                    let small = total / 2;
                    (pb[i], pe[i]) = if self.auto_pad == AutoPad::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                }
                AutoPad::Valid => (pb[i], pe[i]) = (0, 0),
                AutoPad::NotSet => {}
            }
            let padded = input[i] + pb[i] + pe[i];
            if padded < dk {
                return Err(OpError::Invalid(format!(
                    "axis {}: the dilated kernel ({dk}) is larger than the padded input ({padded})",
                    i + 2
                )));
            }
            output[i] = (padded - dk) / strides[i] + 1;
        }
        let pad_begin = pb.iter().map(|&p| p as isize).collect();
        Ok(Geometry {
            input: input.to_vec(),
            kernel,
            strides,
            dilations,
            pad_begin,
            output,
        })
    }

    /// ConvTranspose: output size from `output_shape`, auto_pad or the pads.
    pub fn transpose(&self, input: &[usize], w_kernel: &[usize]) -> OpResult<Geometry> {
        let r = input.len();
        let (kernel, strides, dilations) = self.common(r, w_kernel)?;
        let opad = match &self.output_padding {
            None => vec![0; r],
            Some(v) if v.len() == r => v.clone(),
            Some(v) => {
                return Err(OpError::Attr {
                    name: "output_padding".into(),
                    msg: format!("{} values for {r} spatial axes", v.len()),
                });
            }
        };
        let (pb, pe) = self.explicit_pads(r)?;
        let target = match &self.output_shape {
            None if matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) => Some(
                input
                    .iter()
                    .zip(&strides)
                    .map(|(i, s)| i * s)
                    .collect::<Vec<_>>(),
            ),
            None => None,
            Some(v) if v.len() == r => Some(v.clone()),
            Some(v) if v.len() == r + 2 => Some(v[2..].to_vec()),
            Some(v) => {
                return Err(OpError::Attr {
                    name: "output_shape".into(),
                    msg: format!("{} values for {r} spatial axes", v.len()),
                });
            }
        };
        let mut output = vec![0; r];
        let mut pad_begin = vec![0isize; r];
        for i in 0..r {
            let full = (strides[i] * input[i].saturating_sub(1)
                + opad[i]
                + (kernel[i] - 1) * dilations[i]
                + 1) as isize;
            match &target {
                Some(t) => {
                    let total = full - t[i] as isize;
                    let half = total.div_euclid(2);
                    pad_begin[i] = if self.auto_pad == AutoPad::SameUpper {
                        half
                    } else {
                        total - half
                    };
                    output[i] = t[i];
                }
                None => {
                    let out = full - (pb[i] + pe[i]) as isize;
                    if out <= 0 {
                        return Err(OpError::Invalid(format!(
                            "axis {}: the pads leave an empty output",
                            i + 2
                        )));
                    }
                    pad_begin[i] = pb[i] as isize;
                    output[i] = out as usize;
                }
            }
        }
        Ok(Geometry {
            input: input.to_vec(),
            kernel,
            strides,
            dilations,
            pad_begin,
            output,
        })
    }
}

/// Checks the shapes of X, W and B of a convolution: `(N, C, spatial)` of X and `W`.
pub(super) fn check_ranks<'a>(
    x: &'a Facts,
    w: &'a Facts,
) -> OpResult<Option<(&'a [usize], &'a [usize])>> {
    let (Some(xs), Some(ws)) = (x.shape.as_deref(), w.shape.as_deref()) else {
        return Ok(None);
    };
    if xs.len() < 3 {
        return Err(OpError::Input {
            index: 0,
            msg: format!("X has shape {xs:?}: need [N, C, spatial...]"),
        });
    }
    if ws.len() != xs.len() {
        return Err(OpError::Input {
            index: 1,
            msg: format!("W has rank {} but X has rank {}", ws.len(), xs.len()),
        });
    }
    Ok(Some((xs, ws)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(auto_pad: AutoPad, strides: Vec<usize>, pads: Option<Vec<usize>>) -> ConvAttrs {
        ConvAttrs {
            auto_pad,
            kernel: None,
            strides: Some(strides),
            dilations: None,
            pads,
            group: 1,
            output_padding: None,
            output_shape: None,
        }
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_where_the_mode_says() {
        let g = attrs(AutoPad::SameUpper, vec![2, 2], None)
            .conv(&[5, 6], &[3, 3])
            .unwrap();
        assert_eq!(g.output, vec![3, 3]);
        assert_eq!(g.pad_begin, vec![1, 0]);
        let g = attrs(AutoPad::SameLower, vec![2, 2], None)
            .conv(&[5, 6], &[3, 3])
            .unwrap();
        assert_eq!(g.pad_begin, vec![1, 1]);
    }

    #[test]
    fn explicit_pads_and_errors() {
        let g = attrs(AutoPad::NotSet, vec![2, 2], Some(vec![1, 0, 1, 0]))
            .conv(&[7, 5], &[3, 3])
            .unwrap();
        assert_eq!(g.output, vec![4, 2]);
        assert!(
            attrs(AutoPad::NotSet, vec![1], None)
                .conv(&[2], &[3])
                .is_err()
        );
        assert!(
            attrs(AutoPad::NotSet, vec![1, 1, 1], None)
                .conv(&[5, 5], &[3, 3])
                .is_err()
        );
    }

    #[test]
    fn transpose_output_shape_pads_the_end() {
        let mut a = attrs(AutoPad::NotSet, vec![3, 2], None);
        a.output_shape = Some(vec![10, 8]);
        let g = a.transpose(&[3, 3], &[3, 3]).unwrap();
        assert_eq!(g.output, vec![10, 8]);
        assert_eq!(g.pad_begin, vec![0, 0]);
        let g = attrs(AutoPad::NotSet, vec![3, 2], Some(vec![1, 2, 1, 2]))
            .transpose(&[3, 3], &[3, 3])
            .unwrap();
        assert_eq!(g.output, vec![7, 3]);
    }
}
