//! Output files that appear whole or not at all, without replacing what
//! they must not.
//!
//! `/dev/stdout` and `/dev/stderr` (and their `/dev/fd` and `/proc/self/fd`
//! names) are the process's own streams: written to, as a shell redirection
//! or pipe set them up (`>>` appends). Any other path is resolved by the
//! kernel, as a shell's `>` would be (its symlink protections apply). A
//! target that is not a regular file (a FIFO, a device) is written
//! directly: it cannot be replaced, only written to. A regular file is
//! written to a temporary file beside it and renamed into place: on any
//! error it is left as it was. A new file gets mode 0666 less the umask,
//! as any program's output would; an existing one must be writable by the
//! caller and keeps its mode, owner and group. An existing file with other
//! hard links, whose owner the caller cannot give the new file, or in a
//! directory the caller cannot write, is rewritten in place instead, so it
//! stays the same file (then an I/O error part way can leave it partly
//! written). A symlink to nothing is refused. `-` is standard output.
//!
//! The temporary file is created exclusively with a random name
//! (`tempfile`), and removed on every error and when SIGINT, SIGTERM or
//! SIGHUP ends the process while it exists: a thread waits for those
//! signals, removes it, then ends the process as the signal would have.

use std::fs::{self, Permissions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

/// The temporary file being written, if any: removed when a signal ends
/// the process. Held locked while it is renamed into place.
static PENDING: Mutex<Option<PathBuf>> = Mutex::new(None);

fn pending() -> MutexGuard<'static, Option<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts, once, the thread that removes the pending temporary file when
/// SIGINT, SIGTERM or SIGHUP arrives, then ends the process as the signal
/// would (killed by it, as the shell reports).
fn watch_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                if let Some(tmp) = pending().take() {
                    let _ = fs::remove_file(tmp);
                }
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        });
    });
}

/// Forgets the pending temporary file when dropped (it is gone: renamed,
/// or removed by `tempfile`).
struct Pending;

impl Pending {
    fn set(path: &Path) -> Pending {
        *pending() = Some(path.to_path_buf());
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        *pending() = None;
    }
}

/// Writes `bytes` to `path` whole or not at all (see the module docs).
///
/// # Errors
///
/// An I/O error, or `path` being a symlink to nothing; `path` is then
/// unchanged where it is a regular file or absent.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std_stream(path) {
        Some(1) => return write_stream(&mut std::io::stdout().lock(), bytes),
        Some(_) => return write_stream(&mut std::io::stderr().lock(), bytes),
        None => {}
    }
    watch_signals();
    // Opened for writing without truncating: the kernel resolves the path
    // and says whether the caller may write it.
    let existing = match fs::OpenOptions::new().write(true).open(path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::NotFound,
                    "a symlink to nothing: not followed",
                ));
            }
            None
        }
        Err(e) => return Err(e),
    };
    let target = match &existing {
        Some(file) => {
            let meta = file.metadata()?;
            if !meta.is_file() {
                let mut file = file;
                return write_stream(&mut file, bytes);
            }
            // Another name of the file stdout or stderr is (`//dev/stdout`,
            // `/proc/<pid>/fd/1`): written through that stream, as the
            // shell opened it (`>>` appends), never replaced.
            match std_stream_of(&meta) {
                Some(1) => return write_stream(&mut std::io::stdout().lock(), bytes),
                Some(_) => return write_stream(&mut std::io::stderr().lock(), bytes),
                None => {}
            }
            if named_twice(&meta) {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidInput,
                    "the output is also an input of this command: not written (write elsewhere, then rename)",
                ));
            }
            // Where the kernel resolved it, symlinks followed.
            fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?
        }
        None => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The kernel applies the umask to the mode a file is created with.
    let tmp = tempfile::Builder::new()
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(&dir);
    let mut tmp = match (tmp, existing) {
        (Ok(tmp), None) => tmp,
        (Ok(tmp), Some(file)) => {
            let old = file.metadata()?;
            let new = tmp.as_file().metadata()?;
            let same_owner = (old.uid(), old.gid()) == (new.uid(), new.gid())
                || std::os::unix::fs::fchown(tmp.as_file(), Some(old.uid()), Some(old.gid()))
                    .is_ok();
            if old.nlink() > 1 || !same_owner {
                drop(tmp);
                return rewrite(file, bytes);
            }
            tmp.as_file().set_permissions(old.permissions())?;
            tmp
        }
        // A writable file in a directory the caller cannot write.
        (Err(e), Some(file)) if e.kind() == ErrorKind::PermissionDenied => {
            return rewrite(file, bytes)
        }
        // Named by the directory, not the temporary file's random name.
        (Err(e), _) => {
            let os = e.raw_os_error().map(std::io::Error::from_raw_os_error);
            let why = os.map_or_else(|| e.kind().to_string(), |o| o.to_string());
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot create a file in {}: {why}", dir.display()),
            ));
        }
    };
    let _pending = Pending::set(tmp.path());
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    hold_for_tests();
    // Renamed with the lock held: a signal arriving meanwhile waits, then
    // finds nothing to remove.
    let mut lock = pending();
    let persisted = tmp.persist(&target).map_err(|e| e.error);
    *lock = None;
    persisted?;
    Ok(())
}

/// A test instrument, not an interface: with `XSTATE_TEST_HOLD_TEMP_MS`
/// set, waits that long with the temporary file written, so a test can
/// signal the process while it exists.
fn hold_for_tests() {
    if let Some(ms) = std::env::var("XSTATE_TEST_HOLD_TEMP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// 1 or 2 when the file `meta` describes is the one stdout or stderr is.
fn std_stream_of(meta: &fs::Metadata) -> Option<u8> {
    [1u8, 2].into_iter().find(|fd| {
        fs::metadata(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
    })
}

/// Whether the file `meta` describes is named more than once on the
/// command line (by any name, `--opt=FILE` included): the output, and an
/// input the command reads (a layout, a CPUID, a guest CPUID).
fn named_twice(meta: &fs::Metadata) -> bool {
    std::env::args_os()
        .skip(1)
        .filter(|arg| {
            let path = match arg.to_str().and_then(|a| a.split_once('=')) {
                Some((opt, value)) if opt.starts_with("--") => PathBuf::from(value),
                _ => PathBuf::from(arg),
            };
            fs::metadata(&path).is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
        })
        .count()
        > 1
}

/// 1 or 2 when `path` names the process's stdout or stderr.
fn std_stream(path: &Path) -> Option<u8> {
    match path.to_str()? {
        "-" | "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" => Some(1),
        "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2" => Some(2),
        _ => None,
    }
}

fn write_stream(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes)?;
    w.flush()
}

/// Rewrites an open file in place: `bytes`, then the length cut to them.
fn rewrite(mut file: fs::File, bytes: &[u8]) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
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
        // A symlink is followed and stays a symlink; one to nothing is
        // refused, creating nothing.
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
        assert!(write_atomically(&dangling, b"d").is_err());
        assert!(!dir.path().join("made.bin").exists());
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
