//! The migration-pool baseline: one guest CPU model that every host of a
//! pool runs, with the feature masking that keeps a guest from seeing a
//! feature one of the hosts lacks.
//!
//! [`baseline`] takes the hosts ([`PoolHost`]: a layout, and optionally what
//! KVM on it offers guests, as in a host profile, and its full CPUID) and
//! gives a [`Baseline`]:
//!
//! - **leaf 0xD**, computed rather than copied: sub-leaf 1 EAX is the AND
//!   over the hosts of XSAVEOPT, XSAVEC, XGETBV1, XSAVES and XFD; sub-leaf 0
//!   EBX/ECX and sub-leaf 1 EBX are the sizes of the offsets and sizes
//!   emitted;
//! - **an XCR0 that XSETBV accepts** ([`crate::cpuid::xcr0`]) within what
//!   every host and its KVM offer guests, and an IA32_XSS likewise;
//! - **safe by default**: a component whose standard offset, size or
//!   sub-leaf ECX flags (64-byte alignment, XFD) differ between hosts is
//!   excluded, since a guest's own XSAVE writes its host's offsets
//!   ([`OffsetPolicy::Reference`] keeps offset mismatches, at one host's
//!   offsets);
//! - **feature masks** from the one table ([`crate::cpuid::features`]):
//!   every flag and leaf that advertises a component the baseline lacks;
//! - every exclusion with its reason.
//!
//! [`Baseline::apply`] applies it to a guest CPUID, and
//! [`Baseline::template`] gives the same masking as a list of register
//! modifications (what a Firecracker custom CPU template holds).
//!
//! A host without XSAVE ([`Layout::legacy_only`]) makes the whole pool
//! legacy-only: XCR0 0x3, XSAVE and OSXSAVE masked.
//!
//! ```
//! use xstate::layout::catalog;
//! use xstate::migrate::pool::{baseline, BaselineOptions, PoolHost};
//! use xstate::ComponentId;
//!
//! let pool = [
//!     PoolHost::from(catalog::get("intel-sapphire-rapids").unwrap().clone()),
//!     PoolHost::from(catalog::get("amd-zen4").unwrap().clone()),
//! ];
//! let b = baseline(&pool, &BaselineOptions::default()).unwrap();
//! // AVX-512 and PKRU sit at other offsets on Zen 4, AMX is not there: out.
//! assert_eq!(b.xcr0.bits(), 0x7);
//! assert!(b.excluded.iter().any(|e| e.component == ComponentId::PKRU
//!     && e.reason.contains("intel-sapphire-rapids 2688, amd-zen4 2432")));
//! ```

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::area::EXTENDED_START;
use crate::component::{ComponentId, Xfeatures};
use crate::cpuid::features::{self, FeatureMask, GROUPS, OS_FLAGS, XSAVE_FLAGS};
use crate::cpuid::{is_known_indexed, xcr0, CpuidSet, CpuidSetError, FeatureBit, Reg};
use crate::layout::{subleaf0, subleaf1, ComponentGeometry, CpuidLeaf0xD, CpuidRegs};
use crate::profile::{HostProfile, KvmOffer};
use crate::Layout;

/// Leaf 0xD sub-leaf 1 EAX bits a baseline keeps: XSAVEOPT, XSAVEC,
/// XGETBV1, XSAVES, XFD (SDM leaf 0DH; bits 5-31 are reserved).
const XSAVE_FEATURE_BITS: u32 = 0x1f;
/// Sub-leaf 1 EAX bit 1: XSAVEC.
const XSAVEC: u32 = 1 << 1;
/// Sub-leaf 1 EAX bit 2: XGETBV with ECX = 1.
const XGETBV1: u32 = 1 << 2;
/// Sub-leaf 1 EAX bit 3: XSAVES and IA32_XSS.
const XSAVES: u32 = 1 << 3;
/// Sub-leaf 1 EAX bit 4: XFD.
const XFD: u32 = 1 << 4;
/// Sub-leaf i ECX bit 2: the component supports XFD.
const ECX_XFD: u32 = 1 << 2;

/// One host of a pool: its layout, and what else is known about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolHost {
    /// The host's XSAVE geometry. Its name names the host in reasons.
    pub layout: Layout,
    /// What KVM on the host offers guests, if known (a host profile's KVM
    /// part): components outside its guest XCR0 or IA32_XSS are excluded,
    /// and without its XFD, AMX.
    pub kvm: Option<KvmOffer>,
    /// The host's whole CPUID, if known: a feature flag of the table that
    /// it lacks is masked even where the component itself is kept, and the
    /// entries it has decide which a [`Baseline::template`] may touch.
    pub cpuid: Option<CpuidSet>,
}

impl PoolHost {
    /// A host known by its layout alone.
    pub fn new(layout: Layout) -> PoolHost {
        PoolHost {
            layout,
            kvm: None,
            cpuid: None,
        }
    }

    /// This host with what KVM on it offers guests.
    pub fn with_kvm(mut self, kvm: KvmOffer) -> PoolHost {
        self.kvm = Some(kvm);
        self
    }

    /// This host with its whole CPUID.
    pub fn with_cpuid(mut self, cpuid: CpuidSet) -> PoolHost {
        self.cpuid = Some(cpuid);
        self
    }

    /// The host's name (its layout's).
    pub fn name(&self) -> &str {
        self.layout.name()
    }

    /// Whether the host has XSAVE: its layout says so and, if known, its
    /// CPUID too.
    pub fn has_xsave(&self) -> bool {
        self.layout.has_xsave() && self.cpuid.as_ref().is_none_or(CpuidSet::has_xsave)
    }
}

impl From<Layout> for PoolHost {
    fn from(layout: Layout) -> PoolHost {
        PoolHost::new(layout)
    }
}

impl From<HostProfile> for PoolHost {
    /// The host of a profile: its layout and its KVM part.
    fn from(profile: HostProfile) -> PoolHost {
        PoolHost {
            layout: profile.layout,
            kvm: profile.kvm,
            cpuid: None,
        }
    }
}

/// `KVM on HOST (Linux RELEASE)`, naming whose offer a reason cites.
fn kvm_on(host: &PoolHost, kvm: &KvmOffer) -> String {
    if kvm.kernel_release.is_empty() {
        format!("KVM on {}", host.name())
    } else {
        format!("KVM on {} (Linux {})", host.name(), kvm.kernel_release)
    }
}

/// What to do with a component whose standard offset differs between hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetPolicy {
    /// Exclude it (the default): a guest's own XSAVE writes its host's
    /// offsets, so mixing them corrupts its signal frames and ptrace views.
    #[default]
    Exclude,
    /// Keep it, at the offsets of the host with this index in the pool:
    /// guests then misread their own areas on the other hosts. Sizes and
    /// flags must still agree.
    Reference(usize),
}

/// How to compute a baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaselineOptions {
    /// Components whose standard offsets differ.
    pub offsets: OffsetPolicy,
}

/// Why a pool has no baseline.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// No host at all.
    #[error("a pool needs at least one host")]
    Empty,
    /// [`OffsetPolicy::Reference`] names no host of the pool.
    #[error("reference host {index} is not in the pool of {hosts} hosts")]
    NoSuchReference {
        /// The index given.
        index: usize,
        /// The pool's size.
        hosts: usize,
    },
    /// A guest CPUID that cannot take the baseline: it would hold more
    /// entries than a CPUID may.
    #[error("the guest CPUID cannot take the baseline's leaf 0xD")]
    Guest(#[source] CpuidSetError),
}

/// A component left out of the baseline, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// The component.
    pub component: ComponentId,
    /// Why, naming the hosts and values at fault.
    pub reason: String,
}

/// A component on every host whose standard offset differs between them:
/// a guest's own XSAVE sees its host's offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetMismatch {
    /// The component.
    pub component: ComponentId,
    /// Each host's name and offset in bytes, in pool order.
    pub offsets: Vec<(String, u32)>,
}

/// A feature flag masked although its components are in the baseline,
/// because some host's CPUID lacks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingFeature {
    /// The flag.
    pub feature: FeatureBit,
    /// The hosts without it.
    pub hosts: Vec<String>,
}

/// The pool's baseline: a guest CPU model every host runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// XCR0 bits a guest may enable on every host; XSETBV accepts it.
    pub xcr0: Xfeatures,
    /// IA32_XSS bits every host (and its KVM) offers.
    pub xss: Xfeatures,
    /// Whether guests get XSAVE at all (false when a host has none).
    pub xsave: bool,
    /// Leaf 0xD sub-leaf 1 EAX: XSAVEOPT, XSAVEC, XGETBV1, XSAVES, XFD as
    /// every host has them.
    pub xsave_features: u32,
    /// Components some host has that the baseline leaves out, ascending.
    pub excluded: Vec<Exclusion>,
    /// Components on every host at different standard offsets, ascending:
    /// excluded, unless [`Baseline::reference`] names whose offsets guests
    /// see.
    pub offset_mismatches: Vec<OffsetMismatch>,
    /// The host whose offsets guests see where they differ
    /// ([`OffsetPolicy::Reference`]); `None` when mismatches are excluded.
    pub reference: Option<String>,
    /// Leaf 0xD for guests: sub-leaves 0 and 1 and one per component of
    /// XCR0 | IA32_XSS.
    pub cpuid: CpuidLeaf0xD,
    /// Bits to clear in a guest CPUID outside leaf 0xD (which is replaced
    /// whole), one entry per register, sorted.
    pub feature_masks: Vec<FeatureMask>,
    /// Leaves to drop whole: they describe only components the baseline
    /// lacks (AMX's 0x1D and 0x1E, AVX10's 0x24, PT's 0x14, APX's 0x29).
    pub drop_leaves: Vec<u32>,
    /// Flags masked because a host's CPUID lacks them, though their
    /// components are in the baseline.
    pub missing_features: Vec<MissingFeature>,
}

/// One host's view, after its KVM offer.
struct Offered<'a> {
    host: &'a PoolHost,
    xcr0: Xfeatures,
    xss: Xfeatures,
    eax: u32,
}

/// Components excluded so far, each with its first reason.
#[derive(Default)]
struct Exclusions(BTreeMap<u8, String>);

impl Exclusions {
    fn add(&mut self, c: ComponentId, reason: impl FnOnce() -> String) {
        self.0.entry(c.index()).or_insert_with(reason);
    }

    fn set(&self) -> Xfeatures {
        self.0.keys().filter_map(|&i| ComponentId::new(i)).collect()
    }
}

fn names<'a>(hosts: impl Iterator<Item = &'a PoolHost>) -> String {
    hosts.map(PoolHost::name).collect::<Vec<_>>().join(", ")
}

/// Computes the baseline of a pool. See the [module docs](self).
///
/// # Errors
///
/// [`PoolError::Empty`] for no host, [`PoolError::NoSuchReference`] for a
/// reference index past the pool.
pub fn baseline(hosts: &[PoolHost], options: &BaselineOptions) -> Result<Baseline, PoolError> {
    let first = hosts.first().ok_or(PoolError::Empty)?;
    let reference = match options.offsets {
        OffsetPolicy::Exclude => None,
        OffsetPolicy::Reference(index) => {
            Some(hosts.get(index).ok_or(PoolError::NoSuchReference {
                index,
                hosts: hosts.len(),
            })?)
        }
    };
    let geometry_host = reference.unwrap_or(first);
    let xsave = hosts.iter().all(PoolHost::has_xsave);
    let offered: Vec<Offered<'_>> = hosts
        .iter()
        .map(|host| {
            let l = &host.layout;
            let (mut xcr0, mut xss, mut eax) = if host.has_xsave() {
                (
                    l.xcr0_supported(),
                    l.xss_supported(),
                    l.xsave_features() & XSAVE_FEATURE_BITS,
                )
            } else {
                (Xfeatures::LEGACY, Xfeatures::EMPTY, 0)
            };
            if let Some(kvm) = &host.kvm {
                xcr0 &= kvm.guest_xcr0 | Xfeatures::LEGACY;
                xss &= kvm.guest_xss;
                if !kvm.guest_xfd {
                    eax &= !XFD;
                }
            }
            // XFD needs XSAVES and XGETBV1 (Linux cpuid-deps.c): a layout
            // file claiming it alone does not get it offered.
            if eax & (XSAVES | XGETBV1) != XSAVES | XGETBV1 {
                eax &= !XFD;
            }
            Offered {
                host,
                xcr0,
                xss,
                eax,
            }
        })
        .collect();
    let eax = offered.iter().fold(XSAVE_FEATURE_BITS, |a, o| a & o.eax);
    let lacking_eax = |bit: u32| names(offered.iter().filter(|o| o.eax & bit == 0).map(|o| o.host));
    let union = hosts
        .iter()
        .map(|h| h.layout.supported())
        .fold(Xfeatures::EMPTY, Xfeatures::union);
    let mut out = Exclusions::default();

    // 1. On every host, and offered to guests there.
    let mpx = ComponentId::MPX_BNDREGS.bit() | ComponentId::MPX_BNDCSR.bit();
    let apx = ComponentId::APX.bit();
    for c in union.extended() {
        let lacking: Vec<&PoolHost> = hosts
            .iter()
            .filter(|h| !h.has_xsave() || !h.layout.has(c))
            .collect();
        if !lacking.is_empty() {
            out.add(c, || {
                let list = lacking
                    .iter()
                    .map(|h| {
                        if h.has_xsave() {
                            h.name().to_string()
                        } else {
                            format!("{} (no XSAVE: legacy-only)", h.name())
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                if (mpx | apx).contains(c) && union.intersects(mpx) && union.intersects(apx) {
                    format!(
                        "MPX and APX share offset 960 and are mutually exclusive; the pool mixes them (not on {list})"
                    )
                } else {
                    format!("not on {list}")
                }
            });
            continue;
        }
        for o in &offered {
            let (set, register) = if o.host.layout.xss_supported().contains(c) {
                (o.xss, "IA32_XSS")
            } else {
                (o.xcr0, "XCR0")
            };
            if !set.contains(c) {
                let kvm = o
                    .host
                    .kvm
                    .as_ref()
                    .expect("only KVM's offer takes bits away");
                let offered = if register == "XCR0" {
                    kvm.guest_xcr0
                } else {
                    kvm.guest_xss
                };
                out.add(c, || {
                    format!("{} offers guests {register} {offered}", kvm_on(o.host, kvm))
                });
            }
        }
    }
    let candidates = union.extended() - out.set();

    // 2. IA32_XSS needs XSAVES.
    if eax & XSAVES == 0 {
        for c in candidates & first.layout.xss_supported() {
            out.add(c, || {
                format!(
                    "IA32_XSS needs XSAVES (CPUID.(0xD,1):EAX[3]), which {} lack",
                    lacking_eax(XSAVES)
                )
            });
        }
    }

    // 3. One geometry on every host.
    let mut offset_mismatches = Vec::new();
    for c in candidates {
        let gs: Vec<(&str, &ComponentGeometry)> = hosts
            .iter()
            .map(|h| (h.name(), h.layout.geometry(c).expect("on every host")))
            .collect();
        let differs = |f: fn(&ComponentGeometry) -> u32| gs.iter().any(|(_, g)| f(g) != f(gs[0].1));
        let list = |f: fn(&ComponentGeometry) -> u32| {
            gs.iter()
                .map(|(n, g)| format!("{n} {}", f(g)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut why = Vec::new();
        if differs(|g| g.offset) {
            offset_mismatches.push(OffsetMismatch {
                component: c,
                offsets: gs.iter().map(|(n, g)| (n.to_string(), g.offset)).collect(),
            });
            if reference.is_none() {
                why.push(format!("standard offset differs ({})", list(|g| g.offset)));
            }
        }
        if differs(|g| g.size) {
            why.push(format!("size differs ({})", list(|g| g.size)));
        }
        if differs(|g| u32::from(g.align64)) {
            why.push(format!(
                "64-byte alignment (ECX[1]) differs ({})",
                list(|g| u32::from(g.align64))
            ));
        }
        if differs(|g| u32::from(g.supervisor)) {
            why.push(format!(
                "supervisor flag (ECX[0]) differs ({})",
                list(|g| u32::from(g.supervisor))
            ));
        }
        if differs(|g| u32::from(g.xfd)) {
            why.push(format!(
                "XFD support (ECX[2]) differs ({})",
                list(|g| u32::from(g.xfd))
            ));
        }
        if !why.is_empty() {
            out.add(c, || why.join("; "));
        }
    }

    // 4. AMX only with XFD: without it Linux guests turn AMX off.
    let amx = ComponentId::TILECFG.bit() | ComponentId::TILEDATA.bit();
    if eax & XFD == 0 {
        for c in candidates & amx {
            out.add(c, || {
                format!(
                    "AMX is offered only with XFD (CPUID.(0xD,1):EAX[4]), which {} lack",
                    lacking_eax(XFD)
                )
            });
        }
    } else if let Some(g) = geometry_host.layout.geometry(ComponentId::TILEDATA) {
        if !g.xfd && candidates.contains(ComponentId::TILEDATA) {
            for c in candidates & amx {
                out.add(c, || {
                    "AMX is offered only with XFD: AMX TILEDATA's sub-leaf lacks the XFD flag (ECX[2])"
                        .to_string()
                });
            }
        }
    }

    // 5. The XSETBV rules and the feature groups, until nothing changes.
    let user_all = first.layout.xcr0_supported() | Xfeatures::LEGACY;
    let mut kept = candidates - out.set();
    loop {
        let before = kept;
        let xcr0 = (kept & user_all) | Xfeatures::LEGACY;
        let fixed = xcr0::sanitize(xcr0).expect("x87 is always in");
        for (c, rule) in fixed.dropped() {
            out.add(c, || format!("breaks an XSETBV rule: {rule}"));
        }
        kept -= xcr0 - fixed.xcr0;
        let gone = features::closure((Xfeatures::ALL - Xfeatures::LEGACY) - kept);
        for c in kept & gone {
            let g = features::group_of(c).expect("the closure only grows by groups");
            out.add(c, || {
                let missing = g.components - kept;
                if missing.is_empty() {
                    format!(
                        "{} needs {}, which is excluded",
                        g.name,
                        (g.requires - kept)
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    format!(
                        "the {} group goes together and {} is excluded",
                        g.name,
                        missing
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            });
        }
        kept -= gone;
        if kept == before {
            break;
        }
    }

    let (xcr0, xss, eax) = if xsave {
        ((kept & user_all) | Xfeatures::LEGACY, kept - user_all, eax)
    } else {
        (Xfeatures::LEGACY, Xfeatures::EMPTY, 0)
    };
    debug_assert!(xcr0::is_valid(xcr0));
    let cpuid = leaf_0xd(geometry_host, xcr0, xss, eax);

    // Masks for every component the baseline lacks, and the flags a
    // host's CPUID lacks.
    let (mut feature_masks, drop_leaves) = masks_for(xcr0 | xss, xsave);
    let mut missing_features = Vec::new();
    for g in GROUPS
        .iter()
        .filter(|g| (xcr0 | xss).contains_all(g.components))
    {
        for &b in g.features.iter().filter(|b| !OS_FLAGS.contains(*b)) {
            let without: Vec<String> = hosts
                .iter()
                .filter(|h| h.cpuid.as_ref().is_some_and(|c| !c.has_feature(b)))
                .map(|h| h.name().to_string())
                .collect();
            if !without.is_empty() {
                features::add_mask(&mut feature_masks, b.leaf, b.subleaf, b.register, b.mask());
                missing_features.push(MissingFeature {
                    feature: b,
                    hosts: without,
                });
            }
        }
    }
    feature_masks.sort();
    let excluded = out
        .0
        .into_iter()
        .filter_map(|(i, reason)| {
            let component = ComponentId::new(i)?;
            (!(xcr0 | xss).contains(component)).then_some(Exclusion { component, reason })
        })
        .collect();
    Ok(Baseline {
        xcr0,
        xss,
        xsave,
        xsave_features: eax,
        excluded,
        offset_mismatches,
        reference: reference.map(|h| h.name().to_string()),
        cpuid,
        feature_masks,
        drop_leaves,
        missing_features,
    })
}

/// The masks and leaves to drop that take from a guest CPUID everything
/// outside `kept` (outside leaf 0xD, which is replaced whole), and XSAVE
/// itself when `xsave` is false.
fn masks_for(kept: Xfeatures, xsave: bool) -> (Vec<FeatureMask>, Vec<u32>) {
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

/// Leaf 0xD for `xcr0` and `xss` at `host`'s geometry, its sizes computed
/// from the sub-leaves emitted.
fn leaf_0xd(host: &PoolHost, xcr0: Xfeatures, xss: Xfeatures, eax: u32) -> CpuidLeaf0xD {
    let mut leaf = CpuidLeaf0xD {
        vendor: Some(host.layout.vendor().to_string()),
        ..CpuidLeaf0xD::default()
    };
    let mut standard = EXTENDED_START as u32;
    let mut compacted = EXTENDED_START as u32;
    for c in (xcr0 | xss).extended() {
        let g = host
            .layout
            .geometry(c)
            .expect("baseline components are on every host");
        let mut regs = CpuidRegs::from(g);
        if eax & XFD == 0 {
            regs.ecx &= !ECX_XFD;
        }
        if xcr0.contains(c) {
            standard = standard.max(g.end());
        }
        if g.align64 {
            compacted = compacted.next_multiple_of(64);
        }
        compacted += g.size;
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
fn legacy_leaf_0xd() -> CpuidLeaf0xD {
    let mut leaf = CpuidLeaf0xD::default();
    leaf.subleaves
        .insert(0, subleaf0(Xfeatures::LEGACY, EXTENDED_START as u32));
    leaf.subleaves.insert(1, CpuidRegs::default());
    leaf
}

impl Baseline {
    /// Applies the baseline to a guest CPUID: clears
    /// [`Baseline::feature_masks`], drops [`Baseline::drop_leaves`] and
    /// replaces leaf 0xD with [`Baseline::cpuid`]. Leaf 0's maximum leaf is
    /// left as it is. A guest CPUID whose leaf 1 has XSAVE clear stays
    /// without XSAVE: it gets the legacy-only leaf 0xD and every
    /// component's flags masked.
    ///
    /// ```
    /// use xstate::cpuid::{check, features, CpuidSet};
    /// use xstate::layout::catalog;
    /// use xstate::migrate::pool::{baseline, BaselineOptions, PoolHost};
    ///
    /// let pool = [
    ///     PoolHost::from(catalog::get("intel-sapphire-rapids").unwrap().clone()),
    ///     PoolHost::from(catalog::get("intel-lunar-lake").unwrap().clone()),
    /// ];
    /// let b = baseline(&pool, &BaselineOptions::default()).unwrap();
    /// assert_eq!(b.xcr0.bits(), 0x207); // Lunar Lake: no AVX-512, no AMX
    ///
    /// // A guest CPUID with AVX-512 and AMX flags set.
    /// let mut guest = CpuidSet::parse("\
    ///    0x00000000 0x00: eax=0x0000001e ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
    ///    0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
    ///    0x00000007 0x00: eax=0x00000001 ebx=0x00010020 ecx=0x00000008 edx=0x01000000
    ///    0x0000000d 0x00: eax=0x000602e7 ebx=0x00002b00 ecx=0x00002b00 edx=0x00000000
    /// ").unwrap();
    /// b.apply(&mut guest).unwrap();
    /// assert!(!guest.has_feature(features::AVX512F));
    /// assert!(!guest.has_feature(features::AMX_TILE));
    /// assert!(guest.has_feature(features::AVX) && guest.has_feature(features::PKU));
    /// assert_eq!(guest.xcr0_supported().bits(), 0x207);
    /// assert_eq!(guest.get(0xd, 0).unwrap().ecx, 2696);
    /// assert!(check(&guest).is_empty());
    /// ```
    ///
    /// # Errors
    ///
    /// [`PoolError::Guest`] when the guest CPUID would hold more than
    /// [`crate::cpuid::MAX_ENTRIES`] entries; `guest` is then unchanged.
    pub fn apply(&self, guest: &mut CpuidSet) -> Result<(), PoolError> {
        let mut out = guest.clone();
        let guest_xsave = out
            .entry(1, 0)
            .is_none_or(|_| out.has_feature(features::XSAVE));
        let (masks, drop_leaves, leaf) = if guest_xsave {
            (
                self.feature_masks.clone(),
                self.drop_leaves.clone(),
                self.cpuid.clone(),
            )
        } else {
            let (masks, drop_leaves) = masks_for(Xfeatures::LEGACY, false);
            (masks, drop_leaves, legacy_leaf_0xd())
        };
        out.clear_masks(&masks);
        for &l in &drop_leaves {
            out.remove_leaf(l);
        }
        out.remove_leaf(0xd);
        out.set_indexed(0xd, true);
        for (&sub, &regs) in &leaf.subleaves {
            out.set(0xd, sub, regs).map_err(PoolError::Guest)?;
        }
        *guest = out;
        Ok(())
    }

    /// The baseline as register modifications on the CPUID each host's KVM
    /// offers, for VMMs that take CPU templates (Firecracker's custom CPU
    /// templates apply exactly this): leaf 0xD's sub-leaves 0, 1 and those
    /// of the baseline's components set whole, the feature masks as bits to
    /// clear, and the sub-leaves of dropped leaves set to zero.
    ///
    /// A template may only touch entries that exist on every host (such
    /// VMMs refuse a modifier for an entry the host's CPUID lacks): leaf 1
    /// sub-leaf 0, leaf 7 sub-leaf 0 and the baseline's leaf 0xD
    /// sub-leaves always qualify; any other entry only when every host's
    /// CPUID ([`PoolHost::cpuid`]) is known and has it. What cannot be
    /// included is listed in [`CpuTemplate::omitted`].
    pub fn template(&self, hosts: &[PoolHost]) -> CpuTemplate {
        let everywhere = |leaf: u32, sub: u32| {
            matches!((leaf, sub), (1, 0) | (7, 0))
                || !hosts.is_empty()
                    && hosts.iter().all(|h| {
                        h.cpuid
                            .as_ref()
                            .is_some_and(|c| c.entry(leaf, sub).is_some())
                    })
        };
        let mut entries: BTreeMap<(u32, u32), Vec<RegisterTemplate>> = BTreeMap::new();
        for (&sub, regs) in &self.cpuid.subleaves {
            let e = entries.entry((0xd, sub)).or_default();
            for reg in Reg::ALL {
                e.push(RegisterTemplate {
                    register: reg,
                    mask: u32::MAX,
                    value: reg.read(regs),
                });
            }
        }
        let mut omitted = Vec::new();
        for m in &self.feature_masks {
            if everywhere(m.leaf, m.subleaf) {
                entries
                    .entry((m.leaf, m.subleaf))
                    .or_default()
                    .push(RegisterTemplate {
                        register: m.register,
                        mask: m.clear,
                        value: 0,
                    });
            } else {
                omitted.push(Omitted::Mask(*m));
            }
        }
        for &leaf in &self.drop_leaves {
            let subs: Vec<u32> = match hosts.first().and_then(|h| h.cpuid.as_ref()) {
                Some(c) => c
                    .iter()
                    .filter(|&(l, s, _)| l == leaf && everywhere(l, s))
                    .map(|(_, s, _)| s)
                    .collect(),
                None => Vec::new(),
            };
            if subs.is_empty() {
                omitted.push(Omitted::Leaf(leaf));
            }
            for s in subs {
                let e = entries.entry((leaf, s)).or_default();
                e.clear();
                for reg in Reg::ALL {
                    e.push(RegisterTemplate {
                        register: reg,
                        mask: u32::MAX,
                        value: 0,
                    });
                }
            }
        }
        CpuTemplate {
            entries: entries
                .into_iter()
                .map(|((leaf, subleaf), mut registers)| {
                    registers.sort_by_key(|r| r.register);
                    merge(&mut registers);
                    TemplateEntry {
                        leaf,
                        subleaf,
                        indexed: is_known_indexed(leaf),
                        registers,
                    }
                })
                .collect(),
            omitted,
        }
    }
}

/// Merges the templates of one register (sorted by register) into one.
fn merge(registers: &mut Vec<RegisterTemplate>) {
    let mut out: Vec<RegisterTemplate> = Vec::with_capacity(registers.len());
    for r in registers.drain(..) {
        match out.last_mut() {
            Some(last) if last.register == r.register => {
                last.value = (last.value & !r.mask) | (r.value & r.mask);
                last.mask |= r.mask;
            }
            _ => out.push(r),
        }
    }
    *registers = out;
}

/// What a template does to one register: the bits in `mask` become those
/// of `value`, the others stay as the host's KVM offers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterTemplate {
    /// The register.
    pub register: Reg,
    /// The bits set by the template.
    pub mask: u32,
    /// Their values (zero outside `mask`).
    pub value: u32,
}

/// The modifications of one CPUID entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateEntry {
    /// Leaf.
    pub leaf: u32,
    /// Sub-leaf.
    pub subleaf: u32,
    /// Whether the sub-leaf is significant (`KVM_CPUID_FLAG_SIGNIFCANT_INDEX`).
    pub indexed: bool,
    /// One per register touched, in EAX..EDX order.
    pub registers: Vec<RegisterTemplate>,
}

/// Something [`Baseline::template`] could not include: its entry is not
/// known to exist on every host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Omitted {
    /// Feature bits to clear.
    Mask(FeatureMask),
    /// A leaf to drop.
    Leaf(u32),
}

/// A baseline as register modifications ([`Baseline::template`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTemplate {
    /// The entries modified, ascending by leaf and sub-leaf.
    pub entries: Vec<TemplateEntry>,
    /// What could not be included.
    pub omitted: Vec<Omitted>,
}
