//! Every shipped configuration loads, names files that exist, and says what it claims.

use std::path::Path;

use qtune::calib::{DivergenceType, QuantizeAlgo, SearchParams, WeightType};
use qtune::config::{Config, Metric};

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name);
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.model.exists(),
        "{name}: model {} missing",
        c.model.display()
    );
    for i in &c.inputs {
        assert!(i.path.exists(), "{name}: {} missing", i.path.display());
    }
    if let Some(e) = &c.evaluation {
        assert!(
            e.paths.iter().all(|p| p.exists()),
            "{name}: evaluation data missing"
        );
        assert!(
            e.labels.as_ref().is_none_or(|l| l.exists()),
            "{name}: labels missing"
        );
    }
    c
}

#[test]
fn every_shipped_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".yaml") {
            load(&name);
            n += 1;
        }
    }
    assert!(n >= 4);
}

#[test]
fn default_config_is_the_seed_defaults() {
    let c = load("default.yaml");
    assert_eq!(c.search, SearchParams::default());
    assert_eq!(c.search.algo, QuantizeAlgo::HalfOffset);
    assert_eq!(
        (c.search.bin, c.search.divergence),
        (150, DivergenceType::Kl)
    );
    assert_eq!((c.weight_type, c.batch_count), (WeightType::Vector, 10));
    assert!(c.exclude_op.is_empty());
    assert_eq!(c.evaluation.unwrap().metric, Metric::Top1);
}

#[test]
fn wide_search_and_detection_differ_only_where_the_seed_says() {
    let w = load("wide-search.yaml");
    assert_eq!(
        (
            w.search.start_ratio,
            w.search.end_ratio,
            w.search.step_ratio,
            w.search.bin
        ),
        (0.3, 1.7, 0.01, 200)
    );
    let d = load("detection.yaml");
    assert_eq!(d.search.max_percentile, 0.99999);
    assert_eq!(d.evaluation.unwrap().metric, Metric::Iou);
}

#[test]
fn template_documents_every_key() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/template.yaml"),
    )
    .unwrap();
    for key in qtune::config::TOP_LEVEL_KEYS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{key}:"))),
            "template lacks `{key}`"
        );
    }
    let t = load("template.yaml");
    // The documented `tune:` values are the defaults (nothing in the template is a tweak).
    assert_eq!(t.tune, qtune::config::tune::TuneConfig::default());
}
