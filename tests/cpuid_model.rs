//! The CPUID model against real CPUID dumps, and against hostile input.
//!
//! The dumps live in `../shared/cpuid/` (InstLatx64 and `cpuid -r` text).
//! Without that directory the fixture tests print a SKIPPED line, or fail
//! when `XSTATE_REQUIRE_FIXTURES=1`.

mod common;

use proptest::prelude::*;
use xstate::cpuid::features::{self, GROUPS};
use xstate::cpuid::xcr0;
use xstate::cpuid::{check, CpuidRegs, CpuidSet, CpuidSetError, Reg, MAX_ENTRIES};
use xstate::layout::CpuidLeaf0xD;
use xstate::{ComponentId, Xfeatures};

/// Every dump as (file name, text), sorted by name; None (after printing
/// why) when the directory is missing and fixtures are not required.
fn dumps() -> Option<Vec<(String, String)>> {
    let dir = common::shared_cpuid_dir("cpuid_model fixtures")?;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("readable dump directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "txt") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("readable dump");
            out.push((name, text));
        }
    }
    assert!(!out.is_empty(), "no .txt dump in {}", dir.display());
    out.sort();
    Some(out)
}

fn parsed() -> Option<Vec<(String, CpuidSet)>> {
    Some(
        dumps()?
            .into_iter()
            .map(|(name, text)| {
                let set = CpuidSet::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                (name, set)
            })
            .collect(),
    )
}

#[test]
fn real_dumps_parse_and_agree_with_the_leaf_0xd_parser() {
    let Some(dumps) = dumps() else { return };
    assert!(dumps.len() >= 7, "{} dumps", dumps.len());
    for (name, text) in &dumps {
        let set = CpuidSet::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let leaf = CpuidLeaf0xD::from_dump(text).unwrap();
        assert_eq!(set.vendor(), leaf.vendor, "{name}");
        assert_eq!(set.xcr0_supported(), leaf.xcr0_supported(), "{name}");
        assert_eq!(set.xss_supported(), leaf.xss_supported(), "{name}");
        for (sub, regs) in &leaf.subleaves {
            assert_eq!(set.get(0xd, *sub), Some(*regs), "{name} 0xD.{sub}");
        }
        assert!(set.len() > 30, "{name}: {} entries", set.len());
        assert!(set.is_indexed(7) && set.is_indexed(0xd), "{name}");
        assert!(!set.is_indexed(1), "{name}");
        let format_parser = if text.contains("CPUID 00000000:") {
            CpuidSet::from_instlatx64(text)
        } else {
            CpuidSet::from_cpuid_raw(text)
        };
        assert_eq!(format_parser.as_ref(), Ok(&set), "{name}");
    }
}

#[test]
fn real_dumps_are_consistent() {
    let Some(sets) = parsed() else { return };
    for (name, set) in &sets {
        let found = check(set);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(found.is_empty(), "{name}: {text:#?}");
    }
}

#[test]
fn cpuid_raw_text_round_trips() {
    let Some(dumps) = dumps() else { return };
    for (name, text) in &dumps {
        let set = CpuidSet::parse(text).unwrap();
        let written = set.to_cpuid_raw();
        let again = CpuidSet::from_cpuid_raw(&written).unwrap();
        let entries: Vec<_> = set.iter().collect();
        assert_eq!(again.iter().collect::<Vec<_>>(), entries, "{name}");
        assert_eq!(again.to_cpuid_raw(), written, "{name}");
        if !text.contains("CPUID 00000000:") {
            // From cpuid -r text, nothing is lost, the indexed marks included.
            assert_eq!(again, set, "{name}");
        }
    }
}

#[test]
fn kvm_json_round_trips_both_ways() {
    let Some(sets) = parsed() else { return };
    for (name, set) in &sets {
        let json = set.to_kvm_json();
        let again = CpuidSet::from_kvm_json(&json).unwrap();
        assert_eq!(&again, set, "{name}");
        assert_eq!(again.to_kvm_json(), json, "{name}");
        // Also wrapped the way `struct kvm_cpuid2` is.
        let wrapped = format!("{{\"nent\": {}, \"entries\": {json}}}", set.len());
        assert_eq!(&CpuidSet::parse(&wrapped).unwrap(), set, "{name}");
    }
}

#[test]
fn sapphire_rapids_without_avx512() {
    let Some(sets) = parsed() else { return };
    let (_, spr) = sets
        .iter()
        .find(|(n, _)| n.contains("SapphireRapids"))
        .expect("the Sapphire Rapids dump");
    let mut set = spr.clone();
    assert!(set.has_feature(features::AVX512F));
    // The dump predates AVX10; give it a leaf 0x24 to see it go.
    set.set(
        0x24,
        0,
        CpuidRegs {
            eax: 0,
            ebx: 0x7_0001,
            ecx: 0,
            edx: 0,
        },
    )
    .unwrap();
    let plan = features::apply(&mut set, ComponentId::OPMASK.bit()).unwrap();
    assert_eq!(plan.excluded.bits(), 0xe0);

    let avx512 = GROUPS.iter().find(|g| g.name == "AVX-512").unwrap();
    for &bit in avx512.features {
        assert!(!set.has_feature(bit), "{bit} still set");
    }
    assert_eq!(set.get(0x24, 0), None);
    for sub in 5..=7 {
        assert_eq!(set.entry(0xd, sub), None);
    }
    assert_eq!(set.xcr0_supported().bits(), 0x60207);
    // Everything else is untouched: AVX, AVX2, AMX, PKU...
    for g in GROUPS.iter().filter(|g| g.name != "AVX-512") {
        for &bit in g.features {
            assert_eq!(set.has_feature(bit), spr.has_feature(bit), "{bit}");
        }
    }
    // Only the masked registers and the dropped entries changed.
    let touched = |leaf: u32, sub: u32| {
        plan.masks
            .iter()
            .any(|m| (m.leaf, m.subleaf) == (leaf, sub))
            || plan.drop_subleaves.contains(&(leaf, sub))
            || leaf == 0xd && sub <= 1
    };
    for (leaf, sub, regs) in spr.iter().filter(|&(l, s, _)| !touched(l, s)) {
        assert_eq!(set.entry(leaf, sub), Some(regs), "{leaf:#x}.{sub}");
    }
    // Sizes follow: AMX still ends at 0x2b00; compacted without AVX-512.
    assert_eq!(set.get(0xd, 0).unwrap().ecx, 0x2b00);
    assert_eq!(check(&set), vec![]);
}

#[test]
fn taking_any_group_out_of_any_dump_stays_consistent() {
    let Some(sets) = parsed() else { return };
    for (name, set) in &sets {
        for g in GROUPS {
            let mut masked = set.clone();
            let plan = features::apply(&mut masked, g.components).unwrap();
            for gone in GROUPS
                .iter()
                .filter(|h| h.components.intersects(plan.excluded))
            {
                for &bit in gone.features {
                    assert!(!masked.has_feature(bit), "{name} without {}: {bit}", g.name);
                }
            }
            assert!(!masked.xcr0_supported().intersects(plan.excluded));
            assert!(!masked.xss_supported().intersects(plan.excluded));
            let found: Vec<String> = check(&masked).iter().map(ToString::to_string).collect();
            assert!(found.is_empty(), "{name} without {}: {found:#?}", g.name);
        }
    }
}

#[test]
fn clearing_the_flags_that_make_a_component_usable_is_caught_in_every_dump() {
    let Some(sets) = parsed() else { return };
    let mut caught = 0;
    for (name, set) in &sets {
        let supported = set.xcr0_supported() | set.xss_supported();
        for g in GROUPS.iter().filter(|g| supported.intersects(g.components)) {
            let mut cut = set.clone();
            for b in g.enabled_by {
                let mut regs = cut.entry(b.leaf, b.subleaf).unwrap();
                *b.register.slot(&mut regs) &= !b.mask();
                cut.set(b.leaf, b.subleaf, regs).unwrap();
            }
            let found: Vec<String> = check(&cut).iter().map(ToString::to_string).collect();
            let want = format!("{} components {}", g.name, g.components & supported);
            assert!(
                found
                    .iter()
                    .any(|f| f.starts_with(&want) && f.ends_with("no OS enables them")),
                "{name} without {}: {found:#?}",
                g.name
            );
            caught += 1;
        }
        // IA32_XSS without XSAVES.
        if !set.xss_supported().is_empty() {
            let mut cut = set.clone();
            let mut regs = cut.entry(0xd, 1).unwrap();
            regs.eax &= !features::XSAVES.mask();
            cut.set(0xd, 1, regs).unwrap();
            let found: Vec<String> = check(&cut).iter().map(ToString::to_string).collect();
            assert!(
                found.iter().any(|f| f.contains("but XSAVES is clear")),
                "{name}: {found:#?}"
            );
        }
    }
    assert!(caught >= 20, "{caught}");
}

#[test]
fn huge_inputs_are_refused_quickly() {
    // 10 MB of garbage in one line and in many lines.
    let garbage = "z".repeat(10 << 20);
    assert_eq!(CpuidSet::parse(&garbage), Err(CpuidSetError::NotADump));
    let lines = "not a cpuid line\n".repeat((10 << 20) / 17);
    assert_eq!(CpuidSet::parse(&lines), Err(CpuidSetError::NotADump));
    // 10 MB of the same valid line: refused at the second.
    let same = "   0x00000001 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n".repeat(200_000);
    assert!(matches!(
        CpuidSet::parse(&same),
        Err(CpuidSetError::Duplicate { .. })
    ));
    // More distinct leaves than a set holds.
    let mut distinct = String::new();
    for leaf in 0..200_000u32 {
        distinct.push_str(&format!(
            "CPUID {leaf:08X}: 00000000-00000000-00000000-00000000\n"
        ));
    }
    assert!(matches!(
        CpuidSet::parse(&distinct),
        Err(CpuidSetError::TooManyEntries {
            max: MAX_ENTRIES,
            ..
        })
    ));
    // A number with ten million digits, and JSON nested past the parser's limit.
    let digits = format!("[{{\"function\": \"0x{}\"}}]", "f".repeat(10 << 20));
    assert!(matches!(
        CpuidSet::parse(&digits),
        Err(CpuidSetError::Field {
            field: "function",
            ..
        })
    ));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        CpuidSet::parse(&deep),
        Err(CpuidSetError::Json { .. })
    ));
}

/// Lines that look like CPUID lines of either text format, with garbage in
/// every field.
fn line_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "   0x[0-9a-f]{8} 0x[0-9a-f]{2}: eax=0x[0-9a-f]{8} ebx=0x[0-9a-f]{8} ecx=0x[0-9a-f]{8} edx=0x[0-9a-f]{8}",
        "CPUID [0-9A-F]{8}: [0-9A-F]{8}-[0-9A-F]{8}-[0-9A-F]{8}-[0-9A-F]{8}( \\[SL [0-9A-F]{2}\\])?",
        "[ ]{0,4}0x[0-9a-fA-F]{0,10} 0x[0-9a-f]{0,4}:?( [a-e]{0,3}x?=?0x[0-9a-fz]{0,9}){0,5}",
        "CPUID [0-9A-Fa-f]{0,10}:? ?[0-9A-F-]{0,40}( \\[SL [0-9A-Fz]{0,3}\\]?)?",
        "CPU ?[0-9]?:?",
        ".{0,40}",
    ]
}

fn cpuid_regs() -> impl Strategy<Value = CpuidRegs> {
    (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>())
        .prop_map(|(eax, ebx, ecx, edx)| CpuidRegs { eax, ebx, ecx, edx })
}

/// A CPUID with random registers in the leaves the model reads, leaf 0xD
/// sub-leaves included; the geometry is sometimes sane, mostly not.
fn hostile_set() -> impl Strategy<Value = CpuidSet> {
    let leaves = prop::collection::vec(
        (
            prop_oneof![
                Just(1u32),
                Just(7),
                Just(0xd),
                Just(0x12),
                Just(0x1d),
                any::<u32>()
            ],
            prop_oneof![0u32..24, any::<u32>()],
            cpuid_regs(),
        ),
        0..40,
    );
    let xcr0 = prop_oneof![Just(0x602e7u64), Just(0x2ffu64), any::<u64>()];
    (leaves, xcr0, any::<u64>()).prop_map(|(leaves, xcr0, xss)| {
        let mut set = CpuidSet::new();
        set.set(
            0xd,
            0,
            CpuidRegs {
                eax: xcr0 as u32,
                ebx: 0x2b00,
                ecx: 0x2b00,
                edx: (xcr0 >> 32) as u32,
            },
        )
        .unwrap();
        set.set(
            0xd,
            1,
            CpuidRegs {
                eax: 0x1f,
                ebx: 0x2a00,
                ecx: xss as u32,
                edx: (xss >> 32) as u32,
            },
        )
        .unwrap();
        for (leaf, sub, regs) in leaves {
            set.set(leaf, sub, regs).unwrap();
        }
        set
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x000C_9D1D),
        failure_persistence: None,
        ..ProptestConfig::with_cases(512)
    })]

    #[test]
    fn sanitize_gives_a_valid_subset(value in prop_oneof![any::<u64>(), (0u64..1 << 20), Just(0x8001b_u64)]) {
        let value = Xfeatures::from_bits(value);
        match xcr0::sanitize(value) {
            Ok(s) => {
                let fixed = s.xcr0;
                prop_assert!(xcr0::is_valid(fixed), "{value} -> {fixed}");
                prop_assert!(value.contains_all(fixed));
                let dropped: Xfeatures = s.dropped().map(|(c, _)| c).collect();
                prop_assert_eq!(dropped, value - fixed);
                // Nothing more was dropped than needed: a valid value stays.
                if xcr0::is_valid(value) {
                    prop_assert_eq!(fixed, value);
                }
            }
            Err(_) => prop_assert!(!value.contains(ComponentId::X87)),
        }
    }

    #[test]
    fn text_parsers_never_panic(lines in prop::collection::vec(line_like(), 0..30)) {
        let text = lines.join("\n");
        let _ = CpuidSet::parse(&text);
        let _ = CpuidSet::from_cpuid_raw(&text);
        let _ = CpuidSet::from_instlatx64(&text);
        let _ = CpuidSet::from_kvm_json(&text);
        if let Ok(set) = CpuidSet::from_cpuid_raw(&text) {
            prop_assert_eq!(CpuidSet::from_cpuid_raw(&set.to_cpuid_raw()).map(|s| s.iter().collect::<Vec<_>>()),
                Ok(set.iter().collect::<Vec<_>>()));
        }
    }

    #[test]
    fn byte_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = CpuidSet::parse(&text);
        let _ = CpuidSet::from_instlatx64(&text);
        let _ = CpuidSet::from_kvm_json(&text);
    }

    #[test]
    fn json_like_input_never_panics(
        entries in prop::collection::vec(
            prop::collection::vec(
                (
                    prop_oneof![Just("function"), Just("index"), Just("flags"), Just("eax"),
                        Just("ebx"), Just("ecx"), Just("edx"), Just("x")],
                    prop_oneof![
                        any::<i64>().prop_map(|n| n.to_string()),
                        any::<u64>().prop_map(|n| n.to_string()),
                        "\"0[xX][0-9a-fA-F+-]{0,12}\"",
                        "\"[0-9+-]{0,12}\"",
                        Just("1e99".to_owned()),
                        Just("null".to_owned()),
                        Just("[]".to_owned()),
                    ],
                ),
                0..8,
            ),
            0..8,
        )
    ) {
        let body: Vec<String> = entries
            .iter()
            .map(|fields| {
                let f: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                format!("{{{}}}", f.join(", "))
            })
            .collect();
        let json = format!("[{}]", body.join(", "));
        if let Ok(set) = CpuidSet::from_kvm_json(&json) {
            prop_assert_eq!(CpuidSet::from_kvm_json(&set.to_kvm_json()), Ok(set));
        }
    }

    #[test]
    fn hostile_sets_check_mask_and_round_trip(set in hostile_set(), excluded in any::<u64>()) {
        let _ = check(&set);
        prop_assert_eq!(CpuidSet::from_kvm_json(&set.to_kvm_json()), Ok(set.clone()));
        let mut masked = set.clone();
        let excluded = Xfeatures::from_bits(excluded);
        match features::apply(&mut masked, excluded) {
            Ok(plan) => {
                prop_assert!(!masked.xcr0_supported().intersects(plan.excluded));
                for m in &plan.masks {
                    if let Some(r) = masked.entry(m.leaf, m.subleaf) {
                        let reg = match m.register {
                            Reg::Eax => r.eax,
                            Reg::Ebx => r.ebx,
                            Reg::Ecx => r.ecx,
                            Reg::Edx => r.edx,
                        };
                        // Leaf 0xD sub-leaves 0-1 EBX/ECX hold sizes, rewritten after masking.
                        if !(m.leaf == 0xd && matches!(m.register, Reg::Ebx)) {
                            prop_assert_eq!(reg & m.clear, 0, "{:?}", m);
                        }
                    }
                }
                let _ = check(&masked);
            }
            Err(_) => prop_assert!(excluded.intersects(Xfeatures::LEGACY)),
        }
    }
}
