//! Binary inputs (areas, streams) read with a bound, from a regular file or
//! from standard input (`-`): a device, a FIFO or a file too large is
//! refused at once, in bounded memory (`xstate::input`).

use std::io::Read;
use std::path::Path;

use xstate::input::{open_regular, read_rest, InputError};
use xstate::migrate::stream;

use super::{fail, REJECTED, USAGE};

/// The largest XSAVE area read, in bytes: [`xstate::layout::MAX_AREA_SIZE`]
/// (1 MiB), far above any CPU's area (11,008 bytes with AMX).
pub const MAX_AREA: u64 = xstate::layout::MAX_AREA_SIZE as u64;

/// Whether `path` names standard input.
pub fn is_stdin(path: &Path) -> bool {
    matches!(path.to_str(), Some("-" | "/dev/stdin"))
}

/// What an input holds, which sets its bound.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// An XSAVE area: at most [`MAX_AREA`] bytes.
    Area,
    /// A migration stream: at most `per_vcpu` bytes for each vCPU its
    /// header claims ([`stream::length_bound`]).
    Stream { per_vcpu: u64 },
    /// Either, told apart by the stream's magic.
    AreaOrStream { per_vcpu: u64 },
}

/// Reads `path` (`-`: standard input) as `expect` bounds it. An I/O error
/// exits with the usage status; anything else that cannot be the input
/// with the rejected-input status.
pub fn read(path: &Path, expect: Expect) -> Result<Vec<u8>, u8> {
    let io = |e: &dyn std::fmt::Display| fail(USAGE, format_args!("{}: {e}", path.display()));
    let rejected =
        |e: &dyn std::fmt::Display| fail(REJECTED, format_args!("{}: {e}", path.display()));
    let (mut reader, size): (Box<dyn Read>, Option<u64>) = if is_stdin(path) {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        match open_regular(path) {
            Ok((file, size)) => (Box::new(file), Some(size)),
            Err(e) => return Err(refused(path, &e)),
        }
    };
    // The stream header's first 16 bytes say how many vCPUs follow.
    let mut head = Vec::with_capacity(16);
    reader
        .by_ref()
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| io(&e))?;
    if xstate::artifact::core::is_elf(&head) {
        return Err(rejected(
            &"an ELF file, not an XSAVE area or a stream: `xstate decode CORE` reads a core file's threads, `--layout CORE` its layout",
        ));
    }
    let Some((limit, what)) = bound(&head, expect) else {
        // Not a stream: the decoder says why from its first bytes.
        return Ok(head);
    };
    if size.is_some_and(|s| s > limit) {
        return Err(rejected(&format_args!("larger than {limit} bytes: {what}")));
    }
    read_rest(reader, head, limit).map_err(|e| match e {
        InputError::TooLarge { .. } => rejected(&format_args!("larger than {limit} bytes: {what}")),
        e => refused(path, &e),
    })
}

/// The message and exit status for an input not read: the usage status for
/// an I/O error or a directory (not an input at all, as a missing file
/// is), the rejected-input status for anything else.
fn refused(path: &Path, e: &InputError) -> u8 {
    let code = match e {
        InputError::Io(_) | InputError::NotRegular { kind: "directory" } => USAGE,
        _ => REJECTED,
    };
    fail(code, format_args!("{}: {e}", path.display()))
}

/// The bound for an input starting `head`, and what a larger one is not;
/// `None` for a stream expected but not begun.
fn bound(head: &[u8], expect: Expect) -> Option<(u64, String)> {
    let area = || {
        Some((
            MAX_AREA,
            "not an XSAVE area (nor a migration stream)".to_string(),
        ))
    };
    match expect {
        Expect::Area => Some((MAX_AREA, "not an XSAVE area".into())),
        Expect::Stream { per_vcpu } | Expect::AreaOrStream { per_vcpu } => {
            match stream::length_bound(head, per_vcpu).zip(stream::claimed_vcpus(head)) {
                Some((limit, vcpus)) => Some((
                    limit,
                    format!(
                        "more than a stream of {vcpus} vCPUs takes at {per_vcpu} bytes each \
                             (--max-vcpu-bytes raises the bound)"
                    ),
                )),
                None if matches!(expect, Expect::AreaOrStream { .. }) => area(),
                None => None,
            }
        }
    }
}

/// Reads `path` (a regular file, or `-`: standard input) whole if it
/// holds at most `limit` bytes; the statuses as for [`read`].
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, u8> {
    let read = if is_stdin(path) {
        read_rest(std::io::stdin().lock(), Vec::new(), limit)
    } else {
        xstate::input::read_file(path, limit)
    };
    read.map_err(|e| refused(path, &e))
}

/// Refuses an output that is the input itself (the same file, by any name):
/// writing it would replace what is being read.
pub fn refuse_same(input: &Path, output: &Path) -> Result<(), u8> {
    use std::os::unix::fs::MetadataExt;
    if is_stdin(input) {
        return Ok(());
    }
    let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return Ok(());
    };
    if a.is_file() && (a.dev(), a.ino()) == (b.dev(), b.ino()) {
        return Err(fail(
            USAGE,
            format_args!(
                "{}: the output is the input {}: not written (write elsewhere, then rename)",
                output.display(),
                input.display()
            ),
        ));
    }
    Ok(())
}
