//! The error type of the calibration module.

use thiserror::Error;

/// Everything that can go wrong in `calib`. Every variant names the key, value or shape at fault;
/// nothing in this module panics on input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CalibError {
    /// A search parameter (or an enum spelling) is outside its allowed set.
    #[error("invalid `{key}` = {value}: allowed {allowed}")]
    InvalidParam {
        /// The configuration key, with the seed's spelling (`bin`, `type`, `start_ratio`, ...).
        key: &'static str,
        /// The offending value, as written or printed.
        value: String,
        /// The allowed values or range.
        allowed: &'static str,
    },
    /// The tensor never produced a finite value, so it cannot be calibrated (it stays float).
    #[error("no finite value was collected for this tensor (NaN: {nan}, Inf: {inf})")]
    NoFiniteValues {
        /// NaN values seen.
        nan: u64,
        /// ±Inf values seen.
        inf: u64,
    },
    /// A histogram side-bin count that is not a power of two ≥ 2.
    #[error("side bin count {0} is not a power of two >= 2")]
    InvalidSideBins(usize),
    /// Two collectors with different side-bin counts cannot be merged.
    #[error("cannot merge collectors with {left} and {right} side bins")]
    SideBinsMismatch {
        /// Side bins of the receiving collector.
        left: usize,
        /// Side bins of the other collector.
        right: usize,
    },
    /// Raw histogram data (a constructor from counts or a deserialized collector) contradicts itself.
    #[error("inconsistent histogram: {0}")]
    InconsistentHistogram(String),
    /// The fixed P grid of a search would need more entries than the implementation allows.
    #[error("the P grid would need {entries} entries (limit {limit}); reduce `end_ratio` or `bin`")]
    GridTooLarge {
        /// Entries that would be needed.
        entries: f64,
        /// The limit.
        limit: usize,
    },
    /// A weight tensor's data length does not match its shape.
    #[error("weight shape {shape:?} holds {expected} values but {actual} were given")]
    WeightShape {
        /// The declared shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Values given.
        actual: usize,
    },
    /// A channel axis outside the weight's rank.
    #[error("channel axis {axis} is out of range for a weight of rank {rank}")]
    AxisOutOfRange {
        /// The axis.
        axis: usize,
        /// The weight rank.
        rank: usize,
    },
    /// A weight or bias holds NaN or ±Inf.
    #[error("non-finite {what} value {value} at flat index {index}")]
    NonFinite {
        /// `weight` or `bias`.
        what: &'static str,
        /// Flat index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A channel count (of a bias or a weight) that does not fit the number of scales.
    #[error("{what} has {channels} channels, which does not fit {scales} weight scales")]
    ChannelMismatch {
        /// `bias` or `weight`.
        what: &'static str,
        /// Channels of the bias or weight.
        channels: usize,
        /// Number of weight scales.
        scales: usize,
    },
}
