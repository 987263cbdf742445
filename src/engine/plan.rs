//! An executable plan: the non-constant nodes of a graph in order, compiled for fixed
//! input shapes, with each intermediate freed after its last use.

use std::sync::Arc;

use crate::ir::shape::fmt_shape;
use crate::ir::{DType, Facts, Graph, NodeId, Tensor, ValueId};

use super::analyze::analyze;
use super::error::{EngineError, EngineResult};
use super::kernels::{Isa, with_isa};
use super::ops::quant::fuse_qdq;
use super::ops::{BuildCtx, Op};
pub use int8::{INT8_ENV, Int8Mode};

mod int8;

/// One node to run.
#[derive(Debug)]
pub struct Step {
    pub node: NodeId,
    pub name: String,
    pub op_type: String,
    op: Box<dyn Op>,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<Option<ValueId>>,
    /// Values whose last use is this step; dropped right after it runs.
    frees: Vec<ValueId>,
}

/// A graph input the plan expects.
#[derive(Clone, Debug)]
pub struct InputSpec {
    pub id: ValueId,
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Immutable and shareable (`Arc<Plan>`) across threads; each run has its own values.
#[derive(Debug)]
pub struct Plan {
    steps: Vec<Step>,
    /// Constants and folded values, indexed by `ValueId`.
    constants: Vec<Option<Arc<Tensor>>>,
    inputs: Vec<InputSpec>,
    outputs: Vec<ValueId>,
    facts: Vec<Facts>,
    names: Vec<String>,
    /// Emulate an FP16 runtime: float32 inputs, constants and every op output are rounded
    /// to the nearest float16 (computation inside an op stays float32, like FP16 hardware
    /// with float32 accumulation).
    fp16: bool,
    /// The instruction set the plan's kernels were built for and run with.
    isa: Isa,
    /// The steps that run on integer kernels (quantized layers, `int8`).
    integer_steps: Vec<String>,
}

/// Options of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    pub fp16: bool,
    /// Run each `QuantizeLinear → DequantizeLinear` pair as the two ops (by default, a
    /// pair whose quantized value has no other use and whose scale and zero point are the
    /// same constants runs as one fused op with the same float32 result, bit for bit).
    pub keep_qdq: bool,
    /// The instruction set of the kernels (default: the process default, `QTUNE_ISA` or
    /// the best the CPU has). One the CPU lacks is an error.
    pub isa: Option<Isa>,
    /// Whether quantized layers run on integer kernels (default: `QTUNE_INT8`, else
    /// `Int8Mode::Auto`).
    pub int8: Option<Int8Mode>,
}

/// Rounds every element of a float32 tensor to the nearest float16 value.
pub fn round_to_f16(t: &mut Tensor) {
    if let Tensor::F32(a) = t {
        a.mapv_inplace(|x| half::f16::from_f32(x).to_f32());
    }
}

/// The scale inputs of the graph's QuantizeLinear/DequantizeLinear nodes.
fn qdq_scales(graph: &Graph) -> Vec<ValueId> {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear"))
        .filter_map(|n| n.input(1))
        .collect()
}

/// Steps of a plan selected by `Plan::subset`, with where each value is freed.
#[derive(Clone, Debug, Default)]
pub struct Subset {
    /// Indices into `Plan::steps`, ascending.
    steps: Vec<usize>,
    /// Per selected step: values whose last use within the subset it is.
    frees: Vec<Vec<ValueId>>,
}

impl Subset {
    /// The selected step indices, ascending.
    pub fn steps(&self) -> &[usize] {
        &self.steps
    }
}

/// Sees every value a step produces, in execution order.
pub type Observer<'a> = dyn FnMut(ValueId, &Tensor) + 'a;

/// Like `Observer`, with the value as the run holds it: keeping the `Arc` keeps the value
/// without a copy (`run_subset`).
pub type SharedObserver<'a> = dyn FnMut(ValueId, &Arc<Tensor>) + 'a;

impl Plan {
    /// Compiles `graph` for concrete input shapes (one per graph input, in order).
    pub fn new(graph: &Graph, input_shapes: &[Vec<usize>]) -> EngineResult<Plan> {
        Plan::with_options(graph, input_shapes, PlanOptions::default())
    }

    /// Like `new`, with options (FP16 emulation).
    pub fn with_options(
        graph: &Graph,
        input_shapes: &[Vec<usize>],
        options: PlanOptions,
    ) -> EngineResult<Plan> {
        let isa = match options.isa {
            Some(isa) => isa.check()?,
            None => Isa::current(),
        };
        // Ops pack their constants for the ISA in force while they are built.
        with_isa(isa, || Plan::build(graph, input_shapes, options, isa))
    }

    fn build(
        graph: &Graph,
        input_shapes: &[Vec<usize>],
        options: PlanOptions,
        isa: Isa,
    ) -> EngineResult<Plan> {
        let analysis = analyze(graph, input_shapes)?;
        let mut constants: Vec<Option<Arc<Tensor>>> = vec![None; graph.values.len()];
        // Q/DQ scales are parameters of the integer computation, not float data: FP16
        // emulation keeps them exact.
        let exact = if options.fp16 {
            qdq_scales(graph)
        } else {
            Vec::new()
        };
        for (id, t) in graph.constants.iter().chain(analysis.folded.iter()) {
            let round = options.fp16 && t.dtype() == DType::F32 && !exact.contains(id);
            constants[id.0] = Some(if round {
                let mut r = (**t).clone();
                round_to_f16(&mut r);
                Arc::new(r)
            } else {
                t.clone()
            });
        }
        let mut steps = Vec::new();
        for (i, (node, op)) in graph.nodes.iter().zip(analysis.ops).enumerate() {
            if let Some(op) = op {
                steps.push(Step {
                    node: NodeId(i),
                    name: node.name.clone(),
                    op_type: node.op_type.clone(),
                    op,
                    inputs: node.inputs.clone(),
                    outputs: node.outputs.clone(),
                    frees: Vec::new(),
                });
            }
        }
        let inputs = graph
            .inputs
            .iter()
            .zip(input_shapes)
            .map(|(id, s)| {
                let v = graph.value(*id);
                let dtype = v.dtype.ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "graph input `{}` has no supported element type",
                        v.name
                    ))
                })?;
                Ok(InputSpec {
                    id: *id,
                    name: v.name.clone(),
                    dtype,
                    shape: s.clone(),
                })
            })
            .collect::<EngineResult<Vec<_>>>()?;
        let mut plan = Plan {
            steps,
            constants,
            inputs,
            outputs: graph.outputs.clone(),
            facts: analysis.facts,
            names: graph.values.iter().map(|v| v.name.clone()).collect(),
            fp16: options.fp16,
            isa,
            integer_steps: Vec::new(),
        };
        plan.prune_dead_steps();
        if !options.keep_qdq {
            plan.fuse_qdq(graph);
        }
        let mode = options.int8.unwrap_or_else(Int8Mode::from_env);
        if let Some(kernel) = mode.kernel(isa).filter(|_| !options.fp16) {
            plan.integer_steps = plan.fuse_int8(graph, kernel);
        }
        plan.compute_frees();
        Ok(plan)
    }

    /// Drops steps none of whose outputs are needed for a graph output.
    fn prune_dead_steps(&mut self) {
        let mut live = vec![false; self.names.len()];
        for o in &self.outputs {
            live[o.0] = true;
        }
        let mut keep = vec![false; self.steps.len()];
        for (i, s) in self.steps.iter().enumerate().rev() {
            if s.outputs.iter().flatten().any(|o| live[o.0]) {
                keep[i] = true;
                for v in s.inputs.iter().flatten() {
                    live[v.0] = true;
                }
            }
        }
        let mut k = keep.into_iter();
        self.steps.retain(|_| k.next().unwrap_or(false));
    }

    /// Replaces each `QuantizeLinear → DequantizeLinear` pair that only feeds itself (the
    /// quantized value has no other use and is no graph output; both read the same
    /// constant scale and zero point) by one step at the dequantize's place, computing
    /// the same float32 values without the 8-bit intermediate.
    fn fuse_qdq(&mut self, graph: &Graph) {
        let mut uses = vec![0usize; self.names.len()];
        let mut consumer: Vec<Option<usize>> = vec![None; self.names.len()];
        for (i, s) in self.steps.iter().enumerate() {
            for v in s.inputs.iter().flatten() {
                uses[v.0] += 1;
                consumer[v.0] = Some(i);
            }
        }
        for o in &self.outputs {
            uses[o.0] += 1;
        }
        let mut fused: Vec<(usize, usize, Box<dyn Op>)> = Vec::new();
        for (i, q) in self.steps.iter().enumerate() {
            if q.op_type != "QuantizeLinear" || q.outputs.len() != 1 || q.inputs.is_empty() {
                continue;
            }
            let Some(qv) = q.outputs[0] else { continue };
            let Some(j) = consumer[qv.0].filter(|_| uses[qv.0] == 1) else {
                continue;
            };
            let d = &self.steps[j];
            let params_const = q.inputs[1..]
                .iter()
                .flatten()
                .all(|v| self.constants[v.0].is_some());
            if d.op_type != "DequantizeLinear"
                || d.outputs.len() != 1
                || d.inputs.len() != q.inputs.len()
                || d.inputs[0] != Some(qv)
                || d.inputs[1..] != q.inputs[1..]
                || !params_const
            {
                continue;
            }
            let ctx = |n: NodeId| BuildCtx {
                node: &graph.nodes[n.0],
                opset: graph.opset,
                consts: Vec::new(),
            };
            if let Some(op) = fuse_qdq(&ctx(q.node), &ctx(d.node)) {
                fused.push((i, j, op));
            }
        }
        if fused.is_empty() {
            return;
        }
        let mut remove = vec![false; self.steps.len()];
        for (i, j, op) in fused {
            let inputs = self.steps[i].inputs.clone();
            let d = &mut self.steps[j];
            d.op = op;
            d.op_type = "QuantizeLinear+DequantizeLinear".to_string();
            d.inputs = inputs;
            remove[i] = true;
        }
        let mut k = remove.into_iter();
        self.steps.retain(|_| !k.next().unwrap_or(false));
    }

    fn compute_frees(&mut self) {
        let mut last: Vec<Option<usize>> = vec![None; self.names.len()];
        for (i, s) in self.steps.iter().enumerate() {
            for v in s.inputs.iter().flatten().chain(s.outputs.iter().flatten()) {
                last[v.0] = Some(i);
            }
        }
        for o in &self.outputs {
            last[o.0] = None;
        }
        for (v, l) in last.iter().enumerate() {
            if let Some(i) = l
                && self.constants[v].is_none()
            {
                self.steps[*i].frees.push(ValueId(v));
            }
        }
    }

    /// The names of the steps that run on integer kernels (empty on the float path).
    pub fn integer_steps(&self) -> &[String] {
        &self.integer_steps
    }

    /// The instruction set the plan's kernels use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Static facts of a value for the plan's input shapes.
    pub fn facts(&self, v: ValueId) -> &Facts {
        &self.facts[v.0]
    }

    pub fn value_name(&self, v: ValueId) -> &str {
        &self.names[v.0]
    }

    /// Runs the plan; `inputs` are in graph-input order.
    pub fn run(&self, inputs: Vec<Tensor>) -> EngineResult<Vec<Tensor>> {
        self.run_observed(inputs, &mut |_, _| {})
    }

    /// Runs the plan, calling `observer` on every value a step produces.
    pub fn run_observed(
        &self,
        inputs: Vec<Tensor>,
        observer: &mut Observer,
    ) -> EngineResult<Vec<Tensor>> {
        with_isa(self.isa, || self.run_observed_here(inputs, observer))
    }

    fn run_observed_here(
        &self,
        inputs: Vec<Tensor>,
        observer: &mut Observer,
    ) -> EngineResult<Vec<Tensor>> {
        let mut values: Vec<Option<Arc<Tensor>>> = self.constants.clone();
        self.bind_inputs(inputs, &mut values)?;
        for step in &self.steps {
            self.run_step(step, &mut values, &mut |v, t| observer(v, t))?;
            for v in &step.frees {
                values[v.0] = None;
            }
        }
        self.outputs
            .iter()
            .map(|o| {
                let t = values[o.0].take().ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "graph output `{}` was not computed",
                        self.names[o.0]
                    ))
                })?;
                Ok(Arc::try_unwrap(t).unwrap_or_else(|a| (*a).clone()))
            })
            .collect()
    }

    /// Runs one step on `values`, storing its outputs (rounded in FP16 mode) after the
    /// observer has seen them.
    fn run_step(
        &self,
        step: &Step,
        values: &mut [Option<Arc<Tensor>>],
        observer: &mut SharedObserver,
    ) -> EngineResult<()> {
        let outs = {
            let ins: Vec<Option<&Tensor>> = step
                .inputs
                .iter()
                .map(|i| i.and_then(|v| values[v.0].as_deref()))
                .collect();
            if let Some(k) = step
                .inputs
                .iter()
                .zip(&ins)
                .position(|(i, t)| i.is_some() && t.is_none())
            {
                return Err(EngineError::Invalid(format!(
                    "node `{}`: input `{}` was not computed",
                    step.name,
                    self.names[step.inputs[k].map(|v| v.0).unwrap_or(0)]
                )));
            }
            step.op.run(&ins).map_err(|source| EngineError::Op {
                node: step.name.clone(),
                op_type: step.op_type.clone(),
                source,
            })?
        };
        for (o, mut t) in step.outputs.iter().zip(outs) {
            if let Some(v) = o {
                if self.fp16 {
                    round_to_f16(&mut t);
                }
                let t = Arc::new(t);
                observer(*v, &t);
                values[v.0] = Some(t);
            }
        }
        Ok(())
    }

    /// Whether `v` is a constant of the plan (an initializer or a value folded at compile time).
    pub fn is_constant(&self, v: ValueId) -> bool {
        self.constants.get(v.0).is_some_and(Option::is_some)
    }

    /// The number of value ids of the compiled graph (`ValueId`s are below it).
    pub fn value_count(&self) -> usize {
        self.names.len()
    }

    /// A selection of this plan's steps for `run_subset`: `steps` are indices into
    /// `steps()`, in any order. Each value is freed after its last use within the subset.
    pub fn subset(&self, steps: &[usize]) -> Subset {
        let mut sel: Vec<usize> = steps.to_vec();
        sel.sort_unstable();
        sel.dedup();
        let mut last: Vec<Option<usize>> = vec![None; self.names.len()];
        for (k, &i) in sel.iter().enumerate() {
            let s = &self.steps[i];
            for v in s.inputs.iter().flatten().chain(s.outputs.iter().flatten()) {
                last[v.0] = Some(k);
            }
        }
        for o in &self.outputs {
            last[o.0] = None;
        }
        let mut frees = vec![Vec::new(); sel.len()];
        for (v, l) in last.iter().enumerate() {
            if let Some(k) = l
                && self.constants[v].is_none()
            {
                frees[*k].push(ValueId(v));
            }
        }
        Subset { steps: sel, frees }
    }

    /// Runs only the steps of `subset` (incremental re-evaluation, DESIGN.md decision 5).
    /// `seeds` hold every value those steps read but do not compute: a graph input is
    /// checked and bound as `run` binds it (rounded in FP16 mode); any other value is taken
    /// as a run of this plan produced it. Returns each graph output that was computed or
    /// seeded (`None` otherwise). `observer` sees every value a selected step produces.
    pub fn run_subset(
        &self,
        subset: &Subset,
        seeds: Vec<(ValueId, Arc<Tensor>)>,
        observer: &mut SharedObserver,
    ) -> EngineResult<Vec<Option<Tensor>>> {
        with_isa(self.isa, || self.run_subset_here(subset, seeds, observer))
    }

    fn run_subset_here(
        &self,
        subset: &Subset,
        seeds: Vec<(ValueId, Arc<Tensor>)>,
        observer: &mut SharedObserver,
    ) -> EngineResult<Vec<Option<Tensor>>> {
        let mut values: Vec<Option<Arc<Tensor>>> = self.constants.clone();
        for (v, t) in seeds {
            let Some(slot) = values.get_mut(v.0) else {
                return Err(EngineError::Invalid(format!(
                    "seeded value #{} is not a value of the plan",
                    v.0
                )));
            };
            match self.inputs.iter().find(|s| s.id == v) {
                Some(spec) => {
                    self.check_input(spec, &t)?;
                    let mut t = t;
                    if self.fp16 {
                        round_to_f16(Arc::make_mut(&mut t));
                    }
                    *slot = Some(t);
                }
                None => *slot = Some(t),
            }
        }
        for (&i, frees) in subset.steps.iter().zip(&subset.frees) {
            let step = self.steps.get(i).ok_or_else(|| {
                EngineError::Invalid(format!("the subset names step {i} of {}", self.steps.len()))
            })?;
            self.run_step(step, &mut values, observer)?;
            for v in frees {
                values[v.0] = None;
            }
        }
        Ok(self
            .outputs
            .iter()
            .map(|o| {
                values[o.0]
                    .take()
                    .map(|t| Arc::try_unwrap(t).unwrap_or_else(|a| (*a).clone()))
            })
            .collect())
    }

    /// Checks a graph input's element type and shape against the plan.
    fn check_input(&self, spec: &InputSpec, t: &Tensor) -> EngineResult<()> {
        if t.dtype() != spec.dtype {
            return Err(EngineError::Input {
                name: spec.name.clone(),
                msg: format!(
                    "expected element type {}, got {}",
                    spec.dtype.name(),
                    t.dtype().name()
                ),
            });
        }
        if t.shape() != spec.shape.as_slice() {
            return Err(EngineError::Input {
                name: spec.name.clone(),
                msg: format!(
                    "expected shape {}, got {}",
                    fmt_shape(&spec.shape),
                    fmt_shape(t.shape())
                ),
            });
        }
        Ok(())
    }

    fn bind_inputs(
        &self,
        inputs: Vec<Tensor>,
        values: &mut [Option<Arc<Tensor>>],
    ) -> EngineResult<()> {
        if inputs.len() != self.inputs.len() {
            return Err(EngineError::Invalid(format!(
                "the model has {} input(s), {} given",
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (spec, mut t) in self.inputs.iter().zip(inputs) {
            self.check_input(spec, &t)?;
            if self.fp16 {
                round_to_f16(&mut t);
            }
            values[spec.id.0] = Some(Arc::new(t));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
