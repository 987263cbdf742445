//! What qtune does to files (issue 15): outputs never clobber inputs or strangers, devices
//! and FIFOs are neither replaced nor read, planted symlinks redirect nothing, read-only
//! files stay, external data stays with the model, one writer per file.

mod support;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

use support::*;

fn sha(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// A parameter record of the demo workspace in `d`.
fn params(d: &Path, cfg: &Path) -> std::path::PathBuf {
    let p = d.join("p.yaml");
    let out = qtune(&["--quiet", "calibrate", "-c", s(cfg), "-o", s(&p)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

#[test]
fn an_output_that_is_an_input_is_refused_naming_both() {
    let (d, cfg) = demo_workspace(2);
    let model = d.path().join("model.onnx");
    let before = sha(&model);
    let image = d.path().join("calib/0000.png");
    for (target, what) in [
        (&model, "the model"),
        (&cfg, "the configuration"),
        (&image, "calibration data"),
    ] {
        let out = qtune(&["calibrate", "-c", s(&cfg), "-o", s(target)]);
        assert_refused(&out, &["-o", what, "never writes over its inputs"]);
    }
    let p = params(d.path(), &cfg);
    let p_before = sha(&p);
    let out = qtune(&["export", "--params", s(&p), "--qdq", s(&model)]);
    assert_refused(&out, &["--qdq", "the model"]);
    let out = qtune(&["export", "--params", s(&p), "--trt-cache", s(&p)]);
    assert_refused(&out, &["--trt-cache", "the parameter record"]);
    let hard = d.path().join("hard.onnx");
    std::fs::hard_link(&model, &hard).unwrap();
    let out = qtune(&["export", "--params", s(&p), "--qdq", s(&hard)]);
    assert_refused(&out, &["the model"]);
    let same = d.path().join("out.bin");
    let out = qtune(&[
        "export",
        "--params",
        s(&p),
        "--qdq",
        s(&same),
        "--trt-cache",
        s(&same),
    ]);
    assert_refused(&out, &["same file"]);
    assert_eq!(sha(&model), before, "the model is untouched");
    assert_eq!(sha(&p), p_before, "the record is untouched");
}

#[test]
fn a_session_is_never_overwritten_by_an_export() {
    let d = tempfile::tempdir().unwrap();
    let session = d.path().join("s.json");
    std::fs::copy(
        root().join("tests/fixtures/sessions/format1-demo.json"),
        &session,
    )
    .unwrap();
    let before = sha(&session);
    let model = root().join("assets/demo/ppocr-cls.onnx");
    let out = qtune(&[
        "--model",
        s(&model),
        "export",
        "--session",
        s(&session),
        "--qdq",
        s(&session),
    ]);
    assert_refused(&out, &["--qdq", "the session"]);
    assert_eq!(sha(&session), before);
}

#[test]
fn infer_refuses_an_output_linked_to_its_input_and_ignores_planted_temp_names() {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("relu.onnx");
    std::fs::write(&m, relu_model()).unwrap();
    let x = d.path().join("x.npy");
    std::fs::write(&x, npy_f32(&[1, 3, 8, 8], &[-1.0; 192])).unwrap();
    let out_dir = d.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    symlink(&x, out_dir.join("output_0.npy")).unwrap();
    let out = qtune(&["infer", s(&m), "--input", s(&x), "--out", s(&out_dir)]);
    assert_refused(&out, &["output_0.npy", "--input"]);
    // The old scheme's temp name, planted as a link to a victim: nothing follows it.
    std::fs::remove_file(out_dir.join("output_0.npy")).unwrap();
    let victim = d.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    symlink(&victim, out_dir.join("output_0.npy.tmp")).unwrap();
    let out = qtune(&["infer", s(&m), "--input", s(&x), "--out", s(&out_dir)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha(&victim), b"precious");
    assert!(
        std::fs::metadata(out_dir.join("output_0.npy"))
            .unwrap()
            .is_file()
    );
}

#[test]
fn devices_fifos_folders_and_read_only_files_are_not_replaced() {
    let (d, cfg) = demo_workspace(2);
    let p = params(d.path(), &cfg);
    // /dev/null: written directly (the user asked to discard), never replaced.
    let out = qtune(&[
        "--quiet",
        "export",
        "--params",
        s(&p),
        "--trt-cache",
        "/dev/null",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let out = qtune(&["export", "--params", s(&p), "--trt-cache", s(&fifo)]);
    assert_refused(&out, &["FIFO"]);
    let out = qtune(&["export", "--params", s(&p), "--trt-cache", s(d.path())]);
    assert_refused(&out, &["a folder"]);
    let ro = d.path().join("ro.cache");
    std::fs::write(&ro, b"keep").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let out = qtune(&["export", "--params", s(&p), "--trt-cache", s(&ro)]);
    assert_refused(&out, &["read-only"]);
    assert_eq!(sha(&ro), b"keep");
}

#[test]
fn a_symlinked_output_is_written_through_and_keeps_its_mode() {
    let (d, cfg) = demo_workspace(2);
    let real = d.path().join("real.yaml");
    std::fs::write(&real, b"old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = d.path().join("link.yaml");
    symlink("real.yaml", &link).unwrap();
    let out = qtune(&["--quiet", "calibrate", "-c", s(&cfg), "-o", s(&link)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(text.starts_with("# qtune parameter record"), "{text}");
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn fifo_and_device_inputs_are_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("in.fifo");
    mkfifo(&fifo);
    let m = d.path().join("relu.onnx");
    std::fs::write(&m, relu_model()).unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", s(&fifo)],
        vec!["infer", s(&m), "--input", s(&fifo), "--out", s(d.path())],
        vec!["calibrate", "-c", s(&fifo)],
        vec!["inspect", "/dev/zero"],
    ];
    for args in cases {
        let out = qtune_in(d.path(), &args, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{args:?} blocked"));
        assert_refused(&out, &["qtune reads only regular files"]);
    }
}

#[test]
fn external_data_stays_in_the_model_folder() {
    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let secret = d.path().join("secret.bin");
    std::fs::write(&secret, [7u8; 16]).unwrap();
    std::fs::write(models.join("w.bin"), [0u8; 16]).unwrap();
    mkfifo(&models.join("w.fifo"));
    symlink(&secret, models.join("link.bin")).unwrap();
    let x = d.path().join("x.npy");
    std::fs::write(&x, npy_f32(&[4], &[1.0; 4])).unwrap();
    let cases = [
        ("../secret.bin", 0, "outside the model's folder"),
        ("/etc/passwd", 0, "outside the model's folder"),
        ("link.bin", 0, "outside the model's folder"),
        ("w.fifo", 0, "FIFO"),
        ("w.bin", 8, "needs bytes 8..24"),
        ("missing.bin", 0, "missing.bin"),
    ];
    for (location, offset, needle) in cases {
        let m = models.join("m.onnx");
        std::fs::write(&m, add_model(external_tensor("w", &[4], location, offset))).unwrap();
        let out = qtune_in(
            d.path(),
            &[
                "infer",
                s(&m),
                "--input",
                s(&x),
                "--out",
                s(&d.path().join("out")),
            ],
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("{location} blocked"));
        assert_refused(&out, &["m.onnx", needle]);
    }
    // Inside the folder it loads.
    let m = models.join("m.onnx");
    std::fs::write(&m, add_model(external_tensor("w", &[4], "w.bin", 0))).unwrap();
    let out = qtune(&[
        "infer",
        s(&m),
        "--input",
        s(&x),
        "--out",
        s(&d.path().join("out")),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Holds the writer lock of `$QTUNE_LOCK_TARGET` until stdin closes: the other process of
/// `a_second_process_cannot_take_the_writer_lock`. Not a test by itself.
#[test]
#[ignore = "helper process of a_second_process_cannot_take_the_writer_lock"]
fn lock_holder_process() {
    let target = std::env::var("QTUNE_LOCK_TARGET").expect("QTUNE_LOCK_TARGET");
    let _lock = qtune::util::lock::WriterLock::acquire(Path::new(&target), "qtune tune -c x.yaml")
        .expect("lock");
    println!("locked");
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
}

#[test]
fn a_second_process_cannot_take_the_writer_lock() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("s.json");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "lock_holder_process", "--nocapture"])
        .env("QTUNE_LOCK_TARGET", &target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("locked"))),
        "the helper locked"
    );
    let e = qtune::util::lock::WriterLock::acquire(&target, "qtune tui").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("pid {}", child.id())) && msg.contains("qtune tune -c x.yaml"),
        "{msg}"
    );
    drop(child.stdin.take());
    child.wait().unwrap();
    // The holder is gone: the lock is free again.
    qtune::util::lock::WriterLock::acquire(&target, "qtune tui").expect("free after exit");
}
