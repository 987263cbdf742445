//! Ids of the session's append-only records. An id is a position in its list; the
//! session validates every stored id at load, and its accessors return `Option`, so an
//! id never indexes out of range.

use serde::{Deserialize, Serialize};

/// A calibration setting of the session (`Session::setting`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SettingId(pub u32);

/// An evaluation of the session (`Session::evaluation`), shown to users as `#N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EvalId(pub u32);

impl SettingId {
    /// The position in `Session::settings`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl EvalId {
    /// The position in `Session::evaluations`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for EvalId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl std::fmt::Display for SettingId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "setting {}", self.0)
    }
}

/// The id of position `i` (positions beyond `u32::MAX` are refused when pushing).
pub(super) fn id_of(i: usize) -> Option<u32> {
    u32::try_from(i).ok()
}
