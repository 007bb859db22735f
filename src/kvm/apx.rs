//! APX for a VMM's instruction emulator on KVM: whether the vCPU has
//! r16..r31, and whether the instruction being emulated may name them.
//!
//! The rules, their sources and how KVM moves r16..r31 are in
//! [`crate::apx`]; this module applies them to KVM's types. On an exit,
//! the decision whether r16..r31 exist ([`Egprs`]) is already made (once
//! per vCPU, by [`egprs`] or [`KvmCaps::egprs`]); the emulator adds the
//! mode check from the `kvm_sregs` it has:
//!
//! ```no_run
//! use kvm_ioctls::Kvm;
//! use xstate::kvm::apx::{egprs, may_use_egprs};
//! use xstate::kvm::{Gprs, KvmCaps, XstateBuffer};
//!
//! let kvm = Kvm::new()?;
//! let caps = KvmCaps::probe(&kvm)?;
//! let vm = kvm.create_vm()?;
//! let vcpu = vm.create_vcpu(0)?;
//! // Once per vCPU (and when the VMM reads its XCR0 anew): KVM_GET_XCRS.
//! let egprs = egprs(&vcpu, &caps)?;
//! let mut state = XstateBuffer::new(&caps)?;
//!
//! // On an exit whose instruction names r20 through REX2:
//! let sregs = vcpu.get_sregs()?;
//! if may_use_egprs(&sregs, egprs).is_err() {
//!     // The hardware would have raised #UD: inject it, emulate nothing.
//! } else {
//!     state.save(&vcpu)?;
//!     let mut view = state.view_mut(caps.layout())?;
//!     let mut regs = vcpu.get_regs()?;
//!     let r20 = Gprs::new(&mut regs, &mut view, egprs).get_by_name("r20")?;
//!     # let _ = r20;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use kvm_bindings::kvm_sregs;
use kvm_ioctls::VcpuFd;

use super::{get_xcr0, KvmCaps, KvmError};
pub use crate::apx::{is_64bit_mode, ApxError, Egprs, EFER_LMA};

/// Whether the vCPU whose special registers are `sregs` is in 64-bit mode:
/// EFER.LMA and CS.L ([`is_64bit_mode`]).
#[inline]
pub fn in_64bit_mode(sregs: &kvm_sregs) -> bool {
    is_64bit_mode(sregs.efer, sregs.cs.l != 0)
}

/// Whether an instruction the VMM emulates for the vCPU whose special
/// registers are `sregs` may name r16..r31: they exist (`egprs`: KVM offers
/// APX and the vCPU's XCR0 has bit 19) and the vCPU is in 64-bit mode.
///
/// # Errors
///
/// The [`ApxError`] that says why not; the hardware raises #UD for such an
/// instruction (Intel APX architecture specification), and so should the
/// emulator.
#[inline]
pub fn may_use_egprs(sregs: &kvm_sregs, egprs: Egprs) -> Result<(), ApxError> {
    egprs.usable(in_64bit_mode(sregs))
}

/// Whether r16..r31 exist for `vcpu`: KVM's guest XCR0 (`caps`) and the
/// vCPU's XCR0, read with `KVM_GET_XCRS` ([`KvmCaps::egprs`]). Call it once
/// per vCPU, and again where the VMM reads XCR0 anew (the guest changes XCR0
/// with XSETBV without an exit to user space).
///
/// # Errors
///
/// [`KvmError::Ioctl`] when `KVM_GET_XCRS` fails.
pub fn egprs(vcpu: &VcpuFd, caps: &KvmCaps) -> Result<Egprs, KvmError> {
    Ok(caps.egprs(get_xcr0(vcpu)?))
}
