//! `qtune tune` end to end: the flow on the demo, sessions that survive SIGKILL and
//! resume to the same result, and sessions refused for another model.

mod demo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn qtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qtune"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run qtune")
}

/// A demo config over a small evaluation subset (the first `n` images) and a small
/// stage 5 grid, with `extra` YAML appended under `tune:`. `all_stages`: continue past
/// the target, so every stage runs.
fn small_config(dir: &Path, n: usize, all_stages: bool, extra: &str) -> PathBuf {
    let mut text = demo::small_config_text(root(), dir, n);
    text.push_str(&format!(
        "tune:\n  continue_after_target: {all_stages}\n  exclude_search: ranked\n  grid:\n    quantize_algo: [HALF_OFFSET, NON_OFFSET]\n    weight_type: [VECTOR_TYPE]\n    bin: [100, 150]\n    type: [KL, JSD]\n    ratios: [[0.7, 1.3, 0.01]]\n    max_percentile: [1.0]\n    batch_count: [4, 8]\n{extra}"
    ));
    let path = dir.join("tune.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Asserts exit code 0 (stderr in the message otherwise).
fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that a `tune` ran its flow to the end: exit 0 (target met) or 1 (missed).
fn assert_finished(out: &Output) {
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Starts `qtune tune -c cfg --session session --quiet` (stderr piped) and returns it
/// once stage 5 has finished an evaluation.
fn tune_until_stage_5(cfg: &str, session: &Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qtune"))
        .args([
            "tune",
            "-c",
            cfg,
            "--session",
            session.to_str().unwrap(),
            "--quiet",
        ])
        .current_dir(root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "stage 5 never started"
        );
        if let Some(v) = saved(session)
            && v["stages"][2]["evaluations_done"].as_u64().unwrap_or(0) >= 1
        {
            return child;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "qtune ended before stage 5"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The session at `path` as saved (snapshot and journal), as JSON; `None` while it cannot
/// be read.
fn saved(path: &Path) -> Option<Value> {
    let s = qtune::session::load(path).ok()?;
    serde_json::to_value(&s).ok()
}

/// A saved session without what depends on timing and interruptions: seconds, log
/// entries, and how much an incremental evaluation re-ran.
fn comparable(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in ["seconds", "time", "rerun", "log"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// The parts of a `--json` summary that must not depend on interruptions.
fn outcome(v: &Value) -> Value {
    let stages: Vec<Value> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::json!({
                "step": s["step"], "state": s["state"], "evaluations": s["evaluations"],
                "duplicates": s["duplicates"],
                "best": s["best"].get("int8"), "exclude": s["best"].get("exclude_op"),
                "setting": s["best"].get("setting"), "searches": s["exclude_searches"],
            })
        })
        .collect();
    serde_json::json!({ "result": v["result"], "met": v["target_met"], "stages": stages })
}

#[test]
fn the_demo_flow_meets_the_target_at_stage_1_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("demo.session.json");
    let out = qtune(&[
        "tune",
        "-c",
        "configs/default.yaml",
        "--session",
        s.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert_success(&out);
    let v = json_of(&out);
    assert_eq!(v["met_stage"], 1);
    let session = saved(&s).unwrap();
    assert_eq!(session["stages"][0]["state"], "met");
    assert_eq!(session["stages"][1]["state"], "skipped");
    assert_eq!(session["evaluations"].as_array().unwrap().len(), 1);
    let e = &session["evaluations"][0];
    assert_eq!(e["report"]["samples"], 300);
    assert!(e["report"]["int8"].as_f64().unwrap() > 0.97);
}

#[test]
fn sigkill_during_stage_5_then_resume_ends_like_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 60, true, "");
    let cfg = cfg.to_str().unwrap();
    let whole = dir.path().join("whole.json");
    let out = qtune(&[
        "tune",
        "-c",
        cfg,
        "--session",
        whole.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert_finished(&out);
    let expected = outcome(&json_of(&out));
    let whole_session = comparable(saved(&whole).unwrap());
    // The grid has ties (60 images, top-1 in steps of 1/60): the choice among them must
    // not depend on the order evaluations ran in.
    let metrics: Vec<f64> = whole_session["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["report"]["int8"].as_f64().unwrap())
        .collect();
    let distinct: std::collections::BTreeSet<u64> = metrics.iter().map(|m| m.to_bits()).collect();
    assert!(
        distinct.len() < metrics.len(),
        "the grid must have ties: {metrics:?}"
    );

    let killed = dir.path().join("killed.json");
    let mut child = tune_until_stage_5(cfg, &killed);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = saved(&killed).unwrap();
    assert_eq!(partial["stages"][2]["state"], "running");

    let out = qtune(&[
        "tune",
        "-c",
        cfg,
        "--session",
        killed.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert_finished(&out);
    assert_eq!(outcome(&json_of(&out)), expected);
    // Field by field, the resumed session holds what the uninterrupted one holds.
    assert_eq!(comparable(saved(&killed).unwrap()), whole_session);
}

#[test]
fn a_session_of_another_model_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 8, false, "");
    let s = dir.path().join("s.json");
    let out = qtune(&[
        "tune",
        "-c",
        cfg.to_str().unwrap(),
        "--session",
        s.to_str().unwrap(),
        "--quiet",
    ]);
    assert_finished(&out);
    let mut v: Value = serde_json::from_slice(&std::fs::read(&s).unwrap()).unwrap();
    v["model_sha256"] = "0123456789abcdef".into();
    std::fs::write(&s, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = qtune(&[
        "tune",
        "-c",
        cfg.to_str().unwrap(),
        "--session",
        s.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another model") && err.contains("--force"),
        "{err}"
    );
    let out = qtune(&[
        "tune",
        "-c",
        cfg.to_str().unwrap(),
        "--session",
        s.to_str().unwrap(),
        "--quiet",
        "--force",
    ]);
    assert_finished(&out);
    // The other model's session was moved aside, not lost; the new one is this model's.
    let backups: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("s.json.0123456789ab") && n.ends_with(".bak"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let fresh = saved(&s).unwrap();
    assert_ne!(fresh["model_sha256"], "0123456789abcdef");
    assert_eq!(fresh["evaluations"].as_array().unwrap().len(), 1);
}

#[test]
fn a_corrupt_session_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 4, false, "");
    let s = dir.path().join("s.json");
    std::fs::write(&s, b"{\"format\": 1, \"trunc").unwrap();
    let out = qtune(&[
        "tune",
        "-c",
        cfg.to_str().unwrap(),
        "--session",
        s.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a qtune session"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The user's file is left as it was.
    assert_eq!(std::fs::read(&s).unwrap(), b"{\"format\": 1, \"trunc");
}

#[test]
fn bench_tune_json_has_the_documented_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 8, false, "");
    let out = qtune(&[
        "bench-tune",
        "-c",
        cfg.to_str().unwrap(),
        "--repeat",
        "1",
        "--json",
    ]);
    assert_success(&out);
    let v = json_of(&out);
    assert_eq!(v["eval_samples"], 8);
    for key in ["fp32_evaluation_s", "stage1_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    let positions: Vec<&str> = v["toggles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["position"].as_str().unwrap())
        .collect();
    assert_eq!(positions, ["first", "middle", "last"]);
    for t in v["toggles"].as_array().unwrap() {
        let (run, total) = (
            t["steps_rerun"].as_u64().unwrap(),
            t["steps_total"].as_u64().unwrap(),
        );
        assert!(run >= 1 && run <= total, "{t}");
        assert!(t["min_s"].as_f64().unwrap() <= t["median_s"].as_f64().unwrap());
    }
    // The first layer's toggle re-runs everything, the last layer's only the tail.
    let toggles = v["toggles"].as_array().unwrap();
    assert_eq!(toggles[0]["steps_rerun"], toggles[0]["steps_total"]);
    assert!(toggles[2]["steps_rerun"].as_u64() < toggles[1]["steps_rerun"].as_u64());
    let new = &v["new_setting"];
    assert_eq!(new["settings"], 2, "{new}");
    assert!(new["median_evaluation_s"].as_f64().unwrap() > 0.0);
    assert!(new["median_search_s"].as_f64().unwrap() >= 0.0);
}

#[test]
fn ctrl_c_stops_at_a_safe_point_saves_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 20, true, "");
    let cfg = cfg.to_str().unwrap();
    let s = dir.path().join("s.json");
    let child = tune_until_stage_5(cfg, &s);
    // SAFETY: kill only sends a signal to the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("resumes"),
        "{err}"
    );
    let v = saved(&s).unwrap();
    assert_eq!(v["stages"][2]["state"], "running");
    let log = v["log"].as_array().unwrap();
    assert!(
        log.last().unwrap()["action"]
            .as_str()
            .unwrap()
            .contains("interrupted")
    );
    // The same command finishes the flow from there.
    let out = qtune(&[
        "tune",
        "-c",
        cfg,
        "--session",
        s.to_str().unwrap(),
        "--quiet",
    ]);
    assert_finished(&out);
}

#[test]
fn when_no_int8_result_can_meet_the_target_stage_7_misses_and_stage_8_concludes_fp16() {
    let dir = tempfile::tempdir().unwrap();
    // top-1 can never reach 1.01: every INT8 stage must miss — even a blacklist of every
    // layer, which is FP32 and must not count as meeting the target.
    let cfg = small_config(dir.path(), 8, false, "  max_excluded: 3\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  max_drop: 0.01\n", "  min_value: 1.01\n");
    std::fs::write(&cfg, text).unwrap();
    let s = dir.path().join("s.json");
    let out = qtune(&[
        "tune",
        "-c",
        cfg.to_str().unwrap(),
        "--session",
        s.to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert_eq!(v["target_met"], false);
    assert_eq!(v["conclusion"], "fp16");
    assert_eq!(v["fallback"]["stage"], 8);
    let stage = |step: u64| {
        v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == step)
            .unwrap()
            .clone()
    };
    assert_eq!(stage(7)["state"], "missed");
    assert_eq!(stage(8)["state"], "missed");
    for search in stage(7)["exclude_searches"].as_array().unwrap() {
        assert_eq!(search["target_met"], false, "{search}");
        assert!(search["exclude"].as_array().unwrap().len() <= 3, "{search}");
        assert!(
            search["stopped"].as_str().unwrap().contains("max_excluded"),
            "{search}"
        );
    }
    // Every blacklist tried is in the session, none larger than the limit.
    let session = saved(&s).unwrap();
    for e in session["evaluations"].as_array().unwrap() {
        if e["stage"] == "7" {
            assert!(e["exclude"].as_array().unwrap().len() <= 3);
        }
    }
}

#[test]
fn export_session_says_which_evaluation_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 8, false, "");
    let s = dir.path().join("s.json");
    assert_finished(&qtune(&[
        "tune",
        "-c",
        cfg.to_str().unwrap(),
        "--session",
        s.to_str().unwrap(),
        "--quiet",
    ]));
    let q = dir.path().join("q.onnx");
    let out = qtune(&[
        "export",
        "--session",
        s.to_str().unwrap(),
        "--qdq",
        q.to_str().unwrap(),
    ]);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("exporting #0 (stage 1, HALF_OFFSET VECTOR_TYPE bin 150"),
        "{text}"
    );
    assert!(text.contains("QDQ model, opset 13"), "{text}");
}

#[test]
fn damaged_sessions_are_refused_by_every_command_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 4, false, "");
    let fixture = root().join("tests/fixtures/sessions/format1-demo.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    v["stages"][0]["best"] = 4242.into();
    let bytes = serde_json::to_vec(&v).unwrap();
    let s = dir.path().join("s.json");
    std::fs::write(&s, &bytes).unwrap();
    let q = dir.path().join("q.onnx");
    let (sp, qp, cp) = (
        s.to_str().unwrap(),
        q.to_str().unwrap(),
        cfg.to_str().unwrap(),
    );
    for args in [
        vec!["export", "--session", sp, "--qdq", qp],
        vec!["tune", "-c", cp, "--session", sp, "--quiet"],
        vec!["eval", "-c", cp, "--session", sp, "--quiet"],
        vec!["review", sp],
    ] {
        let out = qtune(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("stages (step 1).best = 4242, but there are"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(
            std::fs::read(&s).unwrap(),
            bytes,
            "{args:?} changed the file"
        );
    }
    assert!(!q.exists());
}

#[test]
fn a_second_writer_of_a_session_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(dir.path(), 20, true, "");
    let cfg = cfg.to_str().unwrap();
    let s = dir.path().join("s.json");
    let mut first = tune_until_stage_5(cfg, &s);
    let before = saved(&s).unwrap();
    let out = qtune(&[
        "tune",
        "-c",
        cfg,
        "--session",
        s.to_str().unwrap(),
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("being written by another qtune")
            && err.contains(&format!("pid {}", first.id()))
            && err.contains("qtune tune"),
        "{err}"
    );
    // Reading while it is written is fine.
    let out = qtune(&[
        "export",
        "--session",
        s.to_str().unwrap(),
        "--trt-cache",
        dir.path().join("c").to_str().unwrap(),
    ]);
    assert_success(&out);
    first.kill().unwrap();
    first.wait().unwrap();
    let after = saved(&s).unwrap();
    assert!(
        after["evaluations"].as_array().unwrap().len()
            >= before["evaluations"].as_array().unwrap().len(),
        "the second writer dropped evaluations"
    );
}

/// The demo's configuration with a small stage 5 grid, running every stage; `exhaustive`
/// turns races off.
fn demo_grid_config(dir: &Path, exhaustive: bool) -> PathBuf {
    let text = std::fs::read_to_string(root().join("configs/default.yaml"))
        .unwrap()
        .replace("../assets", &root().join("assets").display().to_string());
    let text = format!(
        "{text}\ntune:\n  continue_after_target: true\n  exhaustive: {exhaustive}\n  exclude_search: layer_by_layer\n  grid:\n    quantize_algo: [HALF_OFFSET, NON_OFFSET]\n    weight_type: [VECTOR_TYPE, SCALAR_TYPE]\n    bin: [100, 150]\n    type: [KL]\n    ratios: [[0.7, 1.3, 0.01], [0.3, 1.7, 0.01]]\n    max_percentile: [1.0]\n    batch_count: [10]\n"
    );
    let path = dir.join(format!("demo-grid-{exhaustive}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_raced_flow_picks_what_the_exhaustive_flow_picks_on_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    let mut stopped = Vec::new();
    for exhaustive in [true, false] {
        let cfg = demo_grid_config(dir.path(), exhaustive);
        let s = dir.path().join(format!("s-{exhaustive}.json"));
        let out = qtune(&[
            "tune",
            "-c",
            cfg.to_str().unwrap(),
            "--session",
            s.to_str().unwrap(),
            "--json",
            "--quiet",
        ]);
        assert_finished(&out);
        let v = json_of(&out);
        let bests: Vec<Value> = v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|st| {
                serde_json::json!([
                    st["step"],
                    st["best"]["int8"],
                    st["best"]["setting"],
                    st["best"]["exclude_op"]
                ])
            })
            .collect();
        results.push((v["result"].clone(), bests));
        let session = saved(&s).unwrap();
        let evals = session["evaluations"].as_array().unwrap();
        let n = evals.iter().filter(|e| !e["stopped"].is_null()).count();
        for e in evals.iter().filter(|e| !e["stopped"].is_null()) {
            let done = e["stopped"]["samples"].as_u64().unwrap();
            assert!(done < 300 && e["report"]["samples"] == done, "{e}");
            assert_eq!(
                e["report"]["target_met"], false,
                "an estimate is never a result"
            );
        }
        stopped.push(n);
    }
    assert_eq!(stopped[0], 0, "exhaustive: nothing stopped");
    assert!(
        stopped[1] > 0,
        "the race stopped no candidate: it proves nothing"
    );
    assert_eq!(results[0].0, results[1].0, "the flow's result");
    assert_eq!(results[0].1, results[1].1, "every stage's best");
}
