//! The only place that touches `serde_yaml` (archived upstream, stable): parsing with
//! positions, and writing. Swapping the YAML crate means rewriting this file only.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A YAML or schema error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending key (`evaluation.metric`, `preprocess_parameter[0].size`).
    pub path: Option<String>,
    /// What went wrong, without position.
    pub message: String,
}

/// Deserializes `text` into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let mut msg = e.to_string();
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        // serde_yaml prefixes the key path: "evaluation.metric: unknown variant ..."
        let (path, message) = match msg.split_once(": ") {
            Some((p, m)) if !p.contains(' ') => (Some(p.to_string()), m.to_string()),
            _ => (None, msg),
        };
        YamlError {
            line,
            path,
            message,
        }
    })
}

/// Serializes `value` as YAML.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_yaml::to_string(value).map_err(|e| YamlError {
        line: None,
        path: None,
        message: e.to_string(),
    })
}
