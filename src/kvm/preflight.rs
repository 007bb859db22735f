//! A pre-flight check that predicts `KVM_SET_XSAVE`'s verdict.
//!
//! The kernel rejects a buffer with EINVAL when: XCOMP_BV is not zero; any
//! of the 48 reserved header bytes is not zero; XSTATE_BV has a bit KVM does
//! not support for guests; or MXCSR has a bit outside the MXCSR mask while
//! XSTATE_BV has x87, SSE or AVX. It ignores the software bytes (464..512),
//! the reserved legacy bytes (416..464) and the MXCSR_MASK field. This check
//! applies exactly those rules, neither stricter nor looser, plus the
//! buffer's size, and names the field at fault.

use thiserror::Error;

use crate::area::{HEADER_OFFSET, HEADER_RESERVED};

/// The rules `KVM_SET_XSAVE` applies on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetXsaveRules {
    /// XCR0 bits KVM supports for guests.
    pub guest_xcr0: u64,
    /// The host's MXCSR mask.
    pub mxcsr_mask: u32,
    /// The buffer size KVM copies (4096, or the `KVM_CAP_XSAVE2` size).
    pub size: usize,
}

/// Why `KVM_SET_XSAVE` would reject a buffer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreflightError {
    /// The buffer is not the size KVM copies on this host.
    #[error("buffer is {len} bytes, KVM on this host takes {expected}")]
    Size {
        /// Its length.
        len: usize,
        /// The size KVM uses.
        expected: usize,
    },
    /// XSTATE_BV names components KVM does not support for guests.
    #[error("XSTATE_BV {xstate_bv:#x} has bits {unsupported:#x} KVM does not support for guests (supported {supported:#x})")]
    XstateBv {
        /// XSTATE_BV.
        xstate_bv: u64,
        /// The offending bits.
        unsupported: u64,
        /// KVM's guest XCR0.
        supported: u64,
    },
    /// XCOMP_BV is not zero: KVM takes only the standard format.
    #[error("XCOMP_BV is {0:#x}: KVM takes only the standard format (XCOMP_BV 0)")]
    XcompBv(u64),
    /// A reserved header byte is not zero.
    #[error("reserved XSAVE header byte at offset {offset} is {value:#04x}")]
    Reserved {
        /// Its offset in the buffer.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// MXCSR has bits outside the host's mask while x87, SSE or AVX is live.
    #[error("MXCSR {mxcsr:#x} has bits {bad:#x} outside the MXCSR mask {mask:#x}")]
    Mxcsr {
        /// MXCSR.
        mxcsr: u32,
        /// The bits outside the mask.
        bad: u32,
        /// The mask.
        mask: u32,
    },
}

/// Predicts `KVM_SET_XSAVE`'s verdict on `buf` without any ioctl.
///
/// ```
/// use xstate::kvm::{preflight, PreflightError, SetXsaveRules};
///
/// let rules = SetXsaveRules { guest_xcr0: 0xe7, mxcsr_mask: 0xffff, size: 4096 };
/// let mut buf = vec![0u8; 4096];
/// assert_eq!(preflight(&buf, &rules), Ok(()));
/// buf[512] = 0x3; // XSTATE_BV: x87 and SSE
/// buf[24..28].copy_from_slice(&0x2_0000u32.to_le_bytes()); // MXCSR bit 17
/// assert!(matches!(preflight(&buf, &rules), Err(PreflightError::Mxcsr { bad: 0x2_0000, .. })));
/// ```
pub fn preflight(buf: &[u8], rules: &SetXsaveRules) -> Result<(), PreflightError> {
    if buf.len() != rules.size {
        return Err(PreflightError::Size {
            len: buf.len(),
            expected: rules.size,
        });
    }
    let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
    let xstate_bv = u64_at(HEADER_OFFSET);
    let xcomp_bv = u64_at(HEADER_OFFSET + 8);
    let unsupported = xstate_bv & !rules.guest_xcr0;
    if unsupported != 0 {
        return Err(PreflightError::XstateBv {
            xstate_bv,
            unsupported,
            supported: rules.guest_xcr0,
        });
    }
    if xcomp_bv != 0 {
        return Err(PreflightError::XcompBv(xcomp_bv));
    }
    if let Some(i) = buf[HEADER_RESERVED].iter().position(|&b| b != 0) {
        return Err(PreflightError::Reserved {
            offset: HEADER_RESERVED.start + i,
            value: buf[HEADER_RESERVED.start + i],
        });
    }
    if xstate_bv & 0b111 != 0 {
        let mxcsr = u32::from_le_bytes(buf[24..28].try_into().expect("4 bytes"));
        let bad = mxcsr & !rules.mxcsr_mask;
        if bad != 0 {
            return Err(PreflightError::Mxcsr {
                mxcsr,
                bad,
                mask: rules.mxcsr_mask,
            });
        }
    }
    Ok(())
}
