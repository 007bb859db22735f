use super::*;

fn geometry(index: u8, size: u32, offset: u32) -> ComponentGeometry {
    ComponentGeometry {
        index,
        size,
        offset,
        supervisor: false,
        align64: false,
        xfd: false,
    }
}

fn parts(xcr0: u64, components: Vec<ComponentGeometry>) -> LayoutParts {
    LayoutParts {
        name: "test".into(),
        vendor: "GenuineIntel".into(),
        source: "unit test".into(),
        xcr0_supported: xcr0,
        xss_supported: 0,
        standard_size: None,
        mxcsr_mask: None,
        components,
    }
}

fn message(p: LayoutParts) -> String {
    Layout::from_parts(p).unwrap_err().to_string()
}

#[test]
fn overlapping_components_are_named_with_their_offsets() {
    let m = message(parts(
        0x207,
        vec![geometry(2, 256, 576), geometry(9, 8, 800)],
    ));
    assert_eq!(
        m,
        "AVX (component 2) at 576..832 overlaps PKRU (component 9) at 800..808"
    );
}

#[test]
fn a_component_past_the_enumerated_size_is_refused() {
    let mut p = parts(0x7, vec![geometry(2, 256, 576)]);
    p.standard_size = Some(800);
    assert_eq!(
        message(p),
        "AVX (component 2) at 576..832 runs past the enumerated size 800"
    );
}

#[test]
fn mpx_and_apx_together_are_refused() {
    let p = parts(
        0x8001F,
        vec![
            geometry(2, 256, 576),
            geometry(3, 64, 960),
            geometry(4, 64, 1024),
            geometry(19, 128, 1088),
        ],
    );
    let m = message(p);
    assert!(m.contains("MPX BNDREGS (component 3) at offset 960"), "{m}");
    assert!(m.contains("APX (component 19) at offset 1088"), "{m}");
    // Sharing offset 960, as they would: still the specific message.
    let shared = parts(
        0x80007 | 1 << 3,
        vec![
            geometry(2, 256, 576),
            geometry(3, 64, 960),
            geometry(19, 128, 960),
        ],
    );
    assert_eq!(
        message(shared),
        "MPX BNDREGS (component 3) at offset 960 and APX (component 19) at offset 960 \
         are both enumerated; MPX and APX are mutually exclusive"
    );
}

#[test]
fn geometry_must_match_the_enumeration() {
    assert!(message(parts(0x7, vec![])).contains("AVX (component 2) is enumerated"));
    assert!(message(parts(0x3, vec![geometry(2, 256, 576)])).contains("not enumerated"));
    assert!(message(parts(0x5, vec![])).contains("lacks x87 or SSE"));
    assert!(message(parts(0x7, vec![geometry(2, 256, 100)])).contains("legacy region"));
    assert!(message(parts(0x7, vec![geometry(2, 0, 576)])).contains("size 0"));
    let mut sup = parts(0x3, vec![geometry(8, 128, 0)]);
    sup.xss_supported = 0x100;
    assert!(message(sup).contains("flagged user but enumerated in IA32_XSS"));
}

#[test]
fn compacted_offsets_follow_the_hardware_rule() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let user = spr.xcr0_supported();
    // 576 + AVX 256 = 832 opmask; +64 = 896 ZMM_Hi256; +512 = 1408 Hi16_ZMM;
    // +1024 = 2432 PKRU; +8 = 2440, rounded up to 2496 for TILECFG (align64);
    // +64 = 2560 TILEDATA (align64 already).
    assert_eq!(spr.compacted_offset(user, Component::Opmask), Some(832));
    assert_eq!(spr.compacted_offset(user, Component::Pkru), Some(2432));
    assert_eq!(spr.compacted_offset(user, Component::TileCfg), Some(2496));
    assert_eq!(spr.compacted_offset(user, Component::TileData), Some(2560));
    assert_eq!(spr.compacted_size_for(user), 2560 + 8192);
    // Without AVX-512 and PKRU: TILECFG right after AVX at 832 (aligned).
    let small = 0x7 | 1 << 17 | 1 << 18;
    assert_eq!(spr.compacted_offset(small, Component::TileCfg), Some(832));
    assert_eq!(spr.compacted_offset(small, Component::TileData), Some(896));
    // A component not in XCOMP_BV has no compacted offset.
    assert_eq!(spr.compacted_offset(small, Component::Pkru), None);
    // Supervisor components take their place among the others.
    let with_pt = user | 1 << 8;
    assert_eq!(
        spr.compacted_offset(with_pt, Component::Pkru),
        Some(2432 + 128)
    );
}

#[test]
fn cpuid_and_toml_round_trip() {
    for layout in catalog::all() {
        let again = layout.to_cpuid().to_layout(layout.name()).unwrap();
        assert_eq!(
            again.fingerprint(),
            layout.fingerprint(),
            "{}",
            layout.name()
        );
        let text = layout.to_toml();
        let parsed = Layout::from_toml(&text).unwrap();
        assert_eq!(
            parsed.fingerprint(),
            layout.fingerprint(),
            "{}",
            layout.name()
        );
        assert_eq!(parsed.mxcsr_mask(), layout.mxcsr_mask());
    }
}

#[test]
fn fingerprints_tell_geometries_apart() {
    let prints: Vec<u64> = catalog::all().iter().map(Layout::fingerprint).collect();
    for (i, a) in prints.iter().enumerate() {
        for b in &prints[i + 1..] {
            assert_ne!(a, b);
        }
    }
    let zen4 = catalog::get("amd-zen4").unwrap();
    assert_eq!(zen4.renamed("other").fingerprint(), zen4.fingerprint());
}

#[test]
fn sources_resolve_by_name_or_path() {
    assert_eq!(LayoutSource::parse("host"), LayoutSource::Host);
    assert_eq!(
        LayoutSource::parse("amd-zen3"),
        LayoutSource::Catalog("amd-zen3".into())
    );
    assert!(matches!(
        LayoutSource::parse("no/such/file").load(),
        Err(LayoutError::Io { .. })
    ));
    assert!(matches!(
        Layout::from_toml("name = 1"),
        Err(LayoutError::Toml(_))
    ));
}
