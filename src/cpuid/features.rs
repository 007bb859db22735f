//! Which CPUID feature flags and leaves advertise which XSAVE state
//! components, and how to take components away from a CPUID.
//!
//! [`GROUPS`] is the one table: each row is a set of components that go
//! together, the components it cannot live without, the feature flags that
//! advertise it (and of those, the ones that make it usable) and the leaves
//! that only describe it. Every bit number was
//! checked against the source named beside it:
//!
//! - "SDM": Intel SDM Vol. 2A, CPUID instruction, leaves 01H, 07H, 0DH, 12H.
//! - "cpufeatures.h": Linux `arch/x86/include/asm/cpufeatures.h` (words 4, 9,
//!   12, 16, 18: leaf 1 ECX, 7.0 EBX, 7.1 EAX, 7.0 ECX, 7.0 EDX).
//! - "reverse_cpuid.h": KVM `arch/x86/kvm/reverse_cpuid.h` (leaf 7.1 EDX,
//!   which Linux proper does not keep).
//! - "cpuid-deps.c": Linux `arch/x86/kernel/cpu/cpuid-deps.c`, the
//!   feature-to-feature dependencies (what masking a flag must also mask).
//! - "QEMU": `target/i386/cpu.c`, `x86_ext_save_areas[]` (component to
//!   feature) and `feature_dependencies[]` (feature to leaf).
//!
//! The table and [`closure`] need no allocation; with `alloc`, [`plan`]
//! turns a set of components to exclude into register masks and leaves to
//! drop, and [`apply`] carries it out on a [`CpuidSet`].

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use super::bit::{FeatureBit, Reg};
#[cfg(feature = "alloc")]
use super::leaf_d;
#[cfg(feature = "alloc")]
use super::set::CpuidSet;
use crate::component::{ComponentId, Xfeatures};
use Reg::{Eax, Ebx, Ecx, Edx};

const fn f(name: &'static str, leaf: u32, sub: u32, reg: Reg, bit: u8) -> FeatureBit {
    FeatureBit::new(name, leaf, sub, reg, bit)
}

// Flags other modules name. Source: cpufeatures.h word 4 (leaf 1 ECX).
/// XSAVE/XRSTOR/XSETBV/XGETBV supported: `CPUID.1:ECX[26]`.
pub const XSAVE: FeatureBit = f("XSAVE", 1, 0, Ecx, 26);
/// The OS has set CR4.OSXSAVE: `CPUID.1:ECX[27]`.
pub const OSXSAVE: FeatureBit = f("OSXSAVE", 1, 0, Ecx, 27);
/// AVX: `CPUID.1:ECX[28]`.
pub const AVX: FeatureBit = f("AVX", 1, 0, Ecx, 28);
// Source: cpufeatures.h word 10 (leaf 0xD sub-leaf 1 EAX).
/// XSAVEOPT: `CPUID.(0xD,1):EAX[0]`.
pub const XSAVEOPT: FeatureBit = f("XSAVEOPT", 0xd, 1, Eax, 0);
/// XSAVEC (compacted format): `CPUID.(0xD,1):EAX[1]`.
pub const XSAVEC: FeatureBit = f("XSAVEC", 0xd, 1, Eax, 1);
/// XGETBV with ECX=1: `CPUID.(0xD,1):EAX[2]`.
pub const XGETBV1: FeatureBit = f("XGETBV1", 0xd, 1, Eax, 2);
/// XSAVES/XRSTORS and IA32_XSS: `CPUID.(0xD,1):EAX[3]`.
pub const XSAVES: FeatureBit = f("XSAVES", 0xd, 1, Eax, 3);
/// Extended feature disable (IA32_XFD): `CPUID.(0xD,1):EAX[4]`.
pub const XFD: FeatureBit = f("XFD", 0xd, 1, Eax, 4);
// Source: cpufeatures.h words 9, 16, 18 (leaf 7.0 EBX, ECX, EDX).
/// AVX512F: `CPUID.(7,0):EBX[16]`.
pub const AVX512F: FeatureBit = f("AVX512F", 7, 0, Ebx, 16);
/// MPX: `CPUID.(7,0):EBX[14]`.
pub const MPX: FeatureBit = f("MPX", 7, 0, Ebx, 14);
/// Protection keys for user pages: `CPUID.(7,0):ECX[3]`.
pub const PKU: FeatureBit = f("PKU", 7, 0, Ecx, 3);
/// The OS has set CR4.PKE: `CPUID.(7,0):ECX[4]`.
pub const OSPKE: FeatureBit = f("OSPKE", 7, 0, Ecx, 4);
/// CET shadow stacks: `CPUID.(7,0):ECX[7]`.
pub const CET_SS: FeatureBit = f("CET_SS", 7, 0, Ecx, 7);
/// CET indirect branch tracking: `CPUID.(7,0):EDX[20]`.
pub const CET_IBT: FeatureBit = f("CET_IBT", 7, 0, Edx, 20);
/// Intel processor trace: `CPUID.(7,0):EBX[25]`.
pub const INTEL_PT: FeatureBit = f("INTEL_PT", 7, 0, Ebx, 25);
/// Architectural LBRs: `CPUID.(7,0):EDX[19]`.
pub const ARCH_LBR: FeatureBit = f("ARCH_LBR", 7, 0, Edx, 19);
/// User interrupts: `CPUID.(7,0):EDX[5]`.
pub const UINTR: FeatureBit = f("UINTR", 7, 0, Edx, 5);
/// AMX-BF16: `CPUID.(7,0):EDX[22]`.
pub const AMX_BF16: FeatureBit = f("AMX-BF16", 7, 0, Edx, 22);
/// AMX-TILE: `CPUID.(7,0):EDX[24]`.
pub const AMX_TILE: FeatureBit = f("AMX-TILE", 7, 0, Edx, 24);
/// AMX-INT8: `CPUID.(7,0):EDX[25]`.
pub const AMX_INT8: FeatureBit = f("AMX-INT8", 7, 0, Edx, 25);
// Source: cpufeatures.h word 12 (leaf 7.1 EAX).
/// AMX-FP16: `CPUID.(7,1):EAX[21]`.
pub const AMX_FP16: FeatureBit = f("AMX-FP16", 7, 1, Eax, 21);
// Source: reverse_cpuid.h (leaf 7.1 EDX), KVM APX series for bit 21.
/// APX_F: `CPUID.(7,1):EDX[21]`.
pub const APX_F: FeatureBit = f("APX_F", 7, 1, Edx, 21);

/// Components that go together in and out of a CPUID, with what
/// advertises them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentGroup {
    /// Display name.
    pub name: &'static str,
    /// The components, excluded all together.
    pub components: Xfeatures,
    /// Components this group needs: excluding any of them excludes it too.
    pub requires: Xfeatures,
    /// Feature flags that advertise the group: cleared when it goes, and
    /// each one set needs every component of the group supported.
    pub features: &'static [FeatureBit],
    /// The flags that make the components usable (a subset of
    /// `features`): with all of them clear no OS enables the components, so
    /// a CPUID that offers the components needs at least one of them set.
    /// Source: Linux `xsave_cpuid_features[]` in
    /// `arch/x86/kernel/fpu/xstate.c` (a component whose flag is clear is
    /// turned off), KVM `kvm_setup_xss_caps()` for CET (either SHSTK or IBT
    /// keeps CET_U/CET_S), QEMU `x86_ext_save_areas[]`.
    pub enabled_by: &'static [FeatureBit],
    /// Leaves that describe only this group: dropped when it goes.
    pub leaves: &'static [u32],
}

/// The table: XSAVE components to the CPUID flags and leaves that advertise
/// them. Components not listed (x87, SSE, PASID, HDC, HWP, numbers
/// past 19) have no flag of their own here; excluding one still clears its
/// XCR0/IA32_XSS/SGX XFRM bit and drops its leaf 0xD sub-leaf.
pub static GROUPS: &[ComponentGroup] = &[
    // AVX (YMM_Hi128). Source: SDM (leaf 1 ECX 12, 28, 29; 7.0 EBX 5; 7.0 ECX
    // 9, 10; 7.1 EAX 4, 23; 7.1 EDX 4, 5, 10), cpufeatures.h words 4, 9, 12,
    // 16, reverse_cpuid.h for 7.1 EDX; cpuid-deps.c: FMA, VAES, VPCLMULQDQ,
    // AVX2, AVX-VNNI and AVX512F depend on AVX; QEMU x86_ext_save_areas: AVX
    // enables component 2. cpuid-deps.c ties F16C to SSE2 only, but F16C is
    // VEX-encoded and the SDM (Vol. 1 §14.4.1) has software check XCR0[2:1]
    // = 11b before using it, so it goes with AVX state. AVX-IFMA,
    // AVX-VNNI-INT8, AVX-NE-CONVERT and AVX-VNNI-INT16 are VEX-only (SDM
    // Vol. 2) and go with AVX for the same reason, as do SHA512, SM3 and
    // SM4 (7.1 EAX 0-2, cpufeatures.h word 12): VEX-encoded instructions
    // raise #UD unless XCR0[2:1] = 11b (SDM Vol. 2A §2.8, exception
    // conditions for VEX-encoded instructions).
    ComponentGroup {
        name: "AVX",
        components: Xfeatures::from_bits(1 << 2),
        requires: Xfeatures::EMPTY,
        features: &[
            f("FMA", 1, 0, Ecx, 12),
            AVX,
            f("F16C", 1, 0, Ecx, 29),
            f("AVX2", 7, 0, Ebx, 5),
            f("VAES", 7, 0, Ecx, 9),
            f("VPCLMULQDQ", 7, 0, Ecx, 10),
            f("SHA512", 7, 1, Eax, 0),
            f("SM3", 7, 1, Eax, 1),
            f("SM4", 7, 1, Eax, 2),
            f("AVX-VNNI", 7, 1, Eax, 4),
            f("AVX-IFMA", 7, 1, Eax, 23),
            f("AVX-VNNI-INT8", 7, 1, Edx, 4),
            f("AVX-NE-CONVERT", 7, 1, Edx, 5),
            f("AVX-VNNI-INT16", 7, 1, Edx, 10),
        ],
        enabled_by: &[AVX],
        leaves: &[],
    },
    // MPX (BNDREGS, BNDCSR). Source: SDM, cpufeatures.h word 9 (7.0 EBX 14);
    // QEMU x86_ext_save_areas: MPX enables components 3 and 4.
    ComponentGroup {
        name: "MPX",
        components: Xfeatures::from_bits(0b11 << 3),
        requires: Xfeatures::EMPTY,
        features: &[MPX],
        enabled_by: &[MPX],
        leaves: &[],
    },
    // AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM). Source: SDM and cpufeatures.h
    // words 9, 16, 18, 12 for every bit; cpuid-deps.c: AVX512F depends on
    // AVX and every other AVX-512 flag on AVX512F (directly or through
    // AVX512VL/BW); QEMU x86_ext_save_areas: AVX512F enables components
    // 5-7. AVX10 (7.1 EDX 19, reverse_cpuid.h) is AVX-512's successor
    // enumeration and uses the same state (KVM advertises it only with
    // XCR0[7:5]); QEMU feature_dependencies: AVX10 -> leaf 0x24 whole.
    ComponentGroup {
        name: "AVX-512",
        components: Xfeatures::from_bits(0b111 << 5),
        requires: ComponentId::AVX.bit(),
        features: &[
            AVX512F,
            f("AVX512DQ", 7, 0, Ebx, 17),
            f("AVX512IFMA", 7, 0, Ebx, 21),
            f("AVX512PF", 7, 0, Ebx, 26),
            f("AVX512ER", 7, 0, Ebx, 27),
            f("AVX512CD", 7, 0, Ebx, 28),
            f("AVX512BW", 7, 0, Ebx, 30),
            f("AVX512VL", 7, 0, Ebx, 31),
            f("AVX512VBMI", 7, 0, Ecx, 1),
            f("AVX512_VBMI2", 7, 0, Ecx, 6),
            f("AVX512_VNNI", 7, 0, Ecx, 11),
            f("AVX512_BITALG", 7, 0, Ecx, 12),
            f("AVX512_VPOPCNTDQ", 7, 0, Ecx, 14),
            f("AVX512_4VNNIW", 7, 0, Edx, 2),
            f("AVX512_4FMAPS", 7, 0, Edx, 3),
            f("AVX512_VP2INTERSECT", 7, 0, Edx, 8),
            f("AVX512_FP16", 7, 0, Edx, 23),
            f("AVX512_BF16", 7, 1, Eax, 5),
            f("AVX10", 7, 1, Edx, 19),
        ],
        enabled_by: &[AVX512F],
        leaves: &[0x24],
    },
    // Processor trace (supervisor). Source: SDM, cpufeatures.h word 9
    // (7.0 EBX 25, INTEL_PT); QEMU feature_dependencies: INTEL_PT -> leaf
    // 0x14 sub-leaves 0 and 1 whole.
    ComponentGroup {
        name: "PT",
        components: Xfeatures::from_bits(1 << 8),
        requires: Xfeatures::EMPTY,
        features: &[INTEL_PT],
        enabled_by: &[INTEL_PT],
        leaves: &[0x14],
    },
    // PKRU. Source: SDM, cpufeatures.h word 16 (7.0 ECX 3 PKU, 4 OSPKE);
    // QEMU x86_ext_save_areas: PKU enables component 9. Linux ties PKRU to
    // OSPKE, which mirrors CR4.PKE (an OS flag): the CPU's own is PKU.
    ComponentGroup {
        name: "PKRU",
        components: Xfeatures::from_bits(1 << 9),
        requires: Xfeatures::EMPTY,
        features: &[PKU, OSPKE],
        enabled_by: &[PKU],
        leaves: &[],
    },
    // CET_U and CET_S (supervisor). Source: SDM and cpufeatures.h (7.0 ECX 7
    // SHSTK, 7.0 EDX 20 IBT; 7.1 EDX 18 CET_SSS from the SDM); KVM
    // kvm_setup_xss_caps(): SHSTK and IBT are cleared unless IA32_XSS has
    // both CET_U and CET_S, so the two components go together.
    ComponentGroup {
        name: "CET",
        components: Xfeatures::from_bits(0b11 << 11),
        requires: Xfeatures::EMPTY,
        features: &[CET_SS, CET_IBT, f("CET_SSS", 7, 1, Edx, 18)],
        enabled_by: &[CET_SS, CET_IBT],
        leaves: &[],
    },
    // UINTR (supervisor). Source: SDM (7.0 EDX 5 UINTR; leaf 0DH: component
    // 14 is UINTR state); cpufeatures.h word 18 (X86_FEATURE_UINTR).
    ComponentGroup {
        name: "UINTR",
        components: Xfeatures::from_bits(1 << 14),
        requires: Xfeatures::EMPTY,
        features: &[UINTR],
        enabled_by: &[UINTR],
        leaves: &[],
    },
    // Architectural LBRs (supervisor). Source: SDM (7.0 EDX 19, leaf 0x1C
    // enumerates arch LBR), cpufeatures.h word 18 (ARCH_LBR); QEMU
    // x86_ext_save_areas: ARCH_LBR enables component 15.
    ComponentGroup {
        name: "Arch LBR",
        components: Xfeatures::from_bits(1 << 15),
        requires: Xfeatures::EMPTY,
        features: &[ARCH_LBR],
        enabled_by: &[ARCH_LBR],
        leaves: &[0x1c],
    },
    // AMX (TILECFG, TILEDATA). Source: SDM, cpufeatures.h words 18, 12
    // (7.0 EDX 22, 24, 25; 7.1 EAX 21), reverse_cpuid.h (7.1 EDX 8
    // AMX-COMPLEX); cpuid-deps.c: AMX-FP16, AMX-BF16, AMX-INT8 depend on
    // AMX-TILE (not on AVX); QEMU x86_ext_save_areas: AMX-TILE enables
    // components 17-18; QEMU feature_dependencies: AMX-TILE -> leaves 0x1D
    // and 0x1E whole.
    ComponentGroup {
        name: "AMX",
        components: Xfeatures::from_bits(0b11 << 17),
        requires: Xfeatures::EMPTY,
        features: &[
            AMX_BF16,
            AMX_TILE,
            AMX_INT8,
            AMX_FP16,
            f("AMX-COMPLEX", 7, 1, Edx, 8),
        ],
        enabled_by: &[AMX_TILE],
        leaves: &[0x1d, 0x1e],
    },
    // APX (EGPRs r16-r31). Source: Intel APX architecture specification
    // (7.1 EDX 21 APX_F, leaf 0x29 APX sub-features), KVM APX series
    // (reverse_cpuid.h KVM_X86_FEATURE_APX = 7.1 EDX 21; leaf 0x29).
    ComponentGroup {
        name: "APX",
        components: Xfeatures::from_bits(1 << 19),
        requires: Xfeatures::EMPTY,
        features: &[APX_F],
        enabled_by: &[APX_F],
        leaves: &[0x29],
    },
];

/// Registers that hold one bit per component, cleared for every excluded
/// component: `(leaf, sub-leaf, register for bits 0-31, register for bits
/// 32-63)`.
pub const COMPONENT_BITMAPS: [(u32, u32, Reg, Reg); 3] = [
    // XCR0 bits supported. Source: SDM leaf 0DH sub-leaf 0 (EDX:EAX).
    (0xd, 0, Eax, Edx),
    // IA32_XSS bits supported. Source: SDM leaf 0DH sub-leaf 1 (EDX:ECX).
    (0xd, 1, Ecx, Edx),
    // SGX enclave XFRM: XCR0 values an enclave may use (SECS.ATTRIBUTES bits
    // 127:64). Source: SDM leaf 12H sub-leaf 1 (ECX = XFRM[31:0], EDX =
    // XFRM[63:32]).
    (0x12, 1, Ecx, Edx),
];

/// The flags that say the XSAVE feature set itself exists: cleared for a
/// guest of a pool with a host that has no XSAVE (a legacy-only host).
/// Source: SDM leaf 01H ECX bits 26 and 27.
pub const XSAVE_FLAGS: [FeatureBit; 2] = [XSAVE, OSXSAVE];

/// Flags that mirror a control register the OS sets (CR4.OSXSAVE,
/// CR4.PKE) rather than what the CPU can do: KVM recomputes them from the
/// guest's CR4 at run time, so a host's dump says nothing about them.
/// Source: SDM leaf 01H `ECX[27]` and leaf 07H `ECX[4]`; KVM
/// `kvm_update_cpuid_runtime()`.
pub const OS_FLAGS: [FeatureBit; 2] = [OSXSAVE, OSPKE];

/// Every feature flag of the table and [`XSAVE_FLAGS`] that `mask` clears.
pub fn flags_in(mask: &FeatureMask) -> impl Iterator<Item = &'static FeatureBit> + '_ {
    GROUPS
        .iter()
        .flat_map(|g| g.features.iter())
        .chain(XSAVE_FLAGS.iter())
        .filter(move |b| {
            (b.leaf, b.subleaf, b.register) == (mask.leaf, mask.subleaf, mask.register)
                && mask.clear & b.mask() != 0
        })
}

/// The group `component` belongs to, if the table has one for it.
pub fn group_of(component: ComponentId) -> Option<&'static ComponentGroup> {
    GROUPS.iter().find(|g| g.components.contains(component))
}

/// `excluded` grown to whole groups and to every group that needs an
/// excluded component, applied until nothing changes: excluding AVX
/// excludes AVX-512 too; excluding ZMM_Hi256 excludes opmask and Hi16_ZMM.
///
/// ```
/// use xstate::cpuid::features::closure;
/// use xstate::ComponentId;
/// assert_eq!(closure(ComponentId::AVX.bit()).bits(), 0xe4);
/// assert_eq!(closure(ComponentId::TILEDATA.bit()).bits(), 0b11 << 17);
/// ```
pub fn closure(excluded: Xfeatures) -> Xfeatures {
    let mut out = excluded;
    loop {
        let before = out;
        for g in GROUPS {
            if out.intersects(g.components | g.requires) {
                out |= g.components;
            }
        }
        if out == before {
            return out;
        }
    }
}

/// Bits to clear in one register of one sub-leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeatureMask {
    /// Leaf.
    pub leaf: u32,
    /// Sub-leaf (0 for leaves that are not indexed).
    pub subleaf: u32,
    /// The register.
    pub register: Reg,
    /// The bits to clear.
    pub clear: u32,
}

/// Adds `clear` to the mask of `(leaf, subleaf, register)` in `masks`.
#[cfg(feature = "alloc")]
pub(crate) fn add_mask(
    masks: &mut Vec<FeatureMask>,
    leaf: u32,
    subleaf: u32,
    register: Reg,
    clear: u32,
) {
    if clear == 0 {
        return;
    }
    match masks
        .iter_mut()
        .find(|m| (m.leaf, m.subleaf, m.register) == (leaf, subleaf, register))
    {
        Some(m) => m.clear |= clear,
        None => masks.push(FeatureMask {
            leaf,
            subleaf,
            register,
            clear,
        }),
    }
}

/// What excluding a set of components does to a CPUID.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskPlan {
    /// The components excluded: the request plus the rest of its groups and
    /// the groups that need them ([`closure`]).
    pub excluded: Xfeatures,
    /// Bits to clear, one entry per register, sorted by leaf, sub-leaf, register.
    pub masks: Vec<FeatureMask>,
    /// Leaves to drop whole, ascending.
    pub drop_leaves: Vec<u32>,
    /// Leaf 0xD sub-leaves to drop (`(0xd, component)`), ascending.
    pub drop_subleaves: Vec<(u32, u32)>,
}

/// Why components cannot be excluded.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeatureError {
    /// x87 and SSE are the legacy region every XSAVE area has.
    #[error("x87 and SSE (components 0 and 1) cannot be excluded (asked: {excluded})")]
    Legacy {
        /// The requested set.
        excluded: Xfeatures,
    },
}

/// The masks and drops that take `excluded` (and its [`closure`]) out of a
/// CPUID: the groups' feature flags, the components' bits in XCR0, IA32_XSS
/// and SGX XFRM, the groups' leaves and the components' leaf 0xD sub-leaves.
///
/// # Errors
///
/// [`FeatureError::Legacy`] when `excluded` has x87 or SSE.
#[cfg(feature = "alloc")]
pub fn plan(excluded: Xfeatures) -> Result<MaskPlan, FeatureError> {
    if excluded.intersects(Xfeatures::LEGACY) {
        return Err(FeatureError::Legacy { excluded });
    }
    let excluded = closure(excluded);
    let mut masks: Vec<FeatureMask> = Vec::new();
    let mut drop_leaves = Vec::new();
    for g in GROUPS.iter().filter(|g| g.components.intersects(excluded)) {
        for b in g.features {
            add_mask(&mut masks, b.leaf, b.subleaf, b.register, b.mask());
        }
        drop_leaves.extend_from_slice(g.leaves);
    }
    for (leaf, sub, lo, hi) in COMPONENT_BITMAPS {
        add_mask(&mut masks, leaf, sub, lo, excluded.bits() as u32);
        add_mask(&mut masks, leaf, sub, hi, (excluded.bits() >> 32) as u32);
    }
    masks.sort();
    drop_leaves.sort_unstable();
    drop_leaves.dedup();
    let drop_subleaves = excluded
        .iter()
        .map(|c| (0xd, u32::from(c.index())))
        .collect();
    Ok(MaskPlan {
        excluded,
        masks,
        drop_leaves,
        drop_subleaves,
    })
}

/// Takes `excluded` (and its [`closure`]) out of `set` as [`plan`] says, and
/// returns the plan. Masks on absent entries are skipped (a sub-leaf is
/// looked up exactly: on a leaf that is not indexed only sub-leaf 0
/// exists). When leaf 0xD's XCR0 or IA32_XSS bits change, its sizes are
/// recomputed the way KVM's `KVM_GET_SUPPORTED_CPUID` reports them:
/// sub-leaf 0 EBX = ECX = the standard-format size of the XCR0 bits left,
/// sub-leaf 1 EBX = the compacted size of the XCR0 and IA32_XSS bits left
/// when XSAVEC or XSAVES is advertised.
///
/// # Errors
///
/// [`FeatureError::Legacy`] as [`plan`]; `set` is then unchanged.
#[cfg(feature = "alloc")]
pub fn apply(set: &mut CpuidSet, excluded: Xfeatures) -> Result<MaskPlan, FeatureError> {
    let plan = plan(excluded)?;
    let before = (set.xcr0_supported(), set.xss_supported());
    set.clear_masks(&plan.masks);
    for &leaf in &plan.drop_leaves {
        set.remove_leaf(leaf);
    }
    for &(leaf, sub) in &plan.drop_subleaves {
        if set.entry(leaf, sub).is_some() {
            set.remove(leaf, sub);
        }
    }
    if (set.xcr0_supported(), set.xss_supported()) != before {
        leaf_d::refresh_sizes(set);
    }
    Ok(plan)
}
