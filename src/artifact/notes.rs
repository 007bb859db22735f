//! Core-file note descriptors out: `NT_X86_XSTATE` and
//! `NT_X86_XSAVE_LAYOUT`, from any area (compacted ones included).
//!
//! Consumers take the standard format only: gdb reads `NT_X86_XSTATE` at
//! standard offsets (from `NT_X86_XSAVE_LAYOUT` when present, else from
//! the XCR0 at 464 and the note's size, guessing the CPU), as the kernel
//! writes it. A compacted buffer (XSAVEC/XSAVES output, an MSHV or WHP
//! vCPU's) put into `NT_X86_XSTATE` is misread. The layout note lists
//! every extended user component of the XCR0 with its size and standard
//! offset, flags 0 (`struct x86_xfeat_component`,
//! `arch/x86/include/uapi/asm/elf.h`, Linux 6.12).

use crate::component::Xfeatures;
use crate::layout::Layout;
use alloc::vec::Vec;

pub use super::user::UserAreaError;

/// The `NT_X86_XSTATE` descriptor for the state of `area` (either format,
/// in layout `from`) in layout `to` with user XCR0 `xcr0`: standard
/// format, `to.standard_size_for(xcr0)` bytes, XCR0 at 464, as a Linux
/// core of a CPU of layout `to` holds it.
///
/// # Errors
///
/// As [`super::ptrace::setregset_buffer`].
pub fn xstate_descriptor(
    area: &[u8],
    from: &Layout,
    to: &Layout,
    xcr0: Xfeatures,
) -> Result<Vec<u8>, UserAreaError> {
    super::ptrace::setregset_buffer(area, from, to, xcr0)
}

/// The `NT_X86_XSAVE_LAYOUT` descriptor of layout `to` for user XCR0
/// `xcr0`: one 16-byte record `{u32 type, u32 size, u32 offset, u32
/// flags}` (little-endian) per extended user component of `xcr0` that `to`
/// has, in component order, flags 0.
///
/// ```
/// use xstate::artifact::notes::layout_descriptor;
/// use xstate::{layout::catalog, Xfeatures};
///
/// let zen4 = catalog::get("amd-zen4").unwrap();
/// let d = layout_descriptor(zen4, Xfeatures::from_bits(0x2e7));
/// assert_eq!(d.len(), 5 * 16); // AVX, opmask, ZMM_Hi256, Hi16_ZMM, PKRU
/// assert_eq!(&d[16..28], &[5, 0, 0, 0, 64, 0, 0, 0, 0x40, 3, 0, 0]); // opmask at 832
/// ```
pub fn layout_descriptor(to: &Layout, xcr0: Xfeatures) -> Vec<u8> {
    let mut out = Vec::new();
    for id in (xcr0 & to.xcr0_supported()).extended() {
        if let Some(g) = to.geometry(id) {
            for word in [u32::from(id.index()), g.size, g.offset, 0] {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
    }
    out
}
