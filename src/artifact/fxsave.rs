//! A 512-byte FXSAVE image (`NT_PRFPREG`, `PTRACE_GETFPREGS`,
//! `KVM_GET_FPU`'s region as FXSAVE lays it out) as an XSAVE area.
//!
//! FXSAVE writes x87 and SSE whole, so the image is the legacy region of a
//! standard-format area whose XSTATE_BV is x87|SSE (Intel SDM vol. 1,
//! 10.5.1 and 13.4.1). Its software bytes (464..512) are cleared: any a
//! kernel wrote there describe the XSAVE area the image was cut from, not
//! this one.
//!
//! ```
//! use xstate::artifact::fxsave;
//! use xstate::prelude::*;
//! use xstate::{layout::catalog, XsaveView};
//!
//! let mut image = [0u8; 512];
//! image[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // FCW
//! image[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR
//! image[160 + 16] = 0x42; // XMM1's low byte
//! let area = fxsave::to_area(&image);
//! let layout = catalog::get("amd-zen4").unwrap();
//! let view = XsaveView::new(&area[..], layout).unwrap();
//! assert_eq!(view.xmm(1).unwrap(), 0x42);
//! ```

use crate::area::{XsaveHeader, EXTENDED_START, LEGACY_SIZE};
use crate::component::Xfeatures;

/// The size in bytes of an FXSAVE image.
pub const FXSAVE_SIZE: usize = LEGACY_SIZE;

/// The 576-byte standard-format area holding `image`'s x87 and SSE state:
/// the image, its software bytes cleared, then an XSAVE header with
/// XSTATE_BV x87|SSE and XCOMP_BV 0. It opens with any layout (every layout
/// has x87 and SSE, and 576 bytes hold them).
pub fn to_area(image: &[u8; FXSAVE_SIZE]) -> [u8; EXTENDED_START] {
    let mut area = [0u8; EXTENDED_START];
    area[..FXSAVE_SIZE].copy_from_slice(image);
    super::swbytes::clear(&mut area);
    XsaveHeader::of_mut(&mut area)
        .xstate_bv
        .set(Xfeatures::LEGACY.bits());
    area
}
