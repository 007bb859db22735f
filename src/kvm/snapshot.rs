//! Restoring what a VMM saved: a vCPU's XSAVE bytes from a snapshot taken on
//! another host, or another kernel, into a buffer this host's KVM takes.
//!
//! VMMs save the `kvm_xsave` region as they got it: Firecracker a
//! kvm-bindings `Xsave` (the `KVM_CAP_XSAVE2` size of the source host),
//! Cloud Hypervisor `region: [u32; 1024]` plus `extra: Vec<u32>` past 4096
//! bytes, crosvm a `Vec<u32>`. Handing such bytes to `KVM_SET_XSAVE` on a
//! host whose `KVM_CAP_XSAVE2` is larger lets the kernel read past them;
//! one with other offsets (AMD's PKRU at 2432, Intel's at 2688) loads
//! garbage. [`XstateBuffer::from_snapshot`] decodes the bytes in the
//! source's layout (from the snapshot's own saved CPUID:
//! [`Layout::from_kvm_cpuid`]) and writes them at this host's offsets, in a
//! buffer of this host's size, checked as `KVM_SET_XSAVE` would check it.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use kvm_bindings::{kvm_cpuid_entry2, Xsave};
use zerocopy::IntoBytes;

use super::{preflight, xsave2_bytes, KvmCaps, KvmError, PreflightError, XstateBuffer};
use crate::access::{AccessError, XstateRead};
use crate::cpuid::{CpuidSet, CpuidSetError};
use crate::layout::CpuidRegs;
use crate::migrate::Incompatibility;
use crate::{HeaderError, Layout, LayoutError, RegisterFile, XsaveView};

/// The XSAVE bytes a VMM saved, in the shape it saved them.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum SavedXsave<'a> {
    /// The bytes themselves (a `kvm_xsave` region of any length).
    Bytes(&'a [u8]),
    /// 32-bit words, little-endian: crosvm's `Xsave::data`.
    Words(&'a [u32]),
    /// Cloud Hypervisor's `XsaveState`: the 4096-byte `region`, then
    /// `extra` (empty, and omitted from its JSON, for 4096-byte buffers).
    Split {
        /// The first 4096 bytes.
        region: &'a [u32; 1024],
        /// The rest.
        extra: &'a [u32],
    },
}

impl<'a> From<&'a Xsave> for SavedXsave<'a> {
    /// Firecracker's `VcpuState::xsave`.
    fn from(xsave: &'a Xsave) -> SavedXsave<'a> {
        SavedXsave::Bytes(xsave2_bytes(xsave))
    }
}

impl<'a> SavedXsave<'a> {
    /// The bytes, in order (copied only for the split form).
    pub fn bytes(&self) -> Cow<'a, [u8]> {
        match *self {
            SavedXsave::Bytes(b) => Cow::Borrowed(b),
            SavedXsave::Words(w) => Cow::Borrowed(w.as_bytes()),
            SavedXsave::Split { region, extra } => {
                let mut v = Vec::with_capacity(4096 + 4 * extra.len());
                v.extend_from_slice(region.as_bytes());
                v.extend_from_slice(extra.as_bytes());
                Cow::Owned(v)
            }
        }
    }
}

/// Why a snapshot's XSAVE state cannot be restored on this host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The saved bytes do not open under the source layout (a header the
    /// source could not have written).
    #[error("the saved XSAVE bytes in the source layout {layout}: {source}")]
    Header {
        /// The source layout's name.
        layout: crate::layout::Text<64>,
        /// Why.
        #[source]
        source: HeaderError,
    },
    /// A live component past the end of the saved bytes.
    #[error("the saved XSAVE bytes ({len}) are cut short: {source}")]
    Truncated {
        /// Their length, in bytes.
        len: usize,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// Live state this host cannot take: a component its layout lacks, or
    /// a value its XRSTOR faults on (an MXCSR bit outside its mask).
    #[error("this host cannot take the state: {0}")]
    Incompatible(Incompatibility),
    /// Live state this host's KVM does not offer guests, or a buffer
    /// `KVM_SET_XSAVE` would refuse.
    #[error("KVM_SET_XSAVE on this host would refuse the state: {0}")]
    Kvm(#[from] PreflightError),
    /// A KVM error (allocating the buffer).
    #[error(transparent)]
    Buffer(#[from] KvmError),
}

/// Why a saved CPUID gave no layout.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvmCpuidError {
    /// The entries themselves (two for one leaf and sub-leaf, too many).
    #[error("the saved CPUID: {0}")]
    Cpuid(#[from] CpuidSetError),
    /// Its leaf 0xD.
    #[error("the saved CPUID's leaf 0xD: {0}")]
    Layout(#[from] LayoutError),
}

impl Layout {
    /// The layout a vCPU's saved CPUID describes (`KVM_GET_CPUID2`'s
    /// entries, or a `kvm_bindings::CpuId`'s `as_slice()`): what a snapshot
    /// taken on another host was written in.
    ///
    /// # Errors
    ///
    /// [`KvmCpuidError`] when the entries repeat a sub-leaf or leaf 0xD
    /// describes no valid layout.
    pub fn from_kvm_cpuid(entries: &[kvm_cpuid_entry2]) -> Result<Layout, KvmCpuidError> {
        let set = CpuidSet::from_entries(entries.iter().map(|e| {
            let regs = CpuidRegs {
                eax: e.eax,
                ebx: e.ebx,
                ecx: e.ecx,
                edx: e.edx,
            };
            (e.function, e.index, e.flags, regs)
        }))?;
        Ok(set.to_layout("saved-cpuid", "a vCPU's saved CPUID (kvm_cpuid_entry2)")?)
    }
}

impl XstateBuffer {
    /// The state a VMM saved in `source`'s layout, as a buffer this host's
    /// KVM takes: exactly `KVM_CAP_XSAVE2` bytes (4096 without it), the
    /// components at this host's offsets (relaid out where `source`'s
    /// differ; bytes past the saved ones zero-extended, components this
    /// host lacks dropped when init), and checked with this kernel's
    /// `KVM_SET_XSAVE` rules, so [`restore`](Self::restore) can neither
    /// read past the buffer nor get EINVAL. PKRU, and APX where KVM offers
    /// it, are sent with their bits set ([`load`](Self::load)).
    ///
    /// # Errors
    ///
    /// [`SnapshotError::Header`] for bytes `source` could not have written,
    /// [`SnapshotError::Truncated`] for a live component past their end,
    /// [`SnapshotError::Incompatible`] for live state this host's CPU
    /// cannot take, [`SnapshotError::Kvm`] for state its KVM refuses.
    pub fn from_snapshot(
        saved: SavedXsave<'_>,
        source: &Layout,
        caps: &KvmCaps,
    ) -> Result<XstateBuffer, SnapshotError> {
        let bytes = saved.bytes();
        let state = decode(&bytes, source)?;
        let host = caps.layout();
        if let Some(c) = (state.xstate_bv() - host.supported()).first() {
            return Err(SnapshotError::Incompatible(
                Incompatibility::MissingComponent(c),
            ));
        }
        if let Some(fault) = crate::migrate::check::faults(&state, caps.mxcsr_mask())
            .into_iter()
            .next()
        {
            return Err(SnapshotError::Incompatible(fault));
        }
        let mut buffer = XstateBuffer::new(caps)?;
        buffer.load(&state, caps)?;
        preflight(buffer.as_bytes(), &caps.set_xsave_rules())?;
        Ok(buffer)
    }
}

/// Decodes saved bytes in `source`'s layout: only the live components
/// must lie within them (a buffer shorter than the source's standard size
/// stands for init components past its end).
fn decode(bytes: &[u8], source: &Layout) -> Result<RegisterFile, SnapshotError> {
    let header = |source_err| SnapshotError::Header {
        layout: crate::layout::text(source.name()),
        source: source_err,
    };
    let view = XsaveView::new(bytes, source).map_err(header)?;
    let state = RegisterFile::from_view(&view).map_err(|e| SnapshotError::Truncated {
        len: bytes.len(),
        source: e,
    })?;
    Ok(state)
}
