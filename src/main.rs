//! The `qtune` command line: clap → one function per subcommand (src/cli/).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`qtune inspect m.onnx | head`) like other CLI tools,
    // instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: resetting a signal disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("qtune: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
