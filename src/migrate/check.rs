//! Whether a state can go to a destination CPU, with every reason it cannot.

use crate::component::{self, name_of};
use crate::{Format, Layout, RegisterFile};

/// One reason a state cannot be restored at a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// A live component the destination lacks.
    MissingComponent {
        /// The component.
        index: u8,
    },
    /// A live component whose size differs at the destination.
    SizeDiffers {
        /// The component.
        index: u8,
        /// Its size in the state.
        state: usize,
        /// Its size at the destination.
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
            Incompatibility::MissingComponent { index } => {
                write!(f, "{} (component {index}) is live but the destination lacks it", name_of(*index))
            }
            Incompatibility::SizeDiffers { index, state, destination } => write!(
                f,
                "{} (component {index}) is {state} bytes in the state, {destination} at the destination",
                name_of(*index)
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
/// `destination`, not just the first.
///
/// ```
/// use xstate::layout::catalog;
/// use xstate::migrate::check;
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
    for i in component::bits(state.xstate_bv()) {
        let size = state.component(i).map_or(0, <[u8]>::len);
        match destination.geometry(i) {
            None => out.push(Incompatibility::MissingComponent { index: i }),
            Some(g) if i >= 2 && g.size as usize != size => {
                out.push(Incompatibility::SizeDiffers {
                    index: i,
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

#[cfg(target_arch = "x86_64")]
fn kvm_would_accept(state: &RegisterFile, destination: &Layout) -> bool {
    use crate::kvm::{preflight, SetXsaveRules};
    let size = (destination.standard_size() as usize).max(4096);
    let mut buf = vec![0u8; size];
    if state
        .encode_into(&mut buf, destination, Format::Standard, 0)
        .is_err()
    {
        return false;
    }
    let rules = SetXsaveRules {
        guest_xcr0: destination.xcr0_supported(),
        mxcsr_mask: destination.mxcsr_mask(),
        size,
    };
    preflight(&buf, &rules).is_ok()
}

#[cfg(not(target_arch = "x86_64"))]
fn kvm_would_accept(state: &RegisterFile, destination: &Layout) -> bool {
    state.encode(destination, Format::Standard).is_ok()
}
