//! Before a command writes: the files it reads, so an output path that is one of them is
//! refused (exit 2, naming both) instead of destroying it. See `qtune::util::fs`.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use qtune::config::{Config, InputType};
use qtune::util::fs::{Role, check_outputs};

/// A file a command reads, with what it is for.
pub struct Input {
    pub what: String,
    pub path: PathBuf,
}

impl Input {
    pub fn new(what: impl Into<String>, path: impl Into<PathBuf>) -> Input {
        Input {
            what: what.into(),
            path: path.into(),
        }
    }
}

/// Every file a configuration names: itself, the model, the labels, and the files of
/// each data folder (calibration and evaluation).
pub fn config_inputs(config_file: &Path, cfg: &Config) -> Vec<Input> {
    let mut v = vec![
        Input::new("the configuration", config_file),
        Input::new("the model", &cfg.model),
    ];
    let mut data = |what: &str, p: &Path| {
        if p.is_dir() {
            for f in std::fs::read_dir(p).into_iter().flatten().flatten() {
                v.push(Input::new(what, f.path()));
            }
        } else {
            v.push(Input::new(what, p));
        }
    };
    for ic in &cfg.inputs {
        let what = match ic.input_type {
            InputType::Image | InputType::Npy => "calibration data",
            InputType::Binary => "the calibration file",
        };
        data(what, &ic.path);
    }
    if let Some(e) = &cfg.evaluation {
        for p in &e.paths {
            data("evaluation data", p);
        }
        if let Some(l) = &e.labels {
            data("the labels file", l);
        }
    }
    v
}

/// Refuses outputs (`(option, path)`) that are one of `inputs` or the same file twice.
pub fn check(outputs: &[(&str, &Path)], inputs: &[Input]) -> Result<()> {
    let outs: Vec<Role> = outputs.iter().map(|(w, p)| Role::new(w, p)).collect();
    let ins: Vec<Role> = inputs.iter().map(|i| Role::new(&i.what, &i.path)).collect();
    check_outputs(&outs, &ins).map_err(|e| anyhow!(e))
}
