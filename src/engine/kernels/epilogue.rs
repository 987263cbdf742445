//! Fused epilogues: a chain of element-wise steps a producer (a convolution) applies to
//! its output while it is still in cache, instead of the separate ops that follow it in
//! the graph making a pass over memory each.
//!
//! Every step computes exactly what the op it replaces computes, with the same IEEE
//! operations in the same order (a BatchNormalization is `x · a + b` with the same
//! `a`, `b`; `Clip` is two compares; `Sigmoid` uses the engine's `exp_f32`; no FMA
//! contraction), so a fused plan gives the same bits as the unfused one on every ISA.
//! The loops are written once in portable Rust and compiled for the ISA in force
//! (`loops::wide_on`), where they vectorize.
//!
//! A chain runs on segments of the output that lie within one channel (`apply`): the
//! channel picks per-channel constants, the flat offset locates the same elements in
//! the element-wise inputs (`Operand::Tensor`, a residual) and in the values the
//! caller observes (`Step::Store`).

use std::cell::Cell;
use std::sync::Arc;

use super::isa::Isa;
use super::loops::wide_on;
use super::math::exp_f32;

/// What a binary step combines the running value with.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// One value for all elements.
    Scalar(f32),
    /// One value per channel (axis 1), broadcast over the rest.
    Channel(Arc<[f32]>),
    /// Element by element from element-wise input `k` of the fused op (same shape as
    /// the output).
    Tensor(usize),
    /// An earlier value of the chain, kept in slot `s` by `Step::Save`.
    Saved(usize),
}

/// A broadcasting arithmetic op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// One step of a chain, on the running value `x`.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `x op rhs`, or `rhs op x` when `swapped`.
    Binary {
        op: BinOp,
        rhs: Operand,
        swapped: bool,
    },
    /// BatchNormalization (inference): `x · a[c] + b[c]`, rounded after each operation.
    Affine { a: Arc<[f32]>, b: Arc<[f32]> },
    /// `x < 0 ? 0 : x` (NaN passes).
    Relu,
    /// `x < 0 ? x · alpha : x`.
    LeakyRelu { alpha: f32 },
    /// `x < lo ? lo : x`, then `> hi ? hi :` (NaN passes).
    Clip { lo: f32, hi: f32 },
    /// `clamp01(alpha · x + beta)`.
    HardSigmoid { alpha: f32, beta: f32 },
    /// `x · clamp01(x · (1/6) + 0.5)`.
    HardSwish,
    /// `1 / (1 + exp(−x))`.
    Sigmoid,
    /// Keep the running value in slot `s`.
    Save(usize),
    /// Write the running value to stored output `k` (a value the caller observes).
    Store(usize),
}

/// A chain of steps and the number of slots its `Save` steps use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chain {
    pub steps: Vec<Step>,
    pub slots: usize,
}

/// Where a chain reads element-wise inputs and writes stored values. Offsets passed to
/// `Chain::apply` index both.
pub struct ChainIo<'a> {
    /// Element-wise inputs (`Operand::Tensor(k)` reads `tensors[k]`).
    pub tensors: Vec<&'a [f32]>,
    /// Stored outputs (`Step::Store(k)` writes `stores[k]`).
    pub stores: Vec<StoreBuf<'a>>,
}

/// An output buffer written by many tasks, each at its own offsets.
pub struct StoreBuf<'a> {
    ptr: *mut f32,
    len: usize,
    _life: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `StoreBuf` is only written through `Chain::apply`, whose callers hand each
// task disjoint offset ranges.
unsafe impl Send for StoreBuf<'_> {}
// SAFETY: as for `Send`: shared only by tasks that write disjoint ranges.
unsafe impl Sync for StoreBuf<'_> {}

impl<'a> StoreBuf<'a> {
    pub fn new(buf: &'a mut [f32]) -> StoreBuf<'a> {
        StoreBuf {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _life: std::marker::PhantomData,
        }
    }
}

impl ChainIo<'_> {
    /// No element-wise inputs or stored outputs.
    pub fn none() -> ChainIo<'static> {
        ChainIo {
            tensors: Vec::new(),
            stores: Vec::new(),
        }
    }
}

thread_local! {
    static SLOTS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

impl Chain {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Number of element-wise inputs and of stored outputs the chain refers to.
    pub fn arity(&self) -> (usize, usize) {
        let (mut t, mut s) = (0, 0);
        for step in &self.steps {
            match step {
                Step::Binary {
                    rhs: Operand::Tensor(k),
                    ..
                } => t = t.max(k + 1),
                Step::Store(k) => s = s.max(k + 1),
                _ => {}
            }
        }
        (t, s)
    }

    /// Runs the chain on `data`, the elements at flat offsets `offset..offset + len` of
    /// the output, all in channel `channel`. Callers give concurrent calls disjoint
    /// offset ranges.
    ///
    /// # Panics
    /// If an operand or store index is out of range of `io`, or a range runs past a
    /// buffer (the fused op's own bugs, never input).
    pub fn apply(&self, isa: Isa, io: &ChainIo, channel: usize, offset: usize, data: &mut [f32]) {
        if self.steps.is_empty() || data.is_empty() {
            return;
        }
        let n = data.len();
        let mut slots = SLOTS.with(Cell::take);
        if slots.len() < self.slots * n {
            slots.resize(self.slots * n, 0.0);
        }
        wide_on(isa, || {
            run(&self.steps, io, channel, offset, data, &mut slots)
        });
        SLOTS.with(|s| s.set(slots));
    }
}

/// Clamps to [0, 1], keeping NaN (as the HardSigmoid and HardSwish ops do).
#[inline(always)]
fn unit_clamp(v: f32) -> f32 {
    let v = if v < 0.0 { 0.0 } else { v };
    if v > 1.0 { 1.0 } else { v }
}

#[cfg(test)]
fn bin(op: BinOp, a: f32, b: f32) -> f32 {
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
    }
}

/// `data[i] = f(data[i])`.
#[inline(always)]
fn each(data: &mut [f32], f: impl Fn(f32) -> f32) {
    for x in data.iter_mut() {
        *x = f(*x);
    }
}

/// `data[i] = f(data[i], other[i])`.
#[inline(always)]
fn zip(data: &mut [f32], other: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (x, &y) in data.iter_mut().zip(other) {
        *x = f(*x, y);
    }
}

/// A binary step with the right-hand side `other` (element-wise).
#[inline(always)]
fn binary_slice(op: BinOp, swapped: bool, data: &mut [f32], other: &[f32]) {
    // One loop per (op, order): the match stays outside the element loop.
    match (op, swapped) {
        (BinOp::Add, false) => zip(data, other, |x, y| x + y),
        (BinOp::Add, true) => zip(data, other, |x, y| y + x),
        (BinOp::Sub, false) => zip(data, other, |x, y| x - y),
        (BinOp::Sub, true) => zip(data, other, |x, y| y - x),
        (BinOp::Mul, false) => zip(data, other, |x, y| x * y),
        (BinOp::Mul, true) => zip(data, other, |x, y| y * x),
        (BinOp::Div, false) => zip(data, other, |x, y| x / y),
        (BinOp::Div, true) => zip(data, other, |x, y| y / x),
    }
}

/// A binary step with one right-hand value for all elements.
#[inline(always)]
fn binary_const(op: BinOp, swapped: bool, data: &mut [f32], c: f32) {
    match (op, swapped) {
        (BinOp::Add, false) => each(data, |x| x + c),
        (BinOp::Add, true) => each(data, |x| c + x),
        (BinOp::Sub, false) => each(data, |x| x - c),
        (BinOp::Sub, true) => each(data, |x| c - x),
        (BinOp::Mul, false) => each(data, |x| x * c),
        (BinOp::Mul, true) => each(data, |x| c * x),
        (BinOp::Div, false) => each(data, |x| x / c),
        (BinOp::Div, true) => each(data, |x| c / x),
    }
}

#[inline(always)]
fn run(steps: &[Step], io: &ChainIo, c: usize, offset: usize, data: &mut [f32], slots: &mut [f32]) {
    let n = data.len();
    for step in steps {
        match step {
            Step::Binary { op, rhs, swapped } => match rhs {
                Operand::Scalar(v) => binary_const(*op, *swapped, data, *v),
                Operand::Channel(v) => binary_const(*op, *swapped, data, v[c]),
                Operand::Tensor(k) => {
                    binary_slice(*op, *swapped, data, &io.tensors[*k][offset..offset + n])
                }
                Operand::Saved(s) => binary_slice(*op, *swapped, data, &slots[s * n..(s + 1) * n]),
            },
            Step::Affine { a, b } => {
                let (a, b) = (a[c], b[c]);
                each(data, |x| x * a + b);
            }
            Step::Relu => each(data, |x| if x < 0.0 { 0.0 } else { x }),
            Step::LeakyRelu { alpha } => {
                let alpha = *alpha;
                each(data, |x| if x < 0.0 { x * alpha } else { x });
            }
            Step::Clip { lo, hi } => {
                let (lo, hi) = (*lo, *hi);
                each(data, |x| {
                    let x = if x < lo { lo } else { x };
                    if x > hi { hi } else { x }
                });
            }
            Step::HardSigmoid { alpha, beta } => {
                let (alpha, beta) = (*alpha, *beta);
                each(data, |x| unit_clamp(alpha * x + beta));
            }
            Step::HardSwish => {
                let sixth = 1.0f32 / 6.0;
                each(data, |x| x * unit_clamp(x * sixth + 0.5));
            }
            Step::Sigmoid => each(data, |x| 1.0 / (1.0 + exp_f32(-x))),
            Step::Save(s) => slots[s * n..(s + 1) * n].copy_from_slice(data),
            Step::Store(k) => {
                let buf = &io.stores[*k];
                assert!(offset + n <= buf.len, "stored output too small");
                // SAFETY: inside the buffer (asserted); callers give concurrent calls
                // disjoint offset ranges, so nothing else touches these elements.
                let dst = unsafe { std::slice::from_raw_parts_mut(buf.ptr.add(offset), n) };
                dst.copy_from_slice(data);
            }
        }
    }
}

impl Operand {
    /// A constant of shape `shape` as an operand against a running value of shape
    /// `out` (`[N, C, ...]`): one value, or one per channel; `None` when it would
    /// broadcast the running value to another shape or vary along another axis.
    pub fn from_const(shape: &[usize], values: &[f32], out: &[usize]) -> Option<Operand> {
        let numel: usize = shape.iter().product();
        if numel != values.len() || shape.len() > out.len() {
            return None;
        }
        if numel == 1 {
            return Some(Operand::Scalar(values[0]));
        }
        // Right-aligned, the constant must be 1 everywhere but on the channel axis.
        let pad = out.len() - shape.len();
        let channel_only = shape.iter().enumerate().all(|(i, &d)| {
            let axis = pad + i;
            d == 1 || (axis == 1 && d == out[1])
        });
        (channel_only && out.len() >= 2).then(|| Operand::Channel(values.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each step on its own, element by element, as the separate op would compute it.
    fn by_hand(step: &Step, x: f32, c: usize, t: f32, saved: f32) -> f32 {
        let rhs = |o: &Operand| match o {
            Operand::Scalar(v) => *v,
            Operand::Channel(v) => v[c],
            Operand::Tensor(_) => t,
            Operand::Saved(_) => saved,
        };
        match step {
            Step::Binary {
                op,
                rhs: o,
                swapped,
            } => {
                let y = rhs(o);
                if *swapped {
                    bin(*op, y, x)
                } else {
                    bin(*op, x, y)
                }
            }
            Step::Affine { a, b } => x * a[c] + b[c],
            Step::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Step::LeakyRelu { alpha } => {
                if x < 0.0 {
                    x * alpha
                } else {
                    x
                }
            }
            Step::Clip { lo, hi } => {
                let x = if x < *lo { *lo } else { x };
                if x > *hi { *hi } else { x }
            }
            Step::HardSigmoid { alpha, beta } => unit_clamp(alpha * x + beta),
            Step::HardSwish => x * unit_clamp(x * (1.0 / 6.0) + 0.5),
            Step::Sigmoid => 1.0 / (1.0 + exp_f32(-x)),
            Step::Save(_) | Step::Store(_) => x,
        }
    }

    #[test]
    fn every_step_matches_the_op_bit_for_bit_on_every_isa() {
        let ch: Arc<[f32]> = vec![0.5, -1.25, 3.0].into();
        let steps = [
            Step::Binary {
                op: BinOp::Add,
                rhs: Operand::Scalar(3.0),
                swapped: false,
            },
            Step::Binary {
                op: BinOp::Sub,
                rhs: Operand::Channel(ch.clone()),
                swapped: true,
            },
            Step::Binary {
                op: BinOp::Div,
                rhs: Operand::Scalar(6.0),
                swapped: false,
            },
            Step::Binary {
                op: BinOp::Mul,
                rhs: Operand::Tensor(0),
                swapped: false,
            },
            Step::Binary {
                op: BinOp::Div,
                rhs: Operand::Tensor(0),
                swapped: true,
            },
            Step::Affine {
                a: ch.clone(),
                b: vec![0.1, 0.2, -0.3].into(),
            },
            Step::Relu,
            Step::LeakyRelu { alpha: 0.1 },
            Step::Clip { lo: -1.0, hi: 6.0 },
            Step::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Step::HardSwish,
            Step::Sigmoid,
        ];
        // Awkward lengths: empty tail, one element, a vector and a bit, odd.
        for n in [1usize, 15, 16, 17, 33, 100] {
            let mut x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7331).sin() * 9.0).collect();
            x[n / 2] = f32::NAN;
            x[n - 1] = -0.0;
            let t: Vec<f32> = (0..n + 5)
                .map(|i| (i as f32 * 0.31).cos() * 4.0 + 0.01)
                .collect();
            for step in &steps {
                for isa in Isa::supported() {
                    for c in 0..3 {
                        let mut got = x.clone();
                        let chain = Chain {
                            steps: vec![step.clone()],
                            slots: 0,
                        };
                        let io = ChainIo {
                            tensors: vec![&t],
                            stores: vec![],
                        };
                        chain.apply(isa, &io, c, 5, &mut got);
                        for i in 0..n {
                            let want = by_hand(step, x[i], c, t[5 + i], 0.0);
                            assert!(
                                got[i].to_bits() == want.to_bits()
                                    || (got[i].is_nan() && want.is_nan()),
                                "{isa} {step:?} n{n} [{i}]: {} vs {want}",
                                got[i]
                            );
                        }
                    }
                }
            }
        }
    }

    // The ops clamp with compares (NaN passes), not `clamp`.
    #[allow(clippy::manual_clamp)]
    #[test]
    fn saved_values_and_stores_follow_the_chain() {
        // HardSwish written out as ONNX graphs do: x * clip(x + 3, 0, 6) / 6, with the
        // convolution output x also stored.
        let chain = Chain {
            steps: vec![
                Step::Store(0),
                Step::Save(0),
                Step::Binary {
                    op: BinOp::Add,
                    rhs: Operand::Scalar(3.0),
                    swapped: false,
                },
                Step::Clip { lo: 0.0, hi: 6.0 },
                Step::Binary {
                    op: BinOp::Mul,
                    rhs: Operand::Saved(0),
                    swapped: true,
                },
                Step::Binary {
                    op: BinOp::Div,
                    rhs: Operand::Scalar(6.0),
                    swapped: false,
                },
            ],
            slots: 1,
        };
        assert_eq!(chain.arity(), (0, 1));
        let x: Vec<f32> = (0..37).map(|i| i as f32 * 0.37 - 5.0).collect();
        for isa in Isa::supported() {
            let mut stored = vec![f32::NAN; 40];
            let mut got = x.clone();
            let io = ChainIo {
                tensors: vec![],
                stores: vec![StoreBuf::new(&mut stored)],
            };
            chain.apply(isa, &io, 0, 2, &mut got);
            drop(io);
            for i in 0..x.len() {
                let v = x[i];
                let t = v + 3.0;
                let want =
                    v * (if t < 0.0 {
                        0.0
                    } else if t > 6.0 {
                        6.0
                    } else {
                        t
                    }) / 6.0;
                assert_eq!(got[i].to_bits(), want.to_bits(), "{isa} [{i}]");
                assert_eq!(stored[2 + i].to_bits(), v.to_bits());
            }
            assert!(stored[0].is_nan() && stored[1].is_nan() && stored[39].is_nan());
        }
    }

    #[test]
    fn constants_become_scalars_or_channels_only() {
        let out = [1, 3, 4, 5];
        assert_eq!(
            Operand::from_const(&[], &[2.0], &out),
            Some(Operand::Scalar(2.0))
        );
        assert_eq!(
            Operand::from_const(&[1, 1, 1, 1], &[2.0], &out),
            Some(Operand::Scalar(2.0))
        );
        let ch = Some(Operand::Channel(vec![1.0, 2.0, 3.0].into()));
        assert_eq!(Operand::from_const(&[3, 1, 1], &[1.0, 2.0, 3.0], &out), ch);
        assert_eq!(
            Operand::from_const(&[1, 3, 1, 1], &[1.0, 2.0, 3.0], &out),
            ch
        );
        assert_eq!(Operand::from_const(&[5], &[0.0; 5], &out), None);
        assert_eq!(Operand::from_const(&[3], &[0.0; 3], &out), None);
        assert_eq!(Operand::from_const(&[2, 3, 1, 1], &[0.0; 6], &out), None);
    }
}
