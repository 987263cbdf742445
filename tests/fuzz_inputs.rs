//! Mutation fuzzing of everything qtune reads (issue 10 item 8): models, `.npy` tensors,
//! images and configurations are truncated, bit-flipped, given bad and huge dimensions,
//! and fed to the binary, which must exit 0 or 2 — never die of a signal, never hang.
//!
//! `cargo test` runs a few hundred cases (seeded, so a failure reproduces). A longer run:
//! `QTUNE_FUZZ_CASES=20000 QTUNE_FUZZ_SEED=7 cargo test --release --test fuzz_inputs -- --nocapture`.
//! A new kind of input (sessions, say) is one more `Target` in `targets()`.

mod support;

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use support::*;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One kind of input: a valid seed, how to mutate it, and the command that reads it.
struct Target {
    name: &'static str,
    /// File name the input is written to (in a fresh folder per case).
    file: &'static str,
    seed: fn(&Path) -> Vec<u8>,
    /// Structure-aware mutations on top of the byte-level ones (huge dims, …).
    special: fn(&mut Rng, &[u8]) -> Option<Vec<u8>>,
    /// The command line, given the folder and the input's path.
    args: fn(&Path, &Path) -> Vec<String>,
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "model (inspect)",
            file: "m.onnx",
            seed: |_| conv_model(&[4, 3, 3, 3], &[1, 3, 8, 8], 1 << 10),
            special: model_special,
            args: |_, m| vec!["inspect".into(), m.display().to_string()],
        },
        Target {
            name: "model (infer)",
            file: "m.onnx",
            seed: |_| conv_model(&[4, 3, 3, 3], &[1, 3, 8, 8], 1 << 10),
            special: model_special,
            args: |d, m| {
                let x = d.join("x.npy");
                std::fs::write(&x, npy_f32(&[1, 3, 8, 8], &[0.5; 192])).unwrap();
                args(&["infer", s(m), "--input", s(&x), "--out", s(&d.join("out"))])
            },
        },
        Target {
            name: ".npy (infer)",
            file: "x.npy",
            seed: |_| npy_f32(&[1, 3, 8, 8], &[0.25; 192]),
            special: npy_special,
            args: |d, x| {
                let m = d.join("relu.onnx");
                std::fs::write(&m, relu_model()).unwrap();
                args(&["infer", s(&m), "--input", s(x), "--out", s(&d.join("out"))])
            },
        },
        Target {
            name: "image (calibrate)",
            file: "calib/a.png",
            seed: |_| png(8, 8),
            special: image_special,
            args: |d, _| {
                let cfg = write_config(d, &config_text());
                args(&["--quiet", "calibrate", "-c", s(&cfg)])
            },
        },
        Target {
            name: "configuration (calibrate)",
            file: "c.yaml",
            seed: |d| {
                std::fs::create_dir_all(d.join("calib")).unwrap();
                std::fs::write(d.join("calib/a.png"), png(8, 8)).unwrap();
                config_text().into_bytes()
            },
            special: config_special,
            args: |d, c| {
                std::fs::write(
                    d.join("m.onnx"),
                    conv_model(&[4, 3, 3, 3], &[1, 3, 8, 8], 1 << 10),
                )
                .unwrap();
                args(&["--quiet", "calibrate", "-c", s(c)])
            },
        },
    ]
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn config_text() -> String {
    "model: m.onnx\nbatch_count: 1\nbin: 150\ntype: KL\nexclude_op: []\npreprocess_parameter:\n  - input_type: IMAGE\n    input_file_path: calib\n    image_format: RGB\n    mean_value: [127.5]\n    standard_deviation: [127.5]\n    size: [8, 8]\ntune:\n  grid:\n    bin: [100, 150]\n".into()
}

fn write_config(d: &Path, text: &str) -> std::path::PathBuf {
    std::fs::write(
        d.join("m.onnx"),
        conv_model(&[4, 3, 3, 3], &[1, 3, 8, 8], 1 << 10),
    )
    .unwrap();
    let c = d.join("c.yaml");
    std::fs::write(&c, text).unwrap();
    c
}

/// `y = Relu(Conv(x, W)) + ConstantOfShape(fill)`: weights, a layer, a folded constant.
fn conv_model(w: &[i64], x: &[i64], fill: i64) -> Vec<u8> {
    let n: i64 = w.iter().fold(1i64, |a, &d| a.saturating_mul(d));
    let weights: Vec<f32> = (0..n.max(0).min(1 << 16))
        .map(|i| (i % 7) as f32 / 7.0 - 0.5)
        .collect();
    let mut wt = f32_tensor("w", w, &weights);
    if weights.len() as i64 != n {
        wt.raw_data = Some(vec![0; 16]);
    }
    let dims: Vec<Option<i64>> = x.iter().map(|&d| Some(d)).collect();
    model(
        vec![
            node("Conv", "conv", &["x", "w"], &["c"]),
            node("Relu", "relu", &["c"], &["r"]),
            node("ConstantOfShape", "fill", &["shape"], &["k"]),
            node("ReduceSum", "sum", &["k"], &["t"]),
            node("Add", "add", &["r", "t"], &["y"]),
        ],
        vec![value("x", &dims)],
        vec![value("y", &[None, None, None, None])],
        vec![wt, i64_tensor("shape", &[1], &[fill])],
        13,
    )
}

fn model_special(r: &mut Rng, _: &[u8]) -> Option<Vec<u8>> {
    let huge = [0, -1, 1 << 30, (1 << 30) - 1, 1 << 62, i64::MAX, 100_000];
    let which = r.below(4);
    let mut pick = || huge[r.below(huge.len())];
    Some(match which {
        0 => conv_model(&[pick(), 3, 3, 3], &[1, 3, 8, 8], 16),
        1 => conv_model(&[4, 3, 3, 3], &[1, 3, pick(), pick()], 16),
        2 => conv_model(&[4, 3, 3, 3], &[1, 3, 8, 8], pick()),
        _ => return None,
    })
}

fn npy_special(r: &mut Rng, _: &[u8]) -> Option<Vec<u8>> {
    let dims = [0usize, 1, 3, 8, 1 << 20, 1 << 31, usize::MAX / 2];
    let shape: Vec<usize> = (0..r.below(6)).map(|_| dims[r.below(dims.len())]).collect();
    let mut b = npy_f32(&shape[..shape.len().min(1)], &[]);
    // Re-spell the header with the chosen shape, data left empty or short.
    let text = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
        shape.iter().map(|d| format!("{d},")).collect::<String>()
    );
    b.truncate(8);
    b.extend_from_slice(&(text.len() as u16).to_le_bytes());
    b.extend_from_slice(text.as_bytes());
    b.extend_from_slice(&vec![0u8; r.below(64)]);
    Some(b)
}

fn image_special(r: &mut Rng, seed: &[u8]) -> Option<Vec<u8>> {
    // A PNG whose header declares a huge size (CRC fixed, so the decoder believes it).
    let sizes = [0u32, 1, 16384, 30000, 65535, u32::MAX];
    let (w, h) = (sizes[r.below(sizes.len())], sizes[r.below(sizes.len())]);
    let mut b = seed.to_vec();
    if b.len() < 33 || &b[12..16] != b"IHDR" {
        return None;
    }
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    Some(b)
}

fn config_special(r: &mut Rng, seed: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(seed).to_string();
    let bomb = {
        let mut t = String::from("a: &a [\"xxxxxxxx\"]\n");
        let mut prev = 'a';
        for c in 'b'..='i' {
            t.push_str(&format!(
                "{c}: &{c} [{}]\n",
                vec![format!("*{prev}"); 9].join(", ")
            ));
            prev = c;
        }
        t
    };
    let replacements = [
        ("batch_count: 1", "batch_count: 18446744073709551615"),
        ("bin: 150", "bin: -5"),
        ("size: [8, 8]", "size: [16384, 16384]"),
        ("size: [8, 8]", "size: [1, 0]"),
        (
            "bin: [100, 150]",
            "bin: [100, 150, 200, 250, 300, 350, 400]\n    batch_count: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n    ratios: [[0.5, 1.5, 0.001]]",
        ),
        ("type: KL", "type: !KL x"),
        ("exclude_op: []", "exclude_op: *nothing"),
        ("mean_value: [127.5]", "mean_value: [.nan, 1e400]"),
    ];
    Some(match r.below(replacements.len() + 2) {
        k if k < replacements.len() => {
            let (a, b) = replacements[k];
            text.replacen(a, b, 1).into_bytes()
        }
        k if k == replacements.len() => format!("{bomb}{text}").into_bytes(),
        _ => format!("\u{feff}{text}").into_bytes(),
    })
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 30) as u8, (y * 30) as u8, 99])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A byte-level mutation: truncation, byte flips, bit flips, a run of 0xff, a deletion.
fn mutate(r: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    if b.is_empty() {
        return b;
    }
    match r.below(5) {
        0 => b.truncate(r.below(b.len())),
        1 => {
            for _ in 0..1 + r.below(8) {
                let i = r.below(b.len());
                b[i] = r.next() as u8;
            }
        }
        2 => {
            let i = r.below(b.len());
            b[i] ^= 1 << r.below(8);
        }
        3 => {
            let i = r.below(b.len());
            let n = (1 + r.below(8)).min(b.len() - i);
            b[i..i + n].fill(0xff);
        }
        _ => {
            let i = r.below(b.len());
            let n = (1 + r.below(16)).min(b.len() - i);
            b.drain(i..i + n);
        }
    }
    b
}

/// Runs one case; `Err` says what went wrong.
fn run_case(t: &Target, r: &mut Rng) -> Result<(), String> {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(t.file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let seed = (t.seed)(d.path());
    let input = match r.below(3) {
        0 => (t.special)(r, &seed).unwrap_or_else(|| mutate(r, &seed)),
        _ => mutate(r, &seed),
    };
    std::fs::write(&path, &input).unwrap();
    let a = (t.args)(d.path(), &path);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    match qtune_in(d.path(), &a, Duration::from_secs(30)) {
        None => Err(format!(
            "{}: hung (over 30 s) on {} bytes",
            t.name,
            input.len()
        )),
        Some(out) => match out.status.code() {
            Some(0 | 2) if !String::from_utf8_lossy(&out.stderr).contains("panicked") => Ok(()),
            code => Err(format!(
                "{}: exit {code:?} (a signal if None) on {} bytes: {}",
                t.name,
                input.len(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )),
        },
    }
}

#[test]
fn mutated_inputs_exit_0_or_2_and_never_hang() {
    let cases: usize = std::env::var("QTUNE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("QTUNE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED);
    let targets = targets();
    // The harness itself: every seed, unmutated, is a valid input (exit 0), so the
    // mutated cases test what they mean to and not a wrong command line.
    for t in &targets {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(t.file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, (t.seed)(d.path())).unwrap();
        let a = (t.args)(d.path(), &path);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = qtune_in(d.path(), &a, Duration::from_secs(30)).expect("seed runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: the seed must be valid: {}",
            t.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let failures = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= cases {
                        break;
                    }
                    // One generator per case: case `i` is the same whatever runs beside it.
                    let mut r = Rng(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let t = &targets[i % targets.len()];
                    if let Err(e) = run_case(t, &mut r) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("case {i} (seed {seed}): {e}"));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
