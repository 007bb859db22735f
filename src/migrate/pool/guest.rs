//! A baseline narrowed to one guest CPUID: what the guest model has of
//! it. Applying a baseline takes away, never adds: the guest keeps only the
//! XCR0 and IA32_XSS bits, the XSAVE features (leaf 0xD sub-leaf 1 EAX) and
//! the feature flags it had.

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use super::{emit, steps, Baseline, Exclusion, XFD, XGETBV1, XSAVES, XSAVE_FEATURE_BITS};
use crate::component::{ComponentId, Xfeatures};
use crate::cpuid::features::{self, FeatureMask, GROUPS};
use crate::cpuid::{CpuidSet, FeatureBit};

/// `CPUID.(EAX=0xd,ECX=0):EDX:EAX`, where a guest's XCR0 bits are.
const XCR0_AT: &str = "CPUID.(EAX=0xd,ECX=0):EDX:EAX";
/// `CPUID.(EAX=0xd,ECX=1):EDX:ECX`, where a guest's IA32_XSS bits are.
const XSS_AT: &str = "CPUID.(EAX=0xd,ECX=1):EDX:ECX";

impl Baseline {
    /// The baseline narrowed to what `guest` has, the CPU model
    /// [`Baseline::apply`] gives it:
    ///
    /// - XCR0 and IA32_XSS are the baseline's within the guest's own
    ///   (leaf 0xD sub-leaf 0 EDX:EAX and sub-leaf 1 EDX:ECX; x87 and SSE
    ///   always), and only components one of whose flags the guest has, and
    ///   the baseline does not mask, where [`features::GROUPS`] ties them to
    ///   flags ([`features::ComponentGroup::enabled_by`]: AVX for AVX,
    ///   AVX512F for AVX-512, PKU for PKRU, CET_SS or CET_IBT for CET, ...):
    ///   a guest with IBT but no shadow stacks, in a pool where a host lacks
    ///   IBT, gets no CET; a flag in a leaf the guest lacks counts as clear;
    /// - leaf 0xD sub-leaf 1 EAX is the baseline's AND the guest's (XFD only
    ///   with XSAVES and XGETBV1); IA32_XSS only with XSAVES, AMX only with
    ///   XFD; the XSETBV rules and the groups hold as for the baseline;
    /// - leaf 0xD is recomputed for what is emitted, the feature masks and
    ///   the leaves to drop cover everything left out;
    /// - [`Baseline::excluded`] adds what the guest lacked, with why.
    ///
    /// A guest whose leaf 1 has XSAVE clear stays without XSAVE: XCR0 0x3,
    /// no IA32_XSS, the legacy-only leaf 0xD. A guest without leaf 0xD
    /// sub-leaf 0 has XCR0 0x3 only ([`Baseline::apply`] refuses one whose
    /// leaf 0 or 1 says leaf 0xD should be there: a CPUID cut short).
    ///
    /// ```
    /// use xstate::cpuid::CpuidSet;
    /// use xstate::layout::catalog;
    /// use xstate::migrate::pool::{baseline, BaselineOptions, PoolHost};
    /// use xstate::ComponentId;
    ///
    /// let pool = [PoolHost::from(catalog::get("intel-sapphire-rapids").unwrap().clone())];
    /// let b = baseline(&pool, &BaselineOptions::default()).unwrap();
    /// // A guest with AVX only: XCR0 0x7, AVX flag set, no leaf 7 at all.
    /// let guest = CpuidSet::parse("\
    ///    0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
    ///    0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000
    ///    0x0000000d 0x01: eax=0x0000000f ebx=0x00000340 ecx=0x00000000 edx=0x00000000
    /// ").unwrap();
    /// let narrowed = b.for_guest(&guest);
    /// assert_eq!(narrowed.xcr0.bits(), 0x7);
    /// assert!(narrowed.xss.is_empty());
    /// let pkru = narrowed.excluded.iter().find(|e| e.component == ComponentId::PKRU).unwrap();
    /// assert!(pkru.reason.contains("not in the guest CPUID's XCR0 0x7"));
    /// ```
    pub fn for_guest(&self, guest: &CpuidSet) -> Baseline {
        let guest_xsave = guest
            .entry(1, 0)
            .is_none_or(|_| guest.has_feature(features::XSAVE));
        if !guest_xsave {
            return self.without_xsave();
        }
        let guest_xcr0 = guest.xcr0_supported() | Xfeatures::LEGACY;
        let guest_xss = guest.xss_supported();
        let guest_eax = guest.entry(0xd, 1).map_or(0, |r| r.eax);
        let offered = (self.xcr0 | self.xss).extended();
        let mut out = steps::Exclusions::default();
        for c in offered & (self.xcr0 - guest_xcr0) {
            out.add(c, || {
                format!("not in the guest CPUID's XCR0 {guest_xcr0} ({XCR0_AT})")
            });
        }
        for c in offered & (self.xss - guest_xss) {
            out.add(c, || {
                format!("not in the guest CPUID's IA32_XSS {guest_xss} ({XSS_AT})")
            });
        }
        for g in GROUPS.iter().filter(|g| offered.intersects(g.components)) {
            let has: Vec<FeatureBit> = g
                .enabled_by
                .iter()
                .copied()
                .filter(|&b| guest.has_feature(b))
                .collect();
            if has
                .iter()
                .any(|&b| !steps::masks_clear(&self.feature_masks, b))
            {
                continue;
            }
            let flags = steps::enabling_flags(g);
            let reason = if has.is_empty() {
                format!(
                    "the guest CPUID lacks {flags}, without which no OS enables {}",
                    g.name
                )
            } else {
                let masked = has.iter().map(|b| b.name).collect::<Vec<_>>().join(" and ");
                format!(
                    "the guest CPUID's {masked} is masked (not on every host) and without {flags} \
                     no OS enables {}",
                    g.name
                )
            };
            for c in offered & g.components {
                out.add(c, || reason.clone());
            }
        }
        let mut eax = self.xsave_features & guest_eax & XSAVE_FEATURE_BITS;
        if eax & (XSAVES | XGETBV1) != XSAVES | XGETBV1 {
            eax &= !XFD;
        }
        if eax & XSAVES == 0 {
            for c in offered & self.xss {
                out.add(c, || {
                    "IA32_XSS needs XSAVES (CPUID.(0xD,1):EAX[3]), which the guest CPUID lacks"
                        .to_string()
                });
            }
        }
        if eax & XFD == 0 {
            let amx = ComponentId::TILECFG.bit() | ComponentId::TILEDATA.bit();
            for c in offered & amx {
                out.add(c, || {
                    "AMX is offered only with XFD (CPUID.(0xD,1):EAX[4]), which the guest CPUID \
                     lacks (or it lacks XSAVES or XGETBV1, which XFD needs)"
                        .to_string()
                });
            }
        }
        let kept = steps::rules_and_groups(offered - out.set(), self.xcr0, &mut out);
        let xcr0 = (kept & self.xcr0) | Xfeatures::LEGACY;
        let xss = kept & self.xss;
        let cpuid = emit::leaf_0xd(
            self.cpuid.vendor.clone(),
            |c| {
                *self
                    .cpuid
                    .subleaves
                    .get(&u32::from(c.index()))
                    .expect("the baseline has a sub-leaf for each of its components")
            },
            xcr0,
            xss,
            eax,
        );
        let (masks, drop_leaves) = emit::masks_for(xcr0 | xss, self.xsave);
        Baseline {
            xcr0,
            xss,
            xsave: self.xsave,
            xsave_features: eax,
            excluded: merged(&self.excluded, out.into_exclusions(xcr0 | xss)),
            offset_mismatches: self.offset_mismatches.clone(),
            reference: self.reference.clone(),
            cpuid,
            feature_masks: union(masks, &self.feature_masks),
            drop_leaves,
            missing_features: self.missing_features.clone(),
        }
    }

    /// The baseline for a guest without XSAVE: XCR0 0x3, every component's
    /// flags and XSAVE's masked, the legacy-only leaf 0xD.
    fn without_xsave(&self) -> Baseline {
        let (masks, drop_leaves) = emit::masks_for(Xfeatures::LEGACY, false);
        let lost: Vec<Exclusion> = (self.xcr0 | self.xss)
            .extended()
            .iter()
            .map(|component| Exclusion {
                component,
                reason: "the guest CPUID has no XSAVE (CPUID.1:ECX[26] clear)".into(),
            })
            .collect();
        Baseline {
            xcr0: Xfeatures::LEGACY,
            xss: Xfeatures::EMPTY,
            xsave: false,
            xsave_features: 0,
            excluded: merged(&self.excluded, lost),
            offset_mismatches: self.offset_mismatches.clone(),
            reference: self.reference.clone(),
            cpuid: emit::legacy_leaf_0xd(),
            feature_masks: union(masks, &self.feature_masks),
            drop_leaves,
            missing_features: self.missing_features.clone(),
        }
    }
}

/// The baseline's exclusions and the guest's, ascending by component
/// (they never share one: the guest's are of components the baseline kept).
fn merged(baseline: &[Exclusion], guest: Vec<Exclusion>) -> Vec<Exclusion> {
    let mut all: Vec<Exclusion> = baseline.iter().cloned().chain(guest).collect();
    all.sort_by_key(|e| e.component.index());
    all
}

/// `masks` with `more` added, one entry per register, sorted.
fn union(mut masks: Vec<FeatureMask>, more: &[FeatureMask]) -> Vec<FeatureMask> {
    for m in more {
        features::add_mask(&mut masks, m.leaf, m.subleaf, m.register, m.clear);
    }
    masks.sort();
    masks
}
