//! The guest in the picture: which components a vCPU's state may carry to
//! a destination, from its XCR0, its CPU model, IA32_XSS and IA32_XFD.
//!
//! A host's state can leak into a guest's: KVM on Linux before 6.6 could
//! report the host's PKRU in the XSAVE area of a guest whose CPU model has
//! no PKU, and such a state then fails on a destination without PKU. And a
//! guest that disabled AMX tile data in IA32_XFD has no tile state: XSAVE
//! saves that component as init, and `KVM_SET_XSAVE` drops it. [`Guest::mask`]
//! applies both, as the hardware and KVM do, and reports every component it
//! masks: nothing is dropped silently.
//!
//! ```
//! use xstate::migrate::{Guest, MaskReason};
//! use xstate::prelude::*;
//! use xstate::{ComponentId, RegisterFile, Xfeatures};
//!
//! let mut state = RegisterFile::new();
//! state.set_xmm(0, 1).unwrap();
//! state.set_pkru(0x5555_5554).unwrap(); // leaked from the host
//! let guest = Guest { model_xcr0: Some(Xfeatures::from_bits(0x7)), ..Guest::default() };
//! let masked = guest.mask(&mut state);
//! assert_eq!(masked[0].component, ComponentId::PKRU);
//! assert!(matches!(masked[0].reason, MaskReason::NotInModel { .. }));
//! assert!(!state.is_live(ComponentId::PKRU));
//! ```

use alloc::vec::Vec;

use crate::access::XstateRead;
use crate::component::{ComponentId, Xfeatures};
use crate::xregs::XstateRegisters;
use crate::RegisterFile;

/// What is known of a guest: each part limits the components its state
/// may carry; `None` (or empty XFD) limits nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guest {
    /// The vCPU's XCR0 (from `KVM_GET_XCRS`, a v2 stream, or given).
    pub xcr0: Option<Xfeatures>,
    /// The XCR0 bits the guest's CPU model exposes (leaf 0xD sub-leaf 0
    /// EDX:EAX of its CPUID).
    pub model_xcr0: Option<Xfeatures>,
    /// The vCPU's IA32_XSS.
    pub xss: Option<Xfeatures>,
    /// The vCPU's IA32_XFD: components disabled, saved as init.
    pub xfd: Xfeatures,
}

impl Guest {
    /// The guest a vCPU's registers describe (its XCR0, IA32_XSS and
    /// IA32_XFD), its CPU model unknown.
    pub fn from_registers(regs: &XstateRegisters) -> Guest {
        Guest {
            xcr0: Some(regs.xcr0),
            model_xcr0: None,
            xss: Some(regs.xss),
            xfd: regs.xfd,
        }
    }

    /// Whether nothing is known (no part limits anything).
    pub fn is_unknown(&self) -> bool {
        *self == Guest::default()
    }

    /// Why `component` may not be live in this guest's state, if it may not.
    pub fn excludes(&self, component: ComponentId) -> Option<MaskReason> {
        if component.is_legacy() {
            // x87 and SSE are always enabled and never XFD-capable.
            return None;
        }
        let supervisor = component.info().is_some_and(|i| i.supervisor);
        if supervisor {
            if let Some(xss) = self.xss.filter(|x| !x.contains(component)) {
                return Some(MaskReason::NotInXss { xss });
            }
        } else {
            if let Some(model) = self.model_xcr0.filter(|m| !m.contains(component)) {
                return Some(MaskReason::NotInModel { model_xcr0: model });
            }
            // PKRU is reachable with CR4.PKE alone (RDPKRU and WRPKRU do
            // not look at XCR0): it is real state whatever the vCPU's XCR0.
            if let Some(xcr0) = self
                .xcr0
                .filter(|x| !x.contains(component) && component != ComponentId::PKRU)
            {
                return Some(MaskReason::NotInXcr0 { xcr0 });
            }
        }
        if self.xfd.contains(component) {
            return Some(MaskReason::XfdDisabled { xfd: self.xfd });
        }
        None
    }

    /// Puts every live component of `state` the guest cannot hold in its
    /// init configuration, as the hardware and KVM would, and says which
    /// and why.
    pub fn mask(&self, state: &mut RegisterFile) -> Vec<Masking> {
        let mut out = Vec::new();
        for component in state.xstate_bv() {
            if let Some(reason) = self.excludes(component) {
                state.set_init(component);
                out.push(Masking { component, reason });
            }
        }
        out
    }
}

/// Why a component was masked out of a guest's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskReason {
    /// The guest's CPU model does not expose it (a host's state leaked in).
    NotInModel {
        /// The CPU model's XCR0 bits.
        model_xcr0: Xfeatures,
    },
    /// The vCPU's XCR0 does not enable it.
    NotInXcr0 {
        /// The vCPU's XCR0.
        xcr0: Xfeatures,
    },
    /// The vCPU's IA32_XSS does not enable it.
    NotInXss {
        /// The vCPU's IA32_XSS.
        xss: Xfeatures,
    },
    /// The guest disabled it in IA32_XFD: XSAVE saves it as init.
    XfdDisabled {
        /// The vCPU's IA32_XFD.
        xfd: Xfeatures,
    },
}

/// One component masked out of a state, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masking {
    /// The component, now in its init configuration.
    pub component: ComponentId,
    /// Why.
    pub reason: MaskReason,
}

impl core::fmt::Display for Masking {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = self.component;
        write!(f, "{c} (component {}) masked: ", c.index())?;
        match self.reason {
            MaskReason::NotInModel { model_xcr0 } => write!(
                f,
                "the guest's CPU model does not expose it (its XCR0 {model_xcr0})"
            ),
            MaskReason::NotInXcr0 { xcr0 } => {
                write!(f, "the vCPU's XCR0 {xcr0} does not enable it")
            }
            MaskReason::NotInXss { xss } => {
                write!(f, "the vCPU's IA32_XSS {xss} does not enable it")
            }
            MaskReason::XfdDisabled { xfd } => write!(
                f,
                "the guest disabled it in IA32_XFD {xfd}, so it is saved as init"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::XstateWrite;

    #[test]
    fn each_part_masks_and_says_why() {
        let mut state = RegisterFile::new();
        state.set_xmm(1, 7).unwrap();
        state.set_ymm(2, [1, 2]).unwrap();
        state.set_pkru(4).unwrap();
        state.set_tmm(0, &[1; 1024]).unwrap();
        state.set_tilecfg(&[0; 64]).unwrap();
        state.set_zmm(0, [1, 2, 3, 4]).unwrap();
        let guest = Guest {
            xcr0: Some(Xfeatures::from_bits(0x60007)),
            model_xcr0: Some(Xfeatures::from_bits(0x60207)),
            xss: None,
            xfd: ComponentId::TILEDATA.bit(),
        };
        let masked = guest.mask(&mut state);
        assert_eq!(
            masked,
            [
                Masking {
                    component: ComponentId::ZMM_HI256,
                    reason: MaskReason::NotInModel {
                        model_xcr0: Xfeatures::from_bits(0x60207)
                    }
                },
                Masking {
                    component: ComponentId::TILEDATA,
                    reason: MaskReason::XfdDisabled {
                        xfd: ComponentId::TILEDATA.bit()
                    }
                },
            ]
        );
        // PKRU stays: CR4.PKE reaches it outside XCR0.
        assert_eq!(state.xstate_bv().bits(), 0x20206);
        assert_eq!(state.xmm(1).unwrap(), 7);
        assert_eq!(
            masked[1].to_string(),
            "AMX TILEDATA (component 18) masked: the guest disabled it in IA32_XFD 0x40000, so it is saved as init"
        );
        // Nothing known: nothing masked.
        let mut again = state.clone();
        assert!(Guest::default().mask(&mut again).is_empty());
        assert_eq!(again, state);
    }
}
