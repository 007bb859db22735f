//! Binary input files read with a bound: a huge or endless input (a device,
//! a FIFO) is refused after the bound, never read whole.

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
    xstate::layout::read_at_most(path, limit)
        .map_err(|e| fail(USAGE, format_args!("{}: {e}", path.display())))?
        .ok_or_else(|| {
            fail(
                REJECTED,
                format_args!("{}: larger than {limit} bytes: not {what}", path.display()),
            )
        })
}
