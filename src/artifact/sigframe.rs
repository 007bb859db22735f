//! Signal-frame `fpstate` areas a signal handler may hand back to the
//! kernel.
//!
//! On `sigreturn` the kernel restores the extended state from the frame
//! only when `_fpx_sw_bytes` are whole (`check_xstate_in_sigframe`,
//! `arch/x86/kernel/fpu/signal.c`): magic1, an xstate_size within its
//! user size and at most extended_size, and magic2 at xstate_size;
//! otherwise it restores the FXSAVE part alone and silently resets the
//! rest. The frame is the standard format of the thread's user XCR0
//! (xfeatures), xstate_size its standard size, then magic2.

use crate::component::Xfeatures;
use crate::layout::Layout;
use alloc::vec::Vec;

pub use super::user::UserAreaError;

/// The signal-frame `fpstate` holding the state of `area` (either format,
/// in layout `from`) for a thread on a CPU of layout `host` whose user
/// XCR0 (the frame's xfeatures) is `xfeatures`: the standard-format area
/// of `host.standard_size_for(xfeatures)` bytes with `_fpx_sw_bytes` at
/// 464, then magic2 (4 bytes).
///
/// ```
/// use xstate::artifact::{sigframe, swbytes};
/// use xstate::{layout::catalog, Xfeatures};
///
/// let spr = catalog::get("intel-sapphire-rapids").unwrap();
/// let area = vec![0u8; 576];
/// let frame = sigframe::frame(&area, spr, spr, Xfeatures::from_bits(0x2e7)).unwrap();
/// assert_eq!(frame.len(), 2696 + 4);
/// assert!(swbytes::check(&frame, spr).unwrap().is_some());
/// ```
///
/// # Errors
///
/// [`UserAreaError`]: the area does not open in `from`; `xfeatures` is not
/// a user XCR0 of `host`; a live component it does not enable.
pub fn frame(
    area: &[u8],
    from: &Layout,
    host: &Layout,
    xfeatures: Xfeatures,
) -> Result<Vec<u8>, UserAreaError> {
    let mut out = super::user::standard_area(area, from, host, xfeatures)?;
    let size = out.len() as u32;
    out.extend_from_slice(&[0; 4]);
    super::swbytes::write_signal_frame(&mut out, xfeatures, size);
    Ok(out)
}
