//! Everything a configuration names, loaded and checked: the model (prepared for the
//! sample shape), its quantizable layers, and the calibration and evaluation data.

use std::collections::HashSet;
use std::path::Path;

use crate::config::{Config, EvalConfig, InputConfig, InputType};
use crate::data::DataError;
use crate::data::dataset::{Dataset, Source};
use crate::data::image::ImagePreprocess;
use crate::data::labels::Labels;
use crate::engine::{Runner, check_supported, prepare};
use crate::error::{Error, Result};
use crate::ir::{Dim, Graph};
use crate::onnx::{Model, load_model};
use crate::quant::{LayerRef, QdqDecision, QuantPlan, find_layers};

/// A loaded configuration.
#[derive(Debug)]
pub struct Workspace {
    pub config: Config,
    pub model: Model,
    /// The model with static shapes for one sample and every constant folded.
    pub graph: Graph,
    /// Shapes of one sample, per model input (leading dimension 1).
    pub sample_shapes: Vec<Vec<usize>>,
    pub layers: Vec<LayerRef>,
    /// How this model's quantized graph is built (the same for evaluation and export).
    pub qdq: QdqDecision,
    pub calib: Dataset,
    pub eval: Option<EvalSet>,
    /// What the user should know about how the data was read (e.g. a size taken from the
    /// images); the command line prints each on stderr.
    pub notes: Vec<String>,
}

/// The evaluation data with its labels (when the metric needs them).
#[derive(Debug)]
pub struct EvalSet {
    pub data: Dataset,
    pub labels: Option<Vec<usize>>,
    pub config: EvalConfig,
}

impl Workspace {
    /// Loads the model and data of `config`.
    pub fn open(config: Config) -> Result<Workspace> {
        let model = load_model(&config.model)?;
        check_supported(&model.graph)?;
        let g = &model.graph;
        if config.inputs.len() != g.inputs.len() {
            let names: Vec<&str> = g.inputs.iter().map(|i| g.value_name(*i)).collect();
            return Err(Error::Usage(format!(
                "{}: preprocess_parameter has {} entries; the model has {} input(s) ({}), one entry each",
                config
                    .file
                    .as_deref()
                    .unwrap_or(Path::new("config"))
                    .display(),
                config.inputs.len(),
                g.inputs.len(),
                names.join(", ")
            )));
        }
        let ranks: Vec<usize> = g
            .inputs
            .iter()
            .map(|i| g.value(*i).shape.as_ref().map_or(4, Vec::len))
            .collect();
        let mut seen = vec![None; g.inputs.len()];
        let mut notes = Vec::new();
        let mut sources = Vec::with_capacity(config.inputs.len());
        for (k, ic) in config.inputs.iter().enumerate() {
            let s = source(ic, &ic.path, g, k, &mut seen, &mut notes);
            sources.push(s.map_err(|e| in_config(&config, e))?);
        }
        let calib = Dataset {
            sources,
            ranks: ranks.clone(),
            nonfinite_limit: config.max_nonfinite,
        };
        if calib.is_empty() {
            return Err(Error::Usage(format!(
                "{}: the calibration data ({}) holds no samples",
                config_name(&config),
                config
                    .inputs
                    .iter()
                    .map(|i| i.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let first = calib.load(0)?;
        let sample_shapes: Vec<Vec<usize>> = first.iter().map(|t| t.shape().to_vec()).collect();
        let graph = prepare(&model.graph, &sample_shapes)?;
        let layers = find_layers(&graph);
        check_exclude_op(&config, &layers)?;
        let qdq = crate::quant::decide(&model.graph)?;
        let eval = match &config.evaluation {
            None => None,
            Some(ec) => Some(eval_set(
                &config,
                ec,
                g,
                &ranks,
                class_count(&graph),
                &mut seen,
            )?),
        };
        Ok(Workspace {
            config,
            model,
            graph,
            sample_shapes,
            layers,
            qdq,
            calib,
            eval,
            notes,
        })
    }

    /// The quantized graph of `plan` with `exclude` kept float: what is evaluated, and
    /// (built from the model as loaded) what `export` writes — see `quant::build`.
    pub fn quantized_graph(&self, plan: &QuantPlan, exclude: &HashSet<String>) -> Result<Graph> {
        Ok(crate::quant::build(&self.graph, plan, exclude, &self.qdq)?)
    }

    /// Everything that makes the quantized model deviate from the configuration with
    /// `plan`: the model's QDQ decision, then layers left float by calibration.
    pub fn degradations(&self, plan: &QuantPlan) -> Vec<String> {
        let mut v = self.qdq.degradations.clone();
        v.extend(crate::quant::build::uncalibrated_notes(plan));
        v
    }

    /// A runner over the prepared graph (or a variant of it, e.g. the simulated one).
    pub fn runner(&self, graph: Graph) -> Result<Runner> {
        Ok(Runner::new(graph)?)
    }
}

/// Refuses `exclude_op` names that are not layers of the model, suggesting the closest.
fn check_exclude_op(config: &Config, layers: &[LayerRef]) -> Result<()> {
    let names: Vec<&str> = layers.iter().map(|l| l.info.name.as_str()).collect();
    let Some(bad) = config
        .exclude_op
        .iter()
        .find(|e| !names.contains(&e.as_str()))
    else {
        return Ok(());
    };
    let hint = crate::config::suggest(bad, &names)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default();
    Err(config
        .key_error(
            &["exclude_op"],
            format!(
                "key `exclude_op`: `{bad}` is not a quantizable layer of the model{hint} (`qtune inspect MODEL` lists them)"
            ),
        )
        .into())
}

/// Scores per sample in the first model output (its size over the batch dimension), which
/// bounds the class indices labels may name.
fn class_count(prepared: &Graph) -> Option<usize> {
    let out = prepared.outputs.first()?;
    let dims: Vec<usize> = prepared
        .value(*out)
        .shape
        .as_ref()?
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            Dim::Dynamic(_) => None,
        })
        .collect::<Option<_>>()?;
    let n: usize = dims.iter().product();
    Some(n / dims.first().copied().unwrap_or(1).max(1))
}

fn eval_set(
    config: &Config,
    ec: &EvalConfig,
    g: &Graph,
    ranks: &[usize],
    classes: Option<usize>,
    seen: &mut [Option<(usize, usize)>],
) -> Result<EvalSet> {
    if ec.paths.len() != g.inputs.len() {
        return Err(Error::Usage(format!(
            "{}: evaluation.input_file_path names {} path(s); the model has {} input(s)",
            config_name(config),
            ec.paths.len(),
            g.inputs.len()
        )));
    }
    let sources = config
        .inputs
        .iter()
        .zip(&ec.paths)
        .enumerate()
        .map(|(k, (ic, p))| {
            source(ic, p, g, k, seen, &mut Vec::new()).map_err(|e| in_config(config, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let data = Dataset {
        sources,
        ranks: ranks.to_vec(),
        nonfinite_limit: config.max_nonfinite,
    };
    let labels = match &ec.labels {
        None => None,
        Some(path) => {
            let l = Labels::read(path, ec.classes.as_deref())?;
            let v = (0..data.len())
                .map(|i| {
                    let name = data.sample_name(i);
                    let class = l.get(&name).ok_or_else(|| DataError::File {
                        path: path.display().to_string(),
                        reason: format!("no label for `{name}`"),
                    })?;
                    match classes {
                        Some(n) if class >= n => Err(DataError::File {
                            path: path.display().to_string(),
                            reason: format!(
                                "`{name}` is labelled class {class}, but the model scores {n} classes (0..={})",
                                n.saturating_sub(1)
                            ),
                        }),
                        _ => Ok(class),
                    }
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Some(v)
        }
    };
    Ok(EvalSet {
        data,
        labels,
        config: ec.clone(),
    })
}

/// The configuration's file name, for messages.
fn config_name(config: &Config) -> String {
    config
        .file
        .as_deref()
        .unwrap_or(Path::new("config"))
        .display()
        .to_string()
}

/// A usage error about a configuration, prefixed with its file.
fn in_config(config: &Config, e: Error) -> Error {
    match e {
        Error::Usage(m) => Error::Usage(format!("{}: {m}", config_name(config))),
        other => other,
    }
}

/// The data source of model input `k` reading from `path`. `seen` is the (H, W) taken
/// from the calibration images of each input when the model's are dynamic (set by the
/// calibration set, checked by the evaluation set); `notes` says when that happened.
fn source(
    ic: &InputConfig,
    path: &Path,
    g: &Graph,
    k: usize,
    seen: &mut [Option<(usize, usize)>],
    notes: &mut Vec<String>,
) -> Result<Source> {
    Ok(match ic.input_type {
        InputType::Npy => Source::npy(path)?,
        InputType::Binary => Source::binary(path)?,
        InputType::Image => {
            let size = match ic.size.or_else(|| model_hw(g, k)) {
                Some(s) => s,
                None => size_from_images(ic, path, g, k, seen, notes)?,
            };
            let pre = ImagePreprocess {
                format: ic.image_format,
                mean: ic.mean.clone(),
                std: ic.std.clone(),
                resize: ic.resize,
                size,
                short_side: ic.short_side,
            };
            Source::images(path, pre)?
        }
    })
}

/// The (H, W) of model input `k`, whose height or width is dynamic and not configured:
/// the images' own size when they all agree (and agree with the calibration images).
fn size_from_images(
    ic: &InputConfig,
    path: &Path,
    g: &Graph,
    k: usize,
    seen: &mut [Option<(usize, usize)>],
    notes: &mut Vec<String>,
) -> Result<(usize, usize)> {
    let name = g.value_name(g.inputs[k]);
    let set_size = |why: String| {
        Error::Usage(format!(
            "input `{name}` has a dynamic height or width and {why}: set preprocess_parameter[{k}].size: [H, W]"
        ))
    };
    if ic.resize != crate::data::image::ResizeMode::Stretch {
        return Err(set_size(format!(
            "`resize: {}` needs a target size",
            ic.resize.as_str()
        )));
    }
    let files = crate::data::dataset::image_files(path)?;
    let mut first: Option<((usize, usize), &Path)> = None;
    for f in &files {
        let hw = crate::data::image::image_size(f)?;
        match first {
            None => first = Some((hw, f)),
            Some((h0, f0)) if h0 != hw => {
                return Err(set_size(format!(
                    "the images differ in size ({} is {}×{}, {} is {}×{})",
                    f0.display(),
                    h0.0,
                    h0.1,
                    f.display(),
                    hw.0,
                    hw.1
                )));
            }
            Some(_) => {}
        }
    }
    let Some(((h, w), _)) = first else {
        return Err(set_size("there are no images".into()));
    };
    let slot = seen
        .get_mut(k)
        .ok_or_else(|| Error::Usage(format!("no input {k}")))?;
    match *slot {
        Some((h0, w0)) if (h0, w0) != (h, w) => Err(set_size(format!(
            "the images of {} are {h}×{w}, the calibration images {h0}×{w0}",
            path.display()
        ))),
        Some(_) => Ok((h, w)),
        None => {
            *slot = Some((h, w));
            notes.push(format!(
                "input `{name}`: the model's height and width are dynamic; {h}×{w} taken from the {} calibration image(s), which all have that size",
                files.len()
            ));
            Ok((h, w))
        }
    }
}

/// (H, W) of an NCHW model input when both are fixed.
fn model_hw(g: &Graph, k: usize) -> Option<(usize, usize)> {
    match g.value(g.inputs[k]).shape.as_deref() {
        Some([_, _, Dim::Fixed(h), Dim::Fixed(w)]) => Some((*h, *w)),
        _ => None,
    }
}

impl Workspace {
    /// Calibrates with the configuration's parameters: collects histograms over the first
    /// `batch_count` calibration samples and builds the quantization plan.
    pub fn calibrate(
        &self,
        progress: crate::quant::calibrate::Progress,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<(crate::quant::QuantPlan, usize)> {
        use crate::quant::calibrate::{activation_targets, build_plan, collect};
        let plan = crate::engine::Plan::new(&self.graph, &self.sample_shapes)?;
        let targets = activation_targets(&self.layers);
        let stats = collect(
            &plan,
            &self.graph,
            &self.calib,
            &targets,
            self.config.batch_count,
            progress,
            cancel,
        )?;
        let qp = build_plan(
            &self.graph,
            &self.layers,
            &stats,
            &self.config.search,
            self.config.weight_type,
        )?;
        Ok((qp, stats.samples))
    }

    /// The parameter record of a calibration.
    pub fn record(
        &self,
        plan: crate::quant::QuantPlan,
        samples: usize,
    ) -> crate::quant::ParamsRecord {
        crate::quant::ParamsRecord {
            format: crate::quant::record::RECORD_FORMAT,
            qtune_version: env!("CARGO_PKG_VERSION").to_string(),
            model: std::fs::canonicalize(&self.config.model)
                .unwrap_or_else(|_| self.config.model.clone())
                .display()
                .to_string(),
            model_sha256: self.model.sha256.clone(),
            config: self.config.raw.clone(),
            calibration_samples: samples,
            sample_shapes: self.sample_shapes.clone(),
            plan,
        }
    }

    /// Names of the quantizable layers, in graph order.
    pub fn layer_names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.info.name.clone()).collect()
    }
}
