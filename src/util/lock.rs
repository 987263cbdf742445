//! One writer per file: an advisory lock (`flock`) on a sidecar `NAME.lock` that holds the
//! writer's pid and command, so a second writer can say who holds it. Readers do not lock.
//!
//! Usage (a session store): `let _lock = WriterLock::acquire(&session_path, "qtune tune")?;`
//! before the first write, kept alive as long as the process writes the file. The lock is
//! released when the guard drops or the process dies (the kernel drops `flock` locks with
//! the descriptor), so a killed writer never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{path} is being written by another qtune (pid {pid}, `{command}`); wait for it to finish, or use another file"
    )]
    Held {
        path: String,
        pid: String,
        command: String,
    },
    #[error("{path}: cannot lock it for writing: {source}")]
    Io { path: String, source: io::Error },
}

/// The holder of a lock, as recorded in the lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: String,
    pub command: String,
}

/// The exclusive right to write one file; released on drop.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    lock_path: PathBuf,
}

/// The sidecar of `target`: `NAME.lock` beside the file a write lands on (symlinks
/// followed, so two names of one file share one lock).
pub fn lock_path(target: &Path) -> io::Result<PathBuf> {
    let (real, _) = super::fs::resolve_target(target)?;
    let mut name = real.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    Ok(real.with_file_name(name))
}

impl WriterLock {
    /// Takes the lock of `target` for this process, recording `command` (e.g. `qtune tune`).
    /// Fails at once, naming the holder, when another process holds it.
    pub fn acquire(target: &Path, command: &str) -> Result<WriterLock, LockError> {
        let io_err = |source| LockError::Io {
            path: target.display().to_string(),
            source,
        };
        let lock_path = lock_path(target).map_err(io_err)?;
        // A holder may unlink the file between our open and our flock; then the lock we got
        // is on a file nobody else will see, so try again on the new one.
        for _ in 0..8 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&lock_path)
                .map_err(io_err)?;
            if !try_flock(&file).map_err(io_err)? {
                let h = read_holder(&mut file);
                return Err(LockError::Held {
                    path: target.display().to_string(),
                    pid: h.as_ref().map_or("unknown".into(), |h| h.pid.clone()),
                    command: h.map_or("unknown".into(), |h| h.command),
                });
            }
            if !same_file(&file, &lock_path) {
                continue;
            }
            let line = format!("{}\t{}\n", std::process::id(), one_line(command));
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(line.as_bytes()))
                .map_err(io_err)?;
            return Ok(WriterLock { file, lock_path });
        }
        Err(io_err(io::Error::other("the lock file keeps changing")))
    }

    /// Who holds the lock of `target`, if anyone (for readers that want to say so).
    pub fn holder(target: &Path) -> Option<Holder> {
        let p = lock_path(target).ok()?;
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(p)
            .ok()?;
        if try_flock(&f).ok()? {
            return None; // nobody holds it (and our lock ends when `f` closes)
        }
        read_holder(&mut f)
    }

    /// The sidecar file this lock holds.
    pub fn path(&self) -> &Path {
        &self.lock_path
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so no one can lock the old inode after us
        // and believe it theirs (acquire re-checks the inode for the same reason).
        if same_file(&self.file, &self.lock_path) {
            let _ = std::fs::remove_file(&self.lock_path);
        }
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file holds it.
fn try_flock(f: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

fn read_holder(f: &mut File) -> Option<Holder> {
    let mut text = String::new();
    f.rewind().ok()?;
    f.take(4096).read_to_string(&mut text).ok()?;
    let (pid, command) = text.trim_end().split_once('\t')?;
    Some(Holder {
        pid: super::text::escape_control(pid),
        command: super::text::escape_control(command),
    })
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_holder_until_the_first_drops() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("s.json");
        let first = WriterLock::acquire(&s, "qtune tune -c x.yaml").unwrap();
        assert_eq!(first.path(), d.path().join("s.json.lock"));
        let e = WriterLock::acquire(&s, "qtune tui")
            .unwrap_err()
            .to_string();
        let pid = std::process::id().to_string();
        assert!(
            e.contains(&format!("pid {pid}")) && e.contains("`qtune tune -c x.yaml`"),
            "{e}"
        );
        let h = WriterLock::holder(&s).unwrap();
        assert_eq!((h.pid, h.command.as_str()), (pid, "qtune tune -c x.yaml"));
        drop(first);
        assert!(!d.path().join("s.json.lock").exists(), "the sidecar goes");
        assert_eq!(WriterLock::holder(&s), None);
        let again = WriterLock::acquire(&s, "qtune tui").unwrap();
        drop(again);
    }

    #[test]
    fn two_names_of_one_file_share_one_lock() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("s.json");
        std::fs::write(&s, b"{}").unwrap();
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&s, &link).unwrap();
        let _held = WriterLock::acquire(&s, "a").unwrap();
        assert!(matches!(
            WriterLock::acquire(&link, "b"),
            Err(LockError::Held { .. })
        ));
    }

    #[test]
    fn a_planted_symlink_at_the_lock_name_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("s.json.lock")).unwrap();
        let e = WriterLock::acquire(&d.path().join("s.json"), "x").unwrap_err();
        assert!(matches!(e, LockError::Io { .. }), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }
}
