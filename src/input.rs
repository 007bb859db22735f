//! Input files read with a bound: what xstate reads (areas, streams, layout
//! files, CPUID dumps, host profiles) comes from a regular file, or from a
//! stream the caller opened (standard input), and never more than a limit
//! the caller gives is read or kept.
//!
//! A regular file says its size, so one too large is refused unread. A
//! device, FIFO, socket or directory is refused before it is opened: a
//! FIFO's open would block until a writer came, and `/dev/zero` never ends.
//! Memory stays within the limit plus one read buffer whatever the input.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// Why an input was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file could not be opened or read (missing, unreadable).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Not a regular file: inputs are files, or standard input.
    #[error(
        "a {kind}, not a regular file: inputs are read from regular files (or standard input, `-`)"
    )]
    NotRegular {
        /// What it is: "directory", "FIFO", "character device", "block
        /// device" or "socket".
        kind: &'static str,
    },
    /// More than `limit` bytes.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The bound, in bytes.
        limit: u64,
    },
}

/// What a file that is not a regular file is, for messages.
fn kind(file_type: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Opens `path` for reading if it is a regular file (symlinks followed),
/// with its size in bytes.
///
/// # Errors
///
/// [`InputError::NotRegular`] for anything but a regular file (checked
/// before opening, so a FIFO never blocks), [`InputError::Io`] when it
/// cannot be opened.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            kind: kind(meta.file_type()),
        });
    }
    let file = File::open(path)?;
    // Checked again on what was opened: the path may have changed since.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            kind: kind(meta.file_type()),
        });
    }
    Ok((file, meta.len()))
}

/// Appends what `reader` holds to `bytes`, up to `limit` bytes in all.
///
/// # Errors
///
/// [`InputError::TooLarge`] as soon as there is more (at most one byte past
/// the bound is read), [`InputError::Io`] for a read error.
pub fn read_rest(reader: impl Read, mut bytes: Vec<u8>, limit: u64) -> Result<Vec<u8>, InputError> {
    let have = bytes.len() as u64;
    if have > limit {
        return Err(InputError::TooLarge { limit });
    }
    reader.take(limit - have + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(InputError::TooLarge { limit });
    }
    Ok(bytes)
}

/// The bytes of the regular file `path`, if it holds at most `limit`.
///
/// # Errors
///
/// As [`open_regular`]; [`InputError::TooLarge`] for a larger file (refused
/// unread when its size says so).
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let (file, len) = open_regular(path)?;
    if len > limit {
        return Err(InputError::TooLarge { limit });
    }
    // The size read is a hint only: the file may grow meanwhile.
    let hint = usize::try_from(len.min(limit)).unwrap_or(0);
    read_rest(file, Vec::with_capacity(hint), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_bound_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_file(&file, 10).unwrap(), b"0123456789");
        assert!(matches!(
            read_file(&file, 9),
            Err(InputError::TooLarge { limit: 9 })
        ));
        let e = read_file(dir.path(), 10).unwrap_err();
        assert!(
            matches!(e, InputError::NotRegular { kind: "directory" }),
            "{e:?}"
        );
        // A FIFO with no writer: refused at once, never opened.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.expect("mkfifo (coreutils)").success());
        let e = read_file(&fifo, 10).unwrap_err();
        assert!(
            matches!(e, InputError::NotRegular { kind: "FIFO" }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "a FIFO, not a regular file: inputs are read from regular files (or standard input, `-`)"
        );
        let e = read_file(&dir.path().join("missing"), 10).unwrap_err();
        assert!(matches!(e, InputError::Io(_)), "{e:?}");
        // A reader (standard input) is cut one byte past the bound.
        let endless = io::repeat(7);
        assert!(matches!(
            read_rest(endless, vec![1, 2], 100),
            Err(InputError::TooLarge { limit: 100 })
        ));
        assert_eq!(read_rest(&b"cd"[..], b"ab".to_vec(), 4).unwrap(), b"abcd");
    }
}
