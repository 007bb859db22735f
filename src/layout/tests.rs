use super::*;
use crate::xregs::Xreg;

/// Component `n` (0..=63).
fn id(n: u8) -> ComponentId {
    ComponentId::new(n).unwrap()
}

/// The set of components whose bits are `bits`.
fn x(bits: u64) -> Xfeatures {
    Xfeatures::from_bits(bits)
}

/// What a layout is built from, owning its text and component table
/// ([`LayoutParts`] borrows them).
#[derive(Clone, Debug)]
struct Parts {
    name: String,
    vendor: String,
    source: String,
    xcr0_supported: u64,
    xss_supported: u64,
    standard_size: Option<u32>,
    mxcsr_mask: Option<u32>,
    xsave_features: Option<u32>,
    components: Vec<ComponentGeometry>,
}

impl Parts {
    fn build(&self) -> Result<Layout, LayoutError> {
        Layout::from_parts(LayoutParts {
            name: &self.name,
            vendor: &self.vendor,
            source: &self.source,
            xcr0_supported: x(self.xcr0_supported),
            xss_supported: x(self.xss_supported),
            standard_size: self.standard_size,
            mxcsr_mask: self.mxcsr_mask,
            xsave_features: self.xsave_features,
            components: &self.components,
        })
    }
}

fn geometry(index: u8, size: u32, offset: u32) -> ComponentGeometry {
    ComponentGeometry {
        id: id(index),
        size,
        offset,
        supervisor: false,
        align64: false,
        xfd: false,
    }
}

fn parts(xcr0: u64, components: Vec<ComponentGeometry>) -> Parts {
    Parts {
        name: "test".into(),
        vendor: "GenuineIntel".into(),
        source: "unit test".into(),
        xcr0_supported: xcr0,
        xss_supported: 0,
        standard_size: None,
        mxcsr_mask: None,
        xsave_features: None,
        components,
    }
}

fn message(p: Parts) -> String {
    p.build().unwrap_err().to_string()
}

/// An error and its causes, as a program reports them: `a: b: c`.
fn report(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out += ": ";
        out += &c.to_string();
        cause = c.source();
    }
    out
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
    assert_eq!(spr.compacted_offset(user, ComponentId::OPMASK), Some(832));
    assert_eq!(spr.compacted_offset(user, ComponentId::PKRU), Some(2432));
    assert_eq!(spr.compacted_offset(user, ComponentId::TILECFG), Some(2496));
    assert_eq!(
        spr.compacted_offset(user, ComponentId::TILEDATA),
        Some(2560)
    );
    assert_eq!(spr.compacted_size_for(user), 2560 + 8192);
    // Without AVX-512 and PKRU: TILECFG right after AVX at 832 (aligned).
    let small = x(0x7 | 1 << 17 | 1 << 18);
    assert_eq!(spr.compacted_offset(small, ComponentId::TILECFG), Some(832));
    assert_eq!(
        spr.compacted_offset(small, ComponentId::TILEDATA),
        Some(896)
    );
    // A component not in XCOMP_BV has no compacted offset.
    assert_eq!(spr.compacted_offset(small, ComponentId::PKRU), None);
    // Supervisor components take their place among the others.
    let with_pt = user | x(1 << 8);
    assert_eq!(
        spr.compacted_offset(with_pt, ComponentId::PKRU),
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
        Err(SourceError::Io { .. })
    ));
    assert!(matches!(
        Layout::from_toml("name = 1"),
        Err(FileError::Toml(_))
    ));
}

// ------------------------------------------------- detailed cases, per error

fn geom(index: u8, size: u32, offset: u32) -> ComponentGeometry {
    ComponentGeometry {
        id: id(index),
        size,
        offset,
        supervisor: false,
        align64: false,
        xfd: false,
    }
}

fn sup(index: u8, size: u32) -> ComponentGeometry {
    ComponentGeometry {
        supervisor: true,
        ..geom(index, size, 0)
    }
}

fn aligned(g: ComponentGeometry) -> ComponentGeometry {
    ComponentGeometry { align64: true, ..g }
}

/// A Zen 3 shaped layout: AVX at 576, PKRU at 2432, CET_U/CET_S supervisor.
fn zen3_parts() -> Parts {
    Parts {
        name: "test".into(),
        vendor: "AuthenticAMD".into(),
        source: "unit test".into(),
        xcr0_supported: 0x207,
        xss_supported: 0x1800,
        standard_size: Some(2440),
        mxcsr_mask: None,
        xsave_features: None,
        components: vec![
            geom(2, 256, 576),
            geom(9, 8, 2432),
            sup(11, 16),
            sup(12, 24),
        ],
    }
}

fn err(parts: Parts) -> (LayoutError, String) {
    let e = parts.build().expect_err("layout should be rejected");
    let msg = e.to_string();
    (e, msg)
}

fn spr() -> &'static Layout {
    catalog::get("intel-sapphire-rapids").unwrap()
}

// ---------------------------------------------------------------- validation

#[test]
fn valid_parts_build() {
    let l = zen3_parts().build().unwrap();
    assert_eq!(l.standard_size(), 2440);
    assert_eq!(l.offset(ComponentId::PKRU), Some(2432));
    assert_eq!(l.offset(ComponentId::CET_U), None, "supervisor: no offset");
    assert_eq!(l.size(ComponentId::CET_U), Some(16));
    assert_eq!(l.mxcsr_mask(), 0x2FFFF, "AMD default MXCSR mask");
    let ids: Vec<u8> = l.components().map(|g| g.id.index()).collect();
    assert_eq!(ids, [0, 1, 2, 9, 11, 12]);
}

#[test]
fn standard_size_defaults_to_the_last_user_component_end() {
    let mut p = zen3_parts();
    p.standard_size = None;
    p.vendor = "GenuineIntel".into();
    let l = p.build().unwrap();
    assert_eq!(l.standard_size(), 2440);
    assert_eq!(l.mxcsr_mask(), 0xFFFF, "Intel default MXCSR mask");
}

#[test]
fn overlap_names_both_components_and_ranges() {
    let mut p = zen3_parts();
    // PKRU moved into the middle of AVX (576..832).
    p.components[1] = geom(9, 8, 700);
    let (e, msg) = err(p);
    assert!(
        matches!(
            e,
            LayoutError::Overlap {
                a: ComponentId::AVX,
                b: ComponentId::PKRU,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        msg,
        "AVX (component 2) at 576..832 overlaps PKRU (component 9) at 700..708"
    );
}

#[test]
fn touching_components_do_not_overlap() {
    let mut p = zen3_parts();
    p.components[1] = geom(9, 8, 832); // right after AVX
    p.standard_size = Some(840);
    let l = p.build().unwrap();
    assert_eq!(l.standard_size(), 840);
}

#[test]
fn overlap_in_the_avx512_block() {
    // ZMM_Hi256 one byte too low: it runs into the opmask registers.
    let mut p = zen3_parts();
    p.xcr0_supported = 0x2e7;
    p.components = vec![
        geom(2, 256, 576),
        geom(5, 64, 832),
        geom(6, 512, 895),
        geom(7, 1024, 1408),
        geom(9, 8, 2432),
        sup(11, 16),
        sup(12, 24),
    ];
    let (_, msg) = err(p);
    assert_eq!(
        msg,
        "AVX-512 opmask (component 5) at 832..896 overlaps AVX-512 ZMM_Hi256 (component 6) at 895..1407"
    );
}

#[test]
fn past_end_names_component_range_and_size() {
    let mut p = zen3_parts();
    p.standard_size = Some(2436);
    let (e, msg) = err(p);
    assert_eq!(
        e,
        LayoutError::PastEnd {
            component: ComponentId::PKRU,
            offset: 2432,
            size: 8,
            standard_size: 2436
        }
    );
    assert_eq!(
        msg,
        "PKRU (component 9) at 2432..2440 runs past the enumerated size 2436"
    );
}

#[test]
fn mpx_and_apx_both_enumerated_at_960_is_rejected_naming_both() {
    // The realistic case: APX reuses MPX's bytes at 960.
    let mut p = zen3_parts();
    p.xcr0_supported = 0x8021f;
    p.components = vec![
        geom(2, 256, 576),
        geom(3, 64, 960),
        geom(4, 64, 1024),
        geom(9, 8, 2432),
        geom(19, 128, 960),
        sup(11, 16),
        sup(12, 24),
    ];
    let (e, msg) = err(p);
    assert_eq!(
        e,
        LayoutError::MpxAndApx {
            mpx: ComponentId::MPX_BNDREGS,
            mpx_offset: 960,
            apx_offset: 960
        }
    );
    assert_eq!(
        msg,
        "MPX BNDREGS (component 3) at offset 960 and APX (component 19) at offset 960 \
         are both enumerated; MPX and APX are mutually exclusive"
    );
}

#[test]
fn mpx_and_apx_are_exclusive_even_without_overlap() {
    // APX placed after PKRU: no overlap, still mutually exclusive.
    let mut p = zen3_parts();
    p.xcr0_supported = 0x8021f;
    p.standard_size = None;
    p.components = vec![
        geom(2, 256, 576),
        geom(3, 64, 960),
        geom(4, 64, 1024),
        geom(9, 8, 2432),
        geom(19, 128, 2440),
        sup(11, 16),
        sup(12, 24),
    ];
    let (e, msg) = err(p);
    assert_eq!(
        e,
        LayoutError::MpxAndApx {
            mpx: ComponentId::MPX_BNDREGS,
            mpx_offset: 960,
            apx_offset: 2440
        }
    );
    assert_eq!(
        msg,
        "MPX BNDREGS (component 3) at offset 960 and APX (component 19) at offset 2440 \
         are both enumerated; MPX and APX are mutually exclusive"
    );

    // BNDCSR alone is enough.
    let mut p = zen3_parts();
    p.xcr0_supported = 0x80217;
    p.standard_size = None;
    p.components = vec![
        geom(2, 256, 576),
        geom(4, 64, 1024),
        geom(9, 8, 2432),
        geom(19, 128, 2440),
        sup(11, 16),
        sup(12, 24),
    ];
    let (e, msg) = err(p);
    assert!(
        matches!(
            e,
            LayoutError::MpxAndApx {
                mpx: ComponentId::MPX_BNDCSR,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        msg.starts_with("MPX BNDCSR (component 4) at offset 1024 and APX (component 19)"),
        "{msg}"
    );
}

#[test]
fn missing_geometry_names_the_component() {
    let mut p = zen3_parts();
    p.components.remove(1); // PKRU enumerated, no geometry
    let (e, msg) = err(p);
    assert_eq!(e, LayoutError::MissingGeometry(ComponentId::PKRU));
    assert_eq!(
        msg,
        "PKRU (component 9) is enumerated but its size and offset are missing"
    );

    let mut p = zen3_parts();
    p.components.pop(); // CET_S (supervisor) without geometry
    let (_, msg) = err(p);
    assert_eq!(
        msg,
        "CET_S (component 12) is enumerated but its size and offset are missing"
    );
}

#[test]
fn supervisor_flag_must_match_xcr0_or_xss() {
    let mut p = zen3_parts();
    p.components[2] = geom(11, 16, 0); // CET_U in IA32_XSS, flagged user
    let (e, msg) = err(p);
    assert_eq!(
        e,
        LayoutError::SupervisorMismatch {
            component: ComponentId::CET_U,
            supervisor: false
        }
    );
    assert_eq!(
        msg,
        "CET_U (component 11) is flagged user but enumerated in IA32_XSS"
    );

    let mut p = zen3_parts();
    p.components[1] = ComponentGeometry {
        supervisor: true,
        ..geom(9, 8, 2432)
    };
    let (_, msg) = err(p);
    assert_eq!(
        msg,
        "PKRU (component 9) is flagged supervisor but enumerated in XCR0"
    );
}

#[test]
fn other_validation_errors_name_what_is_wrong() {
    let mut p = zen3_parts();
    p.xcr0_supported = 0x205;
    let (_, msg) = err(p);
    assert_eq!(msg, "supported XCR0 0x205 lacks x87 or SSE (bits 0 and 1)");

    let mut p = zen3_parts();
    p.xss_supported |= 0x200;
    let (_, msg) = err(p);
    assert_eq!(
        msg,
        "components 0x200 are enumerated in both XCR0 and IA32_XSS"
    );

    let mut p = zen3_parts();
    p.components.push(geom(1, 256, 160));
    let (e, msg) = err(p);
    assert_eq!(e, LayoutError::LegacyGeometry(ComponentId::SSE));
    assert_eq!(
        msg,
        "SSE (component 1) is a legacy component: its place in the legacy region is fixed"
    );

    // A component number past 63 is no ComponentId: a layout file naming
    // one is refused before its geometry is looked at.
    let mut text = zen3_parts().build().unwrap().to_toml();
    text += "\n[[component]]\nid = 64\nsize = 8\noffset = 3000\n";
    let e = Layout::from_toml(&text).unwrap_err();
    assert!(matches!(e, FileError::BadId(64)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "layout file component id 64 is not a component number (0..=63)"
    );

    let mut p = zen3_parts();
    p.components.push(geom(5, 64, 2440));
    let (_, msg) = err(p);
    assert_eq!(
        msg,
        "AVX-512 opmask (component 5) has geometry but is not enumerated in XCR0 or IA32_XSS"
    );

    let mut p = zen3_parts();
    p.components.push(geom(9, 8, 2432));
    let (_, msg) = err(p);
    assert_eq!(msg, "PKRU (component 9) is described twice");

    let mut p = zen3_parts();
    p.components[1] = geom(9, 0, 2432);
    let (_, msg) = err(p);
    assert_eq!(msg, "PKRU (component 9) has size 0");

    let mut p = zen3_parts();
    p.components[0] = geom(2, 256, 512);
    let (_, msg) = err(p);
    assert_eq!(
        msg,
        "AVX (component 2) at offset 512 lies inside the legacy region and header (0..576)"
    );
}

#[test]
fn unknown_high_components_are_kept() {
    let mut p = zen3_parts();
    p.xcr0_supported |= 1 << 23;
    p.standard_size = None;
    p.components.push(geom(23, 40, 2440));
    let l = p.build().unwrap();
    let g = l.geometry(id(23)).unwrap();
    assert_eq!((g.size, g.offset), (40, 2440));
    assert_eq!(l.standard_size(), 2480);
    assert_eq!(id(23).to_string(), "component 23");
    assert_eq!(l.compacted_offset(l.xcr0_supported(), id(23)), Some(840));

    // Errors name unknown components by number.
    let mut p = zen3_parts();
    p.xcr0_supported |= 1 << 23;
    let (_, msg) = err(p);
    assert_eq!(
        msg,
        "component 23 (component 23) is enumerated but its size and offset are missing"
    );
}

// ---------------------------------------------------------- compacted offsets

#[test]
fn sapphire_rapids_compacted_offsets_with_every_user_component() {
    let l = spr();
    let xcomp = l.xcr0_supported(); // 0x602e7
                                    // 576 legacy+header; AVX 576+256 = 832; opmask 832+64 = 896;
                                    // ZMM_Hi256 896+512 = 1408; Hi16_ZMM 1408+1024 = 2432; PKRU 2432+8 = 2440;
                                    // TILECFG is 64-byte aligned: 2440 -> 2496 (39 * 64); +64 = 2560;
                                    // TILEDATA aligned, 2560 already is (40 * 64); +8192 = 10752.
    let expect = [
        (ComponentId::AVX, 576),
        (ComponentId::OPMASK, 832),
        (ComponentId::ZMM_HI256, 896),
        (ComponentId::HI16_ZMM, 1408),
        (ComponentId::PKRU, 2432),
        (ComponentId::TILECFG, 2496),
        (ComponentId::TILEDATA, 2560),
    ];
    for (c, off) in expect {
        assert_eq!(l.compacted_offset(xcomp, c), Some(off), "{c}");
        // Bit 63 (the compacted-format flag) changes nothing.
        assert_eq!(l.compacted_offset(x(xcomp.bits() | 1 << 63), c), Some(off));
    }
    assert_eq!(l.compacted_size_for(xcomp), 10752);
    assert_eq!(l.compacted_size_for(x(xcomp.bits() | 1 << 63)), 10752);
    assert_eq!(l.compacted_offset(xcomp, ComponentId::X87), Some(0));
    assert_eq!(l.compacted_offset(xcomp, ComponentId::SSE), Some(160));
    // Not in XCOMP_BV, not supported, out of range.
    assert_eq!(l.compacted_offset(xcomp, ComponentId::PT), None);
    assert_eq!(l.compacted_offset(xcomp, ComponentId::MPX_BNDREGS), None);
    assert_eq!(l.compacted_offset(xcomp, ComponentId::APX), None);
    // Numbers past 63 are no component at all; the highest one, 63, has no
    // compacted offset even when every bit (bit 63 included) is set.
    assert_eq!(ComponentId::new(64), None);
    assert_eq!(ComponentId::new(200), None);
    assert_eq!(l.compacted_offset(xcomp, id(63)), None);
    assert_eq!(l.compacted_offset(x(u64::MAX), id(63)), None);
}

#[test]
fn sapphire_rapids_compacted_offsets_with_supervisor_components() {
    let l = spr();
    // Every component, XCR0 and XSS (0x602e7 | 0xdd00):
    // ... Hi16_ZMM ends at 2432; PT 2432+128 = 2560; PKRU 2560+8 = 2568;
    // PASID 2568+8 = 2576; CET_U 2576+16 = 2592; CET_S 2592+24 = 2616;
    // UINTR 2616+48 = 2664; LBR 2664+808 = 3472; TILECFG 3472 -> 3520
    // (55 * 64), +64 = 3584; TILEDATA 3584 (56 * 64), +8192 = 11776.
    let all = l.supported();
    let expect = [
        (ComponentId::PT, 2432),
        (ComponentId::PKRU, 2560),
        (ComponentId::PASID, 2568),
        (ComponentId::CET_U, 2576),
        (ComponentId::CET_S, 2592),
        (ComponentId::UINTR, 2616),
        (ComponentId::LBR, 2664),
        (ComponentId::TILECFG, 3520),
        (ComponentId::TILEDATA, 3584),
    ];
    for (c, off) in expect {
        assert_eq!(l.compacted_offset(all, c), Some(off), "{c}");
    }
    assert_eq!(l.compacted_size(), 11776);
    // The dump's CPUID.(0xD,1).EBX: 10880 bytes for XCR0 = 0x602e7 with
    // IA32_XSS = PT: ... Hi16_ZMM ends 2432; PT 2560; PKRU 2568;
    // TILECFG 2568 -> 2624, 2688; TILEDATA 2688 + 8192 = 10880.
    assert_eq!(l.compacted_size_for(x(0x602e7 | 0x100)), 10880);
    assert_eq!(
        l.compacted_offset(x(0x602e7 | 0x100), ComponentId::TILECFG),
        Some(2624)
    );
}

#[test]
fn sapphire_rapids_compacted_offsets_for_sparse_xcomp_bv() {
    let l = spr();
    // x87 | SSE | TILECFG | TILEDATA: 576 is 9 * 64, already aligned.
    let held = Xfeatures::LEGACY | ComponentId::TILECFG.bit() | ComponentId::TILEDATA.bit();
    assert_eq!(l.compacted_offset(held, ComponentId::TILECFG), Some(576));
    assert_eq!(l.compacted_offset(held, ComponentId::TILEDATA), Some(640));
    assert_eq!(l.compacted_size_for(held), 8832);
    assert_eq!(l.compacted_offset(held, ComponentId::AVX), None);

    // AVX | PKRU | TILEDATA: AVX 576..832; PKRU 832..840; TILEDATA
    // rounds 840 up to 896 (14 * 64); 896 + 8192 = 9088.
    let held = Xfeatures::LEGACY
        | ComponentId::AVX.bit()
        | ComponentId::PKRU.bit()
        | ComponentId::TILEDATA.bit();
    assert_eq!(l.compacted_offset(held, ComponentId::AVX), Some(576));
    assert_eq!(l.compacted_offset(held, ComponentId::PKRU), Some(832));
    assert_eq!(l.compacted_offset(held, ComponentId::TILEDATA), Some(896));
    assert_eq!(l.compacted_size_for(held), 9088);

    // PKRU | TILECFG: PKRU 576..584, TILECFG 584 -> 640, ends 704.
    let held = ComponentId::PKRU.bit() | ComponentId::TILECFG.bit();
    assert_eq!(l.compacted_offset(held, ComponentId::PKRU), Some(576));
    assert_eq!(l.compacted_offset(held, ComponentId::TILECFG), Some(640));
    assert_eq!(l.compacted_size_for(held), 704);

    // Just the legacy components: the area ends with the header.
    assert_eq!(l.compacted_size_for(Xfeatures::LEGACY), 576);
    assert_eq!(l.compacted_size_for(Xfeatures::EMPTY), 576);
    // Bits the layout does not support are ignored.
    assert_eq!(
        l.compacted_size_for(ComponentId::MPX_BNDREGS.bit() | ComponentId::APX.bit()),
        576
    );
}

#[test]
fn other_catalog_compacted_offsets() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    // AMD's standard offsets equal the compacted ones for the user components.
    for g in zen4
        .components()
        .filter(|g| !g.id.is_legacy() && !g.supervisor)
    {
        assert_eq!(
            zen4.compacted_offset(zen4.xcr0_supported(), g.id),
            Some(g.offset),
            "component {}",
            g.id.index()
        );
    }
    assert_eq!(zen4.compacted_size_for(zen4.xcr0_supported()), 2440);
    // With CET_U and CET_S: 2440 + 16 + 24.
    assert_eq!(zen4.compacted_size(), 2480);
    assert_eq!(
        zen4.compacted_offset(zen4.supported(), ComponentId::CET_S),
        Some(2456)
    );

    let skx = catalog::get("intel-skylake-sp").unwrap();
    // AVX 576..832; BNDREGS 832..896; BNDCSR 896..960; opmask 960..1024;
    // ZMM_Hi256 1024..1536; Hi16_ZMM 1536..2560; PKRU 2560..2568.
    let held = skx.xcr0_supported();
    let expect = [
        (ComponentId::MPX_BNDREGS, 832),
        (ComponentId::MPX_BNDCSR, 896),
        (ComponentId::OPMASK, 960),
        (ComponentId::ZMM_HI256, 1024),
        (ComponentId::HI16_ZMM, 1536),
        (ComponentId::PKRU, 2560),
    ];
    for (c, off) in expect {
        assert_eq!(skx.compacted_offset(held, c), Some(off), "{c}");
    }
    assert_eq!(skx.compacted_size_for(held), 2568);
    // The Skylake-SP dump's CPUID.(0xD,1).EBX is 2688: XCR0 = 0xff (PKRU
    // off, as sub-leaf 0 EBX = 2688 says) plus PT: 2560 + 128.
    assert_eq!(skx.compacted_size_for(x(0xff | 0x100)), 2688);

    let dmr = catalog::get("intel-diamond-rapids").unwrap();
    // APX comes after AMX in the compacted format, not at 960:
    // TILEDATA 2560..10752, APX (not aligned) 10752..10880.
    let held = dmr.xcr0_supported();
    assert_eq!(dmr.offset(ComponentId::APX), Some(960));
    assert_eq!(
        dmr.compacted_offset(held, ComponentId::TILEDATA),
        Some(2560)
    );
    assert_eq!(dmr.compacted_offset(held, ComponentId::APX), Some(10752));
    assert_eq!(dmr.compacted_size_for(held), 10880);
    // Without AMX: PKRU 2432..2440, APX right after.
    let held = Xfeatures::LEGACY
        | ComponentId::AVX.bit()
        | ComponentId::PKRU.bit()
        | ComponentId::APX.bit();
    assert_eq!(dmr.compacted_offset(held, ComponentId::APX), Some(840));
}

#[test]
fn alignment_only_applies_to_flagged_components() {
    // A made-up CPU: PKRU (8 bytes) then an aligned unknown component 20
    // and an unaligned component 21.
    let mut p = zen3_parts();
    p.xcr0_supported |= 0b11 << 20;
    p.standard_size = None;
    p.components.push(aligned(geom(20, 24, 2496)));
    p.components.push(geom(21, 8, 2520));
    let l = p.build().unwrap();
    let held = l.xcr0_supported();
    // AVX 576..832, PKRU 832..840, c20 840 -> 896..920, c21 920..928.
    assert_eq!(l.compacted_offset(held, ComponentId::PKRU), Some(832));
    assert_eq!(l.compacted_offset(held, id(20)), Some(896));
    assert_eq!(l.compacted_offset(held, id(21)), Some(920));
    assert_eq!(l.compacted_size_for(held), 928);
    // Without PKRU: AVX ends at 832 = 13 * 64, no padding.
    let held = held.without(ComponentId::PKRU);
    assert_eq!(l.compacted_offset(held, id(20)), Some(832));
    assert_eq!(l.compacted_size_for(held), 864);
    assert_eq!(l.standard_size(), 2528);
}

#[test]
fn standard_size_for_subsets() {
    let l = spr();
    assert_eq!(l.standard_size_for(Xfeatures::EMPTY), 576);
    assert_eq!(l.standard_size_for(Xfeatures::LEGACY), 576);
    assert_eq!(l.standard_size_for(x(0x7)), 832);
    assert_eq!(l.standard_size_for(x(0x207)), 2696);
    assert_eq!(l.standard_size_for(x(0x602e7)), 11008);
    // Supervisor and unsupported bits do not count.
    assert_eq!(
        l.standard_size_for(x(0x7 | 0x100) | ComponentId::APX.bit()),
        832
    );
}

// ---------------------------------------------------------------- round trips

fn same_geometry(a: &Layout, b: &Layout) {
    assert_eq!(a.vendor(), b.vendor(), "{}", a.name());
    assert_eq!(a.xcr0_supported(), b.xcr0_supported(), "{}", a.name());
    assert_eq!(a.xss_supported(), b.xss_supported(), "{}", a.name());
    assert_eq!(a.standard_size(), b.standard_size(), "{}", a.name());
    assert_eq!(a.compacted_size(), b.compacted_size(), "{}", a.name());
    let ga: Vec<_> = a.components().copied().collect();
    let gb: Vec<_> = b.components().copied().collect();
    assert_eq!(ga, gb, "{}", a.name());
    assert_eq!(a.fingerprint(), b.fingerprint(), "{}", a.name());
}

#[test]
fn to_cpuid_then_to_layout_is_the_identity_on_geometry() {
    for l in catalog::all() {
        let leaf = l.to_cpuid();
        assert_eq!(leaf.xcr0_supported(), l.xcr0_supported());
        assert_eq!(leaf.xss_supported(), l.xss_supported());
        assert_eq!(leaf.subleaves[&0].ecx, l.standard_size());
        assert_eq!(leaf.subleaves[&1].ebx, l.compacted_size());
        let back = leaf.to_layout(l.name()).unwrap();
        same_geometry(l, &back);
        assert_eq!(back.name(), l.name());
        // Catalog MXCSR masks are the vendors' defaults.
        assert_eq!(back.mxcsr_mask(), l.mxcsr_mask(), "{}", l.name());
        // And once more through the leaf: a fixed point.
        assert_eq!(back.to_cpuid(), leaf);
    }
}

#[test]
fn to_cpuid_encodes_flags_in_ecx() {
    let leaf = spr().to_cpuid();
    assert_eq!(leaf.subleaves[&8].ecx, 1, "PT supervisor");
    assert_eq!(leaf.subleaves[&8].ebx, 0, "supervisor: no offset");
    assert_eq!(leaf.subleaves[&17].ecx, 2, "TILECFG aligned");
    assert_eq!(leaf.subleaves[&18].ecx, 6, "TILEDATA aligned + XFD");
    assert_eq!(leaf.subleaves[&18].eax, 8192);
    assert_eq!(leaf.subleaves[&18].ebx, 2816);
    assert_eq!(leaf.vendor.as_deref(), Some("GenuineIntel"));
}

#[test]
fn cpuid_leaf_errors() {
    let leaf = CpuidLeaf0xD::default();
    assert_eq!(leaf.to_layout("x").unwrap_err(), LayoutError::NoLeaf0xD);
    assert_eq!(
        LayoutError::NoLeaf0xD.to_string(),
        "no CPUID leaf 0xD sub-leaf 0 found"
    );
    let mut leaf = spr().to_cpuid();
    leaf.subleaves.remove(&17);
    let e = leaf.to_layout("x").unwrap_err();
    assert_eq!(e, LayoutError::MissingGeometry(ComponentId::TILECFG));
    assert_eq!(
        e.to_string(),
        "AMX TILECFG (component 17) is enumerated but its size and offset are missing"
    );
    // A CPU that says its standard size is smaller than PKRU's end.
    let mut leaf = catalog::get("amd-zen3").unwrap().to_cpuid();
    leaf.subleaves.get_mut(&0).unwrap().ecx = 2400;
    assert_eq!(
        leaf.to_layout("x").unwrap_err().to_string(),
        "PKRU (component 9) at 2432..2440 runs past the enumerated size 2400"
    );
    // Unknown vendor.
    let mut leaf = catalog::get("amd-zen3").unwrap().to_cpuid();
    leaf.vendor = None;
    let l = leaf.to_layout("x").unwrap();
    assert_eq!(l.vendor(), "unknown");
    assert_eq!(l.mxcsr_mask(), 0xFFFF);
}

#[test]
fn to_toml_then_from_toml_is_the_identity() {
    for l in catalog::all() {
        let text = l.to_toml();
        let back = Layout::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", l.name()));
        assert_eq!(&back, l, "{}", l.name());
        assert_eq!(back.to_toml(), text);
    }
    // A layout with unknown components and flags of every kind.
    let mut p = zen3_parts();
    p.xcr0_supported |= 1 << 40;
    p.standard_size = None;
    p.mxcsr_mask = Some(0xFFBF);
    p.components.push(ComponentGeometry {
        align64: true,
        xfd: true,
        ..geom(40, 72, 2440)
    });
    let l = p.build().unwrap();
    let back = Layout::from_toml(&l.to_toml()).unwrap();
    assert_eq!(back, l);
    assert_eq!(back.mxcsr_mask(), 0xFFBF);
    assert!(back.geometry(id(40)).unwrap().xfd);
}

/// The smallest layout file with an extended component: x87, SSE and AVX.
const TINY_TOML: &str = r#"
    name = "tiny"
    vendor = "GenuineIntel"
    source = "made up"
    xcr0_supported = "0x7"

    [[component]]
    id = 2
    size = 256
    offset = 576
"#;

#[test]
fn toml_defaults_and_errors() {
    let minimal = TINY_TOML;
    let l = Layout::from_toml(minimal).unwrap();
    assert_eq!(l.xss_supported(), Xfeatures::EMPTY);
    assert_eq!(l.standard_size(), 832);
    assert_eq!(l.mxcsr_mask(), 0xFFFF);
    assert_eq!(l.source(), "made up");
    let g = l.geometry(ComponentId::AVX).unwrap();
    assert!(!g.supervisor && !g.align64 && !g.xfd);

    let e = Layout::from_toml(&minimal.replace("\"0x7\"", "\"0xzz\"")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "layout file field xcr0_supported has a bad value \"0xzz\""
    );
    let e =
        Layout::from_toml(&minimal.replace("size = 256", "size = 256\ncolour = 1")).unwrap_err();
    assert!(matches!(e, FileError::Toml(_)), "{e:?}");
    // The parser's reason, in the error or its causes, names the field.
    assert!(report(&e).contains("colour"), "{}", report(&e));
    let e = Layout::from_toml("this is not toml").unwrap_err();
    assert!(matches!(e, FileError::Toml(_)), "{e:?}");
    // Validation applies to files too.
    let e = Layout::from_toml(&minimal.replace("offset = 576", "offset = 500")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "AVX (component 2) at offset 500 lies inside the legacy region and header (0..576)"
    );
    let bad_mask = minimal.replace(
        "xcr0_supported = \"0x7\"",
        "xcr0_supported = \"0x7\"\nmxcsr_mask = \"0x1ffffffff\"",
    );
    let e = Layout::from_toml(&bad_mask).unwrap_err();
    assert!(
        matches!(
            &e,
            FileError::BadField {
                field: "mxcsr_mask",
                value,
            } if value == "0x1ffffffff"
        ),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- fingerprints

#[test]
fn fingerprint_follows_geometry_only() {
    let all = catalog::all();
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.fingerprint(), a.renamed("other").fingerprint());
        let via_cpuid = a.to_cpuid().to_layout("x").unwrap();
        assert_eq!(a.fingerprint(), via_cpuid.fingerprint(), "{}", a.name());
        for b in &all[i + 1..] {
            assert_ne!(
                a.fingerprint(),
                b.fingerprint(),
                "{} vs {}",
                a.name(),
                b.name()
            );
        }
    }
    // One flag, one offset, one size.
    let base = zen3_parts().build().unwrap().fingerprint();
    let mut p = zen3_parts();
    p.components[0].align64 = true;
    assert_ne!(p.build().unwrap().fingerprint(), base);
    let mut p = zen3_parts();
    p.components[1].offset = 2440;
    p.standard_size = Some(2448);
    assert_ne!(p.build().unwrap().fingerprint(), base);
    // Arch LBR is the one known component whose size varies by CPU.
    let mut p = zen3_parts();
    p.xss_supported |= 1 << 15;
    p.components.push(sup(15, 808));
    let lbr = p.build().unwrap().fingerprint();
    assert_ne!(lbr, base);
    p.components.last_mut().unwrap().size = 840;
    assert_ne!(p.build().unwrap().fingerprint(), lbr);
    // Name, vendor, source and MXCSR mask are not geometry.
    let mut p = zen3_parts();
    p.name = "another".into();
    p.source = "elsewhere".into();
    p.mxcsr_mask = Some(0xFFFF);
    assert_eq!(p.build().unwrap().fingerprint(), base);
}

// ---------------------------------------------------------------- sources

#[test]
fn layout_source_parse() {
    assert_eq!(LayoutSource::parse("host"), LayoutSource::Host);
    for l in catalog::all() {
        assert_eq!(
            LayoutSource::parse(l.name()),
            LayoutSource::Catalog(l.name().to_string())
        );
        assert_eq!(&LayoutSource::parse(l.name()).load().unwrap(), l);
    }
    assert_eq!(
        LayoutSource::parse("layouts/amd-zen4.toml"),
        LayoutSource::File("layouts/amd-zen4.toml".into())
    );
    assert_eq!(
        LayoutSource::parse("Host"),
        LayoutSource::File("Host".into())
    );
    assert_eq!(
        LayoutSource::parse("amd-zen5"),
        LayoutSource::File("amd-zen5".into())
    );
    let e = LayoutSource::Catalog("amd-zen5".into()).load().unwrap_err();
    assert_eq!(
        e.to_string(),
        "no catalog layout named \"amd-zen5\" and no such file (the catalog has \
         intel-skylake-sp, intel-sapphire-rapids, intel-lunar-lake, intel-diamond-rapids, \
         amd-zen3, amd-zen4)"
    );
}

#[test]
fn layout_source_loads_files_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();

    let toml_path = dir.path().join("my-layout.txt");
    std::fs::write(&toml_path, zen4.to_toml()).unwrap();
    let l = LayoutSource::parse(toml_path.to_str().unwrap())
        .load()
        .unwrap();
    assert_eq!(&l, zen4);

    // A dump: named after the file stem.
    let leaf = zen4.to_cpuid();
    let mut dump = String::from("CPUID 00000000: 00000010-68747541-444D4163-69746E65\n");
    for (sub, r) in &leaf.subleaves {
        dump += &format!(
            "CPUID 0000000D: {:08X}-{:08X}-{:08X}-{:08X} [SL {:02X}]\n",
            r.eax, r.ebx, r.ecx, r.edx, sub
        );
    }
    let dump_path = dir.path().join("genoa.toml");
    std::fs::write(&dump_path, dump).unwrap();
    let l = LayoutSource::parse(dump_path.to_str().unwrap())
        .load()
        .unwrap();
    assert_eq!(l.name(), "genoa");
    assert_eq!(l.vendor(), "AuthenticAMD");
    same_geometry(&l, zen4);

    let missing = dir.path().join("nope.toml");
    let e = LayoutSource::parse(missing.to_str().unwrap())
        .load()
        .unwrap_err();
    assert!(matches!(e, SourceError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("nope.toml"), "{e}");

    let junk = dir.path().join("junk");
    std::fs::write(&junk, "hello = [").unwrap();
    let e = LayoutSource::parse(junk.to_str().unwrap())
        .load()
        .unwrap_err();
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

#[cfg(target_arch = "x86_64")]
#[test]
fn host_source_loads_the_host_layout() {
    let a = LayoutSource::Host.load().unwrap();
    let b = crate::host::layout().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.name(), "host");
}

// ------------------------------------------------- random geometries

mod random {
    use super::*;
    use proptest::prelude::*;

    const START: u32 = EXTENDED_START as u32;

    /// Valid layouts: user components 2..24 placed one after another in a
    /// random order with random gaps, supervisor components with random sizes.
    fn valid_parts() -> impl Strategy<Value = Parts> {
        (
            any::<u32>(),
            any::<u32>(),
            prop::collection::vec((1u32..2048, 0u32..200, any::<bool>(), any::<bool>()), 22),
            any::<u64>(),
        )
            .prop_map(|(pick, sup_pick, shapes, order_seed)| {
                let pick = u64::from(pick) << 2 & 0x00FF_FFFC;
                // Never MPX with APX.
                let pick = if pick & 1 << 19 != 0 {
                    pick & !0x18
                } else {
                    pick
                };
                let xss = registers(pick, sup_pick);
                let xcr0 = 0x3 | (pick & !xss);
                let mut order: Vec<ComponentId> = x(pick & !xss).iter().collect();
                // A deterministic shuffle: standard offsets need not rise with
                // the component number (APX at 960 comes before AVX-512).
                let mut s = order_seed;
                for i in (1..order.len()).rev() {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    order.swap(i, (s >> 33) as usize % (i + 1));
                }
                let mut at = START;
                let mut components = Vec::new();
                for c in order {
                    let (size, gap, align64, xfd) = shapes[c.index() as usize - 2];
                    let size = c.fixed_size().unwrap_or(size);
                    at += gap;
                    components.push(ComponentGeometry {
                        align64,
                        // XFD only where it may apply (TILEDATA, unknown ones).
                        xfd: xfd && c.xfd_capable(),
                        ..geom(c.index(), size, at)
                    });
                    at += size;
                }
                for c in x(xss) {
                    let (size, _, align64, xfd) = shapes[c.index() as usize - 2];
                    let size = c.fixed_size().unwrap_or(size);
                    components.push(ComponentGeometry {
                        supervisor: true,
                        align64,
                        xfd: xfd && c.xfd_capable(),
                        ..geom(c.index(), size, 0)
                    });
                }
                Parts {
                    name: "random".into(),
                    vendor: "GenuineIntel".into(),
                    source: "proptest".into(),
                    xcr0_supported: xcr0,
                    xss_supported: xss,
                    standard_size: None,
                    mxcsr_mask: None,
                    xsave_features: None,
                    components,
                }
            })
    }

    /// IA32_XSS for the components `pick`: the known supervisor ones, and
    /// the unknown ones whose bit (from bit 2) `sup_pick` sets.
    fn registers(pick: u64, sup_pick: u32) -> u64 {
        x(pick)
            .iter()
            .filter(|c| match c.info() {
                Some(info) => info.supervisor,
                None => u64::from(sup_pick) << 2 & c.bit().bits() != 0,
            })
            .collect::<Xfeatures>()
            .bits()
    }

    /// Any numbers at all, including ones that overflow u32 arithmetic and
    /// components in the wrong register; but often enough valid ones.
    fn wild_parts() -> impl Strategy<Value = Parts> {
        let number = prop_oneof![0u32..4096, 576u32..20000, any::<u32>(), Just(u32::MAX)];
        (
            any::<u32>(),
            any::<u32>(),
            prop::option::of(prop_oneof![0u32..576, 576u32..20000, any::<u32>()]),
            prop::collection::vec(
                (
                    number.clone(),
                    number,
                    any::<bool>(),
                    prop::bool::weighted(0.9),
                ),
                22,
            ),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(pick, sup_pick, standard_size, shapes, obey)| {
                let pick = u64::from(pick) << 2 & 0x00FF_FFFC;
                let xss = if obey {
                    registers(pick, sup_pick)
                } else {
                    pick & u64::from(sup_pick) << 2
                };
                let xcr0 = 0x3 | (pick & !xss);
                let components = x(pick)
                    .iter()
                    .map(|c| {
                        let (size, offset, align64, architectural) = shapes[c.index() as usize - 2];
                        let size = match c.fixed_size() {
                            Some(fixed) if architectural => fixed,
                            _ => size,
                        };
                        let supervisor = x(xss).contains(c);
                        ComponentGeometry {
                            supervisor,
                            align64,
                            ..geom(c.index(), size.max(1), if supervisor { 0 } else { offset })
                        }
                    })
                    .collect();
                Parts {
                    name: "wild".into(),
                    vendor: "AuthenticAMD".into(),
                    source: "proptest".into(),
                    xcr0_supported: xcr0,
                    xss_supported: xss,
                    standard_size,
                    mxcsr_mask: None,
                    xsave_features: None,
                    components,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x000D_0D0D),
            failure_persistence: None,
            ..ProptestConfig::with_cases(256)
        })]

        #[test]
        fn compacted_offsets_follow_the_rule_for_any_xcomp_bv(
            parts in valid_parts(),
            xcomp in any::<u64>(),
        ) {
            let l = parts.build().unwrap();
            let xcomp = x(xcomp);
            let held = (xcomp & l.supported()) - Xfeatures::LEGACY;
            // Walk the components held in ascending order: each starts where
            // the previous ended, or at the next multiple of 64 if aligned.
            let mut end = START;
            for c in held {
                let g = *l.geometry(c).unwrap();
                let at = l.compacted_offset(xcomp, c).unwrap();
                let i = c.index();
                prop_assert!(at >= end, "component {} at {} overlaps the one before (end {})", i, at, end);
                if g.align64 {
                    prop_assert_eq!(at % 64, 0, "component {} not aligned", i);
                    prop_assert!(at - end < 64, "component {} padded too much", i);
                } else {
                    prop_assert_eq!(at, end, "component {} not packed", i);
                }
                end = at + g.size;
            }
            prop_assert_eq!(l.compacted_size_for(xcomp), end);
            // Components not held have no compacted offset.
            for c in (0..64).map(id) {
                if !(xcomp & l.supported()).contains(c) {
                    prop_assert_eq!(l.compacted_offset(xcomp, c), None);
                }
            }
            // Bit 63 is the format flag, not a component.
            prop_assert_eq!(
                l.compacted_size_for(x(xcomp.bits() | 1 << 63)),
                l.compacted_size_for(x(xcomp.bits() & !(1 << 63)))
            );
        }

        #[test]
        fn random_valid_layouts_round_trip(parts in valid_parts()) {
            let l = parts.build().unwrap();
            let via_cpuid = l.to_cpuid().to_layout("random").unwrap();
            prop_assert_eq!(via_cpuid.fingerprint(), l.fingerprint());
            prop_assert_eq!(
                via_cpuid.components().copied().collect::<Vec<_>>(),
                l.components().copied().collect::<Vec<_>>()
            );
            let via_toml = Layout::from_toml(&l.to_toml()).unwrap();
            prop_assert_eq!(&via_toml, &l);
            // The standard size is the end of the last user component.
            let last = l
                .components()
                .filter(|g| !g.supervisor && !g.id.is_legacy())
                .map(ComponentGeometry::end)
                .max()
                .unwrap_or(START);
            prop_assert_eq!(l.standard_size(), last.max(START));
            prop_assert_eq!(l.standard_size_for(x(u64::MAX)), l.standard_size());
        }

        #[test]
        fn any_geometry_is_built_or_refused_without_panicking(parts in wild_parts()) {
            if let Ok(l) = parts.build() {
                let _ = l.compacted_size();
                let _ = l.standard_size_for(x(u64::MAX));
                for c in (0..64).map(id) {
                    let _ = l.compacted_offset(x(u64::MAX), c);
                }
                let _ = l.fingerprint();
                let back = l.to_cpuid().to_layout("again");
                prop_assert!(back.is_ok(), "{:?}", back);
                let text = l.to_toml();
                prop_assert_eq!(Layout::from_toml(&text).unwrap(), l);
            }
        }
    }
}

#[test]
fn geometry_whose_end_overflows_is_refused_not_a_panic() {
    // PKRU at 0xFFFFFF80, 256 bytes: offset + size does not fit in 32 bits.
    let mut p = zen3_parts();
    p.components[1] = geom(9, 256, 0xFFFF_FF80);
    let (e, msg) = err(p);
    assert_eq!(
        e,
        LayoutError::EndOverflow {
            component: ComponentId::PKRU,
            offset: 0xFFFF_FF80,
            size: 256
        }
    );
    assert_eq!(
        msg,
        "PKRU (component 9) at offset 4294967168 with size 256 ends past 1048576 bytes, \
         the most an XSAVE area may have"
    );
}

#[test]
fn huge_supervisor_components_do_not_overflow_compacted_sizes() {
    // A supervisor component of 0xFFFFFFFF bytes: the standard format does
    // not hold it, the compacted one cannot (576 + AVX 256 + PKRU 8 +
    // CET_U 4294967295 + CET_S 24 = 4294968159 bytes, past 32 bits). The
    // component alone is past the cap.
    let mut p = zen3_parts();
    p.xss_supported |= 1 << 40;
    p.components.push(sup(40, u32::MAX));
    let (e, _) = err(p);
    assert_eq!(
        e,
        LayoutError::EndOverflow {
            component: id(40),
            offset: 0,
            size: u32::MAX
        }
    );
    // Two (unknown) supervisor components each under the cap, together
    // past it: 576 + 256 + 8 + 16 + 24 + 2 * 600000 = 1200880 bytes.
    let mut p = zen3_parts();
    p.xss_supported |= 0b11 << 40;
    p.components.push(sup(40, 600_000));
    p.components.push(sup(41, 600_000));
    let (e, msg) = err(p);
    assert_eq!(e, LayoutError::CompactedTooLarge { size: 1_200_880 });
    assert_eq!(
        msg,
        "the compacted area for every supported component would be 1200880 bytes, \
         more than the 1048576 an XSAVE area may have"
    );
    // At the cap exactly: built, and every compacted figure in range.
    let mut p = zen3_parts();
    p.xss_supported |= 1 << 40;
    p.components
        .push(sup(40, MAX_AREA_SIZE - (576 + 256 + 8 + 16 + 24)));
    let l = p.build().unwrap();
    assert_eq!(l.compacted_size(), MAX_AREA_SIZE);
    assert_eq!(l.compacted_size_for(Xfeatures::ALL), MAX_AREA_SIZE);
}

#[test]
fn legacy_only_layouts_round_trip_and_refuse_xsave_state() {
    let old = Layout::legacy_only("nehalem", "GenuineIntel", "a pre-XSAVE CPU");
    assert!(!old.has_xsave());
    assert_eq!(old.supported(), Xfeatures::LEGACY);
    assert_eq!((old.standard_size(), old.xsave_features()), (576, 0));
    assert_eq!(old.mxcsr_mask(), 0xFFFF);
    // Not the fingerprint of the XSAVE layout with the same bits.
    let xsave_legacy = parts(0x3, vec![]).build().unwrap();
    assert!(xsave_legacy.has_xsave());
    assert_ne!(old.fingerprint(), xsave_legacy.fingerprint());
    let toml = old.to_toml();
    assert!(toml.contains("xsave = false"), "{toml}");
    assert!(!xsave_legacy.to_toml().contains("xsave ="));
    assert_eq!(Layout::from_toml(&toml).unwrap(), old);
    let bad = toml.replace("xcr0_supported = \"0x3\"", "xcr0_supported = \"0x7\"");
    let e = Layout::from_toml(&bad).unwrap_err();
    assert!(
        matches!(e, FileError::LegacyWithXsaveState { xcr0, .. } if xcr0 == x(0x7)),
        "{e:?}"
    );
    assert!(e.to_string().contains("xsave = false"), "{e}");
}

#[test]
fn layouts_say_which_xsetbv_rules_their_xcr0_breaks() {
    use crate::cpuid::xcr0::Rule;
    for l in catalog::all() {
        assert_eq!(l.xcr0_violations().count(), 0, "{}", l.name());
    }
    // TILECFG without TILEDATA: a valid geometry, but no XCR0 can use it.
    let p = parts(
        0x20007,
        vec![
            geometry(2, 256, 576),
            ComponentGeometry {
                align64: true,
                ..geometry(17, 64, 2752)
            },
        ],
    );
    let l = p.build().unwrap();
    let v: Vec<_> = l.xcr0_violations().collect();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].rule, v[0].bits), (Rule::AmxTogether, x(0x20000)));
    assert_eq!(
        v[0].to_string(),
        "XCR0 0x20007 breaks a rule: AMX TILECFG and TILEDATA (bits 17-18) must be both set or both clear (bits at fault: 0x20000)"
    );
}

#[test]
fn hex_fields_refuse_a_sign() {
    let minimal = TINY_TOML;
    assert!(Layout::from_toml(minimal).is_ok());
    for (field, line) in [
        ("xcr0_supported", "xcr0_supported = \"+7\""),
        ("xcr0_supported", "xcr0_supported = \"0x+7\""),
        (
            "xss_supported",
            "xcr0_supported = \"0x7\"\nxss_supported = \"+0\"",
        ),
        (
            "mxcsr_mask",
            "xcr0_supported = \"0x7\"\nmxcsr_mask = \"+ffff\"",
        ),
        (
            "xsave_features",
            "xcr0_supported = \"0x7\"\nxsave_features = \"+f\"",
        ),
    ] {
        let text = minimal.replace("xcr0_supported = \"0x7\"", line);
        let e = Layout::from_toml(&text).unwrap_err();
        assert!(
            matches!(&e, FileError::BadField { field: f, value } if *f == field && value.contains('+')),
            "{line}: {e:?}"
        );
    }
}

// ------------------------------------------- architectural sizes, registers, bounds

#[test]
fn known_components_have_their_architectural_size() {
    // The testers' file: AVX at 128 bytes loaded, and encoding panicked.
    let text = r#"
        name = "half-avx"
        vendor = "GenuineIntel"
        source = "made up"
        xcr0_supported = "0x7"

        [[component]]
        id = 2
        size = 128
        offset = 576
    "#;
    let e = Layout::from_toml(text).unwrap_err();
    assert!(
        matches!(
            e,
            FileError::Layout(LayoutError::NotArchitecturalSize {
                component: ComponentId::AVX,
                size: 128,
                architectural: 256
            })
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "AVX (component 2) has size 128, but its architectural size is 256"
    );
    // Every known component with a fixed size, one byte off either way, in
    // the register it belongs to.
    for c in ComponentId::known().filter(|c| !c.is_legacy()) {
        let info = c.info().unwrap();
        let sizes = match c.fixed_size() {
            Some(s) => vec![s - 1, s + 1],
            None => vec![],
        };
        for size in sizes {
            let mut p = parts(0x3, vec![]);
            if info.supervisor {
                p.xss_supported = c.bit().bits();
                p.components = vec![sup(c.index(), size)];
            } else {
                p.xcr0_supported |= c.bit().bits();
                p.components = vec![geom(c.index(), size, 1024)];
            }
            assert_eq!(
                p.build().unwrap_err(),
                LayoutError::NotArchitecturalSize {
                    component: c,
                    size,
                    architectural: info.size
                },
                "{c}"
            );
        }
    }
    // Arch LBR's size follows the CPU's LBR count: any size is taken, as
    // are unknown components' sizes.
    let mut p = zen3_parts();
    p.xss_supported |= 1 << 15;
    p.components.push(sup(15, 328));
    assert_eq!(p.build().unwrap().size(ComponentId::LBR), Some(328));
    let mut p = zen3_parts();
    p.xcr0_supported |= 1 << 30;
    p.standard_size = None;
    p.components.push(geom(30, 7, 2440));
    assert_eq!(p.build().unwrap().size(id(30)), Some(7));
    // The same rule for a CPUID function and a leaf 0xD: PKRU at 16 bytes.
    let zen3 = catalog::get("amd-zen3").unwrap().to_cpuid();
    let mut leaf = zen3.clone();
    leaf.subleaves.get_mut(&9).unwrap().eax = 16;
    let e = leaf.to_layout("x").unwrap_err();
    assert_eq!(
        e,
        LayoutError::NotArchitecturalSize {
            component: ComponentId::PKRU,
            size: 16,
            architectural: 8
        }
    );
    let e = Layout::from_cpuid("x", "test", |l, s| match l {
        0 => CpuidRegs {
            eax: 0x10,
            ..CpuidRegs::default()
        },
        0xD => leaf.subleaves.get(&s).copied().unwrap_or_default(),
        _ => CpuidRegs::default(),
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::NotArchitecturalSize {
                component: ComponentId::PKRU,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn xcr0_and_ia32_xss_hold_only_their_own_components() {
    // The testers' file: PT (supervisor) in XCR0, and reserved bit 63.
    let text = r#"
        name = "impossible"
        vendor = "GenuineIntel"
        source = "made up"
        xcr0_supported = "0x8000000000000107"

        [[component]]
        id = 2
        size = 256
        offset = 576

        [[component]]
        id = 8
        size = 128
        offset = 832
    "#;
    let e = Layout::from_toml(text).unwrap_err();
    assert!(
        matches!(
            e,
            FileError::Layout(LayoutError::ReservedBit63 {
                register: Xreg::Xcr0,
                value
            }) if value == x(0x8000_0000_0000_0107)
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "supported XCR0 0x8000000000000107 has bit 63 set, which is reserved"
    );
    let e = Layout::from_toml(&text.replace("0x8000000000000107", "0x107")).unwrap_err();
    assert!(
        matches!(
            e,
            FileError::Layout(LayoutError::SupervisorInXcr0(ComponentId::PT))
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "PT (component 8) is a supervisor component: IA32_XSS enumerates it, never XCR0"
    );
    // A user component in IA32_XSS.
    let mut p = zen3_parts();
    p.xss_supported |= 1 << 5;
    p.components.push(sup(5, 64));
    let (e, msg) = err(p);
    assert_eq!(e, LayoutError::UserInXss(ComponentId::OPMASK));
    assert_eq!(
        msg,
        "AVX-512 opmask (component 5) is a user component: XCR0 enumerates it, never IA32_XSS"
    );
    // Bit 63 of IA32_XSS.
    let mut p = zen3_parts();
    p.xss_supported |= 1 << 63;
    let (e, msg) = err(p);
    assert_eq!(
        e,
        LayoutError::ReservedBit63 {
            register: Xreg::Xss,
            value: x(0x8000_0000_0000_1800)
        }
    );
    assert_eq!(
        msg,
        "supported IA32_XSS 0x8000000000001800 has bit 63 set, which is reserved"
    );
    // Unknown components may be either.
    let mut p = zen3_parts();
    p.xss_supported |= 1 << 40;
    p.xcr0_supported |= 1 << 41;
    p.standard_size = None;
    p.components.push(sup(40, 8));
    p.components.push(geom(41, 8, 2440));
    assert!(p.build().is_ok());
    // Through leaf 0xD too: PT moved from IA32_XSS to XCR0.
    let mut leaf = spr().to_cpuid();
    leaf.subleaves.get_mut(&0).unwrap().eax |= 1 << 8;
    leaf.subleaves.get_mut(&1).unwrap().ecx &= !(1 << 8);
    leaf.subleaves.get_mut(&8).unwrap().ecx &= !1;
    assert_eq!(
        leaf.to_layout("x").unwrap_err(),
        LayoutError::SupervisorInXcr0(ComponentId::PT)
    );
}

#[test]
fn layout_geometry_is_bounded() {
    let minimal = r#"
        name = "tiny"
        vendor = "GenuineIntel"
        source = "made up"
        xcr0_supported = "0x3"
    "#;
    // The testers' standard_size = 4294967295, and 0.
    for (size, e) in [
        (u32::MAX, LayoutError::StandardTooLarge { size: u32::MAX }),
        (
            MAX_AREA_SIZE + 1,
            LayoutError::StandardTooLarge {
                size: MAX_AREA_SIZE + 1,
            },
        ),
        (0, LayoutError::StandardTooSmall { size: 0 }),
        (575, LayoutError::StandardTooSmall { size: 575 }),
    ] {
        let text = format!("{minimal}standard_size = {size}\n");
        let got = Layout::from_toml(&text).unwrap_err();
        assert!(
            matches!(got, FileError::Layout(g) if g == e),
            "{size}: {got:?}"
        );
    }
    assert_eq!(
        LayoutError::StandardTooLarge { size: u32::MAX }.to_string(),
        "the standard size 4294967295 is more than the 1048576 bytes an XSAVE area may have"
    );
    assert_eq!(
        LayoutError::StandardTooSmall { size: 0 }.to_string(),
        "the standard size 0 is smaller than the legacy region and XSAVE header (576 bytes)"
    );
    // The bounds themselves are taken.
    let text = format!("{minimal}standard_size = 576\n");
    assert_eq!(Layout::from_toml(&text).unwrap().standard_size(), 576);
    // The testers' component of 4,000,000,000 bytes (62: bit 63 is reserved).
    let huge = format!(
        "{}\n[[component]]\nid = 62\nsize = 4000000000\noffset = 576\n",
        minimal.replace("\"0x3\"", "\"0x4000000000000003\"")
    );
    let e = Layout::from_toml(&huge).unwrap_err();
    assert!(
        matches!(
            e,
            FileError::Layout(LayoutError::EndOverflow {
                size: 4_000_000_000,
                offset: 576,
                ..
            })
        ),
        "{e:?}"
    );
    // A user component ending exactly at the cap is taken.
    let at_cap = huge.replace(
        "size = 4000000000",
        &format!("size = {}", MAX_AREA_SIZE - 576),
    );
    let l = Layout::from_toml(&at_cap).unwrap();
    assert_eq!(l.standard_size(), MAX_AREA_SIZE);
    assert_eq!(l.compacted_size(), MAX_AREA_SIZE);
    let one_more = huge.replace(
        "size = 4000000000",
        &format!("size = {}", MAX_AREA_SIZE - 575),
    );
    assert!(matches!(
        Layout::from_toml(&one_more),
        Err(FileError::Layout(LayoutError::EndOverflow { .. }))
    ));
}

// ------------------------------------------------ sources told apart by content

#[test]
fn kvm_cpuid2_json_is_a_source_like_any_cpuid() {
    let dir = tempfile::tempdir().unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut set = crate::cpuid::CpuidSet::new();
    set.set(
        0,
        0,
        CpuidRegs {
            eax: 0x10,
            ebx: 0x6874_7541,
            ecx: 0x444d_4163,
            edx: 0x6974_6e65,
        },
    )
    .unwrap();
    for (sub, regs) in zen4.to_cpuid().subleaves {
        set.set(0xD, sub, regs).unwrap();
    }
    let array = set.to_kvm_json();
    let object = format!("{{\"entries\": {array}}}");
    for (file, text) in [("pool.json", &array), ("entries.json", &object)] {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let l = LayoutSource::parse(path.to_str().unwrap()).load().unwrap();
        same_geometry(&l, zen4);
        assert_eq!(l.name(), file.trim_end_matches(".json"));
        assert_eq!(l.source(), "CPUID dump (kvm_cpuid2 JSON format)");
    }
    // A bad entry: the CPUID parser's error, naming what the file was
    // taken for and the entry.
    let path = dir.path().join("bad.json");
    std::fs::write(&path, array.replacen("\"eax\": \"0x", "\"eax\": \"+0x", 1)).unwrap();
    let e = LayoutSource::parse(path.to_str().unwrap())
        .load()
        .unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::Dump {
                source: DumpError::Cpuid(crate::cpuid::CpuidSetError::Field { .. }),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        report(&e).contains(
            "(read as a CPUID: cpuid -r, InstLatx64 or kvm_cpuid2 JSON): entry 0: field \"eax\""
        ),
        "{}",
        report(&e)
    );
}

#[test]
fn source_errors_name_what_the_file_was_taken_for() {
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let e = LayoutSource::parse(path.to_str().unwrap())
            .load()
            .unwrap_err();
        (report(&e), e)
    };
    let (msg, e) = load("a.json", "{\"name\": \"x\"}");
    assert!(matches!(e, SourceError::Profile { .. }), "{e:?}");
    assert!(
        msg.contains("a.json (read as a host profile): not a host profile"),
        "{msg}"
    );
    let (msg, e) = load("b.json", "[{\"function\": 0}]");
    assert!(matches!(e, SourceError::Dump { .. }), "{e:?}");
    assert!(msg.contains("b.json (read as a CPUID"), "{msg}");
    let (msg, e) = load("c.toml", "name = 1");
    assert!(matches!(e, SourceError::File { .. }), "{e:?}");
    assert!(
        msg.contains("c.toml (read as a TOML layout file): not a layout file"),
        "{msg}"
    );
    let (msg, e) = load(
        "d.txt",
        "CPU:\n   0x00000000 0x00: eax=0x10 ebx=0x0 ecx=0x0\n",
    );
    assert!(matches!(e, SourceError::Dump { .. }), "{e:?}");
    assert!(msg.ends_with("line 2: malformed CPUID line"), "{msg}");
}

#[test]
fn a_profile_loaded_as_a_layout_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let profile = crate::profile::HostProfile {
        layout: spr.renamed("node-a"),
        kvm: Some(crate::profile::KvmOffer::new(x(0x2e7), 4096, 0xffff)),
    };
    let path = dir.path().join("me.json");
    std::fs::write(&path, profile.to_json()).unwrap();
    let source = LayoutSource::parse(path.to_str().unwrap());
    let l = source.load().unwrap();
    assert_eq!(l.name(), "node-a");
    same_geometry(&l, spr);
    assert_eq!(
        l.source(),
        format!("host profile {}: {}", path.display(), spr.source())
    );
    let p = source.load_profile().unwrap();
    assert_eq!(p.kvm, profile.kvm);
    assert_eq!(p.layout, l);
}

#[test]
fn files_too_large_or_not_text_are_rejected_inputs_not_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let mut text = catalog::get("amd-zen4").unwrap().to_toml();
    text.push('#');
    text.push_str(&" ".repeat(MAX_SOURCE_FILE as usize));
    std::fs::write(&big, &text).unwrap();
    let e = LayoutSource::parse(big.to_str().unwrap())
        .load()
        .unwrap_err();
    assert!(
        matches!(&e, SourceError::TooLarge { max, .. } if *max == MAX_SOURCE_FILE),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{} is larger than 4194304 bytes: not a layout file, CPUID or host profile",
            big.display()
        )
    );
    // At the limit exactly it is read (and fails as TOML only if it is not).
    text.truncate(MAX_SOURCE_FILE as usize);
    std::fs::write(&big, &text).unwrap();
    assert!(LayoutSource::parse(big.to_str().unwrap()).load().is_ok());

    let binary = dir.path().join("area.bin");
    std::fs::write(&binary, [0x7f, 0xff, 0xfe, 0x00, 0x80]).unwrap();
    let e = LayoutSource::parse(binary.to_str().unwrap())
        .load()
        .unwrap_err();
    assert!(matches!(e, SourceError::NotText { at: 1, .. }), "{e:?}");
    assert!(e
        .to_string()
        .ends_with("is not UTF-8 text (byte 1 is not): not a layout file, CPUID or host profile"));

    let missing = dir.path().join("missing.toml");
    let e = read_source_file(&missing).unwrap_err();
    assert!(matches!(e, SourceError::Io { .. }), "{e:?}");
    // A directory, a FIFO: not regular files, refused unopened.
    let e = read_source_file(dir.path()).unwrap_err();
    assert!(
        matches!(
            e,
            SourceError::NotRegular {
                kind: "directory",
                ..
            }
        ),
        "{e:?}"
    );
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.expect("mkfifo (coreutils)").success());
    let e = read_source_file(&fifo).unwrap_err();
    assert!(
        matches!(e, SourceError::NotRegular { kind: "FIFO", .. }),
        "{e:?}"
    );
}

#[test]
fn mxcsr_masks_hold_the_architectural_minimum() {
    let zen3 = catalog::get("amd-zen3").unwrap().to_toml();
    assert!(zen3.contains("mxcsr_mask = \"0x2ffff\""), "{zen3}");
    // A saved MXCSR_MASK of 0 stands for 0xffbf (Intel SDM vol. 1, 11.6.6).
    let zero = Layout::from_toml(&zen3.replace("0x2ffff", "0x0")).unwrap();
    assert_eq!(zero.mxcsr_mask(), MXCSR_MASK_MIN);
    for mask in ["0xff3f", "0x10000"] {
        let e = Layout::from_toml(&zen3.replace("0x2ffff", mask)).unwrap_err();
        assert!(
            matches!(e, FileError::Layout(LayoutError::MxcsrMask { .. })),
            "{mask}: {e:?}"
        );
    }
    assert_eq!(
        LayoutError::MxcsrMask { mask: 0xff3f }.to_string(),
        "MXCSR mask 0xff3f lacks bits 0x80 of 0xffbf, the architectural minimum every CPU \
         lets software set"
    );
    let l = Layout::from_toml(&zen3.replace("0x2ffff", "0xffbf")).unwrap();
    assert_eq!(l.mxcsr_mask(), MXCSR_MASK_MIN);
    // A legacy-only layout file too.
    let old = Layout::legacy_only("old", "GenuineIntel", "test").to_toml();
    let l = Layout::from_toml(&old.replace("0xffff", "0x0")).unwrap();
    assert_eq!(l.mxcsr_mask(), MXCSR_MASK_MIN);
    let e = Layout::from_toml(&old.replace("0xffff", "0xff3f")).unwrap_err();
    assert!(
        matches!(
            e,
            FileError::Layout(LayoutError::MxcsrMask { mask: 0xff3f })
        ),
        "{e:?}"
    );
}

#[test]
fn xfd_is_refused_on_known_components_it_never_applies_to() {
    // AVX flagged XFD-capable, from parts, a layout file and leaf 0xD.
    let avx = ComponentGeometry {
        xfd: true,
        ..geometry(2, 256, 576)
    };
    let e = parts(0x7, vec![avx]).build().unwrap_err();
    assert_eq!(e, LayoutError::XfdNotCapable(id(2)));
    assert_eq!(
        e.to_string(),
        "AVX (component 2) is flagged XFD-capable (CPUID.(EAX=0xd,ECX=2):ECX[2]), but extended \
         feature disable applies to no known component other than AMX TILEDATA"
    );
    let toml = "name = \"avxxfd\"\nvendor = \"GenuineIntel\"\nsource = \"h\"\n\
                xcr0_supported = \"0x7\"\n[[component]]\nid = 2\nsize = 256\noffset = 576\n\
                xfd = true\n";
    assert!(matches!(
        Layout::from_toml(toml),
        Err(FileError::Layout(LayoutError::XfdNotCapable(c))) if c == id(2)
    ));
    let mut leaf = catalog::get("intel-sapphire-rapids").unwrap().to_cpuid();
    for sub in [2, 9, 17] {
        let mut l = leaf.clone();
        l.subleaves.get_mut(&sub).unwrap().ecx |= 4;
        assert_eq!(
            crate::layout::from_subleaves("t", "GenuineIntel", "test", |s| l
                .subleaves
                .get(&s)
                .copied()),
            Err(LayoutError::XfdNotCapable(id(sub as u8))),
            "sub-leaf {sub}"
        );
    }
    // TILEDATA (the catalog's Sapphire Rapids sets it) and unknown
    // components may have it.
    leaf.subleaves.get_mut(&18).unwrap().ecx |= 4;
    assert!(
        crate::layout::from_subleaves("t", "GenuineIntel", "test", |s| leaf
            .subleaves
            .get(&s)
            .copied())
        .is_ok()
    );
    let unknown = ComponentGeometry {
        xfd: true,
        ..geometry(40, 72, 832)
    };
    assert!(parts(0x7 | 1 << 40, vec![geometry(2, 256, 576), unknown])
        .build()
        .is_ok());
}

#[test]
fn geometry_that_cannot_be_real_is_refused() {
    // A standard size the components do not end at, above or below.
    for size in [2448, 4096, MAX_AREA_SIZE] {
        let mut p = zen3_parts();
        p.standard_size = Some(size);
        let (e, msg) = err(p);
        assert_eq!(
            e,
            LayoutError::StandardSizeMismatch {
                size,
                computed: 2440
            }
        );
        assert_eq!(
            msg,
            format!(
                "the standard size {size} disagrees with the components, whose \
                 standard-format area ends at 2440 bytes"
            )
        );
    }
    // A supervisor component with a standard offset.
    let mut p = zen3_parts();
    p.components[2].offset = 1000;
    let (e, msg) = err(p);
    assert_eq!(
        e,
        LayoutError::SupervisorOffset {
            component: ComponentId::CET_U,
            offset: 1000
        }
    );
    assert_eq!(
        msg,
        "CET_U (component 11) is a supervisor component, whose standard offset is 0, but has offset 1000"
    );
    // The same through a layout file, naming the file's fields.
    let zen3 = catalog::get("amd-zen3").unwrap().to_toml();
    let e = Layout::from_toml(&zen3.replace("standard_size = 2440", "standard_size = 3000"))
        .unwrap_err();
    assert!(
        matches!(
            e,
            FileError::Layout(LayoutError::StandardSizeMismatch { size: 3000, .. })
        ),
        "{e:?}"
    );
}
