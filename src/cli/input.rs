//! Binary input files read with a bound: a huge or endless input (a device,
//! a FIFO) is refused after the bound, never read whole.

use std::io::Read;
use std::path::Path;

use super::{fail, REJECTED, USAGE};

/// The largest XSAVE area file read, in bytes: far above any CPU's area
/// (11,008 bytes with AMX; `MAX_VARIABLE_SIZE` bounds a component at 1 MiB).
pub const MAX_AREA: u64 = 16 << 20;

/// The largest stream file read, in bytes: hundreds of vCPUs with AMX.
pub const MAX_STREAM: u64 = 64 << 20;

/// Reads `path` whole if it holds at most `limit` bytes. An I/O error
/// exits with the usage status; a larger input is rejected, naming `what`
/// it cannot be.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, u8> {
    let too_large = || {
        fail(
            REJECTED,
            format_args!("{}: larger than {limit} bytes: not {what}", path.display()),
        )
    };
    let io = |e: std::io::Error| fail(USAGE, format_args!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    // A regular file says its size: one too large is refused unread. Other
    // files (a FIFO, a device) are read up to the bound.
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > limit)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}
