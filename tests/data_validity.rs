//! Values are checked where they enter (issue 15): opsets (1 to 28), labels, classes, parameter
//! records, non-finite data; and an evaluation of NaN outputs is never "target met".

mod support;

use std::path::Path;

use support::*;

#[test]
fn opsets_outside_1_to_28_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for opset in [0, -1, 29, 999] {
        let m = d.path().join(format!("m{opset}.onnx"));
        let bytes = model(
            vec![node("Relu", "relu", &["x"], &["y"])],
            vec![value("x", &[Some(4)])],
            vec![value("y", &[Some(4)])],
            vec![],
            opset,
        );
        std::fs::write(&m, bytes).unwrap();
        let out = qtune(&["inspect", s(&m)]);
        assert_refused(&out, &[&format!("opset {opset} "), "opsets 1 to 28"]);
    }
}

/// The demo workspace with an evaluation section over its calibration images.
fn with_evaluation(cfg: &Path, labels: &str, classes: &str) {
    let dir = cfg.parent().unwrap();
    std::fs::write(dir.join("labels.txt"), labels).unwrap();
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text.push_str(&format!(
        "evaluation:\n  input_file_path: calib\n  labels: labels.txt\n{classes}  metric: top1\n"
    ));
    std::fs::write(cfg, text).unwrap();
}

#[test]
fn labels_outside_the_classes_and_duplicate_classes_are_refused() {
    let (_d, cfg) = demo_workspace(2);
    with_evaluation(&cfg, "0000.png 0\n0001.png 999\n", "");
    let out = qtune(&["eval", "-c", s(&cfg)]);
    assert_refused(&out, &["labels.txt", "0001.png", "class 999", "2 classes"]);
    let (_d, cfg) = demo_workspace(2);
    with_evaluation(
        &cfg,
        "0000.png 0\n0001.png 0\n",
        "  classes: [\"0\", \"0\"]\n",
    );
    let out = qtune(&["eval", "-c", s(&cfg)]);
    assert_refused(&out, &["c.yaml:", "evaluation.classes", "listed twice"]);
}

#[test]
fn hand_edited_parameter_records_are_refused() {
    let (d, cfg) = demo_workspace(2);
    let p = d.path().join("p.yaml");
    let out = qtune(&["--quiet", "calibrate", "-c", s(&cfg), "-o", s(&p)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&p).unwrap();
    let record: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let first_activation = |r: &serde_yaml::Value| -> String {
        let m = r["plan"]["activations"].as_mapping().unwrap();
        m.keys().next().unwrap().as_str().unwrap().to_string()
    };
    let act = first_activation(&record);
    let layer = record["plan"]["layers"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    type Edit = Box<dyn Fn(&mut serde_yaml::Value)>;
    let num = |v: f64| serde_yaml::Value::from(v);
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new({
                let a = act.clone();
                move |r| r["plan"]["activations"][a.as_str()]["scale"] = num(0.0)
            }),
            "scale = 0",
        ),
        (
            Box::new({
                let a = act.clone();
                move |r| r["plan"]["activations"][a.as_str()]["scale"] = num(f64::NAN)
            }),
            "scale = NaN",
        ),
        (
            Box::new({
                let a = act.clone();
                move |r| r["plan"]["activations"][a.as_str()]["offset"] = 1000.into()
            }),
            "offset = 1000",
        ),
        (
            Box::new({
                let l = layer.clone();
                move |r| r["plan"]["weights"][l.as_str()]["scales"][0] = num(-1.0)
            }),
            "-1",
        ),
        (
            Box::new({
                let l = layer.clone();
                move |r| {
                    let w = r["plan"]["weights"].as_mapping_mut().unwrap();
                    let v = w.remove(l.as_str()).unwrap();
                    w.insert("no_such_layer".into(), v);
                }
            }),
            "no_such_layer",
        ),
    ];
    for (edit, needle) in cases {
        let mut r = record.clone();
        edit(&mut r);
        let bad = d.path().join("bad.yaml");
        std::fs::write(&bad, serde_yaml::to_string(&r).unwrap()).unwrap();
        let out = qtune(&[
            "export",
            "--params",
            s(&bad),
            "--trt-cache",
            s(&d.path().join("x")),
        ]);
        assert_refused(&out, &["bad.yaml", needle]);
    }
}

/// A config for the demo model on one stacked `.npy` of `samples` inputs.
fn npy_workspace(
    samples: usize,
    nan_at: Option<usize>,
    extra: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let per = 3 * 48 * 192;
    let mut data: Vec<f32> = (0..samples * per)
        .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
        .collect();
    if let Some(k) = nan_at {
        data[k * per + 5] = f32::NAN;
    }
    std::fs::write(
        d.path().join("x.npy"),
        npy_f32(&[samples, 3, 48, 192], &data),
    )
    .unwrap();
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model: {}\nbatch_count: {samples}\n{extra}preprocess_parameter:\n  - input_type: NPY\n    input_file_path: x.npy\n",
            root().join("assets/demo/ppocr-cls.onnx").display()
        ),
    )
    .unwrap();
    (d, cfg)
}

#[test]
fn nan_in_calibration_data_fails_naming_the_tensor_and_the_sample() {
    let (_d, cfg) = npy_workspace(3, Some(1), "");
    let out = qtune(&["calibrate", "-c", s(&cfg)]);
    assert_refused(
        &out,
        &["activation `x`", "1 NaN", "x.npy[1]", "max_nonfinite"],
    );
    let (_d, cfg) = npy_workspace(3, Some(1), "max_nonfinite: 1000000\n");
    let out = qtune(&["--quiet", "calibrate", "-c", s(&cfg)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_evaluation_with_nan_outputs_is_invalid_and_never_meets_the_target() {
    // y = MatMul(Sqrt(x), W) with some x < 0: the layer `mm` gets NaN and passes it on.
    let d = tempfile::tempdir().unwrap();
    let w: Vec<f32> = (0..16)
        .map(|i| if i % 3 == 0 { -1.0 } else { 0.5 })
        .collect();
    let m = d.path().join("m.onnx");
    std::fs::write(
        &m,
        model(
            vec![
                node("Sqrt", "sqrt", &["x"], &["r"]),
                node("MatMul", "mm", &["r", "w"], &["y"]),
            ],
            vec![value("x", &[None, Some(4)])],
            vec![value("y", &[None, Some(4)])],
            vec![f32_tensor("w", &[4, 4], &w)],
            13,
        ),
    )
    .unwrap();
    let x: Vec<f32> = (0..16).map(|i| (i as f32 - 3.0) / 8.0).collect();
    std::fs::write(d.path().join("x.npy"), npy_f32(&[4, 4], &x)).unwrap();
    let cfg = d.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "model: m.onnx\nbatch_count: 4\nmax_nonfinite: 1000\npreprocess_parameter:\n  - input_type: NPY\n    input_file_path: x.npy\nevaluation:\n  input_file_path: x.npy\n  metric: cosine\n  max_drop: 1.0\n",
    )
    .unwrap();
    let out = qtune(&["--quiet", "eval", "-c", s(&cfg), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &doc["report"];
    assert_eq!(r["target_met"], false, "{r}");
    let why = r["invalid"].as_str().expect("marked invalid");
    assert!(why.contains("NaN") && why.contains("`mm`"), "{why}");
}
