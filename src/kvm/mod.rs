//! KVM integration: vCPU XSAVE state in and out of KVM, zero-copy views
//! over its buffers, what KVM on this host offers and does (probed), and
//! the pre-flight check that predicts `KVM_SET_XSAVE`'s verdict.
//! [`VcpuXstate`] moves a vCPU's whole extended state (the area with XCR0,
//! IA32_XSS, IA32_XFD and IA32_XFD_ERR) in the order the kernel needs.
//!
//! KVM always uses the standard (non-compacted) format, at the host's
//! CPUID offsets; its buffers are `struct kvm_xsave` (4096 bytes) or, with
//! `KVM_CAP_XSAVE2`, a larger FAM struct whose size the capability gives
//! (11008 bytes with AMX offered to guests). The views open directly over
//! either, no copy.
//!
//! ```no_run
//! use kvm_ioctls::Kvm;
//! use xstate::kvm::{KvmCaps, XstateBuffer};
//! use xstate::prelude::*;
//!
//! let kvm = Kvm::new()?;
//! let caps = KvmCaps::probe(&kvm)?;
//! let vm = kvm.create_vm()?;
//! let vcpu = vm.create_vcpu(0)?;
//! let mut state = XstateBuffer::new(&caps)?;
//! state.save(&vcpu)?;                            // KVM_GET_XSAVE2
//! let mut view = state.view_mut(caps.layout())?; // zero-copy typed access
//! view.set_xmm(0, 0x1234)?;
//! state.restore(&vcpu, &caps)?;                  // pre-flight, then KVM_SET_XSAVE
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod apx;
mod buffer;
mod caps;
mod gpr;
#[cfg(feature = "testing")]
pub mod guest;
mod probe;
mod snapshot;
mod state;
mod vcpu;

pub use buffer::{
    kvm_xsave_bytes, kvm_xsave_bytes_mut, new_xsave2, xsave2_bytes, xsave2_bytes_mut,
};
pub use caps::{
    guest_permitted_xfeatures, request_amx_permission, AmxPermission, AmxStatus, KvmCaps,
};
pub use gpr::{GprError, Gprs, GPR_NAMES};
pub use probe::KvmBehaviour;
pub use snapshot::{KvmCpuidError, SavedXsave, SnapshotError};

pub use crate::profile::{PkruBehaviour, PkruOnClearBit};
pub use state::{get_registers, VcpuXstate, XstateMsrs};
pub use vcpu::{get_xcr0, set_xcr0, XstateBuffer};

pub use crate::preflight::{preflight, PreflightError, SetXsaveRules};

/// Errors of the KVM helpers.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvmError {
    /// An ioctl failed.
    #[error("{op}: {source}")]
    Ioctl {
        /// The operation.
        op: &'static str,
        /// The errno.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The buffer would be rejected by `KVM_SET_XSAVE`: no ioctl was issued.
    #[error("KVM_SET_XSAVE would reject the buffer: {0}")]
    Preflight(#[from] PreflightError),
    /// A register or component could not be read or written.
    #[error(transparent)]
    Access(#[from] crate::AccessError),
    /// The host layout could not be read.
    #[error("host layout: {0}")]
    Layout(#[from] crate::LayoutError),
    /// A buffer of `size` bytes could not be allocated.
    #[error("cannot allocate a {size}-byte XSAVE buffer")]
    Alloc {
        /// The size asked for, in bytes.
        size: usize,
    },
    /// The vCPU has no CPUID yet, which KVM judges XCR0 and the MSRs by.
    #[error("the vCPU has no CPUID: KVM_SET_CPUID2 comes first, KVM judges XCR0 and the extended-state MSRs against it")]
    NoCpuid,
    /// Register values no CPU holds, or live state IA32_XFD disables.
    #[error("the vCPU's registers: {0}")]
    Registers(#[from] crate::xregs::XregsError),
    /// A register with bits the vCPU's CPUID or this KVM does not allow.
    #[error("{register} {value} has bits this vCPU may not enable: with its CPUID and this KVM it allows {allowed}")]
    NotOffered {
        /// The register.
        register: crate::xregs::Xreg,
        /// Its value.
        value: crate::Xfeatures,
        /// What it may hold.
        allowed: crate::Xfeatures,
    },
    /// A non-zero MSR that KVM on this host does not save or restore.
    #[error("{register} is {value}, but KVM on this host does not save or restore it (it is not in KVM_GET_MSR_INDEX_LIST)")]
    MsrAbsent {
        /// The MSR.
        register: crate::xregs::Xreg,
        /// Its value.
        value: crate::Xfeatures,
    },
    /// KVM processed fewer MSRs than asked: it refused this one.
    #[error("{op} refused {register} ({value})")]
    MsrRefused {
        /// `KVM_GET_MSRS` or `KVM_SET_MSRS`.
        op: &'static str,
        /// The first MSR not processed.
        register: crate::xregs::Xreg,
        /// The value written (0 for a read).
        value: crate::Xfeatures,
    },
    /// A stream vCPU without registers (from a version 1 stream).
    #[error("the vCPU has no XCR0, IA32_XSS, IA32_XFD and IA32_XFD_ERR (it came from a version 1 stream): restore its area alone with XstateBuffer")]
    NoRegisters,
    /// A restore failed part way, and putting the vCPU back as it was
    /// failed too.
    #[error("{error}; putting the vCPU back as it was failed too: {rollback}")]
    Rollback {
        /// Why the restore failed.
        #[source]
        error: std::boxed::Box<KvmError>,
        /// Why the rollback failed.
        rollback: std::boxed::Box<KvmError>,
    },
}

impl From<crate::HeaderError> for KvmError {
    fn from(e: crate::HeaderError) -> KvmError {
        KvmError::Access(e.into())
    }
}

impl<B> From<crate::OpenError<B>> for KvmError {
    fn from(e: crate::OpenError<B>) -> KvmError {
        KvmError::Access(e.into())
    }
}

/// Leaf 0xD sub-leaf `index` of a KVM CPUID (supported, or a vCPU's).
pub(crate) fn leaf_0xd(
    cpuid: &kvm_bindings::CpuId,
    index: u32,
) -> Option<kvm_bindings::kvm_cpuid_entry2> {
    cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0xD && e.index == index)
        .copied()
}

pub(crate) fn ioctl(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Ioctl { op, source }
}
