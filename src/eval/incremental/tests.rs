use std::path::Path;
use std::sync::OnceLock;

use super::*;
use crate::config::Config;
use crate::data::dataset::SourceKind;
use crate::workspace::Workspace;

const SAMPLES: usize = 24;

/// The demo workspace with its first `SAMPLES` evaluation images, and its plan.
fn demo() -> &'static (Workspace, QuantPlan) {
    static DEMO: OnceLock<(Workspace, QuantPlan)> = OnceLock::new();
    DEMO.get_or_init(|| {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml");
        let mut ws = Workspace::open(Config::load(&cfg).unwrap()).unwrap();
        let set = ws.eval.as_mut().unwrap();
        for s in &mut set.data.sources {
            if let SourceKind::Images { files, .. } = &mut s.kind {
                files.truncate(SAMPLES);
            }
        }
        if let Some(l) = &mut set.labels {
            l.truncate(SAMPLES);
        }
        let (plan, _) = ws.calibrate(&|_| {}, &AtomicBool::new(false)).unwrap();
        (ws, plan)
    })
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `Evaluator::evaluate` on the simulated graph.
fn full(ev: &Evaluator, plan: &QuantPlan, exclude: &HashSet<String>, fp16: bool) -> EvalReport {
    let sim = ev.ws.quantized_graph(plan, exclude).unwrap();
    let quantized = |name: &str| {
        !exclude.contains(name) && plan.layer(name).is_some_and(|l| plan.is_calibrated(l))
    };
    ev.evaluate(&sim, &quantized, fp16, &|_| {}).unwrap()
}

/// Runs one incremental evaluation and checks it against a full one.
fn check(
    inc: &mut IncrementalEvaluator,
    key: &str,
    exclude: &[&str],
    fp16: bool,
    rebase: bool,
) -> RerunStats {
    let (ws, plan) = demo();
    let _ = ws;
    let ex = set(exclude);
    let never = AtomicBool::new(false);
    let (mut got, stats) = inc
        .evaluate_with(plan, key, &ex, fp16, rebase, &|_| {}, &never)
        .unwrap();
    let want = full(inc.ev, plan, &ex, fp16);
    got.seconds = want.seconds;
    assert_eq!(
        got, want,
        "exclude {exclude:?}, fp16 {fp16}, stats {stats:?}"
    );
    assert_eq!(got.samples, SAMPLES);
    stats
}

fn layers() -> (String, String, String) {
    let names = demo().0.layer_names();
    let n = names.len();
    assert!(n > 8, "{n} layers");
    (
        names[n / 4].clone(),
        names[n / 2].clone(),
        names[n - 1].clone(),
    )
}

/// The toggles of a session, each equal to a full evaluation; returns the stats.
fn toggles(budget: usize) -> Vec<RerunStats> {
    let (ws, _) = demo();
    let ev = Evaluator::new(ws, &|_| {}).unwrap();
    let mut inc = IncrementalEvaluator::new(&ev, budget);
    let (early, mid, last) = layers();
    let (early, mid, last) = (early.as_str(), mid.as_str(), last.as_str());
    let mut stats = vec![
        check(&mut inc, "k", &[], false, true),
        check(&mut inc, "k", &[mid], false, true),
        check(&mut inc, "k", &[], false, true),
        check(&mut inc, "k", &[last], false, true),
        check(&mut inc, "k", &[early, mid], false, true),
    ];
    // Sensitivity probes from one base.
    for l in [early, mid, last] {
        stats.push(check(&mut inc, "k", &[early, mid, l], false, false));
        stats.push(check(&mut inc, "k", &[l], false, false));
    }
    stats.push(check(&mut inc, "k", &[early, mid], false, false));
    assert!(
        inc.cached_bytes() <= budget.max(4096),
        "{} bytes",
        inc.cached_bytes()
    );
    stats
}

#[test]
fn toggles_equal_full_evaluations() {
    let stats = toggles(1 << 30);
    assert!(!stats[0].incremental);
    assert_eq!(stats[0].nodes_run, stats[0].nodes_total);
    for s in &stats[1..] {
        assert!(s.incremental, "{stats:?}");
        assert!(s.nodes_run < s.nodes_total, "{stats:?}");
    }
    // Toggling the last layer re-runs only its Q/DQ nodes, itself and what follows.
    assert!(stats[3].nodes_run < stats[1].nodes_run, "{stats:?}");
    // Probes keep the base: re-excluding the base's layers re-runs nothing.
    assert_eq!(stats.last().unwrap().nodes_run, 0, "{stats:?}");
}

#[test]
fn a_tiny_budget_gives_the_same_results() {
    for budget in [0, 1 << 20] {
        let stats = toggles(budget);
        assert!(stats[1..].iter().all(|s| s.incremental));
    }
}

#[test]
fn fused_qdq_steps_compute_what_the_two_ops_compute() {
    let (ws, plan) = demo();
    let sim = ws.quantized_graph(plan, &HashSet::new()).unwrap();
    let fused = Plan::new(&sim, &ws.sample_shapes).unwrap();
    let kept = Plan::with_options(
        &sim,
        &ws.sample_shapes,
        PlanOptions {
            keep_qdq: true,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert!(fused.steps().len() < kept.steps().len());
    let set = ws.eval.as_ref().unwrap();
    for i in 0..4 {
        let x = set.data.load(i).unwrap();
        let mut a: HashMap<ValueId, Tensor> = HashMap::new();
        let mut b: HashMap<ValueId, Tensor> = HashMap::new();
        let oa = fused
            .run_observed(x.clone(), &mut |v, t| {
                a.insert(v, t.clone());
            })
            .unwrap();
        let ob = kept
            .run_observed(x, &mut |v, t| {
                b.insert(v, t.clone());
            })
            .unwrap();
        assert_eq!(oa, ob);
        for (v, t) in &a {
            assert_eq!(Some(t), b.get(v), "{}", fused.value_name(*v));
        }
    }
}

#[test]
fn a_new_plan_key_is_a_full_run() {
    let (ws, _) = demo();
    let ev = Evaluator::new(ws, &|_| {}).unwrap();
    let mut inc = IncrementalEvaluator::new(&ev, 1 << 30);
    let (_, mid, _) = layers();
    let a = check(&mut inc, "a", &[], false, true);
    let b = check(&mut inc, "b", &[&mid], false, false);
    let c = check(&mut inc, "a", &[&mid], false, false);
    let d = check(&mut inc, "b", &[], false, true);
    let e = check(&mut inc, "b", &[&mid], false, true);
    assert!(!a.incremental && !b.incremental && !d.incremental);
    assert!(c.incremental && e.incremental);
    assert_eq!(b.nodes_run, b.nodes_total);
    assert!(c.nodes_run < c.nodes_total);
    // FP16 is part of the base: switching it is a full run, toggling under it is not.
    let f = check(&mut inc, "b", &[&mid], true, true);
    let g = check(&mut inc, "b", &[], true, true);
    assert!(!f.incremental && g.incremental);
}

#[test]
fn cancel_leaves_the_caches_as_they_were() {
    let (ws, plan) = demo();
    let ev = Evaluator::new(ws, &|_| {}).unwrap();
    let mut inc = IncrementalEvaluator::new(&ev, 1 << 30);
    let (_, mid, _) = layers();
    check(&mut inc, "k", &[], false, true);
    let bytes = inc.cached_bytes();
    let r = inc.evaluate(
        plan,
        "k",
        &set(&[&mid]),
        false,
        &|_| {},
        &AtomicBool::new(true),
    );
    assert!(matches!(r, Err(Error::Cancelled)));
    assert_eq!(inc.cached_bytes(), bytes);
    let s = check(&mut inc, "k", &[&mid], false, true);
    assert!(s.incremental);
}

/// Timings on the whole demo evaluation set (300 images):
/// `cargo test --release --lib eval::incremental -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_demo() {
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml");
    let ws = Workspace::open(Config::load(&cfg).unwrap()).unwrap();
    let (plan, _) = ws.calibrate(&|_| {}, &AtomicBool::new(false)).unwrap();
    let t = Instant::now();
    let ev = Evaluator::new(&ws, &|_| {}).unwrap();
    println!(
        "Evaluator::new (FP32 pass): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let none = HashSet::new();
    let t = Instant::now();
    full(&ev, &plan, &none, false);
    println!(
        "Evaluator::evaluate (full, reference): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let names = ws.layer_names();
    let mid = names[names.len() / 2].clone();
    let t = Instant::now();
    let sim = ws.quantized_graph(&plan, &none).unwrap();
    let t_sim = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let qplan = Plan::with_options(&sim, &ws.sample_shapes, PlanOptions::default()).unwrap();
    let t_plan = t.elapsed().as_secs_f64();
    let inputs: Vec<Vec<Tensor>> = (0..ev.samples())
        .map(|i| ev.set.data.load(i).unwrap())
        .collect();
    let t = Instant::now();
    inputs.par_iter().for_each(|x| {
        qplan.run(x.clone()).unwrap();
    });
    let t_q = t.elapsed().as_secs_f64();
    let t = Instant::now();
    inputs.par_iter().for_each(|x| {
        ev.fp32_plan.run(x.clone()).unwrap();
    });
    println!(
        "simulate {t_sim:.3} s, compile {t_plan:.3} s, simulated run {t_q:.3} s, FP32 run {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let never = AtomicBool::new(false);
    let mut inc = IncrementalEvaluator::new(&ev, 1 << 30);
    // CPU seconds of the process (user + system): less noisy than wall time on a
    // shared machine.
    let cpu = || {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `u` is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        s(u.ru_utime) + s(u.ru_stime)
    };
    let mut go = |key: &str, ex: &HashSet<String>, rebase: bool, what: &str| {
        let c = cpu();
        let t = Instant::now();
        let (_, s) = inc
            .evaluate_with(&plan, key, ex, false, rebase, &|_| {}, &never)
            .unwrap();
        println!(
            "{what}: {:.3} s, CPU {:.3} s ({} of {} nodes, incremental {}), cache {:.1} MB",
            t.elapsed().as_secs_f64(),
            cpu() - c,
            s.nodes_run,
            s.nodes_total,
            s.incremental,
            inc.cached_bytes() as f64 / 1e6
        );
    };
    go("a", &none, true, "first evaluation (fills the FP32 cache)");
    for k in ["b", "b2", "b3"] {
        go(k, &none, false, "new plan, full run");
    }
    for k in ["c1", "c2", "c"] {
        go(k, &none, true, "new plan, full run, rebase");
    }
    let one: HashSet<String> = [mid.clone()].into();
    for _ in 0..2 {
        go("c", &one, true, &format!("toggle `{mid}` off"));
        go("c", &none, true, &format!("toggle `{mid}` on"));
    }
    go("c", &one, false, &format!("probe `{mid}`"));
}
