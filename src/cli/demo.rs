//! `qtune` with no arguments and no terminal (piped, as in CI): the main job headless on
//! the bundled demo — calibrate the PP-OCR text-direction classifier with the seed's
//! defaults (configs/default.yaml) and report FP32 against INT8 accuracy and per-layer
//! fidelity. On a terminal, `qtune` opens the TUI instead (cli/tui.rs).

use std::path::Path;

use anyhow::Result;

pub fn run(quiet: bool) -> Result<u8> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml");
    if !quiet {
        println!(
            "qtune demo: INT8 calibration of the PP-OCR text-direction classifier with the seed's defaults"
        );
        println!(
            "(headless because stdout is not a terminal; the same as `qtune eval -c configs/default.yaml`. On a terminal, `qtune` opens the TUI)\n"
        );
    }
    super::eval::run(
        super::eval::Args {
            config,
            params: None,
            session: None,
            json: false,
            dump_outputs: None,
        },
        None,
        quiet,
    )
}
