//! The configuration file (DESIGN.md "Configuration file"): the seed's parameter names,
//! paths relative to the file, every value range-checked, errors that name file, line,
//! key, bad value and what is allowed.

mod raw;
pub mod rebase;
mod resolve;
pub mod tune;
pub mod yaml;

use std::path::{Path, PathBuf};

use crate::calib::{SearchParams, WeightType};
use crate::data::image::{ImageFormat, ResizeMode};

/// A configuration file larger than this is refused (real ones are a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

pub use raw::{FloatPrecision, InputType, Metric, RawConfig, TOP_LEVEL_KEYS};
pub use resolve::suggest;

/// A configuration error; the message names the file, line, key, value and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {msg}")]
    At {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("{file}: {msg}")]
    File { file: String, msg: String },
}

/// One model input's data source and preprocessing.
#[derive(Clone, Debug, PartialEq)]
pub struct InputConfig {
    pub input_type: InputType,
    /// Folder of images or .npy files, a single .npy file, or a BINARY file.
    pub path: PathBuf,
    pub image_format: ImageFormat,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub resize: ResizeMode,
    /// (H, W) of the tensor (with `resize: short_side`, the crop: `crop` or `size`);
    /// `None` = the model's input shape, or the images' own size when the model's H and W
    /// are dynamic and every image has the same size.
    pub size: Option<(usize, usize)>,
    /// With `resize: short_side`: the short side after resizing (`None`: the crop's / 0.875).
    pub short_side: Option<usize>,
}

/// The evaluation set and the accuracy target.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    /// One path per model input (same kinds as `InputConfig::path`).
    pub paths: Vec<PathBuf>,
    pub labels: Option<PathBuf>,
    pub classes: Option<Vec<String>>,
    pub metric: Metric,
    pub iou_threshold: f64,
    pub command: Option<String>,
    /// How long `command` may run before it is killed (`evaluation.command_timeout`).
    pub command_timeout: std::time::Duration,
    pub max_drop: f64,
    /// An absolute target: INT8 ≥ min_value (instead of INT8 ≥ FP32 − max_drop).
    pub min_value: Option<f64>,
}

impl EvalConfig {
    /// The lowest INT8 metric that meets the target, given the FP32 metric.
    pub fn threshold(&self, fp32: f64) -> f64 {
        self.min_value.unwrap_or(fp32 - self.max_drop)
    }
}

/// A validated configuration with absolute paths.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (`None` when built in memory).
    pub file: Option<PathBuf>,
    pub model: PathBuf,
    pub search: SearchParams,
    pub weight_type: WeightType,
    pub batch_count: usize,
    /// NaN/±Inf values an activation may hold during calibration (`max_nonfinite`).
    pub max_nonfinite: u64,
    pub exclude_op: Vec<String>,
    pub inputs: Vec<InputConfig>,
    pub evaluation: Option<EvalConfig>,
    pub float_precision: FloatPrecision,
    /// How far `qtune tune` searches.
    pub tune: tune::TuneConfig,
    /// The raw values as written (for sessions, editing and re-saving).
    pub raw: RawConfig,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = crate::util::fs::read_input_text(path, MAX_CONFIG_BYTES).map_err(|source| {
            ConfigError::Io {
                file: path.display().to_string(),
                source,
            }
        })?;
        Config::parse(&text, path)
    }

    /// Validates the YAML `text` as if read from `path` (relative paths resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        resolve::parse(text, path)
    }

    /// An error about the key at `path` (e.g. `["exclude_op"]`), at its line in the file
    /// the configuration was read from when it can be found there.
    pub fn key_error(&self, path: &[&str], msg: String) -> ConfigError {
        let file = self
            .file
            .as_deref()
            .map_or("config".to_string(), |f| f.display().to_string());
        let line = self
            .file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| resolve::line_of(&text, path));
        match line {
            Some(line) => ConfigError::At { file, line, msg },
            None => ConfigError::File { file, msg },
        }
    }

    /// The YAML of this configuration's raw values.
    pub fn to_yaml(&self) -> String {
        yaml::to_string(&self.raw).unwrap_or_default()
    }
}
