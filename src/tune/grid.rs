//! The settings each calibration stage tries: stage 1's single setting, stage 3's
//! modifications and stage 5's Table 2 grid.

use crate::calib::PERCENTILE_MID;
use crate::config::Config;
use crate::config::tune::Grid;
use crate::session::Setting;

/// The setting of the configuration as given (stage 1).
pub fn configured(config: &Config) -> Setting {
    let s = &config.search;
    Setting {
        quantize_algo: s.algo,
        weight_type: config.weight_type,
        bin: s.effective_bin(),
        divergence: s.divergence,
        start_ratio: s.start_ratio,
        end_ratio: s.end_ratio,
        step_ratio: s.step_ratio,
        max_percentile: s.max_percentile,
        batch_count: config.batch_count,
    }
}

/// Stage 3: the seed's manual modifications applied to the configured setting — the wide
/// search range 0.3/1.7/0.01, `bin` 200 and 250, and (for detection networks)
/// `max_percentile` PERCENTILE_MID. `detection`: `Some(true)` only PERCENTILE_MID,
/// `Some(false)` only the configured percentile, `None` both.
pub fn modifications(config: &Config, detection: Option<bool>) -> Vec<Setting> {
    let base = Setting {
        start_ratio: 0.3,
        end_ratio: 1.7,
        step_ratio: 0.01,
        ..configured(config)
    };
    let percentiles = match detection {
        Some(true) => vec![PERCENTILE_MID],
        Some(false) => vec![base.max_percentile],
        None if base.max_percentile == PERCENTILE_MID => vec![PERCENTILE_MID],
        None => vec![base.max_percentile, PERCENTILE_MID],
    };
    let mut out = Vec::new();
    for bin in [200, 250] {
        for &max_percentile in &percentiles {
            out.push(Setting {
                bin,
                max_percentile,
                ..base
            });
        }
    }
    out
}

/// Stage 5: every combination of the grid, batch_count varying slowest (so the smaller
/// collections are ready first), then the rest in Table 2's order.
pub fn traversal(grid: &Grid) -> Vec<Setting> {
    let mut out = Vec::with_capacity(grid.len());
    for &batch_count in &grid.batch_count {
        for &quantize_algo in &grid.quantize_algo {
            for &weight_type in &grid.weight_type {
                for &bin in &grid.bin {
                    for &divergence in &grid.divergence {
                        for &[start_ratio, end_ratio, step_ratio] in &grid.ratios {
                            for &max_percentile in &grid.max_percentile {
                                out.push(Setting {
                                    quantize_algo,
                                    weight_type,
                                    bin: if bin == 0 { 150 } else { bin },
                                    divergence,
                                    start_ratio,
                                    end_ratio,
                                    step_ratio,
                                    max_percentile,
                                    batch_count,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> Config {
        Config::parse(&format!("model: m.onnx\n{extra}"), Path::new("x.yaml")).unwrap()
    }

    #[test]
    fn stage_3_tries_bins_200_and_250_on_the_wide_range_with_and_without_percentile_mid() {
        let s = modifications(&config(""), None);
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|s| (s.start_ratio, s.end_ratio) == (0.3, 1.7)));
        assert_eq!(
            s.iter()
                .map(|s| (s.bin, s.max_percentile))
                .collect::<Vec<_>>(),
            vec![
                (200, 1.0),
                (200, PERCENTILE_MID),
                (250, 1.0),
                (250, PERCENTILE_MID)
            ]
        );
        assert_eq!(modifications(&config(""), Some(false)).len(), 2);
    }

    #[test]
    fn the_default_traversal_is_table_2_with_batch_count_slowest() {
        let t = traversal(&Grid::default());
        assert_eq!(t.len(), 432);
        assert!(t[..144].iter().all(|s| s.batch_count == 10));
        assert!(t[288..].iter().all(|s| s.batch_count == 50));
        let mut uniq = t.clone();
        uniq.dedup();
        assert_eq!(uniq.len(), 432);
    }
}
