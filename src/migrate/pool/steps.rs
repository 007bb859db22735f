//! The baseline's exclusions, one rule per function, each adding the
//! components it excludes with their reason. A component keeps the first
//! reason found.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{
    kvm_on, Exclusion, MissingFeature, OffsetMismatch, PoolHost, XFD, XGETBV1, XSAVES,
    XSAVE_FEATURE_BITS,
};
use crate::component::{ComponentId, Xfeatures};
use crate::cpuid::features::{self, FeatureMask, GROUPS, OS_FLAGS};
use crate::cpuid::{xcr0, CpuidSet, FeatureBit};
use crate::layout::ComponentGeometry;

/// One host's view, after its KVM offer: what it offers guests.
pub(super) struct Offered<'a> {
    pub(super) host: &'a PoolHost,
    pub(super) xcr0: Xfeatures,
    pub(super) xss: Xfeatures,
    /// Leaf 0xD sub-leaf 1 EAX bits 0-4.
    pub(super) eax: u32,
}

/// What each host offers guests: its layout's XCR0, IA32_XSS and XSAVE
/// features, within its KVM's offer; x87 and SSE alone without XSAVE.
pub(super) fn offers(hosts: &[PoolHost]) -> Vec<Offered<'_>> {
    hosts
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
        .collect()
}

/// Components excluded so far, each with its first reason.
#[derive(Default)]
pub(super) struct Exclusions(BTreeMap<u8, String>);

impl Exclusions {
    /// Excludes `c` for `reason`, unless it already is.
    pub(super) fn add(&mut self, c: ComponentId, reason: impl FnOnce() -> String) {
        self.0.entry(c.index()).or_insert_with(reason);
    }

    /// The components excluded.
    pub(super) fn set(&self) -> Xfeatures {
        self.0.keys().filter_map(|&i| ComponentId::new(i)).collect()
    }

    /// The exclusions, ascending, of components not in `kept`.
    pub(super) fn into_exclusions(self, kept: Xfeatures) -> Vec<Exclusion> {
        self.0
            .into_iter()
            .filter_map(|(i, reason)| {
                let component = ComponentId::new(i)?;
                (!kept.contains(component)).then_some(Exclusion { component, reason })
            })
            .collect()
    }
}

/// How many hosts a reason names before "and N more".
pub const LIST_CAP: usize = 8;

/// At most [`LIST_CAP`] items, each once in the order first seen, then
/// "and N more": a pool of a thousand hosts keeps its reasons (and a
/// caller's warnings) short.
///
/// ```
/// use xstate::migrate::pool::capped;
///
/// let hosts = (0..10).map(|n| format!("h{n}")).chain(["h0".to_string()]);
/// assert_eq!(capped(hosts), "h0, h1, h2, h3, h4, h5, h6, h7 and 2 more");
/// ```
pub fn capped(items: impl Iterator<Item = String>) -> String {
    let mut unique = BTreeSet::new();
    let mut seen: Vec<String> = items.filter(|i| unique.insert(i.clone())).collect();
    if seen.len() > LIST_CAP {
        let more = seen.len() - LIST_CAP;
        seen.truncate(LIST_CAP);
        format!("{} and {more} more", seen.join(", "))
    } else {
        seen.join(", ")
    }
}

/// `(host, value)` pairs as `host value, ...`, hosts with the same value
/// together (`a, b 832, c 1088`), each group [`capped`]: a value that one
/// host of a thousand holds is still named.
///
/// ```
/// use xstate::migrate::pool::grouped;
///
/// let pairs = [("a", 832), ("b", 832), ("c", 1088)].map(|(h, v)| (h.to_string(), v));
/// assert_eq!(grouped(pairs.into_iter()), "a, b 832, c 1088");
/// ```
pub fn grouped<V: PartialEq + core::fmt::Display>(
    pairs: impl Iterator<Item = (String, V)>,
) -> String {
    let mut groups: Vec<(V, Vec<String>)> = Vec::new();
    for (host, value) in pairs {
        match groups.iter_mut().find(|(v, _)| *v == value) {
            Some((_, hosts)) => hosts.push(host),
            None => groups.push((value, alloc::vec![host])),
        }
    }
    groups
        .into_iter()
        .map(|(value, hosts)| format!("{} {value}", capped(hosts.into_iter())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The flags that make a group's components usable, as `A and B`.
pub(super) fn enabling_flags(g: &crate::cpuid::features::ComponentGroup) -> String {
    g.enabled_by
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

fn names<'a>(hosts: impl Iterator<Item = &'a PoolHost>) -> String {
    capped(hosts.map(|h| h.name().to_string()))
}

fn lacking(offered: &[Offered<'_>], bit: u32) -> String {
    names(offered.iter().filter(|o| o.eax & bit == 0).map(|o| o.host))
}

fn list(set: Xfeatures) -> String {
    set.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Excludes every component some host lacks, or its KVM does not offer
/// guests; returns the extended components left.
pub(super) fn on_every_host(
    hosts: &[PoolHost],
    offered: &[Offered<'_>],
    out: &mut Exclusions,
) -> Xfeatures {
    let union = hosts
        .iter()
        .map(|h| h.layout.supported())
        .fold(Xfeatures::EMPTY, Xfeatures::union);
    let mpx = ComponentId::MPX_BNDREGS.bit() | ComponentId::MPX_BNDCSR.bit();
    let apx = ComponentId::APX.bit();
    for c in union.extended() {
        let without: Vec<&PoolHost> = hosts
            .iter()
            .filter(|h| !h.has_xsave() || !h.layout.has(c))
            .collect();
        if !without.is_empty() {
            out.add(c, || {
                let list = capped(without.iter().map(|h| {
                    if h.has_xsave() {
                        h.name().to_string()
                    } else {
                        format!("{} (no XSAVE: legacy-only)", h.name())
                    }
                }));
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
        for o in offered {
            let supervisor = o.host.layout.xss_supported().contains(c);
            let set = if supervisor { o.xss } else { o.xcr0 };
            if set.contains(c) {
                continue;
            }
            let kvm = o
                .host
                .kvm
                .as_ref()
                .expect("only KVM's offer takes bits away");
            out.add(c, || {
                if supervisor {
                    format!(
                        "{} offers guests IA32_XSS {}",
                        kvm_on(o.host, kvm),
                        kvm.guest_xss
                    )
                } else {
                    format!(
                        "{} offers guests XCR0 {}",
                        kvm_on(o.host, kvm),
                        kvm.guest_xcr0
                    )
                }
            });
        }
    }
    union.extended() - out.set()
}

/// Excludes what no XCR0 or IA32_XSS may hold, whatever the hosts' layouts
/// say ([`xcr0::SUPERVISOR`], [`xcr0::USER`], [`xcr0::RESERVED`]): bit 63,
/// a supervisor component some host enumerates in XCR0, a user component
/// some host enumerates in IA32_XSS. Real CPUs never enumerate them; a
/// layout file or a hand-made dump might.
pub(super) fn architecture(hosts: &[PoolHost], candidates: Xfeatures, out: &mut Exclusions) {
    for c in candidates & xcr0::RESERVED {
        out.add(c, || {
            "bit 63 of XCR0 and IA32_XSS is reserved, never a component".to_string()
        });
    }
    for c in candidates & xcr0::SUPERVISOR {
        let wrong = names(
            hosts
                .iter()
                .filter(|h| h.layout.xcr0_supported().contains(c)),
        );
        if !wrong.is_empty() {
            out.add(c, || {
                format!("a supervisor component (IA32_XSS only), but {wrong} enumerate it in XCR0")
            });
        }
    }
    for c in candidates & xcr0::USER {
        let wrong = names(
            hosts
                .iter()
                .filter(|h| h.layout.xss_supported().contains(c)),
        );
        if !wrong.is_empty() {
            out.add(c, || {
                format!("a user component (XCR0 only), but {wrong} enumerate it in IA32_XSS")
            });
        }
    }
}

/// Excludes every group of [`GROUPS`] in `candidates` for which no flag
/// that makes it usable ([`features::ComponentGroup::enabled_by`]) is on
/// every host whose CPUID is known: a flag some host lacks is masked
/// ([`missing_features`]), so with none left on all of them no OS enables
/// the group in a guest (CET with shadow stacks on one host and IBT only
/// on another).
pub(super) fn usable_on_every_host(
    hosts: &[PoolHost],
    candidates: Xfeatures,
    out: &mut Exclusions,
) {
    let known: Vec<(&PoolHost, &CpuidSet)> = hosts
        .iter()
        .filter_map(|h| Some((h, h.cpuid.as_ref()?)))
        .collect();
    if known.is_empty() {
        return;
    }
    let not_on = |b: FeatureBit| {
        names(
            known
                .iter()
                .filter(|(_, c)| !c.has_feature(b))
                .map(|(h, _)| *h),
        )
    };
    for g in GROUPS
        .iter()
        .filter(|g| candidates.intersects(g.components))
    {
        let on_every_host = |b: &FeatureBit| known.iter().all(|(_, c)| c.has_feature(*b));
        if g.enabled_by.iter().any(on_every_host) {
            continue;
        }
        let flags = enabling_flags(g);
        let without = names(
            known
                .iter()
                .filter(|(_, c)| !g.enabled_by.iter().any(|&b| c.has_feature(b)))
                .map(|(h, _)| *h),
        );
        let reason = if without.is_empty() {
            let each = g
                .enabled_by
                .iter()
                .map(|&b| format!("{} is not on {}", b.name, not_on(b)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "no flag that enables {name} is on every host ({each}): a flag some host lacks is \
                 masked, and without {flags} no OS enables {name}",
                name = g.name
            )
        } else {
            format!(
                "the CPUID of {without} lacks {flags}, without which no OS enables {}",
                g.name
            )
        };
        for c in candidates & g.components {
            out.add(c, || reason.clone());
        }
    }
}

/// Whether `masks` clear `bit`.
pub(super) fn masks_clear(masks: &[FeatureMask], bit: FeatureBit) -> bool {
    masks.iter().any(|m| {
        (m.leaf, m.subleaf, m.register) == (bit.leaf, bit.subleaf, bit.register)
            && m.clear & bit.mask() != 0
    })
}

/// Excludes the IA32_XSS components `xss` when some host lacks XSAVES.
pub(super) fn xss_needs_xsaves(
    xss: Xfeatures,
    eax: u32,
    offered: &[Offered<'_>],
    out: &mut Exclusions,
) {
    if eax & XSAVES != 0 {
        return;
    }
    for c in xss {
        out.add(c, || {
            format!(
                "IA32_XSS needs XSAVES (CPUID.(0xD,1):EAX[3]), which {} lack",
                lacking(offered, XSAVES)
            )
        });
    }
}

/// Excludes every component of `candidates` whose size or sub-leaf ECX
/// flags differ between hosts, and whose standard offset does unless
/// `keep_offsets`; returns every offset mismatch found.
pub(super) fn one_geometry(
    hosts: &[PoolHost],
    candidates: Xfeatures,
    keep_offsets: bool,
    out: &mut Exclusions,
) -> Vec<OffsetMismatch> {
    type Field = fn(&ComponentGeometry) -> u32;
    let fields: [(&str, Field, bool); 5] = [
        ("standard offset", |g| g.offset, !keep_offsets),
        ("size", |g| g.size, true),
        (
            "supervisor flag (ECX[0])",
            |g| u32::from(g.supervisor),
            true,
        ),
        ("64-byte alignment (ECX[1])", |g| u32::from(g.align64), true),
        ("XFD support (ECX[2])", |g| u32::from(g.xfd), true),
    ];
    let mut mismatches = Vec::new();
    for c in candidates {
        let gs: Vec<(&str, &ComponentGeometry)> = hosts
            .iter()
            .map(|h| (h.name(), h.layout.geometry(c).expect("on every host")))
            .collect();
        let mut why = Vec::new();
        for (what, f, excludes) in fields {
            if gs.iter().all(|(_, g)| f(g) == f(gs[0].1)) {
                continue;
            }
            if what == "standard offset" {
                mismatches.push(OffsetMismatch {
                    component: c,
                    offsets: gs.iter().map(|(n, g)| (n.to_string(), g.offset)).collect(),
                });
            }
            if excludes {
                let values = grouped(gs.iter().map(|(n, g)| (n.to_string(), f(g))));
                why.push(format!("{what} differs ({values})"));
            }
        }
        if !why.is_empty() {
            out.add(c, || why.join("; "));
        }
    }
    mismatches
}

/// Excludes AMX unless XFD is offered (sub-leaf 1 EAX bit 4 on every host,
/// and TILEDATA's sub-leaf flag): without it Linux guests turn AMX off.
pub(super) fn amx_needs_xfd(
    candidates: Xfeatures,
    eax: u32,
    geometry_host: &PoolHost,
    offered: &[Offered<'_>],
    out: &mut Exclusions,
) {
    let amx = candidates & (ComponentId::TILECFG.bit() | ComponentId::TILEDATA.bit());
    if eax & XFD == 0 {
        for c in amx {
            out.add(c, || {
                format!(
                    "AMX is offered only with XFD (CPUID.(0xD,1):EAX[4]), which {} lack",
                    lacking(offered, XFD)
                )
            });
        }
    } else if candidates.contains(ComponentId::TILEDATA)
        && geometry_host
            .layout
            .geometry(ComponentId::TILEDATA)
            .is_some_and(|g| !g.xfd)
    {
        for c in amx {
            out.add(c, || {
                "AMX is offered only with XFD: AMX TILEDATA's sub-leaf lacks the XFD flag (ECX[2])"
                    .to_string()
            });
        }
    }
}

/// Of `kept`, what the XSETBV rules ([`xcr0::sanitize`] on its user part,
/// `user`) and the feature groups ([`features::closure`]) let stay, applied
/// until nothing changes; the rest is excluded with its rule or group.
pub(super) fn rules_and_groups(
    mut kept: Xfeatures,
    user: Xfeatures,
    out: &mut Exclusions,
) -> Xfeatures {
    loop {
        let before = kept;
        let xcr0 = (kept & user) | Xfeatures::LEGACY;
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
                        list(g.requires - kept)
                    )
                } else {
                    format!(
                        "the {} group goes together and {} is excluded",
                        g.name,
                        list(missing)
                    )
                }
            });
        }
        kept -= gone;
        if kept == before {
            return kept;
        }
    }
}

/// The flags of the groups wholly in `kept` that some host's CPUID lacks
/// (flags the OS sets, OSXSAVE and OSPKE, aside).
pub(super) fn missing_features(hosts: &[PoolHost], kept: Xfeatures) -> Vec<MissingFeature> {
    let mut out = Vec::new();
    for g in GROUPS.iter().filter(|g| kept.contains_all(g.components)) {
        for &b in g.features.iter().filter(|b| !OS_FLAGS.contains(*b)) {
            let without: Vec<String> = hosts
                .iter()
                .filter(|h| h.cpuid.as_ref().is_some_and(|c| !c.has_feature(b)))
                .map(|h| h.name().to_string())
                .collect();
            if !without.is_empty() {
                out.push(MissingFeature {
                    feature: b,
                    hosts: without,
                });
            }
        }
    }
    out
}
