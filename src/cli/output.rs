//! Output files that appear whole or not at all, without replacing what
//! they must not.
//!
//! A regular file (or a symlink to one, followed) is written to a
//! temporary file beside it and renamed into place: on any error it is
//! left as it was. A new file gets mode 0666 less the umask, as any
//! program's output would; an existing one must be writable by the caller
//! (as for a shell's `>`) and keeps its mode, owner and group. An existing
//! file with other hard links, or whose owner the caller cannot give the
//! new file, is rewritten in place instead, so it stays the same file (then
//! an I/O error part way can leave it partly written). A target that is not
//! a regular file (`/dev/stdout`, a FIFO) is written directly: it cannot be
//! replaced, only written to.

use std::fs::{self, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The most symlinks followed, as the kernel's own limit (`ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// Writes `bytes` to `path` whole or not at all (see the module docs).
///
/// # Errors
///
/// An I/O error, or `path` being a symlink loop; `path` is then unchanged
/// where it is a regular file or absent.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // What the path names, symlinks followed by the kernel (which resolves
    // /proc's magic links such as /dev/stdout to a pipe correctly).
    if let Ok(m) = fs::metadata(path) {
        if !m.is_file() {
            let mut f = fs::OpenOptions::new().write(true).open(path)?;
            return f.write_all(bytes).and_then(|()| f.flush());
        }
    }
    let path = follow(path)?;
    // An existing file is opened for writing first (without truncating):
    // the caller must be allowed to write it, as for a shell's `>`.
    let existing = match fs::OpenOptions::new().write(true).open(&path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // The kernel applies the umask to the mode a file is created with.
    let mut tmp = tempfile::Builder::new()
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    if let Some(file) = existing {
        let old = file.metadata()?;
        let new = tmp.as_file().metadata()?;
        let same_owner = (old.uid(), old.gid()) == (new.uid(), new.gid())
            || std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid())).is_ok();
        if old.nlink() > 1 || !same_owner {
            drop(tmp);
            return rewrite(file, bytes);
        }
        tmp.as_file().set_permissions(old.permissions())?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

/// Rewrites an open file in place: `bytes`, then the length cut to them.
fn rewrite(mut file: fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
}

/// `path` with every symlink in its last component followed, dangling
/// ones too (the file is created where the link points).
fn follow(path: &Path) -> std::io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{}: more than {MAX_SYMLINKS} symlinks", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_links_and_devices_are_respected() {
        let dir = tempfile::tempdir().unwrap();
        // A new file: 0666 less the umask, never tempfile's 0600.
        let new = dir.path().join("new.bin");
        write_atomically(&new, b"a").unwrap();
        let mode = fs::metadata(&new).unwrap().permissions().mode() & 0o777;
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
            .expect("Umask in /proc/self/status (Linux 4.7 on)");
        assert_eq!(mode, 0o666 & !umask, "{mode:o}");
        // An existing file keeps its mode.
        fs::set_permissions(&new, Permissions::from_mode(0o640)).unwrap();
        write_atomically(&new, b"bb").unwrap();
        assert_eq!(
            fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::read(&new).unwrap(), b"bb");
        // A file the caller may not write is refused, unchanged (root may
        // write any file, as with a shell's `>`).
        let ro = dir.path().join("ro.bin");
        fs::write(&ro, b"keep").unwrap();
        fs::set_permissions(&ro, Permissions::from_mode(0o444)).unwrap();
        if fs::OpenOptions::new().write(true).open(&ro).is_err() {
            assert!(write_atomically(&ro, b"x").is_err());
            assert_eq!(fs::read(&ro).unwrap(), b"keep");
        }
        // A file with another hard link is rewritten in place: both names
        // see the new bytes.
        let other = dir.path().join("other.bin");
        fs::hard_link(&new, &other).unwrap();
        write_atomically(&new, b"linked").unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"linked");
        fs::remove_file(&other).unwrap();
        // A symlink is followed and stays a symlink; a dangling one creates
        // its target.
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink("new.bin", &link).unwrap();
        write_atomically(&link, b"ccc").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&new).unwrap(), b"ccc");
        let dangling = dir.path().join("dangling.bin");
        std::os::unix::fs::symlink("made.bin", &dangling).unwrap();
        write_atomically(&dangling, b"d").unwrap();
        assert_eq!(fs::read(dir.path().join("made.bin")).unwrap(), b"d");
        // A loop is an error, and creates nothing.
        let a = dir.path().join("a");
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(write_atomically(&a, b"e").is_err());
        // A pipe named through /proc (as /dev/stdout is, when stdout is a
        // pipe) is written into.
        use std::process::{Command, Stdio};
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cat (coreutils)");
        let pipe = cat.stdin.take().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&pipe);
        write_atomically(Path::new(&format!("/proc/self/fd/{fd}")), b"piped").unwrap();
        drop(pipe);
        assert_eq!(cat.wait_with_output().unwrap().stdout, b"piped");
        // A FIFO is written into, not replaced.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.expect("mkfifo (coreutils)").success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write_atomically(&fifo, b"through").unwrap();
        assert_eq!(reader.join().unwrap(), b"through");
        assert!(!fs::metadata(&fifo).unwrap().is_file());
    }
}
