//! Hostile core files and software bytes never panic; what xstate writes
//! for the kernel passes its own checks.

mod common;

use common::{elf_core, elf_note as note};
use proptest::prelude::*;
use xstate::artifact::core::{Core, NT_X86_XSAVE_LAYOUT, NT_X86_XSTATE};
use xstate::artifact::{notes, ptrace, sigframe, swbytes};
use xstate::layout::catalog;
use xstate::{Xfeatures, XsaveView};

/// A valid x86_64 core of one thread with Zen 4 notes.
fn seed_core() -> Vec<u8> {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let area = vec![0u8; 576];
    let x = notes::xstate_descriptor(&area, zen4, zen4, zen4.xcr0_supported()).unwrap();
    let l = notes::layout_descriptor(zen4, zen4.xcr0_supported());
    let mut body = note("CORE", 1, &[0u8; 336]);
    body.extend(note("LINUX", NT_X86_XSTATE, &x));
    body.extend(note("LINUX", NT_X86_XSAVE_LAYOUT, &l));
    elf_core(&body)
}

#[test]
fn the_seed_core_reads() {
    let core = Core::parse(&seed_core()).unwrap();
    assert_eq!(core.threads().len(), 1);
    let layout = core.layout("seed").unwrap().unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    for g in zen4.components().filter(|g| !g.supervisor) {
        assert_eq!(layout.offset(g.id), Some(g.offset));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xC0FE),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_cores_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16), cut in any::<prop::sample::Index>()) {
        let mut bytes = seed_core();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let len = cut.index(bytes.len() + 1);
        if let Ok(core) = Core::parse(&bytes[..len.max(bytes.len() / 2)]) {
            let _ = core.layout("fuzz");
            for t in core.threads() {
                if let Some(x) = &t.xstate {
                    for l in catalog::all() {
                        let _ = XsaveView::new(&x[..], l);
                    }
                }
            }
        }
    }

    #[test]
    fn software_bytes_of_any_area_never_panic(area in prop::collection::vec(any::<u8>(), 0..3000), magic in any::<bool>()) {
        let mut area = area;
        if magic && area.len() >= 484 {
            area[464..468].copy_from_slice(&swbytes::FP_XSTATE_MAGIC1.to_le_bytes());
        }
        for l in catalog::all() {
            let _ = swbytes::check(&area, l);
            let _ = XsaveView::new(&area[..], l);
        }
    }

    /// Every artifact xstate writes passes its own checks in its layout.
    #[test]
    fn written_artifacts_pass_the_checks(pick in any::<prop::sample::Index>(), drop in any::<u64>()) {
        let layouts = catalog::all();
        let to = &layouts[pick.index(layouts.len())];
        // An XCR0 the layout has: some extended components dropped.
        let xcr0 = Xfeatures::from_bits(to.xcr0_supported().bits() & !(drop & !3));
        let area = vec![0u8; 576];
        let p = ptrace::setregset_buffer(&area, to, to, xcr0).unwrap();
        prop_assert_eq!(p.len(), to.standard_size_for(xcr0) as usize);
        prop_assert!(swbytes::check(&p, to).unwrap().is_some());
        prop_assert!(XsaveView::new(&p[..], to).is_ok());
        let f = sigframe::frame(&area, to, to, xcr0).unwrap();
        prop_assert!(swbytes::check(&f, to).unwrap().is_some());
        prop_assert!(XsaveView::new(&f[..], to).is_ok());
    }
}
