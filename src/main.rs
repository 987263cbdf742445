//! The `qtune` command line: clap → one function per subcommand (src/cli/).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use qtune::util::text::escape_control;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`qtune inspect m.onnx | head`) like other CLI tools,
    // instead of panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: resetting a signal disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Tensors are allocated and freed at a high rate, many of them large. glibc's
    // default hands large blocks back to the kernel (mmap/trim) and faults them in
    // again, which cost ~12% of an evaluation: keep freed memory for reuse instead.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Escaped: names from a model or a command's output must not drive the terminal.
            eprintln!("qtune: error: {}", escape_control(&one_line(&e)));
            ExitCode::from(2)
        }
    }
}

/// `--help` and `--version` print as clap renders them; a bad command line is one line
/// (clap's first, without its usage block) and exit code 2, like any other bad input.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(
            if e.kind() == ErrorKind::DisplayVersion || e.kind() == ErrorKind::DisplayHelp {
                0
            } else {
                2
            },
        );
    }
    let text = e.render().to_string();
    // clap's first paragraph, on one line (missing arguments are listed on lines of
    // their own under it), without the usage block that follows
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let first = first.join(" ");
    let first = if first.is_empty() {
        "bad command line"
    } else {
        first.as_str()
    };
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!(
        "qtune: error: {} (see `qtune --help`)",
        escape_control(first)
    );
    ExitCode::from(2)
}

/// The error and its causes on one line. Many of our errors already quote their
/// source in their own message (`{path}: {source}`), so a cause whose text is
/// already present is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
