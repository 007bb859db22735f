//! The shipped catalog against real CPUID dumps, and the facts every layout
//! must respect.

mod common;

use std::path::PathBuf;

use xstate::cpuid::{At, CpuidSet, CpuidSetError};
use xstate::layout::{catalog, diff, DumpError, FileError, LayoutSource, SourceError};
use xstate::{ComponentId, Layout, LayoutError, Xfeatures};

/// Component `n` (0..=63).
fn id(n: u8) -> ComponentId {
    ComponentId::new(n).unwrap()
}

fn dump_dir() -> Option<PathBuf> {
    common::shared_cpuid_dir("layouts against the shared CPUID dumps")
}

fn from_dump(dir: &std::path::Path, file: &str) -> Layout {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    Layout::from_dump(file, &text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn catalog_layouts_match_the_cpuid_dumps_they_came_from() {
    let Some(dir) = dump_dir() else { return };
    for (file, name) in [
        ("GenuineIntel0050654_SkylakeXeon_20.txt", "intel-skylake-sp"),
        (
            "GenuineIntel00806F8_SapphireRapids_05.txt",
            "intel-sapphire-rapids",
        ),
        ("GenuineIntel00B06D1_LunarLake_04.txt", "intel-lunar-lake"),
        ("AuthenticAMD0A00F11_K19_Milan_02.txt", "amd-zen3"),
        ("AuthenticAMD0A10F11_K19_Genoa_01.txt", "amd-zen4"),
        ("host-amd-epyc-zen3-cpuid-r.txt", "amd-zen3"),
    ] {
        let dumped = from_dump(&dir, file);
        let shipped = catalog::get(name).unwrap();
        assert_eq!(diff(&dumped, shipped), vec![], "{file} vs {name}");
        assert_eq!(dumped.xcr0_supported(), shipped.xcr0_supported(), "{file}");
        assert_eq!(dumped.xss_supported(), shipped.xss_supported(), "{file}");
        assert_eq!(dumped.standard_size(), shipped.standard_size(), "{file}");
        assert_eq!(dumped.vendor(), shipped.vendor(), "{file}");
        assert_eq!(dumped.mxcsr_mask(), shipped.mxcsr_mask(), "{file}");
        assert_eq!(dumped.fingerprint(), shipped.fingerprint(), "{file}");
        // Loading the dump by path gives the same layout.
        let path = dir.join(file);
        let loaded = LayoutSource::parse(path.to_str().unwrap()).load().unwrap();
        assert_eq!(loaded.fingerprint(), shipped.fingerprint());
    }
}

#[test]
fn vendor_and_generation_facts() {
    let get = |n| catalog::get(n).unwrap();
    assert_eq!(get("amd-zen3").offset(ComponentId::PKRU), Some(2432));
    assert_eq!(get("amd-zen4").offset(ComponentId::PKRU), Some(2432));
    assert_eq!(
        get("intel-skylake-sp").offset(ComponentId::PKRU),
        Some(2688)
    );
    assert_eq!(
        get("intel-lunar-lake").offset(ComponentId::PKRU),
        Some(2688)
    );
    assert_eq!(get("amd-zen4").offset(ComponentId::OPMASK), Some(832));
    assert_eq!(
        get("intel-sapphire-rapids").offset(ComponentId::OPMASK),
        Some(1088)
    );
    assert_eq!(get("intel-sapphire-rapids").standard_size(), 11008);
    assert_eq!(get("intel-lunar-lake").standard_size(), 2696);
    assert_eq!(get("amd-zen4").standard_size(), 2440);
    assert_eq!(
        get("intel-skylake-sp").offset(ComponentId::MPX_BNDREGS),
        Some(960)
    );
    // AMD's standard offsets equal Intel's compacted ones for AVX-512.
    let spr = get("intel-sapphire-rapids");
    let zen4 = get("amd-zen4");
    for c in [
        ComponentId::AVX,
        ComponentId::OPMASK,
        ComponentId::ZMM_HI256,
        ComponentId::HI16_ZMM,
    ] {
        assert_eq!(
            spr.compacted_offset(spr.xcr0_supported(), c),
            zen4.offset(c),
            "{c:?}"
        );
    }
    // AMX tile data is 64-byte aligned and XFD-capable.
    let tiles = spr.geometry(ComponentId::TILEDATA).unwrap();
    assert!(tiles.align64 && tiles.xfd);
    // MXCSR masks differ: AMD's bit 17.
    assert_eq!(zen4.mxcsr_mask(), 0x2FFFF);
    assert_eq!(spr.mxcsr_mask(), 0xFFFF);
}

#[test]
fn the_apx_layout_puts_r16_r31_where_mpx_was() {
    let dmr = catalog::get("intel-diamond-rapids").unwrap();
    let apx = dmr.geometry(ComponentId::APX).unwrap();
    assert_eq!((apx.offset, apx.size), (960, 128));
    assert!(!dmr.has(ComponentId::MPX_BNDREGS) && !dmr.has(ComponentId::MPX_BNDCSR));
    assert!(dmr.source().contains("no silicon dump"), "{}", dmr.source());
    // Compacted, APX comes after every lower component, AMX included.
    let all = dmr.xcr0_supported();
    let tiles = dmr.compacted_offset(all, ComponentId::TILEDATA).unwrap();
    assert_eq!(
        dmr.compacted_offset(all, ComponentId::APX),
        Some(tiles + 8192)
    );
    // Standard offsets no longer rise with the component number.
    assert!(dmr.offset(ComponentId::APX).unwrap() < dmr.offset(ComponentId::PKRU).unwrap());
}

#[test]
fn the_host_layout_agrees_with_cpuid() {
    let host = xstate::host::layout().unwrap();
    assert_eq!(host.xcr0_supported() & Xfeatures::LEGACY, Xfeatures::LEGACY);
    assert!(host.standard_size() >= 576);
    let leaf = core::arch::x86_64::__cpuid_count(0xD, 0);
    assert_eq!(host.standard_size(), leaf.ecx);
    assert_eq!(
        host.xcr0_supported().bits(),
        u64::from(leaf.edx) << 32 | u64::from(leaf.eax)
    );
    for g in host.components().filter(|g| !g.id.is_legacy()) {
        let r = core::arch::x86_64::__cpuid_count(0xD, u32::from(g.id.index()));
        assert_eq!(
            (g.size, g.offset),
            (r.eax, r.ebx),
            "component {}",
            g.id.index()
        );
    }
    eprintln!(
        "host layout: XCR0 {:#x}, {} bytes",
        host.xcr0_supported(),
        host.standard_size()
    );
}

#[test]
fn dump_formats_are_detected_and_bad_dumps_refused() {
    let fixtures = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"));
    let instlat = std::fs::read_to_string(fixtures.join("two-cpus-instlat.txt")).unwrap();
    let l = Layout::from_dump("two", &instlat).unwrap();
    // Only the first CPU of a multi-CPU dump is read.
    assert_eq!(l.vendor(), "GenuineIntel");
    assert_eq!(l.offset(ComponentId::PKRU), Some(2688));
    assert!(l.source().contains("InstLatx64"));
    let raw = std::fs::read_to_string(fixtures.join("unknown-component-cpuid-r.txt")).unwrap();
    let u = Layout::from_dump("unknown", &raw).unwrap();
    assert!(u.source().contains("cpuid -r"));
    // A component past 19 is kept, not dropped.
    let g = u.geometry(id(21)).unwrap();
    assert_eq!((g.size, g.offset), (64, 2816));
    assert_eq!(id(21).to_string(), "component 21");
    assert!(Layout::from_dump("x", "hello\nworld\n").is_err());
    // Leaf 0 saying leaf 0xD exists (maximum basic leaf 0x16), but no leaf
    // 0xD: an incomplete dump, refused (not read as legacy-only).
    let no_leaf_d = "CPUID 00000000: 00000016-756E6547-6C65746E-49656E69\n";
    assert_eq!(
        Layout::from_dump("x", no_leaf_d).unwrap_err(),
        DumpError::Layout(LayoutError::MissingLeaf0xD {
            max_leaf: Some(0x16)
        })
    );
    // Leaf 0 saying there is no leaf 0xD (maximum basic leaf 0xB): a CPU
    // without XSAVE, legacy-only.
    let old = "CPUID 00000000: 0000000B-756E6547-6C65746E-49656E69\n";
    let legacy = Layout::from_dump("x", old).unwrap();
    assert!(!legacy.has_xsave());
    assert_eq!(legacy.xcr0_supported(), Xfeatures::LEGACY);
    // Neither leaf 0, 1 nor 0xD: nothing says what the CPU is.
    let only_leaf_7 = "CPUID 00000007: 00000000-00000000-00000000-00000000 [SL 00]\n";
    assert_eq!(
        Layout::from_dump("x", only_leaf_7).unwrap_err(),
        DumpError::NoLeaf0xD
    );
}

// ------------------------------------------------ the dumps, component by component

/// Every component the dump enumerates, as (index, size, offset, supervisor,
/// align64, xfd).
fn table(l: &Layout) -> Vec<(u8, u32, u32, bool, bool, bool)> {
    l.components()
        .map(|g| {
            (
                g.id.index(),
                g.size,
                g.offset,
                g.supervisor,
                g.align64,
                g.xfd,
            )
        })
        .collect()
}

#[test]
fn each_dump_matches_its_catalog_layout_exactly() {
    let Some(dir) = dump_dir() else { return };
    for (file, name, format) in [
        (
            "GenuineIntel0050654_SkylakeXeon_20.txt",
            "intel-skylake-sp",
            "InstLatx64",
        ),
        (
            "GenuineIntel00806F8_SapphireRapids_05.txt",
            "intel-sapphire-rapids",
            "InstLatx64",
        ),
        (
            "GenuineIntel00B06D1_LunarLake_04.txt",
            "intel-lunar-lake",
            "InstLatx64",
        ),
        (
            "AuthenticAMD0A00F11_K19_Milan_02.txt",
            "amd-zen3",
            "InstLatx64",
        ),
        (
            "AuthenticAMD0A10F11_K19_Genoa_01.txt",
            "amd-zen4",
            "InstLatx64",
        ),
    ] {
        let dumped = from_dump(&dir, file);
        let shipped = catalog::get(name).unwrap();
        assert!(
            dumped.source().contains(format),
            "{file}: {}",
            dumped.source()
        );
        assert_eq!(table(&dumped), table(shipped), "{file} vs {name}");
        assert_eq!(dumped.xcr0_supported(), shipped.xcr0_supported(), "{file}");
        assert_eq!(dumped.xss_supported(), shipped.xss_supported(), "{file}");
        assert_eq!(dumped.standard_size(), shipped.standard_size(), "{file}");
        assert_eq!(dumped.compacted_size(), shipped.compacted_size(), "{file}");
    }
}

#[test]
fn the_host_cpuid_r_capture_matches_zen3_user_components() {
    let Some(dir) = dump_dir() else { return };
    let host = from_dump(&dir, "host-amd-epyc-zen3-cpuid-r.txt");
    let zen3 = catalog::get("amd-zen3").unwrap();
    assert!(host.source().contains("cpuid -r"), "{}", host.source());
    assert_eq!(host.vendor(), "AuthenticAMD");
    let user = |l: &Layout| table(l).into_iter().filter(|c| !c.3).collect::<Vec<_>>();
    assert_eq!(user(&host), user(zen3));
    assert_eq!(host.xcr0_supported(), zen3.xcr0_supported());
    assert_eq!(host.standard_size(), zen3.standard_size());
    // The two formats of two Zen 3 parts: one geometry.
    let milan = from_dump(&dir, "AuthenticAMD0A00F11_K19_Milan_02.txt");
    assert_eq!(user(&host), user(&milan));
}

#[test]
fn the_intel_host_capture_matches_sapphire_rapids_user_components() {
    let Some(dir) = dump_dir() else { return };
    let emr = from_dump(&dir, "host-intel-emr-cpuid-r.txt");
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    assert_eq!(emr.vendor(), "GenuineIntel");
    let user = |l: &Layout| table(l).into_iter().filter(|c| !c.3).collect::<Vec<_>>();
    assert_eq!(user(&emr), user(spr));
    assert_eq!(emr.xcr0_supported().bits(), 0x602e7);
    assert_eq!(emr.standard_size(), 11008);
    assert_eq!(emr.offset(ComponentId::PKRU), Some(2688));
    // What KVM offers guests there is smaller than the host layout: XCR0
    // 0x2e7 (no AMX) fits in the 4096-byte kvm_xsave.
    assert!(emr.standard_size_for(Xfeatures::from_bits(0x2e7)) <= 4096);
    // The two hosts this machine kind has had: no component sits at the
    // same offset with a different size, and PKRU moves (AMD 2432, Intel 2688).
    let zen3 = from_dump(&dir, "host-amd-epyc-zen3-cpuid-r.txt");
    assert_eq!(zen3.offset(ComponentId::PKRU), Some(2432));
    assert_eq!(zen3.mxcsr_mask(), 0x2FFFF);
    assert_eq!(emr.mxcsr_mask(), 0xFFFF);
}

#[test]
fn facts_read_from_the_dumps() {
    let Some(dir) = dump_dir() else { return };
    let skx = from_dump(&dir, "GenuineIntel0050654_SkylakeXeon_20.txt");
    let spr = from_dump(&dir, "GenuineIntel00806F8_SapphireRapids_05.txt");
    let lnl = from_dump(&dir, "GenuineIntel00B06D1_LunarLake_04.txt");
    let milan = from_dump(&dir, "AuthenticAMD0A00F11_K19_Milan_02.txt");
    let genoa = from_dump(&dir, "AuthenticAMD0A10F11_K19_Genoa_01.txt");
    // PKRU: AMD 2432, Intel 2688 (with or without AVX-512).
    for l in [&milan, &genoa] {
        assert_eq!(l.offset(ComponentId::PKRU), Some(2432), "{}", l.name());
        assert_eq!(l.standard_size(), 2440, "{}", l.name());
    }
    for l in [&skx, &spr, &lnl] {
        assert_eq!(l.offset(ComponentId::PKRU), Some(2688), "{}", l.name());
    }
    // Zen 4 packs AVX-512 right after AVX: no MPX hole.
    assert_eq!(genoa.offset(ComponentId::OPMASK), Some(832));
    assert_eq!(genoa.offset(ComponentId::ZMM_HI256), Some(896));
    assert_eq!(genoa.offset(ComponentId::HI16_ZMM), Some(1408));
    assert_eq!(skx.offset(ComponentId::OPMASK), Some(1088));
    // Lunar Lake: a hole where AVX-512 would be, max size 2696.
    assert!(!lnl.has(ComponentId::OPMASK));
    assert_eq!(lnl.standard_size(), 2696);
    // Sapphire Rapids: AMX, max size 11008, tiles aligned and XFD-capable.
    assert_eq!(spr.standard_size(), 11008);
    assert_eq!(spr.offset(ComponentId::TILECFG), Some(2752));
    assert_eq!(spr.offset(ComponentId::TILEDATA), Some(2816));
    let tiles = spr.geometry(ComponentId::TILEDATA).unwrap();
    assert!(tiles.align64 && tiles.xfd);
    let cfg = spr.geometry(ComponentId::TILECFG).unwrap();
    assert!(cfg.align64 && !cfg.xfd);
    // Skylake-SP: MPX at 960 and 1024.
    assert_eq!(skx.offset(ComponentId::MPX_BNDREGS), Some(960));
    assert_eq!(skx.offset(ComponentId::MPX_BNDCSR), Some(1024));
    // CPUID.(0xD,1).EBX is the XSAVES size for the components enabled when
    // the dump was taken; the engine's compacted sizes agree:
    // Sapphire Rapids, XCR0 0x602e7 + PT: 10880 (0x2A80);
    assert_eq!(
        spr.compacted_size_for(Xfeatures::from_bits(0x602e7 | 0x100)),
        0x2A80
    );
    // Skylake-SP, XCR0 0xff (sub-leaf 0 EBX 2688 = PKRU off) + PT: 2688;
    assert_eq!(
        skx.compacted_size_for(Xfeatures::from_bits(0xff | 0x100)),
        0xA80
    );
    // Genoa, XCR0 0xe7 (sub-leaf 0 EBX 2432 = PKRU off) + CET_U: 2448;
    assert_eq!(
        genoa.compacted_size_for(Xfeatures::from_bits(0xe7 | 0x800)),
        0x990
    );
    // Milan, XCR0 0x7: 832.
    assert_eq!(milan.compacted_size_for(Xfeatures::from_bits(0x7)), 0x340);
    // Supervisor components have no standard offset.
    assert_eq!(spr.offset(ComponentId::PT), None);
    assert!(spr.geometry(ComponentId::PT).unwrap().supervisor);
}

#[test]
fn catalog_facts_for_the_apx_part() {
    let dmr = catalog::get("intel-diamond-rapids").unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    assert_eq!(dmr.offset(ComponentId::APX), Some(960));
    assert_eq!(dmr.size(ComponentId::APX), Some(128));
    assert!(!dmr.has(ComponentId::MPX_BNDREGS));
    assert!(!dmr.has(ComponentId::MPX_BNDCSR));
    assert_eq!(dmr.standard_size(), 11008);
    // Otherwise the Sapphire Rapids geometry.
    for g in spr.components() {
        assert_eq!(dmr.geometry(g.id), Some(g), "component {}", g.id.index());
    }
    assert_eq!(dmr.supported(), spr.supported() | ComponentId::APX.bit());
}

#[test]
fn truncated_dumps_never_panic() {
    let Some(dir) = dump_dir() else { return };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for n in 0..=lines.len() {
            let _ = Layout::from_dump("cut", &lines[..n].join("\n"));
        }
        // Cut in the middle of every line too.
        for (i, line) in lines.iter().enumerate() {
            let mut cut = lines[..i].join("\n");
            cut.push('\n');
            cut.push_str(&line[..line.len() / 2]);
            let _ = Layout::from_dump("cut", &cut);
        }
    }
}

// ------------------------------------------------ the project's own fixtures

fn fixture(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    std::fs::read_to_string(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn both_formats_of_one_made_up_cpu_read_alike() {
    use xstate::layout::CpuidLeaf0xD;

    let instlat = fixture("made-up-two-cpus-instlat.txt");
    let raw = fixture("made-up-two-cpus-cpuid-r.txt");
    let a = CpuidLeaf0xD::from_dump(&instlat).unwrap();
    let b = CpuidLeaf0xD::from_dump(&raw).unwrap();
    assert_eq!(a, b);
    // Only CPU 0: its vendor, its sub-leaves (CPU 1 has sub-leaf 5 and is AMD).
    assert_eq!(a.vendor.as_deref(), Some("GenuineIntel"));
    assert_eq!(
        a.subleaves.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 9, 0xB, 0x11]
    );
    assert_eq!(a.xcr0_supported().bits(), 0x20207);
    assert_eq!(a.xss_supported().bits(), 0x800);

    let li = Layout::from_dump("made-up", &instlat).unwrap();
    let lr = Layout::from_dump("made-up", &raw).unwrap();
    assert!(li.source().contains("InstLatx64"), "{}", li.source());
    assert!(lr.source().contains("cpuid -r"), "{}", lr.source());
    assert_eq!(table(&li), table(&lr));
    assert_eq!(li.fingerprint(), lr.fingerprint());
    assert_eq!(li.vendor(), "GenuineIntel");
    assert_eq!(li.mxcsr_mask(), 0xFFFF);
    assert_eq!(
        table(&li),
        [
            (0, 160, 0, false, false, false),
            (1, 256, 160, false, false, false),
            (2, 256, 576, false, false, false),
            (9, 8, 832, false, false, false),
            (11, 16, 0, true, false, false),
            (17, 64, 896, false, true, false),
        ]
    );
    assert_eq!(li.standard_size(), 960);
    // Compacted: AVX 576..832, PKRU 832..840, CET_U 840..856, TILECFG
    // rounded up from 856 to 896, ends at 960: sub-leaf 1 EBX (0x3C0).
    assert_eq!(
        li.compacted_offset(li.supported(), ComponentId::CET_U),
        Some(840)
    );
    assert_eq!(
        li.compacted_offset(li.supported(), ComponentId::TILECFG),
        Some(896)
    );
    assert_eq!(li.compacted_size(), 0x3C0);
    // Without CET_U, TILECFG is still rounded up: 840 -> 896.
    assert_eq!(
        li.compacted_offset(li.xcr0_supported(), ComponentId::TILECFG),
        Some(896)
    );
}

#[test]
fn dump_files_load_through_layout_source() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/made-up-two-cpus-cpuid-r.txt"
    );
    let l = LayoutSource::parse(path).load().unwrap();
    assert_eq!(l.name(), "made-up-two-cpus-cpuid-r");
    assert_eq!(l.standard_size(), 960);
    // Not a dump and not TOML either: the TOML parser's error.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/not-a-dump.txt");
    let e = LayoutSource::parse(path).load().unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::File {
                source: FileError::Toml(_),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_made_up_apx_dump_puts_apx_at_960() {
    let l = Layout::from_dump("apx", &fixture("made-up-apx-instlat.txt")).unwrap();
    assert_eq!(l.offset(ComponentId::APX), Some(960));
    assert_eq!(l.size(ComponentId::APX), Some(128));
    assert!(!l.has(ComponentId::MPX_BNDREGS));
    assert_eq!(l.standard_size(), 2696);
    // Compacted: after AVX (576..832) and PKRU (832..840).
    assert_eq!(
        l.compacted_offset(l.xcr0_supported(), ComponentId::APX),
        Some(840)
    );
    assert_eq!(l.compacted_size(), 968);
}

#[test]
fn bad_dumps_are_refused_with_reasons() {
    use xstate::layout::CpuidLeaf0xD;

    let e = Layout::from_dump("x", &fixture("mpx-and-apx-instlat.txt")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MPX BNDREGS (component 3) at offset 960 and APX (component 19) at offset 960 \
         are both enumerated; MPX and APX are mutually exclusive"
    );
    let e = Layout::from_dump("x", &fixture("overlap-cpuid-r.txt")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "AVX (component 2) at 576..832 overlaps PKRU (component 9) at 768..776"
    );
    let e = Layout::from_dump("x", &fixture("missing-subleaf-cpuid-r.txt")).unwrap_err();
    assert_eq!(
        e,
        DumpError::Layout(LayoutError::MissingGeometry(ComponentId::PKRU))
    );
    assert_eq!(
        e.to_string(),
        "PKRU (component 9) is enumerated but its size and offset are missing"
    );
    // Numbers past 4 GiB are refused, not wrapped.
    let e = Layout::from_dump("x", &fixture("end-overflow-cpuid-r.txt")).unwrap_err();
    assert!(
        matches!(
            e,
            DumpError::Layout(LayoutError::EndOverflow {
                component: ComponentId::PKRU,
                ..
            })
        ),
        "{e:?}"
    );
    // A supervisor component of 0xFFFFFFFF bytes is past the cap alone.
    let e = Layout::from_dump("x", &fixture("huge-supervisor-cpuid-r.txt")).unwrap_err();
    assert!(
        matches!(
            e,
            DumpError::Layout(LayoutError::EndOverflow {
                component: ComponentId::CET_U,
                size: u32::MAX,
                ..
            })
        ),
        "{e:?}"
    );
    // Two (unknown) supervisor components of 600000 bytes: each under the
    // cap, the compacted area past it (576 + AVX 256 + PKRU 8 + 1200000).
    let e = Layout::from_dump("x", &fixture("compacted-too-large-cpuid-r.txt")).unwrap_err();
    assert_eq!(
        e,
        DumpError::Layout(LayoutError::CompactedTooLarge { size: 1_200_840 })
    );
    // A Nehalem (CPUID 000106A5): XSAVE clear, no leaf 0xD. Not refused:
    // a legacy-only CPU, x87 and SSE in the FXSAVE image.
    for f in ["no-leaf-0xd-instlat.txt", "no-leaf-0xd-cpuid-r.txt"] {
        let l = Layout::from_dump("nehalem", &fixture(f)).unwrap();
        assert!(!l.has_xsave(), "{f}");
        assert_eq!(l.xcr0_supported(), Xfeatures::LEGACY, "{f}");
        assert_eq!(l.xss_supported(), Xfeatures::EMPTY, "{f}");
        assert_eq!((l.standard_size(), l.xsave_features()), (576, 0), "{f}");
        assert_eq!(l.vendor(), "GenuineIntel", "{f}");
        assert!(l.source().contains("legacy-only"), "{f}");
        assert_eq!(
            CpuidLeaf0xD::from_dump(&fixture(f)).unwrap_err(),
            DumpError::NoLeaf0xD
        );
    }
    for text in [fixture("not-a-dump.txt"), String::new(), "\n\n".into()] {
        assert_eq!(
            Layout::from_dump("x", &text).unwrap_err(),
            DumpError::UnknownFormat
        );
        assert_eq!(
            CpuidLeaf0xD::from_dump(&text).unwrap_err(),
            DumpError::UnknownFormat
        );
    }
    assert_eq!(
        DumpError::UnknownFormat.to_string(),
        "not a CPUID dump in a known format (InstLatx64 or `cpuid -r`)"
    );
    // Malformed lines are refused, naming the line, not skipped: five
    // registers, bad hex.
    let text = "CPUID 0000000D: 00000207-00000340-00000988-00000000-00000000 [SL 00]\n\
                CPUID 0000000D: 0000020Z-00000340-00000988-00000000 [SL 00]\n";
    assert!(Layout::from_dump("x", text).is_err());
    let text = "CPUID 00000000: 00000010-68747541-444D4163-69746E65\n\
                CPUID 0000000D: 00000207-00000340-00000988-00000000-00000000 [SL 00]\n";
    assert_eq!(
        Layout::from_dump("x", text).unwrap_err(),
        DumpError::Cpuid(CpuidSetError::Malformed { at: At::Line(2) })
    );
    let text = "CPUID 00000000: 00000010-68747541-444D4163-69746E65\n\
                CPUID 0000000D: 0000020Z-00000340-00000988-00000000 [SL 00]\n";
    assert_eq!(
        Layout::from_dump("x", text).unwrap_err(),
        DumpError::Cpuid(CpuidSetError::Malformed { at: At::Line(2) })
    );
}

// ------------------------------------------------ the host

#[cfg(target_arch = "x86_64")]
#[test]
fn the_host_layout_is_sane_and_agrees_with_xgetbv() {
    let host = xstate::host::layout().unwrap();
    assert_eq!(host.xcr0_supported() & Xfeatures::LEGACY, Xfeatures::LEGACY);
    assert!(host.standard_size() >= 576);
    assert_eq!(
        host.xcr0_supported() & host.xss_supported(),
        Xfeatures::EMPTY
    );
    // Every user component fits in the standard size; supervisor ones have
    // no standard offset.
    for g in host.components().filter(|g| !g.id.is_legacy()) {
        if g.supervisor {
            assert_eq!(host.offset(g.id), None);
        } else {
            assert!(g.offset >= 576 && g.end() <= host.standard_size());
        }
    }
    // CPUID.(0xD,0).EBX is the size for the XCR0 the OS enabled.
    if let Some(xcr0) = xstate::host::xcr0() {
        assert_eq!(
            xcr0 & Xfeatures::LEGACY,
            Xfeatures::LEGACY,
            "XCR0 {xcr0:#x}"
        );
        assert_eq!(
            xcr0 - host.xcr0_supported(),
            Xfeatures::EMPTY,
            "XCR0 {xcr0:#x}"
        );
        let s0 = core::arch::x86_64::__cpuid_count(0xD, 0);
        assert_eq!(host.standard_size_for(xcr0), s0.ebx, "XCR0 {xcr0:#x}");
    } else {
        common::skip("host XCR0 checks", "the OS has not enabled XSAVE");
    }
    // The host's layout survives the TOML and CPUID round trips.
    let back = Layout::from_toml(&host.to_toml()).unwrap();
    assert_eq!(back, host);
    let again = host.to_cpuid().to_layout("host").unwrap();
    assert_eq!(again.fingerprint(), host.fingerprint());
    // The vendor string is CPUID leaf 0's.
    let v = core::arch::x86_64::__cpuid(0);
    let mut vendor = Vec::new();
    for r in [v.ebx, v.edx, v.ecx] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    assert_eq!(host.vendor().as_bytes(), &vendor[..]);
}

// ------------------------------------------------ one dump parser

/// The EMR host's `cpuid -r` capture, from the shared dumps.
fn emr_lines(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("host-intel-emr-cpuid-r.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn an_emr_dump_cut_before_leaf_0xd_is_refused_not_legacy_only() {
    let Some(dir) = dump_dir() else { return };
    let lines = emr_lines(&dir);
    let first_d = lines
        .iter()
        .position(|l| l.trim_start().starts_with("0x0000000d 0x00:"))
        .unwrap();
    // Leaf 0 says the CPU has leaves up to 0x20; leaf 1 sets XSAVE.
    let cut = lines[..first_d].join("\n");
    let e = Layout::from_dump("emr", &cut).unwrap_err();
    assert_eq!(
        e,
        DumpError::Layout(LayoutError::MissingLeaf0xD {
            max_leaf: Some(0x20)
        })
    );
    assert_eq!(
        e.to_string(),
        "no CPUID leaf 0xD sub-leaf 0, though leaf 0 says the CPU has basic leaves up to 0x20 \
         and leaf 1 does not clear XSAVE: the CPUID is incomplete (a dump cut short?), not that \
         of a CPU without XSAVE"
    );
    // CpuidSet agrees: the same error from the same parser.
    let set = CpuidSet::parse(&cut).unwrap();
    assert_eq!(
        set.to_layout("emr", "test").unwrap_err(),
        LayoutError::MissingLeaf0xD {
            max_leaf: Some(0x20)
        }
    );
    // Its sub-leaf 0 line cut in the middle: a malformed line, named.
    for keep in [10, 20, 30, 50, 60] {
        let mut text = lines[..first_d].join("\n");
        text.push('\n');
        text.push_str(&lines[first_d][..keep]);
        let e = Layout::from_dump("emr", &text).unwrap_err();
        assert_eq!(
            e,
            DumpError::Cpuid(CpuidSetError::Malformed {
                at: At::Line(first_d + 1)
            }),
            "cut at {keep}"
        );
        assert_eq!(
            e.to_string(),
            format!("line {}: malformed CPUID line", first_d + 1)
        );
    }
}

#[test]
fn a_duplicate_subleaf_is_refused_not_the_first_kept() {
    let Some(dir) = dump_dir() else { return };
    let lines = emr_lines(&dir);
    let first_d = lines
        .iter()
        .position(|l| l.trim_start().starts_with("0x0000000d 0x00:"))
        .unwrap();
    // Sub-leaf 0 with XCR0 0x7 first, then the real one (0x602e7).
    let mut text = lines.clone();
    text.insert(
        first_d,
        "   0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000".into(),
    );
    let text = text.join("\n");
    let e = Layout::from_dump("emr", &text).unwrap_err();
    assert_eq!(
        e,
        DumpError::Cpuid(CpuidSetError::Duplicate {
            at: At::Line(first_d + 2),
            leaf: 0xd,
            subleaf: 0
        })
    );
    assert_eq!(
        e.to_string(),
        format!("line {}: leaf 0xd sub-leaf 0x0 appears twice", first_d + 2)
    );
    assert_eq!(
        CpuidSet::parse(&text).unwrap_err(),
        CpuidSetError::Duplicate {
            at: At::Line(first_d + 2),
            leaf: 0xd,
            subleaf: 0
        }
    );
    // Loaded by path, the error names the file and the line.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("emr-dup.txt");
    std::fs::write(&path, &text).unwrap();
    let e = LayoutSource::parse(path.to_str().unwrap())
        .load()
        .unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::Dump {
                source: DumpError::Cpuid(CpuidSetError::Duplicate { .. }),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_signed_value_in_a_dump_line_is_malformed() {
    let text = "CPU:\n   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n   \
                0x0000000d 0x00: eax=+0x0000207 ebx=0x00000988 ecx=0x00000988 edx=0x00000000\n";
    assert_eq!(
        Layout::from_dump("x", text).unwrap_err(),
        DumpError::Cpuid(CpuidSetError::Malformed { at: At::Line(3) })
    );
    let instlat = "CPUID 00000000: 00000010-68747541-444D4163-69746E65\n\
                   CPUID 0000000D: +0000207-00000340-00000988-00000000 [SL 00]\n";
    assert_eq!(
        Layout::from_dump("x", instlat).unwrap_err(),
        DumpError::Cpuid(CpuidSetError::Malformed { at: At::Line(2) })
    );
}

#[test]
fn from_dump_and_cpuid_set_agree_on_every_cut_of_every_dump() {
    let Some(dir) = dump_dir() else { return };
    let fixtures = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"));
    let mut files: Vec<_> = [dir, fixtures]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let step = (lines.len() / 40).max(1);
        for n in (0..=lines.len()).step_by(step) {
            let cut = lines[..n].join("\n");
            let via_dump = Layout::from_dump("cut", &cut);
            let via_set = CpuidSet::parse(&cut)
                .map_err(|e| e.to_string())
                .and_then(|s| s.to_layout("cut", "x").map_err(|e| e.to_string()));
            match (&via_dump, &via_set) {
                (Ok(a), Ok(b)) => assert_eq!(
                    a.fingerprint(),
                    b.fingerprint(),
                    "{} cut at {n}",
                    path.display()
                ),
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "{} cut at {n}: from_dump {via_dump:?}, CpuidSet {via_set:?}",
                    path.display()
                ),
            }
        }
    }
}

// ------------------------------------------------ where the shared dumps are

/// Runs one test of this binary in a child process with `env` set.
fn run_alone(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn the_shared_dumps_can_be_named_by_xstate_cpuid_dir() {
    let Some(dir) = dump_dir() else { return };
    let test = "catalog_layouts_match_the_cpuid_dumps_they_came_from";
    // A copy of the dumps elsewhere, named by the variable: read there.
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let required = std::ffi::OsStr::new("1");
    let out = run_alone(
        test,
        &[
            ("XSTATE_CPUID_DIR", copy.path().as_os_str()),
            ("XSTATE_REQUIRE_FIXTURES", required),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // An empty directory named by it: the dumps are looked for there only.
    let empty = tempfile::tempdir().unwrap();
    let out = run_alone(test, &[("XSTATE_CPUID_DIR", empty.path().as_os_str())]);
    assert!(!out.status.success());
    // A directory that is not there: a failure, never a skip.
    let gone = empty.path().join("gone");
    let out = run_alone(test, &[("XSTATE_CPUID_DIR", gone.as_os_str())]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("XSTATE_CPUID_DIR=") && text.contains("is not a directory"),
        "{text}"
    );
}
