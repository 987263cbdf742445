//! Slice (a strided view: negative steps, clamped bounds) and Gather.

use super::strided::{copy_view, strides_of};
use super::{Elem, axis, const_ints, int_values, numel, row_major, to_array, typed, with_elem};
use crate::engine::ops::{BuildCtx, Op, OpError, OpResult, facts, input};
use crate::ir::{DType, Facts, Tensor};

/// Slice-1 takes starts/ends/axes as attributes; from opset 10 they are inputs 1-4.
#[derive(Debug)]
struct Slice {
    attrs: Option<[Option<Vec<i64>>; 3]>,
}

pub(super) fn build_slice(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    let attrs = if ctx.opset < 10 {
        let req = |n: &str| {
            ctx.ints(n)?.ok_or_else(|| OpError::Attr {
                name: n.into(),
                msg: "missing".into(),
            })
        };
        Some([Some(req("starts")?), Some(req("ends")?), ctx.ints("axes")?])
    } else {
        None
    };
    Ok(Box::new(Slice { attrs }))
}

/// Per output axis: first element, step and length.
#[derive(Debug, PartialEq)]
struct Window {
    start: Vec<usize>,
    step: Vec<i64>,
    len: Vec<usize>,
}

const WHAT: [&str; 4] = ["starts", "ends", "axes", "steps"];

/// The sliced window of `shape` for starts, ends and optional axes and steps.
fn window(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> OpResult<Window> {
    let r = shape.len();
    let n = starts.len();
    let same = |v: Option<&[i64]>| v.is_none_or(|v| v.len() == n);
    if ends.len() != n || !same(axes) || !same(steps) {
        return Err(OpError::Invalid(
            "starts, ends, axes and steps must have the same length".into(),
        ));
    }
    let mut w = Window {
        start: vec![0; r],
        step: vec![1; r],
        len: shape.to_vec(),
    };
    let mut seen = vec![false; r];
    for i in 0..n {
        let ax = match axes {
            Some(a) => axis(a[i], r, "slice axis")?,
            None if i < r => i,
            None => return Err(OpError::Invalid(format!("{n} starts for a rank-{r} input"))),
        };
        if std::mem::replace(&mut seen[ax], true) {
            return Err(OpError::Invalid(format!("slice axis {ax} is repeated")));
        }
        let step = steps.map_or(1, |s| s[i]);
        if step == 0 {
            return Err(OpError::Invalid("slice step 0".into()));
        }
        let d = shape[ax] as i64;
        let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (s, len) = if d == 0 {
            (0, 0)
        } else if step > 0 {
            let (s, e) = (wrap(starts[i]).clamp(0, d), wrap(ends[i]).clamp(0, d));
            (s, if e > s { (e - s - 1) / step + 1 } else { 0 })
        } else {
            let (s, e) = (
                wrap(starts[i]).clamp(0, d - 1),
                wrap(ends[i]).clamp(-1, d - 1),
            );
            (
                s,
                if s > e {
                    (s - e - 1) / step.saturating_neg() + 1
                } else {
                    0
                },
            )
        };
        w.start[ax] = s.max(0) as usize;
        w.step[ax] = step;
        w.len[ax] = len as usize;
    }
    Ok(w)
}

fn slice<T: Elem>(x: &Tensor, w: &Window) -> OpResult<Tensor> {
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    let st = strides_of(x.shape());
    let offset: isize = w.start.iter().zip(&st).map(|(&s, &k)| s as isize * k).sum();
    let strides: Vec<isize> = w
        .step
        .iter()
        .zip(&st)
        .map(|(&s, &k)| s as isize * k)
        .collect();
    Ok(T::into_tensor(to_array(
        &w.len,
        copy_view(&data, offset, &w.len, &strides)?,
    )?))
}

impl Slice {
    /// The operand values: from the attributes, or from inputs 1-4 through `get`.
    fn operands(
        &self,
        get: impl Fn(usize) -> OpResult<Option<Vec<i64>>>,
    ) -> OpResult<[Option<Vec<i64>>; 4]> {
        match &self.attrs {
            Some([s, e, a]) => Ok([s.clone(), e.clone(), a.clone(), None]),
            None => Ok([get(1)?, get(2)?, get(3)?, get(4)?]),
        }
    }
}

fn window_of(shape: &[usize], ops: &[Option<Vec<i64>>; 4]) -> OpResult<Window> {
    let [Some(s), Some(e), a, st] = ops else {
        return Err(OpError::Invalid("Slice needs starts and ends".into()));
    };
    window(shape, s, e, a.as_deref(), st.as_deref())
}

impl Op for Slice {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let f = facts(inputs, 0)?;
        let unknown = Ok(vec![Facts::unknown_shape(f.dtype)]);
        if self.attrs.is_none()
            && (1..5).any(|i| {
                super::has(inputs, i) && const_ints(inputs, i, WHAT[i - 1]).ok().flatten().is_none()
            })
        {
            return unknown;
        }
        let Some(shape) = &f.shape else {
            return unknown;
        };
        let ops = self.operands(|i| const_ints(inputs, i, WHAT[i - 1]))?;
        Ok(vec![Facts {
            dtype: f.dtype,
            shape: Some(window_of(shape, &ops)?.len),
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input(inputs, 0)?;
        let ops = self.operands(|i| super::opt_ints(inputs, i, WHAT[i - 1]))?;
        let w = window_of(x.shape(), &ops)?;
        with_elem!(x.dtype(), T => slice::<T>(x, &w)).map(|t| vec![t])
    }
}

#[derive(Debug)]
struct Gather {
    axis: i64,
}

pub(super) fn build_gather(ctx: &BuildCtx) -> OpResult<Box<dyn Op>> {
    Ok(Box::new(Gather {
        axis: ctx.int_or("axis", 0)?,
    }))
}

fn gather_shape(data: &[usize], idx: &[usize], ax: usize) -> Vec<usize> {
    [&data[..ax], idx, &data[ax + 1..]].concat()
}

fn gather<T: Elem>(x: &Tensor, idx: &[i64], idx_shape: &[usize], ax: usize) -> OpResult<Tensor> {
    let data = row_major(typed::<T>(x, 0, x.dtype())?);
    let shape = x.shape();
    let d = shape[ax];
    let outer: usize = shape[..ax].iter().product();
    let inner: usize = shape[ax + 1..].iter().product();
    let rows = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + d as i64 } else { i };
            usize::try_from(j)
                .ok()
                .filter(|&j| j < d)
                .ok_or_else(|| OpError::Input {
                    index: 1,
                    msg: format!("index {i} is out of range for axis {ax} of size {d}"),
                })
        })
        .collect::<OpResult<Vec<usize>>>()?;
    let out_shape = gather_shape(shape, idx_shape, ax);
    let mut out = Vec::with_capacity(numel(&out_shape)?);
    for o in 0..outer {
        let base = o * d * inner;
        for &r in &rows {
            out.extend_from_slice(&data[base + r * inner..base + (r + 1) * inner]);
        }
    }
    Ok(T::into_tensor(to_array(&out_shape, out)?))
}

impl Op for Gather {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let (f, i) = (facts(inputs, 0)?, facts(inputs, 1)?);
        if let Some(dt) = i.dtype
            && !matches!(dt, DType::I64 | DType::I32)
        {
            return Err(OpError::Input {
                index: 1,
                msg: format!("indices must be int32 or int64, got {}", dt.name()),
            });
        }
        let shape = match (&f.shape, &i.shape) {
            (Some(s), Some(is)) => Some(gather_shape(s, is, axis(self.axis, s.len(), "axis")?)),
            _ => None,
        };
        if let (Some(s), Some(idx)) = (&f.shape, const_ints(inputs, 1, "indices")?) {
            let ax = axis(self.axis, s.len(), "axis")?;
            if let Some(&bad) = idx
                .iter()
                .find(|&&v| v < -(s[ax] as i64) || v >= s[ax] as i64)
            {
                return Err(OpError::Input {
                    index: 1,
                    msg: format!(
                        "index {bad} is out of range for axis {ax} of size {}",
                        s[ax]
                    ),
                });
            }
        }
        Ok(vec![Facts {
            dtype: f.dtype,
            shape,
            value: None,
        }])
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let (x, i) = (input(inputs, 0)?, input(inputs, 1)?);
        let ax = axis(self.axis, x.rank(), "axis")?;
        let idx = int_values(i, 1, "indices")?;
        with_elem!(x.dtype(), T => gather::<T>(x, &idx, i.shape(), ax)).map(|t| vec![t])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_windows_follow_the_spec() {
        let w = window(
            &[20, 10, 5],
            &[20, 10, 4],
            &[0, 0, 1],
            Some(&[0, 1, 2]),
            Some(&[-1, -3, -2]),
        )
        .unwrap();
        assert_eq!(
            w,
            Window {
                start: vec![19, 9, 4],
                step: vec![-1, -3, -2],
                len: vec![19, 3, 2]
            }
        );
        let w = window(&[20, 10, 5], &[1000], &[1000], Some(&[1]), None).unwrap();
        assert_eq!(w.len, vec![20, 0, 5]);
        let w = window(&[20, 10, 5], &[0], &[-1], Some(&[1]), None).unwrap();
        assert_eq!(w.len, vec![20, 9, 5]);
        let w = window(&[4], &[-1], &[i64::MIN], None, Some(&[-1])).unwrap();
        assert_eq!((w.start[0], w.len[0]), (3, 4));
        assert!(window(&[4], &[0], &[1], None, Some(&[0])).is_err());
        assert!(window(&[4], &[0, 0], &[1, 1], None, None).is_err());
    }
}
