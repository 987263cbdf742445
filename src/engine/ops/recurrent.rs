//! Operators: recurrent family. `RNN`, `GRU` and `LSTM` (every opset: `layout` from 14),
//! with every direction, activation, `clip`, `sequence_lens`, initial states, peepholes,
//! `input_forget` and `linear_before_reset`.
//!
//! One driver (`run_direction`) runs a direction of any of the three: the input
//! projection `X·Wᵀ + Wb` of every time step is one matrix product, then per step the
//! recurrent product `H·Rᵀ` for the whole batch, then the cell (`cells`) per batch row.
//! A row whose sequence has ended keeps its state and writes zeros to `Y`. The
//! quantizer never quantizes these ops: they always compute in float32.

mod activation;
mod cells;

use ndarray::{Array2, Array3, ArrayD, ArrayView2, Axis, IxDyn, s};

use super::{BuildCtx, BuildFn, Op, OpError, OpResult, bad_dtype, input_f32};
use crate::ir::{DType, Facts, Tensor};
use activation::Act;
pub(crate) use cells::CellKind;

/// The op types of this family and their builders.
pub const OPS: &[(&str, BuildFn)] = &[
    ("RNN", |c| build(c, CellKind::Rnn)),
    ("GRU", |c| {
        let lbr = c.int_or("linear_before_reset", 0)? != 0;
        build(c, CellKind::Gru { lbr })
    }),
    ("LSTM", |c| {
        let input_forget = c.int_or("input_forget", 0)? != 0;
        build(c, CellKind::Lstm { input_forget })
    }),
];

/// A compiled recurrent op.
#[derive(Debug)]
struct Recurrent {
    kind: CellKind,
    /// `hidden_size`, when the node states it (otherwise taken from `R`).
    hidden: Option<usize>,
    /// Per direction: whether it runs backwards in time.
    reverse: Vec<bool>,
    /// Per direction: `kind.activations()` functions.
    acts: Vec<Vec<Act>>,
    clip: Option<f32>,
    /// `layout = 1`: batch first (`X` is [batch, seq, input]).
    batch_first: bool,
    /// Declared outputs (Y, Y_h and, for LSTM, Y_c).
    outputs: usize,
}

fn build(c: &BuildCtx, kind: CellKind) -> OpResult<Box<dyn Op>> {
    let dir = c.choice(
        "direction",
        "forward",
        &["forward", "reverse", "bidirectional"],
    )?;
    let reverse = match dir.as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        _ => vec![false, true],
    };
    let hidden = match c.int("hidden_size")? {
        Some(h) if h > 0 => Some(h as usize),
        Some(h) => return Err(c_attr("hidden_size", format!("{h} is not positive"))),
        None => None,
    };
    let names: Vec<String> = match c.attr("activations") {
        Some(crate::ir::Attr::Strings(v)) => v.clone(),
        Some(_) => return Err(c_attr("activations", "expected a list of strings".into())),
        None => kind
            .default_activations()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let per = kind.activations();
    let n = per * reverse.len();
    // A single direction's list given for a bidirectional op is used for both.
    let names = if names.len() == per && n == 2 * per {
        names.iter().chain(names.iter()).cloned().collect()
    } else {
        names
    };
    if names.len() != n {
        return Err(c_attr(
            "activations",
            format!("{} given, the op needs {n}", names.len()),
        ));
    }
    let alphas = c.floats("activation_alpha")?.unwrap_or_default();
    let betas = c.floats("activation_beta")?.unwrap_or_default();
    let all =
        activation::parse_all(&names, &alphas, &betas).map_err(|m| c_attr("activations", m))?;
    let acts = all.chunks(per).map(<[Act]>::to_vec).collect();
    let clip = match c.float("clip")? {
        Some(v) if v > 0.0 => Some(v),
        Some(v) => return Err(c_attr("clip", format!("{v} is not positive"))),
        None => None,
    };
    let batch_first = c.opset >= 14 && c.int_or("layout", 0)? != 0;
    Ok(Box::new(Recurrent {
        kind,
        hidden,
        reverse,
        acts,
        clip,
        batch_first,
        outputs: c.node.outputs.len(),
    }))
}

fn c_attr(name: &str, msg: String) -> OpError {
    OpError::Attr {
        name: name.into(),
        msg,
    }
}

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
}

impl Recurrent {
    /// Sizes from the shapes of X, W and R; checks W and R.
    fn dims(&self, x: &[usize], w: &[usize], r: Option<&[usize]>) -> OpResult<Dims> {
        let bad = |i: usize, msg: String| OpError::Input { index: i, msg };
        if x.len() != 3 {
            return Err(bad(0, format!("X must have rank 3, has shape {x:?}")));
        }
        let (seq, batch) = if self.batch_first {
            (x[1], x[0])
        } else {
            (x[0], x[1])
        };
        let dirs = self.reverse.len();
        let g = self.kind.gates();
        let hidden = match (self.hidden, r) {
            (Some(h), _) => h,
            (None, Some(r)) if r.len() == 3 => r[2],
            _ => return Err(bad(2, "hidden_size is not given and R has no shape".into())),
        };
        let want_w = [dirs, g * hidden, x[2]];
        if w != want_w {
            return Err(bad(1, format!("W has shape {w:?}, expected {want_w:?}")));
        }
        if let Some(r) = r
            && r != [dirs, g * hidden, hidden]
        {
            let want = [dirs, g * hidden, hidden];
            return Err(bad(2, format!("R has shape {r:?}, expected {want:?}")));
        }
        Ok(Dims {
            seq,
            batch,
            input: x[2],
            hidden,
            dirs,
        })
    }

    /// Shape of `Y` and of the final states.
    fn out_shapes(&self, d: Dims) -> (Vec<usize>, Vec<usize>) {
        if self.batch_first {
            (
                vec![d.batch, d.seq, d.dirs, d.hidden],
                vec![d.batch, d.dirs, d.hidden],
            )
        } else {
            (
                vec![d.seq, d.dirs, d.batch, d.hidden],
                vec![d.dirs, d.batch, d.hidden],
            )
        }
    }

    /// An optional state input (`initial_h`, `initial_c`) as [dirs, batch, hidden].
    fn state_input(&self, t: Option<&Tensor>, idx: usize, d: Dims) -> OpResult<Array3<f32>> {
        let Some(t) = t else {
            return Ok(Array3::zeros((d.dirs, d.batch, d.hidden)));
        };
        let a = t
            .as_f32()
            .ok_or_else(|| bad_dtype(idx, t.dtype(), "float32"))?;
        let (_, want) = self.out_shapes(d);
        if a.shape() != want.as_slice() {
            return Err(OpError::Input {
                index: idx,
                msg: format!("shape {:?}, expected {want:?}", a.shape()),
            });
        }
        let a = a
            .view()
            .into_dimensionality::<ndarray::Ix3>()
            .expect("rank 3");
        Ok(if self.batch_first {
            a.permuted_axes([1, 0, 2]).to_owned()
        } else {
            a.to_owned()
        })
    }
}

/// Per batch row: the number of valid time steps (`sequence_lens`, or all of them).
fn sequence_lens(t: Option<&Tensor>, d: Dims) -> OpResult<Vec<usize>> {
    let Some(t) = t else {
        return Ok(vec![d.seq; d.batch]);
    };
    let v = match t.dtype() {
        DType::I32 | DType::I64 => t.to_i64_vec().unwrap_or_default(),
        other => return Err(bad_dtype(4, other, "int32")),
    };
    if v.len() != d.batch {
        return Err(OpError::Input {
            index: 4,
            msg: format!("{} lengths for a batch of {}", v.len(), d.batch),
        });
    }
    v.iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l <= d.seq)
                .ok_or_else(|| OpError::Input {
                    index: 4,
                    msg: format!("length {l} is outside 0..={}", d.seq),
                })
        })
        .collect()
}

impl Op for Recurrent {
    fn infer(&self, inputs: &[Option<&Facts>]) -> OpResult<Vec<Facts>> {
        let x = super::facts(inputs, 0)?;
        let w = super::facts(inputs, 1)?;
        let r = super::facts(inputs, 2)?;
        for (i, f) in [(0, x), (1, w), (2, r)] {
            if let Some(dt) = f.dtype
                && dt != DType::F32
            {
                return Err(bad_dtype(i, dt, "float32"));
            }
        }
        let shapes = match (&x.shape, &w.shape) {
            (Some(xs), Some(ws)) => {
                let d = self.dims(xs, ws, r.shape.as_deref())?;
                let (y, h) = self.out_shapes(d);
                Some((y, h))
            }
            _ => None,
        };
        Ok((0..self.outputs)
            .map(|k| {
                let shape = shapes
                    .as_ref()
                    .map(|(y, h)| if k == 0 { y.clone() } else { h.clone() });
                Facts {
                    dtype: Some(DType::F32),
                    shape,
                    value: None,
                }
            })
            .collect())
    }

    fn run(&self, inputs: &[Option<&Tensor>]) -> OpResult<Vec<Tensor>> {
        let x = input_f32(inputs, 0)?;
        let w = input_f32(inputs, 1)?;
        let r = input_f32(inputs, 2)?;
        let d = self.dims(x.shape(), w.shape(), Some(r.shape()))?;
        let g = self.kind.gates();
        let get = |i: usize| inputs.get(i).copied().flatten();
        let bias = match get(3) {
            Some(t) => {
                let b = t
                    .as_f32()
                    .ok_or_else(|| bad_dtype(3, t.dtype(), "float32"))?;
                if b.shape() != [d.dirs, 2 * g * d.hidden] {
                    return Err(OpError::Input {
                        index: 3,
                        msg: format!("B has shape {:?}", b.shape()),
                    });
                }
                Some(b)
            }
            None => None,
        };
        let lens = sequence_lens(get(4), d)?;
        let h0 = self.state_input(get(5), 5, d)?;
        let c0 = match self.kind {
            CellKind::Lstm { .. } => Some(self.state_input(get(6), 6, d)?),
            _ => None,
        };
        let peep = match (self.kind, get(7)) {
            (CellKind::Lstm { .. }, Some(t)) => {
                let p = t
                    .as_f32()
                    .ok_or_else(|| bad_dtype(7, t.dtype(), "float32"))?;
                if p.shape() != [d.dirs, 3 * d.hidden] {
                    return Err(OpError::Input {
                        index: 7,
                        msg: format!("P has shape {:?}", p.shape()),
                    });
                }
                Some(p)
            }
            _ => None,
        };
        // X as [seq, batch, input], row-major.
        let x3 = x
            .view()
            .into_dimensionality::<ndarray::Ix3>()
            .expect("rank 3");
        let x3 = if self.batch_first {
            x3.permuted_axes([1, 0, 2])
        } else {
            x3
        };
        let x2 = x3
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((d.seq * d.batch, d.input))
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        let mut y = ArrayD::<f32>::zeros(IxDyn(&[d.seq, d.dirs, d.batch, d.hidden]));
        let mut hn = Array3::<f32>::zeros((d.dirs, d.batch, d.hidden));
        let mut cn = Array3::<f32>::zeros((d.dirs, d.batch, d.hidden));
        for dir in 0..d.dirs {
            let wd = w.index_axis(Axis(0), dir);
            let rd = r.index_axis(Axis(0), dir);
            let wd = wd.into_dimensionality::<ndarray::Ix2>().expect("rank 2");
            let rd = rd.into_dimensionality::<ndarray::Ix2>().expect("rank 2");
            let params = cells::Params {
                kind: self.kind,
                hidden: d.hidden,
                acts: &self.acts[dir],
                clip: self.clip,
                bias: bias.map(|b| {
                    b.index_axis(Axis(0), dir)
                        .to_owned()
                        .into_raw_vec_and_offset()
                        .0
                }),
                peep: peep.map(|p| {
                    p.index_axis(Axis(0), dir)
                        .to_owned()
                        .into_raw_vec_and_offset()
                        .0
                }),
            };
            let mut h = h0.index_axis(Axis(0), dir).to_owned();
            let mut c = c0.as_ref().map(|c0| c0.index_axis(Axis(0), dir).to_owned());
            let xw = project(&x2, wd, &params);
            let mut ydir = y.slice_mut(s![.., dir, .., ..]);
            run_direction(
                &params,
                &xw,
                rd,
                &lens,
                self.reverse[dir],
                (&mut h, c.as_mut()),
                |t, b, row| ydir.slice_mut(s![t, b, ..]).assign(&ndarray::aview1(row)),
            );
            hn.index_axis_mut(Axis(0), dir).assign(&h);
            if let Some(c) = c {
                cn.index_axis_mut(Axis(0), dir).assign(&c);
            }
        }
        let (y, hn, cn) = if self.batch_first {
            (
                y.permuted_axes(IxDyn(&[2, 0, 1, 3]))
                    .as_standard_layout()
                    .into_owned(),
                hn.permuted_axes([1, 0, 2])
                    .as_standard_layout()
                    .into_owned(),
                cn.permuted_axes([1, 0, 2])
                    .as_standard_layout()
                    .into_owned(),
            )
        } else {
            (y, hn, cn)
        };
        let mut out = vec![Tensor::F32(y), Tensor::F32(hn.into_dyn())];
        if matches!(self.kind, CellKind::Lstm { .. }) {
            out.push(Tensor::F32(cn.into_dyn()));
        }
        out.truncate(self.outputs.max(1));
        Ok(out)
    }
}

/// `X·Wᵀ` plus the input-side bias every step sees, as [seq·batch, gates·hidden].
fn project(x2: &Array2<f32>, w: ArrayView2<f32>, p: &cells::Params) -> Array2<f32> {
    let mut xw = x2.dot(&w.t());
    let fixed = p.fixed_bias();
    for mut row in xw.rows_mut() {
        for (v, b) in row.iter_mut().zip(&fixed) {
            *v += b;
        }
    }
    xw
}

/// Runs one direction over every time step; `emit(t, b, h)` receives each valid step's
/// hidden state of batch row `b` at time `t`. `state` holds H (and C) on entry and exit.
fn run_direction(
    p: &cells::Params,
    xw: &Array2<f32>,
    r: ArrayView2<f32>,
    lens: &[usize],
    reverse: bool,
    state: (&mut Array2<f32>, Option<&mut Array2<f32>>),
    mut emit: impl FnMut(usize, usize, &[f32]),
) {
    let (h, mut c) = state;
    let batch = lens.len();
    let seq = lens.iter().copied().max().unwrap_or(0);
    let gh = p.kind.gates() * p.hidden;
    for step in 0..seq {
        let hr = p.recurrent_product(h, r);
        for b in 0..batch {
            if step >= lens[b] {
                continue;
            }
            let t = if reverse { lens[b] - 1 - step } else { step };
            let row = t * batch + b;
            let xrow = &xw.as_slice().expect("standard layout")[row * gh..(row + 1) * gh];
            let hrow = h.row_mut(b).into_slice().expect("standard layout");
            let crow = c
                .as_deref_mut()
                .map(|c| c.row_mut(b).into_slice().expect("standard layout"));
            p.step(xrow, hr.row(b).as_slice().expect("row"), r, hrow, crow);
            emit(t, b, h.row(b).as_slice().expect("row"));
        }
    }
}
