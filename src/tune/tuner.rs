//! The tuner: owns a session and runs evaluations for it — the flow's stages (flow.rs,
//! exclude.rs) and the user's actions (toggles, adopting a result) alike. Every evaluation
//! is appended to the session and saved before the next begins, so a killed run loses at
//! most the one in flight, and a resumed run finds every finished evaluation instead of
//! repeating it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::calib::DisplayHistogram;
use crate::config::FloatPrecision;
use crate::config::tune::TuneConfig;
use crate::error::{Error, Result};
use crate::eval::Evaluator;
use crate::eval::estimate::{Estimate, estimate};
use crate::eval::incremental::{IncrementalEvaluator, Stream, Streamed};
use crate::quant::QuantPlan;
use crate::session::{
    ActivationSummary, EvalId, Evaluation, LayerInfo, Origin, RerunStats, Session, SessionFile,
    SessionInit, Setting, SettingId, SettingRecord, StageId,
};
use crate::workspace::Workspace;

use super::calibrations::Calibrations;
use super::race::{Race, StopRule};

/// What the tuner is busy with, for progress displays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Collecting calibration histograms.
    Calibrating,
    /// Searching ranges for the settings of a stage.
    Searching,
    /// Running the evaluation set.
    Evaluating,
}

/// Receives the tuner's news. Called on the tuner's thread, except `progress`, which
/// evaluation workers call too.
pub trait Observer: Sync {
    /// The session changed (an evaluation ended, a stage moved): a safe point to copy it.
    fn changed(&self, _session: &Session) {}
    /// Progress within the current piece of work.
    fn progress(&self, _work: Work, _done: usize, _total: usize) {}
    /// Histograms of the activations so far, while calibrating.
    fn histograms(&self, _batch_count: usize, _h: &BTreeMap<String, DisplayHistogram>) {}
    /// The running estimate of the evaluation in flight (never a final result until
    /// `done == total`).
    fn estimate(&self, _e: &Estimate) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// A request for one evaluation.
#[derive(Clone, Debug)]
pub struct Request {
    pub stage: StageId,
    pub origin: Origin,
    /// `None`: nothing quantized (the FP16 fallback).
    pub setting: Option<SettingId>,
    pub exclude: Vec<String>,
    /// Everything left in float runs in emulated FP16.
    pub fp16: bool,
    /// Make this state the base of later incremental evaluations.
    pub rebase: bool,
    /// What the evaluation races against (ignored with `tune.exhaustive`).
    pub race: Race,
}

/// Runs evaluations into a session.
pub struct Tuner<'e, 'w> {
    pub(super) ws: &'w Workspace,
    pub(super) tune: TuneConfig,
    cal: Calibrations<'w>,
    inc: IncrementalEvaluator<'e, 'w>,
    /// Plans by setting (a few; rebuilt on demand).
    plans: HashMap<SettingId, QuantPlan>,
    pub session: Session,
    file: Option<SessionFile>,
    pub cancel: Arc<AtomicBool>,
    /// Find earlier evaluations of the same state instead of running them again (the
    /// default; benchmarks turn it off).
    pub reuse: bool,
    /// The user changed the current state since the flow last set it.
    pub user_changed_current: bool,
}

impl<'e, 'w> Tuner<'e, 'w> {
    /// A tuner over `ws`, continuing `session`, saving through `file`.
    pub fn new(
        ws: &'w Workspace,
        ev: &'e Evaluator<'w>,
        mut session: Session,
        file: Option<SessionFile>,
    ) -> Result<Tuner<'e, 'w>> {
        let tune = ws.config.tune.clone();
        refresh_from_workspace(&mut session, ws);
        Ok(Tuner {
            ws,
            cal: Calibrations::new(ws)?,
            inc: IncrementalEvaluator::new(ev, tune.cache_bytes),
            tune,
            plans: HashMap::new(),
            session,
            file,
            cancel: Arc::new(AtomicBool::new(false)),
            reuse: true,
            user_changed_current: false,
        })
    }

    /// Saves what changed (one journal line) when the session has a file.
    pub fn save(&mut self) -> Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.save(&self.session)?;
        }
        Ok(())
    }

    /// Folds the journal into a new snapshot (when the work ends).
    pub fn compact(&mut self) -> Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.compact(&self.session)?;
        }
        Ok(())
    }

    /// Whether evaluations of INT8 results run the float parts in FP16.
    pub fn fp16(&self) -> bool {
        self.ws.config.float_precision == FloatPrecision::Fp16
    }

    /// The id of `setting` in the session, calibrating it first when new.
    pub fn register(&mut self, setting: &Setting, obs: &dyn Observer) -> Result<SettingId> {
        if let Some(i) = self.session.find_setting(setting) {
            return Ok(i);
        }
        let plan = self.build_plan(setting, obs)?;
        let record = SettingRecord {
            setting: *setting,
            fingerprint: plan.fingerprint(),
            activations: plan
                .activations
                .iter()
                .map(|(name, p)| {
                    let summary = ActivationSummary {
                        lo: p.lo,
                        hi: p.hi,
                        scale: p.scale,
                        offset: p.offset,
                        ratio: p.ratio,
                        divergence: p.divergence(),
                        boundary_hit: p.boundary_hit,
                    };
                    (name.clone(), summary)
                })
                .collect(),
            curves: BTreeMap::new(),
        };
        let i = self.session.push_setting(record).map_err(full)?;
        self.keep_plan(i, plan);
        Ok(i)
    }

    /// Stores the divergence curves of every activation for setting `i` (done for the
    /// settings that stages select and the user applies).
    pub fn store_curves(&mut self, i: SettingId, obs: &dyn Observer) -> Result<()> {
        let Some(record) = self.session.setting(i) else {
            return Ok(());
        };
        if !record.curves.is_empty() {
            return Ok(());
        }
        let setting = record.setting;
        let names: Vec<String> = record.activations.keys().cloned().collect();
        self.ensure_stats(setting.batch_count, obs)?;
        let curves = names
            .into_iter()
            .filter_map(|n| Some((n.clone(), self.cal.curves(&setting, &n)?)))
            .collect();
        self.session.set_curves(i, curves);
        Ok(())
    }

    /// Runs (or finds) one evaluation; returns its id.
    pub fn evaluate(&mut self, req: Request, obs: &dyn Observer) -> Result<EvalId> {
        let exclude = self.session.in_graph_order(&req.exclude).map_err(|bad| {
            Error::Usage(format!("exclude_op: `{bad}` is not a quantizable layer"))
        })?;
        let racing = req.race != Race::None && !self.tune.exhaustive;
        if let Some(i) = self
            .session
            .find_evaluation(req.setting, &exclude, req.fp16, racing)
            .filter(|_| self.reuse)
        {
            return Ok(i);
        }
        let threshold = self.session.threshold().unwrap_or(f64::NAN);
        let rule = racing
            .then(|| {
                StopRule::new(
                    &self.session,
                    req.race,
                    threshold,
                    self.tune.race_confidence,
                )
            })
            .flatten();
        let run = self.run(
            req.setting,
            &exclude,
            req.fp16,
            req.rebase,
            rule.as_ref(),
            obs,
        )?;
        let stopped = run.stopped_at.zip(rule.as_ref()).map(|(n, rule)| {
            let hw = estimate(self.session.metric, &run.scores, self.session.eval_samples)
                .map_or(f64::NAN, |e| e.half_width);
            rule.stopped(n, run.report.int8, hw)
        });
        let i = self
            .session
            .push_evaluation(Evaluation {
                stage: req.stage,
                origin: req.origin,
                setting: req.setting,
                exclude,
                fp16: req.fp16,
                report: run.report,
                rerun: RerunStats {
                    nodes_run: run.stats.nodes_run,
                    nodes_total: run.stats.nodes_total,
                    incremental: run.stats.incremental,
                },
                scores: run.scores,
                stopped,
            })
            .map_err(full)?;
        self.save()?;
        obs.changed(&self.session);
        Ok(i)
    }

    /// Makes (setting, exclude) the base of incremental evaluations without recording
    /// anything (its evaluation is already in the session).
    pub fn rebase(
        &mut self,
        setting: SettingId,
        exclude: &[String],
        obs: &dyn Observer,
    ) -> Result<()> {
        let exclude = self.session.in_graph_order(exclude).map_err(|bad| {
            Error::Usage(format!("exclude_op: `{bad}` is not a quantizable layer"))
        })?;
        let fp16 = self.fp16();
        self.run(Some(setting), &exclude, fp16, true, None, obs)?;
        Ok(())
    }

    fn run(
        &mut self,
        setting: Option<SettingId>,
        exclude: &[String],
        fp16: bool,
        rebase: bool,
        rule: Option<&StopRule>,
        obs: &dyn Observer,
    ) -> Result<Streamed> {
        // Nothing quantized still needs a plan to hand over: any will do, all excluded.
        let (idx, exclude): (SettingId, HashSet<String>) = match setting {
            Some(i) => (i, exclude.iter().cloned().collect()),
            None => {
                let i = self.register(&super::grid::configured(&self.ws.config), obs)?;
                (i, self.ws.layer_names().into_iter().collect())
            }
        };
        let plan = self.plan_of(idx, obs)?;
        // One key for every plan: the evaluator then finds by comparing the quantized
        // graphs (constants included) which nodes differ from its base, so plans that
        // share their first layers' parameters share those layers' results.
        let key = if fp16 { "fp16" } else { "int8" };
        let total = self.session.eval_samples;
        let progress = |d: usize| obs.progress(Work::Evaluating, d, total);
        let on_estimate = |e: &Estimate| obs.estimate(e);
        let stop =
            |scores: &[crate::eval::SampleScore]| rule.is_some_and(|r| r.should_stop(scores));
        let stream = Stream {
            on_estimate: &on_estimate,
            stop: &stop,
        };
        self.inc.evaluate_stream(
            &plan,
            key,
            &exclude,
            fp16,
            rebase,
            &progress,
            &self.cancel,
            &stream,
        )
    }

    /// The plan of setting `i` (rebuilt from the statistics when not kept).
    pub fn plan_of(&mut self, i: SettingId, obs: &dyn Observer) -> Result<QuantPlan> {
        if let Some(p) = self.plans.get(&i) {
            return Ok(p.clone());
        }
        let setting = self
            .session
            .setting(i)
            .map(|r| r.setting)
            .ok_or_else(|| Error::Usage(format!("{i} is not in the session")))?;
        let plan = self.build_plan(&setting, obs)?;
        self.keep_plan(i, plan.clone());
        Ok(plan)
    }

    fn build_plan(&mut self, setting: &Setting, obs: &dyn Observer) -> Result<QuantPlan> {
        self.ensure_stats(setting.batch_count, obs)?;
        self.cal.plan(setting)
    }

    /// Collects calibration statistics for `batch_count` samples unless done already.
    pub fn ensure_stats(&mut self, batch_count: usize, obs: &dyn Observer) -> Result<()> {
        if self.cal.has(batch_count) {
            return Ok(());
        }
        let n = self.cal.effective(batch_count);
        obs.progress(Work::Calibrating, 0, n);
        let mut on_chunk = |done: usize, total: usize, stats: &crate::quant::calibrate::Stats| {
            obs.progress(Work::Calibrating, done, total);
            obs.histograms(n, &stats.histograms());
        };
        let stats = self.cal.ensure(batch_count, &mut on_chunk, &self.cancel)?;
        self.session.histograms.insert(n, stats.histograms());
        Ok(())
    }

    /// Keeps a few plans (the flow revisits the stage bests; the grid's are used once).
    fn keep_plan(&mut self, i: SettingId, plan: QuantPlan) {
        const KEEP: usize = 8;
        if self.plans.len() >= KEEP {
            let current = self.session.current.setting;
            let victim = self.plans.keys().copied().find(|k| Some(*k) != current);
            if let Some(v) = victim {
                self.plans.remove(&v);
            }
        }
        self.plans.insert(i, plan);
    }

    /// Toggles `layer` on the current exclude_op and evaluates the result (the TUI's
    /// space key). Returns the evaluation's id.
    pub fn toggle(&mut self, layer: &str, obs: &dyn Observer) -> Result<EvalId> {
        let mut exclude = self.session.current.exclude.clone();
        let verb = if let Some(p) = exclude.iter().position(|e| e == layer) {
            exclude.remove(p);
            "include"
        } else {
            exclude.push(layer.to_string());
            "exclude"
        };
        self.session.log(format!("{verb} {layer}"));
        self.evaluate_current(exclude, obs)
    }

    /// Excludes (`exclude`) or includes every layer of `layers` on the current exclude_op
    /// and evaluates the result once (the TUI's range and up-to/from-the-cursor toggles).
    /// Layers already in that state are left as they are. Returns the evaluation's id.
    pub fn set_excluded(
        &mut self,
        layers: &[String],
        exclude: bool,
        obs: &dyn Observer,
    ) -> Result<EvalId> {
        let mut list = self.session.current.exclude.clone();
        if exclude {
            for l in layers {
                if !list.contains(l) {
                    list.push(l.clone());
                }
            }
        } else {
            list.retain(|x| !layers.contains(x));
        }
        let verb = if exclude { "exclude" } else { "include" };
        let names = match layers {
            [first, _, _, .., last] => format!("{first} … {last}"),
            _ => layers.join(", "),
        };
        self.session
            .log(format!("{verb} {} layers ({names})", layers.len()));
        self.evaluate_current(list, obs)
    }

    /// Sets the current exclude_op to `exclude` (with the current setting) and evaluates
    /// it; the result becomes the current state. Returns the evaluation's id.
    pub fn evaluate_current(&mut self, exclude: Vec<String>, obs: &dyn Observer) -> Result<EvalId> {
        let setting = match self.session.current.setting {
            Some(s) => s,
            None => self.register(&super::grid::configured(&self.ws.config), obs)?,
        };
        let fp16 = self.fp16();
        let i = self.evaluate(
            Request {
                stage: StageId::Exclude,
                origin: Origin::User,
                setting: Some(setting),
                exclude,
                fp16,
                rebase: true,
                race: Race::None,
            },
            obs,
        )?;
        self.session.adopt(i);
        self.user_changed_current = true;
        self.save()?;
        obs.changed(&self.session);
        Ok(i)
    }

    /// Makes evaluation `id` the current state (the user adopting a result).
    pub fn adopt(&mut self, id: EvalId, obs: &dyn Observer) -> Result<()> {
        if !self.session.adopt(id) {
            return Err(Error::Usage(format!(
                "evaluation {id} is not in the session"
            )));
        }
        self.session.log(format!("adopt {id}"));
        self.user_changed_current = true;
        if let Some(s) = self.session.current.setting {
            self.store_curves(s, obs)?;
        }
        self.save()?;
        obs.changed(&self.session);
        Ok(())
    }
}

fn full(e: crate::session::SessionFull) -> Error {
    Error::Usage(e.to_string())
}

/// Brings what the session knows of the model up to date with the workspace: layer MACs
/// (format 1 sessions have none), the quantized graph's degradations, the precision.
fn refresh_from_workspace(s: &mut Session, ws: &Workspace) {
    let macs: HashMap<&str, u64> = ws
        .layers
        .iter()
        .map(|l| {
            (
                l.info.name.as_str(),
                crate::quant::layers::layer_macs(&ws.graph, l),
            )
        })
        .collect();
    for l in &mut s.layers {
        if let Some(&m) = macs.get(l.name.as_str()) {
            l.macs = m;
        }
    }
    s.degradations = ws.qdq.degradations.clone();
    s.float_precision = ws.config.float_precision;
}

/// A new session for a workspace.
pub fn new_session(ws: &Workspace, ev: &Evaluator) -> Session {
    let eval = ws.eval.as_ref();
    let canonical = |p: &std::path::Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    Session::new(SessionInit {
        model: canonical(&ws.config.model),
        model_sha256: ws.model.sha256.clone(),
        config_file: ws.config.file.as_deref().map(canonical),
        config: ws.config.raw.clone(),
        metric: eval.map_or(crate::config::Metric::Top1, |e| e.config.metric),
        max_drop: eval.map_or(0.0, |e| e.config.max_drop),
        min_value: eval.and_then(|e| e.config.min_value),
        eval_samples: ev.samples(),
        fp32_metric: Some(ev.fp32_metric),
        float_precision: ws.config.float_precision,
        degradations: ws.qdq.degradations.clone(),
        sample_shapes: ws.sample_shapes.clone(),
        layers: ws
            .layers
            .iter()
            .map(|l| LayerInfo {
                name: l.info.name.clone(),
                op_type: l.info.op_type.clone(),
                activations: l.info.activations.clone(),
                macs: crate::quant::layers::layer_macs(&ws.graph, l),
            })
            .collect(),
        exclude: ws.config.exclude_op.clone(),
    })
}
