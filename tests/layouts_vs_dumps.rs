//! The shipped catalog against real CPUID dumps, and the facts every layout
//! must respect.

use std::path::PathBuf;

use xstate::layout::{catalog, diff, LayoutSource};
use xstate::{Component, Layout};

fn dump_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/cpuid"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: {} is not present beside the repository",
            dir.display()
        );
        None
    }
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
    assert_eq!(get("amd-zen3").offset(Component::Pkru), Some(2432));
    assert_eq!(get("amd-zen4").offset(Component::Pkru), Some(2432));
    assert_eq!(get("intel-skylake-sp").offset(Component::Pkru), Some(2688));
    assert_eq!(get("intel-lunar-lake").offset(Component::Pkru), Some(2688));
    assert_eq!(get("amd-zen4").offset(Component::Opmask), Some(832));
    assert_eq!(
        get("intel-sapphire-rapids").offset(Component::Opmask),
        Some(1088)
    );
    assert_eq!(get("intel-sapphire-rapids").standard_size(), 11008);
    assert_eq!(get("intel-lunar-lake").standard_size(), 2696);
    assert_eq!(get("amd-zen4").standard_size(), 2440);
    assert_eq!(
        get("intel-skylake-sp").offset(Component::MpxBndregs),
        Some(960)
    );
    // AMD's standard offsets equal Intel's compacted ones for AVX-512.
    let spr = get("intel-sapphire-rapids");
    let zen4 = get("amd-zen4");
    for c in [
        Component::Avx,
        Component::Opmask,
        Component::ZmmHi256,
        Component::Hi16Zmm,
    ] {
        assert_eq!(
            spr.compacted_offset(spr.xcr0_supported(), c),
            zen4.offset(c),
            "{c:?}"
        );
    }
    // AMX tile data is 64-byte aligned and XFD-capable.
    let tiles = spr.geometry(18).unwrap();
    assert!(tiles.align64 && tiles.xfd);
    // MXCSR masks differ: AMD's bit 17.
    assert_eq!(zen4.mxcsr_mask(), 0x2FFFF);
    assert_eq!(spr.mxcsr_mask(), 0xFFFF);
}

#[test]
fn the_apx_layout_puts_r16_r31_where_mpx_was() {
    let dmr = catalog::get("intel-diamond-rapids").unwrap();
    let apx = dmr.geometry(19).unwrap();
    assert_eq!((apx.offset, apx.size), (960, 128));
    assert!(!dmr.has(Component::MpxBndregs) && !dmr.has(Component::MpxBndcsr));
    assert!(dmr.source().contains("no silicon dump"), "{}", dmr.source());
    // Compacted, APX comes after every lower component, AMX included.
    let all = dmr.xcr0_supported();
    let tiles = dmr.compacted_offset(all, Component::TileData).unwrap();
    assert_eq!(
        dmr.compacted_offset(all, Component::Apx),
        Some(tiles + 8192)
    );
    // Standard offsets no longer rise with the component number.
    assert!(dmr.offset(Component::Apx).unwrap() < dmr.offset(Component::Pkru).unwrap());
}

#[test]
fn the_host_layout_agrees_with_cpuid() {
    let host = Layout::host().unwrap();
    assert_eq!(host.xcr0_supported() & 3, 3);
    assert!(host.standard_size() >= 576);
    let leaf = core::arch::x86_64::__cpuid_count(0xD, 0);
    assert_eq!(host.standard_size(), leaf.ecx);
    assert_eq!(
        host.xcr0_supported(),
        u64::from(leaf.edx) << 32 | u64::from(leaf.eax)
    );
    for g in host.components().filter(|g| g.index >= 2) {
        let r = core::arch::x86_64::__cpuid_count(0xD, u32::from(g.index));
        assert_eq!((g.size, g.offset), (r.eax, r.ebx), "component {}", g.index);
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
    assert_eq!(l.offset(Component::Pkru), Some(2688));
    assert!(l.source().contains("InstLatx64"));
    let raw = std::fs::read_to_string(fixtures.join("unknown-component-cpuid-r.txt")).unwrap();
    let u = Layout::from_dump("unknown", &raw).unwrap();
    assert!(u.source().contains("cpuid -r"));
    // A component past 19 is kept, not dropped.
    let g = u.geometry(21).unwrap();
    assert_eq!((g.size, g.offset), (64, 2816));
    assert_eq!(xstate::component::name_of(21), "component 21");
    assert!(Layout::from_dump("x", "hello\nworld\n").is_err());
    let no_leaf_d = "CPUID 00000000: 00000016-756E6547-6C65746E-49656E69\n";
    assert_eq!(
        Layout::from_dump("x", no_leaf_d).unwrap_err(),
        xstate::LayoutError::NoLeaf0xD
    );
}
