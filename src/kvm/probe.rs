//! What this kernel's KVM really does with XSAVE state, measured once per
//! process on a scratch VM and vCPU rather than assumed.
//!
//! Kernels differ (see `../shared/reference/xsave-facts.md` and the README):
//! on Linux 6.18, `KVM_SET_XSAVE` with the PKRU bit of XSTATE_BV clear
//! resets the vCPU's PKRU to 0, while older kernels leave it untouched; KVM
//! keeps only the 32 architectural bits of PKRU. The MXCSR mask KVM
//! enforces is measured the same way, bit by bit.

use std::sync::OnceLock;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuFd};

use std::vec::Vec;

use super::{ioctl, new_xsave2, KvmError, XstateBuffer};
use crate::area::{LegacyRegion, XsaveHeader, MXCSR_INIT};
use crate::component::{ComponentId, Xfeatures};
use crate::profile::{PkruBehaviour, PkruOnClearBit};
use crate::Layout;

/// Kernel behaviour measured with real `KVM_SET_XSAVE` / `KVM_GET_XSAVE2`
/// calls on a scratch vCPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmBehaviour {
    /// The MXCSR bits `KVM_SET_XSAVE` accepts while SSE is live: each of
    /// the 32 bits tried on its own (0x2FFFF on AMD Zen 3, 0xFFFF on Intel).
    pub mxcsr_mask: u32,
    /// PKRU's treatment, or `None` where KVM offers guests no PKRU.
    pub pkru: Option<PkruBehaviour>,
}

/// The PKRU values the probe writes: distinct, with key 0 left accessible.
const PKRU_FIRST: u32 = 0x5555_5554;
const PKRU_SECOND: u32 = 0x1234_5670;
const PKRU_RESERVED: [u8; 4] = [0xA5, 0x5A, 0xC3, 0x3C];

impl KvmBehaviour {
    /// Measures the behaviour, once per process: later calls return the
    /// first result. Creates a VM and a vCPU (so, in the kernel's rules,
    /// the process's guest XSAVE permissions are settled from then on:
    /// call [`request_amx_permission`](super::request_amx_permission)
    /// first where AMX is wanted).
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when the scratch VM cannot be built or a call
    /// that must succeed fails.
    pub fn measure(
        kvm: &Kvm,
        host: &Layout,
        guest_xcr0: Xfeatures,
        size: usize,
    ) -> Result<Self, KvmError> {
        static MEASURED: OnceLock<Result<KvmBehaviour, KvmError>> = OnceLock::new();
        MEASURED
            .get_or_init(|| measure_now(kvm, host, guest_xcr0, size))
            .clone()
    }
}

fn measure_now(
    kvm: &Kvm,
    host: &Layout,
    guest_xcr0: Xfeatures,
    size: usize,
) -> Result<KvmBehaviour, KvmError> {
    let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
    let vcpu = vm.create_vcpu(0).map_err(ioctl("KVM_CREATE_VCPU"))?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
    vcpu.set_cpuid2(&cpuid).map_err(ioctl("KVM_SET_CPUID2"))?;
    let mut scratch = Scratch::new(&vcpu, size)?;
    let mxcsr_mask = scratch.mxcsr_mask()?;
    let pkru = match host.offset(ComponentId::PKRU) {
        Some(offset) if guest_xcr0.contains(ComponentId::PKRU) => {
            Some(scratch.pkru(offset as usize)?)
        }
        _ => None,
    };
    Ok(KvmBehaviour { mxcsr_mask, pkru })
}

/// A scratch vCPU and its state as KVM first gave it.
struct Scratch<'v> {
    vcpu: &'v VcpuFd,
    base: Vec<u8>,
    buf: XstateBuffer,
}

impl<'v> Scratch<'v> {
    fn new(vcpu: &'v VcpuFd, size: usize) -> Result<Self, KvmError> {
        let mut buf = XstateBuffer::from(new_xsave2(size)?);
        buf.save(vcpu)?;
        Ok(Scratch {
            vcpu,
            base: buf.as_bytes().to_vec(),
            buf,
        })
    }

    /// `KVM_SET_XSAVE` of the base state changed by `edit`.
    fn set(&mut self, edit: impl FnOnce(&mut [u8])) -> Result<(), KvmError> {
        let bytes = self.buf.as_bytes_mut();
        bytes.copy_from_slice(&self.base);
        edit(bytes);
        self.buf.restore_unchecked(self.vcpu)
    }

    fn get(&mut self) -> Result<&[u8], KvmError> {
        self.buf.save(self.vcpu)?;
        Ok(self.buf.as_bytes())
    }

    fn mxcsr_mask(&mut self) -> Result<u32, KvmError> {
        let mut mask = 0u32;
        for bit in 0..32 {
            let mxcsr = MXCSR_INIT | 1 << bit;
            let accepted = self
                .set(|b| {
                    let header = XsaveHeader::of_mut(b);
                    header
                        .xstate_bv
                        .set(header.xstate_bv.get() | ComponentId::SSE.bit().bits());
                    LegacyRegion::of_mut(b).mxcsr.set(mxcsr);
                })
                .is_ok();
            if accepted {
                mask |= 1 << bit;
            }
        }
        Ok(mask)
    }

    fn pkru(&mut self, at: usize) -> Result<PkruBehaviour, KvmError> {
        let write = |value: u32, live: bool| {
            move |b: &mut [u8]| {
                let header = XsaveHeader::of_mut(b);
                let bv = Xfeatures::from_bits(header.xstate_bv.get());
                let bv = if live {
                    bv.with(ComponentId::PKRU)
                } else {
                    bv.without(ComponentId::PKRU)
                };
                header.xstate_bv.set(bv.bits());
                b[at..at + 4].copy_from_slice(&value.to_le_bytes());
                b[at + 4..at + 8].copy_from_slice(&PKRU_RESERVED);
            }
        };
        self.set(write(PKRU_FIRST, true))?;
        let back = self.get()?;
        let keeps_reserved_bytes = back[at + 4..at + 8] == PKRU_RESERVED;
        self.set(write(PKRU_SECOND, false))?;
        let back = self.get()?;
        let live =
            Xfeatures::from_bits(XsaveHeader::of(back).xstate_bv.get()).contains(ComponentId::PKRU);
        let value = if live {
            u32::from_le_bytes(back[at..at + 4].try_into().expect("4 bytes"))
        } else {
            0
        };
        let on_clear_bit = match value {
            0 => PkruOnClearBit::Reset,
            PKRU_FIRST => PkruOnClearBit::Kept,
            PKRU_SECOND => PkruOnClearBit::Loaded,
            v => PkruOnClearBit::Other(v),
        };
        Ok(PkruBehaviour {
            on_clear_bit,
            keeps_reserved_bytes,
        })
    }
}
