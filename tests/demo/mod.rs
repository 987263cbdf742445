//! The bundled demo cut down for fast integration tests.

use std::path::Path;

/// Copies the demo's first `n` evaluation images and their labels into `dir/eval` and
/// returns a configuration (YAML text) over them with 4 calibration samples, top-1 and a
/// 0.01 drop; callers may append a `tune:` section.
pub fn small_config_text(root: &Path, dir: &Path, n: usize) -> String {
    let eval = dir.join("eval");
    std::fs::create_dir_all(&eval).unwrap();
    let src = root.join("assets/demo/eval");
    let labels = std::fs::read_to_string(src.join("labels.txt")).unwrap();
    let mut kept = String::new();
    for line in labels.lines().take(n) {
        let file = line.split_whitespace().next().unwrap();
        std::fs::copy(src.join(file), eval.join(file)).unwrap();
        kept.push_str(line);
        kept.push('\n');
    }
    std::fs::write(eval.join("labels.txt"), kept).unwrap();
    let a = root.join("assets/demo");
    format!(
        "model: {m}\nbatch_count: 4\npreprocess_parameter:\n  - input_file_path: {c}\n    mean_value: [127.5]\n    standard_deviation: [127.5]\n    resize: keep_ratio_pad\n    size: [48, 192]\nevaluation:\n  input_file_path: {e}\n  labels: {e}/labels.txt\n  classes: [\"0\", \"180\"]\n  metric: top1\n  max_drop: 0.01\n",
        m = a.join("ppocr-cls.onnx").display(),
        c = a.join("calib").display(),
        e = eval.display(),
    )
}
