//! A pre-flight check that predicts `KVM_SET_XSAVE`'s verdict, without any
//! ioctl: pure byte logic, the same on every target ([`crate::kvm`]
//! re-exports it beside the ioctls).
//!
//! The kernel rejects a buffer with EINVAL when: XCOMP_BV is not zero; any
//! of the 48 reserved header bytes is not zero; XSTATE_BV has a bit KVM does
//! not support for guests; or MXCSR has a bit outside the MXCSR mask while
//! XSTATE_BV has x87, SSE or AVX. It ignores the software bytes (464..512),
//! the reserved legacy bytes (416..464) and the MXCSR_MASK field (Linux
//! `arch/x86/kernel/fpu/xstate.c`, `copy_uabi_to_xstate`; checked here
//! against the real ioctl on 12,000 buffers). This check applies exactly
//! those rules, neither stricter nor looser, plus the buffer's size, and
//! names the field at fault.
//!
//! Two rules depend on the vCPU and the kernel:
//! - since early 2026 (stable kernels too), KVM clears the XSTATE_BV bits of
//!   components the guest disabled in IA32_XFD instead of loading them (AMX
//!   tile data): [`preflight`] reports them in [`Preflight::dropped`], it
//!   does not reject them;
//! - Linux 6.0 to 6.5 checked XSTATE_BV against the components the vCPU's
//!   CPUID enables rather than against what KVM supports for guests (a
//!   state with a host's PKRU leaked into a guest whose CPU model has no PKU
//!   then failed with EINVAL): [`SetXsaveRules::vcpu_cpuid_xcr0`] applies
//!   that rule, chosen from the kernel release by
//!   [`KvmOffer::set_xsave_rules_for`](crate::profile::KvmOffer::set_xsave_rules_for).

use crate::area::{LegacyRegion, XsaveHeader, EXTENDED_START};
use crate::component::{ComponentId, XcompBv, Xfeatures};

/// The rules `KVM_SET_XSAVE` applies on one host, for one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetXsaveRules {
    /// XCR0 bits KVM supports for guests.
    pub guest_xcr0: Xfeatures,
    /// The MXCSR bits KVM accepts (the host's MXCSR mask).
    pub mxcsr_mask: u32,
    /// The buffer size in bytes KVM copies (4096, or the `KVM_CAP_XSAVE2` size).
    pub size: usize,
    /// The vCPU's IA32_XFD: components whose XSTATE_BV bits KVM clears.
    pub xfd: Xfeatures,
    /// On Linux 6.0-6.5 only: the components the vCPU's CPUID enables
    /// (leaf 0xD sub-leaf 0), which XSTATE_BV must stay within; `None` on
    /// other kernels.
    pub vcpu_cpuid_xcr0: Option<Xfeatures>,
}

impl SetXsaveRules {
    /// The rules of a KVM that supports `guest_xcr0` for guests, accepts
    /// the MXCSR bits `mxcsr_mask` and copies `size` bytes, for a vCPU with
    /// no XFD-disabled component, on a kernel from 6.6 on.
    pub fn new(guest_xcr0: Xfeatures, mxcsr_mask: u32, size: usize) -> SetXsaveRules {
        SetXsaveRules {
            guest_xcr0,
            mxcsr_mask,
            size,
            xfd: Xfeatures::EMPTY,
            vcpu_cpuid_xcr0: None,
        }
    }
}

/// What `KVM_SET_XSAVE` will do with a buffer it takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preflight {
    /// Live components (XSTATE_BV) KVM drops because the vCPU disabled them
    /// in IA32_XFD: they arrive in their init state.
    pub dropped: Xfeatures,
}

/// Why `KVM_SET_XSAVE` would reject a buffer.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreflightError {
    /// The buffer is not the size KVM copies on this host.
    #[error("buffer is {len} bytes, KVM takes {expected}")]
    Size {
        /// Its length in bytes.
        len: usize,
        /// The size in bytes KVM uses.
        expected: usize,
    },
    /// XSTATE_BV names components the vCPU's CPUID does not enable, on a
    /// kernel (6.0-6.5) that checks them.
    #[error("XSTATE_BV {xstate_bv} has components {unsupported} the vCPU's CPUID does not enable ({enabled}); Linux 6.0-6.5 reject them")]
    NotInVcpuCpuid {
        /// XSTATE_BV.
        xstate_bv: Xfeatures,
        /// The offending components.
        unsupported: Xfeatures,
        /// The components the vCPU's CPUID enables.
        enabled: Xfeatures,
    },
    /// XSTATE_BV names components KVM does not support for guests.
    #[error("XSTATE_BV {xstate_bv} has components {unsupported} KVM does not support for guests (guest XCR0 {supported})")]
    XstateBv {
        /// XSTATE_BV.
        xstate_bv: Xfeatures,
        /// The offending components.
        unsupported: Xfeatures,
        /// KVM's guest XCR0.
        supported: Xfeatures,
    },
    /// XCOMP_BV is not zero: KVM takes only the standard format.
    #[error("XCOMP_BV is {0}: KVM takes only the standard format (XCOMP_BV 0)")]
    XcompBv(XcompBv),
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

/// The components whose liveness makes KVM check MXCSR.
const MXCSR_CHECKED: Xfeatures = ComponentId::X87
    .bit()
    .union(ComponentId::SSE.bit())
    .union(ComponentId::AVX.bit());

/// Predicts `KVM_SET_XSAVE`'s verdict on `buf` without any ioctl, and what
/// it will drop.
///
/// ```
/// use xstate::preflight::{preflight, PreflightError, SetXsaveRules};
/// use xstate::Xfeatures;
///
/// let rules = SetXsaveRules::new(Xfeatures::from_bits(0xe7), 0xffff, 4096);
/// let mut buf = vec![0u8; 4096];
/// assert!(preflight(&buf, &rules).is_ok());
/// buf[512] = 0x3; // XSTATE_BV: x87 and SSE
/// buf[24..28].copy_from_slice(&0x2_0000u32.to_le_bytes()); // MXCSR bit 17
/// assert!(matches!(preflight(&buf, &rules), Err(PreflightError::Mxcsr { bad: 0x2_0000, .. })));
/// ```
///
/// # Errors
///
/// The first [`PreflightError`] found, in the order the kernel checks.
pub fn preflight(buf: &[u8], rules: &SetXsaveRules) -> Result<Preflight, PreflightError> {
    if buf.len() != rules.size || buf.len() < EXTENDED_START {
        return Err(PreflightError::Size {
            len: buf.len(),
            expected: rules.size,
        });
    }
    let header = XsaveHeader::of(buf);
    let xstate_bv = Xfeatures::from_bits(header.xstate_bv.get());
    let xcomp_bv = XcompBv::from_bits(header.xcomp_bv.get());
    let unsupported = xstate_bv - rules.guest_xcr0;
    if !unsupported.is_empty() {
        return Err(PreflightError::XstateBv {
            xstate_bv,
            unsupported,
            supported: rules.guest_xcr0,
        });
    }
    if let Some(enabled) = rules.vcpu_cpuid_xcr0 {
        let unsupported = xstate_bv - enabled;
        if !unsupported.is_empty() {
            return Err(PreflightError::NotInVcpuCpuid {
                xstate_bv,
                unsupported,
                enabled,
            });
        }
    }
    if xcomp_bv != XcompBv::STANDARD {
        return Err(PreflightError::XcompBv(xcomp_bv));
    }
    if !header.reserved_is_zero() {
        let (offset, value) = header.first_reserved_byte();
        return Err(PreflightError::Reserved { offset, value });
    }
    if xstate_bv.intersects(MXCSR_CHECKED) {
        let mxcsr = LegacyRegion::of(buf).mxcsr.get();
        let bad = mxcsr & !rules.mxcsr_mask;
        if bad != 0 {
            return Err(PreflightError::Mxcsr {
                mxcsr,
                bad,
                mask: rules.mxcsr_mask,
            });
        }
    }
    Ok(Preflight {
        dropped: xstate_bv & rules.xfd,
    })
}
