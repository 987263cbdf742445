//! `qtune` with no arguments. Until the TUI lands, it runs the main job headless on the
//! bundled demo: calibrate the PP-OCR text-direction classifier with the seed's defaults
//! (configs/default.yaml) and report FP32 against INT8 accuracy and per-layer fidelity.

use std::path::Path;

use anyhow::Result;

pub fn run(quiet: bool) -> Result<u8> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml");
    if !quiet {
        println!(
            "qtune demo: INT8 calibration of the PP-OCR text-direction classifier with the seed's defaults"
        );
        println!(
            "(the same as `qtune eval -c configs/default.yaml`; the terminal UI is not there yet)\n"
        );
    }
    super::eval::run(
        super::eval::Args {
            config,
            params: None,
            json: false,
        },
        None,
        quiet,
    )
}
