//! The cells of the recurrent ops: one time step of one batch row, given the input
//! projection and the recurrent product of the step.
//!
//! Gate order is ONNX's: RNN `i`; GRU `z, r, h`; LSTM `i, o, f, c` (peepholes `i, o, f`).

use ndarray::{Array2, ArrayView2, s};

use super::activation::Act;

/// Which recurrent op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    Rnn,
    /// `lbr`: `linear_before_reset` (the reset gate multiplies `H·Rhᵀ + Rbh`).
    Gru {
        lbr: bool,
    },
    /// `input_forget`: the forget gate is `1 − i` (coupled), as ONNX Runtime computes it.
    Lstm {
        input_forget: bool,
    },
}

impl CellKind {
    /// Gates per hidden unit.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn => 1,
            CellKind::Gru { .. } => 3,
            CellKind::Lstm { .. } => 4,
        }
    }

    /// Activation functions per direction.
    pub fn activations(self) -> usize {
        match self {
            CellKind::Rnn => 1,
            CellKind::Gru { .. } => 2,
            CellKind::Lstm { .. } => 3,
        }
    }

    /// The default activation functions of one direction.
    pub fn default_activations(self) -> &'static [&'static str] {
        match self {
            CellKind::Rnn => &["Tanh"],
            CellKind::Gru { .. } => &["Sigmoid", "Tanh"],
            CellKind::Lstm { .. } => &["Sigmoid", "Tanh", "Tanh"],
        }
    }
}

/// What one direction's cell needs.
#[derive(Debug)]
pub struct Params<'a> {
    pub kind: CellKind,
    pub hidden: usize,
    /// `kind.activations()` functions: f (, g (, h)).
    pub acts: &'a [Act],
    pub clip: Option<f32>,
    /// This direction's `B` row: Wb then Rb, `2·gates·hidden` values.
    pub bias: Option<Vec<f32>>,
    /// This direction's peepholes (LSTM): `3·hidden` values.
    pub peep: Option<Vec<f32>>,
}

impl Params<'_> {
    /// The bias added to every step's input projection: `Wb + Rb`, except GRU's `Rbh`
    /// with `linear_before_reset`, which the reset gate multiplies.
    pub fn fixed_bias(&self) -> Vec<f32> {
        let gh = self.kind.gates() * self.hidden;
        let Some(b) = &self.bias else {
            return vec![0.0; gh];
        };
        let mut v: Vec<f32> = (0..gh).map(|k| b[k] + b[gh + k]).collect();
        if self.kind == (CellKind::Gru { lbr: true }) {
            let h = self.hidden;
            for k in 2 * h..3 * h {
                v[k] = b[k];
            }
        }
        v
    }

    /// `H·Rᵀ` for every batch row: all gates, or GRU's `z, r` only without
    /// `linear_before_reset` (its `h` gate needs the reset state first: `step`).
    pub fn recurrent_product(&self, h: &Array2<f32>, r: ArrayView2<f32>) -> Array2<f32> {
        match self.kind {
            CellKind::Gru { lbr: false } => h.dot(&r.slice(s![..2 * self.hidden, ..]).t()),
            _ => h.dot(&r.t()),
        }
    }

    #[inline]
    fn clip(&self, x: f32) -> f32 {
        match self.clip {
            Some(c) => x.clamp(-c, c),
            None => x,
        }
    }

    /// One step of one row: `x` is the input projection (bias included), `hr` the
    /// recurrent product row; `h` (and `c`) hold the previous state and receive the new.
    pub fn step(
        &self,
        x: &[f32],
        hr: &[f32],
        r: ArrayView2<f32>,
        h: &mut [f32],
        c: Option<&mut [f32]>,
    ) {
        match self.kind {
            CellKind::Rnn => {
                for k in 0..self.hidden {
                    h[k] = self.acts[0].apply(self.clip(x[k] + hr[k]));
                }
            }
            CellKind::Gru { lbr } => self.gru(x, hr, r, lbr, h),
            CellKind::Lstm { input_forget } => {
                if let Some(c) = c {
                    self.lstm(x, hr, input_forget, h, c)
                }
            }
        }
    }

    fn gru(&self, x: &[f32], hr: &[f32], r: ArrayView2<f32>, lbr: bool, h: &mut [f32]) {
        let n = self.hidden;
        let (f, g) = (self.acts[0], self.acts[1]);
        let z: Vec<f32> = (0..n).map(|k| f.apply(self.clip(x[k] + hr[k]))).collect();
        let rg: Vec<f32> = (0..n)
            .map(|k| f.apply(self.clip(x[n + k] + hr[n + k])))
            .collect();
        let cand: Vec<f32> = if lbr {
            let rbh = self.bias.as_ref().map(|b| &b[5 * n..6 * n]);
            (0..n)
                .map(|k| {
                    let rec = hr[2 * n + k] + rbh.map_or(0.0, |b| b[k]);
                    g.apply(self.clip(x[2 * n + k] + rg[k] * rec))
                })
                .collect()
        } else {
            let rh = r.slice(s![2 * n..3 * n, ..]);
            (0..n)
                .map(|k| {
                    let row = rh.row(k);
                    let rec: f32 = (0..n).map(|j| rg[j] * h[j] * row[j]).sum();
                    g.apply(self.clip(x[2 * n + k] + rec))
                })
                .collect()
        };
        for k in 0..n {
            h[k] = (1.0 - z[k]) * cand[k] + z[k] * h[k];
        }
    }

    fn lstm(&self, x: &[f32], hr: &[f32], input_forget: bool, h: &mut [f32], c: &mut [f32]) {
        let n = self.hidden;
        let (f, g, hh) = (self.acts[0], self.acts[1], self.acts[2]);
        let p = |gate: usize, k: usize| self.peep.as_ref().map_or(0.0, |p| p[gate * n + k]);
        for k in 0..n {
            let pre = |gate: usize| x[gate * n + k] + hr[gate * n + k];
            let i = f.apply(self.clip(pre(0) + p(0, k) * c[k]));
            let fg = if input_forget {
                1.0 - i
            } else {
                f.apply(self.clip(pre(2) + p(2, k) * c[k]))
            };
            let cand = g.apply(self.clip(pre(3)));
            let cn = fg * c[k] + i * cand;
            let o = f.apply(self.clip(pre(1) + p(1, k) * cn));
            c[k] = cn;
            h[k] = o * hh.apply(cn);
        }
    }
}
