//! Runs tests/tui/e2e.sh (the terminal UI driven in tmux) against this build's binary.
//! Skipped, with a note, where tmux is not installed.

use std::process::Command;

#[test]
fn tui_end_to_end_in_tmux() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed (apt-get install -y tmux)");
        return;
    }
    let status = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tui/e2e.sh"))
        .env("QTUNE", env!("CARGO_BIN_EXE_qtune"))
        .status()
        .expect("running tests/tui/e2e.sh");
    assert!(
        status.code() == Some(0) || status.code() == Some(77),
        "{status}"
    );
}
