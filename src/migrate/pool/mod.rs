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
//!   every host and its KVM offer guests, and an IA32_XSS likewise; never
//!   bit 63, a supervisor component in XCR0 or a user one in IA32_XSS,
//!   whatever the hosts' layouts say;
//! - **only usable components**: a group of [`features::GROUPS`] is
//!   excluded unless one of the flags that make it usable (AVX512F for
//!   AVX-512, PKU for PKRU, CET_SS or CET_IBT for CET, ...) is on every
//!   host whose CPUID is known: a flag some host lacks is masked, so a pool
//!   of a host with shadow stacks only and one with IBT only offers no CET;
//! - **safe by default**: a component whose standard offset, size or
//!   sub-leaf ECX flags (64-byte alignment, XFD) differ between hosts is
//!   excluded, since a guest's own XSAVE writes its host's offsets
//!   ([`OffsetPolicy::Reference`] keeps offset mismatches, at one host's
//!   offsets);
//! - **feature masks** from the one table ([`crate::cpuid::features`]):
//!   every flag and leaf that advertises a component the baseline lacks;
//! - every exclusion with its reason.
//!
//! [`Baseline::apply`] applies it to a guest CPUID, narrowed to what the
//! guest has ([`Baseline::for_guest`]: applying never adds an XCR0 or
//! IA32_XSS bit, an XSAVE feature or a flag the guest lacked), and
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

mod emit;
mod guest;
mod steps;
mod template;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::component::{ComponentId, Xfeatures};
use crate::cpuid::features::{self, FeatureMask};
use crate::cpuid::{xcr0, CpuidSet, CpuidSetError, FeatureBit};
use crate::layout::{CpuidLeaf0xD, CpuidRegs, LayoutError};
use crate::profile::{HostProfile, KvmOffer};
use crate::Layout;

pub use steps::{capped, grouped, LIST_CAP};
pub use template::{CpuTemplate, Omitted, RegisterTemplate, TemplateEntry};

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
    /// A guest CPUID cut short: its leaf 0 promises leaf 0xD (or, without
    /// leaf 0, its leaf 1 sets XSAVE) and leaf 1 does not clear XSAVE, but
    /// leaf 0xD sub-leaf 0 is missing ([`LayoutError::MissingLeaf0xD`]), as
    /// `cpuid check` and every layout source refuse it: not a guest
    /// without XSAVE.
    #[error("the guest CPUID cannot take the baseline")]
    GuestIncomplete(#[source] LayoutError),
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
    let offered = steps::offers(hosts);
    let eax = offered.iter().fold(XSAVE_FEATURE_BITS, |a, o| a & o.eax);
    let mut out = steps::Exclusions::default();
    let candidates = steps::on_every_host(hosts, &offered, &mut out);
    steps::architecture(hosts, candidates, &mut out);
    steps::usable_on_every_host(hosts, candidates, &mut out);
    steps::xss_needs_xsaves(
        candidates & first.layout.xss_supported(),
        eax,
        &offered,
        &mut out,
    );
    let offset_mismatches = steps::one_geometry(hosts, candidates, reference.is_some(), &mut out);
    steps::amx_needs_xfd(candidates, eax, geometry_host, &offered, &mut out);
    let user = first.layout.xcr0_supported() | Xfeatures::LEGACY;
    let kept = steps::rules_and_groups(candidates - out.set(), user, &mut out);
    let (xcr0, xss, eax) = if xsave {
        ((kept & user) | Xfeatures::LEGACY, kept - user, eax)
    } else {
        (Xfeatures::LEGACY, Xfeatures::EMPTY, 0)
    };
    debug_assert!(xcr0::is_valid(xcr0));
    debug_assert!(xcr0::xss_invalid(xss).is_empty());
    let cpuid = emit::leaf_0xd(
        Some(geometry_host.layout.vendor().to_string()),
        |c| {
            CpuidRegs::from(
                geometry_host
                    .layout
                    .geometry(c)
                    .expect("baseline components are on every host"),
            )
        },
        xcr0,
        xss,
        eax,
    );
    let (mut feature_masks, drop_leaves) = emit::masks_for(xcr0 | xss, xsave);
    let missing_features = steps::missing_features(hosts, xcr0 | xss);
    for m in &missing_features {
        let b = m.feature;
        features::add_mask(&mut feature_masks, b.leaf, b.subleaf, b.register, b.mask());
    }
    feature_masks.sort();
    Ok(Baseline {
        xcr0,
        xss,
        xsave,
        xsave_features: eax,
        excluded: out.into_exclusions(xcr0 | xss),
        offset_mismatches,
        reference: reference.map(|h| h.name().to_string()),
        cpuid,
        feature_masks,
        drop_leaves,
        missing_features,
    })
}

impl Baseline {
    /// Applies the baseline to a guest CPUID and returns what the guest got
    /// ([`Baseline::for_guest`]): the baseline narrowed to what the guest
    /// has, since applying never adds to a guest. Its feature masks are
    /// cleared, its leaves to drop dropped and leaf 0xD replaced with its
    /// [`Baseline::cpuid`]; leaf 0's maximum leaf is left as it is. A guest
    /// CPUID whose leaf 1 has XSAVE clear stays without XSAVE: it gets the
    /// legacy-only leaf 0xD and every component's flags masked. The
    /// returned baseline's [`Baseline::excluded`] says what the guest
    /// lacked.
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
    /// [`PoolError::GuestIncomplete`] for a guest CPUID cut short (leaf 0
    /// promises leaf 0xD, XSAVE is not cleared, leaf 0xD sub-leaf 0 is
    /// missing); [`PoolError::Guest`] when the guest CPUID would hold more
    /// than [`crate::cpuid::MAX_ENTRIES`] entries; `guest` is then
    /// unchanged.
    pub fn apply(&self, guest: &mut CpuidSet) -> Result<Baseline, PoolError> {
        if let Err(e @ LayoutError::MissingLeaf0xD { .. }) = guest.to_layout("guest", "guest CPUID")
        {
            return Err(PoolError::GuestIncomplete(e));
        }
        let narrowed = self.for_guest(guest);
        let mut out = guest.clone();
        out.clear_masks(&narrowed.feature_masks);
        for &l in &narrowed.drop_leaves {
            out.remove_leaf(l);
        }
        out.remove_leaf(0xd);
        out.set_indexed(0xd, true);
        for (&sub, &regs) in &narrowed.cpuid.subleaves {
            out.set(0xd, sub, regs).map_err(PoolError::Guest)?;
        }
        *guest = out;
        Ok(narrowed)
    }
}
