//! Host profiles: a host's XSAVE layout and what its KVM offers guests, so
//! a migration decision judges what KVM there will take, not only the CPU.
//!
//! `xstate kvm info --json` writes a host's profile ([`HostProfile::to_json`]);
//! every command that names a destination or a pool member (`--to`,
//! `--from`, `--layout`, `pool baseline`) also reads one
//! ([`crate::layout::LayoutSource::load_profile`]). A profile without
//! [`KvmOffer`] (a layout, a dump) describes the CPU only.
//!
//! ```
//! use xstate::profile::{HostProfile, KvmOffer};
//! use xstate::Xfeatures;
//!
//! let spr = xstate::layout::catalog::get("intel-sapphire-rapids").unwrap().clone();
//! // KVM on an AMX host whose guests get no AMX (measured on this
//! // project's Emerald Rapids host).
//! let kvm = KvmOffer::new(Xfeatures::from_bits(0x2e7), 4096, 0xffff);
//! let profile = HostProfile { layout: spr, kvm: Some(kvm) };
//! let back = HostProfile::from_json(&profile.to_json()).unwrap();
//! assert_eq!(back, profile);
//! ```

#[cfg(feature = "std")]
mod json;

use alloc::string::String;

#[cfg(feature = "std")]
pub use json::ProfileError;

use crate::component::{ComponentId, Xfeatures};
use crate::preflight::SetXsaveRules;
use crate::Layout;

/// What `KVM_SET_XSAVE` did to a vCPU's PKRU when XSTATE_BV\[9\] was clear
/// and the area's PKRU bytes held another value (measured, see
/// `KvmBehaviour` in the `kvm` module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkruOnClearBit {
    /// PKRU became 0 (its init value): measured on Linux 6.18.
    Reset,
    /// PKRU kept the value it had before the call.
    Kept,
    /// PKRU took the bytes of the area although its bit was clear.
    Loaded,
    /// Something else: the value read back.
    Other(u32),
}

impl core::fmt::Display for PkruOnClearBit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PkruOnClearBit::Reset => f.write_str("reset to 0"),
            PkruOnClearBit::Kept => f.write_str("left unchanged"),
            PkruOnClearBit::Loaded => f.write_str("loaded from the area's bytes"),
            PkruOnClearBit::Other(v) => write!(f, "set to {v:#x}"),
        }
    }
}

/// How KVM treats PKRU (XSAVE component 9) on one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PkruBehaviour {
    /// What `KVM_SET_XSAVE` with XSTATE_BV\[9\] clear does to PKRU.
    pub on_clear_bit: PkruOnClearBit,
    /// Whether bytes 4..8 of the component (reserved) came back as written;
    /// `false` means KVM keeps only the 32-bit PKRU and returns zeros there.
    pub keeps_reserved_bytes: bool,
}

/// What KVM on one host offers guests, and how it treats their state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmOffer {
    /// The host kernel's release (`uname -r`), empty when unknown.
    pub kernel_release: String,
    /// The XCR0 bits KVM supports for guests (`KVM_GET_SUPPORTED_CPUID`
    /// leaf 0xD sub-leaf 0).
    pub guest_xcr0: Xfeatures,
    /// The IA32_XSS bits KVM supports for guests (sub-leaf 1 EDX:ECX).
    pub guest_xss: Xfeatures,
    /// Whether KVM offers guests XFD (sub-leaf 1 EAX bit 4).
    pub guest_xfd: bool,
    /// `KVM_CAP_XSAVE2`, when the kernel has it.
    pub xsave2_size: Option<usize>,
    /// The size in bytes of `KVM_GET_XSAVE2` / `KVM_SET_XSAVE` buffers.
    pub buffer_size: usize,
    /// The MXCSR bits `KVM_SET_XSAVE` accepts, measured.
    pub mxcsr_mask: u32,
    /// PKRU's treatment, measured; `None` where KVM offers no PKRU or it
    /// was not measured.
    pub pkru: Option<PkruBehaviour>,
}

impl KvmOffer {
    /// An offer with the given guest XCR0, buffer size and MXCSR mask, and
    /// nothing else known.
    pub fn new(guest_xcr0: Xfeatures, buffer_size: usize, mxcsr_mask: u32) -> KvmOffer {
        KvmOffer {
            kernel_release: String::new(),
            guest_xcr0,
            guest_xss: Xfeatures::EMPTY,
            guest_xfd: false,
            xsave2_size: None,
            buffer_size,
            mxcsr_mask,
            pkru: None,
        }
    }

    /// Whether guests get APX (KVM's guest XCR0 has component 19). No
    /// released kernel offers it yet, even on APX hosts.
    pub fn guest_apx(&self) -> bool {
        self.guest_xcr0.contains(ComponentId::APX)
    }

    /// Components a restore for this KVM always sends with their XSTATE_BV
    /// bit set, their init values in the area when the state holds them
    /// init, because a clear bit does not reliably mean "init" there:
    ///
    /// - PKRU (component 9), where offered: with its bit clear,
    ///   `KVM_SET_XSAVE` resets PKRU on Linux 6.18 and leaves it unchanged
    ///   on older kernels (measured, see [`PkruBehaviour`]);
    /// - APX (component 19), where offered: with its bit clear,
    ///   `KVM_SET_XSAVE` leaves r16..r31 unchanged instead of zeroing them
    ///   (the KVM APX series; see [`crate::apx`]), so zeros take effect only
    ///   with the bit set.
    ///
    /// A component KVM does not offer is never pinned: its bit would make
    /// `KVM_SET_XSAVE` fail with EINVAL. An encode for a guest whose CPU
    /// model hides a component intersects this with the XCR0 the model
    /// exposes.
    ///
    /// ```
    /// use xstate::profile::KvmOffer;
    /// use xstate::{ComponentId, Xfeatures};
    ///
    /// let today = KvmOffer::new(Xfeatures::from_bits(0x2e7), 4096, 0xffff);
    /// assert_eq!(today.pinned(), ComponentId::PKRU.bit());
    /// let apx = KvmOffer::new(Xfeatures::from_bits(0xe02e7), 11008, 0xffff);
    /// assert_eq!(apx.pinned(), ComponentId::PKRU.bit() | ComponentId::APX.bit());
    /// ```
    pub fn pinned(&self) -> Xfeatures {
        pinned_by(self.guest_xcr0)
    }

    /// The kernel's major and minor version, from its release string.
    pub fn kernel_version(&self) -> Option<(u32, u32)> {
        let mut parts = self.kernel_release.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    /// The rules `KVM_SET_XSAVE` applies on this host, for a vCPU with
    /// KVM's supported CPUID and no XFD-disabled component.
    pub fn set_xsave_rules(&self) -> SetXsaveRules {
        SetXsaveRules::new(self.guest_xcr0, self.mxcsr_mask, self.buffer_size)
    }

    /// The rules `KVM_SET_XSAVE` applies on this host to a vCPU whose CPUID
    /// enables `cpuid_xcr0` (leaf 0xD sub-leaf 0) and whose IA32_XFD is
    /// `xfd`: on Linux 6.0 to 6.5 XSTATE_BV must stay within the vCPU's
    /// CPUID too (from 6.6 on, KVM checks only what it supports for guests);
    /// XFD-disabled components are dropped.
    pub fn set_xsave_rules_for(&self, cpuid_xcr0: Xfeatures, xfd: Xfeatures) -> SetXsaveRules {
        let checks_cpuid = self
            .kernel_version()
            .is_some_and(|v| ((6, 0)..(6, 6)).contains(&v));
        SetXsaveRules {
            xfd,
            vcpu_cpuid_xcr0: checks_cpuid.then_some(cpuid_xcr0),
            ..self.set_xsave_rules()
        }
    }
}

/// [`KvmOffer::pinned`] for a KVM whose supported guest XCR0 is `guest_xcr0`.
pub(crate) fn pinned_by(guest_xcr0: Xfeatures) -> Xfeatures {
    guest_xcr0 & (ComponentId::PKRU.bit() | ComponentId::APX.bit())
}

/// A host for migration decisions: its XSAVE layout (leaf 0xD) and, when
/// known, what its KVM offers guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostProfile {
    /// The host CPU's layout: where KVM's buffers keep each component.
    pub layout: Layout,
    /// What KVM there offers guests; `None` when only the CPU is known.
    pub kvm: Option<KvmOffer>,
}

impl From<Layout> for HostProfile {
    /// The profile of a host known only by its CPU.
    fn from(layout: Layout) -> HostProfile {
        HostProfile { layout, kvm: None }
    }
}
