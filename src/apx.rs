//! APX's extended general-purpose registers r16..r31 (EGPRs, XSAVE
//! component 19): whether they exist for a vCPU, and whether an
//! instruction may name them.
//!
//! Two questions, answered separately:
//!
//! - **Do r16..r31 exist?** ([`Egprs`]) For a KVM vCPU, only if KVM offers
//!   guests APX (its supported guest XCR0 has bit 19) and the vCPU's XCR0
//!   enables it. The host CPU having APX is not enough: no released kernel
//!   offers APX to guests yet, and on such a kernel KVM's guest XCR0 lacks
//!   bit 19 even on an APX host, so a `KVM_SET_XSAVE` with XSTATE_BV\[19\]
//!   fails with EINVAL. Decide once per vCPU ([`Egprs::for_kvm`]; again
//!   whenever the VMM reads the vCPU's XCR0 anew, since the guest changes it
//!   with XSETBV without an exit to user space), then use the decision on
//!   every access: it is a `Copy` value, and checking it is one branch.
//! - **May an emulated instruction name them?** ([`Egprs::usable`]) Only in
//!   64-bit mode ([`is_64bit_mode`]: EFER.LMA and CS.L), and only while
//!   XCR0\[19\] is set. The Intel APX architecture specification defines the
//!   REX2 prefix (0xD5) and the EVEX bits that address r16..r31 in 64-bit
//!   mode only (outside it 0xD5 is AAD), and makes them #UD while XCR0\[19\]
//!   (APX_F state) is clear. A VMM's instruction emulator must apply the
//!   same rule: it decodes the guest's bytes itself, after the exit.
//!
//! How KVM moves r16..r31 (the posted KVM APX series, summarized in the
//! project's facts page; no released kernel has it, so these rules are
//! tested against a simulation built from that page, not against KVM):
//!
//! - only as component 19 of `KVM_GET_XSAVE` / `KVM_GET_XSAVE2` /
//!   `KVM_SET_XSAVE`, at the host's standard offset (960 on an Intel APX
//!   part, the 128 bytes MPX used); `kvm_regs` stays rax..r15;
//! - a GET sets XSTATE_BV\[19\] whenever the guest's CPUID has APX, even
//!   with every EGPR zero: the bit means "present", not "in use", so
//!   reading r16..r31 from such a state simply gives their values (zeros);
//! - a SET with XSTATE_BV\[19\] clear leaves r16..r31 as they were; it does
//!   not zero them. A state meant for a KVM with APX must therefore send
//!   component 19 with its bit set, zeros included, for zeros to take
//!   effect: `KvmOffer::pinned` and `KvmCaps::pinned` (`alloc` and `kvm`
//!   features) list APX there, and `XstateBuffer::load` and
//!   `xstate stream decode` encode with it;
//! - a SET with XSTATE_BV\[19\] on a KVM without APX fails with EINVAL;
//! - XCR0 never holds MPX (bits 3-4) and APX together: XSETBV raises #GP
//!   and `KVM_SET_XCRS` fails.
//!
//! For a state that did not come from KVM (a core dump, a file), r16..r31
//! exist when its layout has APX and its XCR0 enables it:
//! [`Egprs::for_state`] with that XCR0 (a core dump's `NT_X86_XSTATE` holds
//! it at byte 464 of the area; `layout.xcr0_supported()` where the state
//! was saved with every component enabled).
//!
//! ```
//! use xstate::apx::{is_64bit_mode, ApxError, Egprs, EFER_LMA};
//! use xstate::{layout::catalog, ComponentId, Xfeatures};
//!
//! let dmr = catalog::get("intel-diamond-rapids").unwrap(); // APX at 960
//! let vcpu_xcr0 = Xfeatures::from_bits(0x80007); // x87, SSE, AVX, APX
//!
//! // A KVM whose guest XCR0 lacks APX, on an APX host: no r16..r31.
//! let kvm_without_apx = dmr.xcr0_supported().without(ComponentId::APX);
//! let egprs = Egprs::for_kvm(dmr, kvm_without_apx, vcpu_xcr0);
//! assert_eq!(
//!     egprs.check(),
//!     Err(ApxError::NotOfferedByKvm { guest_xcr0: kvm_without_apx })
//! );
//!
//! // A KVM with APX: they exist, and a 64-bit-mode instruction may use them.
//! let egprs = Egprs::for_kvm(dmr, dmr.xcr0_supported(), vcpu_xcr0);
//! assert!(egprs.is_present());
//! let long_mode = is_64bit_mode(EFER_LMA | 1 << 8, true);
//! assert_eq!(egprs.usable(long_mode), Ok(()));
//! // In compatibility mode (CS.L clear) no instruction can name them.
//! assert_eq!(egprs.usable(is_64bit_mode(EFER_LMA, false)), Err(ApxError::Not64BitMode));
//! ```

use crate::component::{ComponentId, Xfeatures};
use crate::Layout;

/// EFER.LMA, bit 10 of IA32_EFER: IA-32e mode is active (Intel SDM vol.
/// 3A, 2.2.1).
pub const EFER_LMA: u64 = 1 << 10;

/// MPX's two components (BNDREGS, BNDCSR), which XCR0 never holds with APX.
const MPX: Xfeatures = ComponentId::MPX_BNDREGS
    .bit()
    .union(ComponentId::MPX_BNDCSR.bit());

/// Why r16..r31 do not exist, or may not be named by an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApxError {
    /// KVM offers guests no APX: its supported guest XCR0
    /// (`KVM_GET_SUPPORTED_CPUID` leaf 0xD sub-leaf 0) lacks bit 19, whatever
    /// the host CPU has.
    #[error(
        "r16..r31 do not exist: KVM offers guests XCR0 {guest_xcr0}, without APX (component 19)"
    )]
    NotOfferedByKvm {
        /// KVM's supported guest XCR0.
        guest_xcr0: Xfeatures,
    },
    /// The layout has no APX (component 19).
    #[error("r16..r31 do not exist: the layout has no APX (component 19) (it supports XCR0 {supported})")]
    NotInLayout {
        /// The layout's supported XCR0 bits.
        supported: Xfeatures,
    },
    /// The vCPU's (or state's) XCR0 does not enable APX.
    #[error("r16..r31 do not exist: XCR0 {xcr0} does not enable APX (component 19)")]
    NotEnabled {
        /// The XCR0.
        xcr0: Xfeatures,
    },
    /// An XCR0 with MPX and APX, which XSETBV and `KVM_SET_XCRS` refuse.
    #[error("XCR0 {xcr0} enables MPX and APX together, which XSETBV and KVM_SET_XCRS refuse")]
    MpxAndApx {
        /// The XCR0.
        xcr0: Xfeatures,
    },
    /// The vCPU is not in 64-bit mode, where alone r16..r31 can be encoded.
    #[error("r16..r31 can be named only in 64-bit mode (EFER.LMA and CS.L set), and the vCPU is not in it")]
    Not64BitMode,
}

/// Whether r16..r31 exist for one vCPU (or one saved state): decided once,
/// checked on every access.
///
/// Build it with [`for_kvm`](Self::for_kvm) for a KVM vCPU, or
/// [`for_state`](Self::for_state) for a state that did not come from KVM.
/// It is a small `Copy` value; [`check`](Self::check) is one branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Egprs {
    absent: Option<ApxError>,
}

impl Egprs {
    /// r16..r31 of a KVM vCPU: they exist when KVM offers guests APX
    /// (`guest_xcr0`, from `KvmCaps::guest_xcr0` or a profile's
    /// `KvmOffer::guest_xcr0`), the host `layout` (where KVM's buffers keep
    /// component 19) has it, and the vCPU's XCR0 (`KVM_GET_XCRS`:
    /// `kvm::get_xcr0`, or `XstateRegisters::xcr0`) enables it.
    ///
    /// The host CPU's own APX does not count: a host with APX whose KVM
    /// offers guests none gives [`ApxError::NotOfferedByKvm`]. The reasons
    /// are tried in this order: KVM's offer, the layout, an XCR0 with MPX
    /// and APX, the vCPU's XCR0.
    pub fn for_kvm(layout: &Layout, guest_xcr0: Xfeatures, vcpu_xcr0: Xfeatures) -> Egprs {
        let absent = if !guest_xcr0.contains(ComponentId::APX) {
            Some(ApxError::NotOfferedByKvm { guest_xcr0 })
        } else {
            Self::for_state(layout, vcpu_xcr0).absent
        };
        Egprs { absent }
    }

    /// r16..r31 of a state that did not come from KVM (a core dump, a
    /// file, a register file): they exist when `layout` has APX and the
    /// state's `xcr0` enables it. Pass `layout.xcr0_supported()` where the
    /// state was saved with every component enabled (the behaviour of
    /// `Gprs` before it took this decision).
    pub fn for_state(layout: &Layout, xcr0: Xfeatures) -> Egprs {
        let absent = if !layout.has(ComponentId::APX) {
            Some(ApxError::NotInLayout {
                supported: layout.xcr0_supported(),
            })
        } else if xcr0.contains(ComponentId::APX) && xcr0.intersects(MPX) {
            Some(ApxError::MpxAndApx { xcr0 })
        } else if !xcr0.contains(ComponentId::APX) {
            Some(ApxError::NotEnabled { xcr0 })
        } else {
            None
        };
        Egprs { absent }
    }

    /// Whether r16..r31 exist.
    #[inline]
    pub fn is_present(self) -> bool {
        self.absent.is_none()
    }

    /// `Ok` when r16..r31 exist.
    ///
    /// # Errors
    ///
    /// The [`ApxError`] that says why they do not (naming KVM's guest XCR0,
    /// the layout's or the vCPU's XCR0).
    #[inline]
    pub fn check(self) -> Result<(), ApxError> {
        match self.absent {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Whether an instruction the VMM emulates may name r16..r31 (through a
    /// REX2 prefix or EVEX's extended register bits): they must exist
    /// ([`check`](Self::check), which includes XCR0\[19\]) and the vCPU must
    /// be in 64-bit mode (`in_64bit_mode`, from [`is_64bit_mode`]). The
    /// hardware raises #UD otherwise (Intel APX architecture specification,
    /// on REX2 and the extended EVEX prefix), and so should the emulator.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check); [`ApxError::Not64BitMode`] when they exist
    /// but the vCPU is not in 64-bit mode.
    #[inline]
    pub fn usable(self, in_64bit_mode: bool) -> Result<(), ApxError> {
        self.check()?;
        if in_64bit_mode {
            Ok(())
        } else {
            Err(ApxError::Not64BitMode)
        }
    }
}

/// Whether a CPU is in 64-bit mode: IA-32e mode active (`efer` has
/// [`EFER_LMA`]) and a 64-bit code segment (`cs_l`: the L flag of CS's
/// descriptor). IA-32e mode with CS.L clear is compatibility mode. Intel SDM
/// vol. 3A, 2.2.1 (IA32_EFER) and 3.4.5 (the L flag).
#[inline]
pub fn is_64bit_mode(efer: u64, cs_l: bool) -> bool {
    efer & EFER_LMA != 0 && cs_l
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::layout::catalog;

    const X87_SSE_AVX: u64 = 0x7;
    const APX: u64 = 1 << 19;

    #[test]
    fn kvm_decides_not_the_host_cpu() {
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        let vcpu = Xfeatures::from_bits(X87_SSE_AVX | APX);
        let without = dmr.xcr0_supported().without(ComponentId::APX);
        let e = Egprs::for_kvm(dmr, without, vcpu).check().unwrap_err();
        assert_eq!(
            e,
            ApxError::NotOfferedByKvm {
                guest_xcr0: without
            }
        );
        assert_eq!(
            e.to_string(),
            "r16..r31 do not exist: KVM offers guests XCR0 0x602e7, without APX (component 19)"
        );
        assert!(Egprs::for_kvm(dmr, dmr.xcr0_supported(), vcpu).is_present());
        // The vCPU's XCR0 decides too.
        let xcr0 = Xfeatures::from_bits(X87_SSE_AVX);
        assert_eq!(
            Egprs::for_kvm(dmr, dmr.xcr0_supported(), xcr0).check(),
            Err(ApxError::NotEnabled { xcr0 })
        );
        // A layout without APX (a KVM claiming APX there is impossible, but
        // the answer is still no).
        let spr = catalog::get("intel-sapphire-rapids").unwrap();
        assert_eq!(
            Egprs::for_kvm(spr, Xfeatures::from_bits(0x602e7 | APX), vcpu).check(),
            Err(ApxError::NotInLayout {
                supported: spr.xcr0_supported()
            })
        );
    }

    #[test]
    fn xcr0_with_mpx_and_apx_has_no_egprs() {
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        for mpx in [1u64 << 3, 1 << 4, 3 << 3] {
            let xcr0 = Xfeatures::from_bits(X87_SSE_AVX | APX | mpx);
            assert_eq!(
                Egprs::for_state(dmr, xcr0).check(),
                Err(ApxError::MpxAndApx { xcr0 })
            );
        }
    }

    #[test]
    fn for_state_uses_the_layout_and_the_state_xcr0() {
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        assert!(Egprs::for_state(dmr, dmr.xcr0_supported()).is_present());
        let zen4 = catalog::get("amd-zen4").unwrap();
        let e = Egprs::for_state(zen4, zen4.xcr0_supported()).check();
        assert!(matches!(e, Err(ApxError::NotInLayout { .. })), "{e:?}");
    }

    #[test]
    fn only_64bit_mode_may_name_egprs() {
        let lme = 1u64 << 8;
        // (EFER, CS.L, 64-bit mode): real/protected mode, compatibility
        // mode, 64-bit mode; LME without LMA (paging off) is not IA-32e.
        let modes = [
            (0, false, false),
            (0, true, false),
            (lme, true, false),
            (lme | EFER_LMA, false, false),
            (lme | EFER_LMA, true, true),
        ];
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        let present = Egprs::for_state(dmr, Xfeatures::from_bits(X87_SSE_AVX | APX));
        let absent = Egprs::for_state(dmr, Xfeatures::from_bits(X87_SSE_AVX));
        for (efer, l, want) in modes {
            assert_eq!(is_64bit_mode(efer, l), want, "EFER {efer:#x} CS.L {l}");
            let got = present.usable(is_64bit_mode(efer, l));
            assert_eq!(got.is_ok(), want);
            if !want {
                assert_eq!(got, Err(ApxError::Not64BitMode));
            }
            // Absent EGPRs are absent in every mode, and say why.
            assert!(matches!(
                absent.usable(is_64bit_mode(efer, l)),
                Err(ApxError::NotEnabled { .. })
            ));
        }
    }
}
