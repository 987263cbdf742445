//! Reading inputs and writing outputs without harming the user's files.
//!
//! Every file qtune writes goes through [`write_atomic`]; every file it reads through
//! [`open_input`] (or [`read_input`]). The contracts:
//! - an output replaces only a regular file (or creates one), atomically: a temp file with an
//!   unpredictable name, created exclusively (no symlink followed) in the target's folder,
//!   fsynced, then renamed over the target. A symlinked target is written through to the file
//!   it points to; the target's mode is kept; a read-only target is refused, not replaced;
//!   a folder, device, FIFO or socket is refused — except the stream names the user can only
//!   mean literally (`/dev/stdout`, `/dev/stderr`, `/dev/null`, `/dev/fd/N`), written directly;
//! - an input is read only from a regular file (no FIFO that blocks forever, no device that
//!   never ends), except `/dev/stdin` and `/dev/fd/N`, and never past the memory budget;
//! - [`check_outputs`] refuses an output that is one of the command's inputs (same file by
//!   device and inode, so hard links and symlinks count) or another of its outputs.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (see the module contract). A crash leaves either the
/// old file or the new one, never a mix. Errors say what is wrong with the target; the
/// caller adds the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if is_output_stream(path) {
        let mut f = OpenOptions::new().write(true).open(path)?;
        return f.write_all(bytes);
    }
    let (target, meta) = resolve_target(path)?;
    let mode = match &meta {
        Some(m) => {
            check_replaceable(&target, m)?;
            m.permissions().mode() & 0o7777
        }
        None => 0o666, // less the umask, as for any new file
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    if meta.is_some() {
        // open(2) applied the umask; an existing file's mode is kept exactly.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    // Make the rename itself durable; a folder that cannot be opened is no reason to fail.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file a write to `path` lands on: `path` itself, or the end of its symlink chain.
/// `None` metadata: it does not exist yet. A dangling symlink is refused (its target would
/// be created wherever the link points).
pub fn resolve_target(path: &Path) -> io::Result<(PathBuf, Option<Metadata>)> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            Ok(m) => return Ok((p, Some(m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound && p != path => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "is a symbolic link to {}, which does not exist; qtune does not create files through dangling links",
                        p.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((p, None)),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Refuses to replace anything but a regular file this user may write.
fn check_replaceable(target: &Path, m: &Metadata) -> io::Result<()> {
    if !m.is_file() {
        let hint = if m.is_dir() {
            "; name a file inside it"
        } else {
            "; qtune writes only regular files (or /dev/stdout, /dev/stderr, /dev/null)"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}{hint}", kind_of(m)),
        ));
    }
    if m.permissions().readonly() || !writable(target) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "is read-only; qtune does not replace it (make it writable, or choose another path)",
        ));
    }
    Ok(())
}

/// Whether this process may write `path` (root may write anything the mode bits allow,
/// which `check_replaceable` tests first).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// "a folder", "a FIFO", … for messages.
pub fn kind_of(m: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// Names that can only mean "this stream": written directly, never replaced.
fn is_output_stream(path: &Path) -> bool {
    let s = path.to_string_lossy();
    matches!(s.as_ref(), "/dev/stdout" | "/dev/stderr" | "/dev/null") || is_fd_name(&s)
}

/// Names that can only mean "read this stream".
fn is_input_stream(path: &Path) -> bool {
    let s = path.to_string_lossy();
    s == "/dev/stdin" || is_fd_name(&s)
}

fn is_fd_name(s: &str) -> bool {
    ["/dev/fd/", "/proc/self/fd/"].iter().any(|p| {
        s.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Opens an input for reading: a regular file, or a stream given by its stream name.
/// A FIFO is never waited on and a device never read unless named that way.
pub fn open_input(path: &Path) -> io::Result<File> {
    let stream = is_input_stream(path);
    let m = std::fs::metadata(path)?;
    if !m.is_file() && !stream {
        return Err(not_regular(&m));
    }
    // O_NONBLOCK: opening a FIFO swapped in after the check must not block.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() && !stream {
        return Err(not_regular(&m));
    }
    set_blocking(&f)?;
    Ok(f)
}

fn not_regular(m: &Metadata) -> io::Error {
    let hint = if m.is_dir() {
        ", not a file"
    } else {
        "; qtune reads only regular files (or /dev/stdin)"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {}{hint}", kind_of(m)),
    )
}

fn set_blocking(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain ints.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Reads a whole input (see [`open_input`]), refusing one larger than `limit` bytes before
/// allocating, and allocating fallibly.
pub fn read_input(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = open_input(path)?;
    let size = f.metadata()?.len();
    if size > limit {
        return Err(too_large(size, limit));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(size as usize)
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate memory"))?;
    // `take`: a stream (or a file growing meanwhile) stops at the limit too.
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64, limit));
    }
    Ok(buf)
}

/// [`read_input`] as UTF-8 text, a leading byte-order mark dropped.
pub fn read_input_text(path: &Path, limit: u64) -> io::Result<String> {
    let bytes = read_input(path, limit)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is not UTF-8 text ({e})"),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

fn too_large(size: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "is {} bytes, more than qtune reads ({limit} bytes; see QTUNE_MEMORY_MB)",
            size
        ),
    )
}

/// Identity of an existing file: (device, inode), symlinks followed.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `path` made absolute without requiring it to exist: its folder canonicalized.
fn canonical_spelling(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let name = path.file_name().unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir)
        .map(|d| d.join(name))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// A file a command reads or writes, with what it is for (`"the model"`, `"--qdq"`).
#[derive(Clone, Copy, Debug)]
pub struct Role<'a> {
    pub what: &'a str,
    pub path: &'a Path,
}

impl<'a> Role<'a> {
    pub fn new(what: &'a str, path: &'a Path) -> Role<'a> {
        Role { what, path }
    }
}

/// Refuses an output that is one of the inputs, or the same file as another output. The
/// message names both. Stream names (`/dev/stdout`, …) are never a clash.
pub fn check_outputs(outputs: &[Role], inputs: &[Role]) -> Result<(), String> {
    for (i, out) in outputs.iter().enumerate() {
        if is_output_stream(out.path) {
            continue;
        }
        if let Some(id) = file_id(out.path)
            && let Some(inp) = inputs.iter().find(|r| file_id(r.path) == Some(id))
        {
            return Err(format!(
                "{} {} is {} ({}); qtune never writes over its inputs: choose another path",
                out.what,
                out.path.display(),
                inp.what,
                inp.path.display()
            ));
        }
        let spelled = canonical_spelling(out.path);
        for other in &outputs[..i] {
            let same = match (file_id(out.path), file_id(other.path)) {
                (Some(a), Some(b)) => a == b,
                _ => canonical_spelling(other.path) == spelled,
            };
            if same && !is_output_stream(other.path) {
                return Err(format!(
                    "{} {} and {} {} are the same file; give each its own path",
                    other.what,
                    other.path.display(),
                    out.what,
                    out.path.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "fs_tests.rs"]
mod tests;
