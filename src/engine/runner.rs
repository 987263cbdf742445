//! Runs a model on inputs of any bound shape: one plan per input-shape set (cached),
//! and a batch split into samples that run in parallel when the model allows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ndarray::{Axis, concatenate};
use rayon::prelude::*;

use crate::ir::{Dim, Graph, Tensor};
use crate::map_tensor;

use super::analyze::{check_input_shapes, check_supported};
use super::error::{EngineError, EngineResult};
use super::plan::{Plan, PlanOptions};

/// A model ready to run. Cheap to share across threads.
#[derive(Debug)]
pub struct Runner {
    graph: Arc<Graph>,
    plans: Mutex<HashMap<Vec<Vec<usize>>, Arc<Plan>>>,
    /// Every input's leading dimension is dynamic, so samples may run separately.
    batch_dynamic: bool,
    options: PlanOptions,
}

impl Runner {
    /// Checks that every op is supported (the error names op type, node and opset).
    pub fn new(graph: Graph) -> EngineResult<Runner> {
        Runner::with_options(graph, PlanOptions::default())
    }

    /// Like `new`, building every plan with `options` (e.g. a forced ISA).
    pub fn with_options(graph: Graph, options: PlanOptions) -> EngineResult<Runner> {
        if let Some(isa) = options.isa {
            isa.check()?;
        }
        check_supported(&graph)?;
        let batch_dynamic = !graph.inputs.is_empty()
            && graph.inputs.iter().all(|i| {
                matches!(
                    graph.value(*i).shape.as_deref(),
                    Some([Dim::Dynamic(_), ..])
                )
            });
        Ok(Runner {
            graph: Arc::new(graph),
            plans: Mutex::new(HashMap::new()),
            batch_dynamic,
            options,
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The plan for these input shapes (built once, then cached).
    pub fn plan(&self, shapes: &[Vec<usize>]) -> EngineResult<Arc<Plan>> {
        if let Some(p) = self.plans.lock().expect("plan cache").get(shapes) {
            return Ok(p.clone());
        }
        let plan = Arc::new(Plan::with_options(&self.graph, shapes, self.options)?);
        self.plans
            .lock()
            .expect("plan cache")
            .insert(shapes.to_vec(), plan.clone());
        Ok(plan)
    }

    /// Runs the model. A batch of N > 1 samples (leading dimension, dynamic in the model)
    /// runs as N parallel single-sample runs whose outputs are concatenated.
    pub fn run(&self, inputs: Vec<Tensor>) -> EngineResult<Vec<Tensor>> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        check_input_shapes(&self.graph, &shapes)?;
        let batch = shapes.first().and_then(|s| s.first()).copied().unwrap_or(1);
        let splittable =
            self.batch_dynamic && batch > 1 && shapes.iter().all(|s| s.first() == Some(&batch));
        if !splittable {
            return self.plan(&shapes)?.run(inputs);
        }
        let one: Vec<Vec<usize>> = shapes
            .iter()
            .map(|s| [&[1][..], &s[1..]].concat())
            .collect();
        let plan = self.plan(&one)?;
        let samples: Vec<Vec<Tensor>> = (0..batch)
            .map(|b| inputs.iter().map(|t| sample(t, b)).collect())
            .collect();
        let outs: Vec<Vec<Tensor>> = samples
            .into_par_iter()
            .map(|s| plan.run(s))
            .collect::<EngineResult<_>>()?;
        if outs[0].iter().any(|t| t.shape().first() != Some(&1)) {
            // The model does not keep the batch as the leading output dimension: run it whole.
            return self.plan(&shapes)?.run(inputs);
        }
        (0..outs[0].len())
            .map(|k| concat_batch(outs.iter().map(|o| &o[k]).collect()))
            .collect()
    }
}

/// Sample `b` of a batched tensor, keeping a leading dimension of 1.
fn sample(t: &Tensor, b: usize) -> Tensor {
    map_tensor!(t, a => a.slice_axis(Axis(0), (b..b + 1).into()).to_owned())
}

/// Concatenates same-typed tensors along axis 0.
pub fn concat_batch(parts: Vec<&Tensor>) -> EngineResult<Tensor> {
    let first = parts[0];
    macro_rules! cat {
        ($variant:ident) => {{
            let views: Vec<_> = parts
                .iter()
                .map(|p| match p {
                    Tensor::$variant(a) => Ok(a.view()),
                    _ => Err(EngineError::Invalid(
                        "samples disagree on output type".into(),
                    )),
                })
                .collect::<EngineResult<_>>()?;
            Tensor::$variant(
                concatenate(Axis(0), &views)
                    .map_err(|e| EngineError::Invalid(format!("cannot join samples: {e}")))?,
            )
        }};
    }
    Ok(match first {
        Tensor::F32(_) => cat!(F32),
        Tensor::F64(_) => cat!(F64),
        Tensor::I64(_) => cat!(I64),
        Tensor::I32(_) => cat!(I32),
        Tensor::I8(_) => cat!(I8),
        Tensor::U8(_) => cat!(U8),
        Tensor::Bool(_) => cat!(Bool),
        Tensor::F16(_) => cat!(F16),
        Tensor::BF16(_) => cat!(BF16),
        Tensor::I16(_) => cat!(I16),
        Tensor::U16(_) => cat!(U16),
        Tensor::U32(_) => cat!(U32),
        Tensor::U64(_) => cat!(U64),
    })
}
