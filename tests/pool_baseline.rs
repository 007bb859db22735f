//! The pool baseline as a guest CPU model: for every pool of one to three
//! of the catalog layouts and the real dumps in `../shared/cpuid`, and for
//! random pools, the baseline's XCR0 obeys every XSETBV rule, leaf 0xD
//! agrees with itself, and a guest CPUID it is applied to shows nothing
//! the baseline lacks and passes the consistency check.

mod common;

use proptest::prelude::*;
use xstate::cpuid::features::{self, GROUPS, XSAVE_FLAGS};
use xstate::cpuid::xcr0::{self, Rule};
use xstate::cpuid::{check, CpuidRegs, CpuidSet, FeatureBit, Reg};
use xstate::layout::{catalog, ComponentEntry, LayoutError, LayoutFile};
use xstate::migrate::pool::{
    baseline, Baseline, BaselineOptions, CpuTemplate, OffsetPolicy, Omitted, PoolError, PoolHost,
};
use xstate::profile::KvmOffer;
use xstate::{ComponentId, Layout, Xfeatures};

/// Leaf 0xD sub-leaf 1 EAX bits.
const XSAVEC: u32 = 1 << 1;
const XSAVES: u32 = 1 << 3;
const XFD: u32 = 1 << 4;

fn x(bits: u64) -> Xfeatures {
    Xfeatures::from_bits(bits)
}

fn cat(name: &str) -> PoolHost {
    PoolHost::from(catalog::get(name).unwrap().clone())
}

fn pool(hosts: &[PoolHost]) -> Baseline {
    baseline(hosts, &BaselineOptions::default()).unwrap()
}

fn reason(b: &Baseline, c: ComponentId) -> &str {
    &b.excluded
        .iter()
        .find(|e| e.component == c)
        .unwrap_or_else(|| panic!("{c} is not excluded: {:?}", b.excluded))
        .reason
}

/// A host read from a CPUID dump's text: its layout and its whole CPUID.
fn dump_host(name: &str, text: &str) -> PoolHost {
    let set = CpuidSet::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let layout = set.to_layout(name, "test dump").unwrap();
    PoolHost::new(layout).with_cpuid(set)
}

/// Every real dump as (file name, text), or `None` with the skip printed.
fn dumps(part: &str) -> Option<Vec<(String, String)>> {
    let dir = common::shared_cpuid_dir(part)?;
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 7, "{} dumps in {}", out.len(), dir.display());
    Some(out)
}

fn fixture(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    std::fs::read_to_string(format!("{path}{name}")).unwrap()
}

/// A guest CPUID that advertises everything the table knows: every flag
/// of every group, XSAVE and OSXSAVE, every group's leaves, XFRM all ones,
/// and leaf 0xD of `layout`. Applying a baseline must leave only what the
/// baseline has, and a CPUID that passes the check.
fn everything_guest(layout: &Layout) -> CpuidSet {
    let mut set = CpuidSet::new();
    let r = |eax, ebx, ecx, edx| CpuidRegs { eax, ebx, ecx, edx };
    // "GenuineIntel", maximum leaf 0x29.
    set.set(0, 0, r(0x29, 0x756e_6547, 0x6c65_746e, 0x4965_6e69))
        .unwrap();
    set.set(1, 0, r(0x806f8, 0, 0, 0)).unwrap();
    set.set(7, 0, r(1, 0, 0, 0)).unwrap();
    set.set(7, 1, r(0, 0, 0, 0)).unwrap();
    let flags = GROUPS
        .iter()
        .flat_map(|g| g.features.iter())
        .chain(XSAVE_FLAGS.iter());
    for f in flags {
        let mut regs = set.entry(f.leaf, f.subleaf).unwrap();
        *f.register.slot(&mut regs) |= f.mask();
        set.set(f.leaf, f.subleaf, regs).unwrap();
    }
    for g in GROUPS {
        for &leaf in g.leaves {
            set.set(leaf, 0, r(1, 2, 3, 4)).unwrap();
            set.set(leaf, 1, r(5, 6, 7, 8)).unwrap();
        }
    }
    set.set(0x12, 1, r(0, 0, u32::MAX, u32::MAX)).unwrap();
    for (sub, regs) in layout.to_cpuid().subleaves {
        set.set(0xd, sub, regs).unwrap();
    }
    set
}

/// What every baseline must be, whatever the pool.
fn assert_sound(b: &Baseline, hosts: &[PoolHost], policy: OffsetPolicy) {
    let what = hosts
        .iter()
        .map(PoolHost::name)
        .collect::<Vec<_>>()
        .join(" + ");
    // XCR0: every XSETBV rule, x87 and SSE, nothing a host or its KVM lacks.
    assert!(
        xcr0::is_valid(b.xcr0),
        "{what}: XCR0 {} breaks {:?}",
        b.xcr0,
        xcr0::violations(b.xcr0).collect::<Vec<_>>()
    );
    assert!(b.xcr0.contains_all(Xfeatures::LEGACY), "{what}");
    assert!(!b.xcr0.intersects(b.xss), "{what}");
    for h in hosts {
        if !h.has_xsave() {
            assert!(!b.xsave, "{what}");
        }
        assert!(h.layout.xcr0_supported().contains_all(b.xcr0), "{what}");
        assert!(h.layout.xss_supported().contains_all(b.xss), "{what}");
        assert_eq!(
            b.xsave_features & !h.layout.xsave_features(),
            0,
            "{what}: {:#x} vs {} {:#x}",
            b.xsave_features,
            h.name(),
            h.layout.xsave_features()
        );
        if let Some(kvm) = &h.kvm {
            assert!(
                (kvm.guest_xcr0 | Xfeatures::LEGACY).contains_all(b.xcr0),
                "{what}"
            );
            assert!(kvm.guest_xss.contains_all(b.xss), "{what}");
            if !kvm.guest_xfd {
                assert_eq!(b.xsave_features & XFD, 0, "{what}");
            }
        }
    }
    if !b.xsave {
        assert_eq!(
            (b.xcr0, b.xss, b.xsave_features),
            (Xfeatures::LEGACY, x(0), 0)
        );
    }
    assert_eq!(b.xsave_features & !0x1f, 0, "{what}");
    // AMX only with XFD; IA32_XSS only with XSAVES; never MPX with APX.
    let amx = ComponentId::TILECFG.bit() | ComponentId::TILEDATA.bit();
    if b.xcr0.intersects(amx) {
        assert_ne!(b.xsave_features & XFD, 0, "{what}");
    }
    if !b.xss.is_empty() {
        assert_ne!(b.xsave_features & XSAVES, 0, "{what}");
    }
    // Safe offsets: every kept user component sits alike on every host.
    for c in b.xcr0.extended() {
        let geometry: Vec<_> = hosts
            .iter()
            .map(|h| *h.layout.geometry(c).unwrap())
            .collect();
        for g in &geometry {
            assert_eq!(
                (g.size, g.align64, g.xfd, g.supervisor),
                (
                    geometry[0].size,
                    geometry[0].align64,
                    geometry[0].xfd,
                    geometry[0].supervisor
                ),
                "{what}: {c}"
            );
            if policy == OffsetPolicy::Exclude {
                assert_eq!(g.offset, geometry[0].offset, "{what}: {c}");
            }
        }
    }
    for e in &b.excluded {
        assert!(!(b.xcr0 | b.xss).contains(e.component), "{what}");
        assert!(!e.reason.is_empty());
    }
    // Leaf 0xD agrees with itself: sizes from the sub-leaves emitted.
    let leaf = &b.cpuid.subleaves;
    let subs: Vec<u32> = leaf.keys().copied().collect();
    let mut want: Vec<u32> = vec![0, 1];
    want.extend(
        (b.xcr0 | b.xss)
            .extended()
            .iter()
            .map(|c| u32::from(c.index())),
    );
    assert_eq!(subs, want, "{what}");
    let s0 = leaf[&0];
    let s1 = leaf[&1];
    assert_eq!(
        u64::from(s0.edx) << 32 | u64::from(s0.eax),
        b.xcr0.bits(),
        "{what}"
    );
    assert_eq!(
        u64::from(s1.edx) << 32 | u64::from(s1.ecx),
        b.xss.bits(),
        "{what}"
    );
    assert_eq!(s1.eax, b.xsave_features, "{what}");
    let mut standard = 576u32;
    let mut compacted = 576u32;
    for c in (b.xcr0 | b.xss).extended() {
        let r = leaf[&u32::from(c.index())];
        assert_ne!(r.eax, 0, "{what}: {c}");
        assert_eq!(r.ecx & 1 != 0, b.xss.contains(c), "{what}: {c}");
        if b.xsave_features & XFD == 0 {
            assert_eq!(r.ecx & 4, 0, "{what}: {c}");
        }
        if b.xcr0.contains(c) {
            standard = standard.max(r.ebx + r.eax);
        }
        if r.ecx & 2 != 0 {
            compacted = compacted.next_multiple_of(64);
        }
        compacted += r.eax;
    }
    assert_eq!((s0.ebx, s0.ecx), (standard, standard), "{what}");
    let compacted = if b.xsave_features & (XSAVEC | XSAVES) != 0 {
        compacted
    } else {
        0
    };
    assert_eq!(s1.ebx, compacted, "{what}");
    if b.xcr0.contains(ComponentId::TILEDATA) {
        assert_ne!(
            leaf[&18].ecx & 4,
            0,
            "{what}: TILEDATA without the XFD flag"
        );
    }
    // Every flag of a group the baseline lacks is masked, its leaves dropped.
    for g in GROUPS
        .iter()
        .filter(|g| !(b.xcr0 | b.xss).contains_all(g.components))
    {
        for f in g.features {
            assert!(
                b.feature_masks
                    .iter()
                    .any(
                        |m| (m.leaf, m.subleaf, m.register) == (f.leaf, f.subleaf, f.register)
                            && m.clear & f.mask() != 0
                    ),
                "{what}: {f} not masked"
            );
        }
        for l in g.leaves {
            assert!(b.drop_leaves.contains(l), "{what}: leaf {l:#x}");
        }
    }
    assert!(b.feature_masks.iter().all(|m| m.leaf != 0xd));
}

/// Whether `masks` clear `flag`.
fn masked(masks: &[features::FeatureMask], flag: FeatureBit) -> bool {
    masks.iter().any(|m| {
        (m.leaf, m.subleaf, m.register) == (flag.leaf, flag.subleaf, flag.register)
            && m.clear & flag.mask() != 0
    })
}

/// What applying the baseline to `before` must give: never more than the
/// baseline, never more than the guest had, what it lost listed with why,
/// and all of the baseline for a guest that has all of it.
fn assert_applied(b: &Baseline, before: &CpuidSet, what: &str) {
    let mut after = before.clone();
    let got = b.apply(&mut after).unwrap();
    let guest_xsave = before
        .entry(1, 0)
        .is_none_or(|_| before.has_feature(features::XSAVE));
    let (xcr0, xss) = (got.xcr0, got.xss);
    assert_eq!(after.xcr0_supported(), xcr0, "{what}");
    assert_eq!(after.xss_supported(), xss, "{what}");
    assert!(
        b.xcr0.contains_all(xcr0) && b.xss.contains_all(xss),
        "{what}"
    );
    let guest_xcr0 = before.xcr0_supported() | Xfeatures::LEGACY;
    let guest_eax = before.entry(0xd, 1).map_or(0, |r| r.eax);
    assert!(
        guest_xcr0.contains_all(xcr0),
        "{what}: XCR0 {xcr0} past the guest's {guest_xcr0}"
    );
    assert!(
        before.xss_supported().contains_all(xss),
        "{what}: IA32_XSS {xss} past the guest's {}",
        before.xss_supported()
    );
    assert_eq!(
        got.xsave_features & !(guest_eax & b.xsave_features),
        0,
        "{what}"
    );
    for c in ((b.xcr0 | b.xss) - (xcr0 | xss)).extended() {
        assert!(
            got.excluded
                .iter()
                .any(|e| e.component == c && !e.reason.is_empty()),
            "{what}: {c} went without a reason"
        );
    }
    for g in GROUPS
        .iter()
        .filter(|g| (xcr0 | xss).intersects(g.components))
    {
        assert!(
            g.enabled_by.iter().any(|&f| after.has_feature(f)),
            "{what}: {} without its flags",
            g.name
        );
    }
    if !guest_xsave {
        assert_eq!((xcr0, xss), (Xfeatures::LEGACY, Xfeatures::EMPTY), "{what}");
    }
    let has_all = guest_xsave
        && guest_xcr0.contains_all(b.xcr0)
        && before.xss_supported().contains_all(b.xss)
        && guest_eax & b.xsave_features == b.xsave_features
        && GROUPS
            .iter()
            .filter(|g| (b.xcr0 | b.xss).intersects(g.components))
            .all(|g| {
                g.enabled_by
                    .iter()
                    .any(|&f| before.has_feature(f) && !masked(&b.feature_masks, f))
            });
    if has_all {
        assert_eq!((xcr0, xss), (b.xcr0, b.xss), "{what}");
        assert_eq!(got.cpuid, b.cpuid, "{what}");
    }
    let leaf: Vec<(u32, CpuidRegs)> = after
        .iter()
        .filter(|&(l, _, _)| l == 0xd)
        .map(|(_, s, r)| (s, r))
        .collect();
    let want: Vec<(u32, CpuidRegs)> = got.cpuid.subleaves.iter().map(|(&s, &r)| (s, r)).collect();
    assert_eq!(leaf, want, "{what}");
    // Nothing advertises a component the guest may not have.
    for g in GROUPS
        .iter()
        .filter(|g| !(xcr0 | xss).contains_all(g.components))
    {
        for &f in g.features {
            assert!(!after.has_feature(f), "{what}: {f} still set");
        }
        for &l in g.leaves {
            assert!(
                after.iter().all(|(leaf, _, _)| leaf != l),
                "{what}: leaf {l:#x}"
            );
        }
    }
    for e in &got.excluded {
        if let Some(g) = features::group_of(e.component) {
            for &f in g.features {
                assert!(
                    !after.has_feature(f),
                    "{what}: {f} of excluded {}",
                    e.component
                );
            }
        }
    }
    for m in &b.missing_features {
        assert!(!after.has_feature(m.feature), "{what}: {}", m.feature);
    }
    if !b.xsave {
        for f in XSAVE_FLAGS {
            assert!(!after.has_feature(f), "{what}: {f}");
        }
    }
    if let Some(xfrm) = after.entry(0x12, 1) {
        let bits = u64::from(xfrm.edx) << 32 | u64::from(xfrm.ecx);
        assert!((xcr0 | xss).contains_all(x(bits)), "{what}: XFRM {bits:#x}");
    }
    // Outside leaf 0xD, only masked bits and dropped leaves changed.
    for (leaf, sub, regs) in before.iter().filter(|&(l, _, _)| l != 0xd) {
        let Some(now) = after.entry(leaf, sub) else {
            assert!(
                got.drop_leaves.contains(&leaf) || !guest_xsave,
                "{what}: {leaf:#x}.{sub} gone"
            );
            continue;
        };
        for reg in Reg::ALL {
            let cleared = reg.read(&regs) & !reg.read(&now);
            assert_eq!(
                reg.read(&now) & !reg.read(&regs),
                0,
                "{what}: {leaf:#x}.{sub} {reg} gained bits"
            );
            if guest_xsave && cleared != 0 {
                assert!(
                    got.feature_masks
                        .iter()
                        .any(|m| (m.leaf, m.subleaf, m.register) == (leaf, sub, reg)
                            && m.clear & cleared == cleared),
                    "{what}: {leaf:#x}.{sub} {reg} lost {cleared:#x}"
                );
            }
        }
    }
    let found: Vec<String> = check(&after).iter().map(ToString::to_string).collect();
    assert!(found.is_empty(), "{what}: {found:#?}");
}

#[test]
fn every_pool_of_one_to_three_catalog_layouts_and_dumps_is_sound() {
    let mut sources: Vec<PoolHost> = catalog::all().iter().cloned().map(PoolHost::from).collect();
    let mut guests: Vec<(String, CpuidSet)> = catalog::all()
        .iter()
        .map(|l| (format!("everything on {}", l.name()), everything_guest(l)))
        .collect();
    if let Some(dumps) = dumps("pool baselines over the real dumps") {
        for (name, text) in &dumps {
            let host = dump_host(name, text);
            guests.push((name.clone(), host.cpuid.clone().unwrap()));
            sources.push(host);
        }
    }
    let n = sources.len();
    let mut pools = 0;
    let mut members: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        members.push(vec![i]);
        for j in i + 1..n {
            members.push(vec![i, j]);
            for k in j + 1..n {
                members.push(vec![i, j, k]);
            }
        }
    }
    for m in &members {
        let hosts: Vec<PoolHost> = m.iter().map(|&i| sources[i].clone()).collect();
        let b = pool(&hosts);
        assert_sound(&b, &hosts, OffsetPolicy::Exclude);
        let names = hosts
            .iter()
            .map(PoolHost::name)
            .collect::<Vec<_>>()
            .join(" + ");
        for (guest, set) in &guests {
            assert_applied(&b, set, &format!("{names} applied to {guest}"));
        }
        pools += 1;
    }
    // Singles, pairs and triples.
    assert_eq!(pools, n + n * (n - 1) / 2 + n * (n - 1) * (n - 2) / 6);
    common::note(&format!(
        "{pools} pools over {n} hosts, each applied to {} guests",
        guests.len()
    ));
}

#[test]
fn zen4_and_sapphire_rapids_share_only_x87_sse_and_avx() {
    let hosts = [cat("amd-zen4"), cat("intel-sapphire-rapids")];
    let b = pool(&hosts);
    assert_eq!(b.xcr0, x(0x7));
    assert_eq!(b.xss, x(0x1800)); // CET_U and CET_S on both
    for (c, zen4, spr) in [
        (ComponentId::OPMASK, 832, 1088),
        (ComponentId::PKRU, 2432, 2688),
    ] {
        assert_eq!(
            reason(&b, c),
            format!("standard offset differs (amd-zen4 {zen4}, intel-sapphire-rapids {spr})")
        );
        assert!(b.offset_mismatches.iter().any(|m| m.component == c));
    }
    assert_eq!(reason(&b, ComponentId::TILEDATA), "not on amd-zen4");
    assert_eq!(b.cpuid.subleaves[&0].ecx, 832);
    assert!(b.reference.is_none());

    // Kept at one host's offsets when asked.
    let keep = BaselineOptions {
        offsets: OffsetPolicy::Reference(1),
    };
    let b = baseline(&hosts, &keep).unwrap();
    assert_eq!(b.xcr0, x(0x2e7));
    assert_eq!(b.reference.as_deref(), Some("intel-sapphire-rapids"));
    assert_eq!(b.cpuid.subleaves[&9].ebx, 2688);
    assert_eq!(b.cpuid.subleaves[&0].ecx, 2696);
    assert_sound(&b, &hosts, keep.offsets);
    let bad = BaselineOptions {
        offsets: OffsetPolicy::Reference(2),
    };
    assert!(baseline(&hosts, &bad).is_err());
    assert!(baseline(&[], &BaselineOptions::default()).is_err());
}

#[test]
fn subleaf_1_eax_is_the_and_of_the_hosts() {
    // Sapphire Rapids alone: XFD stays, and with it AMX.
    let spr = pool(&[cat("intel-sapphire-rapids")]);
    assert_eq!(spr.xsave_features, 0x1f);
    assert_eq!(spr.xcr0, x(0x602e7));
    assert_ne!(spr.cpuid.subleaves[&18].ecx & 4, 0);
    // This host alone: its own EAX (0x1F on the Emerald Rapids host).
    #[cfg(target_arch = "x86_64")]
    if let Ok(host) = xstate::host::layout() {
        let b = pool(&[PoolHost::from(host.clone())]);
        assert_eq!(b.xsave_features, host.xsave_features() & 0x1f);
        assert_eq!(b.xcr0, host.xcr0_supported());
    }
    // A Haswell (XSAVEOPT only): no XSAVEC, XGETBV1, XSAVES, XFD; no
    // IA32_XSS without XSAVES, no AMX without XFD.
    let haswell = Layout::from_toml(
        "name = \"haswell\"\nvendor = \"GenuineIntel\"\nsource = \"test\"\n\
         xcr0_supported = \"0x7\"\nxsave_features = \"0x1\"\n\
         [[component]]\nid = 2\nsize = 256\noffset = 576\n",
    )
    .unwrap();
    let b = pool(&[
        cat("intel-sapphire-rapids"),
        PoolHost::from(haswell.clone()),
    ]);
    assert_eq!(b.xsave_features, 0x1);
    assert_eq!(b.xcr0, x(0x7));
    assert_eq!(b.xss, x(0));
    assert_eq!(
        b.cpuid.subleaves[&1],
        CpuidRegs {
            eax: 1,
            ebx: 0,
            ecx: 0,
            edx: 0
        }
    );
    // A Haswell-like host with IA32_XSS bits but no XSAVES still gets none.
    let mut file = LayoutFile::from_layout(catalog::get("intel-skylake-sp").unwrap());
    file.name = "no-xsaves".into();
    file.xsave_features = Some("0x7".into());
    let b = pool(&[PoolHost::from(file.to_layout().unwrap())]);
    assert_eq!(b.xss, x(0));
    assert_eq!(
        reason(&b, ComponentId::PT),
        "IA32_XSS needs XSAVES (CPUID.(0xD,1):EAX[3]), which no-xsaves lack"
    );
    // Without XFD anywhere, AMX goes.
    let mut file = LayoutFile::from_layout(catalog::get("intel-sapphire-rapids").unwrap());
    file.xsave_features = Some("0xf".into());
    let b = pool(&[PoolHost::from(file.to_layout().unwrap())]);
    assert_eq!(b.xcr0, x(0x2e7));
    assert!(reason(&b, ComponentId::TILECFG).starts_with("AMX is offered only with XFD"));
}

/// The catalog's Sapphire Rapids with `xcr0` and only its components.
fn spr_with_xcr0(xcr0: u64) -> PoolHost {
    let mut file = LayoutFile::from_layout(catalog::get("intel-sapphire-rapids").unwrap());
    file.name = format!("spr-{xcr0:#x}");
    file.xcr0_supported = format!("{xcr0:#x}");
    file.components
        .retain(|c| c.supervisor || xcr0 & 1 << c.id != 0);
    file.standard_size = None;
    PoolHost::from(file.to_layout().unwrap())
}

#[test]
fn a_baseline_xcr0_never_breaks_an_xsetbv_rule() {
    for (xcr0, want, gone, rule) in [
        (0x202e7, 0x2e7, ComponentId::TILECFG, Rule::AmxTogether),
        (0x67, 0x7, ComponentId::OPMASK, Rule::Avx512AllOrNone),
        (0xe3, 0x3, ComponentId::OPMASK, Rule::Avx512NeedsAvx),
    ] {
        let host = spr_with_xcr0(xcr0);
        assert_eq!(host.layout.xcr0_violations().next().unwrap().rule, rule);
        let b = pool(std::slice::from_ref(&host));
        assert_eq!(b.xcr0, x(want), "{xcr0:#x}");
        assert_eq!(
            reason(&b, gone),
            format!("breaks an XSETBV rule: {}", rule.description())
        );
        assert_sound(&b, &[host], OffsetPolicy::Exclude);
    }
}

#[test]
fn kvm_offers_limit_the_baseline() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap().clone();
    // What KVM on this project's Emerald Rapids host offers: no AMX, no XSS.
    let mut kvm = KvmOffer::new(x(0x2e7), 4096, 0xffff);
    kvm.kernel_release = "6.18".into();
    let host = PoolHost::new(spr.renamed("emr")).with_kvm(kvm.clone());
    let b = pool(&[host.clone(), cat("intel-sapphire-rapids")]);
    assert_eq!(b.xcr0, x(0x2e7));
    assert_eq!(b.xss, x(0));
    assert_eq!(
        reason(&b, ComponentId::TILEDATA),
        "KVM on emr (Linux 6.18) offers guests XCR0 0x2e7"
    );
    assert_eq!(
        reason(&b, ComponentId::CET_U),
        "KVM on emr (Linux 6.18) offers guests IA32_XSS 0x0"
    );
    assert_sound(&b, &[host], OffsetPolicy::Exclude);
    // AMX offered, but not XFD: AMX still goes.
    kvm.guest_xcr0 = x(0x602e7);
    kvm.guest_xss = x(0x1800);
    let b = pool(&[PoolHost::new(spr.clone()).with_kvm(kvm.clone())]);
    assert_eq!(b.xcr0, x(0x2e7));
    assert_eq!(b.xss, x(0x1800));
    assert_eq!(b.xsave_features, 0xf);
    kvm.guest_xfd = true;
    let b = pool(&[PoolHost::new(spr.clone()).with_kvm(kvm)]);
    assert_eq!(b.xcr0, x(0x602e7));
    // A host profile converts to a pool host.
    let profile =
        xstate::profile::HostProfile::from_json(&fixture("intel-emr-kvm-profile.json")).unwrap();
    let b = pool(&[PoolHost::from(profile)]);
    assert_eq!(b.xcr0, x(0x2e7));
    assert!(reason(&b, ComponentId::TILECFG).contains("offers guests XCR0 0x2e7"));
}

#[test]
fn leaf_7_and_the_apx_leaf_are_masked() {
    // A guest told XCR0 without AVX-512 must not see AVX512F; one without
    // APX must not see APX_F or leaf 0x29.
    let dmr = catalog::get("intel-diamond-rapids").unwrap();
    let guest = everything_guest(dmr);
    assert!(guest.has_feature(features::APX_F) && guest.has_feature(features::AVX512F));
    let b = pool(&[cat("intel-diamond-rapids"), cat("intel-lunar-lake")]);
    assert_eq!(b.xcr0, x(0x207));
    let mut applied = guest.clone();
    b.apply(&mut applied).unwrap();
    assert!(!applied.has_feature(features::AVX512F));
    assert!(!applied.has_feature(features::APX_F));
    assert!(!applied.has_feature(features::AMX_TILE));
    assert!(applied.has_feature(features::AVX) && applied.has_feature(features::PKU));
    assert_eq!(applied.get(0x29, 0), None);
    assert_eq!(applied.get(0x1d, 0), None);
    assert_eq!(applied.get(0x24, 0), None);
    assert_applied(&b, &guest, "diamond rapids + lunar lake");
    // APX on both hosts but MPX on another: neither, with the reason.
    let b = pool(&[cat("intel-diamond-rapids"), cat("intel-skylake-sp")]);
    assert!(reason(&b, ComponentId::APX).contains("MPX and APX"));
    assert!(reason(&b, ComponentId::MPX_BNDREGS).contains("MPX and APX"));
    assert_applied(&b, &guest, "diamond rapids + skylake");
}

#[test]
fn a_host_without_xsave_makes_the_pool_legacy_only() {
    for f in ["no-leaf-0xd-cpuid-r.txt", "no-leaf-0xd-instlat.txt"] {
        let old = dump_host("nehalem", &fixture(f));
        assert!(!old.has_xsave());
        let hosts = [cat("amd-zen3"), old];
        let b = pool(&hosts);
        assert!(!b.xsave);
        assert_eq!((b.xcr0, b.xss, b.xsave_features), (x(0x3), x(0), 0));
        assert!(reason(&b, ComponentId::AVX).contains("nehalem (no XSAVE: legacy-only)"));
        assert_eq!(
            b.cpuid.subleaves[&0],
            CpuidRegs {
                eax: 3,
                ebx: 576,
                ecx: 576,
                edx: 0
            }
        );
        assert_sound(&b, &hosts, OffsetPolicy::Exclude);
        let guest = everything_guest(catalog::get("amd-zen3").unwrap());
        let mut applied = guest.clone();
        b.apply(&mut applied).unwrap();
        assert!(!applied.has_feature(features::XSAVE));
        assert!(!applied.has_feature(features::AVX));
        assert_applied(&b, &guest, f);
    }
    // A guest CPUID without XSAVE stays without it.
    let b = pool(&[cat("intel-sapphire-rapids")]);
    let mut guest = everything_guest(catalog::get("intel-sapphire-rapids").unwrap());
    let mut leaf1 = guest.entry(1, 0).unwrap();
    leaf1.ecx &= !(features::XSAVE.mask() | features::OSXSAVE.mask());
    guest.set(1, 0, leaf1).unwrap();
    assert_applied(&b, &guest, "a guest without XSAVE");
}

#[test]
fn flags_a_host_lacks_are_masked_though_the_component_stays() {
    let Some(dumps) = dumps("flags of the real dumps") else {
        return;
    };
    let find = |part: &str| {
        let (name, text) = dumps.iter().find(|(n, _)| n.contains(part)).unwrap();
        dump_host(name, text)
    };
    let (skx, spr) = (find("SkylakeXeon"), find("SapphireRapids"));
    let b = pool(&[skx.clone(), spr.clone()]);
    // AVX-512 at the same offsets on both: kept, but SPR's AVX512_FP16 is
    // not on Skylake.
    assert_eq!(b.xcr0, x(0x2e7));
    let fp16 = GROUPS
        .iter()
        .flat_map(|g| g.features)
        .find(|f| f.name == "AVX512_FP16")
        .unwrap();
    assert!(spr.cpuid.as_ref().unwrap().has_feature(*fp16));
    let m = b
        .missing_features
        .iter()
        .find(|m| m.feature == *fp16)
        .unwrap();
    assert_eq!(m.hosts, vec![skx.name().to_string()]);
    let mut guest = spr.cpuid.clone().unwrap();
    b.apply(&mut guest).unwrap();
    assert!(!guest.has_feature(*fp16));
    assert!(guest.has_feature(features::AVX512F));
    // OS-controlled flags are never ANDed: the Zen 3 host has PKU without OSPKE.
    let zen3 = find("host-amd-epyc-zen3");
    let b = pool(&[zen3]);
    assert!(b
        .missing_features
        .iter()
        .all(|m| m.feature != features::OSPKE));
}

#[test]
fn templates_touch_only_entries_every_host_has() {
    let b = pool(&[cat("amd-zen4"), cat("intel-sapphire-rapids")]);
    let hosts = [cat("amd-zen4"), cat("intel-sapphire-rapids")];
    let t = b.template(&hosts);
    let keys: Vec<(u32, u32)> = t.entries.iter().map(|e| (e.leaf, e.subleaf)).collect();
    // Leaf 1 and 7.0 exist everywhere; 7.1 and leaf 0x12 are not known to.
    assert!(keys.contains(&(7, 0)) && keys.contains(&(0xd, 0)) && keys.contains(&(0xd, 2)));
    assert!(!keys.contains(&(7, 1)) && !keys.contains(&(0x12, 1)));
    assert!(!t.omitted.is_empty());
    for e in t.entries.iter().filter(|e| e.leaf == 0xd) {
        assert!(e.indexed);
        let regs = b.cpuid.subleaves[&e.subleaf];
        for r in &e.registers {
            assert_eq!((r.mask, r.value), (u32::MAX, r.register.read(&regs)));
        }
    }
    let Some(dumps) = dumps("templates over the real dumps") else {
        return;
    };
    let hosts: Vec<PoolHost> = dumps
        .iter()
        .filter(|(n, _)| n.contains("Sapphire") || n.contains("Genoa"))
        .map(|(n, t)| dump_host(n, t))
        .collect();
    let b = pool(&hosts);
    let t = b.template(&hosts);
    // Both dumps have leaf 7.1: its masks are in.
    assert!(t.entries.iter().any(|e| (e.leaf, e.subleaf) == (7, 1)));
    // Applying the template to each host's CPUID gives what apply gives
    // outside the dropped leaves and leaf 0xD's stale sub-leaves.
    for h in &hosts {
        let mut by_template = h.cpuid.clone().unwrap();
        for e in &t.entries {
            let Some(mut regs) = by_template.entry(e.leaf, e.subleaf) else {
                assert_eq!(e.leaf, 0xd);
                continue;
            };
            for r in &e.registers {
                let slot = r.register.slot(&mut regs);
                *slot = (*slot & !r.mask) | r.value;
            }
            by_template.set(e.leaf, e.subleaf, regs).unwrap();
        }
        let mut by_apply = h.cpuid.clone().unwrap();
        b.apply(&mut by_apply).unwrap();
        for (leaf, sub, regs) in by_apply.iter() {
            assert_eq!(by_template.entry(leaf, sub), Some(regs), "{leaf:#x}.{sub}");
        }
    }
}

// ------------------------------------------------ random pools

/// A random host: a catalog layout with components dropped (which can
/// break XSETBV rules), a component moved, flags flipped, other XSAVE
/// features, sometimes legacy-only, sometimes with a KVM offer.
fn random_host() -> impl Strategy<Value = PoolHost> {
    (
        prop::sample::select(catalog::all().to_vec()),
        any::<u64>(),
        (any::<u8>(), any::<u8>(), any::<u8>()),
        prop_oneof![Just(None), (0u32..0x20).prop_map(Some)],
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop_oneof![
            Just(None),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(Some)
        ],
    )
        .prop_map(
            |(layout, drop, (moved, aligned, xfd), features, legacy, kvm)| {
                let mut host = PoolHost::from(mutate(&layout, drop, moved, aligned, xfd, features));
                if legacy {
                    host = PoolHost::from(Layout::legacy_only("legacy", "GenuineIntel", "random"));
                }
                if let Some((a, b, xss, xfd)) = kvm {
                    // Most of the host's bits, some taken away.
                    let xcr0 = host.layout.xcr0_supported().bits() & (a | b);
                    let mut offer = KvmOffer::new(x(xcr0), 4096, 0xffff);
                    offer.guest_xss = host.layout.xss_supported() & x(xss | a);
                    offer.guest_xfd = xfd;
                    host = host.with_kvm(offer);
                }
                host
            },
        )
}

/// `layout` with the components whose bit is set in `drop` dropped (about
/// one in four: bit pairs), the `moved`-th user component moved up 64
/// bytes, the `aligned`-th component's align64 and the `xfd`-th one's XFD
/// flag flipped, and `features` as its sub-leaf 1 EAX; each change kept
/// only if the geometry stays valid.
fn mutate(
    layout: &Layout,
    drop: u64,
    moved: u8,
    aligned: u8,
    xfd: u8,
    features: Option<u32>,
) -> Layout {
    let mut file = LayoutFile::from_layout(layout);
    file.standard_size = None;
    let valid = |f: &LayoutFile| f.to_layout().ok();
    let mut current = valid(&file).unwrap();
    let try_change =
        |file: &mut LayoutFile, current: &mut Layout, change: &dyn Fn(&mut LayoutFile)| {
            let mut next = file.clone();
            change(&mut next);
            if let Some(l) = valid(&next) {
                *file = next;
                *current = l;
            }
        };
    let ids: Vec<u8> = file.components.iter().map(|c| c.id).collect();
    for (n, id) in ids.iter().enumerate() {
        if drop >> (2 * n) & 3 == 0 {
            let id = *id;
            try_change(&mut file, &mut current, &|f: &mut LayoutFile| {
                f.components.retain(|c| c.id != id);
                let clear = |s: &str| {
                    let v = u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
                    format!("{:#x}", v & !(1 << id))
                };
                f.xcr0_supported = clear(&f.xcr0_supported);
                f.xss_supported = clear(&f.xss_supported);
            });
        }
    }
    let pick = |k: u8, f: &LayoutFile| -> Option<usize> {
        (!f.components.is_empty()).then(|| k as usize % f.components.len())
    };
    if let Some(i) = pick(moved, &file) {
        try_change(&mut file, &mut current, &|f: &mut LayoutFile| {
            let c: &mut ComponentEntry = &mut f.components[i];
            if !c.supervisor {
                c.offset += 64;
            }
        });
    }
    if let Some(i) = pick(aligned, &file) {
        try_change(&mut file, &mut current, &|f: &mut LayoutFile| {
            f.components[i].align64 ^= true;
        });
    }
    if let Some(i) = pick(xfd, &file) {
        try_change(&mut file, &mut current, &|f: &mut LayoutFile| {
            f.components[i].xfd ^= true
        });
    }
    if let Some(eax) = features {
        try_change(&mut file, &mut current, &|f: &mut LayoutFile| {
            f.xsave_features = Some(format!("{eax:#x}"));
        });
    }
    current
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_B0A7),
        failure_persistence: None,
        ..ProptestConfig::with_cases(400)
    })]

    #[test]
    fn random_pools_give_sound_baselines(
        hosts in prop::collection::vec(random_host(), 1..5),
        reference in prop_oneof![Just(None), (0usize..4).prop_map(Some)],
        guest in prop::sample::select(catalog::all().to_vec()),
    ) {
        let offsets = match reference {
            Some(i) if i < hosts.len() => OffsetPolicy::Reference(i),
            _ => OffsetPolicy::Exclude,
        };
        let b = baseline(&hosts, &BaselineOptions { offsets }).unwrap();
        assert_sound(&b, &hosts, offsets);
        assert_applied(&b, &everything_guest(&guest), "random pool");
        let mut json_guest = CpuidSet::from_kvm_json(&everything_guest(&guest).to_kvm_json()).unwrap();
        b.apply(&mut json_guest).unwrap();
        prop_assert_eq!(CpuidSet::from_kvm_json(&json_guest.to_kvm_json()).unwrap(), json_guest);
    }
}

// ------------------------------------------------ impossible bits

/// What a layout may be given that no CPU has: `(component, supervisor)`,
/// bit 63 either way, a supervisor component in XCR0 or a user one in
/// IA32_XSS.
fn impossible_entry() -> impl Strategy<Value = (u8, bool)> {
    prop_oneof![
        any::<bool>().prop_map(|s| (63u8, s)),
        prop::sample::select(vec![8u8, 10, 11, 12, 13, 14, 15, 16]).prop_map(|c| (c, false)),
        prop::sample::select(vec![2u8, 3, 4, 5, 6, 7, 9, 17, 18, 19]).prop_map(|c| (c, true)),
    ]
}

/// `layout` with each of `extra` added (replacing the component where the
/// layout has it) as `(component, supervisor)` says: a user one after the
/// furthest component, a supervisor one at offset 0. `None` when the
/// layout refuses the result (layouts may refuse such geometry on their
/// own; the baseline must not rely on it).
fn with_impossible(layout: &Layout, extra: &[(u8, bool)]) -> Option<Layout> {
    let mut file = LayoutFile::from_layout(layout);
    file.standard_size = None;
    file.name = format!("{}-odd", layout.name());
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let (mut xcr0, mut xss) = (hex(&file.xcr0_supported), hex(&file.xss_supported));
    for &(id, supervisor) in extra {
        file.components.retain(|c| c.id != id);
        xcr0 &= !(1 << id);
        xss &= !(1 << id);
        let end = file
            .components
            .iter()
            .filter(|c| !c.supervisor)
            .map(|c| c.offset + c.size)
            .max()
            .unwrap_or(576)
            .max(576)
            .next_multiple_of(64);
        let size = ComponentId::new(id)
            .and_then(|c| c.info())
            .map_or(64, |i| i.size);
        file.components.push(ComponentEntry {
            id,
            name: None,
            size,
            offset: if supervisor { 0 } else { end },
            supervisor,
            align64: false,
            xfd: false,
        });
        if supervisor {
            xss |= 1 << id;
        } else {
            xcr0 |= 1 << id;
        }
    }
    file.components.sort_by_key(|c| c.id);
    file.xcr0_supported = format!("{xcr0:#x}");
    file.xss_supported = format!("{xss:#x}");
    file.to_layout().ok()
}

#[test]
fn a_layout_with_bit_63_or_a_misfiled_component_gives_no_impossible_baseline() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut tried = 0;
    for extra in [
        &[(63u8, false)][..],
        &[(63, true)],
        &[(8, false)],
        &[(9, true)],
        &[(8, false), (9, true), (63, false)],
    ] {
        let Some(odd) = with_impossible(spr, extra) else {
            common::note(&format!("layouts refuse {extra:?}"));
            continue;
        };
        tried += 1;
        let hosts = [
            PoolHost::from(odd.clone()),
            PoolHost::from(odd.renamed("twin")),
        ];
        let b = pool(&hosts);
        assert!(
            !b.xcr0.intersects(xcr0::SUPERVISOR | xcr0::RESERVED),
            "{extra:?}: XCR0 {}",
            b.xcr0
        );
        assert!(
            xcr0::xss_invalid(b.xss).is_empty(),
            "{extra:?}: IA32_XSS {}",
            b.xss
        );
        for &(id, _) in extra {
            let c = ComponentId::new(id).unwrap();
            assert!(!(b.xcr0 | b.xss).contains(c), "{extra:?}");
            let why = reason(&b, c);
            assert!(
                why.contains("bit 63") || why.contains("enumerate it in"),
                "{extra:?}: {c}: {why}"
            );
        }
        assert_sound(&b, &hosts, OffsetPolicy::Exclude);
        assert_applied(&b, &everything_guest(&odd), &format!("{extra:?}"));
    }
    common::note(&format!("{tried} odd layouts accepted"));
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_0B63),
        failure_persistence: None,
        ..ProptestConfig::with_cases(300)
    })]

    #[test]
    fn no_baseline_offers_impossible_bits(
        base in prop::sample::select(catalog::all().to_vec()),
        extra in prop::collection::vec(impossible_entry(), 1..4),
        copies in 1usize..4,
        others in prop::collection::vec(random_host(), 0..2),
        reference in prop_oneof![Just(None), (0usize..4).prop_map(Some)],
    ) {
        let Some(odd) = with_impossible(&base, &extra) else {
            return Ok(());
        };
        let mut hosts: Vec<PoolHost> = (0..copies)
            .map(|i| PoolHost::from(odd.renamed(&format!("odd-{i}"))))
            .collect();
        hosts.extend(others);
        let offsets = match reference {
            Some(i) if i < hosts.len() => OffsetPolicy::Reference(i),
            _ => OffsetPolicy::Exclude,
        };
        let b = baseline(&hosts, &BaselineOptions { offsets }).unwrap();
        prop_assert!(!b.xcr0.intersects(xcr0::SUPERVISOR | xcr0::RESERVED), "XCR0 {}", b.xcr0);
        prop_assert!(xcr0::xss_invalid(b.xss).is_empty(), "IA32_XSS {}", b.xss);
        prop_assert!(xcr0::is_valid(b.xcr0));
        assert_sound(&b, &hosts, offsets);
        // Leaf 0xD as emitted passes the check on its own.
        let mut leaf = CpuidSet::new();
        for (&sub, &regs) in &b.cpuid.subleaves {
            leaf.set(0xd, sub, regs).unwrap();
        }
        let found: Vec<String> = check(&leaf).iter().map(ToString::to_string).collect();
        prop_assert!(found.is_empty(), "{:#?}", found);
        assert_applied(&b, &everything_guest(&odd), "odd pool");
    }
}

#[test]
fn a_host_whose_cpuid_gives_no_usable_flag_takes_the_group_out() {
    // Sapphire Rapids' leaf 0xD, with AVX512F and every CET flag clear.
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut set = CpuidSet::parse(
        "\
   0x00000000 0x00: eax=0x0000001e ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
   0x00000007 0x00: eax=0x00000001 ebx=0x02000020 ecx=0x00000008 edx=0x010c0020
",
    )
    .unwrap();
    for (sub, regs) in spr.to_cpuid().subleaves {
        set.set(0xd, sub, regs).unwrap();
    }
    let host = PoolHost::from(spr.renamed("spr-dump")).with_cpuid(set);
    let b = pool(std::slice::from_ref(&host));
    assert_eq!(b.xcr0, x(0x60207), "AVX-512 out, AVX, PKRU and AMX stay");
    assert!(
        reason(&b, ComponentId::OPMASK).starts_with(
            "the CPUID of spr-dump lacks AVX512F (CPUID.(EAX=0x7,ECX=0):EBX[16]), without which \
             no OS enables AVX-512"
        ),
        "{}",
        reason(&b, ComponentId::OPMASK)
    );
    // CET needs CET_SS or CET_IBT: both clear here. PT, UINTR and arch LBR
    // have theirs (7.0 EBX[25], EDX[5], EDX[19]).
    assert!(!b.xss.intersects(x(0x1800)), "{}", b.xss);
    assert!(reason(&b, ComponentId::CET_U).contains("lacks CET_SS"));
    assert!(b.xss.contains_all(x(0xc100)), "{}", b.xss);
    assert_sound(&b, &[host], OffsetPolicy::Exclude);
}

/// Checks what the Sapphire Rapids + Lunar Lake baseline gives a guest
/// whose IA32_XSS is CET only (0x1800) and whose INTEL_PT and ARCH_LBR are
/// clear: nothing it lacked, the rest exactly.
fn assert_cet_only_guest_narrowed(guest: &CpuidSet, what: &str) {
    let b = pool(&[cat("intel-sapphire-rapids"), cat("intel-lunar-lake")]);
    assert_eq!(
        (b.xcr0, b.xss),
        (x(0x207), x(0xd900)),
        "the pool offers PT, UINTR, arch LBR"
    );
    let mut applied = guest.clone();
    let got = b.apply(&mut applied).unwrap();
    assert_eq!((got.xcr0, got.xss), (x(0x207), x(0x1800)), "{what}");
    let s1 = applied.get(0xd, 1).unwrap();
    assert_eq!(s1.ecx, 0x1800, "{what}: {s1:?}");
    // Compacted: 576 + AVX 256 + PKRU 8 + CET_U 16 + CET_S 24.
    assert_eq!(s1.ebx, 576 + 256 + 8 + 16 + 24, "{what}");
    for sub in [8, 0xe, 0xf] {
        assert_eq!(applied.get(0xd, sub), None, "{what}: sub-leaf {sub:#x}");
    }
    for (c, why) in [
        (ComponentId::PT, "not in the guest CPUID's IA32_XSS 0x1800"),
        (
            ComponentId::UINTR,
            "not in the guest CPUID's IA32_XSS 0x1800",
        ),
        (ComponentId::LBR, "not in the guest CPUID's IA32_XSS 0x1800"),
    ] {
        assert!(
            reason(&got, c).starts_with(why),
            "{what}: {c}: {}",
            reason(&got, c)
        );
    }
    assert!(!applied.has_feature(features::INTEL_PT) && !applied.has_feature(features::ARCH_LBR));
    let found: Vec<String> = check(&applied).iter().map(ToString::to_string).collect();
    assert!(found.is_empty(), "{what}: {found:#?}");
    assert_applied(&b, guest, what);
}

#[test]
fn applying_a_baseline_never_widens_the_guest() {
    // Sapphire Rapids' leaf 0xD with IA32_XSS 0x1800 only; AVX, AVX-512,
    // PKU, CET_SS, AMX flags; INTEL_PT and ARCH_LBR clear.
    let mut guest = CpuidSet::parse(
        "\
   0x00000000 0x00: eax=0x0000001e ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
   0x00000007 0x00: eax=0x00000001 ebx=0x00010020 ecx=0x00000088 edx=0x01000000
",
    )
    .unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap().to_cpuid();
    for (sub, regs) in &spr.subleaves {
        if ![8, 10, 14, 15].contains(sub) {
            guest.set(0xd, *sub, *regs).unwrap();
        }
    }
    let mut s1 = guest.get(0xd, 1).unwrap();
    s1.ecx = 0x1800;
    guest.set(0xd, 1, s1).unwrap();
    assert_cet_only_guest_narrowed(&guest, "made-up SPR guest");

    // The report's guest: this machine kind's Emerald Rapids host.
    if let Some(dir) = common::shared_cpuid_dir("apply to the Emerald Rapids dump") {
        let text = std::fs::read_to_string(dir.join("host-intel-emr-cpuid-r.txt")).unwrap();
        let emr = CpuidSet::parse(&text).unwrap();
        assert_eq!(emr.xss_supported(), x(0x1800));
        assert_cet_only_guest_narrowed(&emr, "host-intel-emr-cpuid-r.txt");
    }

    // A guest with less than the baseline in XCR0 and without XSAVES.
    let b = pool(&[cat("intel-sapphire-rapids")]);
    let mut small = CpuidSet::parse(
        "\
   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
   0x00000007 0x00: eax=0x00000000 ebx=0x00010020 ecx=0x00000008 edx=0x01000000
   0x0000000d 0x00: eax=0x000000e7 ebx=0x00000a80 ecx=0x00000a80 edx=0x00000000
   0x0000000d 0x01: eax=0x00000001 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
",
    )
    .unwrap();
    let got = b.apply(&mut small).unwrap();
    assert_eq!((got.xcr0, got.xss, got.xsave_features), (x(0xe7), x(0), 1));
    assert_eq!(small.get(0xd, 0).unwrap().ecx, 0xa80);
    assert_eq!(
        small.get(0xd, 1).unwrap(),
        CpuidRegs {
            eax: 1,
            ebx: 0,
            ecx: 0,
            edx: 0
        }
    );
    assert!(reason(&got, ComponentId::PKRU).starts_with("not in the guest CPUID's XCR0 0xe7"));
    assert!(reason(&got, ComponentId::TILEDATA).starts_with("not in the guest CPUID's XCR0"));
    assert!(!small.has_feature(features::AMX_TILE) && !small.has_feature(features::PKU));
    assert!(check(&small).is_empty(), "{:?}", check(&small));
    // XCR0 bits without the flags that make them usable go too.
    let mut no_flags = CpuidSet::parse(
        "\
   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x0c000000 edx=0x00000000
   0x00000007 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x00: eax=0x000000e7 ebx=0x00000a80 ecx=0x00000a80 edx=0x00000000
   0x0000000d 0x01: eax=0x0000000f ebx=0x00000000 ecx=0x00000000 edx=0x00000000
",
    )
    .unwrap();
    let got = b.apply(&mut no_flags).unwrap();
    assert_eq!(got.xcr0, x(0x3));
    assert!(reason(&got, ComponentId::AVX).starts_with(
        "the guest CPUID lacks AVX (CPUID.(EAX=0x1,ECX=0):ECX[28]), without which no OS enables AVX"
    ));
    assert!(reason(&got, ComponentId::OPMASK).contains("lacks AVX512F"));
    assert!(check(&no_flags).is_empty(), "{:?}", check(&no_flags));
}

// ------------------------------------------------ what a baseline emits passes the check

/// `host` with the baseline as emitted, unnarrowed: leaf 0xD replaced,
/// its feature masks cleared, its leaves dropped (what a VMM does with
/// `pool baseline --json` on each host).
fn with_emitted(b: &Baseline, host: &CpuidSet) -> CpuidSet {
    let mut set = host.clone();
    set.clear_masks(&b.feature_masks);
    for &l in &b.drop_leaves {
        set.remove_leaf(l);
    }
    set.remove_leaf(0xd);
    set.set_indexed(0xd, true);
    for (&sub, &regs) in &b.cpuid.subleaves {
        set.set(0xd, sub, regs).unwrap();
    }
    set
}

/// `host` with a CPU template applied as Firecracker applies one: the bits
/// of each modifier's mask take its value, the rest stay the host's.
fn with_template(t: &CpuTemplate, host: &CpuidSet) -> CpuidSet {
    let mut set = host.clone();
    for e in &t.entries {
        let mut regs = set.entry(e.leaf, e.subleaf).unwrap_or_default();
        for r in &e.registers {
            let slot = r.register.slot(&mut regs);
            *slot = (*slot & !r.mask) | (r.value & r.mask);
        }
        set.set(e.leaf, e.subleaf, regs).unwrap();
    }
    set
}

/// Every flag whose absence takes something from a guest: the flags that
/// enable a group, XSAVE and leaf 0xD sub-leaf 1 EAX's XSAVE features.
fn flags_that_matter() -> Vec<FeatureBit> {
    let mut out: Vec<FeatureBit> = GROUPS
        .iter()
        .flat_map(|g| g.enabled_by.iter().copied())
        .collect();
    out.extend([
        features::XSAVE,
        features::XSAVEOPT,
        features::XSAVEC,
        features::XGETBV1,
        features::XSAVES,
        features::XFD,
    ]);
    out
}

/// `set` with `flags` cleared (those it has).
fn without(set: &CpuidSet, flags: &[FeatureBit]) -> CpuidSet {
    let mut out = set.clone();
    for f in flags {
        if let Some(mut regs) = out.entry(f.leaf, f.subleaf) {
            *f.register.slot(&mut regs) &= !f.mask();
            out.set(f.leaf, f.subleaf, regs).unwrap();
        }
    }
    out
}

fn assert_consistent(set: &CpuidSet, what: &str) {
    let found: Vec<String> = check(set).iter().map(ToString::to_string).collect();
    assert!(found.is_empty(), "{what}: {found:#?}");
}

/// Checks everything `b` emits for `hosts`: leaf 0xD and the masks on each
/// host's own CPUID, the CPU template there when what it leaves out is
/// not on that host,
/// and the baseline applied to each guest.
/// Returns how many templates it checked.
fn assert_emitted_consistent(
    b: &Baseline,
    hosts: &[PoolHost],
    guests: &[(String, CpuidSet)],
) -> usize {
    let names = hosts
        .iter()
        .map(PoolHost::name)
        .collect::<Vec<_>>()
        .join(" + ");
    let template = b.template(hosts);
    let mut templates = 0;
    for h in hosts {
        let Some(cpuid) = &h.cpuid else { continue };
        assert_consistent(
            &with_emitted(b, cpuid),
            &format!("{names}: baseline on {}", h.name()),
        );
        // What the template leaves out (it warns) matters only on a host
        // that has the entry.
        let untouched = template.omitted.iter().all(|o| match *o {
            Omitted::Mask(m) => cpuid.entry(m.leaf, m.subleaf).is_none(),
            Omitted::Leaf(l) => cpuid.iter().all(|(leaf, _, _)| leaf != l),
        });
        if untouched {
            assert_consistent(
                &with_template(&template, cpuid),
                &format!("{names}: template on {}", h.name()),
            );
            templates += 1;
        }
    }
    for (guest, set) in guests {
        let mut applied = set.clone();
        b.apply(&mut applied).unwrap();
        assert_consistent(&applied, &format!("{names} applied to {guest}"));
        assert_applied(b, set, &format!("{names} applied to {guest}"));
    }
    templates
}

/// The real dumps as guests, as they are and with each flag that matters
/// cleared in turn (a guest CPU model with IBT but no shadow stacks, AVX
/// but no AVX-512, no XSAVES, ...).
fn flag_cleared_guests(dumps: &[(String, String)]) -> Vec<(String, CpuidSet)> {
    let mut guests = Vec::new();
    for (name, text) in dumps {
        let set = CpuidSet::parse(text).unwrap();
        for f in flags_that_matter() {
            if set.has_feature(f) {
                guests.push((format!("{name} without {}", f.name), without(&set, &[f])));
            }
        }
        guests.push((name.clone(), set));
    }
    guests
}

#[test]
fn everything_a_baseline_emits_passes_the_check() {
    let Some(dumps) = dumps("emitted baselines over the real dumps") else {
        return;
    };
    let mut sources: Vec<PoolHost> = catalog::all().iter().cloned().map(PoolHost::from).collect();
    sources.extend(dumps.iter().map(|(n, t)| dump_host(n, t)));
    // The dumps with each flag cleared are pool hosts too.
    let guests = flag_cleared_guests(&dumps);
    let cleared: Vec<PoolHost> = guests
        .iter()
        .filter_map(|(n, set)| {
            Some(PoolHost::new(set.to_layout(n, "test").ok()?).with_cpuid(set.clone()))
        })
        .collect();
    let n = sources.len();
    let (mut pools, mut templates) = (0, 0);
    for i in 0..n {
        for j in i..n {
            let hosts: Vec<PoolHost> = if i == j {
                vec![sources[i].clone()]
            } else {
                vec![sources[i].clone(), sources[j].clone()]
            };
            templates += assert_emitted_consistent(&pool(&hosts), &hosts, &guests);
            pools += 1;
        }
    }
    for c in &cleared {
        for s in &sources {
            let hosts = [s.clone(), c.clone()];
            templates += assert_emitted_consistent(&pool(&hosts), &hosts, &[]);
            pools += 1;
        }
    }
    common::note(&format!(
        "{pools} pools checked on their hosts' CPUIDs ({templates} CPU templates), the first \
         {} applied to {} guests",
        n * (n + 1) / 2,
        guests.len()
    ));
    assert!(templates > 100, "{templates} templates checked");
}

/// The report's case: an Emerald Rapids guest with IBT but no shadow
/// stacks, in a pool with a Milan host (shadow stacks, no IBT). Masking
/// IBT leaves the guest no CET flag, so CET goes too.
#[test]
fn a_guest_left_without_any_cet_flag_loses_cet() {
    let Some(dumps) = dumps("the IBT-only guest") else {
        return;
    };
    let find = |part: &str| dumps.iter().find(|(n, _)| n.contains(part)).unwrap();
    let (mn, mt) = find("Milan");
    let milan = dump_host(mn, mt);
    let emr = CpuidSet::parse(&find("host-intel-emr").1).unwrap();
    assert!(emr.has_feature(features::CET_SS) && emr.has_feature(features::CET_IBT));
    let ibt_only = without(&emr, &[features::CET_SS]);
    assert_consistent(&ibt_only, "the IBT-only guest");
    let b = pool(std::slice::from_ref(&milan));
    assert!(b.xss.contains_all(x(0x1800)), "Milan has CET: {}", b.xss);
    let mut guest = ibt_only.clone();
    let got = b.apply(&mut guest).unwrap();
    assert!(!got.xss.intersects(x(0x1800)), "{}", got.xss);
    assert!(
        reason(&got, ComponentId::CET_U).contains("CET_IBT"),
        "{}",
        reason(&got, ComponentId::CET_U)
    );
    assert!(!guest.has_feature(features::CET_IBT));
    assert_consistent(&guest, "Milan applied to the IBT-only guest");
    // The same two as hosts: no CET flag is on both, so CET is out of the
    // baseline itself (and of its Firecracker template).
    let ibt_host = PoolHost::new(ibt_only.to_layout("emr-ibt-only", "test").unwrap())
        .with_cpuid(ibt_only.clone());
    let hosts = [milan, ibt_host];
    let b = pool(&hosts);
    assert!(!b.xss.intersects(x(0x1800)), "{}", b.xss);
    let why = reason(&b, ComponentId::CET_S);
    assert!(why.contains("CET_SS") && why.contains("CET_IBT"), "{why}");
    assert_emitted_consistent(&b, &hosts, &[]);
}

/// The real dumps, read once for the property test below.
fn dump_sets() -> &'static [(String, CpuidSet)] {
    static SETS: std::sync::OnceLock<Vec<(String, CpuidSet)>> = std::sync::OnceLock::new();
    SETS.get_or_init(|| {
        dumps("random flag-cleared pools and guests")
            .unwrap_or_default()
            .into_iter()
            .map(|(n, t)| {
                let set = CpuidSet::parse(&t).unwrap();
                (n, set)
            })
            .collect()
    })
}

/// A real dump with a random subset of the flags that matter cleared.
fn cleared_dump() -> impl Strategy<Value = Option<(String, CpuidSet)>> {
    // Each flag cleared with probability 1/4: mostly a few at a time.
    (any::<prop::sample::Index>(), any::<u64>(), any::<u64>()).prop_map(|(i, a, b)| {
        let bits = a & b;
        let sets = dump_sets();
        if sets.is_empty() {
            return None;
        }
        let (name, set) = &sets[i.index(sets.len())];
        let flags: Vec<FeatureBit> = flags_that_matter()
            .into_iter()
            .enumerate()
            .filter(|(n, _)| bits >> n & 1 != 0)
            .map(|(_, f)| f)
            .collect();
        let names: Vec<&str> = flags.iter().map(|f| f.name).collect();
        Some((
            format!("{name} without {}", names.join(", ")),
            without(set, &flags),
        ))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_0CE7),
        failure_persistence: None,
        ..ProptestConfig::with_cases(300)
    })]

    /// Pools of real dumps with random flags cleared, and guests likewise:
    /// what the baseline emits, on each host and applied to the guest,
    /// passes the check.
    #[test]
    fn flag_cleared_pools_and_guests_emit_consistent_cpuids(
        members in prop::collection::vec(cleared_dump(), 1..4),
        guest in cleared_dump(),
    ) {
        let hosts: Vec<PoolHost> = members
            .into_iter()
            .flatten()
            .filter_map(|(n, set)| {
                Some(PoolHost::new(set.to_layout(&n, "test").ok()?).with_cpuid(set))
            })
            .collect();
        if hosts.is_empty() {
            return Ok(());
        }
        let b = pool(&hosts);
        assert_sound(&b, &hosts, OffsetPolicy::Exclude);
        assert_emitted_consistent(&b, &hosts, &guest.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn a_guest_cpuid_cut_short_is_refused_unchanged() {
    let b = pool(&[cat("intel-sapphire-rapids")]);
    // Leaf 0 promises leaf 0x1e and leaf 1 sets XSAVE, but leaf 0xD is
    // missing; and without leaf 0, leaf 1 setting XSAVE says the same.
    let with_leaf0 = "\
   0x00000000 0x00: eax=0x0000001e ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
   0x00000007 0x00: eax=0x00000001 ebx=0x00010020 ecx=0x00000008 edx=0x01000000
";
    let without_leaf0 = with_leaf0.lines().skip(1).collect::<Vec<_>>().join("\n");
    for (text, max_leaf) in [(with_leaf0, Some(0x1e)), (&without_leaf0[..], None)] {
        let guest = CpuidSet::parse(text).unwrap();
        let mut applied = guest.clone();
        let e = b.apply(&mut applied).unwrap_err();
        assert_eq!(
            e,
            PoolError::GuestIncomplete(LayoutError::MissingLeaf0xD { max_leaf })
        );
        assert_eq!(applied, guest);
    }
    // A guest whose leaf 1 clears XSAVE, or whose leaf 0 stops below 0xD,
    // is a guest without XSAVE: taken.
    for (from, to) in [
        ("ecx=0x1c000000", "ecx=0x10000000"),
        ("eax=0x0000001e", "eax=0x0000000b"),
    ] {
        let mut guest = CpuidSet::parse(&with_leaf0.replace(from, to)).unwrap();
        let got = b.apply(&mut guest).unwrap();
        assert_eq!(got.xcr0, x(0x3), "{to}");
    }
}
