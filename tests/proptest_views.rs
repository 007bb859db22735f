//! Properties of the views and the register file over every catalog layout
//! and both formats.

mod common;

use proptest::prelude::*;
use xstate::layout::catalog;
use xstate::prelude::*;
use xstate::{
    AccessError, ComponentId, Format, HeaderError, Layout, Register, RegisterFile, XcompBv,
    Xfeatures, XsaveView,
};

/// The components whose liveness makes MXCSR count: SSE and AVX.
const MXCSR_LIVE: Xfeatures = ComponentId::SSE.bit().union(ComponentId::AVX.bit());

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
            for c in user & Xfeatures::from_bits(pick) {
                let size = common::component_size(layout, c);
                let chunk = &bytes[at..at + size];
                at = (at + size) % 8192;
                regs.set_component(c, chunk).unwrap();
            }
            if regs.xstate_bv().intersects(MXCSR_LIVE) {
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
    read: impl Fn(Register) -> Result<Vec<u8>, AccessError>,
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
                Err(AccessError::NoComponent { component, .. }) => {
                    prop_assert!(!layout.has(component));
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
            Err(AccessError::NoComponent { component, .. }) => {
                // Refused only for a live component the destination lacks.
                prop_assert!(regs.xstate_bv().contains(component));
                prop_assert!(to.geometry(component).is_none());
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
            let held = Xfeatures::from_bits(xcomp_bv) & layout.supported();
            let xstate_bv = Xfeatures::from_bits(xstate_bv);
            let (bv, comp) = if xcomp_bv & 1 != 0 {
                (xstate_bv & held, XcompBv::compacted(held))
            } else {
                (xstate_bv & layout.xcr0_supported(), XcompBv::STANDARD)
            };
            bytes[512..520].copy_from_slice(&bv.bits().to_le_bytes());
            bytes[520..528].copy_from_slice(&comp.bits().to_le_bytes());
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
            (Register::R(16), ComponentId::APX),
            (Register::Tmm(0), ComponentId::TILEDATA),
            (Register::Bnd(0), ComponentId::MPX_BNDREGS),
            (Register::Pkru, ComponentId::PKRU),
        ] {
            if !layout.has(component) {
                let bytes = value.to_le_bytes();
                let err = view.write(reg, &bytes[..reg.width().min(16)].repeat(reg.width().div_ceil(16))[..reg.width()]);
                prop_assert!(
                    matches!(err, Err(AccessError::NoComponent { .. })),
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
        assert_eq!(view.xstate_bv(), ComponentId::SSE.bit());
        for i in (0..16).filter(|&i| i != 3) {
            assert_eq!(view.xmm(i).unwrap(), 0, "{}: xmm{i}", layout.name());
        }
        assert_eq!(view.mxcsr().unwrap(), 0x1F80);
        // x87: FCW comes up at its init value.
        view.set_st(0, [1; 10]).unwrap();
        assert_eq!(view.fcw().unwrap(), 0x037F);
        assert_eq!(view.st(1).unwrap(), [0; 10]);
        if layout.has(ComponentId::HI16_ZMM) {
            view.set_zmm(20, [1, 2, 3, 4]).unwrap();
            for i in (16..32).filter(|&i| i != 20) {
                assert_eq!(view.zmm(i).unwrap(), [0; 4], "{}: zmm{i}", layout.name());
            }
            // ZMM0-15 upper halves are still init.
            assert_eq!(view.zmm(0).unwrap(), [0; 4]);
        }
        if layout.has(ComponentId::APX) {
            view.set_r(31, 5).unwrap();
            for i in 16..31 {
                assert_eq!(view.r(i).unwrap(), 0, "r{i}");
            }
        }
        if layout.has(ComponentId::TILEDATA) {
            view.set_tmm(7, &[9; 1024]).unwrap();
            assert_eq!(view.tmm(0).unwrap(), [0; 1024]);
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
        Err(AccessError::NoComponent {
            component: ComponentId::APX,
            ..
        })
    ));
    assert!(matches!(
        v4.tmm(0),
        Err(AccessError::NoComponent {
            component: ComponentId::TILEDATA,
            ..
        })
    ));
    let vs = XsaveView::new(&buf[..], spr).unwrap();
    assert!(matches!(
        vs.bnd(0),
        Err(AccessError::NoComponent {
            component: ComponentId::MPX_BNDREGS,
            ..
        })
    ));
    assert!(matches!(vs.xmm(16), Err(AccessError::NoRegister { .. })));
    assert!(matches!(vs.r(15), Err(AccessError::NoRegister { .. })));
}

#[test]
fn headers_are_checked_against_the_layout() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut buf = vec![0u8; 4096];
    // XSTATE_BV naming AMX, which Zen 4 lacks.
    buf[512..520].copy_from_slice(&(1u64 << 18).to_le_bytes());
    assert!(matches!(
        XsaveView::new(&buf[..], zen4),
        Err(HeaderError::Unsupported { unsupported, .. }) if unsupported.bits() == 0x40000
    ));
    // Standard format with a stray XCOMP_BV bit.
    buf[512..520].fill(0);
    buf[520] = 1;
    assert!(matches!(
        XsaveView::new(&buf[..], zen4),
        Err(HeaderError::XcompBv(_))
    ));
    // Compacted, XSTATE_BV beyond XCOMP_BV.
    buf[512..520].copy_from_slice(&0x20u64.to_le_bytes());
    buf[520..528].copy_from_slice(&(0x7u64 | 1 << 63).to_le_bytes());
    assert!(matches!(
        XsaveView::new(&buf[..], zen4),
        Err(HeaderError::NotInXcompBv { missing, .. }) if missing.bits() == 0x20
    ));
    // Too small for the components XSTATE_BV names.
    buf[520..528].fill(0);
    buf[512..520].copy_from_slice(&0x80u64.to_le_bytes());
    assert!(matches!(
        XsaveView::new(&buf[..2000], zen4),
        Err(HeaderError::TooSmall { needed: 2432, .. })
    ));
    // Any alignment: a view one byte into a buffer.
    let mut shifted = vec![0u8; 4097];
    let mut view = XsaveView::new(&mut shifted[1..], zen4).unwrap();
    view.set_k(3, 0x1234).unwrap();
    assert_eq!(view.k(3).unwrap(), 0x1234);
}

// ---------------------------------------------------------------------------
// A view driven by random register writes, against the register file as the
// model: from a buffer of garbage with XSTATE_BV = 0, any sequence of writes
// and re-inits reads back exactly as the same operations on a RegisterFile.

/// Deterministic bytes from a seed (splitmix64).
fn bytes_from(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn registers() -> Vec<Register> {
    Register::all().collect()
}

#[derive(Clone, Debug)]
enum Op {
    /// Write register number `.0` of `Register::all()` with bytes from seed `.1`.
    Write(usize, u64),
    /// Put user component `.0` in its init configuration.
    Init(ComponentId),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let n = registers().len();
    prop::collection::vec(
        prop_oneof![
            4 => (0..n, any::<u64>()).prop_map(|(r, s)| Op::Write(r, s)),
            1 => (0u8..20).prop_map(|c| Op::Init(ComponentId::new(c).unwrap())),
        ],
        1..12,
    )
}

/// Why writing `reg` must fail on this view, if it must.
fn expected_write_error<B: AsRef<[u8]>>(
    view: &XsaveView<'_, B>,
    reg: Register,
) -> Option<ComponentId> {
    let layout = view.layout();
    let (pieces, n) = reg.pieces();
    pieces[..n].iter().map(|p| p.component).find(|&c| {
        layout.geometry(c).is_none()
            || (view.format() == Format::Compacted && !view.xcomp_bv().components().contains(c))
    })
}

/// Every register the layout has reads as in the model; the others are
/// `NoComponent` errors.
fn assert_reads_like<B: AsRef<[u8]>>(
    view: &XsaveView<'_, B>,
    model: &RegisterFile,
) -> Result<(), TestCaseError> {
    let layout = view.layout();
    for reg in Register::all() {
        let (pieces, n) = reg.pieces();
        let lacks = pieces[..n]
            .iter()
            .find(|p| layout.geometry(p.component).is_none());
        match (view.read(reg), lacks) {
            (Ok(v), None) => prop_assert_eq!(
                v,
                model.read(reg).unwrap(),
                "{} on {} ({:?})",
                reg,
                layout.name(),
                view.format()
            ),
            (Err(AccessError::NoComponent { component, .. }), Some(p)) => {
                prop_assert_eq!(component, p.component)
            }
            (r, _) => prop_assert!(false, "{} on {}: {:?}", reg, layout.name(), r),
        }
    }
    Ok(())
}

/// A buffer of garbage holding an all-init area: XSTATE_BV = 0; compacted
/// areas hold the components in `pick` (a random subset of the supported
/// ones, user and supervisor).
fn garbage_area(layout: &Layout, format: Format, pick: u64, seed: u64) -> (Vec<u8>, XcompBv) {
    let (len, xcomp) = match format {
        Format::Standard => (layout.standard_size(), XcompBv::STANDARD),
        Format::Compacted => {
            let held = Xfeatures::from_bits(pick) & layout.supported();
            (layout.compacted_size_for(held), XcompBv::compacted(held))
        }
    };
    let mut buf = bytes_from(seed, len as usize);
    buf[512..520].fill(0);
    buf[520..528].copy_from_slice(&xcomp.bits().to_le_bytes());
    buf[528..576].fill(0);
    (buf, xcomp)
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x005E_ED0D),
        failure_persistence: None,
        ..ProptestConfig::with_cases(160)
    })]

    #[test]
    fn writes_to_a_garbage_area_read_back_as_on_the_register_file(
        layout in prop::sample::select(wider_layouts().iter().collect::<Vec<_>>()),
        format in formats(),
        pick in any::<u64>(),
        seed in any::<u64>(),
        ops in ops(),
    ) {
        let (mut buf, _) = garbage_area(layout, format, pick, seed);
        let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
        let mut model = RegisterFile::new();
        // Garbage never shows through an init component.
        assert_reads_like(&view, &model)?;
        let regs = registers();
        for op in &ops {
            match *op {
                Op::Write(r, s) => {
                    let reg = regs[r];
                    let value = bytes_from(s, reg.width());
                    let before = view.as_bytes().to_vec();
                    match (view.write(reg, &value), expected_write_error(&view, reg)) {
                        (Ok(()), None) => model.write(reg, &value).unwrap(),
                        (Err(e), Some(c)) => {
                            match e {
                                AccessError::NoComponent { component, .. }
                                | AccessError::NotInArea(component) => prop_assert_eq!(component, c),
                                e => prop_assert!(false, "{}: {}", reg, e),
                            }
                            // A failed write leaves the buffer as it was.
                            prop_assert!(view.as_bytes() == &before[..], "{} changed the buffer", reg);
                        }
                        (r, want) => prop_assert!(false, "{}: {:?}, expected error for {:?}", reg, r, want),
                    }
                }
                Op::Init(c) => {
                    if layout.xcr0_supported().contains(c) {
                        view.set_init(c);
                        model.set_init(c);
                    }
                }
            }
            prop_assert_eq!(view.xstate_bv(), model.xstate_bv());
            assert_reads_like(&view, &model)?;
        }
        // The whole state decodes to the model, and the header is consistent.
        prop_assert_eq!(&RegisterFile::from_view(&view).unwrap(), &model);
        let reopened = XsaveView::new(view.as_bytes(), layout).unwrap();
        prop_assert_eq!(reopened.xstate_bv(), model.xstate_bv());
        prop_assert_eq!(RegisterFile::from_view(&reopened).unwrap(), model);
    }

    #[test]
    fn typed_setters_round_trip_through_both_formats(
        layout in layouts(),
        pick in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let live = Xfeatures::from_bits(pick) & layout.xcr0_supported();
        let v = bytes_from(seed, 64 * 1024);
        let u = |i: usize| u128::from_le_bytes(v[16 * i..16 * i + 16].try_into().unwrap());
        let q = |i: usize| u(i) as u64;
        let mut regs = RegisterFile::new();
        let has = |c: ComponentId| live.contains(c);
        if has(ComponentId::X87) {
            regs.set_fcw(q(0) as u16).unwrap();
            regs.set_fsw(q(1) as u16).unwrap();
            regs.set_ftw(q(2) as u8).unwrap();
            regs.set_fop(q(3) as u16 & 0x7ff).unwrap();
            regs.set_fip(q(4)).unwrap();
            regs.set_fdp(q(5)).unwrap();
            for i in 0..8 {
                regs.set_st(i, v[100 + 10 * i..110 + 10 * i].try_into().unwrap()).unwrap();
            }
        }
        if has(ComponentId::SSE) {
            regs.set_mxcsr(q(6) as u32 & layout.mxcsr_mask()).unwrap();
            for i in 0..16 {
                regs.set_xmm(i, u(10 + i)).unwrap();
            }
        }
        if has(ComponentId::AVX) {
            for i in 0..16 {
                let lo = regs.xmm(i).unwrap();
                regs.set_ymm(i, [lo, u(30 + i)]).unwrap();
            }
        }
        if has(ComponentId::MPX_BNDREGS) {
            for i in 0..4 {
                regs.set_bnd(i, u(50 + i)).unwrap();
            }
        }
        if has(ComponentId::MPX_BNDCSR) {
            regs.set_bndcfgu(q(54)).unwrap();
            regs.set_bndstatus(q(55)).unwrap();
        }
        if has(ComponentId::OPMASK) {
            for i in 0..8 {
                regs.set_k(i, q(60 + i)).unwrap();
            }
        }
        if has(ComponentId::ZMM_HI256) {
            for i in 0..16 {
                let [a, b] = regs.ymm(i).unwrap();
                regs.set_zmm(i, [a, b, u(70 + i), u(90 + i)]).unwrap();
            }
        }
        if has(ComponentId::HI16_ZMM) {
            for i in 16..32 {
                regs.set_zmm(i, [u(110 + i), u(150 + i), u(190 + i), u(230 + i)]).unwrap();
            }
        }
        if has(ComponentId::PKRU) {
            regs.set_pkru(q(300) as u32).unwrap();
        }
        if has(ComponentId::TILECFG) {
            regs.set_tilecfg(v[5000..5064].try_into().unwrap()).unwrap();
        }
        if has(ComponentId::TILEDATA) {
            for i in 0..8 {
                let start = 8192 + 1024 * i;
                regs.set_tmm(i, v[start..start + 1024].try_into().unwrap()).unwrap();
            }
        }
        if has(ComponentId::APX) {
            for i in 16..32 {
                regs.set_r(i, q(400 + i)).unwrap();
            }
        }
        // The setters made live exactly the picked components (a YMM write
        // makes SSE live too; a ZMM0-15 write SSE and AVX).
        let mut expect_live = live;
        if live.intersects(ComponentId::AVX.bit() | ComponentId::ZMM_HI256.bit()) {
            expect_live |= ComponentId::SSE.bit();
        }
        if live.contains(ComponentId::ZMM_HI256) {
            expect_live |= ComponentId::AVX.bit();
        }
        prop_assert_eq!(regs.xstate_bv(), expect_live);
        let standard = regs.encode(layout, Format::Standard).unwrap();
        let compacted = regs.encode(layout, Format::Compacted).unwrap();
        for area in [&standard, &compacted] {
            let view = XsaveView::new(&area[..], layout).unwrap();
            prop_assert_eq!(view.xstate_bv(), expect_live);
            assert_reads_like(&view, &regs)?;
            prop_assert_eq!(&RegisterFile::from_view(&view).unwrap(), &regs);
        }
        prop_assert_eq!(standard.len(), layout.standard_size() as usize);
    }

    #[test]
    fn decode_from_one_layout_encode_to_another(
        (from, regs) in layout_and_state(),
        to in layouts(),
        from_format in formats(),
        to_format in formats(),
    ) {
        let area = regs.encode(from, from_format).unwrap();
        let decoded = RegisterFile::decode(&area, from).unwrap();
        prop_assert_eq!(&decoded, &regs);
        let missing = regs.xstate_bv() - to.xcr0_supported();
        match decoded.encode(to, to_format) {
            Ok(moved) => {
                prop_assert_eq!(missing, Xfeatures::EMPTY);
                let view = XsaveView::new(&moved[..], to).unwrap();
                prop_assert_eq!(view.format(), to_format);
                prop_assert_eq!(view.xstate_bv(), regs.xstate_bv());
                // Every register the destination has reads as at the source.
                assert_reads_like(&view, &regs)?;
                prop_assert_eq!(RegisterFile::from_view(&view).unwrap(), regs);
            }
            Err(AccessError::NoComponent { component, .. }) => {
                prop_assert!(missing.contains(component), "refused {} but missing {}", component, missing);
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    #[test]
    fn truncated_and_mangled_encodings_never_panic(
        (layout, regs) in layout_and_state(),
        format in formats(),
        cut in any::<prop::sample::Index>(),
        flip_bv in any::<u64>(),
        flip_comp in any::<u64>(),
        mangle in any::<bool>(),
    ) {
        let mut area = regs.encode(layout, format).unwrap();
        if mangle {
            let bv = u64::from_le_bytes(area[512..520].try_into().unwrap()) ^ (flip_bv & flip_bv >> 7);
            let comp = u64::from_le_bytes(area[520..528].try_into().unwrap()) ^ (flip_comp & flip_comp >> 7);
            area[512..520].copy_from_slice(&bv.to_le_bytes());
            area[520..528].copy_from_slice(&comp.to_le_bytes());
        }
        let len = cut.index(area.len() + 1);
        let bytes = &area[..len];
        match XsaveView::new(bytes, layout) {
            Ok(view) => {
                for reg in Register::all() {
                    let _ = view.read(reg);
                }
                let _ = RegisterFile::from_view(&view);
                if !mangle && len >= layout.compacted_size() as usize && format == Format::Compacted {
                    prop_assert_eq!(RegisterFile::from_view(&view).unwrap(), regs.clone());
                }
            }
            Err(_) => {
                prop_assert!(mangle || len < area.len(), "the whole encoding must open");
            }
        }
        let _ = RegisterFile::decode(bytes, layout);
    }
}

#[test]
fn first_write_in_a_compacted_garbage_area_initializes_the_rest() {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    for layout in [spr, zen4] {
        let (mut buf, _) = garbage_area(layout, Format::Compacted, u64::MAX, 7);
        let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
        view.set_xmm(3, 0x1234).unwrap();
        assert_eq!(view.xstate_bv(), ComponentId::SSE.bit());
        for i in (0..16).filter(|&i| i != 3) {
            assert_eq!(view.xmm(i).unwrap(), 0, "xmm{i}");
        }
        assert_eq!(view.mxcsr().unwrap(), 0x1F80);
        assert_eq!(view.ymm(3).unwrap(), [0x1234, 0], "AVX still init");
        view.set_zmm(20, [1, 2, 3, 4]).unwrap();
        for i in (16..32).filter(|&i| i != 20) {
            assert_eq!(view.zmm(i).unwrap(), [0; 4], "zmm{i}");
        }
        assert_eq!(view.zmm(20).unwrap(), [1, 2, 3, 4]);
        // The bytes behind the view agree: the rest of Hi16_ZMM is zeroed.
        let at = layout
            .compacted_offset(view.xcomp_bv().components(), ComponentId::HI16_ZMM)
            .unwrap() as usize;
        let hi16 = &view.as_bytes()[at..at + 1024];
        assert!(hi16[..256].iter().all(|&b| b == 0));
        assert!(hi16[320..].iter().all(|&b| b == 0));
    }
    // Registers a layout lacks: errors, in both formats, buffer untouched.
    for (layout, reg) in [
        (zen4, Register::R(16)),
        (zen4, Register::Tmm(0)),
        (zen4, Register::Tilecfg),
        (zen4, Register::Bnd(0)),
        (spr, Register::Bnd(0)),
        (spr, Register::Bndcfgu),
        (spr, Register::R(31)),
    ] {
        for format in [Format::Standard, Format::Compacted] {
            let (mut buf, _) = garbage_area(layout, format, u64::MAX, 9);
            let before = buf.clone();
            let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
            let err = view.write(reg, &vec![0xEE; reg.width()]).unwrap_err();
            assert!(
                matches!(err, AccessError::NoComponent { .. }),
                "{reg} on {}: {err}",
                layout.name()
            );
            assert!(view.read(reg).is_err());
            assert_eq!(view.xstate_bv(), Xfeatures::EMPTY);
            assert_eq!(buf, before, "{reg} on {} {format:?}", layout.name());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_5EED),
        failure_persistence: None,
        ..ProptestConfig::with_cases(96)
    })]

    #[test]
    fn a_reused_register_file_reads_like_a_fresh_one(
        (layout, first) in layout_and_state(),
        second_pick in any::<u64>(),
        second_seed in any::<u64>(),
        format in formats(),
    ) {
        // A second state for the same layout, built by register writes.
        let mut second = RegisterFile::new();
        for (n, reg) in Register::all().enumerate() {
            let (pieces, count) = reg.pieces();
            let ok = pieces[..count]
                .iter()
                .all(|p| (layout.xcr0_supported() & Xfeatures::from_bits(second_pick)).contains(p.component));
            if ok && n % 3 == (second_seed % 3) as usize {
                second.write(reg, &bytes_from(second_seed ^ n as u64, reg.width())).unwrap();
            }
        }
        let a = first.encode(layout, format).unwrap();
        let b = second.encode(layout, format).unwrap();
        let mut reused = RegisterFile::decode(&a, layout).unwrap();
        reused.read_from(&XsaveView::new(&b[..], layout).unwrap()).unwrap();
        prop_assert_eq!(&reused, &RegisterFile::decode(&b, layout).unwrap());
        prop_assert_eq!(&reused, &second);
    }

    #[test]
    fn register_fast_paths_give_the_general_paths_bytes(
        (layout, regs) in layout_and_state(),
        compacted in any::<bool>(),
        cut in 0usize..64,
    ) {
        let format = if compacted { Format::Compacted } else { Format::Standard };
        let area = regs.encode(layout, format).unwrap();
        // Also an area cut short where the opener still takes it.
        let short = &area[..area.len().saturating_sub(cut)];
        for bytes in [&area[..], short] {
            let Ok(view) = XsaveView::new(bytes, layout) else { continue };
            for i in 0..40 {
                let general = |reg: Option<Register>| reg.map(|r| view.read(r));
                let fast = view.xmm(i).map(|v| v.to_le_bytes().to_vec());
                let slow = general(u8::try_from(i).ok().map(Register::Xmm)).unwrap_or_else(|| view.read(Register::Xmm(255)));
                prop_assert_eq!(fast.ok(), slow.ok(), "xmm{}", i);
                let fast = view.ymm(i).map(|v| v.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<u8>>());
                let slow = general(u8::try_from(i).ok().map(Register::Ymm)).unwrap_or_else(|| view.read(Register::Ymm(255)));
                prop_assert_eq!(fast.ok(), slow.ok(), "ymm{}", i);
                let fast = view.zmm(i).map(|v| v.iter().flat_map(|l| l.to_le_bytes()).collect::<Vec<u8>>());
                let slow = general(u8::try_from(i).ok().map(Register::Zmm)).unwrap_or_else(|| view.read(Register::Zmm(255)));
                prop_assert_eq!(fast.ok(), slow.ok(), "zmm{}", i);
                let fast = view.r(i).map(|v| v.to_le_bytes().to_vec());
                let slow = general(u8::try_from(i).ok().map(Register::R)).unwrap_or_else(|| view.read(Register::R(255)));
                prop_assert_eq!(fast.ok(), slow.ok(), "r{}", i);
            }
        }
    }

    #[test]
    fn copying_every_live_component_copies_the_state((_layout, regs) in layout_and_state()) {
        let mut copy = RegisterFile::new();
        for c in regs.xstate_bv() {
            copy.set_component(c, regs.component(c).unwrap()).unwrap();
        }
        prop_assert_eq!(copy.xstate_bv(), regs.xstate_bv());
        prop_assert_eq!(copy.mxcsr().unwrap(), regs.mxcsr().unwrap());
        prop_assert_eq!(&copy, &regs);
    }
}

#[test]
fn view_components_are_the_register_file_components() {
    // For every live component the view's bytes are the register file's:
    // for x87 and SSE that is the 512-byte legacy region (or an error),
    // never a slice of it at the wrong place.
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_xmm(0, 0x1111).unwrap();
    regs.set_fcw(0x1234).unwrap();
    regs.set_k(1, 7).unwrap();
    for format in [Format::Standard, Format::Compacted] {
        let area = regs.encode(zen4, format).unwrap();
        let view = XsaveView::new(&area[..], zen4).unwrap();
        for c in regs.xstate_bv() {
            match view.component(c) {
                Ok(Some(bytes)) => {
                    let mut want = regs.component(c).unwrap().to_vec();
                    // MXCSR_MASK (bytes 28..32) is the CPU's, not the
                    // state's: the area carries the layout's.
                    if c.is_legacy() {
                        want[28..32].copy_from_slice(&zen4.mxcsr_mask().to_le_bytes());
                    }
                    assert!(
                        bytes == want,
                        "{c} ({format:?}): the view gives {} bytes, the register file {}",
                        bytes.len(),
                        want.len()
                    );
                }
                Ok(None) => panic!("{c} is live"),
                Err(e) => assert!(c.is_legacy(), "{c}: {e}"),
            }
        }
    }
}

/// The catalog plus the made-up fixture CPUs: TILECFG without TILEDATA,
/// APX on a client, an unknown component 21.
fn wider_layouts() -> &'static [Layout] {
    static WIDER: std::sync::OnceLock<Vec<Layout>> = std::sync::OnceLock::new();
    WIDER.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let mut all = catalog::all().to_vec();
        for f in [
            "made-up-two-cpus-instlat.txt",
            "made-up-apx-instlat.txt",
            "unknown-component-cpuid-r.txt",
        ] {
            let text = std::fs::read_to_string(format!("{dir}{f}")).unwrap();
            all.push(Layout::from_dump(f, &text).unwrap());
        }
        all
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0051_7E55),
        failure_persistence: None,
        ..ProptestConfig::with_cases(192)
    })]

    #[test]
    fn supervisor_and_unknown_components_travel_in_the_compacted_format(
        which in 0..wider_layouts().len(),
        pick in any::<u64>(),
        seed in any::<u64>(),
    ) {
        let layout = &wider_layouts()[which];
        let mut regs = RegisterFile::new();
        for c in layout.supported() & Xfeatures::from_bits(pick) {
            let size = common::component_size(layout, c);
            regs.set_component(c, &bytes_from(seed ^ u64::from(c.index()), size)).unwrap();
        }
        if regs.xstate_bv().intersects(MXCSR_LIVE) {
            regs.set_mxcsr(seed as u32 & layout.mxcsr_mask()).unwrap();
        }
        let compacted = regs.encode(layout, Format::Compacted).unwrap();
        let view = XsaveView::new(&compacted[..], layout).unwrap();
        prop_assert_eq!(view.xstate_bv(), regs.xstate_bv());
        assert_reads_like(&view, &regs)?;
        prop_assert_eq!(&RegisterFile::from_view(&view).unwrap(), &regs);
        // The standard format has no room for supervisor components.
        let supervisor = regs.xstate_bv() & layout.xss_supported();
        match regs.encode(layout, Format::Standard) {
            Ok(standard) => {
                prop_assert_eq!(supervisor, Xfeatures::EMPTY);
                prop_assert_eq!(&RegisterFile::decode(&standard, layout).unwrap(), &regs);
                prop_assert_eq!(standard.len(), layout.standard_size() as usize);
            }
            Err(AccessError::NotInArea(component)) => {
                prop_assert!(supervisor.contains(component), "refused {}", component);
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
        // Compacted with exactly the live components (XSAVEC's init
        // optimisation aside): still the same state.
        let held = regs.xstate_bv() | Xfeatures::LEGACY;
        let mut tight = vec![0u8; layout.compacted_size_for(held) as usize];
        regs.encode_into(&mut tight, layout, XcompBv::compacted(held)).unwrap();
        prop_assert_eq!(&RegisterFile::decode(&tight, layout).unwrap(), &regs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x00E1_C0DE),
        failure_persistence: None,
        ..ProptestConfig::with_cases(192)
    })]

    #[test]
    fn encode_into_any_buffer_fits_or_changes_nothing(
        (layout, regs) in layout_and_state(),
        format in formats(),
        xcomp_pick in any::<u64>(),
        extra in any::<prop::sample::Index>(),
        fill in any::<u8>(),
    ) {
        // A compacted area must hold every live component, x87 and SSE too.
        let live = regs.xstate_bv();
        let (xcomp, needed) = match format {
            Format::Standard => (XcompBv::STANDARD, layout.standard_size_for(live)),
            Format::Compacted => {
                let x = Xfeatures::from_bits(xcomp_pick) & layout.supported();
                (XcompBv::compacted(x), layout.compacted_size_for(x))
            }
        };
        // Lengths around what the components need, and up to a KVM-sized page.
        let len = 576 + extra.index(layout.standard_size().max(4096) as usize - 576 + 64);
        let mut buf = vec![fill; len];
        let before = buf.clone();
        let fits = len >= needed as usize
            && (format == Format::Standard || xcomp.components().contains_all(live));
        match regs.encode_into(&mut buf, layout, xcomp) {
            Ok(()) => {
                prop_assert!(fits, "encoded {} bytes, needed {}", len, needed);
                let view = XsaveView::new(&buf[..], layout).unwrap();
                prop_assert_eq!(view.format(), format);
                prop_assert_eq!(RegisterFile::from_view(&view).unwrap(), regs);
            }
            Err(e) => {
                prop_assert!(!fits, "refused a buffer that fits: {}", e);
                prop_assert!(buf == before, "a refused encode changed the buffer ({})", e);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_91A7),
        failure_persistence: None,
        ..ProptestConfig::with_cases(128)
    })]

    /// The planned encode (one walk, every check first) writes the bytes
    /// the component-by-component path writes (a view over the same
    /// destination, `write_to`, the pinned components made live, the
    /// destination's MXCSR_MASK), and fails alike, changing nothing.
    #[test]
    fn planned_encode_writes_the_component_paths_bytes(
        (layout, regs) in layout_and_state(),
        format in formats(),
        pick in any::<u64>(),
        pin in any::<u64>(),
        seed in any::<u64>(),
    ) {
        // Half the compacted areas hold every live component.
        let pick = if pick & 1 == 1 { pick | regs.xstate_bv().bits() } else { pick };
        let (garbage, xcomp) = garbage_area(layout, format, pick, seed);
        let pin = Xfeatures::from_bits(pin);
        let mut fast = garbage.clone();
        let got = regs.encode_into_pinned(&mut fast, layout, xcomp, pin);
        let mut slow = garbage.clone();
        let want = XsaveView::new(&mut slow[..], layout)
            .map_err(AccessError::from)
            .and_then(|mut view| {
                let pin = (pin & layout.supported()).extended() - regs.xstate_bv();
                for c in pin {
                    view.component_offset(c)?;
                }
                regs.write_to(&mut view)?;
                pin.iter().try_for_each(|c| view.make_live(c))
            });
        match &want {
            Ok(()) => {
                slow[28..32].copy_from_slice(&layout.mxcsr_mask().to_le_bytes());
                slow[416..512].fill(0);
            }
            Err(_) => slow.copy_from_slice(&garbage),
        }
        prop_assert_eq!(got.is_ok(), want.is_ok(), "{:?} against {:?}", got, want);
        prop_assert_eq!(&fast, &slow);
        if got.is_err() {
            prop_assert_eq!(&fast, &garbage);
        }
    }

    /// The planned decode (one walk into the slots, reusing a file that
    /// held another state) gives each component the view's bytes.
    #[test]
    fn planned_decode_reads_the_component_paths_bytes(
        (layout, regs) in layout_and_state(),
        (_, before) in layout_and_state(),
        format in formats(),
    ) {
        let area = regs.encode(layout, format).unwrap();
        let view = XsaveView::new(&area[..], layout).unwrap();
        let mut fast = before.clone();
        fast.read_from(&view).unwrap();
        for c in view.xstate_bv().extended() {
            let mut want = view.component(c).unwrap().unwrap().to_vec();
            want[c.reserved_bytes()].fill(0);
            prop_assert_eq!(fast.component(c), Some(&want[..]), "{}", c);
        }
        for c in fast.xstate_bv().extended() {
            prop_assert!(view.is_live(c), "{} live only in the file", c);
        }
        prop_assert_eq!(fast.mxcsr().unwrap(), view.mxcsr().unwrap());
        prop_assert_eq!(&fast, &regs);
    }
}
