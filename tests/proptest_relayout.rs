//! `relayout_into`, which copies each live component straight between two
//! areas, gives the bytes of the general path (decode the source into a
//! register file, mask it for the guest, check it, encode it) over every
//! pair of catalog layouts, both formats on each side, live and init
//! mixes, hostile source bytes and guests; `relayout_for` returns what the
//! general path did, borrowing where it did; and a refusal leaves the
//! destination buffer unchanged.

mod common;

use std::borrow::Cow;
use std::ops::Range;

use proptest::prelude::*;
use zerocopy::IntoBytes;

use xstate::area::TileConfig;
use xstate::layout::catalog;
use xstate::migrate::{
    check, relayout_for, relayout_into, Guest, Incompatibility, Masking, MigrateError,
    RelayoutOptions,
};
use xstate::prelude::*;
use xstate::{ComponentId, Format, Layout, RegisterFile, Xfeatures, XsaveView};

/// The general path, as `relayout_for` was written before it copied
/// directly: the result `relayout_for` must give, and the area the general
/// path encodes (also where `relayout_for` returns its input uncopied).
#[allow(clippy::type_complexity)]
fn general(
    src: &[u8],
    from: &Layout,
    to: &Layout,
    options: RelayoutOptions,
    guest: &Guest,
) -> Result<(bool, Vec<u8>, Vec<Masking>), MigrateError> {
    let view = XsaveView::new(src, from).map_err(MigrateError::Source)?;
    let mut regs = RegisterFile::from_view(&view).map_err(MigrateError::SourceAccess)?;
    let masked = guest.mask(&mut regs);
    let held = view.held() | regs.xstate_bv();
    let not_for_guest = held
        .iter()
        .filter(|&c| guest.excludes(c).is_some())
        .collect::<Xfeatures>();
    let homeless = held - to.supported() - not_for_guest;
    let layout = xstate::layout::Text::<64>::from(to.name()).unwrap();
    if let Some(component) = (homeless & regs.xstate_bv()).first() {
        return Err(MigrateError::LiveWithoutHome { component, layout });
    }
    if let Some(component) = homeless.first().filter(|_| !options.drop_init) {
        return Err(MigrateError::InitWithoutHome { component, layout });
    }
    let mut masked_mxcsr = false;
    if options.mask_mxcsr {
        let mxcsr = regs.mxcsr().unwrap();
        if mxcsr & !to.mxcsr_mask() != 0 {
            regs.set_mxcsr(mxcsr & to.mxcsr_mask()).unwrap();
            masked_mxcsr = true;
        }
    }
    let fault = check(&regs, to).incompatibilities.into_iter().find(|i| {
        matches!(
            i,
            Incompatibility::Mxcsr { .. }
                | Incompatibility::TileConfig(_)
                | Incompatibility::SupervisorValue(_)
        )
    });
    if let Some(fault) = fault {
        return Err(MigrateError::WouldFault(fault));
    }
    let size = match options.format {
        Format::Standard => to.standard_size() as usize,
        Format::Compacted => 0,
    };
    let canonical = regs.component(ComponentId::PKRU).is_none_or(|_| {
        view.component(ComponentId::PKRU).ok().flatten() == regs.component(ComponentId::PKRU)
    }) && src.get(24..28) == Some(&regs.mxcsr().unwrap().to_le_bytes()[..])
        && src.get(28..32) == Some(&to.mxcsr_mask().to_le_bytes()[..]);
    let borrowed = masked.is_empty()
        && !masked_mxcsr
        && canonical
        && from.fingerprint() == to.fingerprint()
        && view.format() == options.format
        && src.len() == size;
    let area = regs
        .encode(to, options.format)
        .map_err(MigrateError::Destination)?;
    Ok((borrowed, area, masked))
}

fn layouts() -> impl Strategy<Value = &'static Layout> {
    prop::sample::select(catalog::all().iter().collect::<Vec<_>>())
}

fn formats() -> impl Strategy<Value = Format> {
    prop::sample::select(vec![Format::Standard, Format::Compacted])
}

fn maybe_mask() -> impl Strategy<Value = Option<Xfeatures>> {
    prop::option::weighted(0.3, any::<u64>().prop_map(|b| Xfeatures::from_bits(b | 3)))
}

fn guests() -> impl Strategy<Value = Guest> {
    prop_oneof![
        Just(Guest::default()),
        (maybe_mask(), maybe_mask(), maybe_mask(), any::<u64>()).prop_map(
            |(xcr0, model_xcr0, xss, xfd)| Guest {
                xcr0,
                model_xcr0,
                xss,
                // Mostly nothing disabled; now and then AMX tile data.
                xfd: Xfeatures::from_bits(xfd & (1 << 18) & (xfd >> 20)),
            }
        ),
    ]
}

/// What a case is made of: everything but the layouts.
#[derive(Clone, Debug)]
struct Case {
    pick: u64,
    bytes: Vec<u8>,
    mxcsr: u32,
    /// Bits of XSTATE_BV to clear in the encoded source (x87, SSE): a live
    /// AVX with SSE init, say.
    clear: u64,
    /// Garbage over the source's bytes that XRSTOR ignores (init
    /// components, the reserved legacy bytes 416..464, PKRU's 4..8).
    garbage: bool,
    /// MXCSR_MASK in the source: the writer's, or the destination's.
    mask_as_destination: bool,
    valid_tilecfg: bool,
    drop_init: bool,
    mask_mxcsr: bool,
    /// The destination buffer: zeroed or full of garbage; its length
    /// relative to the area.
    dst_garbage: Option<u8>,
    dst_extra: isize,
}

fn cases() -> impl Strategy<Value = Case> {
    (
        (
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 64..256),
            prop_oneof![
                Just(0x1F80u32),
                any::<u8>().prop_map(|b| 0x1F80 | u32::from(b & 0x3F)),
                Just(0x2_1F80),
                any::<u32>(),
            ],
            prop_oneof![Just(0u64), Just(1), Just(2), Just(3)],
        ),
        (
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.8),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(any::<u8>()),
            prop_oneof![Just(0isize), 1..4096isize, -600..0isize],
        ),
    )
        .prop_map(
            |(
                (pick, bytes, mxcsr, clear),
                (
                    garbage,
                    mask_as_destination,
                    valid_tilecfg,
                    drop_init,
                    mask_mxcsr,
                    dst_garbage,
                    dst_extra,
                ),
            )| Case {
                pick,
                bytes,
                mxcsr,
                clear,
                garbage,
                mask_as_destination,
                valid_tilecfg,
                drop_init,
                mask_mxcsr,
                dst_garbage,
                dst_extra,
            },
        )
}

/// The source area: a random state of `layout`'s components (supervisor
/// ones too in the compacted format), then hostile bytes where XRSTOR
/// ignores them.
fn source(layout: &Layout, format: Format, to: &Layout, case: &Case) -> Vec<u8> {
    let bytes = &case.bytes;
    let mut pick = layout.xcr0_supported();
    if format == Format::Compacted {
        pick |= layout.xss_supported();
    }
    // Half the cases only what the destination has too: fewer refusals.
    if case.pick >> 63 == 1 {
        pick &= to.supported();
    }
    let mut regs = RegisterFile::new();
    for (n, c) in (pick & Xfeatures::from_bits(case.pick)).iter().enumerate() {
        let size = common::component_size(layout, c);
        let chunk: Vec<u8> = (0..size)
            .map(|b| bytes[(b + 97 * n) % bytes.len()])
            .collect();
        regs.set_component(c, &chunk).unwrap();
    }
    if regs.is_live(ComponentId::TILECFG) && case.valid_tilecfg {
        let rows = core::array::from_fn(|t| 1 + bytes[t % bytes.len()] % 16);
        let colsb = core::array::from_fn(|t| 1 + u16::from(bytes[(t + 8) % bytes.len()]) % 64);
        let cfg = TileConfig::palette1(rows, colsb);
        regs.set_component(ComponentId::TILECFG, cfg.as_bytes())
            .unwrap();
    }
    if regs
        .xstate_bv()
        .intersects(ComponentId::SSE.bit() | ComponentId::AVX.bit())
    {
        regs.set_mxcsr(case.mxcsr).unwrap();
    }
    let mut area = regs.encode(layout, format).unwrap();
    let mut bv = u64::from_le_bytes(area[512..520].try_into().unwrap());
    bv &= !case.clear;
    area[512..520].copy_from_slice(&bv.to_le_bytes());
    if case.mask_as_destination {
        area[28..32].copy_from_slice(&to.mxcsr_mask().to_le_bytes());
    }
    if case.garbage {
        let view = XsaveView::new(&area[..], layout).unwrap();
        let live = view.xstate_bv();
        // The reserved legacy bytes, and what else XRSTOR ignores.
        let mut spots: Vec<Range<usize>> = vec![416..440, 440..464];
        if !live.contains(ComponentId::X87) {
            spots.extend([0..24, 32..160]);
        }
        if !live.contains(ComponentId::SSE) {
            spots.push(160..416);
        }
        for g in layout.components().filter(|g| !g.id.is_legacy()) {
            let Ok(range) = offset_of(&view, g.id).map(|o| o..o + g.size as usize) else {
                continue;
            };
            if !live.contains(g.id) {
                spots.push(range);
            } else if g.id == ComponentId::PKRU {
                spots.push(range.start + 4..range.end);
            }
        }
        for (n, r) in spots.into_iter().enumerate() {
            for (i, b) in area[r].iter_mut().enumerate() {
                *b = bytes[(i + 31 * n) % bytes.len()] | 1;
            }
        }
    }
    area
}

/// Where `c` is in the area `view` reads.
fn offset_of(view: &XsaveView<'_, &[u8]>, c: ComponentId) -> Result<usize, xstate::AccessError> {
    view.component_offset(c)
}

/// The bytes `relayout_into` writes in an area of `layout`: the legacy
/// region, the header, and each live component.
/// The fewest bytes that hold `area`: in the standard format the end of
/// its last live component (at least 576), in the compacted one its size.
fn least_bytes(area: &[u8], layout: &Layout) -> usize {
    let view = XsaveView::new(area, layout).unwrap();
    match view.format() {
        Format::Standard => (layout.standard_size_for(view.xstate_bv()) as usize).max(576),
        Format::Compacted => area.len(),
    }
}

fn written(area: &[u8], layout: &Layout) -> Vec<Range<usize>> {
    let view = XsaveView::new(area, layout).unwrap();
    // The legacy region and the header.
    let mut out = vec![0..512, 512..576];
    for c in view.xstate_bv().extended() {
        let o = offset_of(&view, c).unwrap();
        out.push(o..o + layout.size(c).unwrap() as usize);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5E1A_7011),
        failure_persistence: None,
        ..ProptestConfig::with_cases(1024)
    })]

    #[test]
    fn direct_copies_give_the_general_paths_bytes(
        (a, b) in (layouts(), layouts()),
        fa in formats(),
        fb in formats(),
        guest in guests(),
        case in cases(),
    ) {
        let src = source(a, fa, b, &case);
        let options = RelayoutOptions {
            format: fb,
            drop_init: case.drop_init,
            mask_mxcsr: case.mask_mxcsr,
        };
        let expected = general(&src, a, b, options, &guest);

        // relayout_for: the general path's result, borrowed where it was.
        match (&expected, relayout_for(&src, a, b, options, &guest)) {
            (Ok((borrowed, area, masked)), Ok((out, m))) => {
                prop_assert_eq!(&m, masked);
                match out {
                    Cow::Borrowed(out) => {
                        prop_assert!(borrowed);
                        prop_assert_eq!(out.as_ptr(), src.as_ptr());
                    }
                    Cow::Owned(out) => {
                        prop_assert!(!borrowed);
                        prop_assert_eq!(&out, area);
                    }
                }
            }
            (Err(e), Err(got)) => prop_assert_eq!(&got, e),
            (e, got) => prop_assert!(false, "general {:?}, relayout_for {:?}", e, got),
        }

        // relayout_into: into a buffer zeroed or full of garbage, exactly
        // the area's size, larger, or too small.
        let needed = expected.as_ref().map_or(b.standard_size() as usize, |(_, a, _)| a.len());
        let len = needed.saturating_add_signed(case.dst_extra);
        let mut dst = vec![case.dst_garbage.unwrap_or(0); len];
        if let Some(g) = case.dst_garbage {
            for (i, x) in dst.iter_mut().enumerate() {
                *x = g ^ (i as u8);
            }
        }
        let before = dst.clone();
        let got = relayout_into(&src, a, b, options, &guest, &mut dst);
        match (&expected, got) {
            (Err(e), Err(got)) => {
                prop_assert_eq!(&got, e);
                prop_assert!(dst == before, "a refusal changed the destination");
            }
            (Ok((_, area, _)), Err(MigrateError::DestinationTooSmall { len: l, needed: n })) => {
                let least = least_bytes(area, b);
                prop_assert!(len < least);
                prop_assert_eq!((l, n), (len, least));
                prop_assert!(dst == before, "a refusal changed the destination");
            }
            (Ok((_, area, masked)), Ok(report)) => {
                prop_assert!(len >= least_bytes(area, b));
                // A shorter standard-format buffer is the area whole.
                prop_assert_eq!(report.len, area.len().min(len));
                prop_assert!(area[report.len..].iter().all(|&x| x == 0), "live bytes past a short buffer");
                let area = &area[..report.len];
                prop_assert_eq!(&report.maskings(&guest), masked);
                prop_assert_eq!(report.masked, masked.iter().map(|m| m.component).collect::<Xfeatures>());
                let view = XsaveView::new(area, b).unwrap();
                prop_assert_eq!(report.xstate_bv, view.xstate_bv());
                prop_assert_eq!(report.xcomp_bv, view.xcomp_bv());
                prop_assert_eq!(report.xcomp_bv.is_compacted(), fb == Format::Compacted);
                if case.dst_garbage.is_none() {
                    // Into zeros: every byte the general path's.
                    prop_assert!(dst[..area.len()] == area[..]);
                    prop_assert!(dst[area.len()..].iter().all(|&x| x == 0));
                } else {
                    // Over garbage: the legacy region, the header and the
                    // live components the general path's; the rest as it was.
                    let mut expect = before.clone();
                    for r in written(area, b) {
                        expect[r.clone()].copy_from_slice(&area[r]);
                    }
                    prop_assert!(dst == expect, "bytes outside the written parts changed, or parts differ");
                }
                prop_assert_eq!(
                    RegisterFile::decode(&dst[..report.len], b).unwrap(),
                    RegisterFile::decode(area, b).unwrap()
                );
            }
            (e, got) => prop_assert!(false, "general {:?}, relayout_into {:?}", e, got),
        }
    }
}

#[test]
fn zen4_to_sapphire_rapids_into_a_reused_buffer() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_zmm(30, [1, 2, 3, 4]).unwrap();
    regs.set_pkru(0x5555_5554).unwrap();
    let area = regs.encode(zen4, Format::Standard).unwrap();
    let mut buf = vec![0xEEu8; 16384];
    for _ in 0..2 {
        let done = relayout_into(
            &area,
            zen4,
            spr,
            RelayoutOptions::default(),
            &Guest::default(),
            &mut buf,
        )
        .unwrap();
        assert_eq!(done.len, spr.standard_size() as usize);
        assert_eq!(RegisterFile::decode(&buf[..done.len], spr).unwrap(), regs);
        // AMX, init, is not written: its 8 KiB stay as they were.
        let tiles = spr.offset(ComponentId::TILEDATA).unwrap() as usize;
        assert!(buf[tiles..tiles + 8192].iter().all(|&b| b == 0xEE));
    }
    // Too small: a typed error, nothing written.
    let mut small = vec![0x11u8; 1000];
    let err = relayout_into(
        &area,
        zen4,
        spr,
        RelayoutOptions::default(),
        &Guest::default(),
        &mut small,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the destination buffer of 1000 bytes is too small: the area needs {}",
            spr.standard_size_for(regs.xstate_bv())
        )
    );
    assert!(small.iter().all(|&b| b == 0x11));
    // A 4096-byte kvm_xsave holds every live component: the area is the
    // whole buffer, though Sapphire Rapids' standard size is 11008.
    let mut kvm = vec![0u8; 4096];
    let done = relayout_into(
        &area,
        zen4,
        spr,
        RelayoutOptions::default(),
        &Guest::default(),
        &mut kvm,
    )
    .unwrap();
    assert_eq!(done.len, 4096);
    assert_eq!(RegisterFile::decode(&kvm, spr).unwrap(), regs);
}
