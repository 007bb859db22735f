//! All 32 general-purpose registers for instruction emulation: rax..r15
//! from `kvm_regs`, r16..r31 from APX (XSAVE component 19) where they exist
//! for the vCPU ([`Egprs`]).

use std::string::{String, ToString};

use kvm_bindings::kvm_regs;

use crate::access::{AccessError, XstateRead, XstateWrite};
use crate::apx::{ApxError, Egprs};

/// Register names by index, in the x86 encoding order.
pub const GPR_NAMES: [&str; 32] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26",
    "r27", "r28", "r29", "r30", "r31",
];

/// Why a GPR could not be read or written through [`Gprs`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GprError {
    /// An index past 31.
    #[error("there is no general-purpose register {0}: they are numbered 0..32 (rax..r31)")]
    NoRegister(usize),
    /// A name that is none of `rax`..`r31`.
    #[error("{0:?} is not a general-purpose register name (rax..r15, r16..r31)")]
    UnknownName(String),
    /// r16..r31 do not exist for this vCPU: the reason names KVM's guest
    /// XCR0, the vCPU's XCR0 or the layout.
    #[error(transparent)]
    Egprs(#[from] ApxError),
    /// The XSAVE state could not be read or written.
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// A unified view of 32 GPRs over a vCPU's `kvm_regs` and its XSAVE state:
/// a view ([`XsaveView`](crate::XsaveView)) or a
/// [`RegisterFile`](crate::RegisterFile), anything with [`XstateRead`]
/// (and [`XstateWrite`] to set).
///
/// Whether r16..r31 exist is decided once, by an [`Egprs`] the caller
/// gives: for a KVM vCPU, [`KvmCaps::egprs`](super::KvmCaps::egprs) (KVM's
/// guest XCR0 and the vCPU's XCR0, not the host CPU); for a state that did
/// not come from KVM, [`Egprs::for_state`] (its layout and XCR0). Where they
/// do not exist, r16..r31 are an error ([`GprError::Egprs`]), not a silent
/// zero. Where they do, reading one while APX is init gives 0 (KVM's GET
/// sets XSTATE_BV\[19\] whenever the guest has APX: "present", not "in
/// use"), and writing one makes APX live, so a later `KVM_SET_XSAVE` loads
/// it. rax..r15 cost one match on the index; r16..r31 one more branch on
/// the decision, then the state's accessor.
///
/// Writing r16..r31 back into KVM needs XSTATE_BV\[19\] set: with it clear,
/// `KVM_SET_XSAVE` leaves the vCPU's r16..r31 as they were (see
/// [`crate::apx`]).
///
/// ```
/// use kvm_bindings::kvm_regs;
/// use xstate::apx::Egprs;
/// use xstate::{kvm::Gprs, layout::catalog, XsaveView, Xfeatures};
///
/// let layout = catalog::get("intel-diamond-rapids").unwrap();
/// let mut buf = vec![0u8; layout.standard_size() as usize];
/// let mut xstate = XsaveView::new(&mut buf[..], layout).unwrap();
/// // A state from a file, saved with XCR0 0x800e7 (AVX-512 and APX).
/// let egprs = Egprs::for_state(layout, Xfeatures::from_bits(0x800e7));
/// let mut regs = kvm_regs::default();
/// let mut gprs = Gprs::new(&mut regs, &mut xstate, egprs);
/// gprs.set(3, 7).unwrap();                       // rbx
/// gprs.set_by_name("r20", 0xfeed).unwrap();      // APX
/// assert_eq!(gprs.get_by_name("rbx").unwrap(), 7);
/// assert_eq!(gprs.get(20).unwrap(), 0xfeed);
/// assert_eq!(regs.rbx, 7);
/// ```
#[derive(Debug)]
pub struct Gprs<'r, S: ?Sized> {
    regs: &'r mut kvm_regs,
    xstate: &'r mut S,
    egprs: Egprs,
}

fn slot_mut(regs: &mut kvm_regs, i: usize) -> &mut u64 {
    match i {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        _ => &mut regs.r15,
    }
}

fn slot(regs: &kvm_regs, i: usize) -> u64 {
    match i {
        0 => regs.rax,
        1 => regs.rcx,
        2 => regs.rdx,
        3 => regs.rbx,
        4 => regs.rsp,
        5 => regs.rbp,
        6 => regs.rsi,
        7 => regs.rdi,
        8 => regs.r8,
        9 => regs.r9,
        10 => regs.r10,
        11 => regs.r11,
        12 => regs.r12,
        13 => regs.r13,
        14 => regs.r14,
        _ => regs.r15,
    }
}

/// The index of a register name (`rax`..`r31`).
fn index_of(name: &str) -> Result<usize, GprError> {
    GPR_NAMES
        .iter()
        .position(|n| *n == name)
        .ok_or_else(|| GprError::UnknownName(name.to_string()))
}

impl<'r, S: XstateRead + ?Sized> Gprs<'r, S> {
    /// Combines a vCPU's `kvm_regs` and its XSAVE state, with the decision
    /// whether r16..r31 exist (made once per vCPU, see [`Egprs`]).
    pub fn new(regs: &'r mut kvm_regs, xstate: &'r mut S, egprs: Egprs) -> Self {
        Gprs {
            regs,
            xstate,
            egprs,
        }
    }

    /// Whether r16..r31 exist here.
    pub fn egprs(&self) -> Egprs {
        self.egprs
    }

    /// GPR `index` (0..32).
    ///
    /// # Errors
    ///
    /// [`GprError::NoRegister`] past 31; for r16..r31,
    /// [`GprError::Egprs`] where they do not exist, and
    /// [`GprError::Access`] when the state cannot give them (its layout
    /// has no APX).
    pub fn get(&self, index: usize) -> Result<u64, GprError> {
        match index {
            0..=15 => Ok(slot(self.regs, index)),
            16..=31 => {
                self.egprs.check()?;
                Ok(self.xstate.r(index)?)
            }
            _ => Err(GprError::NoRegister(index)),
        }
    }

    /// GPR by name.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); an unknown name is [`GprError::UnknownName`].
    pub fn get_by_name(&self, name: &str) -> Result<u64, GprError> {
        self.get(index_of(name)?)
    }
}

impl<S: XstateWrite + ?Sized> Gprs<'_, S> {
    /// Sets GPR `index` (0..32); r16..r31 make APX live (XSTATE_BV\[19\]
    /// set), so that `KVM_SET_XSAVE` loads them.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); on error nothing is changed.
    pub fn set(&mut self, index: usize, value: u64) -> Result<(), GprError> {
        match index {
            0..=15 => {
                *slot_mut(self.regs, index) = value;
                Ok(())
            }
            16..=31 => {
                self.egprs.check()?;
                Ok(self.xstate.set_r(index, value)?)
            }
            _ => Err(GprError::NoRegister(index)),
        }
    }

    /// Sets a GPR by name.
    ///
    /// # Errors
    ///
    /// As [`get_by_name`](Self::get_by_name).
    pub fn set_by_name(&mut self, name: &str, value: u64) -> Result<(), GprError> {
        self.set(index_of(name)?, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::catalog;
    use crate::{ComponentId, Xfeatures, XsaveView};

    #[test]
    fn r16_to_r31_follow_apx_init_rules() {
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        let mut buf = vec![0x77u8; dmr.standard_size() as usize];
        buf[512..576].fill(0);
        let mut view = XsaveView::new(&mut buf[..], dmr).unwrap();
        let mut regs = kvm_regs::default();
        let egprs = Egprs::for_state(dmr, dmr.xcr0_supported());
        let mut g = Gprs::new(&mut regs, &mut view, egprs);
        for i in 16..32 {
            assert_eq!(g.get(i).unwrap(), 0, "r{i} reads 0 while APX is init");
        }
        g.set(17, 0xabc).unwrap();
        assert_eq!(g.get(17).unwrap(), 0xabc);
        assert_eq!(g.get(16).unwrap(), 0, "the rest of APX initialized");
        for (i, name) in GPR_NAMES.iter().enumerate() {
            assert_eq!(index_of(name), Ok(i));
            g.set_by_name(name, i as u64 + 1).unwrap();
            assert_eq!(g.get(i).unwrap(), i as u64 + 1);
        }
        assert!(view.is_live(ComponentId::APX));
    }

    #[test]
    fn r16_where_egprs_do_not_exist_is_an_error_and_changes_nothing() {
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        let mut buf = vec![0u8; dmr.standard_size() as usize];
        let mut view = XsaveView::new(&mut buf[..], dmr).unwrap();
        let mut regs = kvm_regs::default();
        // An APX layout, a KVM without APX.
        let guest_xcr0 = Xfeatures::from_bits(0x602e7);
        let egprs = Egprs::for_kvm(dmr, guest_xcr0, Xfeatures::from_bits(0x80007));
        let mut g = Gprs::new(&mut regs, &mut view, egprs);
        let e = g.get(16).unwrap_err();
        assert_eq!(e, GprError::Egprs(ApxError::NotOfferedByKvm { guest_xcr0 }));
        assert!(
            e.to_string().contains("KVM offers guests XCR0 0x602e7"),
            "{e}"
        );
        assert_eq!(g.set(31, 1).unwrap_err(), e);
        assert!(
            !view.is_live(ComponentId::APX),
            "a refused write changes nothing"
        );
        let mut g = Gprs::new(&mut regs, &mut view, egprs);
        assert_eq!(g.get(32), Err(GprError::NoRegister(32)));
        assert_eq!(
            g.get_by_name("r32"),
            Err(GprError::UnknownName("r32".into()))
        );
        g.set_by_name("r15", 9).unwrap();
        assert_eq!(regs.r15, 9);
    }

    #[test]
    fn a_state_without_apx_still_refuses_r16() {
        // The decision said "present" but the state's layout has no APX:
        // the state's own error, not a zero.
        let zen4 = catalog::get("amd-zen4").unwrap();
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        let mut buf = vec![0u8; 4096];
        let mut view = XsaveView::new(&mut buf[..], zen4).unwrap();
        let mut regs = kvm_regs::default();
        let g = Gprs::new(
            &mut regs,
            &mut view,
            Egprs::for_state(dmr, dmr.xcr0_supported()),
        );
        assert!(matches!(
            g.get(16),
            Err(GprError::Access(AccessError::NoComponent {
                component: ComponentId::APX,
                ..
            }))
        ));
    }
}
