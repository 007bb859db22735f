//! Hostile input for the fast paths: relayout into a caller's buffer, the
//! planned decode and encode, the stream straight from and into views, and
//! the views' register reads. Each fast path must give the general path's
//! bytes and errors, change nothing on error, and never emit an area that
//! a consumer (XRSTOR, KVM_SET_XSAVE) faults on.

use std::borrow::Cow;

use proptest::prelude::*;

use xstate::layout::catalog;
use xstate::migrate::stream;
use xstate::migrate::{relayout, relayout_for, relayout_into, Guest, RelayoutOptions};
use xstate::prelude::*;
use xstate::{ComponentId, Format, Layout, RegisterFile, XcompBv, Xfeatures, XsaveView};

/// MXCSR's offset in the legacy region.
const MXCSR: usize = 24;

fn mxcsr_bytes(area: &[u8]) -> u32 {
    u32::from_le_bytes(area[MXCSR..MXCSR + 4].try_into().unwrap())
}

/// The rules a consumer of an area of `layout` applies that xstate's own
/// checks judge by: the header opens under the layout; the standard-format
/// XRSTOR loads MXCSR whatever XSTATE_BV says (Intel SDM vol. 1, 13.8.1)
/// and KVM_SET_XSAVE refuses an MXCSR outside the mask with x87, SSE or
/// AVX live (docs: xsave-facts, measured), so MXCSR's bytes are within the
/// mask in the standard format, and wherever x87, SSE or AVX is live.
fn consumer_takes(area: &[u8], layout: &Layout) -> Result<(), String> {
    let view = XsaveView::new(area, layout).map_err(|e| e.to_string())?;
    let mxcsr = mxcsr_bytes(area);
    let loads_mxcsr = view.format() == Format::Standard
        || view
            .xstate_bv()
            .intersects(ComponentId::X87.bit() | ComponentId::SSE.bit() | ComponentId::AVX.bit());
    if loads_mxcsr && mxcsr & !layout.mxcsr_mask() != 0 {
        return Err(format!(
            "MXCSR bytes {mxcsr:#x} outside the mask {:#x} with XSTATE_BV {}",
            layout.mxcsr_mask(),
            view.xstate_bv()
        ));
    }
    let regs = RegisterFile::from_view(&view).map_err(|e| e.to_string())?;
    let report = xstate::migrate::check(&regs, layout);
    if !report.is_compatible() {
        return Err(format!("check refuses it: {:?}", report.incompatibilities));
    }
    Ok(())
}

/// A standard-format Zen 4 area with x87 live, SSE and AVX init, and
/// MXCSR's bytes stale with bits no CPU implements: a view reads MXCSR as
/// 0x1F80 there, but the standard-format XRSTOR loads the bytes (and
/// faults), and KVM_SET_XSAVE refuses them with x87 live.
fn x87_live_stale_mxcsr(layout: &Layout) -> Vec<u8> {
    let mut regs = RegisterFile::new();
    regs.set_st(0, [1; 10]).unwrap();
    let mut area = regs.encode(layout, Format::Standard).unwrap();
    area[MXCSR..MXCSR + 4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    area
}

#[test]
fn relayout_to_the_same_layout_rewrites_a_stale_mxcsr() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let area = x87_live_stale_mxcsr(zen4);
    let view = XsaveView::new(&area[..], zen4).unwrap();
    assert_eq!(view.mxcsr().unwrap(), 0x1F80);
    // The general path writes MXCSR as the state holds it.
    let general = RegisterFile::decode(&area, zen4)
        .unwrap()
        .encode(zen4, Format::Standard)
        .unwrap();
    consumer_takes(&general, zen4).unwrap();

    let out = relayout(&area, zen4, zen4, RelayoutOptions::default()).unwrap();
    consumer_takes(&out, zen4).unwrap();
    assert_eq!(&out[..], &general[..]);
    let (out, _) = relayout_for(
        &area,
        zen4,
        zen4,
        RelayoutOptions::default(),
        &Guest::default(),
    )
    .unwrap();
    assert!(
        matches!(out, Cow::Owned(_)),
        "the input came back as it was"
    );
    consumer_takes(&out, zen4).unwrap();

    let mut dst = vec![0u8; zen4.standard_size() as usize];
    let report = relayout_into(
        &area,
        zen4,
        zen4,
        RelayoutOptions::default(),
        &Guest::default(),
        &mut dst,
    )
    .unwrap();
    assert_eq!(&dst[..report.len], &general[..]);
}

/// `xstate convert` to the same layout writes the area with MXCSR as the
/// state holds it, not the stale bytes the input had.
#[test]
fn convert_to_the_same_layout_rewrites_a_stale_mxcsr() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
    std::fs::write(&input, x87_live_stale_mxcsr(zen4)).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_xstate"))
        .args(["convert", "--from", "amd-zen4", "--to", "amd-zen4"])
        .arg(&input)
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::fs::read(&output).unwrap();
    consumer_takes(&out, zen4).unwrap();
    assert_eq!(mxcsr_bytes(&out), 0x1F80);
}

/// Guests that mask nothing, or whose XCR0, CPU model, IA32_XSS and
/// IA32_XFD mask any components (x87 and SSE never).
fn guests() -> impl Strategy<Value = Guest> {
    let mask =
        || prop::option::weighted(0.3, any::<u64>().prop_map(|b| Xfeatures::from_bits(b | 3)));
    prop_oneof![
        Just(Guest::default()),
        (mask(), mask(), mask(), any::<u64>()).prop_map(|(xcr0, model_xcr0, xss, xfd)| Guest {
            xcr0,
            model_xcr0,
            xss,
            xfd: Xfeatures::from_bits(xfd & (1 << 18)),
        }),
    ]
}

fn layouts() -> impl Strategy<Value = &'static Layout> {
    prop::sample::select(catalog::all().iter().collect::<Vec<_>>())
}

/// An area of `layout`: random bytes under a random header whose XSTATE_BV
/// and XCOMP_BV are drawn from the layout's components (and now and then
/// from any bits), cut to a random length around its size.
fn hostile_area(
    layout: &Layout,
    seed: u64,
    bv: u64,
    comp: u64,
    compacted: bool,
    cut: i32,
    mxcsr_mask: u32,
) -> Vec<u8> {
    let supported = layout.supported().bits();
    let xcr0 = layout.xcr0_supported().bits();
    let (xstate_bv, xcomp_bv) = if compacted {
        let held = if comp >> 60 == 0xF {
            comp & !(1 << 63)
        } else {
            comp & supported
        };
        let live = if bv >> 60 == 0xF { bv } else { bv & held };
        (live, held | 1 << 63)
    } else {
        let live = if bv >> 60 == 0xF { bv } else { bv & xcr0 };
        (live, 0)
    };
    let size = if compacted {
        layout.compacted_size_for(Xfeatures::from_bits(xcomp_bv)) as usize
    } else {
        layout.standard_size() as usize
    }
    .max(576);
    let len = (size as i64 + i64::from(cut)).clamp(0, 1 << 16) as usize;
    let mut state = seed | 1;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    if len >= 576 {
        bytes[512..520].copy_from_slice(&xstate_bv.to_le_bytes());
        bytes[520..528].copy_from_slice(&xcomp_bv.to_le_bytes());
        bytes[528..576].fill(0);
        // Most of the time, no software bytes to refuse the area for.
        if seed & 3 != 0 {
            bytes[464..512].fill(0);
        }
        // Now and then an MXCSR the destination takes, and its MXCSR_MASK
        // (an area relayout may return as it is).
        if seed & 4 != 0 {
            bytes[MXCSR..MXCSR + 4].copy_from_slice(&0x1F80u32.to_le_bytes());
        }
        if seed & 8 != 0 {
            bytes[MXCSR + 4..MXCSR + 8].copy_from_slice(&mxcsr_mask.to_le_bytes());
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0405_711E),
        failure_persistence: None,
        ..ProptestConfig::with_cases(2048)
    })]

    /// Relayout of hostile areas: `relayout_into` agrees with the general
    /// path (decode, mask nothing, encode), leaves the destination as it
    /// was on error, and what it writes, like what `relayout_for` returns,
    /// is an area the destination's consumer takes.
    #[test]
    fn relayout_of_hostile_areas_agrees_and_emits_only_what_consumers_take(
        (a, b) in (layouts(), layouts()),
        (seed, bv, comp) in (any::<u64>(), any::<u64>(), any::<u64>()),
        compacted in any::<bool>(),
        to_compacted in any::<bool>(),
        cut in prop_oneof![3 => Just(0i32), 1 => -700..64i32],
        drop_init in any::<bool>(),
        mask_mxcsr in any::<bool>(),
        dst_fill in any::<u8>(),
        guest in guests(),
    ) {
        let src = hostile_area(a, seed, bv, comp, compacted, cut, b.mxcsr_mask());
        let options = RelayoutOptions {
            format: if to_compacted { Format::Compacted } else { Format::Standard },
            drop_init,
            mask_mxcsr,
        };
        let owned = relayout_for(&src, a, b, options, &guest);
        let mut dst = vec![dst_fill; b.standard_size().max(b.compacted_size()) as usize + 64];
        let before = dst.clone();
        let into = relayout_into(&src, a, b, options, &guest, &mut dst);
        match (&owned, &into) {
            (Ok((area, _)), Ok(report)) => {
                if let Err(e) = consumer_takes(area, b) {
                    prop_assert!(false, "relayout_for emitted {}", e);
                }
                if let Err(e) = consumer_takes(&dst[..report.len], b) {
                    prop_assert!(false, "relayout_into emitted {}", e);
                }
                prop_assert_eq!(
                    RegisterFile::decode(area, b).unwrap(),
                    RegisterFile::decode(&dst[..report.len], b).unwrap()
                );
                // The state the general path holds: the source decoded and
                // masked for the guest, MXCSR masked where asked.
                let mut regs = RegisterFile::decode(&src, a).unwrap();
                guest.mask(&mut regs);
                if report.masked_mxcsr {
                    regs.set_mxcsr(regs.mxcsr().unwrap() & b.mxcsr_mask()).unwrap();
                }
                prop_assert_eq!(RegisterFile::decode(area, b).unwrap(), regs);
                if dst_fill == 0 && matches!(area, Cow::Owned(_)) {
                    prop_assert!(dst[..report.len] == area[..]);
                }
                prop_assert!(dst[report.len..] == before[report.len..]);
            }
            (Err(e), Err(f)) => {
                prop_assert_eq!(e, f);
                prop_assert!(dst == before, "a refusal changed the destination");
            }
            (e, f) => prop_assert!(false, "relayout_for {:?}, relayout_into {:?}", e, f),
        }
    }
}

/// A stream's CRC-32 recomputed after its bytes were changed: corruption
/// that only the structure checks can catch.
fn reseal(stream: &mut [u8]) {
    let body = stream.len() - 4;
    let crc = stream::crc32(&stream[..body]);
    stream[body..].copy_from_slice(&crc.to_le_bytes());
}

/// Every vCPU of a parsed stream decoded every way: `decode_into` a reused
/// register file gives what `vcpu` gives; `decode_into_view` into areas of
/// every catalog layout, both formats, over garbage, either refuses with
/// the area unchanged or leaves an area the consumer takes, holding the
/// decoded state.
fn decode_every_way(parsed: &stream::Parsed<'_>, reused: &mut RegisterFile) -> Result<(), String> {
    for n in 0..parsed.len() {
        let fresh = parsed.vcpu(n).ok_or("no vCPU below len")?;
        let registers = parsed.decode_into(n, reused).ok_or("no vCPU below len")?;
        if *reused != fresh.state || registers != fresh.registers {
            return Err(format!("vCPU {n}: decode_into into a reused file differs"));
        }
        for layout in catalog::all() {
            for format in [Format::Standard, Format::Compacted] {
                let (xcomp_bv, len) = match format {
                    Format::Standard => (XcompBv::STANDARD, layout.standard_size()),
                    Format::Compacted => (
                        XcompBv::compacted(layout.supported()),
                        layout.compacted_size(),
                    ),
                };
                let mut buf: Vec<u8> = (0..len as usize).map(|i| (i * 7 + n) as u8).collect();
                buf[464..512].fill(0);
                buf[512..520].fill(0);
                buf[520..528].copy_from_slice(&xcomp_bv.bits().to_le_bytes());
                buf[528..576].fill(0);
                let before = buf.clone();
                let mut view = XsaveView::new(&mut buf[..], layout).map_err(|e| e.to_string())?;
                match parsed.decode_into_view(n, &mut view) {
                    Ok(r) => {
                        if r != fresh.registers {
                            return Err(format!("vCPU {n}: registers differ"));
                        }
                        consumer_takes(&buf, layout).map_err(|e| {
                            format!("vCPU {n} into {} {format}: {e}", layout.name())
                        })?;
                        let got = RegisterFile::decode(&buf, layout).map_err(|e| e.to_string())?;
                        if got != fresh.state {
                            return Err(format!(
                                "vCPU {n} into {} {format}: state differs",
                                layout.name()
                            ));
                        }
                    }
                    Err(stream::StreamError::Incompatible { .. }) => {
                        if buf != before {
                            return Err(format!("vCPU {n}: a refusal changed the area"));
                        }
                    }
                    Err(e) => return Err(format!("vCPU {n}: unexpected {e}")),
                }
            }
        }
    }
    Ok(())
}

/// A small version 2 stream of two vCPUs: x87, SSE, AVX, opmask and PKRU
/// live in one, AVX alone in the other.
fn small_stream() -> Vec<u8> {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut a = RegisterFile::new();
    a.set_st(1, [3; 10]).unwrap();
    a.set_xmm(2, 0x1234).unwrap();
    a.set_ymm(3, [5, 6]).unwrap();
    a.set_k(1, 0xff).unwrap();
    a.set_pkru(0x5555_5554).unwrap();
    let mut b = RegisterFile::new();
    b.set_component(ComponentId::AVX, &[0x11; 256]).unwrap();
    let registers = xstate::xregs::XstateRegisters::with_xcr0(zen4.xcr0_supported());
    stream::encode(
        &[
            stream::Vcpu::new(a, registers),
            stream::Vcpu::new(b, registers),
        ],
        &stream::Source::of(zen4),
    )
    .unwrap()
}

#[test]
fn every_byte_flip_of_a_small_stream_is_refused_or_decodes_safely() {
    let good = small_stream();
    let mut reused = RegisterFile::new();
    decode_every_way(&stream::parse(&good).unwrap(), &mut reused).unwrap();
    for at in 0..good.len() {
        for x in [0x01u8, 0x80, 0xFF, 0x10] {
            let mut bad = good.clone();
            bad[at] ^= x;
            // The checksum catches every single-byte change.
            assert!(stream::parse(&bad).is_err(), "flip {x:#x} at {at} passed");
            // With the checksum made to match, the structure checks
            // either refuse the stream or it decodes safely every way.
            reseal(&mut bad);
            if let Ok(parsed) = stream::parse(&bad) {
                if let Err(e) = decode_every_way(&parsed, &mut reused) {
                    panic!("flip {x:#x} at {at}: {e}");
                }
            }
        }
    }
}

/// A version 1 stream (no registers) of one vCPU `total` bytes long, made
/// so by two unknown components.
fn stream_of_size(total: usize) -> Vec<u8> {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let probe = |extra: usize| {
        let mut regs = RegisterFile::new();
        regs.set_xmm(0, 1).unwrap();
        // Unknown components of at most 1 MiB each.
        let (a, b) = (extra / 2, extra - extra / 2);
        regs.set_component(ComponentId::new(40).unwrap(), &vec![0xA5; a])
            .unwrap();
        regs.set_component(ComponentId::new(41).unwrap(), &vec![0x5A; b])
            .unwrap();
        stream::encode_v1(&[regs], &stream::Source::of(zen4)).unwrap()
    };
    let base = probe(2).len() - 2;
    let s = probe(total - base);
    assert_eq!(s.len(), total);
    s
}

#[test]
fn streams_around_the_backward_checksum_threshold_catch_corruption_in_every_chunk() {
    const CHUNK: usize = 512 << 10;
    for total in [
        2 * CHUNK - 1 + 4,
        2 * CHUNK + 4,
        2 * CHUNK + 1 + 4,
        3 * CHUNK + 4,
        3 * CHUNK + 7 + 4,
    ] {
        let good = stream_of_size(total);
        let parsed = stream::parse(&good).unwrap();
        assert_eq!(parsed.len(), 1);
        let body = total - 4;
        let mut spots = vec![0, 1, body - 1, body, total - 1];
        for k in 1..=body / CHUNK {
            // Around each chunk edge, counted from the front and the back.
            for edge in [k * CHUNK, body - k * CHUNK] {
                spots.extend([edge.saturating_sub(1), edge, (edge + 1).min(total - 1)]);
            }
        }
        for at in spots {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            assert!(
                stream::parse(&bad).is_err(),
                "{total}-byte stream: a flip at {at} passed"
            );
        }
    }
}

/// Every index a caller may pass: in range, just past, and huge.
const INDEXES: [usize; 12] = [
    0,
    7,
    15,
    16,
    17,
    31,
    32,
    33,
    1 << 20,
    usize::MAX / 16,
    usize::MAX / 16 + 1,
    usize::MAX,
];

/// The general path's answer for `reg`, as the typed accessors give it.
fn general<const N: usize>(
    view: &XsaveView<'_, &[u8]>,
    reg: Option<xstate::Register>,
) -> Result<[u8; N], xstate::AccessError> {
    let mut out = [0u8; N];
    match reg {
        Some(reg) => view.read_into(reg, &mut out).map(|()| out),
        None => Err(xstate::AccessError::NoRegister {
            family: "",
            index: 0,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7_1E35),
        failure_persistence: None,
        ..ProptestConfig::with_cases(1024)
    })]

    /// The views' register fast paths give the general path's bytes, and
    /// an error where it errs, over hostile areas of every catalog layout
    /// in both formats, buffers cut short, and any index.
    #[test]
    fn register_reads_of_hostile_areas_agree_with_the_general_path(
        a in layouts(),
        (seed, bv, comp) in (any::<u64>(), any::<u64>(), any::<u64>()),
        compacted in any::<bool>(),
        cut in prop_oneof![3 => Just(0i32), 1 => -3000..64i32],
    ) {
        let src = hostile_area(a, seed, bv, comp, compacted, cut, a.mxcsr_mask());
        let Ok(view) = XsaveView::new(&src[..], a) else {
            return Ok(());
        };
        for i in INDEXES {
            let x = view.xmm(i);
            let g = general::<16>(&view, u8::try_from(i).ok().map(xstate::Register::Xmm));
            prop_assert_eq!(x.is_ok(), g.is_ok(), "xmm{}", i);
            if let (Ok(x), Ok(g)) = (x, g) {
                prop_assert_eq!(x.to_le_bytes(), g);
            }
            let y = view.ymm(i);
            let g = general::<32>(&view, u8::try_from(i).ok().map(xstate::Register::Ymm));
            prop_assert_eq!(y.is_ok(), g.is_ok(), "ymm{}", i);
            if let (Ok(y), Ok(g)) = (y, g) {
                prop_assert_eq!([y[0].to_le_bytes(), y[1].to_le_bytes()].concat(), g.to_vec());
            }
            let z = view.zmm(i);
            let g = general::<64>(&view, u8::try_from(i).ok().map(xstate::Register::Zmm));
            prop_assert_eq!(z.is_ok(), g.is_ok(), "zmm{}", i);
            if let (Ok(z), Ok(g)) = (z, g) {
                let bytes: Vec<u8> = z.iter().flat_map(|l| l.to_le_bytes()).collect();
                prop_assert_eq!(bytes, g.to_vec());
            }
            let r = view.r(i);
            let g = general::<8>(&view, u8::try_from(i).ok().map(xstate::Register::R));
            prop_assert_eq!(r.is_ok(), g.is_ok(), "r{}", i);
            if let (Ok(r), Ok(g)) = (r, g) {
                prop_assert_eq!(r.to_le_bytes(), g);
            }
        }
    }
}

/// A huge register index is an error on every path, never an overflow.
#[test]
fn huge_register_indexes_are_errors() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let area = RegisterFile::new().encode(spr, Format::Standard).unwrap();
    let view = XsaveView::new(&area[..], spr).unwrap();
    for i in [usize::MAX / 16 - 9, usize::MAX / 16 + 1, usize::MAX] {
        assert!(view.xmm(i).is_err());
        assert!(view.ymm(i).is_err());
        assert!(view.zmm(i).is_err());
        assert!(view.r(i).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0057_E411),
        failure_persistence: None,
        ..ProptestConfig::with_cases(1024)
    })]

    /// A stream straight from a hostile area is the register-file path's
    /// stream, or the same refusal; decoded straight into a hostile area of
    /// another layout it is refused with the area unchanged, or leaves an
    /// area the consumer takes, holding the state.
    #[test]
    fn streams_from_and_into_hostile_areas(
        (a, b) in (layouts(), layouts()),
        (seed, bv, comp) in (any::<u64>(), any::<u64>(), any::<u64>()),
        (seed2, bv2, comp2) in (any::<u64>(), any::<u64>(), any::<u64>()),
        (compacted, to_compacted) in (any::<bool>(), any::<bool>()),
        cut in prop_oneof![3 => Just(0i32), 1 => -3000..64i32],
    ) {
        let src = hostile_area(a, seed, bv, comp, compacted, cut, b.mxcsr_mask());
        let Ok(view) = XsaveView::new(&src[..], a) else {
            return Ok(());
        };
        let registers = xstate::xregs::XstateRegisters {
            xss: a.xss_supported(),
            ..xstate::xregs::XstateRegisters::with_xcr0(a.xcr0_supported())
        };
        let source = stream::Source::of(a);
        let direct = stream::encode_views(&[stream::VcpuArea { area: &view, registers }], &source);
        let general = RegisterFile::from_view(&view)
            .map_err(|e| e.to_string())
            .and_then(|regs| {
                stream::encode(&[stream::Vcpu::new(regs, registers)], &source)
                    .map_err(|e| e.to_string())
            });
        let bytes = match (direct, general) {
            (Ok(d), Ok(g)) => {
                prop_assert!(d == g, "encode_views and encode differ");
                d
            }
            (Err(_), Err(_)) => return Ok(()),
            (d, g) => {
                prop_assert!(false, "encode_views {:?}, encode {:?}", d.err(), g.err());
                unreachable!()
            }
        };
        let parsed = stream::parse(&bytes).unwrap();
        let state = parsed.vcpu(0).unwrap().state;
        let mut dst = hostile_area(b, seed2, bv2, comp2, to_compacted, 0, b.mxcsr_mask());
        let Ok(mut dview) = XsaveView::new(&mut dst[..], b) else {
            return Ok(());
        };
        let before = dview.as_bytes().to_vec();
        match parsed.decode_into_view(0, &mut dview) {
            Ok(_) => {
                if let Err(e) = consumer_takes(&dst, b) {
                    prop_assert!(false, "decode_into_view emitted {}", e);
                }
                prop_assert_eq!(RegisterFile::decode(&dst, b).unwrap(), state);
            }
            Err(stream::StreamError::Incompatible { .. }) => {
                prop_assert!(dst == before, "a refusal changed the area");
                // Refused only for what check refuses or the area lacks room for.
                let mut general = before.clone();
                let mut gview = XsaveView::new(&mut general[..], b).unwrap();
                let refused = !xstate::migrate::check(&state, b).is_compatible()
                    || state.write_to(&mut gview).is_err();
                prop_assert!(refused, "refused a state the general path writes");
            }
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }
}

/// Making x87 live in a view over stale MXCSR bytes (SSE and AVX init)
/// writes the 0x1F80 the view reports: KVM_SET_XSAVE checks MXCSR with x87
/// live, and the standard-format XRSTOR loads it.
#[test]
fn making_x87_live_over_a_stale_mxcsr_writes_its_init_value() {
    let layout = catalog::get("amd-zen4").unwrap();
    let mut area = RegisterFile::new()
        .encode(layout, Format::Standard)
        .unwrap();
    area[MXCSR..MXCSR + 4].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    let mut view = XsaveView::new(&mut area[..], layout).unwrap();
    assert_eq!(view.mxcsr().unwrap(), 0x1F80);
    view.set_st(0, [1; 10]).unwrap();
    assert_eq!(mxcsr_bytes(&area), 0x1F80);
    consumer_takes(&area, layout).unwrap();
}

/// Encoding into a reused buffer that held another layout's ptrace copy
/// (its XCR0 in the software bytes) gives an area that opens: bytes
/// 416..512 are written as zero.
#[test]
fn encoding_over_another_layouts_software_bytes_gives_an_area_that_opens() {
    let zen3 = catalog::get("amd-zen3").unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_xmm(2, 9).unwrap();
    let mut buf = vec![0u8; spr.standard_size() as usize];
    xstate::artifact::swbytes::write_xcr0(&mut buf, zen3.xcr0_supported());
    regs.encode_into(&mut buf, spr, XcompBv::STANDARD).unwrap();
    assert!(buf[416..512].iter().all(|&b| b == 0));
    let view = XsaveView::new(&buf[..], spr).unwrap();
    assert_eq!(view.xmm(2).unwrap(), 9);
    consumer_takes(&buf, spr).unwrap();
}

/// Writing an x87 register while x87 is already live, SSE and AVX init,
/// over stale MXCSR bytes writes the 0x1F80 the view reports, as making
/// x87 live does: otherwise the standard-format XRSTOR loads the stale
/// bytes (and faults on them), and KVM_SET_XSAVE refuses them with x87
/// live.
#[test]
fn writing_x87_registers_while_x87_is_live_over_a_stale_mxcsr_writes_its_init_value() {
    let layout = catalog::get("amd-zen4").unwrap();
    let area = x87_live_stale_mxcsr(layout);
    for write in 0..3 {
        let mut area = area.clone();
        let mut view = XsaveView::new(&mut area[..], layout).unwrap();
        assert_eq!(view.mxcsr().unwrap(), 0x1F80);
        match write {
            0 => view.set_st(1, [2; 10]),
            1 => view.set_fcw(0x027F),
            _ => view.set_ftw(0x80),
        }
        .unwrap();
        assert_eq!(mxcsr_bytes(&area), 0x1F80);
        consumer_takes(&area, layout).unwrap();
    }
}

/// One write through a view: `kind` picks the operation, `n` its
/// component or register index, `v` its value.
fn view_op(
    view: &mut XsaveView<'_, &mut [u8]>,
    kind: u8,
    n: u8,
    v: u64,
) -> Result<(), xstate::AccessError> {
    let c = ComponentId::new(n % 20).unwrap();
    let i = usize::from(n % 34);
    let lane = u128::from(v) << 64 | u128::from(v);
    match kind % 14 {
        0 => view.make_live(c),
        1 => {
            view.set_init(c);
            Ok(())
        }
        2 => view.component_mut(c).map(drop),
        3 => view.set_st(i % 8, [v as u8; 10]),
        4 => view.set_fcw(v as u16),
        5 => view.set_fsw(v as u16),
        6 => view.set_xmm(i, lane),
        7 => view.set_ymm(i, [lane; 2]),
        8 => view.set_zmm(i, [lane; 4]),
        // MXCSR values the layout takes, and the init one.
        9 => view.set_mxcsr(if v & 1 == 0 {
            0x1F80
        } else {
            (v as u32) & 0xFFBF
        }),
        10 => view.set_pkru(v as u32),
        11 => view.set_k(i % 8, v),
        12 => view.set_r(i, v),
        _ => view.set_fip(v),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x00AC_5C52),
        failure_persistence: None,
        ..ProptestConfig::with_cases(1024)
    })]

    /// After any sequence of writes and `set_init`s through a view over a
    /// hostile area (either format, stale MXCSR bytes), MXCSR's bytes are
    /// the value the view reports: what the standard-format XRSTOR loads
    /// whatever XSTATE_BV says, and KVM_SET_XSAVE with x87, SSE or AVX
    /// live. (A compacted area without SSE in XCOMP_BV holds no MXCSR: the
    /// view reports 0x1F80 there whatever the bytes.) A refused write
    /// changes nothing.
    #[test]
    fn view_writes_keep_mxcsr_bytes_as_the_view_reports_them(
        a in layouts(),
        (seed, bv, comp) in (any::<u64>(), any::<u64>(), any::<u64>()),
        compacted in any::<bool>(),
        stale in any::<u32>(),
        ops in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u64>()), 1..12),
    ) {
        let mut area = hostile_area(a, seed, bv, comp, compacted, 0, a.mxcsr_mask());
        area[MXCSR..MXCSR + 4].copy_from_slice(&stale.to_le_bytes());
        let Ok(mut view) = XsaveView::new(&mut area[..], a) else {
            return Ok(());
        };
        for (kind, n, v) in ops {
            let before = view.as_bytes().to_vec();
            let holds_mxcsr = view.format() == Format::Standard
                || view.xcomp_bv().components().contains(ComponentId::SSE);
            match view_op(&mut view, kind, n, v) {
                Ok(()) if !holds_mxcsr => {}
                Ok(()) => {
                    let reported = view.mxcsr().unwrap();
                    let bytes = mxcsr_bytes(view.as_bytes());
                    prop_assert_eq!(
                        bytes, reported,
                        "op {} on component/index {}: MXCSR bytes {:#x}, the view reports {:#x}, XSTATE_BV {}",
                        kind % 14, n, bytes, reported, view.xstate_bv()
                    );
                }
                Err(_) => prop_assert!(view.as_bytes() == &before[..], "a refused write changed the area"),
            }
        }
    }
}
