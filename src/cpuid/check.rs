//! Whether a CPUID is consistent with itself as far as XSAVE goes, in the
//! spirit of the CPUID checks in KVM's selftests: feature flags against the
//! XCR0 and IA32_XSS bits of leaf 0xD both ways (a flag needs its
//! components, a component needs a flag that makes it usable), XCR0 and
//! IA32_XSS against the architecture's rules, the leaf 0xD sizes against its
//! offsets, AMX and XFD (and XFD only where it may apply), APX and MPX.

use alloc::vec::Vec;
use core::fmt;

use super::bit::{FeatureBit, Reg};
use super::features::{self, GROUPS};
use super::leaf_d;
use super::set::CpuidSet;
use super::xcr0::{self, Violation};
use crate::component::{ComponentId, Xfeatures};
use crate::layout::LayoutError;

/// Feature flags that need another flag, from Linux
/// `arch/x86/kernel/cpu/cpuid-deps.c` (the rows about XSAVE and its
/// components), plus OSXSAVE -> XSAVE from the SDM (CR4.OSXSAVE can only be
/// set when XSAVE is supported). AMX-TILE -> XFD is checked on its own, as
/// [`Inconsistency::AmxWithoutXfd`].
const DEPENDENCIES: [(FeatureBit, FeatureBit); 16] = [
    (features::OSXSAVE, features::XSAVE),
    (features::XSAVEOPT, features::XSAVE),
    (features::XSAVEC, features::XSAVE),
    (features::XSAVES, features::XSAVE),
    (features::XGETBV1, features::XSAVE),
    (features::AVX, features::XSAVE),
    (features::MPX, features::XSAVE),
    (FeatureBit::new("PKU", 7, 0, Reg::Ecx, 3), features::XSAVE),
    (features::APX_F, features::XSAVE),
    (features::XFD, features::XSAVES),
    (features::XFD, features::XGETBV1),
    (features::AVX512F, features::AVX),
    (features::AMX_BF16, features::AMX_TILE),
    (features::AMX_INT8, features::AMX_TILE),
    (features::AMX_FP16, features::AMX_TILE),
    (features::CET_SS, features::XSAVES),
];

/// AMX TILEDATA: the component whose XFD support (sub-leaf `ECX[2]`) AMX needs.
const TILEDATA: ComponentId = ComponentId::TILEDATA;

/// One way a CPUID contradicts itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inconsistency {
    /// A feature flag is set but a component it needs is in neither the
    /// supported XCR0 nor the supported IA32_XSS.
    FeatureWithoutComponent {
        /// The flag.
        feature: FeatureBit,
        /// Its register's value.
        value: u32,
        /// The group the flag advertises ([`features::GROUPS`]).
        group: &'static str,
        /// The components of that group missing from XCR0 | IA32_XSS.
        missing: Xfeatures,
        /// XCR0 | IA32_XSS supported (leaf 0xD sub-leaf 0 EDX:EAX, sub-leaf 1 EDX:ECX).
        supported: Xfeatures,
    },
    /// Components are supported (in XCR0 or IA32_XSS) while every flag
    /// that makes them usable ([`features::ComponentGroup::enabled_by`]) is
    /// clear: no OS enables them, and a guest given them sees state its
    /// CPUID denies.
    ComponentWithoutFeature {
        /// The group ([`features::GROUPS`]).
        group: &'static str,
        /// The group's components that are supported.
        components: Xfeatures,
        /// They are enumerated in IA32_XSS rather than XCR0.
        supervisor: bool,
        /// The supported XCR0 (or IA32_XSS when `supervisor`).
        supported: Xfeatures,
        /// The flags, any one of which would do.
        flags: &'static [FeatureBit],
        /// The value of each flag's register, in `flags` order.
        values: Vec<u32>,
    },
    /// IA32_XSS bits are supported but XSAVES (leaf 0xD sub-leaf 1 `EAX[3]`)
    /// is clear: only XSAVES and XRSTORS use IA32_XSS.
    XssWithoutXsaves {
        /// Leaf 0xD sub-leaf 1 EAX.
        eax: u32,
        /// Supported IA32_XSS (sub-leaf 1 EDX:ECX).
        xss: Xfeatures,
    },
    /// The supported IA32_XSS has bits IA32_XSS never holds: user components
    /// (XCR0's) or the reserved bit 63 ([`xcr0::xss_invalid`]).
    XssImpossible {
        /// Supported IA32_XSS (sub-leaf 1 EDX:ECX).
        xss: Xfeatures,
        /// The bits at fault.
        bad: Xfeatures,
    },
    /// A feature flag is set while a flag it depends on is clear.
    MissingDependency {
        /// The flag that is set.
        feature: FeatureBit,
        /// Its register's value.
        value: u32,
        /// The flag it needs.
        needs: FeatureBit,
        /// That flag's register value.
        needs_value: u32,
    },
    /// Leaf 1 ECX.XSAVE is set but leaf 0xD sub-leaf 0 is missing.
    XsaveWithoutLeafD {
        /// Leaf 1 ECX.
        ecx: u32,
    },
    /// The supported XCR0 breaks an XSETBV rule.
    Xcr0Rule(Violation),
    /// A component is enumerated both in XCR0 and in IA32_XSS.
    Xcr0XssOverlap {
        /// Supported XCR0 (leaf 0xD sub-leaf 0 EDX:EAX).
        xcr0: Xfeatures,
        /// Supported IA32_XSS (leaf 0xD sub-leaf 1 EDX:ECX).
        xss: Xfeatures,
    },
    /// A supported component has no leaf 0xD sub-leaf, or one of size 0.
    MissingSubleaf {
        /// The component (and sub-leaf number).
        component: ComponentId,
        /// Enumerated in IA32_XSS rather than XCR0.
        supervisor: bool,
        /// The sub-leaf's EAX (size), None when the sub-leaf is absent.
        size: Option<u32>,
    },
    /// A sub-leaf's `ECX[0]` (supervisor) disagrees with XCR0 / IA32_XSS.
    SupervisorFlag {
        /// The component.
        component: ComponentId,
        /// The sub-leaf's ECX.
        ecx: u32,
        /// Enumerated in IA32_XSS rather than XCR0.
        supervisor: bool,
    },
    /// Sub-leaf 0 ECX is not the standard size for every supported user
    /// component (the furthest offset + size, at least 576).
    MaxSizeMismatch {
        /// Sub-leaf 0 ECX.
        ecx: u32,
        /// The size the sub-leaves give.
        expected: u64,
        /// Supported XCR0.
        xcr0: Xfeatures,
    },
    /// Sub-leaf 0 EBX is not the standard size of any valid XCR0 within the
    /// supported one.
    EnabledSizeImpossible {
        /// Sub-leaf 0 EBX.
        ebx: u32,
        /// Supported XCR0.
        xcr0: Xfeatures,
    },
    /// Sub-leaf 1 EBX is not the compacted size of any valid XCR0 and
    /// IA32_XSS within the supported ones, though XSAVEC or XSAVES is
    /// advertised.
    CompactedSizeImpossible {
        /// Sub-leaf 1 EBX.
        ebx: u32,
        /// Supported XCR0.
        xcr0: Xfeatures,
        /// Supported IA32_XSS.
        xss: Xfeatures,
    },
    /// AMX is offered (AMX-TILE, or XCR0 bits 17-18) without XFD (leaf 0xD
    /// sub-leaf 1 `EAX[4]`): Linux then turns AMX off.
    AmxWithoutXfd {
        /// Leaf 0xD sub-leaf 1 EAX (0 when absent).
        eax: u32,
    },
    /// AMX TILEDATA is supported but its sub-leaf lacks the XFD flag (`ECX[2]`).
    TileDataWithoutXfd {
        /// Sub-leaf 18 ECX.
        ecx: u32,
    },
    /// A supported component's sub-leaf sets the XFD flag (`ECX[2]`) though
    /// extended feature disable never applies to it: of the known
    /// components only AMX TILEDATA ([`ComponentId::xfd_capable`]).
    XfdNotCapable {
        /// The component (and sub-leaf number).
        component: ComponentId,
        /// Its sub-leaf's ECX.
        ecx: u32,
    },
    /// APX_F and MPX are both advertised: Linux then disables XSAVE and KVM
    /// refuses the XCR0.
    ApxWithMpx {
        /// Leaf 7 sub-leaf 0 EBX (MPX is bit 14).
        ebx: u32,
        /// Leaf 7 sub-leaf 1 EDX (APX_F is bit 21).
        edx: u32,
    },
    /// Leaf 0xD describes no valid XSAVE layout (a known component at a
    /// size no CPU gives it, an area over 1 MiB, ...): the layout
    /// validation every command applies refuses it.
    Layout(LayoutError),
}

/// `CPUID.(EAX=leaf,ECX=sub):REG`.
struct Loc<R>(u32, u32, R);

impl<R: fmt::Display> fmt::Display for Loc<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CPUID.(EAX={:#x},ECX={}):{}", self.0, self.1, self.2)
    }
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inconsistency::FeatureWithoutComponent {
                feature,
                value,
                group,
                missing,
                supported,
            } => write!(
                f,
                "{feature} is set ({} = {value:#010x}) but {group} components {missing} are not \
                 supported: {} XCR0 | {} IA32_XSS = {supported}",
                Loc(feature.leaf, feature.subleaf, feature.register),
                Loc(0xd, 0, "EDX:EAX"),
                Loc(0xd, 1, "EDX:ECX"),
            ),
            Inconsistency::ComponentWithoutFeature {
                group,
                components,
                supervisor,
                supported,
                flags,
                values,
            } => {
                let (reg, loc) = if *supervisor {
                    ("IA32_XSS", Loc(0xd, 1, "EDX:ECX"))
                } else {
                    ("XCR0", Loc(0xd, 0, "EDX:EAX"))
                };
                write!(
                    f,
                    "{group} components {components} are supported in {reg} ({loc} = {supported}) but "
                )?;
                for (i, (flag, value)) in flags.iter().zip(values).enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    write!(
                        f,
                        "{} is clear ({} = {value:#010x}, bit {})",
                        flag.name,
                        Loc(flag.leaf, flag.subleaf, flag.register),
                        flag.bit
                    )?;
                }
                f.write_str(": no OS enables them")
            }
            Inconsistency::XssWithoutXsaves { eax, xss } => write!(
                f,
                "IA32_XSS {xss} is supported ({}) but XSAVES is clear ({} = {eax:#010x}, bit 3): \
                 only XSAVES and XRSTORS use IA32_XSS",
                Loc(0xd, 1, "EDX:ECX"),
                Loc(0xd, 1, "EAX"),
            ),
            Inconsistency::XssImpossible { xss, bad } => write!(
                f,
                "{} supported IA32_XSS {xss} has {bad}, which IA32_XSS never holds: user \
                 components are enabled in XCR0, and bit 63 is reserved",
                Loc(0xd, 1, "EDX:ECX"),
            ),
            Inconsistency::MissingDependency {
                feature,
                value,
                needs,
                needs_value,
            } => write!(
                f,
                "{feature} is set ({} = {value:#010x}) but the {needs} it needs is clear ({} = {needs_value:#010x})",
                Loc(feature.leaf, feature.subleaf, feature.register),
                Loc(needs.leaf, needs.subleaf, needs.register),
            ),
            Inconsistency::XsaveWithoutLeafD { ecx } => write!(
                f,
                "XSAVE is set ({} = {ecx:#010x}) but leaf 0xD sub-leaf 0 is missing",
                Loc(1, 0, "ECX")
            ),
            Inconsistency::Xcr0Rule(v) => {
                write!(f, "{} supported: {v}", Loc(0xd, 0, "EDX:EAX"))
            }
            Inconsistency::Xcr0XssOverlap { xcr0, xss } => write!(
                f,
                "components {} are in both {} XCR0 = {xcr0} and {} IA32_XSS = {xss}",
                *xcr0 & *xss,
                Loc(0xd, 0, "EDX:EAX"),
                Loc(0xd, 1, "EDX:ECX"),
            ),
            Inconsistency::MissingSubleaf {
                component,
                supervisor,
                size,
            } => {
                let reg = if *supervisor { "IA32_XSS" } else { "XCR0" };
                match size {
                    None => write!(
                        f,
                        "{component} (component {n}) is supported in {reg} but leaf 0xD sub-leaf {n} is missing",
                        n = component.index()
                    ),
                    Some(s) => write!(
                        f,
                        "{component} (component {n}) is supported in {reg} but {} = {s:#x} (size 0)",
                        Loc(0xd, u32::from(component.index()), "EAX"),
                        n = component.index()
                    ),
                }
            }
            Inconsistency::SupervisorFlag {
                component,
                ecx,
                supervisor,
            } => write!(
                f,
                "{component} (component {}) is supported in {} but {} = {ecx:#010x} says {}",
                component.index(),
                if *supervisor { "IA32_XSS" } else { "XCR0" },
                Loc(0xd, u32::from(component.index()), "ECX"),
                if ecx & 1 != 0 { "supervisor (bit 0 set)" } else { "user (bit 0 clear)" },
            ),
            Inconsistency::MaxSizeMismatch {
                ecx,
                expected,
                xcr0,
            } => write!(
                f,
                "{} = {ecx:#x} ({ecx} bytes) but the sub-leaves of XCR0 {xcr0} end at {expected:#x} ({expected} bytes)",
                Loc(0xd, 0, "ECX")
            ),
            Inconsistency::EnabledSizeImpossible { ebx, xcr0 } => write!(
                f,
                "{} = {ebx:#x} ({ebx} bytes) is not the standard-format size of any valid XCR0 within {xcr0}",
                Loc(0xd, 0, "EBX")
            ),
            Inconsistency::CompactedSizeImpossible { ebx, xcr0, xss } => write!(
                f,
                "{} = {ebx:#x} ({ebx} bytes) is not the compacted size of any valid XCR0 within {xcr0} \
                 with IA32_XSS within {xss}",
                Loc(0xd, 1, "EBX")
            ),
            Inconsistency::AmxWithoutXfd { eax } => write!(
                f,
                "AMX is offered but XFD is clear ({} = {eax:#010x}, bit 4)",
                Loc(0xd, 1, "EAX")
            ),
            Inconsistency::TileDataWithoutXfd { ecx } => write!(
                f,
                "AMX TILEDATA is supported but {} = {ecx:#010x} lacks the XFD flag (bit 2)",
                Loc(0xd, u32::from(TILEDATA.index()), "ECX")
            ),
            Inconsistency::XfdNotCapable { component, ecx } => write!(
                f,
                "{component} (component {}) is supported but {} = {ecx:#010x} flags it \
                 XFD-capable (bit 2): extended feature disable applies to no known component \
                 other than AMX TILEDATA",
                component.index(),
                Loc(0xd, u32::from(component.index()), "ECX"),
            ),
            Inconsistency::ApxWithMpx { ebx, edx } => write!(
                f,
                "APX_F ({} = {edx:#010x}, bit 21) and MPX ({} = {ebx:#010x}, bit 14) are both set",
                Loc(7, 1, "EDX"),
                Loc(7, 0, "EBX"),
            ),
            Inconsistency::Layout(e) => write!(f, "leaf 0xD gives no valid layout: {e}"),
        }
    }
}

/// The value of the register holding `bit`, or None without its sub-leaf.
fn value(set: &CpuidSet, bit: FeatureBit) -> Option<u32> {
    set.entry(bit.leaf, bit.subleaf)
        .map(|r| bit.register.read(&r))
}

/// Every inconsistency in `set`, in a fixed order: flag dependencies, then
/// (when leaf 0xD sub-leaf 0 exists) XCR0 and IA32_XSS rules, sub-leaves,
/// flags against components and components against flags, sizes, AMX and
/// XFD (and the XFD flag on components it never applies to), and last
/// APX with MPX. Empty means consistent.
///
/// A dependency whose needed flag lives in a sub-leaf the set lacks is not
/// checked (the set says nothing about it), nor is a component whose
/// enabling flags do. Size checks are skipped while a
/// sub-leaf is missing (that is reported), and sub-leaf 1 EBX is checked
/// only when XSAVEC or XSAVES is advertised. Sub-leaf 0 EBX and sub-leaf 1
/// EBX describe the XCR0 and IA32_XSS enabled when CPUID ran, so they are
/// checked against every valid choice within the supported bits, not
/// against all of them.
pub fn check(set: &CpuidSet) -> Vec<Inconsistency> {
    let mut out = Vec::new();
    dependencies(set, &mut out);
    if set.entry(0xd, 0).is_none() {
        if let Some(ecx) = value(set, features::XSAVE).filter(|v| v & features::XSAVE.mask() != 0) {
            out.push(Inconsistency::XsaveWithoutLeafD { ecx });
        }
    } else {
        leaf_d_consistency(set, &mut out);
        feature_components(set, &mut out);
        components_usable(set, &mut out);
        sizes(set, &mut out);
        amx(set, &mut out);
    }
    if set.has_feature(features::APX_F) && set.has_feature(features::MPX) {
        out.push(Inconsistency::ApxWithMpx {
            ebx: value(set, features::MPX).unwrap_or(0),
            edx: value(set, features::APX_F).unwrap_or(0),
        });
    }
    // A CPUID the rules above pass must also give a layout every other
    // command loads (a net under them: where they found something, its
    // layout error is most often the same fault again).
    if out.is_empty() && set.entry(0xd, 0).is_some() {
        if let Err(e) = set.to_layout("cpuid", "checked CPUID") {
            out.push(Inconsistency::Layout(e));
        }
    }
    out
}

fn dependencies(set: &CpuidSet, out: &mut Vec<Inconsistency>) {
    for (feature, needs) in DEPENDENCIES {
        let (Some(v), Some(nv)) = (value(set, feature), value(set, needs)) else {
            continue;
        };
        if v & feature.mask() != 0 && nv & needs.mask() == 0 {
            out.push(Inconsistency::MissingDependency {
                feature,
                value: v,
                needs,
                needs_value: nv,
            });
        }
    }
}

/// XCR0 and IA32_XSS rules, XCR0/IA32_XSS overlap, and a sub-leaf per
/// supported component.
fn leaf_d_consistency(set: &CpuidSet, out: &mut Vec<Inconsistency>) {
    let (xcr0, xss) = (set.xcr0_supported(), set.xss_supported());
    out.extend(xcr0::violations(xcr0).map(Inconsistency::Xcr0Rule));
    let bad = xcr0::xss_invalid(xss);
    if !bad.is_empty() {
        out.push(Inconsistency::XssImpossible { xss, bad });
    }
    if !xss.is_empty() && !set.has_feature(features::XSAVES) {
        out.push(Inconsistency::XssWithoutXsaves {
            eax: value(set, features::XSAVES).unwrap_or(0),
            xss,
        });
    }
    if xcr0.intersects(xss) {
        out.push(Inconsistency::Xcr0XssOverlap { xcr0, xss });
    }
    for c in (xcr0 | xss).extended() {
        let supervisor = !xcr0.contains(c);
        match set.entry(0xd, u32::from(c.index())) {
            None => out.push(Inconsistency::MissingSubleaf {
                component: c,
                supervisor,
                size: None,
            }),
            Some(r) if r.eax == 0 => out.push(Inconsistency::MissingSubleaf {
                component: c,
                supervisor,
                size: Some(0),
            }),
            Some(r) if (r.ecx & 1 != 0) != supervisor => out.push(Inconsistency::SupervisorFlag {
                component: c,
                ecx: r.ecx,
                supervisor,
            }),
            Some(_) => {}
        }
    }
}

/// Every flag of [`GROUPS`] that is set needs its group's components.
fn feature_components(set: &CpuidSet, out: &mut Vec<Inconsistency>) {
    let supported = set.xcr0_supported() | set.xss_supported();
    for group in GROUPS {
        let missing = group.components - supported;
        if missing.is_empty() {
            continue;
        }
        for &feature in group.features {
            if let Some(v) = value(set, feature).filter(|v| v & feature.mask() != 0) {
                out.push(Inconsistency::FeatureWithoutComponent {
                    feature,
                    value: v,
                    group: group.name,
                    missing,
                    supported,
                });
            }
        }
    }
}

/// Every supported component of [`GROUPS`] needs one of the flags that make
/// it usable; not checked while one of them lives in a sub-leaf the set
/// lacks.
fn components_usable(set: &CpuidSet, out: &mut Vec<Inconsistency>) {
    let (xcr0, xss) = (set.xcr0_supported(), set.xss_supported());
    for group in GROUPS {
        let components = group.components & (xcr0 | xss);
        if components.is_empty() {
            continue;
        }
        let values: Option<Vec<u32>> = group.enabled_by.iter().map(|&b| value(set, b)).collect();
        let Some(values) = values else { continue };
        let usable = group
            .enabled_by
            .iter()
            .zip(&values)
            .any(|(b, v)| v & b.mask() != 0);
        if !usable {
            let supervisor = !xcr0.intersects(components);
            out.push(Inconsistency::ComponentWithoutFeature {
                group: group.name,
                components,
                supervisor,
                supported: if supervisor { xss } else { xcr0 },
                flags: group.enabled_by,
                values,
            });
        }
    }
}

fn sizes(set: &CpuidSet, out: &mut Vec<Inconsistency>) {
    let (xcr0, xss) = (set.xcr0_supported(), set.xss_supported());
    let Some(s0) = set.entry(0xd, 0) else { return };
    if let Some(expected) = leaf_d::standard_size(set, xcr0) {
        if u64::from(s0.ecx) != expected {
            out.push(Inconsistency::MaxSizeMismatch {
                ecx: s0.ecx,
                expected,
                xcr0,
            });
        }
    }
    if let Some(possible) = leaf_d::possible_standard_sizes(set) {
        if !possible.contains(&u64::from(s0.ebx)) {
            out.push(Inconsistency::EnabledSizeImpossible { ebx: s0.ebx, xcr0 });
        }
    }
    let compacted = features::XSAVEC.mask() | features::XSAVES.mask();
    if let Some(s1) = set.entry(0xd, 1).filter(|r| r.eax & compacted != 0) {
        if leaf_d::compacted_size_possible(set, u64::from(s1.ebx)) == Some(false) {
            out.push(Inconsistency::CompactedSizeImpossible {
                ebx: s1.ebx,
                xcr0,
                xss,
            });
        }
    }
}

fn amx(set: &CpuidSet, out: &mut Vec<Inconsistency>) {
    let xcr0 = set.xcr0_supported();
    let amx_bits = ComponentId::TILECFG.bit() | TILEDATA.bit();
    if (set.has_feature(features::AMX_TILE) || xcr0.intersects(amx_bits))
        && !set.has_feature(features::XFD)
    {
        out.push(Inconsistency::AmxWithoutXfd {
            eax: value(set, features::XFD).unwrap_or(0),
        });
    }
    if xcr0.contains(TILEDATA) {
        if let Some(r) = set.entry(0xd, u32::from(TILEDATA.index())) {
            if r.ecx & 4 == 0 {
                out.push(Inconsistency::TileDataWithoutXfd { ecx: r.ecx });
            }
        }
    }
    for component in (xcr0 | set.xss_supported()).extended() {
        if component.xfd_capable() {
            continue;
        }
        if let Some(r) = set.entry(0xd, u32::from(component.index())) {
            if r.ecx & 4 != 0 {
                out.push(Inconsistency::XfdNotCapable {
                    component,
                    ecx: r.ecx,
                });
            }
        }
    }
}
