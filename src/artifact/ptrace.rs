//! `PTRACE_SETREGSET` buffers for `NT_X86_XSTATE`.
//!
//! The kernel takes the standard format only (`copy_uabi_to_xstate`,
//! `arch/x86/kernel/fpu/xstate.c`): XCOMP_BV must be 0 (a compacted buffer
//! is refused with EINVAL, measured here), XSTATE_BV within its user XCR0,
//! the reserved header bytes zero, MXCSR within its mask; and the iovec
//! must be exactly its user xstate size, the size `PTRACE_GETREGSET`
//! gives (the standard size of its XCR0 on the host; 2688 bytes here for
//! XCR0 0xe7). Bytes 464..512 are ignored on the way in; the buffer
//! carries the XCR0 there as `PTRACE_GETREGSET` does, so xstate's own
//! checks know its layout.

use crate::component::Xfeatures;
use crate::layout::Layout;
use alloc::vec::Vec;

pub use super::user::UserAreaError;

/// The `PTRACE_SETREGSET` buffer holding the state of `area` (either
/// format, in layout `from`) for a kernel on a CPU of layout `host` whose
/// user XCR0 is `xcr0`: standard format, `host.standard_size_for(xcr0)`
/// bytes, XCR0 at 464.
///
/// ```
/// use xstate::artifact::ptrace::setregset_buffer;
/// use xstate::{layout::catalog, Xfeatures};
///
/// let zen4 = catalog::get("amd-zen4").unwrap();
/// let spr = catalog::get("intel-sapphire-rapids").unwrap();
/// let mut area = vec![0u8; zen4.compacted_size() as usize];
/// xstate::area::init_area(&mut area, xstate::XcompBv::compacted(zen4.xcr0_supported()));
/// let buf = setregset_buffer(&area, zen4, spr, Xfeatures::from_bits(0x2e7)).unwrap();
/// assert_eq!(buf.len(), 2696);
/// ```
///
/// # Errors
///
/// [`UserAreaError`]: the area does not open in `from`; `xcr0` is not a
/// user XCR0 of `host`; a live component `xcr0` does not enable.
pub fn setregset_buffer(
    area: &[u8],
    from: &Layout,
    host: &Layout,
    xcr0: Xfeatures,
) -> Result<Vec<u8>, UserAreaError> {
    let mut out = super::user::standard_area(area, from, host, xcr0)?;
    super::swbytes::write_xcr0(&mut out, xcr0);
    Ok(out)
}
