use super::*;
use std::os::unix::fs::symlink;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn mkfifo(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[test]
fn writes_a_new_file_and_replaces_an_old_one_keeping_its_mode() {
    let d = dir();
    let p = d.path().join("out.bin");
    write_atomic(&p, b"one").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"one");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    write_atomic(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // No temp file is left behind.
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn writes_through_a_symlink_to_its_target() {
    let d = dir();
    let real = d.path().join("real.json");
    std::fs::write(&real, b"old").unwrap();
    let link = d.path().join("link.json");
    symlink("real.json", &link).unwrap();
    write_atomic(&link, b"new").unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&real).unwrap(), b"new");
}

#[test]
fn refuses_a_dangling_symlink_a_folder_a_fifo_and_a_read_only_file() {
    let d = dir();
    let dangling = d.path().join("dangling");
    symlink(d.path().join("nowhere/x"), &dangling).unwrap();
    let e = write_atomic(&dangling, b"x").unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    let e = write_atomic(d.path(), b"x").unwrap_err().to_string();
    assert!(e.contains("a folder"), "{e}");
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let e = write_atomic(&fifo, b"x").unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
    let ro = d.path().join("ro");
    std::fs::write(&ro, b"keep").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    let e = write_atomic(&ro, b"x").unwrap_err().to_string();
    assert!(e.contains("read-only"), "{e}");
    assert_eq!(std::fs::read(&ro).unwrap(), b"keep");
}

#[test]
fn a_planted_temp_name_cannot_redirect_the_write() {
    // The old scheme's predictable names, planted as links to a victim.
    let d = dir();
    let victim = d.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let out = d.path().join("s.json");
    for name in [
        format!(".s.json.tmp-{}", std::process::id()),
        "s.json.tmp".into(),
        "s.npy.tmp".into(),
    ] {
        symlink(&victim, d.path().join(name)).unwrap();
    }
    write_atomic(&out, b"session").unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&out).unwrap(), b"session");
}

#[test]
fn dev_null_is_written_directly_never_replaced() {
    write_atomic(Path::new("/dev/null"), b"discarded").unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn inputs_are_read_only_from_regular_files() {
    let d = dir();
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let e = open_input(&fifo).unwrap_err().to_string();
    assert!(e.contains("FIFO"), "{e}");
    let e = open_input(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("character device"), "{e}");
    let e = open_input(d.path()).unwrap_err().to_string();
    assert!(e.contains("folder"), "{e}");
    let f = d.path().join("f");
    std::fs::write(&f, b"\xef\xbb\xbfmodel: m\n").unwrap();
    assert_eq!(read_input_text(&f, 100).unwrap(), "model: m\n");
    let e = read_input(&f, 4).unwrap_err().to_string();
    assert!(e.contains("more than qtune reads"), "{e}");
}

#[test]
fn an_output_that_is_an_input_is_refused_by_identity() {
    let d = dir();
    let model = d.path().join("m.onnx");
    std::fs::write(&model, b"model").unwrap();
    let hard = d.path().join("hard.onnx");
    std::fs::hard_link(&model, &hard).unwrap();
    let soft = d.path().join("soft.onnx");
    symlink(&model, &soft).unwrap();
    let inputs = [Role::new("the model", &model)];
    for out in [&model, &hard, &soft] {
        let e = check_outputs(&[Role::new("--qdq", out)], &inputs).unwrap_err();
        assert!(e.contains("--qdq") && e.contains("the model"), "{e}");
    }
    let new = d.path().join("new.onnx");
    assert!(check_outputs(&[Role::new("--qdq", &new)], &inputs).is_ok());
    let spelled = d.path().join(".").join("new.onnx");
    let e = check_outputs(
        &[Role::new("--qdq", &new), Role::new("--trt-cache", &spelled)],
        &inputs,
    )
    .unwrap_err();
    assert!(e.contains("same file"), "{e}");
    let null = Path::new("/dev/null");
    assert!(check_outputs(&[Role::new("--qdq", null), Role::new("-o", null)], &inputs).is_ok());
}
