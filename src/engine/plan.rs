//! An executable plan: the non-constant nodes of a graph in order, compiled for fixed
//! input shapes, with each intermediate freed after its last use.

use std::sync::Arc;

use crate::ir::shape::fmt_shape;
use crate::ir::{DType, Facts, Graph, NodeId, Tensor, ValueId};

use super::analyze::analyze;
use super::error::{EngineError, EngineResult};
use super::ops::Op;

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
}

/// Options of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    pub fp16: bool,
}

/// Rounds every element of a float32 tensor to the nearest float16 value.
pub fn round_to_f16(t: &mut Tensor) {
    if let Tensor::F32(a) = t {
        a.mapv_inplace(|x| half::f16::from_f32(x).to_f32());
    }
}

/// Sees every value a step produces, in execution order.
pub type Observer<'a> = dyn FnMut(ValueId, &Tensor) + 'a;

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
        let analysis = analyze(graph, input_shapes)?;
        let mut constants: Vec<Option<Arc<Tensor>>> = vec![None; graph.values.len()];
        for (id, t) in graph.constants.iter().chain(analysis.folded.iter()) {
            constants[id.0] = Some(if options.fp16 && t.dtype() == DType::F32 {
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
        };
        plan.prune_dead_steps();
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
        let mut values: Vec<Option<Arc<Tensor>>> = self.constants.clone();
        self.bind_inputs(inputs, &mut values)?;
        for step in &self.steps {
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
                    observer(*v, &t);
                    values[v.0] = Some(Arc::new(t));
                }
            }
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
            if self.fp16 {
                round_to_f16(&mut t);
            }
            values[spec.id.0] = Some(Arc::new(t));
        }
        Ok(())
    }
}
