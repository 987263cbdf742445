//! Plan-time choice of integer kernels for quantized layers (`QTUNE_INT8`): a Conv whose
//! input is the output of a per-tensor `DequantizeLinear` (u8 or s8) and whose weight is
//! a `DequantizeLinear` of int8 constants (per tensor or per output channel, zero point
//! 0) runs as `ops::conv::int8::IntConv`, reading the same inputs and producing the same
//! float output as the fake-quant path up to float rounding. Everything else stays float.

use crate::engine::kernels::Isa;
use crate::engine::kernels::qgemm::QKernel;
use crate::engine::ops::BuildCtx;
use crate::engine::ops::conv::int8::{QuantConv, build};
use crate::ir::{Attr, DType, Graph, Node, Tensor, ValueId};

use super::Plan;

/// Whether quantized layers run on integer kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Int8Mode {
    /// The float fake-quant path (Q/DQ then the float kernel): the reference, and the
    /// default, because it computes what ONNX Runtime computes on the exported model.
    /// The integer path's sums round differently, which flips the next layer's
    /// quantization on values at a rounding boundary — as much as the float path's own
    /// summation order does across ISAs (README "The engine") — and it is not faster
    /// yet: it stays opt-in.
    #[default]
    Float,
    /// Integer kernels on every ISA (the portable kernel on `scalar`).
    Int,
    /// Integer kernels where the plan's ISA has the 8-bit dot-product instructions
    /// (AVX512-VNNI, AVX-VNNI), float elsewhere.
    Auto,
}

/// The environment variable that chooses the mode: `float` (default), `int` or `auto`.
pub const INT8_ENV: &str = "QTUNE_INT8";

impl Int8Mode {
    /// Parses a `QTUNE_INT8` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Int8Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "float" => Some(Int8Mode::Float),
            "int" => Some(Int8Mode::Int),
            "auto" => Some(Int8Mode::Auto),
            "" => Some(Int8Mode::Float),
            _ => None,
        }
    }

    /// `QTUNE_INT8` when set and valid, else `Float`.
    pub fn from_env() -> Int8Mode {
        std::env::var(INT8_ENV)
            .ok()
            .and_then(|v| Int8Mode::parse(&v))
            .unwrap_or_default()
    }

    /// The integer kernel for a plan on `isa`, or `None` for the float path.
    pub fn kernel(self, isa: Isa) -> Option<QKernel> {
        match self {
            Int8Mode::Float => None,
            Int8Mode::Int => Some(QKernel::for_isa(isa)),
            Int8Mode::Auto => Some(QKernel::for_isa(isa)).filter(|k| k.is_vnni()),
        }
    }
}

/// The graph node producing `v`, if any.
fn producer<'g>(graph: &'g Graph, producers: &[Option<usize>], v: ValueId) -> Option<&'g Node> {
    producers
        .get(v.0)
        .copied()
        .flatten()
        .map(|i| &graph.nodes[i])
}

impl Plan {
    /// Replaces the op of every Conv step that matches the pattern by the integer Conv on
    /// `kernel`; returns the names of the steps replaced.
    pub(super) fn fuse_int8(&mut self, graph: &Graph, kernel: QKernel) -> Vec<String> {
        let mut producers = vec![None; graph.values.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            for o in n.outputs.iter().flatten() {
                producers[o.0] = Some(i);
            }
        }
        let mut done = Vec::new();
        for i in 0..self.steps.len() {
            if self.steps[i].op_type != "Conv" {
                continue;
            }
            let node = &graph.nodes[self.steps[i].node.0];
            let Some(op) = self.int_conv(graph, &producers, node, kernel) else {
                continue;
            };
            self.steps[i].op = op;
            done.push(self.steps[i].name.clone());
        }
        done
    }

    fn constant(&self, v: Option<ValueId>) -> Option<&Tensor> {
        v.and_then(|v| self.constants.get(v.0)?.as_deref())
    }

    fn int_conv(
        &self,
        graph: &Graph,
        producers: &[Option<usize>],
        conv: &Node,
        kernel: QKernel,
    ) -> Option<Box<dyn crate::engine::ops::Op>> {
        // The input: a per-tensor DequantizeLinear of u8 or s8.
        let dx = producer(graph, producers, conv.input(0)?)?;
        if dx.op_type != "DequantizeLinear" {
            return None;
        }
        let x_signed = match self.facts.get(dx.input(0)?.0)?.dtype? {
            DType::U8 => false,
            DType::I8 => true,
            _ => return None,
        };
        let x_scale = scalar_f32(self.constant(dx.input(1))?)?;
        let x_zero = match dx.input(2) {
            None => 0,
            Some(z) => match self.constant(Some(z))? {
                Tensor::U8(a) if a.len() == 1 => *a.iter().next()? as i32,
                Tensor::I8(a) if a.len() == 1 => *a.iter().next()? as i32,
                _ => return None,
            },
        };
        // The weight: a DequantizeLinear of int8 constants, zero point 0, axis 0.
        let dw = producer(graph, producers, conv.input(1)?)?;
        if dw.op_type != "DequantizeLinear" {
            return None;
        }
        let Tensor::I8(w) = self.constant(dw.input(0))? else {
            return None;
        };
        let Tensor::F32(ws) = self.constant(dw.input(1))? else {
            return None;
        };
        if let Some(z) = dw.input(2) {
            match self.constant(Some(z))? {
                Tensor::I8(a) if a.iter().all(|&v| v == 0) => {}
                _ => return None,
            }
        }
        let axis = match dw.attrs.get("axis") {
            None => 1,
            Some(Attr::Int(a)) => *a,
            Some(_) => return None,
        };
        if ws.len() > 1 && axis != 0 && axis != -(w.ndim() as i64) {
            return None;
        }
        let bias = match conv.input(2) {
            None => None,
            Some(_) => match self.constant(conv.input(2))? {
                Tensor::F32(b) => Some(b.iter().copied().collect()),
                _ => return None,
            },
        };
        let w_data: Vec<i8> = w.iter().copied().collect();
        let w_scales: Vec<f32> = ws.iter().copied().collect();
        let ctx = BuildCtx {
            node: conv,
            opset: graph.opset,
            consts: Vec::new(),
        };
        let q = QuantConv {
            x_scale,
            x_zero,
            x_signed,
            w: &w_data,
            w_shape: w.shape(),
            w_scales: &w_scales,
            bias,
        };
        build(&ctx, q, kernel).ok().flatten()
    }
}

fn scalar_f32(t: &Tensor) -> Option<f32> {
    match t {
        Tensor::F32(a) if a.len() == 1 => a.iter().next().copied(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::PlanOptions;
    use super::*;
    use crate::ir::Dim;
    use ndarray::{ArrayD, IxDyn};

    /// x → Q → DQ → Conv(·, DQ(w), b): 3×3, stride 2, pads 1, `group` groups, 6 input
    /// channels of 9×11, 4 outputs; activations int8 (`signed`) or uint8 with a zero point.
    fn quantized_conv(signed: bool, group: i64) -> Graph {
        let mut g = Graph {
            opset: 13,
            ..Graph::default()
        };
        let x = g.add_value("x", Some(DType::F32));
        g.values[x.0].shape = Some([1, 6, 9, 11].map(Dim::Fixed).to_vec());
        let s = g.add_constant("s", Tensor::scalar_f32(0.0173));
        let z = g.add_constant(
            "z",
            if signed {
                Tensor::I8(ArrayD::from_elem(IxDyn(&[]), 0))
            } else {
                Tensor::U8(ArrayD::from_elem(IxDyn(&[]), 97))
            },
        );
        let cg = 6 / group as usize;
        let wq: Vec<i8> = (0..4 * cg * 9)
            .map(|i| ((i * 37 + 11) % 255) as u8 as i8)
            .collect();
        let w = g.add_constant(
            "w",
            Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[4, cg, 3, 3]), wq).unwrap()),
        );
        let ws = g.add_constant(
            "ws",
            Tensor::from_f32(&[4], vec![0.003, 0.011, 0.0007, 0.02]),
        );
        let b = g.add_constant("b", Tensor::from_f32(&[4], vec![0.5, -1.25, 0.0, 3.0]));
        let [q, d, wd, y] = ["q", "d", "wd", "y"].map(|n| g.add_value(n, None));
        let node = |name: &str, op: &str, ins: Vec<ValueId>, out: ValueId| Node {
            name: name.into(),
            op_type: op.into(),
            domain: String::new(),
            inputs: ins.into_iter().map(Some).collect(),
            outputs: vec![Some(out)],
            attrs: Default::default(),
        };
        let mut dqw = node("dqw", "DequantizeLinear", vec![w, ws], wd);
        dqw.attrs.insert("axis".into(), Attr::Int(0));
        let mut conv = node("conv", "Conv", vec![d, wd, b], y);
        conv.attrs.insert("strides".into(), Attr::Ints(vec![2, 2]));
        conv.attrs
            .insert("pads".into(), Attr::Ints(vec![1, 1, 1, 1]));
        conv.attrs.insert("group".into(), Attr::Int(group));
        g.nodes = vec![
            node("q", "QuantizeLinear", vec![x, s, z], q),
            node("dq", "DequantizeLinear", vec![q, s, z], d),
            dqw,
            conv,
        ];
        g.inputs = vec![x];
        g.outputs = vec![y];
        g
    }

    fn run(g: &Graph, isa: Isa, int8: Int8Mode) -> (Vec<f32>, usize) {
        let options = PlanOptions {
            isa: Some(isa),
            int8: Some(int8),
            ..PlanOptions::default()
        };
        let plan = Plan::with_options(g, &[vec![1, 6, 9, 11]], options).unwrap();
        let x: Vec<f32> = (0..6 * 99)
            .map(|i| ((i * 7919) % 601) as f32 / 97.0 - 3.0)
            .collect();
        let out = plan.run(vec![Tensor::from_f32(&[1, 6, 9, 11], x)]).unwrap();
        let y = out[0].as_f32().unwrap().iter().copied().collect();
        (y, plan.integer_steps().len())
    }

    #[test]
    fn integer_conv_matches_the_fake_quant_path_on_every_isa() {
        for (signed, group) in [(false, 1), (true, 1), (false, 2), (true, 2)] {
            let g = quantized_conv(signed, group);
            let (want, none) = run(&g, Isa::Scalar, Int8Mode::Float);
            assert_eq!(none, 0);
            let peak = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                peak > 1.0,
                "a test whose outputs are all near zero proves little"
            );
            for isa in Isa::supported() {
                let (got, n) = run(&g, isa, Int8Mode::Int);
                assert_eq!(n, 1, "{isa:?}: the Conv runs on integer kernels");
                assert_eq!(got.len(), want.len());
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-5 * peak,
                        "{isa:?} signed={signed} group={group}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn auto_uses_integer_kernels_only_with_vnni_and_float_never() {
        let g = quantized_conv(false, 1);
        for isa in Isa::supported() {
            assert_eq!(run(&g, isa, Int8Mode::Float).1, 0);
            assert_eq!(run(&g, isa, Int8Mode::Auto).1, usize::from(isa.has_vnni()));
        }
        assert_eq!(Int8Mode::parse(" INT "), Some(Int8Mode::Int));
        assert_eq!(Int8Mode::parse("float"), Some(Int8Mode::Float));
        assert_eq!(Int8Mode::parse("fast"), None);
    }
}
