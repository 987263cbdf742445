//! The tuner: owns a session and runs evaluations for it — the flow's stages (flow.rs,
//! exclude.rs) and the user's actions (toggles) alike. Every evaluation is appended to the
//! session and saved before the next begins, so a killed run loses at most the one in
//! flight, and a resumed run finds every finished evaluation instead of repeating it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::calib::DisplayHistogram;
use crate::config::tune::TuneConfig;
use crate::error::Result;
use crate::eval::Evaluator;
use crate::eval::incremental::IncrementalEvaluator;
use crate::quant::QuantPlan;
use crate::session::{
    self, ActivationSummary, Current, Evaluation, LayerInfo, Origin, RerunStats, SESSION_FORMAT,
    Session, Setting, SettingRecord, StageId, StageRecord,
};
use crate::workspace::Workspace;

use super::calibrations::Calibrations;

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
    pub setting: Option<usize>,
    pub exclude: Vec<String>,
    pub fp16: bool,
    /// Make this state the base of later incremental evaluations.
    pub rebase: bool,
}

/// Runs evaluations into a session.
pub struct Tuner<'e, 'w> {
    pub(super) ws: &'w Workspace,
    pub(super) tune: TuneConfig,
    cal: Calibrations<'w>,
    inc: IncrementalEvaluator<'e, 'w>,
    /// Plans by setting index (a few; rebuilt on demand).
    plans: HashMap<usize, QuantPlan>,
    pub session: Session,
    path: Option<PathBuf>,
    pub cancel: Arc<AtomicBool>,
    /// Find earlier evaluations of the same state instead of running them again (the
    /// default; benchmarks turn it off).
    pub reuse: bool,
}

impl<'e, 'w> Tuner<'e, 'w> {
    /// A tuner over `ws`, continuing `session` (or a new one) and saving to `path`.
    pub fn new(
        ws: &'w Workspace,
        ev: &'e Evaluator<'w>,
        session: Option<Session>,
        path: Option<PathBuf>,
    ) -> Result<Tuner<'e, 'w>> {
        let tune = ws.config.tune.clone();
        let session = match session {
            Some(s) => s,
            None => new_session(ws, ev),
        };
        Ok(Tuner {
            ws,
            cal: Calibrations::new(ws)?,
            inc: IncrementalEvaluator::new(ev, tune.cache_bytes),
            tune,
            plans: HashMap::new(),
            session,
            path,
            cancel: Arc::new(AtomicBool::new(false)),
            reuse: true,
        })
    }

    /// Saves the session (atomically) when it has a file.
    pub fn save(&self) -> Result<()> {
        if let Some(p) = &self.path {
            session::save(&self.session, p)?;
        }
        Ok(())
    }

    /// The index of `setting` in the session, calibrating it first when new.
    pub fn register(&mut self, setting: &Setting, obs: &dyn Observer) -> Result<usize> {
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
        self.session.settings.push(record);
        let i = self.session.settings.len() - 1;
        self.keep_plan(i, plan);
        Ok(i)
    }

    /// Stores the divergence curves of every activation for setting `i` (done for the
    /// settings that stages select and the user applies).
    pub fn store_curves(&mut self, i: usize, obs: &dyn Observer) -> Result<()> {
        if !self.session.settings[i].curves.is_empty() {
            return Ok(());
        }
        let setting = self.session.settings[i].setting;
        self.ensure_stats(setting.batch_count, obs)?;
        let names: Vec<String> = self.session.settings[i]
            .activations
            .keys()
            .cloned()
            .collect();
        let curves = names
            .into_iter()
            .filter_map(|n| Some((n.clone(), self.cal.curves(&setting, &n)?)))
            .collect();
        self.session.settings[i].curves = curves;
        Ok(())
    }

    /// Runs (or finds) one evaluation; returns its index in `session.evaluations`.
    pub fn evaluate(&mut self, req: Request, obs: &dyn Observer) -> Result<usize> {
        let exclude = self.in_graph_order(&req.exclude);
        if let Some(i) = self
            .session
            .find_evaluation(req.setting, &exclude, req.fp16)
            .filter(|_| self.reuse)
        {
            return Ok(i);
        }
        let (report, rerun) = self.run(req.setting, &exclude, req.fp16, req.rebase, obs)?;
        self.session.evaluations.push(Evaluation {
            stage: req.stage,
            origin: req.origin,
            setting: req.setting,
            exclude,
            fp16: req.fp16,
            report,
            rerun,
        });
        let i = self.session.evaluations.len() - 1;
        self.save()?;
        obs.changed(&self.session);
        Ok(i)
    }

    /// Makes (setting, exclude) the base of incremental evaluations without recording
    /// anything (its evaluation is already in the session).
    pub fn rebase(&mut self, setting: usize, exclude: &[String], obs: &dyn Observer) -> Result<()> {
        let exclude = self.in_graph_order(exclude);
        self.run(Some(setting), &exclude, false, true, obs)?;
        Ok(())
    }

    fn run(
        &mut self,
        setting: Option<usize>,
        exclude: &[String],
        fp16: bool,
        rebase: bool,
        obs: &dyn Observer,
    ) -> Result<(crate::eval::EvalReport, RerunStats)> {
        // Nothing quantized still needs a plan to hand over: any will do, all excluded.
        let (idx, exclude): (usize, HashSet<String>) = match setting {
            Some(i) => (i, exclude.iter().cloned().collect()),
            None => {
                let i = self.register(&super::grid::configured(&self.ws.config), obs)?;
                (i, self.ws.layer_names().into_iter().collect())
            }
        };
        let plan = self.plan_of(idx, obs)?;
        // One key for every plan: the evaluator then finds by comparing the simulated
        // graphs (constants included) which nodes differ from its base, so plans that
        // share their first layers' parameters share those layers' results.
        let key = if fp16 { "fp16" } else { "int8" };
        let total = self.inc_samples();
        let progress = |d: usize| obs.progress(Work::Evaluating, d, total);
        let (report, r) =
            self.inc
                .evaluate_with(&plan, key, &exclude, fp16, rebase, &progress, &self.cancel)?;
        let rerun = RerunStats {
            nodes_run: r.nodes_run,
            nodes_total: r.nodes_total,
            incremental: r.incremental,
        };
        Ok((report, rerun))
    }

    fn inc_samples(&self) -> usize {
        self.session.eval_samples
    }

    /// The plan of setting `i` (rebuilt from the statistics when not kept).
    fn plan_of(&mut self, i: usize, obs: &dyn Observer) -> Result<QuantPlan> {
        if let Some(p) = self.plans.get(&i) {
            return Ok(p.clone());
        }
        let setting = self.session.settings[i].setting;
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
    fn keep_plan(&mut self, i: usize, plan: QuantPlan) {
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

    /// `names` deduplicated, in graph order (unknown names last, sorted).
    pub fn in_graph_order(&self, names: &[String]) -> Vec<String> {
        let set: HashSet<&String> = names.iter().collect();
        let mut out: Vec<String> = self
            .session
            .layers
            .iter()
            .filter(|l| set.contains(&l.name))
            .map(|l| l.name.clone())
            .collect();
        let mut unknown: Vec<String> = names
            .iter()
            .filter(|n| !self.session.layers.iter().any(|l| &l.name == *n))
            .cloned()
            .collect();
        unknown.sort();
        unknown.dedup();
        out.extend(unknown);
        out
    }

    /// Toggles `layer` on the current exclude_op and evaluates the result (the TUI's
    /// space key). Returns the evaluation's index.
    pub fn toggle(&mut self, layer: &str, obs: &dyn Observer) -> Result<usize> {
        let setting = match self.session.current.setting {
            Some(s) => s,
            None => self.register(&super::grid::configured(&self.ws.config), obs)?,
        };
        let mut exclude = self.session.current.exclude.clone();
        let verb = if let Some(p) = exclude.iter().position(|e| e == layer) {
            exclude.remove(p);
            "include"
        } else {
            exclude.push(layer.to_string());
            "exclude"
        };
        self.session.log(format!("{verb} {layer}"));
        let i = self.evaluate(
            Request {
                stage: StageId::Exclude,
                origin: Origin::User,
                setting: Some(setting),
                exclude,
                fp16: false,
                rebase: true,
            },
            obs,
        )?;
        let e = &self.session.evaluations[i];
        self.session.current = Current {
            setting: Some(setting),
            exclude: e.exclude.clone(),
            evaluation: Some(i),
        };
        self.save()?;
        obs.changed(&self.session);
        Ok(i)
    }
}

/// A new session for a workspace.
pub fn new_session(ws: &Workspace, ev: &Evaluator) -> Session {
    let eval = ws.eval.as_ref();
    Session {
        format: SESSION_FORMAT,
        qtune_version: env!("CARGO_PKG_VERSION").to_string(),
        model: std::fs::canonicalize(&ws.config.model)
            .unwrap_or_else(|_| ws.config.model.clone())
            .display()
            .to_string(),
        model_sha256: ws.model.sha256.clone(),
        config_file: ws.config.file.as_ref().map(|f| {
            std::fs::canonicalize(f)
                .unwrap_or_else(|_| f.clone())
                .display()
                .to_string()
        }),
        config: ws.config.raw.clone(),
        metric: eval.map_or(crate::config::Metric::Top1, |e| e.config.metric),
        max_drop: eval.map_or(0.0, |e| e.config.max_drop),
        eval_samples: ev.samples(),
        fp32_metric: Some(ev.fp32_metric),
        sample_shapes: ws.sample_shapes.clone(),
        layers: ws
            .layers
            .iter()
            .map(|l| LayerInfo {
                name: l.info.name.clone(),
                op_type: l.info.op_type.clone(),
                activations: l.info.activations.clone(),
            })
            .collect(),
        settings: Vec::new(),
        histograms: BTreeMap::new(),
        evaluations: Vec::new(),
        stages: StageRecord::all_pending(),
        current: Current {
            setting: None,
            exclude: ws.config.exclude_op.clone(),
            evaluation: None,
        },
        log: Vec::new(),
    }
}
