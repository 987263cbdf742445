//! A deterministic, synthetic but realistic session for snapshot tests and the frame-time
//! benchmark: layers with histograms, divergence curves, evaluations of every stage, a
//! ranked exclude search and user toggles. No model or data involved.

use std::collections::BTreeMap;

use crate::calib::{AllCurves, DisplayHistogram, DivergenceType, QuantizeAlgo, WeightType};
use crate::config::{FloatPrecision, Metric, RawConfig};
use crate::eval::{EvalReport, LayerFidelity};
use crate::session::{
    ActivationSummary, Current, EvalId, Evaluation, ExcludeSearch, LayerInfo, LogEntry, Origin,
    RerunStats, Session, SessionInit, Setting, SettingId, SettingRecord, StageId, StageRecord,
    StageState, Stages,
};

/// A small deterministic generator (an LCG), so fixtures never change.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as f64 / (1u64 << 31) as f64
    }
}

const FP32: f64 = 0.97;

fn setting(bin: u32, start: f64, end: f64, p: f64) -> Setting {
    Setting {
        quantize_algo: QuantizeAlgo::HalfOffset,
        weight_type: WeightType::Vector,
        bin,
        divergence: DivergenceType::Kl,
        start_ratio: start,
        end_ratio: end,
        step_ratio: 0.01,
        max_percentile: p,
        batch_count: 10,
    }
}

fn histogram(rng: &mut Rng, relu: bool) -> DisplayHistogram {
    let hi = 2.0 + rng.next() * 8.0;
    let lo = if relu { 0.0 } else { -(1.0 + rng.next() * 5.0) };
    let n = 256;
    let sigma = (hi - lo) * (0.05 + rng.next() * 0.1);
    let counts = (0..n)
        .map(|b| {
            let x = lo + (b as f64 + 0.5) * (hi - lo) / n as f64;
            let core = if relu {
                40_000.0 * (-x / sigma).exp()
            } else {
                40_000.0 * (-(x * x) / (2.0 * sigma * sigma)).exp()
            };
            // a thin tail of outliers, as real activations have
            let tail = if b % 37 == 5 { 3.0 } else { 0.0 };
            (core + tail).floor() as u64
        })
        .collect();
    DisplayHistogram {
        lo,
        hi,
        counts,
        zero: if relu { 250_000 } else { 1_200 },
        nan: 0,
        inf: 0,
    }
}

fn curves(rng: &mut Rng, h: &DisplayHistogram, start: f64, end: f64) -> AllCurves {
    let steps = ((end - start) / 0.01).round() as usize;
    let ratios: Vec<f64> = (0..=steps).map(|i| start + i as f64 * 0.01).collect();
    let r0 = start + (end - start) * (0.2 + rng.next() * 0.5);
    let a = 0.5 + rng.next() * 2.0;
    let base = 0.002 + rng.next() * 0.01;
    let kl: Vec<f64> = ratios
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i == 0 && rng.next() < 0.3 {
                f64::INFINITY
            } else {
                base + a * (r - r0).powi(2) + 0.0004 * ((i as f64) * 1.7).sin().abs()
            }
        })
        .collect();
    let sym = kl.iter().map(|k| 2.2 * k).collect();
    let jsd = kl.iter().map(|k| 0.23 * k).collect();
    AllCurves {
        ranges: ratios.iter().map(|r| (h.lo * r, h.hi * r)).collect(),
        ratios,
        curves: [kl, sym, jsd],
    }
}

fn summary(c: &AllCurves) -> ActivationSummary {
    let i = c.chosen(DivergenceType::Kl);
    let (lo, hi) = c.ranges[i];
    ActivationSummary {
        lo,
        hi,
        scale: ((hi - lo) / 255.0) as f32,
        offset: (lo / ((hi - lo) / 255.0)).round() as i32,
        ratio: Some(c.ratios[i]),
        divergence: Some(c.curves[0][i]),
        boundary_hit: i == 0 || i + 1 == c.ratios.len(),
    }
}

fn report(rng: &mut Rng, layers: &[LayerInfo], exclude: &[String], int8: f64) -> EvalReport {
    EvalReport {
        metric: Metric::Top1,
        fp32: FP32,
        int8,
        delta: int8 - FP32,
        max_drop: 0.01,
        target_met: int8 >= FP32 - 0.01 - 1e-12,
        samples: 300,
        output_cosine: 0.9991,
        output_sqnr_db: 27.4,
        layers: layers
            .iter()
            .map(|l| {
                let q = !exclude.contains(&l.name);
                let sqnr = if q { 14.0 + rng.next() * 30.0 } else { 80.0 };
                LayerFidelity {
                    name: l.name.clone(),
                    op_type: l.op_type.clone(),
                    cosine: 1.0 - 10f64.powf(-sqnr / 10.0) * 0.5,
                    sqnr_db: sqnr,
                    quantized: q,
                }
            })
            .collect(),
        seconds: 1.8,
        invalid: None,
    }
}

fn stage(stage: StageId, state: StageState, evals: Vec<u32>, total: usize) -> StageRecord {
    StageRecord {
        stage,
        state,
        best: None,
        evaluations_done: evals.len(),
        evaluations: evals.into_iter().map(EvalId).collect(),
        evaluations_total: total,
        seconds: 0.0,
        searches: Vec::new(),
        duplicates: 0,
        note: None,
    }
}

/// A finished session over `n` layers: stages 1, 3, 5 missed the target, stage 7 met it
/// with two layers excluded (ranked search), stage 8 skipped; then the user toggled one
/// more layer.
pub fn session(n: usize) -> Session {
    build(n, usize::MAX, usize::MAX)
}

/// The finished session's first `settings` settings and `evals` evaluations.
fn build(n: usize, settings_kept: usize, evals_kept: usize) -> Session {
    let mut rng = Rng(0x5eed);
    let layers: Vec<LayerInfo> = (0..n)
        .map(|i| {
            let op = match i {
                _ if i + 1 == n => "Gemm",
                _ if i % 9 == 8 => "MatMul",
                _ => "Conv",
            };
            LayerInfo {
                name: if op == "Conv" {
                    format!("Conv@{i}")
                } else {
                    format!("{op}@{i}")
                },
                op_type: op.into(),
                activations: vec![format!("act_{i}")],
                macs: 1000 * (i as u64 + 1),
            }
        })
        .collect();
    let hists: BTreeMap<String, DisplayHistogram> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.activations[0].clone(), histogram(&mut rng, i % 3 != 0)))
        .collect();
    let specs = [
        setting(150, 0.7, 1.3, 1.0),
        setting(200, 0.5, 1.5, 0.99999),
        setting(250, 0.3, 1.7, 1.0),
    ];
    let settings: Vec<SettingRecord> = specs
        .iter()
        .enumerate()
        .map(|(k, st)| {
            let mut activations = BTreeMap::new();
            let mut all = BTreeMap::new();
            for (name, h) in &hists {
                let c = curves(&mut rng, h, st.start_ratio, st.end_ratio);
                activations.insert(name.clone(), summary(&c));
                all.insert(name.clone(), c);
            }
            SettingRecord {
                setting: *st,
                fingerprint: format!("fp{k}"),
                activations,
                // the middle setting was only tried, not selected: no curves kept
                curves: if k == 1 { BTreeMap::new() } else { all },
            }
        })
        .collect();
    let names: Vec<String> = layers.iter().map(|l| l.name.clone()).collect();
    let name = |i: usize| names[i.min(n - 1)].clone();
    let ex2 = vec![name(1), name(n / 2)];
    let ex3 = vec![name(1), name(4), name(n / 2)];
    let plan: Vec<(StageId, Origin, Option<u32>, Vec<String>, f64)> = vec![
        (StageId::Calibrate, Origin::Flow, Some(0), vec![], 0.9467),
        (StageId::Modify, Origin::Flow, Some(1), vec![], 0.9500),
        (StageId::Modify, Origin::Flow, Some(2), vec![], 0.9533),
        (StageId::Traverse, Origin::Flow, Some(2), vec![], 0.9533),
        (
            StageId::Exclude,
            Origin::Probe,
            Some(2),
            vec![name(1)],
            0.9567,
        ),
        (
            StageId::Exclude,
            Origin::Probe,
            Some(2),
            vec![name(n / 2)],
            0.9550,
        ),
        (StageId::Exclude, Origin::Flow, Some(2), ex2.clone(), 0.9633),
        (StageId::Exclude, Origin::User, Some(2), ex3.clone(), 0.9667),
    ];
    let evaluations: Vec<Evaluation> = plan
        .into_iter()
        .map(|(stage, origin, setting, exclude, m)| Evaluation {
            stage,
            origin,
            setting: setting.map(SettingId),
            report: report(&mut rng, &layers, &exclude, m),
            exclude,
            fp16: false,
            rerun: RerunStats {
                nodes_run: 40,
                nodes_total: 120,
                incremental: origin != Origin::Flow,
            },
            scores: Vec::new(),
            stopped: None,
        })
        .collect();
    let mut stages = vec![
        stage(StageId::Calibrate, StageState::Missed, vec![0], 1),
        stage(StageId::Modify, StageState::Missed, vec![1, 2], 2),
        stage(StageId::Traverse, StageState::Missed, vec![3], 12),
        stage(StageId::Correct, StageState::Skipped, vec![], 0),
        stage(StageId::Exclude, StageState::Met, vec![4, 5, 6], 3),
        stage(StageId::Fp16, StageState::Skipped, vec![], 0),
    ];
    for (r, best, secs) in [(0, 0, 4.1), (1, 2, 7.9), (2, 3, 38.5), (4, 6, 12.2)] {
        stages[r].best = Some(EvalId(best));
        stages[r].seconds = secs;
    }
    stages[2].duplicates = 11;
    let ranking: Vec<(String, f64)> = [1, n / 2, 4, 7, 2]
        .iter()
        .map(|&i| name(i))
        .enumerate()
        .map(|(k, l)| (l, 0.01 / (k as f64 + 1.0)))
        .collect();
    stages[4].searches = vec![
        ExcludeSearch {
            strategy: "ranked".into(),
            evaluations: 3,
            exclude: ex2.clone(),
            metric: Some(0.9633),
            target_met: true,
            ranking,
            result: Some(EvalId(6)),
            tried: vec![EvalId(6)],
            stopped: None,
        },
        ExcludeSearch {
            strategy: "layer_by_layer".into(),
            evaluations: 9,
            exclude: ex2,
            metric: Some(0.9633),
            target_met: true,
            ranking: vec![],
            result: Some(EvalId(6)),
            tried: vec![EvalId(6)],
            stopped: None,
        },
    ];
    let raw: RawConfig = serde_yaml::from_str(
        "model: ../assets/demo/ppocr-cls.onnx\nbin: 150\ntype: KL\nbatch_count: 10\n",
    )
    .expect("fixture config");
    let mut s = Session::new(SessionInit {
        model: "/data/models/ppocr-cls.onnx".into(),
        model_sha256: "ab".repeat(32),
        config_file: Some("/data/configs/default.yaml".into()),
        config: raw,
        metric: Metric::Top1,
        max_drop: 0.01,
        min_value: None,
        eval_samples: 300,
        fp32_metric: Some(FP32),
        float_precision: FloatPrecision::Fp32,
        degradations: Vec::new(),
        sample_shapes: Vec::new(),
        layers,
        exclude: ex3,
    });
    s.qtune_version = "0.1.0".into();
    for r in settings.into_iter().take(settings_kept) {
        s.push_setting(r).expect("a few settings");
    }
    for e in evaluations.into_iter().take(evals_kept) {
        s.push_evaluation(e).expect("a few evaluations");
    }
    s.histograms = BTreeMap::from([(10, hists)]);
    s.stages = Stages::from_records(stages).expect("every stage");
    s.current.setting = Some(SettingId(2));
    s.current.evaluation = Some(EvalId(7));
    s.log = vec![LogEntry {
        time: 1_790_000_000.0,
        action: format!("exclude {}", name(4)),
    }];
    s
}

/// A session in the middle of stage 5 (stage 1 and 3 done, the traversal at 5 of 12).
pub fn running(n: usize) -> Session {
    let mut s = build(n, usize::MAX, 4);
    s.current = Current {
        setting: Some(SettingId(2)),
        exclude: vec![],
        evaluation: Some(EvalId(3)),
    };
    s.log.clear();
    let t = s.stage_mut(StageId::Traverse);
    t.state = StageState::Running;
    t.evaluations_done = 5;
    t.seconds = 0.0;
    for st in [StageId::Correct, StageId::Exclude, StageId::Fp16] {
        let r = s.stage_mut(st);
        *r = stage(st, StageState::Pending, vec![], 0);
    }
    s
}

/// A new session: nothing run yet (stage 1 about to calibrate).
pub fn fresh(n: usize) -> Session {
    let mut s = build(n, 0, 0);
    s.histograms.clear();
    s.log.clear();
    s.current = Current::default();
    for st in StageId::ALL {
        *s.stage_mut(st) = stage(st, StageState::Pending, vec![], 0);
    }
    s
}
