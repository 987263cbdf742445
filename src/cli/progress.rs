//! Progress bars on stderr, only when it is a terminal and `--quiet` is not given.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar, or nothing.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new(quiet: bool, len: usize, what: &str) -> Bar {
        if quiet || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = ProgressBar::new(len as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:>26} [{bar:24}] {pos}/{len} {elapsed_precise} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        Bar(Some(pb))
    }

    /// Sets the position (callable from any thread).
    pub fn set(&self, pos: usize) {
        if let Some(pb) = &self.0 {
            pb.set_position(pos as u64);
        }
    }

    /// Replaces the label (no-op when it is unchanged or there is no bar).
    pub fn set_message(&self, msg: &str) {
        if let Some(pb) = &self.0
            && pb.message() != msg
        {
            pb.set_message(msg.to_string());
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}
