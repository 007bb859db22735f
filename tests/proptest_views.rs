//! Properties of the views and the register file over every catalog layout
//! and both formats.

use proptest::prelude::*;
use xstate::component::bits;
use xstate::layout::catalog;
use xstate::{Component, Format, Layout, Register, RegisterFile, ViewError, XsaveView};

fn layouts() -> impl Strategy<Value = &'static Layout> {
    prop::sample::select(catalog::all().iter().collect::<Vec<_>>())
}

fn formats() -> impl Strategy<Value = Format> {
    prop::sample::select(vec![Format::Standard, Format::Compacted])
}

/// A register file whose live components are a random subset of the
/// layout's user components, each filled with random bytes; the others
/// stay init.
fn state_for(layout: &'static Layout) -> impl Strategy<Value = RegisterFile> {
    let user = layout.xcr0_supported();
    (
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 16384),
        any::<u32>(),
    )
        .prop_map(move |(pick, bytes, mxcsr)| {
            let mut regs = RegisterFile::new();
            let mut at = 0;
            for i in bits(user & pick) {
                let size = match i {
                    0 | 1 => 512,
                    _ => layout.geometry(i).unwrap().size as usize,
                };
                let chunk = &bytes[at..at + size];
                at = (at + size) % 8192;
                regs.set_component(i, chunk).unwrap();
            }
            if regs.xstate_bv() & 0b110 != 0 {
                regs.set_mxcsr(mxcsr & layout.mxcsr_mask()).unwrap();
            }
            regs
        })
}

fn layout_and_state() -> impl Strategy<Value = (&'static Layout, RegisterFile)> {
    layouts().prop_flat_map(|l| (Just(l), state_for(l)))
}

/// Every register's value, or the error reading it.
fn all_registers(
    read: impl Fn(Register) -> Result<Vec<u8>, ViewError>,
) -> Vec<(Register, Option<Vec<u8>>)> {
    Register::all().map(|r| (r, read(r).ok())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn register_file_to_buffer_and_back_is_the_identity(
        (layout, regs) in layout_and_state(),
        format in formats(),
    ) {
        let area = regs.encode(layout, format).unwrap();
        let view = XsaveView::new(&area[..], layout).unwrap();
        prop_assert_eq!(view.format(), format);
        prop_assert_eq!(view.xstate_bv(), regs.xstate_bv());
        let back = RegisterFile::from_view(&view).unwrap();
        prop_assert_eq!(&back, &regs);
        // Every register reads the same through the view and the file.
        for reg in Register::all() {
            match view.read(reg) {
                Ok(v) => prop_assert_eq!(v, regs.read(reg).unwrap(), "{}", reg),
                Err(ViewError::NoComponent { index, .. }) => {
                    prop_assert!(!layout.has(Component::from_index(index).unwrap()));
                }
                Err(e) => prop_assert!(false, "{}: {}", reg, e),
            }
        }
    }

    #[test]
    fn standard_and_compacted_encodings_decode_alike((layout, regs) in layout_and_state()) {
        let standard = regs.encode(layout, Format::Standard).unwrap();
        let compacted = regs.encode(layout, Format::Compacted).unwrap();
        let s = XsaveView::new(&standard[..], layout).unwrap();
        let c = XsaveView::new(&compacted[..], layout).unwrap();
        prop_assert_eq!(all_registers(|r| s.read(r)), all_registers(|r| c.read(r)));
        prop_assert_eq!(
            RegisterFile::from_view(&s).unwrap(),
            RegisterFile::from_view(&c).unwrap()
        );
    }

    #[test]
    fn state_moves_between_layouts_that_hold_it(
        (from, regs) in layout_and_state(),
        to in layouts(),
        format in formats(),
    ) {
        let area = regs.encode(from, Format::Standard).unwrap();
        let decoded = RegisterFile::decode(&area, from).unwrap();
        match decoded.encode(to, format) {
            Ok(moved) => {
                prop_assert_eq!(RegisterFile::decode(&moved, to).unwrap(), regs);
            }
            Err(ViewError::NoComponent { index, .. }) => {
                // Refused only for a live component the destination lacks.
                prop_assert!(regs.xstate_bv() & 1 << index != 0);
                prop_assert!(to.geometry(index).is_none());
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn opening_arbitrary_bytes_never_panics(
        layout in layouts(),
        mut bytes in prop::collection::vec(any::<u8>(), 0..12000),
        xstate_bv in any::<u64>(),
        xcomp_bv in any::<u64>(),
        plausible in any::<bool>(),
    ) {
        if plausible && bytes.len() >= 576 {
            // A header that often passes, to reach the accessors.
            let supported = layout.supported();
            let held = xcomp_bv & supported;
            let (bv, comp) = if xcomp_bv & 1 != 0 {
                (xstate_bv & held, held | 1 << 63)
            } else {
                (xstate_bv & layout.xcr0_supported(), 0)
            };
            bytes[512..520].copy_from_slice(&bv.to_le_bytes());
            bytes[520..528].copy_from_slice(&comp.to_le_bytes());
            bytes[528..576].fill(0);
        }
        if let Ok(view) = XsaveView::new(&bytes[..], layout) {
            for reg in Register::all() {
                let _ = view.read(reg);
            }
            let _ = RegisterFile::from_view(&view);
        }
    }

    #[test]
    fn failed_writes_change_nothing(
        layout in layouts(),
        fill in any::<u8>(),
        value in any::<u128>(),
    ) {
        let mut buf = vec![fill; layout.standard_size() as usize];
        buf[512..576].fill(0);
        let before = buf.clone();
        let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
        for (reg, component) in [
            (Register::R(16), Component::Apx),
            (Register::Tmm(0), Component::TileData),
            (Register::Bnd(0), Component::MpxBndregs),
            (Register::Pkru, Component::Pkru),
        ] {
            if !layout.has(component) {
                let bytes = value.to_le_bytes();
                let err = view.write(reg, &bytes[..reg.width().min(16)].repeat(reg.width().div_ceil(16))[..reg.width()]);
                prop_assert!(
                    matches!(err, Err(ViewError::NoComponent { .. })),
                    "{} on {}: {:?}", reg, layout.name(), err
                );
            }
        }
        prop_assert_eq!(buf, before);
    }
}

#[test]
fn first_write_initializes_the_rest_of_the_component() {
    for layout in catalog::all() {
        let mut buf = vec![0xA5u8; layout.standard_size() as usize];
        buf[512..576].fill(0);
        let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
        // SSE: the other XMMs read 0 and MXCSR its init value.
        view.set_xmm(3, 7).unwrap();
        assert_eq!(view.xstate_bv(), Component::Sse.mask());
        for i in (0..16).filter(|&i| i != 3) {
            assert_eq!(view.xmm(i).unwrap(), 0, "{}: xmm{i}", layout.name());
        }
        assert_eq!(view.mxcsr().unwrap(), 0x1F80);
        // x87: FCW comes up at its init value.
        view.set_st(0, [1; 10]).unwrap();
        assert_eq!(view.fcw().unwrap(), 0x037F);
        assert_eq!(view.st(1).unwrap(), [0; 10]);
        if layout.has(Component::Hi16Zmm) {
            view.set_zmm(20, [1, 2, 3, 4]).unwrap();
            for i in (16..32).filter(|&i| i != 20) {
                assert_eq!(view.zmm(i).unwrap(), [0; 4], "{}: zmm{i}", layout.name());
            }
            // ZMM0-15 upper halves are still init.
            assert_eq!(view.zmm(0).unwrap(), [0; 4]);
        }
        if layout.has(Component::Apx) {
            view.set_r(31, 5).unwrap();
            for i in 16..31 {
                assert_eq!(view.r(i).unwrap(), 0, "r{i}");
            }
        }
        if layout.has(Component::TileData) {
            view.set_tmm(7, &[9; 1024]).unwrap();
            assert_eq!(*view.tmm(0).unwrap(), [0; 1024]);
            assert_eq!(view.tilecfg().unwrap(), [0; 64], "TILECFG stays init");
        }
    }
}

#[test]
fn registers_a_layout_lacks_are_errors_not_zeros() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let buf = vec![0u8; 11008];
    let v4 = XsaveView::new(&buf[..], zen4).unwrap();
    assert!(matches!(
        v4.r(16),
        Err(ViewError::NoComponent { index: 19, .. })
    ));
    assert!(matches!(
        v4.tmm(0),
        Err(ViewError::NoComponent { index: 18, .. })
    ));
    let vs = XsaveView::new(&buf[..], spr).unwrap();
    assert!(matches!(
        vs.bnd(0),
        Err(ViewError::NoComponent { index: 3, .. })
    ));
    assert!(matches!(vs.xmm(16), Err(ViewError::NoRegister { .. })));
    assert!(matches!(vs.r(15), Err(ViewError::NoRegister { .. })));
}

#[test]
fn headers_are_checked_against_the_layout() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut buf = vec![0u8; 4096];
    // XSTATE_BV naming AMX, which Zen 4 lacks.
    buf[512..520].copy_from_slice(&(1u64 << 18).to_le_bytes());
    assert!(matches!(
        XsaveView::new(&buf[..], zen4),
        Err(ViewError::Unsupported {
            unsupported: 0x40000,
            ..
        })
    ));
    // Standard format with a stray XCOMP_BV bit.
    buf[512..520].fill(0);
    buf[520] = 1;
    assert!(matches!(
        XsaveView::new(&buf[..], zen4),
        Err(ViewError::BadXcompBv { .. })
    ));
    // Compacted, XSTATE_BV beyond XCOMP_BV.
    buf[512..520].copy_from_slice(&0x20u64.to_le_bytes());
    buf[520..528].copy_from_slice(&(0x7u64 | 1 << 63).to_le_bytes());
    assert!(matches!(
        XsaveView::new(&buf[..], zen4),
        Err(ViewError::NotInXcompBv { missing: 0x20, .. })
    ));
    // Too small for the components XSTATE_BV names.
    buf[520..528].fill(0);
    buf[512..520].copy_from_slice(&0x80u64.to_le_bytes());
    assert!(matches!(
        XsaveView::new(&buf[..2000], zen4),
        Err(ViewError::TooSmall { needed: 2432, .. })
    ));
    // Any alignment: a view one byte into a buffer.
    let mut shifted = vec![0u8; 4097];
    let mut view = XsaveView::new(&mut shifted[1..], zen4).unwrap();
    view.set_k(3, 0x1234).unwrap();
    assert_eq!(view.k(3).unwrap(), 0x1234);
}
