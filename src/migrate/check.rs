//! Whether a state can go to a destination CPU, with every reason it cannot.

use alloc::vec;
use alloc::vec::Vec;

use crate::access::XstateRead;
use crate::component::{ComponentId, XcompBv};
use crate::preflight::{preflight, SetXsaveRules};
use crate::{Layout, RegisterFile};

/// One reason a state cannot be restored at a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// A live component the destination lacks.
    MissingComponent(ComponentId),
    /// A live component whose size differs at the destination.
    SizeDiffers {
        /// The component.
        component: ComponentId,
        /// Its size in bytes in the state.
        state: usize,
        /// Its size in bytes at the destination.
        destination: u32,
    },
    /// MXCSR bits the destination does not implement (AMD's bit 17 on Intel).
    Mxcsr {
        /// MXCSR.
        mxcsr: u32,
        /// The bits outside the mask.
        bad: u32,
        /// The destination's MXCSR mask.
        mask: u32,
    },
}

impl core::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Incompatibility::MissingComponent(c) => write!(
                f,
                "{c} (component {}) is live but the destination lacks it",
                c.index()
            ),
            Incompatibility::SizeDiffers {
                component,
                state,
                destination,
            } => write!(
                f,
                "{component} (component {}) is {state} bytes in the state, {destination} at the destination",
                component.index()
            ),
            Incompatibility::Mxcsr { mxcsr, bad, mask } => write!(
                f,
                "MXCSR {mxcsr:#x} has bits {bad:#x} outside the destination's MXCSR mask {mask:#x}"
            ),
        }
    }
}

/// The verdict of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Every incompatibility found (empty when the state can go).
    pub incompatibilities: Vec<Incompatibility>,
    /// Whether the state, laid out for the destination, passes the checks
    /// `KVM_SET_XSAVE` applies (header, XSTATE_BV within the destination's
    /// XCR0, MXCSR within its mask).
    pub kvm_set_xsave_ok: bool,
}

impl CheckReport {
    /// Whether the state can be restored at the destination.
    pub fn is_compatible(&self) -> bool {
        self.incompatibilities.is_empty() && self.kvm_set_xsave_ok
    }
}

/// Lists every reason `state` cannot be restored on a CPU with layout
/// `destination`, not just the first. The verdict is the same on every
/// build target: it is byte logic ([`preflight`]), no ioctl.
///
/// ```
/// use xstate::layout::catalog;
/// use xstate::migrate::check;
/// use xstate::prelude::*;
/// use xstate::RegisterFile;
///
/// let mut state = RegisterFile::new();
/// state.set_mxcsr(0x2_1F80).unwrap(); // AMD's misaligned-SSE mask bit
/// state.set_r(16, 1).unwrap();        // APX
/// let report = check(&state, catalog::get("intel-sapphire-rapids").unwrap());
/// assert_eq!(report.incompatibilities.len(), 2);
/// assert!(!report.is_compatible());
/// ```
pub fn check(state: &RegisterFile, destination: &Layout) -> CheckReport {
    let mut out = Vec::new();
    for c in state.xstate_bv() {
        let size = state.component(c).map_or(0, <[u8]>::len);
        match destination.geometry(c) {
            None => out.push(Incompatibility::MissingComponent(c)),
            Some(g) if !c.is_legacy() && g.size as usize != size => {
                out.push(Incompatibility::SizeDiffers {
                    component: c,
                    state: size,
                    destination: g.size,
                })
            }
            Some(_) => {}
        }
    }
    let mxcsr = state.mxcsr().unwrap_or(0x1F80);
    let bad = mxcsr & !destination.mxcsr_mask();
    if bad != 0 {
        out.push(Incompatibility::Mxcsr {
            mxcsr,
            bad,
            mask: destination.mxcsr_mask(),
        });
    }
    let kvm_set_xsave_ok = out.is_empty() && kvm_would_accept(state, destination);
    CheckReport {
        incompatibilities: out,
        kvm_set_xsave_ok,
    }
}

/// Whether the state, encoded for `destination` at a KVM-sized buffer,
/// passes the pre-flight rules with the destination CPU's XCR0 and mask.
fn kvm_would_accept(state: &RegisterFile, destination: &Layout) -> bool {
    let size = (destination.standard_size() as usize).max(4096);
    let mut buf = vec![0u8; size];
    if state
        .encode_into(&mut buf, destination, XcompBv::STANDARD)
        .is_err()
    {
        return false;
    }
    let rules = SetXsaveRules::new(destination.xcr0_supported(), destination.mxcsr_mask(), size);
    preflight(&buf, &rules).is_ok()
}
