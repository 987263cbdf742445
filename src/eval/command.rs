//! The `command` metric: an external program scores a folder of outputs.
//!
//! The program runs through `sh -c` in its own process group (so a command that signals
//! its group cannot take qtune with it), with a timeout after which the whole group is
//! killed, and with its output bounded: only the tail of stdout is kept (the metric is the
//! last number printed), stderr goes to a log file whose last line a failure quotes.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::data::npy::write_npy;
use crate::ir::Tensor;
use crate::util::text::{escape_control, last_line};

/// Default of `evaluation.command_timeout`, in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 600;
/// Bytes of stdout kept (its tail).
const STDOUT_TAIL: usize = 64 << 10;
/// Bytes of stderr written to the log file; the rest is counted, not kept.
const STDERR_LOG: u64 = 16 << 20;

/// Writes `outputs` (per sample, per model output) as `NNNNN_K.npy` into a fresh private
/// folder, runs `template` with `{outputs}` and `{labels}` substituted, and returns the
/// last number it printed. Errors are one line.
pub fn run_command(
    template: &str,
    outputs: &[Vec<Tensor>],
    labels: Option<&Path>,
    timeout: Duration,
) -> Result<f64, String> {
    let dir = tempfile::Builder::new()
        .prefix("qtune-outputs-")
        .tempdir()
        .map_err(|e| format!("cannot make a folder for the outputs: {e}"))?;
    for (i, sample) in outputs.iter().enumerate() {
        for (k, t) in sample.iter().enumerate() {
            write_npy(&dir.path().join(format!("{i:05}_{k}.npy")), t).map_err(|e| e.to_string())?;
        }
    }
    let cmd = template
        .replace("{outputs}", &shell_quote(&dir.path().display().to_string()))
        .replace(
            "{labels}",
            &labels
                .map(|l| shell_quote(&l.display().to_string()))
                .unwrap_or_default(),
        );
    let shown = escape_control(&cmd);
    let log = tempfile::Builder::new()
        .prefix("qtune-command-")
        .suffix(".log")
        .tempfile()
        .map_err(|e| format!("cannot make a log file for `{shown}`: {e}"))?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let out = tail_reader(child.stdout.take());
    let err = log_writer(child.stderr.take(), log.reopen().ok());
    let status = wait_or_kill(&mut child, timeout);
    // The readers end when every process holding the pipes has gone (the group is killed
    // on timeout, so a backgrounded grandchild cannot hold them open for long).
    let stdout = out.join().unwrap_or_default();
    let stderr_tail = err.join().unwrap_or_default();
    let keep_log = |why: String| -> String {
        match log.keep() {
            Ok((_, path)) => format!("{why}; its stderr is in {}", path.display()),
            Err(_) => why,
        }
    };
    let status = match status {
        Ok(s) => s,
        Err(why) => return Err(keep_log(format!("`{shown}` {why}"))),
    };
    if !status.success() {
        let last = last_line(&stderr_tail);
        let said = if last.is_empty() {
            String::new()
        } else {
            format!(": {last}")
        };
        return Err(keep_log(format!("`{shown}` failed ({status}){said}")));
    }
    last_number(&String::from_utf8_lossy(&stdout))
        .ok_or_else(|| format!("`{shown}` printed no number"))
}

/// Waits for `child` at most `timeout`; then kills its whole process group.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus, String> {
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => {
                kill_group(child); // what it left running in the background goes too
                return Ok(s);
            }
            Ok(None) if t0.elapsed() >= timeout => {
                kill_group(child);
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {} s (evaluation.command_timeout) and was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    }
}

fn kill_group(child: &Child) {
    // The child leads its own group (process_group(0)), whose id is its pid.
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group only.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Reads a pipe to its end on a thread, keeping only the last `STDOUT_TAIL` bytes.
fn tail_reader(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let Some(mut pipe) = pipe else {
            return Vec::new();
        };
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * STDOUT_TAIL {
                tail.drain(..tail.len() - STDOUT_TAIL);
            }
        }
        tail
    })
}

/// Copies a pipe into `log` (up to `STDERR_LOG` bytes) on a thread; returns its tail.
fn log_writer(
    pipe: Option<impl Read + Send + 'static>,
    mut log: Option<std::fs::File>,
) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let Some(mut pipe) = pipe else {
            return String::new();
        };
        let (mut written, mut tail) = (0u64, Vec::new());
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(f) = log.as_mut().filter(|_| written < STDERR_LOG) {
                let _ = f.write_all(&buf[..n]);
                written += n as u64;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * STDOUT_TAIL {
                tail.drain(..tail.len() - STDOUT_TAIL);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The last whitespace-separated token of `text` that parses as a finite number.
fn last_number(text: &str) -> Option<f64> {
    text.split_whitespace()
        .rev()
        .filter_map(|t| {
            t.trim_matches(|c: char| c == ',' || c == ';')
                .parse::<f64>()
                .ok()
        })
        .find(|v| v.is_finite())
}

/// Where a kept log file is (for tests).
#[cfg(test)]
fn log_in(msg: &str) -> Option<std::path::PathBuf> {
    msg.split("its stderr is in ")
        .nth(1)
        .map(std::path::PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(20);

    fn outs() -> Vec<Vec<Tensor>> {
        vec![vec![Tensor::from_f32(&[2], vec![1.0, 2.0])]]
    }

    #[test]
    fn runs_a_command_and_reads_its_last_number() {
        let v = run_command("ls {outputs} | wc -l; echo score: 0.75", &outs(), None, T).unwrap();
        assert_eq!(v, 0.75);
        assert!(
            run_command("echo none", &outs(), None, T)
                .unwrap_err()
                .contains("no number")
        );
    }

    #[test]
    fn a_failure_quotes_the_last_stderr_line_and_keeps_the_rest_in_a_log() {
        let e = run_command(
            "echo first >&2; echo 'Error: \x1b[31mbad' >&2; exit 3",
            &outs(),
            None,
            T,
        )
        .unwrap_err();
        assert!(
            e.contains("failed") && e.contains("Error: \\x1b[31mbad"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        let log = log_in(&e).expect("names a log file");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("first\n"), "{text}");
        std::fs::remove_file(log).unwrap();
    }

    #[test]
    fn a_command_that_never_ends_is_killed_at_the_timeout() {
        let t0 = Instant::now();
        let e =
            run_command("sleep 30 & sleep 30", &outs(), None, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("did not finish within 1 s"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(10));
        if let Some(log) = log_in(&e) {
            let _ = std::fs::remove_file(log);
        }
    }

    #[test]
    fn endless_output_is_bounded_and_killing_its_own_group_spares_qtune() {
        let v = run_command("yes 1 | head -c 50000000; echo 0.5", &outs(), None, T).unwrap();
        assert_eq!(v, 0.5);
        // `kill 0` signals the command's process group, which is not ours.
        let e = run_command("kill -TERM 0; sleep 5", &outs(), None, T).unwrap_err();
        assert!(e.contains("failed"), "{e}");
        if let Some(log) = log_in(&e) {
            let _ = std::fs::remove_file(log);
        }
    }
}
