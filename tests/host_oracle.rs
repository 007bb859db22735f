//! The host CPU as the oracle: XSAVE, XSAVEOPT, XSAVEC and XRSTOR decide
//! where state goes, and the layout engine and the views must agree.
//!
//! Parts the CPU lacks (a save instruction, PKRU, AVX-512) are skipped with
//! the reason printed.

mod common;

use common::skip;
use xstate::host::amx::{self, TileState};
use xstate::host::{Host, KnownValues, SaveInstr, VectorWidth};
use xstate::prelude::*;
use xstate::{ComponentId, Format, Register, RegisterFile, XcompBv, Xfeatures, XsaveView};

fn host() -> Host {
    Host::detect().expect("XSAVE is enabled on every x86_64 Linux host this runs on")
}

fn lanes<const N: usize>(bytes: &[u8]) -> [u128; N] {
    core::array::from_fn(|i| u128::from_le_bytes(bytes[16 * i..16 * i + 16].try_into().unwrap()))
}

/// Every register the loader set reads back through a view of `area`.
fn assert_reads_values(host: &Host, area: &[u8], v: &KnownValues, what: &str) {
    let view = XsaveView::new(area, host.layout()).unwrap_or_else(|e| panic!("{what}: {e}"));
    match host.vector_width() {
        VectorWidth::Zmm => {
            for i in 0..32 {
                assert_eq!(
                    view.zmm(i).unwrap(),
                    lanes::<4>(&v.vec[i]),
                    "{what}: zmm{i}"
                );
            }
            for i in 0..8 {
                assert_eq!(view.k(i).unwrap(), v.k[i], "{what}: k{i}");
            }
        }
        VectorWidth::Ymm => {
            for i in 0..16 {
                assert_eq!(
                    view.ymm(i).unwrap(),
                    lanes::<2>(&v.vec[i]),
                    "{what}: ymm{i}"
                );
            }
        }
        VectorWidth::Xmm => {
            for i in 0..16 {
                assert_eq!(
                    view.xmm(i).unwrap(),
                    lanes::<1>(&v.vec[i])[0],
                    "{what}: xmm{i}"
                );
            }
        }
    }
    for i in 0..8 {
        assert_eq!(view.st(i).unwrap(), v.st[i], "{what}: st{i}");
    }
    assert_eq!(view.fcw().unwrap(), v.fcw, "{what}: fcw");
    assert_eq!(
        view.ftw().unwrap(),
        0xFF,
        "{what}: abridged ftw, 8 registers valid"
    );
    assert_eq!(
        view.fsw().unwrap() & 0x3800,
        0,
        "{what}: TOP after 8 pushes"
    );
    assert_eq!(view.mxcsr().unwrap(), v.mxcsr, "{what}: mxcsr");
}

#[test]
fn views_read_what_each_save_instruction_wrote() {
    let host = host();
    eprintln!(
        "host XCR0 {:#x}, vectors {:?}, layout standard size {}",
        host.xcr0(),
        host.vector_width(),
        host.layout().standard_size()
    );
    let values = KnownValues::pattern(3);
    for instr in [SaveInstr::Xsave, SaveInstr::Xsaveopt, SaveInstr::Xsavec] {
        if !host.supports(instr) {
            skip(instr.name(), "not supported by this CPU");
            continue;
        }
        let area = host.load_then_save(&values, instr, false).unwrap();
        let view = XsaveView::new(area.as_bytes(), host.layout()).unwrap();
        assert_eq!(view.format(), instr.format(), "{}", instr.name());
        if instr == SaveInstr::Xsavec {
            assert_eq!(view.xcomp_bv(), XcompBv::compacted(host.xcr0()));
        }
        assert_reads_values(&host, area.as_bytes(), &values, instr.name());
    }
}

#[test]
fn compacted_offsets_are_where_xsavec_put_each_component() {
    let host = host();
    if !host.supports(SaveInstr::Xsavec) {
        return skip("compacted offsets", "XSAVEC not supported by this CPU");
    }
    let layout = host.layout();
    let values = KnownValues::pattern(9);
    let standard = host
        .load_then_save(&values, SaveInstr::Xsave, false)
        .unwrap();
    let std_view = XsaveView::new(standard.as_bytes(), layout).unwrap();
    let extended = host.xcr0().extended();
    // The full XCR0, then every subset with one extended component left
    // out, then each extended component alone: each a different XCOMP_BV.
    let mut masks = vec![host.xcr0()];
    masks.extend(extended.iter().map(|c| host.xcr0().without(c)));
    masks.extend(extended.iter().map(|c| Xfeatures::LEGACY.with(c)));
    let mut checked = 0;
    for rfbm in masks {
        let compacted = host
            .load_then_save_masked(&values, SaveInstr::Xsavec, false, rfbm)
            .unwrap();
        let bytes = compacted.as_bytes();
        let view = XsaveView::new(bytes, layout).unwrap();
        assert_eq!(view.xcomp_bv(), XcompBv::compacted(rfbm));
        for i in rfbm & extended & std_view.xstate_bv() {
            let g = layout.geometry(i).unwrap();
            let at = layout.compacted_offset(rfbm, i).unwrap() as usize;
            assert_eq!(
                &bytes[at..at + g.size as usize],
                &standard.as_bytes()[g.offset as usize..(g.offset + g.size) as usize],
                "{i} with XCOMP_BV {rfbm}: XSAVEC put it elsewhere than offset {at}"
            );
            checked += 1;
        }
        assert_eq!(
            bytes.len(),
            layout.compacted_size_for(rfbm) as usize,
            "compacted size for {rfbm}"
        );
    }
    assert!(checked > 0, "no live extended component was compared");
    common::note(&format!("{checked} component placements agree with XSAVEC"));
}

#[test]
fn stale_bytes_of_init_components_read_as_init() {
    let host = host();
    if host.vector_width() < VectorWidth::Ymm {
        return skip("VZEROUPPER", "the CPU has no AVX");
    }
    let layout = host.layout();
    let values = KnownValues::pattern(5);
    for instr in [SaveInstr::Xsave, SaveInstr::Xsavec] {
        if !host.supports(instr) {
            skip(instr.name(), "not supported by this CPU");
            continue;
        }
        let area = host.load_then_save(&values, instr, true).unwrap();
        let view = XsaveView::new(area.as_bytes(), layout).unwrap();
        if view.is_live(ComponentId::AVX) {
            skip(instr.name(), "the CPU kept AVX state live after VZEROUPPER");
            continue;
        }
        let at = match view.format() {
            Format::Standard => layout.offset(ComponentId::AVX).unwrap(),
            Format::Compacted => layout
                .compacted_offset(view.xcomp_bv().components(), ComponentId::AVX)
                .unwrap(),
        } as usize;
        let untouched = area.as_bytes()[at..at + 256].iter().all(|&b| b == 0xAA);
        if instr == SaveInstr::Xsavec {
            // XSAVEC does not write components in their init state.
            assert!(untouched, "XSAVEC wrote the init AVX component");
        } else if !untouched {
            eprintln!("note: this CPU's XSAVE writes init values for init components");
        }
        // Stale bytes under the clear bit (left by XSAVEC, or planted here).
        let mut stale = area.clone();
        stale.as_bytes_mut()[at..at + 256].fill(0x5A);
        let view = XsaveView::new(stale.as_bytes(), layout).unwrap();
        for i in 0..16 {
            let ymm = view.ymm(i).unwrap();
            assert_eq!(ymm[1], 0, "{}: ymm{i} upper half", instr.name());
            assert_eq!(
                ymm[0],
                lanes::<1>(&values.vec[i])[0],
                "{}: xmm{i} kept",
                instr.name()
            );
        }
        // The CPU ignores them too: XRSTOR of the stale area leaves the
        // upper halves zero.
        let (_, direct) = host
            .restore_then_save(stale.as_bytes(), SaveInstr::Xsave)
            .unwrap();
        for i in 0..16 {
            assert_eq!(
                lanes::<2>(&direct.vec[i][..32])[1],
                0,
                "{}: ymm{i} upper in the register",
                instr.name()
            );
        }
        if host.vector_width() == VectorWidth::Zmm && !view.is_live(ComponentId::ZMM_HI256) {
            for i in 0..16 {
                assert_eq!(
                    view.zmm(i).unwrap()[2..],
                    [0, 0],
                    "{}: zmm{i} upper",
                    instr.name()
                );
            }
            // VZEROUPPER leaves zmm16-31 alone.
            for i in 16..32 {
                assert_eq!(
                    view.zmm(i).unwrap(),
                    lanes::<4>(&values.vec[i]),
                    "{}: zmm{i}",
                    instr.name()
                );
            }
        }
    }
}

/// A state built with the write view for the host, at values unlike the
/// thread's own.
fn written_state(host: &Host, fill: u8) -> Vec<u8> {
    let layout = host.layout();
    let values = KnownValues::pattern(11);
    let mut buf = vec![fill; layout.standard_size() as usize];
    xstate::area::init_area(&mut buf, XcompBv::STANDARD);
    let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
    match host.vector_width() {
        VectorWidth::Zmm => {
            // zmm16-31 stay init over stale bytes: they must restore as 0.
            for i in 0..16 {
                view.set_zmm(i, lanes::<4>(&values.vec[i])).unwrap();
            }
            for i in 0..8 {
                view.set_k(i, values.k[i]).unwrap();
            }
        }
        VectorWidth::Ymm => {
            for i in 0..16 {
                view.set_ymm(i, lanes::<2>(&values.vec[i])).unwrap();
            }
        }
        VectorWidth::Xmm => {
            for i in 0..16 {
                view.set_xmm(i, lanes::<1>(&values.vec[i])[0]).unwrap();
            }
        }
    }
    for i in 0..8 {
        view.set_st(i, values.st[i]).unwrap();
    }
    view.set_ftw(0xFF).unwrap();
    view.set_fcw(values.fcw).unwrap();
    view.set_mxcsr(values.mxcsr).unwrap();
    buf
}

/// Registers the CPU restores exactly (the x87 last-instruction pointers
/// are excluded: AMD CPUs save them only while an exception is pending).
fn restorable(reg: Register) -> bool {
    !matches!(reg, Register::Fip | Register::Fdp | Register::Fop)
}

fn assert_same_registers(a: &[u8], b: &[u8], host: &Host, what: &str) {
    let (va, vb) = (
        XsaveView::new(a, host.layout()).unwrap(),
        XsaveView::new(b, host.layout()).unwrap(),
    );
    let mut n = 0;
    for reg in Register::all().filter(|r| restorable(*r)) {
        if let Ok(x) = va.read(reg) {
            assert_eq!(x, vb.read(reg).unwrap(), "{what}: {reg}");
            n += 1;
        }
    }
    assert!(n > 50, "{what}: only {n} registers compared");
}

#[test]
fn xrstor_accepts_what_the_write_view_wrote_and_restores_it_exactly() {
    let host = host();
    let written = written_state(&host, 0xCC);
    let (saved, direct) = host.restore_then_save(&written, SaveInstr::Xsave).unwrap();
    assert_same_registers(
        &written,
        saved.as_bytes(),
        &host,
        "standard XRSTOR then XSAVE",
    );

    // Read straight from the registers too.
    let view = XsaveView::new(&written[..], host.layout()).unwrap();
    assert_eq!(direct.mxcsr, view.mxcsr().unwrap());
    assert_eq!(direct.fcw, view.fcw().unwrap());
    match host.vector_width() {
        VectorWidth::Zmm => {
            for i in 0..32 {
                assert_eq!(
                    lanes::<4>(&direct.vec[i]),
                    view.zmm(i).unwrap(),
                    "zmm{i} in the register"
                );
            }
            for i in 0..8 {
                assert_eq!(direct.k[i], view.k(i).unwrap(), "k{i} in the register");
            }
        }
        VectorWidth::Ymm => {
            for i in 0..16 {
                assert_eq!(
                    lanes::<2>(&direct.vec[i][..32]),
                    view.ymm(i).unwrap(),
                    "ymm{i}"
                );
            }
        }
        VectorWidth::Xmm => {
            for i in 0..16 {
                assert_eq!(
                    lanes::<1>(&direct.vec[i][..16])[0],
                    view.xmm(i).unwrap(),
                    "xmm{i}"
                );
            }
        }
    }

    if !host.supports(SaveInstr::Xsavec) {
        return skip("compacted XRSTOR", "XSAVEC not supported by this CPU");
    }
    // The same state in the compacted format restores alike.
    let regs = RegisterFile::decode(&written, host.layout()).unwrap();
    let mut compacted = vec![0xCC; host.layout().compacted_size_for(host.xcr0()) as usize];
    regs.encode_into(
        &mut compacted,
        host.layout(),
        XcompBv::compacted(host.xcr0()),
    )
    .unwrap();
    let (saved, _) = host
        .restore_then_save(&compacted, SaveInstr::Xsavec)
        .unwrap();
    assert_same_registers(
        &written,
        saved.as_bytes(),
        &host,
        "compacted XRSTOR then XSAVEC",
    );
}

#[test]
fn mxcsr_of_an_init_sse_state_restores_as_the_view_reads_it() {
    let host = host();
    let layout = host.layout();
    let mut buf = written_state(&host, 0);
    let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
    assert_eq!(view.mxcsr().unwrap(), 0x9FC0);
    view.set_init(ComponentId::SSE);
    view.set_init(ComponentId::AVX);
    if layout.has(ComponentId::ZMM_HI256) {
        view.set_init(ComponentId::ZMM_HI256);
    }
    let reads = view.mxcsr().unwrap();
    assert_eq!(reads, 0x1F80, "MXCSR reads as init with SSE and AVX init");
    let (saved, direct) = host.restore_then_save(&buf, SaveInstr::Xsave).unwrap();
    assert_eq!(
        direct.mxcsr, reads,
        "the CPU restored the MXCSR the view reports"
    );
    let saved_view = XsaveView::new(saved.as_bytes(), layout).unwrap();
    assert_eq!(saved_view.mxcsr().unwrap(), reads);
    for i in 0..16 {
        assert_eq!(saved_view.xmm(i).unwrap(), 0, "xmm{i} restored as init");
    }
}

#[test]
fn pkru_round_trips_where_the_cpu_has_it() {
    let host = host();
    if !host.enabled(ComponentId::PKRU) {
        return skip("PKRU", "XCR0 does not enable PKRU on this host (no OSPKE)");
    }
    let layout = host.layout();
    let mut buf = written_state(&host, 0);
    let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
    // Access-disable key 15 only: the thread's own pages use key 0.
    view.set_pkru(0x4000_0000).unwrap();
    let (saved, _) = host.restore_then_save(&buf, SaveInstr::Xsave).unwrap();
    let saved_view = XsaveView::new(saved.as_bytes(), layout).unwrap();
    assert_eq!(saved_view.pkru().unwrap(), 0x4000_0000);
}

#[test]
fn areas_xrstor_would_fault_on_are_refused() {
    let host = host();
    let good = written_state(&host, 0);
    host.check_restorable(&good).unwrap();

    let mut reserved = good.clone();
    reserved[560] = 1;
    assert!(host.restore_then_save(&reserved, SaveInstr::Xsave).is_err());

    let mut mxcsr = good.clone();
    mxcsr[24..28].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    assert!(matches!(
        host.check_restorable(&mxcsr),
        Err(xstate::host::HostError::Mxcsr { .. })
    ));

    let absent = (host.layout().xcr0_supported() - host.xcr0()).first();
    match absent {
        Some(i) => {
            let mut bv = good.clone();
            let x = u64::from_le_bytes(bv[512..520].try_into().unwrap()) | i.bit().bits();
            bv[512..520].copy_from_slice(&x.to_le_bytes());
            assert!(host.check_restorable(&bv).is_err());
        }
        None => skip(
            "XSTATE_BV beyond XCR0",
            "XCR0 enables every supported component",
        ),
    }
    assert!(host.check_restorable(&good[..100]).is_err());
}

/// Asserts that `area` (either format) holds exactly `tiles`, live.
fn assert_holds_tiles(host: &Host, area: &[u8], tiles: &TileState, what: &str) {
    let view = XsaveView::new(area, host.layout()).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(view.is_live(ComponentId::TILECFG), "{what}: TILECFG live");
    assert!(view.is_live(ComponentId::TILEDATA), "{what}: TILEDATA live");
    assert_eq!(view.tilecfg().unwrap(), tiles.cfg, "{what}: TILECFG");
    for i in 0..8 {
        assert_eq!(view.tmm(i).unwrap(), tiles.tmm[i], "{what}: tmm{i}");
    }
}

#[test]
fn amx_tiles_against_the_cpu() {
    const PART: &str = "AMX tiles against the CPU";
    let host = host();
    if !host.has_amx() {
        return skip(
            PART,
            &format!(
                "the CPU lacks AMX-TILE or XCR0 {:#x} does not enable TILECFG and TILEDATA",
                host.xcr0()
            ),
        );
    }
    if let Err(e) = amx::request_permission() {
        return skip(PART, &format!("the kernel refused AMX permission: {e}"));
    }
    let layout = host.layout();
    let before = host.save(SaveInstr::Xsave, 0).unwrap();
    let tiles = TileState::pattern(0x3C);
    assert_eq!(tiles.configured(), 0xFF);
    for instr in [SaveInstr::Xsave, SaveInstr::Xsaveopt, SaveInstr::Xsavec] {
        if !host.supports(instr) {
            skip(
                &format!("{PART}: {}", instr.name()),
                "not supported by this CPU",
            );
            continue;
        }
        // The views read TILECFG and every tile exactly as loaded.
        let area = host.load_tiles_then_save(&tiles, instr, false).unwrap();
        assert_holds_tiles(&host, area.as_bytes(), &tiles, instr.name());
        // After TILERELEASE both components are init, whatever bytes are stale.
        let mut released = host.load_tiles_then_save(&tiles, instr, true).unwrap();
        let view = XsaveView::new(released.as_bytes(), layout).unwrap();
        assert!(!view.is_live(ComponentId::TILECFG), "{}", instr.name());
        assert!(!view.is_live(ComponentId::TILEDATA), "{}", instr.name());
        let (format, xcomp) = (view.format(), view.xcomp_bv());
        for c in [ComponentId::TILECFG, ComponentId::TILEDATA] {
            let at = match format {
                Format::Standard => layout.offset(c),
                Format::Compacted => layout.compacted_offset(xcomp.components(), c),
            }
            .unwrap() as usize;
            let size = layout.size(c).unwrap() as usize;
            released.as_bytes_mut()[at..at + size].fill(0x5A);
        }
        let view = XsaveView::new(released.as_bytes(), layout).unwrap();
        assert_eq!(
            view.tilecfg().unwrap(),
            [0; 64],
            "{}: stale TILECFG",
            instr.name()
        );
        for i in 0..8 {
            assert_eq!(
                view.tmm(i).unwrap(),
                [0; 1024],
                "{}: stale tmm{i}",
                instr.name()
            );
        }
    }

    // An area built by the write view restores to exactly those tiles:
    // read back with TILESTORED and STTILECFG, and with XSAVE.
    let mut buf = vec![0xCC; layout.standard_size() as usize];
    xstate::area::init_area(&mut buf, XcompBv::STANDARD);
    let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
    view.set_tilecfg(&tiles.cfg).unwrap();
    for i in 0..8 {
        view.set_tmm(i, &tiles.tmm[i]).unwrap();
    }
    let (saved, stored) = host.restore_then_store_tiles(&buf).unwrap();
    assert_eq!(
        stored, tiles,
        "TILESTORED / STTILECFG after XRSTOR of the written area"
    );
    assert_holds_tiles(&host, saved.as_bytes(), &tiles, "XSAVE after XRSTOR");
    if host.supports(SaveInstr::Xsavec) {
        let regs = RegisterFile::decode(&buf, layout).unwrap();
        let compacted = regs.encode(layout, Format::Compacted).unwrap();
        let (_, stored) = host.restore_then_store_tiles(&compacted).unwrap();
        assert_eq!(
            stored, tiles,
            "TILESTORED after XRSTOR of the compacted area"
        );
    }

    // A TILECFG LDTILECFG would refuse is refused before XRSTOR.
    let mut bad = buf.clone();
    let at = layout.offset(ComponentId::TILECFG).unwrap() as usize;
    bad[at + 48] = 17; // tile 0 with 17 rows
    assert!(matches!(
        host.check_restorable(&bad),
        Err(xstate::host::HostError::TileConfig(_))
    ));

    // The thread's own AMX state is as it was.
    let after = host.save(SaveInstr::Xsave, 0).unwrap();
    let (b, a) = (
        XsaveView::new(before.as_bytes(), layout).unwrap(),
        XsaveView::new(after.as_bytes(), layout).unwrap(),
    );
    assert_eq!(b.tilecfg().unwrap(), a.tilecfg().unwrap());
    assert_eq!(
        b.is_live(ComponentId::TILEDATA),
        a.is_live(ComponentId::TILEDATA)
    );
    common::note(&format!(
        "AMX verified against the CPU: TILECFG and all eight tiles (rows 16..9, 64..36 bytes per row) \
         through XSAVE, XSAVEOPT and XSAVEC, init after TILERELEASE, and restored by XRSTOR from the \
         write view (XCR0 {:#x})",
        host.xcr0()
    ));
}

/// With AVX live and SSE init, the standard-format XRSTOR loads MXCSR from
/// the area and the compacted-format one sets 0x1F80 (Intel SDM vol. 1,
/// 13.8.2): the CPU restores each area and the view, the register file,
/// relayout to the other format and the stream report the MXCSR it loaded.
#[test]
fn mxcsr_with_avx_live_and_sse_init_restores_as_each_format_reads_it() {
    let host = host();
    let layout = host.layout();
    if !host.enabled(ComponentId::AVX) {
        return skip(
            "MXCSR with AVX live",
            "XCR0 does not enable AVX on this host",
        );
    }
    if !host.supports(SaveInstr::Xsavec) {
        return skip(
            "MXCSR in the compacted format",
            "XSAVEC not supported by this CPU",
        );
    }
    for format in [Format::Standard, Format::Compacted] {
        let mut regs = RegisterFile::new();
        regs.set_ymm(3, [0, 0x1234]).unwrap();
        regs.set_init(ComponentId::SSE);
        let mut buf = regs.encode(layout, format).unwrap();
        let view = XsaveView::new(&buf[..], layout).unwrap();
        assert_eq!(view.xstate_bv() & Xfeatures::LEGACY, Xfeatures::EMPTY);
        // Bytes a CPU may leave there: a valid MXCSR, not the init one.
        buf[24..28].copy_from_slice(&0x1F00u32.to_le_bytes());
        let view = XsaveView::new(&buf[..], layout).unwrap();
        let (_, direct) = host.restore_then_save(&buf, SaveInstr::Xsave).unwrap();
        let expect = match format {
            Format::Standard => 0x1F00,
            Format::Compacted => 0x1F80,
        };
        assert_eq!(direct.mxcsr, expect, "{format:?}: the CPU's MXCSR");
        assert_eq!(view.mxcsr().unwrap(), direct.mxcsr, "{format:?}: the view");
        let decoded = RegisterFile::from_view(&view).unwrap();
        assert_eq!(decoded.mxcsr().unwrap(), direct.mxcsr, "{format:?}: decode");
        // Moved to the other format, the CPU loads the same MXCSR.
        let other = match format {
            Format::Standard => Format::Compacted,
            Format::Compacted => Format::Standard,
        };
        let moved = xstate::migrate::relayout(
            &buf,
            layout,
            layout,
            xstate::migrate::RelayoutOptions {
                format: other,
                ..Default::default()
            },
        )
        .unwrap();
        let (_, after) = host.restore_then_save(&moved, SaveInstr::Xsave).unwrap();
        assert_eq!(
            after.mxcsr, direct.mxcsr,
            "{format:?} -> {other:?}: relayout"
        );
        let encoded = decoded.encode(layout, other).unwrap();
        let (_, after) = host.restore_then_save(&encoded, SaveInstr::Xsave).unwrap();
        assert_eq!(after.mxcsr, direct.mxcsr, "{format:?} -> {other:?}: encode");
    }
}

/// A register file whose MXCSR is not init while SSE is (AVX live) encodes
/// to a compacted area the CPU restores with that MXCSR: SSE goes live, at
/// its init XMM values, as the compacted-format XRSTOR needs.
#[test]
fn a_non_init_mxcsr_with_sse_init_survives_the_compacted_format() {
    let host = host();
    let layout = host.layout();
    if !host.enabled(ComponentId::AVX) || !host.supports(SaveInstr::Xsavec) {
        return skip(
            "MXCSR in the compacted format",
            "no AVX or no XSAVEC on this CPU",
        );
    }
    let mut regs = RegisterFile::new();
    regs.set_ymm(3, [0, 0x1234]).unwrap();
    regs.set_mxcsr(0x1F00).unwrap();
    regs.set_init(ComponentId::SSE);
    assert_eq!(regs.mxcsr().unwrap(), 0x1F00, "AVX live keeps MXCSR");
    for format in [Format::Standard, Format::Compacted] {
        let area = regs.encode(layout, format).unwrap();
        let (_, direct) = host.restore_then_save(&area, SaveInstr::Xsave).unwrap();
        assert_eq!(direct.mxcsr, 0x1F00, "{format:?}");
        let view = XsaveView::new(&area[..], layout).unwrap();
        assert_eq!(view.mxcsr().unwrap(), 0x1F00, "{format:?}: the view");
        assert_eq!(view.xmm(0).unwrap(), 0);
    }
}
