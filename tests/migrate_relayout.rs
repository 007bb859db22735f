//! Relayout between every pair of catalog layouts, in both formats.

mod common;

use std::borrow::Cow;

use zerocopy::IntoBytes;

use proptest::prelude::*;
use xstate::area::TileConfig;
use xstate::layout::catalog;
use xstate::migrate::{relayout, MigrateError, RelayoutOptions};
use xstate::prelude::*;
use xstate::{ComponentId, Format, Layout, RegisterFile, Xfeatures};

fn pairs() -> impl Strategy<Value = (&'static Layout, &'static Layout)> {
    let all: Vec<&'static Layout> = catalog::all().iter().collect();
    (prop::sample::select(all.clone()), prop::sample::select(all))
}

fn formats() -> impl Strategy<Value = Format> {
    prop::sample::select(vec![Format::Standard, Format::Compacted])
}

/// A state whose live components are a random subset of `layout`'s user
/// components, filled from `bytes`.
fn state(layout: &Layout, pick: Xfeatures, bytes: &[u8]) -> RegisterFile {
    let mut regs = RegisterFile::new();
    for (n, c) in (layout.xcr0_supported() & pick).iter().enumerate() {
        let size = common::component_size(layout, c);
        let chunk: Vec<u8> = (0..size)
            .map(|b| bytes[(b + 97 * n) % bytes.len()])
            .collect();
        regs.set_component(c, &chunk).unwrap();
    }
    // A live TILECFG is one LDTILECFG accepts: random rows and widths.
    if regs.is_live(ComponentId::TILECFG) {
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
        regs.set_mxcsr(0x1F80 | (u32::from(bytes[0]) & 0x3F))
            .unwrap();
    }
    regs
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x4E1A_7007),
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    })]

    #[test]
    fn relayout_and_back_is_the_identity_on_shared_components(
        (a, b) in pairs(),
        pick in any::<u64>(),
        bytes in prop::collection::vec(any::<u8>(), 64..512),
        fa in formats(),
        fb in formats(),
    ) {
        // Only components both layouts have are live.
        let shared = a.xcr0_supported() & b.xcr0_supported();
        let regs = state(a, Xfeatures::from_bits(pick) & shared, &bytes);
        let src = regs.encode(a, fa).unwrap();
        let opts = RelayoutOptions { format: fb, drop_init: true, ..Default::default() };
        let there = relayout(&src, a, b, opts).unwrap();
        prop_assert_eq!(RegisterFile::decode(&there, b).unwrap(), regs.clone());
        let back = relayout(&there, b, a, RelayoutOptions { format: fa, drop_init: true, ..Default::default() }).unwrap();
        prop_assert_eq!(RegisterFile::decode(&back, a).unwrap(), regs);
    }

    #[test]
    fn live_components_without_a_home_are_refused_by_name(
        (a, b) in pairs(),
        pick in any::<u64>(),
        bytes in prop::collection::vec(any::<u8>(), 64..512),
        drop_init in any::<bool>(),
    ) {
        let regs = state(a, Xfeatures::from_bits(pick), &bytes);
        let src = regs.encode(a, Format::Standard).unwrap();
        let homeless_live = regs.xstate_bv() - b.supported();
        let homeless_init = a.xcr0_supported() - b.supported() - regs.xstate_bv();
        match relayout(&src, a, b, RelayoutOptions { format: Format::Standard, drop_init, ..Default::default() }) {
            Ok(out) => {
                prop_assert_eq!(homeless_live, Xfeatures::EMPTY);
                prop_assert!(drop_init || homeless_init.is_empty());
                // Init components never come out live.
                let moved = RegisterFile::decode(&out, b).unwrap();
                prop_assert_eq!(moved.xstate_bv(), regs.xstate_bv());
            }
            Err(MigrateError::LiveWithoutHome { component, .. }) => {
                prop_assert!(homeless_live.contains(component));
            }
            Err(MigrateError::InitWithoutHome { component, .. }) => {
                prop_assert!(!drop_init && homeless_init.contains(component));
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }
}

#[test]
fn named_cases_from_the_field() {
    let get = |n| catalog::get(n).unwrap();
    let (zen4, spr, dmr, skx) = (
        get("amd-zen4"),
        get("intel-sapphire-rapids"),
        get("intel-diamond-rapids"),
        get("intel-skylake-sp"),
    );
    // Live APX to a host without APX.
    let mut apx = RegisterFile::new();
    apx.set_r(20, 1).unwrap();
    let src = apx.encode(dmr, Format::Standard).unwrap();
    let err = relayout(
        &src,
        dmr,
        spr,
        RelayoutOptions {
            drop_init: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "APX (component 19) is live but intel-sapphire-rapids has no place for it"
    );
    // Live AMX tiles to a host without AMX.
    let mut tiles = RegisterFile::new();
    tiles.set_tmm(2, &[7; 1024]).unwrap();
    let src = tiles.encode(spr, Format::Compacted).unwrap();
    let err = relayout(
        &src,
        spr,
        zen4,
        RelayoutOptions {
            drop_init: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::LiveWithoutHome {
                component: ComponentId::TILEDATA,
                ..
            }
        ),
        "{err}"
    );
    // MPX state to an APX host.
    let mut mpx = RegisterFile::new();
    mpx.set_bndcfgu(0x1001).unwrap();
    let src = mpx.encode(skx, Format::Standard).unwrap();
    let err = relayout(
        &src,
        skx,
        dmr,
        RelayoutOptions {
            drop_init: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::LiveWithoutHome {
                component: ComponentId::MPX_BNDCSR,
                ..
            }
        ),
        "{err}"
    );
    // Init AMX: refused unless dropped explicitly.
    let plain = RegisterFile::new().encode(spr, Format::Standard).unwrap();
    let err = relayout(&plain, spr, zen4, RelayoutOptions::default()).unwrap_err();
    assert!(matches!(err, MigrateError::InitWithoutHome { .. }), "{err}");
    let ok = relayout(
        &plain,
        spr,
        zen4,
        RelayoutOptions {
            drop_init: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ok.len(), zen4.standard_size() as usize);
    // Same layout and format: no copy.
    let area = apx.encode(dmr, Format::Standard).unwrap();
    assert!(matches!(
        relayout(&area, dmr, dmr, RelayoutOptions::default()).unwrap(),
        Cow::Borrowed(_)
    ));
    // A TILECFG LDTILECFG refuses is refused before XRSTOR sees it, even
    // between identical layouts.
    let mut bad = RegisterFile::new();
    let mut cfg = [0u8; 64];
    cfg[0] = 2;
    bad.set_component(ComponentId::TILECFG, &cfg).unwrap();
    let area = bad.encode(spr, Format::Standard).unwrap();
    let err = relayout(&area, spr, spr, RelayoutOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "XRSTOR would fault: TILECFG palette 2 is not supported (0 or 1)"
    );
}
