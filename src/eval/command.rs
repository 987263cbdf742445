//! The `command` metric: an external program scores a folder of outputs.

use std::path::Path;
use std::process::Command;

use crate::data::npy::write_npy;
use crate::ir::Tensor;

/// Writes `outputs` (per sample, per model output) as `NNNNN_K.npy` into a temporary folder,
/// runs `template` with `{outputs}` and `{labels}` substituted through `sh -c`, and returns
/// the last number it printed.
pub fn run_command(
    template: &str,
    outputs: &[Vec<Tensor>],
    labels: Option<&Path>,
) -> Result<f64, String> {
    let dir =
        std::env::temp_dir().join(format!("qtune-outputs-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        for (i, sample) in outputs.iter().enumerate() {
            for (k, t) in sample.iter().enumerate() {
                write_npy(&dir.join(format!("{i:05}_{k}.npy")), t).map_err(|e| e.to_string())?;
            }
        }
        let cmd = template
            .replace("{outputs}", &shell_quote(&dir.display().to_string()))
            .replace(
                "{labels}",
                &labels
                    .map(|l| shell_quote(&l.display().to_string()))
                    .unwrap_or_default(),
            );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("`{cmd}` failed ({}): {}", out.status, err.trim()));
        }
        last_number(&stdout).ok_or_else(|| format!("`{cmd}` printed no number"))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_a_command_and_reads_its_last_number() {
        let outs = vec![vec![Tensor::from_f32(&[2], vec![1.0, 2.0])]];
        let v = run_command("ls {outputs} | wc -l; echo score: 0.75", &outs, None).unwrap();
        assert_eq!(v, 0.75);
        assert!(
            run_command("exit 3", &outs, None)
                .unwrap_err()
                .contains("failed")
        );
        assert!(
            run_command("echo none", &outs, None)
                .unwrap_err()
                .contains("no number")
        );
    }
}
