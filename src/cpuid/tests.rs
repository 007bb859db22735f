//! Hand-made CPUIDs: parsing, masking and every inconsistency `check` knows.

use super::features::{self, FeatureMask, GROUPS};
use super::xcr0::{self, Rule, Violation, Xcr0Error};
use super::*;
use crate::component::{ComponentId, Xfeatures};
use crate::layout::LayoutError;

/// The set with bits `bits`.
fn x(bits: u64) -> Xfeatures {
    Xfeatures::from_bits(bits)
}

/// Component number `n`.
fn c(n: u8) -> ComponentId {
    ComponentId::new(n).unwrap()
}

/// A made-up Intel CPU that is consistent: AVX, AVX-512, PKRU and AMX,
/// XSAVEC/XSAVES/XFD, no supervisor component. Sizes are Sapphire Rapids'.
const BASE: &str = "\
CPU:
   0x00000000 0x00: eax=0x0000001e ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
   0x00000007 0x00: eax=0x00000001 ebx=0x00010020 ecx=0x00000008 edx=0x01000000
   0x00000007 0x01: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x00: eax=0x000602e7 ebx=0x00002b00 ecx=0x00002b00 edx=0x00000000
   0x0000000d 0x01: eax=0x0000001f ebx=0x00002a00 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x05: eax=0x00000040 ebx=0x00000440 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x06: eax=0x00000200 ebx=0x00000480 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x07: eax=0x00000400 ebx=0x00000680 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x09: eax=0x00000008 ebx=0x00000a80 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x11: eax=0x00000040 ebx=0x00000ac0 ecx=0x00000002 edx=0x00000000
   0x0000000d 0x12: eax=0x00002000 ebx=0x00000b00 ecx=0x00000006 edx=0x00000000
   0x0000001d 0x00: eax=0x00000001 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x0000001d 0x01: eax=0x04002000 ebx=0x00080040 ecx=0x00000010 edx=0x00000000
   0x0000001e 0x00: eax=0x00000000 ebx=0x00004010 ecx=0x00000000 edx=0x00000000
";

/// Compacted size of x87, SSE, AVX, PKRU and AMX on BASE's geometry:
/// 576 + 256 + 8 = 840, aligned to 896 + 64 = 960, + 8192.
const COMPACTED_WITHOUT_AVX512: u32 = 9152;

fn base() -> CpuidSet {
    CpuidSet::from_cpuid_raw(BASE).unwrap()
}

fn regs(set: &CpuidSet, leaf: u32, sub: u32) -> CpuidRegs {
    set.entry(leaf, sub).unwrap()
}

fn edit(set: &mut CpuidSet, leaf: u32, sub: u32, f: impl FnOnce(&mut CpuidRegs)) {
    let mut r = regs(set, leaf, sub);
    f(&mut r);
    set.set(leaf, sub, r).unwrap();
}

// ---- CpuidSet ----

#[test]
fn base_parses_and_is_consistent() {
    let set = base();
    assert_eq!(set.len(), 16);
    assert_eq!(set.vendor().as_deref(), Some("GenuineIntel"));
    assert_eq!(set.xcr0_supported(), x(0x602e7));
    assert_eq!(set.xss_supported(), Xfeatures::EMPTY);
    assert!(set.is_indexed(7) && set.is_indexed(0xd) && set.is_indexed(0x1e));
    assert!(!set.is_indexed(1));
    assert!(set.has_feature(features::AVX512F));
    assert_eq!(check(&set), vec![]);
}

#[test]
fn non_indexed_leaves_ignore_the_subleaf() {
    let mut set = base();
    assert_eq!(set.get(1, 5), set.get(1, 0));
    assert_eq!(set.entry(1, 5), None);
    assert_eq!(set.get(7, 5), None);
    // A non-zero sub-leaf marks the leaf indexed.
    set.set(0x40, 3, CpuidRegs::default()).unwrap();
    assert!(set.is_indexed(0x40));
    set.set_indexed(0x40, false);
    assert_eq!(set.entry(0x40, 3), None);
    assert_eq!(set.remove_leaf(0xd), 9);
    assert_eq!(set.xcr0_supported(), Xfeatures::EMPTY);
    assert!(!set.is_indexed(0xd));
}

#[test]
fn cpuid_raw_and_kvm_json_round_trip() {
    let set = base();
    assert_eq!(CpuidSet::from_cpuid_raw(&set.to_cpuid_raw()).unwrap(), set);
    let json = set.to_kvm_json();
    assert!(json.contains(
        "{\"function\": \"0x0000000d\", \"index\": \"0x00000012\", \"flags\": \"0x00000001\", \
         \"eax\": \"0x00002000\", \"ebx\": \"0x00000b00\", \"ecx\": \"0x00000006\", \"edx\": \"0x00000000\"}"
    ));
    let again = CpuidSet::from_kvm_json(&json).unwrap();
    assert_eq!(again, set);
    assert_eq!(again.to_kvm_json(), json);
    assert_eq!(CpuidSet::parse(&json).unwrap(), set);
    assert_eq!(CpuidSet::new().to_kvm_json(), "[]\n");
}

#[test]
fn kvm_json_takes_numbers_hex_and_decimal_strings() {
    let json = r#"{"entries": [
        {"function": 13, "index": "0x1", "flags": 1, "eax": "0X1F", "ebx": "576", "ecx": 0, "edx": 4294967295, "padding": [0, 0, 0]},
        {"function": "0x1", "index": 7, "eax": 1, "ebx": 2, "ecx": 3, "edx": 4}
    ]}"#;
    let set = CpuidSet::from_kvm_json(json).unwrap();
    assert_eq!(
        set.entry(0xd, 1),
        Some(CpuidRegs {
            eax: 0x1f,
            ebx: 576,
            ecx: 0,
            edx: u32::MAX
        })
    );
    // Not indexed: its index is not significant and is kept as 0.
    assert_eq!(set.entry(1, 0).unwrap().edx, 4);
    assert!(!set.is_indexed(1));
}

#[test]
fn kvm_json_errors_name_the_entry() {
    let e = |s: &str| CpuidSet::from_kvm_json(s).unwrap_err();
    assert!(matches!(e("[1, 2"), CpuidSetError::Json { line: 1, .. }));
    assert_eq!(e("3"), CpuidSetError::JsonShape);
    assert_eq!(e("{\"entries\": 3}"), CpuidSetError::JsonShape);
    assert_eq!(e("[]"), CpuidSetError::NotADump);
    let ok = r#"{"function": 0, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}"#;
    assert_eq!(
        e(&format!("[{ok}, 7]")),
        CpuidSetError::NotAnObject { at: At::Entry(1) }
    );
    for bad in [
        "-1",
        "4294967296",
        "1.5",
        "\"+1\"",
        "\"0x\"",
        "\"0x1g\"",
        "\"-3\"",
        "null",
        "\"0x100000000\"",
    ] {
        let entry = ok.replace("\"ecx\": 0", &format!("\"ecx\": {bad}"));
        assert_eq!(
            e(&format!("[{ok}, {entry}]")),
            CpuidSetError::Field {
                at: At::Entry(1),
                field: "ecx",
                reason: "is not a 32-bit unsigned number, hex string (\"0x1f\") or decimal string"
            },
            "{bad}"
        );
    }
    let missing = ok.replace("\"eax\": 0, ", "");
    assert!(matches!(
        e(&format!("[{missing}]")),
        CpuidSetError::Field {
            at: At::Entry(0),
            field: "eax",
            reason: "is missing"
        }
    ));
    assert_eq!(
        e(&format!("[{ok}, {ok}]")),
        CpuidSetError::Duplicate {
            at: At::Entry(1),
            leaf: 0,
            subleaf: 0
        }
    );
    // A field twice in one entry: refused whichever comes last, naming
    // the field and its line; in the object form, "entries" twice too.
    for (twice, field) in [
        (
            r#"{"function": 13, "function": 1, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}"#,
            "function",
        ),
        (
            r#"{"function": 0, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0, "eax": "0x1"}"#,
            "eax",
        ),
        (
            r#"{"function": 0, "index": 1, "index": 1, "eax": 0, "ebx": 0, "ecx": 0, "edx": 0}"#,
            "index",
        ),
    ] {
        for text in [
            format!("[{ok},\n {twice}]"),
            format!("{{\"entries\": [{ok},\n {twice}]}}"),
        ] {
            let got = e(&text);
            assert!(
                matches!(&got, CpuidSetError::DuplicateKey { line: 2, message, .. }
                    if message.starts_with(&format!("duplicate field `{field}`"))),
                "{text}: {got:?}"
            );
            assert!(
                got.to_string()
                    .starts_with(&format!("JSON: duplicate field `{field}` at line 2")),
                "{got}"
            );
        }
    }
    let twice = format!("{{\"entries\": [{ok}],\n \"entries\": [{ok}]}}");
    assert!(
        matches!(&e(&twice), CpuidSetError::DuplicateKey { line: 2, message, .. }
            if message.starts_with("duplicate field `entries`")),
        "{:?}",
        e(&twice)
    );
    // Other keys (padding) may be anything, and the entries still read.
    let padded = ok.replace("\"eax\"", "\"padding\": [0, 0], \"eax\"");
    assert_eq!(
        CpuidSet::from_kvm_json(&format!("[{padded}]"))
            .unwrap()
            .len(),
        1
    );
    let many = format!("[{}]", vec![ok; MAX_ENTRIES + 1].join(","));
    assert_eq!(
        e(&many),
        CpuidSetError::TooManyEntries {
            at: At::Entry(MAX_ENTRIES),
            max: MAX_ENTRIES
        }
    );
}

#[test]
fn text_errors_name_the_line() {
    let text = "CPU:\n   0x00000000 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n   0x00000001 0x00: eax=0xzz ebx=0 ecx=0 edx=0\n";
    let err = CpuidSet::from_cpuid_raw(text).unwrap_err();
    assert_eq!(err, CpuidSetError::Malformed { at: At::Line(3) });
    assert_eq!(err.to_string(), "line 3: malformed CPUID line");
    let dup = "   0x00000001 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n\n   0x00000001 0x00: eax=0x1 ebx=0x2 ecx=0x3 edx=0x4\n";
    assert_eq!(
        CpuidSet::from_cpuid_raw(dup).unwrap_err(),
        CpuidSetError::Duplicate {
            at: At::Line(3),
            leaf: 1,
            subleaf: 0
        }
    );
    let instlat = "CPUID 00000001: 00000001-00000002-00000003\n";
    assert_eq!(
        CpuidSet::from_instlatx64(instlat).unwrap_err(),
        CpuidSetError::Malformed { at: At::Line(1) }
    );
    assert_eq!(
        CpuidSet::parse("hello\n").unwrap_err(),
        CpuidSetError::NotADump
    );
    assert_eq!(
        CpuidSet::from_cpuid_raw("").unwrap_err(),
        CpuidSetError::NotADump
    );
    let mut many = String::new();
    for leaf in 0..=MAX_ENTRIES as u32 {
        many.push_str(&format!(
            "   {:#010x} 0x01: eax=0x0 ebx=0x0 ecx=0x0 edx=0x0\n",
            leaf + 1
        ));
    }
    assert_eq!(
        CpuidSet::from_cpuid_raw(&many).unwrap_err(),
        CpuidSetError::TooManyEntries {
            at: At::Line(MAX_ENTRIES + 1),
            max: MAX_ENTRIES
        }
    );
}

#[test]
fn text_reads_the_first_cpu_and_marks_indexed_leaves() {
    let two = "\
CPU 0:
   0x00000000 0x00: eax=0x00000016 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
   0x00000006 0x00: eax=0x00000001 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000020 0x00: eax=0x00000000 ebx=0x00000001 ecx=0x00000000 edx=0x00000000
   0x00000021 0x01: eax=0x00000000 ebx=0x00000001 ecx=0x00000000 edx=0x00000000
CPU 1:
   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65
   0x00000007 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
";
    let set = CpuidSet::parse(two).unwrap();
    assert_eq!(set.len(), 4);
    assert_eq!(set.vendor().as_deref(), Some("GenuineIntel"));
    assert!(!set.is_indexed(6) && !set.is_indexed(0x20) && set.is_indexed(0x21));

    let instlat = "\
CPUID 00000000: 00000020-756E6547-6C65746E-49656E69 [GenuineIntel]
CPUID 00000006: 00000001-00000000-00000000-00000000
CPUID 00000020: 00000000-00000001-00000000-00000000 [SL 00]
CPUID 00000000: 00000010-68747541-444D4163-69746E65 [AuthenticAMD]
";
    let set = CpuidSet::parse(instlat).unwrap();
    assert_eq!(set.len(), 3);
    assert!(!set.is_indexed(6) && set.is_indexed(0x20));
}

#[test]
fn set_refuses_past_the_limit() {
    let mut set = CpuidSet::new();
    for leaf in 0..MAX_ENTRIES as u32 {
        set.set(leaf, 0, CpuidRegs::default()).unwrap();
    }
    assert_eq!(
        set.set(u32::MAX, 0, CpuidRegs::default()),
        Err(CpuidSetError::Full { max: MAX_ENTRIES })
    );
    // Replacing an entry still works.
    assert_eq!(
        set.set(3, 0, CpuidRegs::default()),
        Ok(Some(CpuidRegs::default()))
    );
}

// ---- features ----

#[test]
fn every_group_bit_is_unique_and_groups_are_disjoint() {
    let mut seen = std::collections::HashSet::new();
    let mut components = Xfeatures::EMPTY;
    for g in GROUPS {
        assert!(!components.intersects(g.components), "{}", g.name);
        components |= g.components;
        for b in g.features {
            assert!(
                seen.insert((b.leaf, b.subleaf, b.register, b.bit)),
                "{b} twice"
            );
        }
        // Every group has the flags that make it usable, among its own.
        assert!(!g.enabled_by.is_empty(), "{}", g.name);
        for b in g.enabled_by {
            assert!(g.features.contains(b), "{}: {b}", g.name);
        }
    }
    // The supervisor components with a flag of their own have a row.
    for id in [
        ComponentId::PT,
        ComponentId::CET_U,
        ComponentId::CET_S,
        ComponentId::UINTR,
        ComponentId::LBR,
    ] {
        assert!(features::group_of(id).is_some(), "{id}");
    }
}

#[test]
fn closure_follows_groups_and_requirements() {
    assert_eq!(features::closure(x(0)), x(0));
    assert_eq!(features::closure(x(1 << 2)), x(0xe4));
    assert_eq!(features::closure(x(1 << 6)), x(0xe0));
    assert_eq!(features::closure(x(1 << 3)), x(0x18));
    assert_eq!(features::closure(x(1 << 12)), x(0x1800));
    assert_eq!(features::closure(x(1 << 40)), x(1 << 40));
}

#[test]
fn plan_lists_masks_per_register() {
    assert_eq!(
        features::plan(x(0b10)),
        Err(features::FeatureError::Legacy { excluded: x(0b10) })
    );
    let plan = features::plan(x(1 << 17)).unwrap();
    assert_eq!(plan.excluded, x(0b11 << 17));
    assert_eq!(plan.drop_leaves, vec![0x1d, 0x1e]);
    assert_eq!(plan.drop_subleaves, vec![(0xd, 17), (0xd, 18)]);
    let want = |leaf, subleaf, register, clear| FeatureMask {
        leaf,
        subleaf,
        register,
        clear,
    };
    assert_eq!(
        plan.masks,
        vec![
            want(7, 0, Reg::Edx, (1 << 22) | (1 << 24) | (1 << 25)),
            want(7, 1, Reg::Eax, 1 << 21),
            want(7, 1, Reg::Edx, 1 << 8),
            want(0xd, 0, Reg::Eax, 0b11 << 17),
            want(0xd, 1, Reg::Ecx, 0b11 << 17),
            want(0x12, 1, Reg::Ecx, 0b11 << 17),
        ]
    );
    // A component past 31 lands in the high register.
    let plan = features::plan(x(1 << 40)).unwrap();
    assert!(plan.masks.contains(&want(0xd, 0, Reg::Edx, 1 << 8)));
}

#[test]
fn apply_avx512_out_of_base() {
    let mut set = base();
    set.set(
        0x12,
        1,
        CpuidRegs {
            eax: 0,
            ebx: 0,
            ecx: 0x602e7,
            edx: 0,
        },
    )
    .unwrap();
    set.set(
        0x24,
        0,
        CpuidRegs {
            eax: 0,
            ebx: 0x70001,
            ecx: 0,
            edx: 0,
        },
    )
    .unwrap();
    features::apply(&mut set, x(1 << 5)).unwrap();
    assert!(!set.has_feature(features::AVX512F));
    assert!(set.has_feature(features::AVX));
    assert_eq!(set.xcr0_supported(), x(0x60207));
    assert_eq!(regs(&set, 0x12, 1).ecx, 0x60207);
    assert_eq!(set.get(0x24, 0), None);
    assert_eq!(set.entry(0xd, 6), None);
    assert_eq!(regs(&set, 0xd, 0).ecx, 0x2b00);
    assert_eq!(regs(&set, 0xd, 0).ebx, 0x2b00);
    assert_eq!(regs(&set, 0xd, 1).ebx, COMPACTED_WITHOUT_AVX512);
    assert_eq!(check(&set), vec![]);
}

#[test]
fn apply_avx_takes_avx512_along_and_stays_consistent() {
    let mut set = base();
    let plan = features::apply(&mut set, x(1 << 2)).unwrap();
    assert_eq!(plan.excluded, x(0xe4));
    assert!(!set.has_feature(features::AVX) && !set.has_feature(features::AVX512F));
    assert_eq!(regs(&set, 7, 0).ebx, 0);
    assert_eq!(set.xcr0_supported(), x(0x60203));
    assert_eq!(check(&set), vec![]);

    let mut set = base();
    features::apply(&mut set, x(1 << 18)).unwrap();
    assert_eq!(set.xcr0_supported(), x(0x2e7));
    assert_eq!(set.get(0x1d, 1), None);
    assert_eq!(regs(&set, 0xd, 0).ecx, 0xa88);
    assert_eq!(regs(&set, 0xd, 1).ebx, 2440);
    assert_eq!(check(&set), vec![]);

    // Nothing of leaf 0xD changes: the sizes are left as they were.
    let mut set = base();
    edit(&mut set, 0xd, 0, |r| r.ebx = 0x340);
    features::apply(&mut set, x(1 << 8)).unwrap();
    assert_eq!(regs(&set, 0xd, 0).ebx, 0x340);
}

// ---- xcr0 ----

#[test]
fn each_rule_and_its_fix() {
    let cases: [(u64, Rule, u64, u64); 12] = [
        (0x6, Rule::X87Required, 1, 0),
        (0x5, Rule::AvxNeedsSse, 0x4, 0x1),
        (0xe3, Rule::Avx512NeedsAvx, 0xe0, 0x3),
        (0x67, Rule::Avx512AllOrNone, 0x60, 0x7),
        (0xb, Rule::MpxTogether, 0x8, 0x3),
        (0x40003, Rule::AmxTogether, 0x40000, 0x3),
        (0x80013, Rule::NoMpxWithApx, 0x10, 0x80003),
        (0x8001b, Rule::NoMpxWithApx, 0x18, 0x80003),
        (0x107, Rule::NoSupervisor, 0x100, 0x7),
        (0x1_ff03, Rule::NoSupervisor, 0x1_fd00, 0x203),
        (0x8000_0000_0000_0107, Rule::Bit63Reserved, 1 << 63, 0x7),
        (0x8000_0000_0000_0003, Rule::Bit63Reserved, 1 << 63, 0x3),
    ];
    for (value, rule, bits, fixed) in cases {
        let (value, bits, fixed) = (x(value), x(bits), x(fixed));
        let v: Vec<_> = xcr0::violations(value).collect();
        assert!(
            v.contains(&Violation {
                rule,
                xcr0: value,
                bits
            }),
            "{value:#x}: {v:?}"
        );
        if rule == Rule::X87Required {
            assert_eq!(
                xcr0::sanitize(value),
                Err(Xcr0Error::MissingX87 { xcr0: value })
            );
        } else {
            assert_eq!(xcr0::sanitize(value).unwrap().xcr0, fixed, "{value:#x}");
        }
    }
    // AVX without SSE takes AVX-512 down with it, each with its reason.
    let fixed = xcr0::sanitize(x(0xe5)).unwrap();
    assert_eq!(fixed.xcr0, x(0x1));
    assert_eq!(
        fixed.dropped().collect::<Vec<_>>(),
        vec![
            (c(2), Rule::AvxNeedsSse),
            (c(5), Rule::Avx512NeedsAvx),
            (c(6), Rule::Avx512NeedsAvx),
            (c(7), Rule::Avx512NeedsAvx)
        ]
    );
    assert_eq!(fixed.rule_for(c(6)), Some(Rule::Avx512NeedsAvx));
    assert_eq!(fixed.rule_for(c(9)), None);
    assert_eq!(
        xcr0::violations(x(0x3))
            .chain(xcr0::violations(x(0x602e7)))
            .count(),
        0
    );
    assert_eq!(
        Violation {
            rule: Rule::AmxTogether,
            xcr0: x(0x40003),
            bits: x(0x40000)
        }
        .to_string(),
        "XCR0 0x40003 breaks a rule: AMX TILECFG and TILEDATA (bits 17-18) must be both set or \
         both clear (bits at fault: 0x40000)"
    );
}

#[test]
fn minimal_xcr0_per_component() {
    assert_eq!(xcr0::minimal_with(c(0)), x(0x1));
    assert_eq!(xcr0::minimal_with(c(2)), x(0x7));
    assert_eq!(xcr0::minimal_with(c(3)), x(0x19));
    assert_eq!(xcr0::minimal_with(c(7)), x(0xe7));
    assert_eq!(xcr0::minimal_with(c(17)), x(0x60001));
    assert_eq!(xcr0::minimal_with(c(19)), x(0x80001));
    assert_eq!(xcr0::minimal_with(c(63)), x(0x8000_0000_0000_0001));
    // No valid XCR0 holds bit 63 or a supervisor component.
    assert!(!xcr0::is_valid(xcr0::minimal_with(c(63))));
    assert!(!xcr0::is_valid(xcr0::minimal_with(ComponentId::PT)));
}

#[test]
fn supervisor_and_user_sets_follow_the_component_table() {
    assert_eq!(xcr0::SUPERVISOR, x(0x1_fd00));
    assert_eq!(xcr0::USER, x(0xe_02ff));
    for id in ComponentId::known() {
        let supervisor = id.info().unwrap().supervisor;
        assert_eq!(xcr0::SUPERVISOR.contains(id), supervisor, "{id}");
        assert_eq!(xcr0::USER.contains(id), !supervisor, "{id}");
    }
    // The baseline of bug reports: bit 63 and PT in XCR0, both refused.
    let v: Vec<Rule> = xcr0::violations(x(0x8000_0000_0000_0107))
        .map(|v| v.rule)
        .collect();
    assert_eq!(v, [Rule::NoSupervisor, Rule::Bit63Reserved]);
    // IA32_XSS: user components and bit 63 are never possible.
    assert!(xcr0::xss_invalid(x(0x1_fd00)).is_empty());
    assert!(
        xcr0::xss_invalid(x(0x7f << 20)).is_empty(),
        "unknown ones are the CPU's call"
    );
    assert_eq!(
        xcr0::xss_invalid(x(0x8000_0000_0000_0301)),
        x(0x8000_0000_0000_0201)
    );
    assert_eq!(xcr0::xss_invalid(x(0x6_0000)), x(0x6_0000));
}

// ---- check: one broken thing at a time ----

#[test]
fn avx512_flag_without_its_components() {
    let mut set = base();
    edit(&mut set, 0xd, 0, |r| r.eax = 0x60207);
    edit(&mut set, 0xd, 1, |r| r.ebx = COMPACTED_WITHOUT_AVX512);
    let got = check(&set);
    assert_eq!(
        got,
        vec![Inconsistency::FeatureWithoutComponent {
            feature: features::AVX512F,
            value: 0x10020,
            group: "AVX-512",
            missing: x(0xe0),
            supported: x(0x60207)
        }]
    );
    assert_eq!(
        got[0].to_string(),
        "AVX512F (CPUID.(EAX=0x7,ECX=0):EBX[16]) is set (CPUID.(EAX=0x7,ECX=0):EBX = 0x00010020) \
         but AVX-512 components 0xe0 are not supported: CPUID.(EAX=0xd,ECX=0):EDX:EAX XCR0 | \
         CPUID.(EAX=0xd,ECX=1):EDX:ECX IA32_XSS = 0x60207"
    );
}

#[test]
fn components_without_the_flags_that_make_them_usable() {
    // XCR0 0xe7 with AVX and AVX512F clear: both groups, each named.
    let mut set = base();
    edit(&mut set, 1, 0, |r| r.ecx &= !(1 << 28));
    edit(&mut set, 7, 0, |r| {
        r.ebx = 0;
        r.ecx = 0;
        r.edx = 0;
    });
    edit(&mut set, 0xd, 0, |r| {
        r.eax = 0xe7;
        r.ebx = 0xa80;
        r.ecx = 0xa80;
    });
    for sub in [9, 17, 18] {
        set.remove(0xd, sub);
    }
    super::leaf_d::refresh_sizes(&mut set);
    let got = check(&set);
    let without =
        |group, components, flag: FeatureBit, value| Inconsistency::ComponentWithoutFeature {
            group,
            components: x(components),
            supervisor: false,
            supported: x(0xe7),
            flags: features::group_of(flag_component(flag)).unwrap().enabled_by,
            values: vec![value],
        };
    assert_eq!(
        got,
        vec![
            without("AVX", 0x4, features::AVX, 0x0c00_0000),
            without("AVX-512", 0xe0, features::AVX512F, 0),
        ]
    );
    assert_eq!(
        got[1].to_string(),
        "AVX-512 components 0xe0 are supported in XCR0 (CPUID.(EAX=0xd,ECX=0):EDX:EAX = 0xe7) \
         but AVX512F is clear (CPUID.(EAX=0x7,ECX=0):EBX = 0x00000000, bit 16): no OS enables them"
    );
    // PKRU without PKU, AMX without AMX-TILE, one at a time.
    for (leaf, reg, bit, group) in [(7, Reg::Ecx, 3, "PKRU"), (7, Reg::Edx, 24, "AMX")] {
        let mut set = base();
        edit(&mut set, leaf, 0, |r| *reg.slot(r) &= !(1 << bit));
        let got = check(&set);
        assert!(
            matches!(&got[..], [Inconsistency::ComponentWithoutFeature { group: g, .. }] if *g == group),
            "{group}: {got:?}"
        );
    }
    // Without leaf 7 the flags are unknown: nothing to say.
    let mut set = base();
    set.remove_leaf(7);
    assert!(check(&set).is_empty(), "{:?}", check(&set));
}

/// A component of the group `flag` advertises.
fn flag_component(flag: FeatureBit) -> ComponentId {
    GROUPS
        .iter()
        .find(|g| g.features.contains(&flag))
        .and_then(|g| g.components.first())
        .unwrap()
}

#[test]
fn supervisor_components_need_their_flags_and_xsaves() {
    // PT and arch LBR (0x8100) in IA32_XSS, with their flags: consistent.
    let mut set = base();
    edit(&mut set, 7, 0, |r| {
        r.ebx |= 1 << 25;
        r.edx |= 1 << 19;
    });
    edit(&mut set, 0xd, 1, |r| r.ecx = 0x8100);
    set.set(
        0xd,
        8,
        CpuidRegs {
            eax: 0x80,
            ebx: 0,
            ecx: 1,
            edx: 0,
        },
    )
    .unwrap();
    set.set(
        0xd,
        15,
        CpuidRegs {
            eax: 0x328,
            ebx: 0,
            ecx: 1,
            edx: 0,
        },
    )
    .unwrap();
    super::leaf_d::refresh_sizes(&mut set);
    assert!(check(&set).is_empty(), "{:?}", check(&set));
    // Without XSAVES (0xD.1 EAX = 1): IA32_XSS is unusable.
    let mut no_xsaves = set.clone();
    edit(&mut no_xsaves, 0xd, 1, |r| r.eax = 1);
    edit(&mut no_xsaves, 7, 0, |r| r.edx &= !(1 << 24)); // no AMX: XFD went too
    edit(&mut no_xsaves, 0xd, 0, |r| {
        r.eax = 0x2e7;
        r.ebx = 0xa88;
        r.ecx = 0xa88;
    });
    for sub in [17, 18] {
        no_xsaves.remove(0xd, sub);
    }
    super::leaf_d::refresh_sizes(&mut no_xsaves);
    let got = check(&no_xsaves);
    assert_eq!(
        got,
        vec![Inconsistency::XssWithoutXsaves {
            eax: 1,
            xss: x(0x8100)
        }]
    );
    assert!(got[0].to_string().contains(
        "IA32_XSS 0x8100 is supported (CPUID.(EAX=0xd,ECX=1):EDX:ECX) but XSAVES is clear"
    ));
    // PT without INTEL_PT, arch LBR without ARCH_LBR; CET with either flag.
    let mut pt = set.clone();
    edit(&mut pt, 7, 0, |r| r.ebx &= !(1 << 25));
    assert!(matches!(
        &check(&pt)[..],
        [Inconsistency::ComponentWithoutFeature {
            group: "PT",
            supervisor: true,
            ..
        }]
    ));
    let mut lbr = set.clone();
    edit(&mut lbr, 7, 0, |r| r.edx &= !(1 << 19));
    assert!(matches!(
        &check(&lbr)[..],
        [Inconsistency::ComponentWithoutFeature {
            group: "Arch LBR",
            supervisor: true,
            ..
        }]
    ));
    let mut cet = set.clone();
    edit(&mut cet, 0xd, 1, |r| r.ecx = 0x9900);
    cet.set(
        0xd,
        11,
        CpuidRegs {
            eax: 0x10,
            ebx: 0,
            ecx: 1,
            edx: 0,
        },
    )
    .unwrap();
    cet.set(
        0xd,
        12,
        CpuidRegs {
            eax: 0x18,
            ebx: 0,
            ecx: 1,
            edx: 0,
        },
    )
    .unwrap();
    super::leaf_d::refresh_sizes(&mut cet);
    let got = check(&cet);
    assert!(
        matches!(&got[..], [Inconsistency::ComponentWithoutFeature { group: "CET", components, values, .. }]
            if *components == x(0x1800) && values.len() == 2),
        "{got:?}"
    );
    assert!(
        got[0].to_string().contains("CET_SS is clear")
            && got[0].to_string().contains("CET_IBT is clear")
    );
    edit(&mut cet, 7, 0, |r| r.edx |= 1 << 20);
    assert!(
        check(&cet).is_empty(),
        "IBT alone keeps CET: {:?}",
        check(&cet)
    );
    // UINTR without its flag.
    let mut uintr = set.clone();
    edit(&mut uintr, 0xd, 1, |r| r.ecx = 0xc100);
    uintr
        .set(
            0xd,
            14,
            CpuidRegs {
                eax: 0x30,
                ebx: 0,
                ecx: 1,
                edx: 0,
            },
        )
        .unwrap();
    super::leaf_d::refresh_sizes(&mut uintr);
    assert!(matches!(
        &check(&uintr)[..],
        [Inconsistency::ComponentWithoutFeature { group: "UINTR", .. }]
    ));
    edit(&mut uintr, 7, 0, |r| r.edx |= 1 << 5);
    assert!(check(&uintr).is_empty(), "{:?}", check(&uintr));
}

#[test]
fn impossible_xcr0_and_ia32_xss_bits() {
    // XCR0 with bit 63 and PT: what a broken baseline emitted.
    let mut set = base();
    edit(&mut set, 0xd, 0, |r| {
        r.eax |= 1 << 8;
        r.edx = 1 << 31;
    });
    set.set(
        0xd,
        8,
        CpuidRegs {
            eax: 0x80,
            ebx: 0,
            ecx: 0,
            edx: 0,
        },
    )
    .unwrap();
    let got: Vec<String> = check(&set).iter().map(ToString::to_string).collect();
    assert!(
        got.iter()
            .any(|m| m.contains("XCR0 0x80000000000603e7 breaks a rule: supervisor components")),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|m| m.contains("bit 63 is reserved, never a component")),
        "{got:#?}"
    );
    // IA32_XSS with PKRU and bit 63.
    let mut set = base();
    edit(&mut set, 0xd, 1, |r| r.edx = 1 << 31);
    let got = check(&set);
    assert_eq!(
        got[0],
        Inconsistency::XssImpossible {
            xss: x(1 << 63),
            bad: x(1 << 63)
        }
    );
    assert!(got[0].to_string().contains("which IA32_XSS never holds"));
    let mut set = base();
    edit(&mut set, 0xd, 1, |r| r.ecx = 0x1);
    assert!(check(&set).contains(&Inconsistency::XssImpossible {
        xss: x(1),
        bad: x(1)
    }));
}

#[test]
fn xsave_clear_under_osxsave_and_the_xsave_extensions() {
    let mut set = base();
    edit(&mut set, 1, 0, |r| r.ecx &= !(1 << 26));
    let dep = |feature: FeatureBit, value, needs: FeatureBit| Inconsistency::MissingDependency {
        feature,
        value,
        needs,
        needs_value: 0x18000000,
    };
    assert_eq!(
        check(&set),
        vec![
            dep(features::OSXSAVE, 0x18000000, features::XSAVE),
            dep(features::XSAVEOPT, 0x1f, features::XSAVE),
            dep(features::XSAVEC, 0x1f, features::XSAVE),
            dep(features::XSAVES, 0x1f, features::XSAVE),
            dep(features::XGETBV1, 0x1f, features::XSAVE),
            dep(features::AVX, 0x18000000, features::XSAVE),
            dep(features::PKU, 0x8, features::XSAVE),
        ]
    );
    assert!(check(&set)[0].to_string().contains(
        "but the XSAVE (CPUID.(EAX=0x1,ECX=0):ECX[26]) it needs is clear (CPUID.(EAX=0x1,ECX=0):ECX = 0x18000000)"
    ));
}

#[test]
fn xcr0_breaking_a_rule() {
    let mut set = base();
    edit(&mut set, 0xd, 0, |r| r.eax = 0x602a7);
    assert_eq!(
        check(&set),
        vec![
            Inconsistency::Xcr0Rule(Violation {
                rule: Rule::Avx512AllOrNone,
                xcr0: x(0x602a7),
                bits: x(0xa0)
            }),
            Inconsistency::FeatureWithoutComponent {
                feature: features::AVX512F,
                value: 0x10020,
                group: "AVX-512",
                missing: x(0x40),
                supported: x(0x602a7)
            },
            Inconsistency::CompactedSizeImpossible {
                ebx: 0x2a00,
                xcr0: x(0x602a7),
                xss: x(0)
            },
        ]
    );

    let mut set = base();
    edit(&mut set, 0xd, 0, |r| r.eax = 0x602e6);
    assert_eq!(
        check(&set),
        vec![Inconsistency::Xcr0Rule(Violation {
            rule: Rule::X87Required,
            xcr0: x(0x602e6),
            bits: x(1)
        })]
    );
}

#[test]
fn leaf_d_sizes_against_offsets() {
    let mut set = base();
    edit(&mut set, 0xd, 0, |r| r.ecx = 0x2a00);
    let got = check(&set);
    assert_eq!(
        got,
        vec![Inconsistency::MaxSizeMismatch {
            ecx: 0x2a00,
            expected: 0x2b00,
            xcr0: x(0x602e7)
        }]
    );
    assert_eq!(
        got[0].to_string(),
        "CPUID.(EAX=0xd,ECX=0):ECX = 0x2a00 (10752 bytes) but the sub-leaves of XCR0 0x602e7 end \
         at 0x2b00 (11008 bytes)"
    );

    // Any size a valid XCR0 gives is fine for EBX; others are not.
    for ok in [576, 832, 0xa88, 0xa88, 0x2b00] {
        let mut set = base();
        edit(&mut set, 0xd, 0, |r| r.ebx = ok);
        assert_eq!(check(&set), vec![], "{ok:#x}");
    }
    let mut set = base();
    edit(&mut set, 0xd, 0, |r| r.ebx = 0x1234);
    assert_eq!(
        check(&set),
        vec![Inconsistency::EnabledSizeImpossible {
            ebx: 0x1234,
            xcr0: x(0x602e7)
        }]
    );

    for ok in [576, 840, COMPACTED_WITHOUT_AVX512, 0x2a00] {
        let mut set = base();
        edit(&mut set, 0xd, 1, |r| r.ebx = ok);
        assert_eq!(check(&set), vec![], "{ok}");
    }
    let mut set = base();
    edit(&mut set, 0xd, 1, |r| r.ebx = 0x2a40);
    assert_eq!(
        check(&set),
        vec![Inconsistency::CompactedSizeImpossible {
            ebx: 0x2a40,
            xcr0: x(0x602e7),
            xss: x(0)
        }]
    );
    // Without XSAVEC and XSAVES (and so without XFD, which needs XSAVES, and
    // AMX, which needs XFD) sub-leaf 1 EBX is not checked.
    let mut set = base();
    features::apply(&mut set, x(1 << 17)).unwrap();
    edit(&mut set, 0xd, 1, |r| {
        r.eax = 1;
        r.ebx = 0x2a40;
    });
    assert_eq!(check(&set), vec![]);
}

#[test]
fn missing_and_mislabelled_subleaves() {
    let mut set = base();
    set.remove(0xd, 9);
    assert_eq!(
        check(&set),
        vec![Inconsistency::MissingSubleaf {
            component: c(9),
            supervisor: false,
            size: None
        }]
    );
    let mut set = base();
    edit(&mut set, 0xd, 9, |r| r.eax = 0);
    assert_eq!(
        check(&set)[0],
        Inconsistency::MissingSubleaf {
            component: c(9),
            supervisor: false,
            size: Some(0)
        }
    );
    let mut set = base();
    edit(&mut set, 0xd, 9, |r| r.ecx = 1);
    assert_eq!(
        check(&set),
        vec![Inconsistency::SupervisorFlag {
            component: c(9),
            ecx: 1,
            supervisor: false
        }]
    );
    let mut set = base();
    edit(&mut set, 0xd, 1, |r| r.ecx = 0x200);
    // PKRU in IA32_XSS: in both, and a user component where IA32_XSS never
    // holds one.
    assert_eq!(
        check(&set),
        vec![
            Inconsistency::XssImpossible {
                xss: x(0x200),
                bad: x(0x200)
            },
            Inconsistency::Xcr0XssOverlap {
                xcr0: x(0x602e7),
                xss: x(0x200)
            }
        ]
    );
    let mut set = base();
    set.remove_leaf(0xd);
    assert_eq!(
        check(&set),
        vec![Inconsistency::XsaveWithoutLeafD { ecx: 0x1c000000 }]
    );
}

#[test]
fn amx_without_xfd() {
    let mut set = base();
    edit(&mut set, 0xd, 1, |r| r.eax = 0xf);
    let got = check(&set);
    assert_eq!(got, vec![Inconsistency::AmxWithoutXfd { eax: 0xf }]);
    assert_eq!(
        got[0].to_string(),
        "AMX is offered but XFD is clear (CPUID.(EAX=0xd,ECX=1):EAX = 0x0000000f, bit 4)"
    );
    let mut set = base();
    edit(&mut set, 0xd, 18, |r| r.ecx = 2);
    assert_eq!(
        check(&set),
        vec![Inconsistency::TileDataWithoutXfd { ecx: 2 }]
    );
}

#[test]
fn xfd_flagged_on_a_component_it_never_applies_to() {
    // AVX and PKRU flagged XFD-capable: a layout refuses it, and so does
    // the check, naming each.
    let mut set = base();
    edit(&mut set, 0xd, 2, |r| r.ecx = 4);
    edit(&mut set, 0xd, 9, |r| r.ecx = 6);
    let got = check(&set);
    assert_eq!(
        got,
        vec![
            Inconsistency::XfdNotCapable {
                component: ComponentId::AVX,
                ecx: 4
            },
            Inconsistency::XfdNotCapable {
                component: ComponentId::PKRU,
                ecx: 6
            },
        ]
    );
    assert_eq!(
        got[0].to_string(),
        "AVX (component 2) is supported but CPUID.(EAX=0xd,ECX=2):ECX = 0x00000004 flags it \
         XFD-capable (bit 2): extended feature disable applies to no known component other \
         than AMX TILEDATA"
    );
    assert_eq!(
        set.to_layout("t", "test").unwrap_err(),
        LayoutError::XfdNotCapable(ComponentId::AVX)
    );
    // TILECFG too: only TILEDATA of AMX's two.
    let mut set = base();
    edit(&mut set, 0xd, 17, |r| r.ecx = 6);
    assert_eq!(
        check(&set),
        vec![Inconsistency::XfdNotCapable {
            component: ComponentId::TILECFG,
            ecx: 6
        }]
    );
    // A sub-leaf of a component the CPU does not support is not judged.
    let mut set = base();
    set.set(
        0xd,
        3,
        CpuidRegs {
            eax: 64,
            ebx: 960,
            ecx: 4,
            edx: 0,
        },
    )
    .unwrap();
    assert_eq!(check(&set), vec![]);
}

#[test]
fn apx_with_mpx() {
    let mut set = base();
    edit(&mut set, 7, 0, |r| r.ebx |= 1 << 14);
    edit(&mut set, 7, 1, |r| r.edx |= 1 << 21);
    assert_eq!(
        check(&set),
        vec![
            Inconsistency::FeatureWithoutComponent {
                feature: features::MPX,
                value: 0x14020,
                group: "MPX",
                missing: x(0x18),
                supported: x(0x602e7)
            },
            Inconsistency::FeatureWithoutComponent {
                feature: features::APX_F,
                value: 1 << 21,
                group: "APX",
                missing: x(1 << 19),
                supported: x(0x602e7)
            },
            Inconsistency::ApxWithMpx {
                ebx: 0x14020,
                edx: 1 << 21
            },
        ]
    );
    // With both in XCR0 too (APX over MPX at offset 960), the XCR0 rule breaks.
    for (sub, eax, ebx) in [(3, 0x40, 0x3c0), (4, 0x40, 0x400), (19, 0x80, 0x3c0)] {
        set.set(
            0xd,
            sub,
            CpuidRegs {
                eax,
                ebx,
                ecx: 0,
                edx: 0,
            },
        )
        .unwrap();
    }
    edit(&mut set, 0xd, 0, |r| r.eax = 0xe02ff);
    assert_eq!(
        check(&set),
        vec![
            Inconsistency::Xcr0Rule(Violation {
                rule: Rule::NoMpxWithApx,
                xcr0: x(0xe02ff),
                bits: x(0x18)
            }),
            Inconsistency::ApxWithMpx {
                ebx: 0x14020,
                edx: 1 << 21
            },
        ]
    );
    assert_eq!(
        check(&set)[1].to_string(),
        "APX_F (CPUID.(EAX=0x7,ECX=1):EDX = 0x00200000, bit 21) and MPX \
         (CPUID.(EAX=0x7,ECX=0):EBX = 0x00014020, bit 14) are both set"
    );
}

#[test]
fn a_cpuid_without_xsave_is_a_legacy_only_layout() {
    let set = base();
    assert!(set.has_xsave());
    let layout = set.to_layout("base", "test").unwrap();
    assert!(layout.has_xsave());
    assert_eq!(layout.xcr0_supported(), x(0x602e7));
    assert_eq!(layout.xsave_features(), 0x1f);
    // XSAVE clear in leaf 1: legacy-only, whatever leaf 0xD says.
    let mut no_flag = base();
    edit(&mut no_flag, 1, 0, |r| r.ecx &= !(1 << 26));
    assert!(!no_flag.has_xsave());
    let old = no_flag.to_layout("old", "test").unwrap();
    assert!(!old.has_xsave());
    assert_eq!(old.xcr0_supported(), Xfeatures::LEGACY);
    assert_eq!(old.vendor(), "GenuineIntel");
    // No leaf 0xD although leaf 0 says it exists and leaf 1 sets XSAVE: an
    // incomplete CPUID, not a legacy-only CPU.
    let mut no_leaf = base();
    no_leaf.remove_leaf(0xd);
    assert!(!no_leaf.has_xsave());
    let max_leaf = no_leaf.entry(0, 0).unwrap().eax;
    assert!(max_leaf >= 0xd);
    assert_eq!(
        no_leaf.to_layout("old", "test").unwrap_err(),
        LayoutError::MissingLeaf0xD {
            max_leaf: Some(max_leaf)
        }
    );
    // Without leaf 0 either: leaf 1 sets XSAVE.
    let mut bare = no_leaf.clone();
    bare.remove_leaf(0);
    assert_eq!(
        bare.to_layout("old", "test").unwrap_err(),
        LayoutError::MissingLeaf0xD { max_leaf: None }
    );
    // With a maximum basic leaf below 0xD it is legacy-only, leaf 0xD or not.
    let mut old_cpu = no_leaf.clone();
    edit(&mut old_cpu, 0, 0, |r| r.eax = 0xb);
    assert!(!old_cpu.to_layout("old", "test").unwrap().has_xsave());
    let mut below = base();
    edit(&mut below, 0, 0, |r| r.eax = 0xb);
    assert!(!below.has_xsave());
    assert!(!below.to_layout("old", "test").unwrap().has_xsave());
    // Leaf 0xD alone (no leaf 1) is read as it stands.
    let mut only_d = base();
    only_d.remove_leaf(1);
    assert!(only_d.has_xsave());
}
