//! The optional `tune:` section: how far the flow searches (stage 3 and the Table 2 grid
//! of stage 5), which exclude_op searches stage 7 runs, and the cache budget.

use serde::{Deserialize, Serialize};

use crate::calib::{
    CalibError, DivergenceType, PERCENTILE_MID, QuantizeAlgo, SearchParams, WeightType,
};

/// Every key of `tune:`, for "did you mean" suggestions.
pub const TUNE_KEYS: &[&str] = &[
    "detection",
    "grid",
    "exclude_search",
    "continue_after_target",
    "cache_memory_mb",
    "max_excluded",
    "exhaustive",
    "race_confidence",
];

/// Every key of `tune.grid:`.
pub const GRID_KEYS: &[&str] = &[
    "quantize_algo",
    "weight_type",
    "bin",
    "type",
    "ratios",
    "max_percentile",
    "batch_count",
];

/// `tune:` as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTune {
    /// Stage 3 tries PERCENTILE_MID: `true` only it, `false` never; unset tries both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grid: Option<RawGrid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclude_search: Option<ExcludeStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_after_target: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_memory_mb: Option<u64>,
    /// How many layers stage 7 may keep float: a count, `"N%"` of the layers, or
    /// `"N% macs"` of their multiply-accumulates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_excluded: Option<MaxExcluded>,
    /// `true`: every candidate is evaluated on every sample (the seed's plain traversal);
    /// `false` (default): searches stop a candidate once it cannot change the decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exhaustive: Option<bool>,
    /// The confidence at which a race stops a candidate (0.5 < c < 1; default 0.99).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub race_confidence: Option<f64>,
}

/// `tune.max_excluded`: the most stage 7 may keep float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxExcluded {
    /// At most this many layers.
    Layers(u64),
    /// At most this percentage of the quantizable layers.
    LayerPercent(f64),
    /// At most this percentage of the quantizable layers' multiply-accumulates.
    MacPercent(f64),
}

/// The default: a quarter of the model's multiply-accumulates — a blacklist past that
/// keeps too much of the model float for INT8 to pay.
pub const DEFAULT_MAX_EXCLUDED: MaxExcluded = MaxExcluded::MacPercent(25.0);

impl MaxExcluded {
    /// Whether a blacklist of `layers` layers holding `macs` of `total_macs`, out of
    /// `total_layers`, is within the limit.
    pub fn allows(self, layers: usize, total_layers: usize, macs: u64, total_macs: u64) -> bool {
        match self {
            MaxExcluded::Layers(n) => layers as u64 <= n,
            MaxExcluded::LayerPercent(p) => layers as f64 <= p / 100.0 * total_layers as f64,
            // Unknown MACs (sessions of format 1) fall back to counting layers.
            MaxExcluded::MacPercent(p) if total_macs == 0 => {
                layers as f64 <= p / 100.0 * total_layers as f64
            }
            MaxExcluded::MacPercent(p) => macs as f64 <= p / 100.0 * total_macs as f64,
        }
    }

    /// As written in the configuration (`8`, `"25%"`, `"25% macs"`).
    pub fn label(self) -> String {
        match self {
            MaxExcluded::Layers(n) => format!("{n} layers"),
            MaxExcluded::LayerPercent(p) => format!("{p}% of the layers"),
            MaxExcluded::MacPercent(p) => format!("{p}% of the MACs"),
        }
    }

    fn parse(text: &str) -> Option<MaxExcluded> {
        let t = text.trim();
        let (num, macs) = match t.strip_suffix("macs").or_else(|| t.strip_suffix("MACs")) {
            Some(rest) => (rest.trim_end(), true),
            None => (t, false),
        };
        let p: f64 = num.strip_suffix('%')?.trim().parse().ok()?;
        if !(p.is_finite() && p > 0.0 && p <= 100.0) {
            return None;
        }
        Some(if macs {
            MaxExcluded::MacPercent(p)
        } else {
            MaxExcluded::LayerPercent(p)
        })
    }
}

impl Serialize for MaxExcluded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxExcluded::Layers(n) => s.serialize_u64(*n),
            MaxExcluded::LayerPercent(p) => s.serialize_str(&format!("{p}%")),
            MaxExcluded::MacPercent(p) => s.serialize_str(&format!("{p}% macs")),
        }
    }
}

impl<'de> Deserialize<'de> for MaxExcluded {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MaxExcluded, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MaxExcluded;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a layer count, \"N%\" of the layers, or \"N% macs\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxExcluded, E> {
                Ok(MaxExcluded::Layers(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxExcluded, E> {
                u64::try_from(v)
                    .map(MaxExcluded::Layers)
                    .map_err(|_| E::custom(format!("{v} is not allowed; allowed: a layer count >= 0, \"N%\" or \"N% macs\" with 0 < N <= 100")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxExcluded, E> {
                MaxExcluded::parse(v).ok_or_else(|| {
                    E::custom(format!("`{v}` is not allowed; allowed: a layer count, \"N%\" or \"N% macs\" with 0 < N <= 100"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `tune.grid:` as written: the values stage 5 traverses (Table 2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrid {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantize_algo: Option<Vec<QuantizeAlgo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_type: Option<Vec<WeightType>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<Vec<u32>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Vec<DivergenceType>>,
    /// `[start_ratio, end_ratio, step_ratio]` triples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratios: Option<Vec<[f64; 3]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_percentile: Option<Vec<Percentile>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_count: Option<Vec<u64>>,
}

/// A `max_percentile` list entry: a number or `PERCENTILE_MID`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Percentile {
    Number(f64),
    Named(PercentileName),
}

// By hand, not `untagged`: serde's message for a mismatch names the Rust type.
impl<'de> Deserialize<'de> for Percentile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Percentile, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Percentile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number in (0, 1] or PERCENTILE_MID")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Percentile, E> {
                Ok(Percentile::Number(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Percentile, E> {
                Ok(Percentile::Number(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Percentile, E> {
                Ok(Percentile::Number(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Percentile, E> {
                match v {
                    "PERCENTILE_MID" => Ok(Percentile::Named(PercentileName::Mid)),
                    _ => Err(E::custom(format!(
                        "`{v}` is not allowed: use a number in (0, 1] or PERCENTILE_MID"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PercentileName {
    #[serde(rename = "PERCENTILE_MID")]
    Mid,
}

impl Percentile {
    pub fn value(self) -> f64 {
        match self {
            Percentile::Number(v) => v,
            Percentile::Named(PercentileName::Mid) => PERCENTILE_MID,
        }
    }
}

/// Which exclude_op searches stage 7 runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludeStrategy {
    /// The seed's: blacklist layer by layer from the first layer.
    LayerByLayer,
    /// Rank layers by sensitivity, add in rank order, then prune.
    Ranked,
    /// Both, side by side (the default); the better result is kept.
    Both,
}

/// The validated `tune:` section.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneConfig {
    /// Stage 3's max_percentile values besides the configured one.
    pub detection: Option<bool>,
    pub grid: Grid,
    pub exclude_search: ExcludeStrategy,
    pub continue_after_target: bool,
    /// Memory the re-evaluation caches may use.
    pub cache_bytes: usize,
    /// The most stage 7 may keep float.
    pub max_excluded: MaxExcluded,
    /// Evaluate every candidate on every sample (no races).
    pub exhaustive: bool,
    /// The confidence at which a race stops a candidate.
    pub race_confidence: f64,
}

/// Default confidence of races.
pub const DEFAULT_RACE_CONFIDENCE: f64 = 0.99;

/// The stage 5 grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub quantize_algo: Vec<QuantizeAlgo>,
    pub weight_type: Vec<WeightType>,
    pub bin: Vec<u32>,
    pub divergence: Vec<DivergenceType>,
    pub ratios: Vec<[f64; 3]>,
    pub max_percentile: Vec<f64>,
    pub batch_count: Vec<usize>,
}

impl Default for Grid {
    /// Table 2 of the seed.
    fn default() -> Grid {
        Grid {
            quantize_algo: vec![QuantizeAlgo::HalfOffset, QuantizeAlgo::NonOffset],
            weight_type: vec![WeightType::Vector, WeightType::Scalar],
            bin: vec![100, 150, 200],
            divergence: DivergenceType::ALL.to_vec(),
            ratios: vec![[0.7, 1.3, 0.01], [0.3, 1.7, 0.01]],
            max_percentile: vec![1.0, PERCENTILE_MID],
            batch_count: vec![10, 20, 50],
        }
    }
}

impl Grid {
    /// Number of settings in the grid (saturating: a validated grid has at most
    /// [`MAX_GRID_SETTINGS`]).
    pub fn len(&self) -> usize {
        [
            self.quantize_algo.len(),
            self.weight_type.len(),
            self.bin.len(),
            self.divergence.len(),
            self.ratios.len(),
            self.max_percentile.len(),
            self.batch_count.len(),
        ]
        .into_iter()
        .fold(1usize, usize::saturating_mul)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for TuneConfig {
    fn default() -> TuneConfig {
        TuneConfig {
            detection: None,
            grid: Grid::default(),
            exclude_search: ExcludeStrategy::Both,
            continue_after_target: false,
            cache_bytes: DEFAULT_CACHE_MB << 20,
            max_excluded: DEFAULT_MAX_EXCLUDED,
            exhaustive: false,
            race_confidence: DEFAULT_RACE_CONFIDENCE,
        }
    }
}

/// The most settings `tune.grid` may hold (Table 2 has 432; each setting costs an
/// evaluation, ~0.6 s on the demo, so this is already hours of search).
pub const MAX_GRID_SETTINGS: usize = 20_000;

/// Default budget of the re-evaluation caches.
pub const DEFAULT_CACHE_MB: usize = 2048;

/// A problem with one key: (key path, message).
pub type TuneIssue = (Vec<&'static str>, String);

/// Validates `tune:`; an error names the key and what is allowed.
pub fn resolve(raw: Option<&RawTune>) -> Result<TuneConfig, TuneIssue> {
    let mut t = TuneConfig::default();
    let Some(raw) = raw else { return Ok(t) };
    t.detection = raw.detection;
    t.exclude_search = raw.exclude_search.unwrap_or(ExcludeStrategy::Both);
    t.continue_after_target = raw.continue_after_target.unwrap_or(false);
    t.max_excluded = raw.max_excluded.unwrap_or(DEFAULT_MAX_EXCLUDED);
    t.exhaustive = raw.exhaustive.unwrap_or(false);
    if let Some(c) = raw.race_confidence {
        if !(c > 0.5 && c < 1.0) {
            return Err((
                vec!["tune", "race_confidence"],
                format!("key `tune.race_confidence`: {c} is not allowed; allowed: 0.5 < c < 1"),
            ));
        }
        t.race_confidence = c;
    }
    if let Some(mb) = raw.cache_memory_mb {
        if !(16..=1 << 20).contains(&mb) {
            return Err((
                vec!["tune", "cache_memory_mb"],
                format!("key `tune.cache_memory_mb`: {mb} is not allowed; allowed: 16..=1048576"),
            ));
        }
        t.cache_bytes = (mb as usize) << 20;
    }
    let Some(g) = &raw.grid else { return Ok(t) };
    let d = Grid::default();
    let nonempty = |key: &'static str, n: usize| -> Result<(), TuneIssue> {
        if n == 0 {
            Err((
                vec!["tune", "grid", key],
                format!(
                    "key `tune.grid.{key}`: an empty list is not allowed; allowed: one value or more"
                ),
            ))
        } else {
            Ok(())
        }
    };
    t.grid = Grid {
        quantize_algo: g.quantize_algo.clone().unwrap_or(d.quantize_algo),
        weight_type: g.weight_type.clone().unwrap_or(d.weight_type),
        bin: g.bin.clone().unwrap_or(d.bin),
        divergence: g.divergence.clone().unwrap_or(d.divergence),
        ratios: g.ratios.clone().unwrap_or(d.ratios),
        max_percentile: g
            .max_percentile
            .as_ref()
            .map_or(d.max_percentile, |v| v.iter().map(|p| p.value()).collect()),
        batch_count: g
            .batch_count
            .as_ref()
            .map_or(d.batch_count, |v| v.iter().map(|&b| b as usize).collect()),
    };
    let g2 = &t.grid;
    nonempty("quantize_algo", g2.quantize_algo.len())?;
    nonempty("weight_type", g2.weight_type.len())?;
    nonempty("bin", g2.bin.len())?;
    nonempty("type", g2.divergence.len())?;
    nonempty("ratios", g2.ratios.len())?;
    nonempty("max_percentile", g2.max_percentile.len())?;
    nonempty("batch_count", g2.batch_count.len())?;
    for &bin in &g2.bin {
        check_search(
            "bin",
            SearchParams {
                bin,
                ..SearchParams::default()
            },
        )?;
    }
    for &[start_ratio, end_ratio, step_ratio] in &g2.ratios {
        let p = SearchParams {
            start_ratio,
            end_ratio,
            step_ratio,
            ..SearchParams::default()
        };
        check_search("ratios", p)?;
    }
    for &max_percentile in &g2.max_percentile {
        check_search(
            "max_percentile",
            SearchParams {
                max_percentile,
                ..SearchParams::default()
            },
        )?;
    }
    if g2.len() > MAX_GRID_SETTINGS {
        return Err((
            vec!["tune", "grid"],
            format!(
                "key `tune.grid`: its lists make {} settings ({} × {} × {} × {} × {} × {} × {}); allowed: at most {MAX_GRID_SETTINGS}",
                if g2.len() == usize::MAX {
                    "more than 2^64".to_string()
                } else {
                    g2.len().to_string()
                },
                g2.quantize_algo.len(),
                g2.weight_type.len(),
                g2.bin.len(),
                g2.divergence.len(),
                g2.ratios.len(),
                g2.max_percentile.len(),
                g2.batch_count.len()
            ),
        ));
    }
    if let Some(b) = g2.batch_count.iter().find(|&&b| b == 0 || b > 1_000_000) {
        return Err((
            vec!["tune", "grid", "batch_count"],
            format!("key `tune.grid.batch_count`: {b} is not allowed; allowed: 1..=1000000"),
        ));
    }
    Ok(t)
}

/// One grid value checked with the rule of the top-level key it stands for.
fn check_search(key: &'static str, p: SearchParams) -> Result<(), TuneIssue> {
    p.validate().map_err(|e| {
        let why = match e {
            CalibError::InvalidParam {
                key: k,
                value,
                allowed,
            } => {
                format!("{k} = {value} is not allowed; allowed: {allowed}")
            }
            other => other.to_string(),
        };
        (
            vec!["tune", "grid", key],
            format!("key `tune.grid.{key}`: {why}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grid_is_table_2() {
        assert_eq!(Grid::default().len(), 2 * 2 * 3 * 3 * 2 * 2 * 3);
        assert_eq!(resolve(None).unwrap(), TuneConfig::default());
    }

    #[test]
    fn grid_lists_replace_the_defaults_and_percentile_mid_is_accepted() {
        let raw: RawTune = crate::config::yaml::from_str(
            "grid:\n  bin: [128]\n  max_percentile: [1.0, PERCENTILE_MID]\n  batch_count: [5]\n",
        )
        .unwrap();
        let t = resolve(Some(&raw)).unwrap();
        assert_eq!(t.grid.bin, vec![128]);
        assert_eq!(t.grid.max_percentile, vec![1.0, PERCENTILE_MID]);
        assert_eq!(t.grid.len(), 2 * 2 * 3 * 2 * 2);
    }

    #[test]
    fn empty_lists_and_bad_counts_are_refused() {
        let raw: RawTune = crate::config::yaml::from_str("grid:\n  bin: []\n").unwrap();
        assert!(resolve(Some(&raw)).unwrap_err().1.contains("tune.grid.bin"));
        let raw: RawTune = crate::config::yaml::from_str("grid:\n  batch_count: [0]\n").unwrap();
        assert!(resolve(Some(&raw)).unwrap_err().1.contains("1..=1000000"));
        let bins: Vec<String> = (2..2000).map(|b| b.to_string()).collect();
        let text = format!(
            "grid:\n  bin: [{}]\n  batch_count: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n",
            bins.join(", ")
        );
        let raw: RawTune = crate::config::yaml::from_str(&text).unwrap();
        let e = resolve(Some(&raw)).unwrap_err().1;
        assert!(e.contains("at most 20000"), "{e}");
    }
}
