//! From the raw YAML values to a validated `Config`, with positioned errors.

use std::path::{Path, PathBuf};

use super::raw::{InputType, Metric, OneOrMany, RawConfig, RawInput, TOP_LEVEL_KEYS};
use super::{Config, ConfigError, EvalConfig, InputConfig, yaml};
use crate::calib::{CalibError, DivergenceType, QuantizeAlgo, SearchParams, WeightType};
use crate::data::image::{ImageFormat, ResizeMode};

const NESTED_KEYS: &[&str] = &[
    "input_type",
    "input_file_path",
    "image_format",
    "mean_value",
    "standard_deviation",
    "resize",
    "size",
    "short_side",
    "crop",
    "labels",
    "classes",
    "metric",
    "iou_threshold",
    "command",
    "command_timeout",
    "max_drop",
    "min_value",
];

/// Keys that may appear below the top level.
fn nested_keys() -> impl Iterator<Item = &'static str> {
    NESTED_KEYS
        .iter()
        .chain(super::tune::TUNE_KEYS)
        .chain(super::tune::GRID_KEYS)
        .copied()
}

pub(super) fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let raw: RawConfig = yaml::from_str(text).map_err(|e| yaml_error(&file, text, e))?;
    let ctx = Ctx { file: &file, text };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let rel = |p: &str| -> PathBuf {
        if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            dir.join(p)
        }
    };

    let model = raw.model.as_deref().ok_or_else(|| {
        ctx.file_err("key `model` is missing: name the ONNX model (relative to this file)")
    })?;
    if let Some(d) = &raw.device
        && d != "USE_CPU"
    {
        return Err(ctx.at(
            &["device"],
            format!("key `device`: `{d}` is not allowed; allowed: USE_CPU"),
        ));
    }
    let search = SearchParams {
        algo: raw.quantize_algo.unwrap_or(QuantizeAlgo::HalfOffset),
        bin: raw.bin.unwrap_or(crate::calib::DEFAULT_BIN),
        divergence: raw.divergence.unwrap_or(DivergenceType::Kl),
        start_ratio: raw.start_ratio.unwrap_or(0.7),
        end_ratio: raw.end_ratio.unwrap_or(1.3),
        step_ratio: raw.step_ratio.unwrap_or(0.01),
        max_percentile: raw.max_percentile.unwrap_or(1.0),
    };
    search.validate().map_err(|e| match e {
        CalibError::InvalidParam {
            key,
            value,
            allowed,
        } => ctx.at(
            &[key],
            format!("key `{key}`: {value} is not allowed; allowed: {allowed}"),
        ),
        other => ctx.file_err(&other.to_string()),
    })?;
    let batch_count = raw.batch_count.unwrap_or(10);
    if batch_count == 0 || batch_count > 1_000_000 {
        return Err(ctx.at(
            &["batch_count"],
            format!("key `batch_count`: {batch_count} is not allowed; allowed: 1..=1000000"),
        ));
    }
    let mut inputs = Vec::new();
    for (i, r) in raw.preprocess_parameter.iter().enumerate() {
        inputs.push(input_config(&ctx, i, r, &rel)?);
    }
    let evaluation = match &raw.evaluation {
        None => None,
        Some(e) => {
            let paths = match &e.input_file_path {
                None => {
                    return Err(ctx.at(
                        &["evaluation"],
                        "key `evaluation.input_file_path` is missing: name the evaluation data"
                            .into(),
                    ));
                }
                Some(OneOrMany::One(p)) => vec![rel(p)],
                Some(OneOrMany::Many(v)) => v.iter().map(|p| rel(p)).collect(),
            };
            let metric = e.metric.unwrap_or(Metric::Top1);
            if matches!(metric, Metric::Top1 | Metric::Top5) && e.labels.is_none() {
                return Err(ctx.at(
                    &["evaluation", "metric"],
                    format!(
                        "key `evaluation.metric`: {} needs `evaluation.labels`",
                        metric.as_str()
                    ),
                ));
            }
            if metric == Metric::Command && e.command.as_deref().is_none_or(|c| c.trim().is_empty())
            {
                return Err(ctx.at(
                    &["evaluation", "metric"],
                    "key `evaluation.metric`: command needs `evaluation.command`".into(),
                ));
            }
            let iou_threshold = e.iou_threshold.unwrap_or(0.5);
            if !(iou_threshold.is_finite() && iou_threshold > 0.0 && iou_threshold < 1.0)
                && metric == Metric::Iou
            {
                return Err(ctx.at(&["evaluation", "iou_threshold"], format!("key `evaluation.iou_threshold`: {iou_threshold} is not allowed; allowed: 0 < t < 1")));
            }
            let max_drop = e.max_drop.unwrap_or(0.01);
            if !(max_drop.is_finite() && max_drop >= 0.0) {
                return Err(ctx.at(&["evaluation", "max_drop"], format!("key `evaluation.max_drop`: {max_drop} is not allowed; allowed: a number >= 0")));
            }
            let min_value = resolve_min_value(&ctx, e, metric)?;
            if let Some(classes) = &e.classes {
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = classes.iter().find(|c| !seen.insert(c.as_str())) {
                    return Err(ctx.at(&["evaluation", "classes"], format!("key `evaluation.classes`: `{dup}` is listed twice; allowed: distinct label tokens, one per output index")));
                }
                if classes.is_empty() {
                    return Err(ctx.at(&["evaluation", "classes"], "key `evaluation.classes`: an empty list is not allowed; allowed: one label token per output index".into()));
                }
            }
            let timeout = e
                .command_timeout
                .unwrap_or(crate::eval::command::DEFAULT_TIMEOUT_S);
            if !(1..=86_400).contains(&timeout) {
                return Err(ctx.at(&["evaluation", "command_timeout"], format!("key `evaluation.command_timeout`: {timeout} is not allowed; allowed: 1..=86400 (seconds)")));
            }
            Some(EvalConfig {
                command_timeout: std::time::Duration::from_secs(timeout),
                paths,
                labels: e.labels.as_deref().map(&rel),
                classes: e.classes.clone(),
                metric,
                iou_threshold,
                command: e.command.clone(),
                max_drop,
                min_value,
            })
        }
    };
    let tune = super::tune::resolve(raw.tune.as_ref()).map_err(|(path, msg)| ctx.at(&path, msg))?;
    Ok(Config {
        file: Some(path.to_path_buf()),
        tune,
        model: rel(model),
        search,
        weight_type: raw.weight_type.unwrap_or(WeightType::Vector),
        batch_count: batch_count as usize,
        max_nonfinite: raw.max_nonfinite.unwrap_or(0),
        exclude_op: raw.exclude_op.clone(),
        inputs,
        evaluation,
        float_precision: raw.float_precision.unwrap_or(super::FloatPrecision::Fp32),
        raw,
    })
}

/// `evaluation.min_value`: an absolute target, exclusive with `max_drop`, required for
/// `sqnr` (FP32 scored against itself is exact, so a drop from it means nothing).
fn resolve_min_value(
    ctx: &Ctx,
    e: &super::raw::RawEvaluation,
    metric: Metric,
) -> Result<Option<f64>, ConfigError> {
    match (e.min_value, e.max_drop) {
        (Some(v), _) if !v.is_finite() => Err(ctx.at(
            &["evaluation", "min_value"],
            format!("key `evaluation.min_value`: {v} is not allowed; allowed: a finite number"),
        )),
        (Some(_), Some(_)) => Err(ctx.at(
            &["evaluation", "min_value"],
            "key `evaluation.min_value`: give either `min_value` (an absolute target) or `max_drop` (a drop from FP32), not both".into(),
        )),
        (None, _) if metric == Metric::Sqnr => Err(ctx.at(
            &["evaluation", "metric"],
            "key `evaluation.metric`: sqnr needs `evaluation.min_value` (e.g. 30 for 30 dB): FP32 against itself scores the 200 dB cap, so a drop from it means nothing".into(),
        )),
        (v, _) => Ok(v),
    }
}

fn input_config(
    ctx: &Ctx,
    i: usize,
    r: &RawInput,
    rel: &dyn Fn(&str) -> PathBuf,
) -> Result<InputConfig, ConfigError> {
    let key = |k: &str| format!("preprocess_parameter[{i}].{k}");
    let path = r.input_file_path.as_deref().ok_or_else(|| {
        ctx.at(
            &["preprocess_parameter"],
            format!(
                "key `{}` is missing: name the calibration data",
                key("input_file_path")
            ),
        )
    })?;
    let input_type = r.input_type.unwrap_or(InputType::Image);
    let image_format = r.image_format.unwrap_or(ImageFormat::Rgb);
    let c = image_format.channels();
    let expand =
        |v: &Option<Vec<f32>>, default: f32, name: &str| -> Result<Vec<f32>, ConfigError> {
            match v {
                None => Ok(vec![default; c]),
                Some(v) if v.len() == 1 => Ok(vec![v[0]; c]),
                Some(v) if v.len() == c => Ok(v.clone()),
                Some(v) => Err(ctx.at(
                    &["preprocess_parameter", name],
                    format!(
                        "key `{}`: {} values given; allowed: 1 or {c} (image_format {:?})",
                        key(name),
                        v.len(),
                        image_format
                    ),
                )),
            }
        };
    let mean = expand(&r.mean_value, 0.0, "mean_value")?;
    let std = expand(&r.standard_deviation, 1.0, "standard_deviation")?;
    if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(ctx.at(
            &["preprocess_parameter", "standard_deviation"],
            format!(
                "key `{}`: {bad} is not allowed; allowed: finite numbers > 0",
                key("standard_deviation")
            ),
        ));
    }
    let hw = |v: &Option<Vec<u64>>, name: &str| match v {
        None => Ok(None),
        Some(v) if v.len() == 2 && v.iter().all(|&d| (1..=16384).contains(&d)) => {
            Ok(Some((v[0] as usize, v[1] as usize)))
        }
        Some(v) => Err(ctx.at(
            &["preprocess_parameter", name],
            format!(
                "key `{}`: {v:?} is not allowed; allowed: [H, W] with 1..=16384 each",
                key(name)
            ),
        )),
    };
    let resize = r.resize.unwrap_or(ResizeMode::Stretch);
    let (size, crop) = (hw(&r.size, "size")?, hw(&r.crop, "crop")?);
    let only_short_side = |name: &str| {
        ctx.at(
            &["preprocess_parameter", name],
            format!(
                "key `{}` applies only with `resize: short_side` (resize is {})",
                key(name),
                resize.as_str()
            ),
        )
    };
    if resize != ResizeMode::ShortSide {
        if r.crop.is_some() {
            return Err(only_short_side("crop"));
        }
        if r.short_side.is_some() {
            return Err(only_short_side("short_side"));
        }
    }
    let size = match (size, crop) {
        (Some(s), Some(c)) if s != c => {
            return Err(ctx.at(
                &["preprocess_parameter", "crop"],
                format!(
                    "key `{}`: {c:?} differs from `size` {s:?}; with `resize: short_side` the tensor is the crop: give one of them",
                    key("crop")
                ),
            ));
        }
        (s, c) => s.or(c),
    };
    let short_side = match r.short_side {
        None => None,
        Some(v) if (1..=16384).contains(&v) => Some(v as usize),
        Some(v) => {
            return Err(ctx.at(
                &["preprocess_parameter", "short_side"],
                format!(
                    "key `{}`: {v} is not allowed; allowed: 1..=16384",
                    key("short_side")
                ),
            ));
        }
    };
    Ok(InputConfig {
        input_type,
        path: rel(path),
        image_format,
        mean,
        std,
        resize,
        size,
        short_side,
    })
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn at(&self, path: &[&str], msg: String) -> ConfigError {
        match line_of(self.text, path) {
            Some(line) => ConfigError::At {
                file: self.file.to_string(),
                line,
                msg,
            },
            None => ConfigError::File {
                file: self.file.to_string(),
                msg,
            },
        }
    }

    fn file_err(&self, msg: &str) -> ConfigError {
        ConfigError::File {
            file: self.file.to_string(),
            msg: msg.to_string(),
        }
    }
}

/// 1-based line of a key given as a path of names (`["evaluation", "metric"]`): the first
/// name at the top level (indentation 0), each further name inside the block of the one
/// before it — so a top-level `bin:` is not found at `tune.grid.bin`.
pub(super) fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut from = 0;
    let mut parent: Option<usize> = None; // indentation of the enclosing key
    let mut found = None;
    for name in path {
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let Some((indent, rest)) = key_text(line) else {
                continue;
            };
            if parent.is_some_and(|p| indent <= p) {
                break; // the enclosing block ended
            }
            let depth_ok = parent.is_some() || indent == 0;
            let is_name = rest
                .strip_prefix(name)
                .is_some_and(|r| r.trim_start().starts_with(':'));
            if depth_ok && is_name {
                hit = Some((i, indent));
                break;
            }
        }
        let (i, indent) = hit?;
        found = Some(i + 1);
        from = i + 1;
        parent = Some(indent);
    }
    found
}

/// A line's indentation (list dashes count as indentation) and its text, unless blank or
/// a comment.
fn key_text(line: &str) -> Option<(usize, &str)> {
    let mut t = line.trim_start();
    let mut indent = line.len() - t.len();
    while let Some(r) = t.strip_prefix('-').filter(|r| r.starts_with(' ')) {
        let r2 = r.trim_start();
        indent += 1 + (r.len() - r2.len());
        t = r2;
    }
    (!t.is_empty() && !t.starts_with('#')).then_some((indent, t))
}

fn yaml_error(file: &str, text: &str, e: yaml::YamlError) -> ConfigError {
    let mut msg = e.message.clone();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let unknown = rest.split('`').next().unwrap_or("");
        let nested = e.path.is_some();
        let candidates: Vec<&str> = if nested {
            nested_keys().collect()
        } else {
            TOP_LEVEL_KEYS.to_vec()
        };
        let hint = suggest(unknown, &candidates)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        let allowed = rest
            .split_once(", expected ")
            .map(|(_, a)| a.to_string())
            .unwrap_or_default();
        let under = e
            .path
            .as_deref()
            .map(|p| format!(" under `{p}`"))
            .unwrap_or_default();
        msg = format!("unknown key `{unknown}`{under}{hint} (allowed: {allowed})");
    } else if let Some(p) = &e.path {
        msg = format!("key `{p}`: {msg}");
    }
    let _ = text;
    match e.line {
        Some(line) => ConfigError::At {
            file: file.to_string(),
            line,
            msg,
        },
        None => ConfigError::File {
            file: file.to_string(),
            msg,
        },
    }
}

/// The closest candidate within edit distance 2.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("cfg/x.yaml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_config_takes_the_seed_defaults() {
        let c = parse("model: m.onnx\n", Path::new("cfg/x.yaml")).unwrap();
        assert_eq!(c.model, PathBuf::from("cfg/m.onnx"));
        assert_eq!(c.search, SearchParams::default());
        assert_eq!((c.batch_count, c.weight_type), (10, WeightType::Vector));
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let e = err("model: m.onnx\nbins: 200\n");
        assert!(
            e.starts_with("cfg/x.yaml:2: unknown key `bins`; did you mean `bin`?"),
            "{e}"
        );
        let e = err("model: m.onnx\nevaluation:\n  input_file_path: e\n  maxdrop: 0.1\n");
        assert!(
            e.contains(":4: unknown key `maxdrop` under `evaluation`; did you mean `max_drop`?"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_file_line_key_value_and_allowed() {
        let e = err("model: m.onnx\n\nbin: 5000\n");
        assert_eq!(
            e,
            "cfg/x.yaml:3: key `bin`: 5000 is not allowed; allowed: 0 (means 150) or 2..=4096"
        );
        let e = err("model: m.onnx\ntype: KLL\n");
        assert!(
            e.starts_with("cfg/x.yaml:2: key `type`: unknown variant `KLL`"),
            "{e}"
        );
        let e = err("model: m.onnx\nmax_percentile: PERCENTILE_MAX\n");
        assert!(e.contains(":2:") && e.contains("PERCENTILE_MID"), "{e}");
        let e = err("model: m.onnx\nmax_percentile: 1.5\n");
        assert!(
            e.starts_with("cfg/x.yaml:2: key `max_percentile`: 1.5"),
            "{e}"
        );
        let e =
            err("model: m.onnx\npreprocess_parameter:\n  - input_file_path: c\n    size: [48]\n");
        assert!(
            e.starts_with("cfg/x.yaml:4: key `preprocess_parameter[0].size`"),
            "{e}"
        );
    }

    #[test]
    fn a_top_level_key_is_reported_at_its_own_line_not_a_nested_one() {
        let e = err("model: m.onnx\ntune:\n  grid:\n    bin: [100]\nbin: 5000\n");
        assert!(e.starts_with("cfg/x.yaml:5: key `bin`"), "{e}");
        let e = err("model: m.onnx\nbin: 100\ntune:\n  grid:\n    bin: [1]\n");
        assert!(e.starts_with("cfg/x.yaml:5: key `tune.grid.bin`"), "{e}");
    }

    #[test]
    fn serde_internals_do_not_reach_the_user() {
        let e = err("model: m.onnx\ntune:\n  grid:\n    max_percentile: [PERCENTILE_MAX]\n");
        assert!(e.contains(":4:") && e.contains("PERCENTILE_MID"), "{e}");
        assert!(!e.contains("untagged"), "{e}");
        let e = err("model: m.onnx\nevaluation:\n  input_file_path: {a: 1}\n");
        assert!(e.contains("a path, or a list of paths"), "{e}");
        let e = err("model: m.onnx\nquantize_algo: [1]\n");
        assert!(!e.contains("YAML tag"), "{e}");
        let e = err("\u{feff}model: m.onnx\nbins: 1\n");
        assert!(e.starts_with("cfg/x.yaml:2: unknown key `bins`"), "{e}");
    }

    #[test]
    fn percentile_mid_is_an_alias() {
        let c = parse(
            "model: m\nmax_percentile: PERCENTILE_MID\n",
            Path::new("x.yaml"),
        )
        .unwrap();
        assert_eq!(c.search.max_percentile, 0.99999);
    }
}
