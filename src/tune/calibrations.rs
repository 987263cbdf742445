//! Calibration for the tuner: histograms collected once per sample count (cumulatively: a
//! larger count continues from the nearest smaller one) and reused by every setting.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;

use crate::calib::{AllCurves, Prepared, QuantizeAlgo, WeightQuant, WeightType, prepare};
use crate::engine::Plan;
use crate::error::{Error, Result};
use crate::ir::ValueId;
use crate::quant::QuantPlan;
use crate::quant::calibrate::{
    AllTypes, PlanBuilder, Stats, activation_targets, collect_range, quantize_layer_weights,
};
use crate::session::Setting;
use crate::workspace::Workspace;

/// Called after each chunk of calibration samples: samples done, out of the total, and
/// the statistics so far (for live histograms).
pub type ChunkFn<'a> = dyn FnMut(usize, usize, &Stats) + 'a;

/// Collected statistics and the plan builders over them.
pub struct Calibrations<'w> {
    ws: &'w Workspace,
    fp32: Plan,
    targets: Vec<ValueId>,
    /// Statistics of the first `n` samples, by `n`.
    snapshots: BTreeMap<usize, Stats>,
    builders: BTreeMap<usize, PlanBuilder>,
    weights: HashMap<WeightType, BTreeMap<String, WeightQuant>>,
    /// Search results for every divergence type, by sample count and search range.
    searched: HashMap<SearchKey, AllTypes>,
}

/// Searches kept at once (each holds every activation's three results).
const MAX_SEARCHES_KEPT: usize = 128;

/// What a search depends on besides the divergence type: the sample count and the
/// search parameters (floats by their bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SearchKey(usize, QuantizeAlgo, u32, [u64; 4]);

impl SearchKey {
    fn of(n: usize, p: &crate::calib::SearchParams) -> SearchKey {
        let f = [p.start_ratio, p.end_ratio, p.step_ratio, p.max_percentile].map(f64::to_bits);
        SearchKey(n, p.algo, p.effective_bin(), f)
    }
}

impl<'w> Calibrations<'w> {
    pub fn new(ws: &'w Workspace) -> Result<Calibrations<'w>> {
        Ok(Calibrations {
            ws,
            fp32: Plan::new(&ws.graph, &ws.sample_shapes)?,
            targets: activation_targets(&ws.layers),
            snapshots: BTreeMap::new(),
            builders: BTreeMap::new(),
            weights: HashMap::new(),
            searched: HashMap::new(),
        })
    }

    /// The sample count a `batch_count` really uses (the data may hold fewer).
    pub fn effective(&self, batch_count: usize) -> usize {
        batch_count.min(self.ws.calib.len()).max(1)
    }

    /// Whether the statistics of `batch_count` samples are ready.
    pub fn has(&self, batch_count: usize) -> bool {
        self.builders.contains_key(&self.effective(batch_count))
    }

    /// Collects the statistics of the first `batch_count` samples, continuing from the
    /// largest smaller collection, in chunks reported to `on_chunk`.
    pub fn ensure(
        &mut self,
        batch_count: usize,
        on_chunk: &mut ChunkFn,
        cancel: &AtomicBool,
    ) -> Result<&Stats> {
        let n = self.effective(batch_count);
        if !self.snapshots.contains_key(&n) {
            let (mut stats, from) = match self.snapshots.range(..n).next_back() {
                Some((&k, s)) => (s.clone(), k),
                None => (Stats::default(), 0),
            };
            let chunk = (rayon::current_num_threads() * 2).max(2);
            let mut at = from;
            while at < n {
                let end = (at + chunk).min(n);
                let part = collect_range(
                    &self.fp32,
                    &self.ws.graph,
                    &self.ws.calib,
                    &self.targets,
                    at..end,
                    &|_| {},
                    cancel,
                )?;
                if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                stats.merge(&part)?;
                at = end;
                on_chunk(at, n, &stats);
            }
            self.builders.insert(n, PlanBuilder::new(&stats));
            self.snapshots.insert(n, stats);
        }
        Ok(&self.snapshots[&n])
    }

    /// The quantization plan of `setting`; its statistics must be ready (`ensure`).
    /// Searches are shared: one per sample count and search range serves every
    /// divergence type and weight type.
    pub fn plan(&mut self, setting: &Setting) -> Result<QuantPlan> {
        let n = self.effective(setting.batch_count);
        let ws = self.ws;
        if let std::collections::hash_map::Entry::Vacant(e) =
            self.weights.entry(setting.weight_type)
        {
            let w = quantize_layer_weights(&ws.graph, &ws.layers, setting.weight_type)?;
            e.insert(w);
        }
        let builder = self
            .builders
            .get(&n)
            .ok_or_else(|| Error::Usage(format!("internal: no statistics for batch_count {n}")))?;
        let search = setting.search_params();
        let key = SearchKey::of(n, &search);
        if !self.searched.contains_key(&key) {
            if self.searched.len() >= MAX_SEARCHES_KEPT {
                self.searched.clear();
            }
            self.searched.insert(key, builder.search_all_types(&search));
        }
        let k = setting.divergence.index();
        let results = self.searched[&key]
            .iter()
            .map(|(name, r)| {
                (
                    name.clone(),
                    r.as_ref().map(|a| a[k].clone()).map_err(Clone::clone),
                )
            })
            .collect();
        Ok(builder.assemble(
            &ws.layers,
            &search,
            setting.weight_type,
            &self.weights[&setting.weight_type],
            results,
        )?)
    }

    /// The divergence curves of every type of one activation under `setting`.
    pub fn curves(&self, setting: &Setting, activation: &str) -> Option<AllCurves> {
        let n = self.effective(setting.batch_count);
        let model = self.builders.get(&n)?.model(activation)?;
        match prepare(model, &setting.search_params()).ok()? {
            Prepared::Search(s) => Some(AllCurves {
                ratios: s.ratios().to_vec(),
                ranges: s.ranges().to_vec(),
                curves: s.curves(),
            }),
            _ => None,
        }
    }
}
