//! A vCPU's whole extended state: its XSAVE area and the four registers
//! outside it that decide how the area is read (XCR0, IA32_XSS, IA32_XFD,
//! IA32_XFD_ERR), saved and restored in the order the kernel needs.
//!
//! The order and the kernel rules behind it are in [`VcpuXstate`]'s docs.

use std::boxed::Box;
use std::vec::Vec;

use kvm_bindings::{kvm_msr_entry, Msrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VcpuFd};

use super::{get_xcr0, ioctl, leaf_0xd, preflight, set_xcr0, KvmCaps, KvmError, XstateBuffer};
use crate::area::XsaveHeader;
use crate::component::{ComponentId, Xfeatures};
use crate::migrate::stream::Vcpu;
use crate::xregs::{Xreg, XstateRegisters};
use crate::{Layout, RegisterFile};

/// Which of the extended-state MSRs (IA32_XSS, IA32_XFD, IA32_XFD_ERR) KVM
/// on this host saves and restores: those `KVM_GET_MSR_INDEX_LIST` lists
/// (the kernel lists IA32_XSS where it supports guest supervisor state,
/// and the XFD pair only where it offers guests XFD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XstateMsrs {
    xss: bool,
    xfd: bool,
    xfd_err: bool,
}

impl XstateMsrs {
    /// Reads `KVM_GET_MSR_INDEX_LIST`.
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when the ioctl fails.
    pub fn probe(kvm: &Kvm) -> Result<XstateMsrs, KvmError> {
        let list = kvm
            .get_msr_index_list()
            .map_err(ioctl("KVM_GET_MSR_INDEX_LIST"))?;
        Ok(XstateMsrs::from_index_list(list.as_slice()))
    }

    /// The MSRs of `list` (MSR numbers, as `KVM_GET_MSR_INDEX_LIST` gives).
    pub fn from_index_list(list: &[u32]) -> XstateMsrs {
        let has = |reg: Xreg| reg.msr().is_some_and(|m| list.contains(&m));
        XstateMsrs {
            xss: has(Xreg::Xss),
            xfd: has(Xreg::Xfd),
            xfd_err: has(Xreg::XfdErr),
        }
    }

    /// Whether KVM here saves and restores `reg` (XCR0: always).
    pub fn has(&self, reg: Xreg) -> bool {
        match reg {
            Xreg::Xcr0 => true,
            Xreg::Xss => self.xss,
            Xreg::Xfd => self.xfd,
            Xreg::XfdErr => self.xfd_err,
        }
    }

    /// The MSRs KVM has here, in restore order.
    pub fn present(&self) -> impl Iterator<Item = Xreg> + '_ {
        Xreg::ALL
            .into_iter()
            .filter(|r| r.msr().is_some() && self.has(*r))
    }

    /// The MSRs KVM does not have here: never read or written, and 0 for
    /// every vCPU of this host.
    pub fn absent(&self) -> impl Iterator<Item = Xreg> + '_ {
        Xreg::ALL.into_iter().filter(|r| !self.has(*r))
    }
}

/// What the vCPU's CPUID and this KVM let each register hold.
struct Allowed {
    xcr0: Xfeatures,
    xss: Xfeatures,
    xfd: Xfeatures,
}

impl Allowed {
    /// From the vCPU's CPUID (`KVM_GET_CPUID2`), as `kvm_vcpu_after_set_cpuid`
    /// derives it.
    fn of(vcpu: &VcpuFd, caps: &KvmCaps) -> Result<Allowed, KvmError> {
        let cpuid = vcpu
            .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_CPUID2"))?;
        if cpuid.as_slice().is_empty() {
            return Err(KvmError::NoCpuid);
        }
        let supported = leaf_0xd(&cpuid, 0)
            .map_or(Xfeatures::EMPTY, |e| Xfeatures::from_halves(e.edx, e.eax))
            & caps.guest_xcr0();
        let xss = match leaf_0xd(&cpuid, 1) {
            // XSAVES (EAX bit 3) is needed for a non-zero IA32_XSS.
            Some(e) if e.eax & (1 << 3) != 0 => {
                Xfeatures::from_halves(e.edx, e.ecx) & caps.guest_xss()
            }
            _ => Xfeatures::EMPTY,
        };
        Ok(Allowed {
            xcr0: supported | Xfeatures::from(ComponentId::X87),
            xss,
            // XFEATURE_MASK_USER_DYNAMIC & guest_supported_xcr0.
            xfd: supported & ComponentId::TILEDATA.bit(),
        })
    }

    fn get(&self, reg: Xreg) -> Xfeatures {
        match reg {
            Xreg::Xcr0 => self.xcr0,
            Xreg::Xss => self.xss,
            Xreg::Xfd | Xreg::XfdErr => self.xfd,
        }
    }
}

/// A vCPU's whole extended state: the XSAVE area as KVM holds it and the
/// four registers beside it. [`save`](Self::save) and
/// [`restore`](Self::restore) move it in and out of KVM in the order below;
/// [`to_stream`](Self::to_stream) and [`load`](Self::load) convert it to
/// and from a stream's [`Vcpu`].
///
/// # Restore order, and the kernel rules behind it
///
/// Sources: Linux `arch/x86/kvm/x86.c` (`__kvm_set_xcr`,
/// `kvm_set_msr_common`, `kvm_vcpu_ioctl_x86_set_xsave`,
/// `kvm_init_msr_list` / `kvm_probe_msr_to_save`), `arch/x86/kvm/cpuid.c`
/// (`kvm_vcpu_after_set_cpuid`) and `arch/x86/kernel/fpu/core.c`
/// (`fpu_update_guest_xfd`, `fpu_copy_uabi_to_guest_fpstate`).
///
/// 0. **`KVM_SET_CPUID2` first** (the VMM's call, before this helper).
///    `kvm_vcpu_after_set_cpuid` derives from the vCPU's CPUID the XCR0
///    bits it may enable (`guest_supported_xcr0`, leaf 0xD.0 EDX:EAX
///    within what KVM supports) and, since Linux 6.18, its IA32_XSS bits
///    (leaf 0xD.1 EDX:ECX); `KVM_SET_CPUID2` with AMX also enlarges the
///    guest FPU buffer (`fpu_enable_guest_xfd_features`). Every later call
///    is judged against it, so [`restore`](Self::restore) refuses a vCPU
///    without CPUID ([`KvmError::NoCpuid`]) and checks each value against
///    it ([`KvmError::NotOffered`]) before writing anything.
/// 1. **XCR0, `KVM_SET_XCRS`.** `__kvm_set_xcr` refuses values breaking
///    the XSETBV rules or outside `guest_supported_xcr0 | x87`. The kernel
///    does not need it before `KVM_SET_XSAVE` (which judges XSTATE_BV
///    against the XCR0 KVM supports since 6.6, against the CPUID-derived
///    one in 6.0-6.5, never against the vCPU's XCR0); it goes first as the
///    guest itself sets it before using a component, and as the value most
///    likely to be refused.
/// 2. **IA32_XSS, IA32_XFD, IA32_XFD_ERR, one `KVM_SET_MSRS`**, each only
///    where `KVM_GET_MSR_INDEX_LIST` has it (IA32_XSS where KVM supports
///    guest supervisor state, the XFD pair where KVM offers guests XFD).
///    `kvm_set_msr_common` refuses IA32_XSS bits outside the guest's
///    supported set and without XSAVES in its CPUID, and IA32_XFD /
///    IA32_XFD_ERR bits outside `XFEATURE_MASK_USER_DYNAMIC &
///    guest_supported_xcr0`. **IA32_XFD must precede `KVM_SET_XSAVE`**:
///    `kvm_vcpu_ioctl_x86_set_xsave` clears from XSTATE_BV the components
///    of the vCPU's IA32_XFD *at that moment* (`guest_fpu.fpstate->xfd`),
///    so with the MSRs later a vCPU whose old XFD disabled tile data
///    would drop incoming tiles the new XFD enables, and the later WRMSR
///    (`fpu_update_guest_xfd`) clears the bits of newly disabled
///    components from the state just written. IA32_XFD_ERR is plain
///    storage (`guest_fpu.xfd_err`) and IA32_XSS enables supervisor
///    components, which never travel in KVM's standard-format buffer: they
///    go in the same call, after IA32_XSS's own rules.
/// 3. **The area, `KVM_SET_XSAVE`**, last, after [`preflight`] says the
///    kernel takes it (as [`XstateBuffer::restore`] does). A component
///    live in the area that the new IA32_XFD disables is refused here
///    ([`KvmError::Registers`]): the kernel would drop it silently.
///
/// Registers whose value already matches the vCPU's are not written. If a
/// write fails part way, the vCPU is put back as it was (the same order,
/// its values read before the first write), so a failed restore changes
/// nothing; [`KvmError::Rollback`] says when even that failed.
///
/// Saving has no ordering constraint (the vCPU is not running): the area
/// (`KVM_GET_XSAVE2`), XCR0 (`KVM_GET_XCRS`), then the MSRs KVM has here
/// (`KVM_GET_MSRS`). An MSR KVM does not have is 0 for every vCPU on this
/// host (its guests cannot set it), and saved as 0.
///
/// ```no_run
/// use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
/// use kvm_ioctls::Kvm;
/// use xstate::kvm::{KvmCaps, VcpuXstate};
/// use xstate::migrate::stream::{self, Source};
///
/// let kvm = Kvm::new()?;
/// let caps = KvmCaps::probe(&kvm)?;
/// let vm = kvm.create_vm()?;
/// let (source, destination) = (vm.create_vcpu(0)?, vm.create_vcpu(1)?);
/// let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)?;
/// source.set_cpuid2(&cpuid)?;
/// destination.set_cpuid2(&cpuid)?;
///
/// let mut whole = VcpuXstate::new(&caps)?;
/// whole.save(&source, &caps)?; // KVM_GET_XSAVE2, KVM_GET_XCRS, KVM_GET_MSRS
/// let bytes = stream::encode(&[whole.to_stream(caps.layout())?], &Source::of(caps.layout()))?;
///
/// let vcpus = stream::decode_vcpus(&bytes, 1)?;
/// let mut arriving = VcpuXstate::new(&caps)?;
/// arriving.load(&vcpus[0], &caps)?;
/// arriving.restore(&destination, &caps)?; // checks, then XCRS, MSRS, XSAVE
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct VcpuXstate {
    /// The XSAVE area (standard format, host offsets, KVM's size).
    pub area: XstateBuffer,
    /// XCR0, IA32_XSS, IA32_XFD and IA32_XFD_ERR.
    pub registers: XstateRegisters,
}

impl VcpuXstate {
    /// A zeroed area of KVM's size here, XCR0 = 1 (x87, its reset value)
    /// and the MSRs 0.
    ///
    /// # Errors
    ///
    /// [`KvmError::Alloc`] when the buffer cannot be allocated.
    pub fn new(caps: &KvmCaps) -> Result<VcpuXstate, KvmError> {
        Ok(VcpuXstate {
            area: XstateBuffer::new(caps)?,
            registers: XstateRegisters::with_xcr0(ComponentId::X87.bit()),
        })
    }

    /// Reads the vCPU's whole extended state: the area (`KVM_GET_XSAVE2`),
    /// XCR0 (`KVM_GET_XCRS`) and the MSRs KVM has here (`KVM_GET_MSRS`;
    /// those it lacks, [`XstateMsrs::absent`], are 0).
    ///
    /// # Errors
    ///
    /// [`KvmError::Ioctl`] when an ioctl fails, [`KvmError::MsrRefused`]
    /// when KVM reads fewer MSRs than asked.
    pub fn save(&mut self, vcpu: &VcpuFd, caps: &KvmCaps) -> Result<(), KvmError> {
        self.area.save(vcpu)?;
        self.registers = get_registers(vcpu, caps)?;
        Ok(())
    }

    /// Writes the whole state to the vCPU in the order the kernel needs
    /// (see [`VcpuXstate`]): XCR0 (`KVM_SET_XCRS`), then IA32_XSS,
    /// IA32_XFD and IA32_XFD_ERR (`KVM_SET_MSRS`), then the area
    /// (`KVM_SET_XSAVE`). Everything that can be judged beforehand is
    /// checked before the first write; a write failing later puts the
    /// vCPU back as it was.
    ///
    /// # Errors
    ///
    /// Before any write: [`KvmError::NoCpuid`] (no `KVM_SET_CPUID2` yet),
    /// [`KvmError::Registers`] (impossible values, or live state IA32_XFD
    /// disables), [`KvmError::NotOffered`] (bits the vCPU's CPUID or this
    /// KVM does not allow), [`KvmError::MsrAbsent`] (a non-zero MSR KVM
    /// does not have here), [`KvmError::Preflight`] (an area
    /// `KVM_SET_XSAVE` would reject). During the writes, with the vCPU put
    /// back: [`KvmError::Ioctl`] or [`KvmError::MsrRefused`];
    /// [`KvmError::Rollback`] when putting it back failed too.
    pub fn restore(&self, vcpu: &VcpuFd, caps: &KvmCaps) -> Result<(), KvmError> {
        self.check(vcpu, caps)?;
        let mut before = VcpuXstate::new(caps)?;
        before.save(vcpu, caps)?;
        match self.apply(vcpu, caps, &before.registers) {
            Ok(()) => Ok(()),
            Err(error) => match before.apply(vcpu, caps, &self.registers) {
                Ok(()) => Err(error),
                Err(rollback) => Err(KvmError::Rollback {
                    error: Box::new(error),
                    rollback: Box::new(rollback),
                }),
            },
        }
    }

    /// Fills the state from a stream's vCPU: the area written for this
    /// host as [`XstateBuffer::load`] does (PKRU sent with its bit set
    /// where KVM offers it), the registers as they are.
    ///
    /// # Errors
    ///
    /// [`KvmError::NoRegisters`] for a vCPU from a version 1 stream,
    /// [`KvmError::Access`] when a live component has no place in this
    /// host's buffer. Nothing changes on error.
    pub fn load(&mut self, vcpu: &Vcpu, caps: &KvmCaps) -> Result<(), KvmError> {
        let registers = vcpu.registers.ok_or(KvmError::NoRegisters)?;
        self.area.load(&vcpu.state, caps)?;
        self.registers = registers;
        Ok(())
    }

    /// The state as a stream's vCPU: the area read with `layout` (the
    /// host's, for state saved here) into a register file, and the
    /// registers.
    ///
    /// # Errors
    ///
    /// [`KvmError::Access`] when the area does not fit `layout`.
    pub fn to_stream(&self, layout: &Layout) -> Result<Vcpu, KvmError> {
        let state = RegisterFile::from_view(&self.area.view(layout)?)?;
        Ok(Vcpu::new(state, self.registers))
    }

    /// Everything judged before the first write.
    fn check(&self, vcpu: &VcpuFd, caps: &KvmCaps) -> Result<(), KvmError> {
        let xstate_bv = Xfeatures::from_bits(XsaveHeader::of(self.area.as_bytes()).xstate_bv.get());
        self.registers.check_state(xstate_bv)?;
        let allowed = Allowed::of(vcpu, caps)?;
        let msrs = caps.xstate_msrs();
        for reg in Xreg::ALL {
            let value = self.registers.get(reg);
            if !msrs.has(reg) && !value.is_empty() {
                return Err(KvmError::MsrAbsent {
                    register: reg,
                    value,
                });
            }
            if !allowed.get(reg).contains_all(value) {
                return Err(KvmError::NotOffered {
                    register: reg,
                    value,
                    allowed: allowed.get(reg),
                });
            }
        }
        preflight(self.area.as_bytes(), &caps.set_xsave_rules())?;
        Ok(())
    }

    /// The writes, in order; registers equal to `current` are skipped.
    fn apply(
        &self,
        vcpu: &VcpuFd,
        caps: &KvmCaps,
        current: &XstateRegisters,
    ) -> Result<(), KvmError> {
        if self.registers.xcr0 != current.xcr0 {
            set_xcr0(vcpu, self.registers.xcr0)?;
        }
        let changed: Vec<Xreg> = caps
            .xstate_msrs()
            .present()
            .filter(|&r| self.registers.get(r) != current.get(r))
            .collect();
        if !changed.is_empty() {
            let entries: Vec<kvm_msr_entry> = changed
                .iter()
                .map(|&r| msr_entry(r, self.registers.get(r)))
                .collect();
            let msrs = msr_list(&entries);
            let done = vcpu.set_msrs(&msrs).map_err(ioctl("KVM_SET_MSRS"))?;
            if let Some(&register) = changed.get(done) {
                return Err(KvmError::MsrRefused {
                    op: "KVM_SET_MSRS",
                    register,
                    value: self.registers.get(register),
                });
            }
        }
        self.area.restore(vcpu, caps)
    }
}

/// A `kvm_msrs` of at most the three extended-state MSRs.
fn msr_list(entries: &[kvm_msr_entry]) -> Msrs {
    // kvm-bindings refuses only more than KVM_MAX_MSR_ENTRIES (256).
    Msrs::from_entries(entries).expect("three MSR entries fit a kvm_msrs")
}

fn msr_entry(reg: Xreg, value: Xfeatures) -> kvm_msr_entry {
    kvm_msr_entry {
        index: reg.msr().expect("an MSR"),
        data: value.bits(),
        ..Default::default()
    }
}

/// The vCPU's XCR0 (`KVM_GET_XCRS`) and the extended-state MSRs KVM has
/// here (`KVM_GET_MSRS`); those it lacks are 0.
///
/// # Errors
///
/// [`KvmError::Ioctl`] when an ioctl fails, [`KvmError::MsrRefused`] when
/// KVM reads fewer MSRs than asked.
pub fn get_registers(vcpu: &VcpuFd, caps: &KvmCaps) -> Result<XstateRegisters, KvmError> {
    let mut registers = XstateRegisters::with_xcr0(get_xcr0(vcpu)?);
    let present: Vec<Xreg> = caps.xstate_msrs().present().collect();
    if present.is_empty() {
        return Ok(registers);
    }
    let entries: Vec<kvm_msr_entry> = present
        .iter()
        .map(|&r| msr_entry(r, Xfeatures::EMPTY))
        .collect();
    let mut msrs = msr_list(&entries);
    let done = vcpu.get_msrs(&mut msrs).map_err(ioctl("KVM_GET_MSRS"))?;
    if let Some(&register) = present.get(done) {
        return Err(KvmError::MsrRefused {
            op: "KVM_GET_MSRS",
            register,
            value: Xfeatures::EMPTY,
        });
    }
    for (reg, entry) in present.iter().zip(msrs.as_slice()) {
        registers.set(*reg, Xfeatures::from_bits(entry.data));
    }
    Ok(registers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msrs_from_the_index_list() {
        let m = XstateMsrs::from_index_list(&[0x10, 0xDA0, 0x1C5]);
        assert!(m.has(Xreg::Xcr0) && m.has(Xreg::Xss) && m.has(Xreg::XfdErr));
        assert!(!m.has(Xreg::Xfd));
        assert_eq!(m.present().collect::<Vec<_>>(), [Xreg::Xss, Xreg::XfdErr]);
        assert_eq!(m.absent().collect::<Vec<_>>(), [Xreg::Xfd]);
        let none = XstateMsrs::from_index_list(&[]);
        assert_eq!(none.present().count(), 0);
        assert_eq!(none.absent().count(), 3);
    }
}
