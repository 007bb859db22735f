//! Hostile input for the fast paths: relayout into a caller's buffer, the
//! planned decode and encode, the stream straight from and into views, and
//! the views' register reads. Each fast path must give the general path's
//! bytes and errors, change nothing on error, and never emit an area that
//! a consumer (XRSTOR, KVM_SET_XSAVE) faults on.

use std::borrow::Cow;

use proptest::prelude::*;

use xstate::layout::catalog;
use xstate::migrate::{relayout, relayout_for, relayout_into, Guest, RelayoutOptions};
use xstate::prelude::*;
use xstate::{ComponentId, Format, Layout, RegisterFile, Xfeatures, XsaveView};

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
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x4057_11E),
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
    ) {
        let src = hostile_area(a, seed, bv, comp, compacted, cut, b.mxcsr_mask());
        let options = RelayoutOptions {
            format: if to_compacted { Format::Compacted } else { Format::Standard },
            drop_init,
            mask_mxcsr,
        };
        let guest = Guest::default();
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
