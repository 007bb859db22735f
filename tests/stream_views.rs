//! The stream straight from and into XSAVE areas: `encode_views` writes
//! the bytes `encode` writes for the same areas read into register files,
//! and `Parsed::decode_into_view` leaves an area as `decode_into` then
//! `RegisterFile::write_to` leaves it, refusing (and writing nothing) for
//! exactly the states `check` refuses or the area cannot hold.

mod common;

use proptest::prelude::*;
use xstate::layout::catalog;
use xstate::migrate::stream::{
    self, encode, encode_into, encode_views, encode_views_into, Source, StreamError, Vcpu,
    VcpuArea, MAX_VCPUS,
};
use xstate::migrate::{check, Incompatibility};
use xstate::prelude::*;
use xstate::xregs::XstateRegisters;
use xstate::{ComponentId, Format, Layout, RegisterFile, XcompBv, Xfeatures, XsaveView};

/// `bytes` (any values) as an area of `layout` with XSTATE_BV `live` and
/// XCOMP_BV `xcomp_bv`: the header's reserved bytes zero.
fn area(mut bytes: Vec<u8>, live: Xfeatures, xcomp_bv: XcompBv) -> Vec<u8> {
    bytes[512..520].copy_from_slice(&live.bits().to_le_bytes());
    bytes[520..528].copy_from_slice(&xcomp_bv.bits().to_le_bytes());
    bytes[528..576].fill(0);
    bytes
}

/// A state with the components of `pick` that `layout` has live, each
/// filled from `seed`; MXCSR `mxcsr` where SSE is live.
fn state(layout: &Layout, pick: Xfeatures, seed: u8, mxcsr: u32) -> RegisterFile {
    let mut regs = RegisterFile::new();
    for c in layout.supported() & pick {
        let size = common::component_size(layout, c);
        let mut bytes: Vec<u8> = (0..size)
            .map(|b| (b as u8).wrapping_mul(31).wrapping_add(seed ^ c.index()))
            .collect();
        if c == ComponentId::TILECFG && seed & 1 == 0 {
            bytes = tilecfg().to_vec();
        }
        regs.set_component(c, &bytes).unwrap();
    }
    if regs.is_live(ComponentId::SSE) {
        regs.set_mxcsr(mxcsr).unwrap();
    }
    regs
}

/// A TILECFG LDTILECFG takes: palette 1, eight 16x64 tiles.
fn tilecfg() -> [u8; 64] {
    let mut cfg = [0u8; 64];
    cfg[0] = 1;
    for t in 0..8 {
        cfg[16 + 2 * t] = 64;
        cfg[48 + t] = 16;
    }
    cfg
}

/// Registers that take any state of `layout` with `live` components.
fn registers(layout: &Layout, live: Xfeatures) -> XstateRegisters {
    XstateRegisters {
        xss: layout.xss_supported() & live,
        ..XstateRegisters::with_xcr0(layout.xcr0_supported())
    }
}

fn layouts() -> impl Strategy<Value = &'static Layout> {
    prop::sample::select(catalog::all().iter().collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5_71E3),
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    })]

    /// Any area, standard or compacted, with any bytes (PKRU's reserved
    /// ones, MXCSR with only AVX live, init components' garbage): the same
    /// stream from the view as from the register file read from it.
    #[test]
    fn encoding_from_views_gives_the_register_file_stream(
        layout in layouts(),
        pick in any::<u64>(),
        compacted in any::<bool>(),
        fill in prop::collection::vec(any::<u8>(), 16384),
        vcpus in 1usize..4,
    ) {
        let held = layout.xcr0_supported();
        let (size, xcomp_bv) = if compacted {
            (layout.compacted_size_for(held), XcompBv::compacted(held))
        } else {
            (layout.standard_size(), XcompBv::STANDARD)
        };
        let live = Xfeatures::from_bits(pick) & held;
        let bytes = area(fill[..(size as usize).max(576)].to_vec(), live, xcomp_bv);
        let Ok(view) = XsaveView::new(&bytes[..], layout) else {
            return Err(TestCaseError::reject("the header does not open"));
        };
        let regs = registers(layout, live);
        let from_file = RegisterFile::from_view(&view).unwrap();
        let source = Source::of(layout);
        let via_file = encode(&vec![Vcpu::new(from_file, regs); vcpus], &source);
        let areas = vec![VcpuArea { area: &view, registers: regs }; vcpus];
        prop_assert_eq!(encode_views(&areas, &source), via_file.clone());
        // Into buffers that held something: replaced whole, or unchanged.
        let mut out = vec![0xEE; 100];
        let mut out_views = vec![0xEE; 100];
        let vcpus_file = vec![Vcpu::new(RegisterFile::from_view(&view).unwrap(), regs); vcpus];
        match (encode_into(&vcpus_file, &source, &mut out), via_file) {
            (Ok(()), Ok(bytes)) => prop_assert_eq!(&out, &bytes),
            (Err(e), Err(f)) => {
                prop_assert_eq!(e, f);
                prop_assert_eq!(&out, &vec![0xEE; 100]);
            }
            (a, b) => prop_assert!(false, "{:?} {:?}", a, b.map(|_| ())),
        }
        match encode_views_into(&areas, &source, &mut out_views) {
            Ok(()) => prop_assert_eq!(&out_views, &out),
            Err(_) => prop_assert_eq!(&out_views, &vec![0xEE; 100]),
        }
    }

    /// A stream's vCPU into any destination area: written exactly as the
    /// register-file path writes it where `check` finds nothing and the
    /// area holds every live component, refused with `check`'s reasons
    /// (or the area's) and nothing written otherwise.
    #[test]
    fn decoding_into_views_gives_the_register_file_area(
        from in layouts(),
        other in layouts(),
        same in prop::bool::weighted(0.75),
        supervisor in prop::bool::weighted(0.2),
        pick in any::<u64>(),
        seed in any::<u8>(),
        mxcsr in prop::sample::select(vec![0x1f80u32, 0x3f80, 0x1fc0, 0x2_1f80, 0xffff_ffff]),
        compacted in any::<bool>(),
        dest_pick in any::<u64>(),
        fill in prop::collection::vec(any::<u8>(), 16384),
    ) {
        // Mostly the source's own layout, where most states fit.
        let to = if same { from } else { other };
        // Supervisor state (its values mostly refused) now and then.
        let live = Xfeatures::from_bits(pick) & if supervisor { Xfeatures::ALL } else { from.xcr0_supported() };
        let s = state(from, live, seed, mxcsr);
        let bytes = encode(&[Vcpu::new(s.clone(), registers(from, s.xstate_bv()))], &Source::of(from)).unwrap();
        let parsed = stream::parse(&bytes).unwrap();

        let held = to.xcr0_supported();
        let (size, xcomp_bv) = if compacted {
            let held = held & Xfeatures::from_bits(dest_pick | 3);
            (to.compacted_size_for(held), XcompBv::compacted(held))
        } else {
            (to.standard_size(), XcompBv::STANDARD)
        };
        let dest_live = Xfeatures::from_bits(dest_pick) & xcomp_bv.components() & held;
        let before = area(fill[..(size as usize).max(576)].to_vec(), dest_live, if compacted { xcomp_bv } else { XcompBv::STANDARD });
        prop_assume!(XsaveView::new(&before[..], to).is_ok());

        let mut file = RegisterFile::new();
        let file_registers = parsed.decode_into(0, &mut file).unwrap();
        prop_assert_eq!(&file, &s);
        let mut via_file = before.clone();
        let report = check(&file, to);
        let file_result = {
            let mut view = XsaveView::new(&mut via_file[..], to).unwrap();
            file.write_to(&mut view)
        };

        let mut via_view = before.clone();
        let result = {
            let mut view = XsaveView::new(&mut via_view[..], to).unwrap();
            parsed.decode_into_view(0, &mut view)
        };
        match result {
            Ok(registers) => {
                prop_assert!(report.is_compatible(), "{:?}", report);
                prop_assert!(file_result.is_ok());
                prop_assert_eq!(registers, file_registers);
                prop_assert_eq!(&via_view, &via_file);
            }
            Err(StreamError::Incompatible { vcpu: 0, incompatibilities }) => {
                prop_assert_eq!(&via_view, &before, "nothing written");
                if report.is_compatible() {
                    // The area, not the layout: the register-file path
                    // cannot write it either.
                    prop_assert!(file_result.is_err());
                    prop_assert_eq!(incompatibilities.len(), 1);
                    prop_assert!(matches!(
                        incompatibilities[0],
                        Incompatibility::DoesNotFit(_) | Incompatibility::SupervisorInStandardFormat(_)
                    ));
                } else {
                    prop_assert_eq!(&incompatibilities, &report.incompatibilities);
                }
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }

        // From an init area, the register file's own encoding.
        if report.is_compatible() && !compacted && file.xstate_bv().extended().iter().all(|c| !c.info().is_some_and(|i| i.supervisor)) {
            let mut fresh = RegisterFile::new().encode(to, Format::Standard).unwrap();
            let mut view = XsaveView::new(&mut fresh[..], to).unwrap();
            parsed.decode_into_view(0, &mut view).unwrap();
            prop_assert_eq!(fresh, file.encode(to, Format::Standard).unwrap());
        }
    }
}

#[test]
fn many_vcpus_go_from_areas_to_areas() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let areas: Vec<Vec<u8>> = (0..256u32)
        .map(|n| {
            let s = state(spr, Xfeatures::from_bits(0x600E7), (2 * n) as u8, 0x1f80);
            s.encode(spr, Format::Standard).unwrap()
        })
        .collect();
    let views: Vec<XsaveView<'_, &[u8]>> = areas
        .iter()
        .map(|a| XsaveView::new(&a[..], spr).unwrap())
        .collect();
    let regs = XstateRegisters::with_xcr0(spr.xcr0_supported());
    let vcpus: Vec<VcpuArea<'_, '_, &[u8]>> = views
        .iter()
        .map(|v| VcpuArea {
            area: v,
            registers: regs,
        })
        .collect();
    let bytes = encode_views(&vcpus, &Source::of(spr)).unwrap();
    let parsed = stream::parse(&bytes).unwrap();
    assert_eq!(parsed.len(), 256);
    let mut out = vec![0u8; spr.standard_size() as usize];
    for (n, a) in areas.iter().enumerate() {
        out.fill(0);
        let mut view = XsaveView::new(&mut out[..], spr).unwrap();
        assert_eq!(parsed.decode_into_view(n, &mut view).unwrap(), Some(regs));
        // MXCSR_MASK is the one byte range an area keeps from before.
        assert_eq!(out[..24], a[..24]);
        assert_eq!(out[32..], a[32..]);
    }
    let mut view = XsaveView::new(&mut out[..], spr).unwrap();
    assert_eq!(
        parsed.decode_into_view(256, &mut view).unwrap_err(),
        StreamError::NoSuchVcpu {
            vcpu: 256,
            vcpus: 256
        }
    );
}

#[test]
fn faulting_state_is_refused_with_every_reason_and_nothing_written() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    // AMD's misaligned-SSE bit in MXCSR, and a TILECFG with palette 9.
    let mut s = RegisterFile::new();
    s.set_mxcsr(0x2_1f80).unwrap();
    let mut cfg = [0u8; 64];
    cfg[0] = 9;
    s.set_component(ComponentId::TILECFG, &cfg).unwrap();
    let regs = XstateRegisters::with_xcr0(spr.xcr0_supported());
    let bytes = encode(&[Vcpu::new(s.clone(), regs)], &Source::of(spr)).unwrap();
    let parsed = stream::parse(&bytes).unwrap();
    let mut buf = vec![0x5au8; 4096];
    buf[512..576].fill(0);
    let before = buf.clone();
    let mut view = XsaveView::new(&mut buf[..], spr).unwrap();
    let err = parsed.decode_into_view(0, &mut view).unwrap_err();
    let StreamError::Incompatible {
        vcpu: 0,
        ref incompatibilities,
    } = err
    else {
        panic!("{err}")
    };
    assert_eq!(incompatibilities, &check(&s, spr).incompatibilities);
    assert!(matches!(
        incompatibilities[0],
        Incompatibility::Mxcsr { bad: 0x2_0000, .. }
    ));
    assert!(matches!(
        incompatibilities[1],
        Incompatibility::TileConfig(_)
    ));
    assert!(err
        .to_string()
        .starts_with("vCPU 0 cannot go to the destination area: MXCSR"));
    assert_eq!(buf, before);
    // Zen 4 lacks AMX: named, with the MXCSR reason.
    let mut buf = vec![0u8; zen4.standard_size() as usize];
    let mut view = XsaveView::new(&mut buf[..], zen4).unwrap();
    let err = parsed.decode_into_view(0, &mut view).unwrap_err();
    assert!(
        err.to_string()
            .contains("TILECFG (component 17) is live but the destination lacks it"),
        "{err}"
    );
    assert!(buf.iter().all(|&b| b == 0));
}

#[test]
fn an_area_that_does_not_hold_a_live_component_is_refused() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let regs = XstateRegisters::with_xcr0(spr.xcr0_supported());
    // A compacted area of x87 and SSE only, with AVX live in the stream.
    let s = state(spr, Xfeatures::from_bits(0x7), 3, 0x1f80);
    let bytes = encode(&[Vcpu::new(s, regs)], &Source::of(spr)).unwrap();
    let parsed = stream::parse(&bytes).unwrap();
    let xcomp_bv = XcompBv::compacted(Xfeatures::LEGACY);
    let mut buf = area(
        vec![0u8; spr.compacted_size_for(Xfeatures::LEGACY) as usize],
        Xfeatures::EMPTY,
        xcomp_bv,
    );
    let before = buf.clone();
    let mut view = XsaveView::new(&mut buf[..], spr).unwrap();
    let err = parsed.decode_into_view(0, &mut view).unwrap_err();
    assert!(
        matches!(&err, StreamError::Incompatible { incompatibilities, .. }
            if matches!(incompatibilities[..], [Incompatibility::DoesNotFit(_)])),
        "{err}"
    );
    assert_eq!(buf, before);
}

#[test]
fn encoding_from_views_checks_what_encode_checks() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let s = state(spr, Xfeatures::from_bits(0x600E7), 1, 0x1f80);
    let bytes = s.encode(spr, Format::Standard).unwrap();
    let view = XsaveView::new(&bytes[..], spr).unwrap();
    // IA32_XFD disabling the live tile data.
    let regs = XstateRegisters {
        xfd: ComponentId::TILEDATA.bit(),
        ..XstateRegisters::with_xcr0(spr.xcr0_supported())
    };
    let vcpu = VcpuArea {
        area: &view,
        registers: regs,
    };
    let err = encode_views(&[vcpu], &Source::of(spr)).unwrap_err();
    let mut out = vec![7u8; 3];
    assert_eq!(
        encode_views_into(&[vcpu], &Source::of(spr), &mut out),
        Err(err.clone())
    );
    assert_eq!(out, [7, 7, 7], "unchanged");
    assert!(
        matches!(err, StreamError::VcpuRegisters { vcpu: 0, .. }),
        "{err}"
    );
    assert_eq!(
        Err(err),
        encode(&[Vcpu::new(s, regs)], &Source::of(spr)),
        "the same refusal as encode"
    );
    let many = vec![vcpu; MAX_VCPUS as usize + 1];
    assert_eq!(
        encode_views(&many, &Source::of(spr)).unwrap_err(),
        StreamError::TooManyVcpus(MAX_VCPUS + 1)
    );
}
