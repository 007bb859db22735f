//! What the baseline gives a guest: leaf 0xD and the feature masks.

use alloc::string::String;
use alloc::vec::Vec;

use super::{ECX_XFD, XFD, XSAVEC, XSAVES};
use crate::area::EXTENDED_START;
use crate::component::{ComponentId, Xfeatures};
use crate::cpuid::features::{self, FeatureMask, XSAVE_FLAGS};
use crate::cpuid::Reg;
use crate::layout::{subleaf0, subleaf1, CpuidLeaf0xD, CpuidRegs};

/// The masks and leaves to drop that take from a guest CPUID everything
/// outside `kept` (outside leaf 0xD, which is replaced whole), and XSAVE
/// itself when `xsave` is false.
pub(super) fn masks_for(kept: Xfeatures, xsave: bool) -> (Vec<FeatureMask>, Vec<u32>) {
    let plan = features::plan(Xfeatures::ALL - Xfeatures::LEGACY - kept)
        .expect("legacy components are never excluded");
    let mut masks: Vec<FeatureMask> = plan.masks.into_iter().filter(|m| m.leaf != 0xd).collect();
    // SGX XFRM bit 63 is reserved, not a component: clear it too, so that
    // XFRM stays within what the baseline offers.
    features::add_mask(&mut masks, 0x12, 1, Reg::Edx, 1 << 31);
    if !xsave {
        for b in XSAVE_FLAGS {
            features::add_mask(&mut masks, b.leaf, b.subleaf, b.register, b.mask());
        }
    }
    masks.sort();
    (masks, plan.drop_leaves)
}

/// Leaf 0xD for `xcr0` and `xss`, each component's sub-leaf from
/// `subleaf` (a host's geometry, or a baseline's own sub-leaves), its sizes
/// computed from the sub-leaves emitted: sub-leaf i EAX = size, EBX =
/// standard offset, `ECX[1]` = 64-byte aligned, `ECX[2]` = XFD (cleared
/// without XFD in `eax`).
pub(super) fn leaf_0xd(
    vendor: Option<String>,
    subleaf: impl Fn(ComponentId) -> CpuidRegs,
    xcr0: Xfeatures,
    xss: Xfeatures,
    eax: u32,
) -> CpuidLeaf0xD {
    let mut leaf = CpuidLeaf0xD {
        vendor,
        ..CpuidLeaf0xD::default()
    };
    let mut standard = EXTENDED_START as u32;
    let mut compacted = EXTENDED_START as u32;
    for c in (xcr0 | xss).extended() {
        let mut regs = subleaf(c);
        if eax & XFD == 0 {
            regs.ecx &= !ECX_XFD;
        }
        if xcr0.contains(c) {
            standard = standard.max(regs.ebx.saturating_add(regs.eax));
        }
        if regs.ecx & 2 != 0 {
            compacted = compacted.next_multiple_of(64);
        }
        compacted = compacted.saturating_add(regs.eax);
        leaf.subleaves.insert(u32::from(c.index()), regs);
    }
    leaf.subleaves.insert(0, subleaf0(xcr0, standard));
    let compacted = if eax & (XSAVEC | XSAVES) != 0 {
        compacted
    } else {
        0
    };
    leaf.subleaves.insert(1, subleaf1(eax, compacted, xss));
    leaf
}

/// Leaf 0xD of a guest without XSAVE: XCR0 0x3, nothing else.
pub(super) fn legacy_leaf_0xd() -> CpuidLeaf0xD {
    let mut leaf = CpuidLeaf0xD::default();
    leaf.subleaves
        .insert(0, subleaf0(Xfeatures::LEGACY, EXTENDED_START as u32));
    leaf.subleaves.insert(1, CpuidRegs::default());
    leaf
}
