//! `xstate pool baseline` and `xstate cpuid check` end to end: the binary
//! run as a user would, its outputs, warnings and exit statuses.

mod cli_common;
mod common;

use cli_common::{stderr, xstate};

use std::process::Output;

use serde_json::Value;
use xstate::cpuid::{check, features, CpuidSet};
use xstate::migrate::stream;
use xstate::prelude::*;
use xstate::RegisterFile;

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).expect("JSON output")
}

fn fixture(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name
}

fn shared(part: &str, name: &str) -> Option<String> {
    let dir = common::shared_cpuid_dir(part)?;
    Some(dir.join(name).to_str().unwrap().to_string())
}

/// A guest CPUID in `cpuid -r` text: the catalog's Sapphire Rapids leaf
/// 0xD, with AVX, AVX-512, PKU, AMX and APX flags set.
fn guest_text() -> String {
    "\
CPU:
   0x00000000 0x00: eax=0x00000029 ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
   0x00000007 0x00: eax=0x00000001 ebx=0x00010020 ecx=0x00000008 edx=0x01000000
   0x00000007 0x01: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00200000
   0x0000000d 0x00: eax=0x000602e7 ebx=0x00002b00 ecx=0x00002b00 edx=0x00000000
   0x0000000d 0x01: eax=0x0000001f ebx=0x00002a00 ecx=0x00000000 edx=0x00000000
   0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000
   0x0000001d 0x00: eax=0x00000001 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
   0x00000029 0x00: eax=0x00000000 ebx=0x00000001 ecx=0x00000000 edx=0x00000000
"
    .into()
}

#[test]
fn zen4_and_sapphire_rapids_give_xcr0_0x7_by_default() {
    let v = json(&xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "intel-sapphire-rapids",
        "--json",
    ]));
    assert_eq!(v["xcr0"], "0x7");
    assert_eq!(v["xss"], "0x1800");
    assert_eq!(v["xsave"], true);
    assert_eq!(v["xsave_features"], "0xf");
    assert_eq!(v["reference"], Value::Null);
    let excluded = v["excluded"].as_array().unwrap();
    let pkru = excluded.iter().find(|e| e["id"] == 9).unwrap();
    assert_eq!(pkru["name"], "PKRU");
    assert_eq!(
        pkru["reason"],
        "standard offset differs (amd-zen4 2432, intel-sapphire-rapids 2688)"
    );
    let m = &v["offset_mismatches"].as_array().unwrap()[0];
    assert_eq!(
        (m["id"].as_u64(), &m["kept"]),
        (Some(5), &Value::Bool(false))
    );
    assert_eq!(
        m["offsets"][0],
        serde_json::json!({"host": "amd-zen4", "offset": 832})
    );
    // Leaf 0xD as emitted: sizes from the sub-leaves.
    let leaf = v["cpuid_0xd"].as_array().unwrap();
    assert_eq!(leaf[0]["subleaf"], "0x0");
    assert_eq!(leaf[0]["eax"], "0x00000007");
    assert_eq!(leaf[0]["ecx"], "0x00000340");
    assert_eq!(leaf[1]["eax"], "0x0000000f");
    // Feature masks: hex strings, named flags.
    let masks = v["feature_masks"].as_array().unwrap();
    let ebx7 = masks
        .iter()
        .find(|m| m["leaf"] == "0x7" && m["subleaf"] == "0x0" && m["register"] == "ebx")
        .unwrap();
    let clear =
        u32::from_str_radix(ebx7["clear"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_ne!(clear & 1 << 16, 0, "AVX512F");
    assert!(ebx7["features"]
        .as_array()
        .unwrap()
        .contains(&Value::from("AVX512F")));
    assert!(v["drop_leaves"]
        .as_array()
        .unwrap()
        .contains(&Value::from("0x1d")));

    let text = stdout(&xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "intel-sapphire-rapids",
    ]));
    assert!(
        text.starts_with("baseline XCR0 0x7, IA32_XSS 0x1800 over 2 hosts"),
        "{text}"
    );
    assert!(
        text.contains("excluded PKRU (component 9): standard offset differs"),
        "{text}"
    );
}

#[test]
fn allow_offset_mismatch_needs_a_reference_and_warns() {
    let out = xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "intel-sapphire-rapids",
        "--allow-offset-mismatch",
        "--reference",
        "intel-sapphire-rapids",
        "--json",
    ]);
    let v = json(&out);
    assert_eq!(v["xcr0"], "0x2e7");
    assert_eq!(v["reference"], "intel-sapphire-rapids");
    assert_eq!(v["offset_mismatches"][0]["kept"], true);
    assert_eq!(v["cpuid_0xd"][0]["ecx"], "0x00000a88");
    let warning = stderr(&out);
    assert!(
        warning.contains("warning: --allow-offset-mismatch keeps")
            && warning.contains("guests will misread their own XSAVE areas")
            && warning.contains("amd-zen4"),
        "{warning}"
    );
    // At Zen 4's offsets, Intel's XSAVE writes past the size CPUID gives.
    let out = xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "intel-sapphire-rapids",
        "--allow-offset-mismatch",
        "--reference",
        "amd-zen4",
    ]);
    assert!(
        stderr(&out).contains("writes 2696 bytes, past the 2440"),
        "{}",
        stderr(&out)
    );
    // Usage errors: exit 2, nothing on stdout.
    for args in [
        &[
            "amd-zen4",
            "intel-sapphire-rapids",
            "--allow-offset-mismatch",
        ][..],
        &["amd-zen4", "--reference", "amd-zen4"],
        &[
            "amd-zen4",
            "--allow-offset-mismatch",
            "--reference",
            "amd-zen3",
        ],
        &["amd-zen4", "--format", "cpuid-r"],
        &["amd-zen4", "--json", "--format", "text"],
        &["no-such-cpu"],
    ] {
        let out = xstate(&[&["pool", "baseline"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_baseline_applied_to_a_guest_cpuid() {
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("guest.txt");
    std::fs::write(&guest, guest_text()).unwrap();
    let guest = guest.to_str().unwrap();
    let out_file = dir.path().join("applied.txt");
    let out = xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--apply-to",
        guest,
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&out_file).unwrap();
    let applied = CpuidSet::from_cpuid_raw(&text).unwrap();
    assert_eq!(applied.xcr0_supported().bits(), 0x207);
    assert!(applied.has_feature(features::AVX) && applied.has_feature(features::PKU));
    for f in [features::AVX512F, features::AMX_TILE, features::APX_F] {
        assert!(!applied.has_feature(f), "{f}");
    }
    assert_eq!(applied.get(0x1d, 0), None);
    assert_eq!(applied.get(0x29, 0), None);
    assert_eq!(applied.get(0xd, 0).unwrap().ecx, 2696);
    assert_eq!(applied.get(0xd, 9).unwrap().ebx, 2688);
    assert!(check(&applied).is_empty());
    // `cpuid check` agrees, and so does the binary's own JSON path.
    assert!(
        stdout(&xstate(&["cpuid", "check", out_file.to_str().unwrap()])).contains("consistent")
    );
    let as_json = stdout(&xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--apply-to",
        guest,
        "--format",
        "kvm-json",
    ]));
    assert_eq!(CpuidSet::from_kvm_json(&as_json).unwrap(), applied);
    // JSON in gives JSON out.
    let json_guest = dir.path().join("guest.json");
    std::fs::write(&json_guest, &as_json).unwrap();
    let again = stdout(&xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--apply-to",
        json_guest.to_str().unwrap(),
    ]));
    assert_eq!(again, as_json, "applying twice changes nothing");
    // A guest CPUID that is not one: exit 1, no output file.
    std::fs::write(
        dir.path().join("bad.txt"),
        "   0x00000000 0x00: eax=0x1 ebx=0x0 ecx=0x0 edx=0x0\n   0x00000001 0x00: eax=0xzz\n",
    )
    .unwrap();
    let bad_out = dir.path().join("bad-out.txt");
    let out = xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "--apply-to",
        dir.path().join("bad.txt").to_str().unwrap(),
        "-o",
        bad_out.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("line 2: malformed CPUID line"),
        "{}",
        stderr(&out)
    );
    assert!(!bad_out.exists());
    // A missing one: exit 2. And a Firecracker template is the pool's, not
    // a guest's.
    let out = xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "--apply-to",
        "/nonexistent/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "--apply-to",
        guest,
        "--format",
        "firecracker",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// The report's case: Sapphire Rapids and Lunar Lake give IA32_XSS 0xd900
/// (PT, CET, UINTR, arch LBR); a guest with CET only and INTEL_PT and
/// ARCH_LBR clear gets CET only, and is told what it lacked.
#[test]
fn apply_to_never_widens_a_guest() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = CpuidSet::from_cpuid_raw(&guest_text()).unwrap();
    set.remove_leaf(0xd);
    for (sub, regs) in xstate::layout::catalog::get("intel-sapphire-rapids")
        .unwrap()
        .to_cpuid()
        .subleaves
    {
        if ![8, 10, 14, 15].contains(&sub) {
            set.set(0xd, sub, regs).unwrap();
        }
    }
    let mut s1 = set.get(0xd, 1).unwrap();
    s1.ecx = 0x1800;
    set.set(0xd, 1, s1).unwrap();
    let mut leaf7 = set.get(7, 0).unwrap();
    leaf7.ecx |= 1 << 7; // CET_SS
    set.set(7, 0, leaf7).unwrap();
    let guest = dir.path().join("spr.cpuid");
    std::fs::write(&guest, set.to_cpuid_raw()).unwrap();
    let guest = guest.to_str().unwrap();
    let pool_out = dir.path().join("pool.cpuid");
    let out = xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--apply-to",
        guest,
        "-o",
        pool_out.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let note = stderr(&out);
    assert!(
        note.contains("lacks what the baseline offers, so its CPUID does not get PT (component 8), UINTR (component 14), LBR (component 15)"),
        "{note}"
    );
    let applied = CpuidSet::from_cpuid_raw(&std::fs::read_to_string(&pool_out).unwrap()).unwrap();
    let s1 = applied.get(0xd, 1).unwrap();
    assert_eq!(s1.ecx, 0x1800, "{s1:?}");
    for sub in [8, 0xe, 0xf] {
        assert_eq!(applied.get(0xd, sub), None, "sub-leaf {sub:#x}");
    }
    assert!(check(&applied).is_empty(), "{:?}", check(&applied));
    assert!(
        stdout(&xstate(&["cpuid", "check", pool_out.to_str().unwrap()])).contains("consistent (")
    );
    // --json: the baseline as the guest got it, what it lacked in `excluded`.
    let v = json(&xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--apply-to",
        guest,
        "--json",
    ]));
    assert_eq!(
        (v["xcr0"].as_str(), v["xss"].as_str()),
        (Some("0x207"), Some("0x1800"))
    );
    assert_eq!(v["guest"], guest);
    let excluded = v["excluded"].as_array().unwrap();
    for id in [8, 14, 15] {
        let e = excluded.iter().find(|e| e["id"] == id).unwrap();
        assert_eq!(
            e["reason"],
            "not in the guest CPUID's IA32_XSS 0x1800 (CPUID.(EAX=0xd,ECX=1):EDX:ECX)"
        );
    }
    assert_eq!(v["cpuid_0xd"][1]["ecx"], "0x00001800");
    let text = stdout(&xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--apply-to",
        guest,
        "--format",
        "text",
    ]));
    assert!(
        text.starts_with(&format!(
            "baseline XCR0 0x207, IA32_XSS 0x1800 over 2 hosts, as applied to {guest}\n"
        )),
        "{text}"
    );
    assert!(text.contains("excluded PT (component 8): not in the guest CPUID's IA32_XSS 0x1800"));
    // The pool alone still offers 0xd900.
    let v = json(&xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--json",
    ]));
    assert_eq!(v["xss"], "0xd900");
    // The real Emerald Rapids dump of the report, where there is one.
    let Some(emr) = shared(
        "apply to the Emerald Rapids dump",
        "host-intel-emr-cpuid-r.txt",
    ) else {
        return;
    };
    let out = xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "intel-lunar-lake",
        "--apply-to",
        &emr,
        "-o",
        pool_out.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let applied = CpuidSet::from_cpuid_raw(&std::fs::read_to_string(&pool_out).unwrap()).unwrap();
    assert_eq!(applied.get(0xd, 1).unwrap().ecx, 0x1800);
    assert_eq!(applied.xcr0_supported().bits(), 0x207);
    assert!(check(&applied).is_empty(), "{:?}", check(&applied));
}

#[test]
fn firecracker_templates_mask_the_same_bits() {
    let out = xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "intel-sapphire-rapids",
        "--format",
        "firecracker",
    ]);
    let v = json(&out);
    assert_eq!(v["msr_modifiers"], serde_json::json!([]));
    let modifiers = v["cpuid_modifiers"].as_array().unwrap();
    for m in modifiers {
        for r in m["modifiers"].as_array().unwrap() {
            let bitmap = r["bitmap"].as_str().unwrap();
            assert_eq!(bitmap.len(), 34, "{bitmap}");
            assert!(bitmap.starts_with("0b"));
            assert!(bitmap[2..].chars().all(|c| matches!(c, '0' | '1' | 'x')));
        }
    }
    let entry = |leaf: &str, sub: &str| {
        modifiers
            .iter()
            .find(|m| m["leaf"] == leaf && m["subleaf"] == sub)
            .unwrap_or_else(|| panic!("{leaf}.{sub}"))
    };
    // Leaf 0xD sub-leaf 0 set whole: XCR0 0x7, 832 bytes; indexed.
    let d0 = entry("0xd", "0x0");
    assert_eq!(d0["flags"], 1);
    assert_eq!(
        d0["modifiers"][0],
        serde_json::json!({"register": "eax", "bitmap": format!("0b{:032b}", 7)})
    );
    assert_eq!(d0["modifiers"][2]["bitmap"], format!("0b{:032b}", 832));
    // Leaf 7.0 EBX: AVX512F (bit 16) cleared, AVX2 (bit 5) left alone.
    let ebx = &entry("0x7", "0x0")["modifiers"][0];
    assert_eq!(ebx["register"], "ebx");
    let bits: Vec<char> = ebx["bitmap"].as_str().unwrap()[2..].chars().rev().collect();
    assert_eq!((bits[16], bits[5]), ('0', 'x'));
    // 7.1 and the leaves to drop are not known to exist on layouts: left
    // out, with a warning.
    assert!(!modifiers
        .iter()
        .any(|m| m["leaf"] == "0x7" && m["subleaf"] == "0x1"));
    assert!(
        stderr(&out).contains("Firecracker refuses a modifier"),
        "{}",
        stderr(&out)
    );

    // Full dumps say which entries every host has.
    let (Some(spr), Some(genoa)) = (
        shared(
            "firecracker over dumps",
            "GenuineIntel00806F8_SapphireRapids_05.txt",
        ),
        shared(
            "firecracker over dumps",
            "AuthenticAMD0A10F11_K19_Genoa_01.txt",
        ),
    ) else {
        return;
    };
    let v = json(&xstate(&[
        "pool",
        "baseline",
        &spr,
        &genoa,
        "--format",
        "firecracker",
    ]));
    assert!(v["cpuid_modifiers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["leaf"] == "0x7" && m["subleaf"] == "0x1"));
}

#[test]
fn dumps_profiles_and_a_host_without_xsave() {
    // A pre-XSAVE dump (no leaf 0xD) is a legacy-only host, not an error.
    let old = fixture("no-leaf-0xd-cpuid-r.txt");
    let v = json(&xstate(&["pool", "baseline", "amd-zen3", &old, "--json"]));
    assert_eq!(v["xcr0"], "0x3");
    assert_eq!(v["xsave"], false);
    assert_eq!(v["xsave_features"], "0x0");
    assert!(v["excluded"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("no XSAVE: legacy-only"));
    let leaf1 = v["feature_masks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["leaf"] == "0x1")
        .unwrap()
        .clone();
    assert!(leaf1["features"]
        .as_array()
        .unwrap()
        .contains(&Value::from("XSAVE")));
    // And a destination: x87/SSE state fits, AVX state does not.
    let text = stdout(&xstate(&["layout", "--layout", &old]));
    assert!(text.contains("x87") && !text.contains("AVX"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let zen3 = xstate::layout::catalog::get("amd-zen3").unwrap();
    for (avx, code) in [(false, 0), (true, 1)] {
        let mut regs = RegisterFile::new();
        regs.set_xmm(1, 0x1234).unwrap();
        if avx {
            regs.set_ymm(1, [0x1234, 5]).unwrap();
        }
        let stream = dir.path().join(format!("s{avx}.xst"));
        let vcpu = stream::Vcpu::new(
            regs,
            // The vCPU enabled only what it uses: an XCR0 with AVX cannot
            // be set on a legacy-only CPU either.
            xstate::xregs::XstateRegisters::with_xcr0(xstate::Xfeatures::from_bits(if avx {
                0x7
            } else {
                0x3
            })),
        );
        std::fs::write(
            &stream,
            stream::encode(&[vcpu], &stream::Source::of(zen3)).unwrap(),
        )
        .unwrap();
        let out = xstate(&["stream", "check", stream.to_str().unwrap(), "--to", &old]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // A host profile: what its KVM offers counts, and is named.
    let profile = fixture("intel-emr-kvm-profile.json");
    let v = json(&xstate(&[
        "pool",
        "baseline",
        &profile,
        "intel-sapphire-rapids",
        "--json",
    ]));
    assert_eq!(v["xcr0"], "0x2e7");
    let amx = v["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == 18)
        .unwrap()
        .clone();
    assert_eq!(
        amx["reason"],
        "KVM on intel-emr-host (Linux 6.18) offers guests XCR0 0x2e7"
    );
    // KVM JSON entries are a host too; a dump that contradicts itself or
    // does not parse is refused.
    let dir = tempfile::tempdir().unwrap();
    let mut set = CpuidSet::from_cpuid_raw(&guest_text()).unwrap();
    let inconsistent = dir.path().join("inconsistent.json");
    std::fs::write(&inconsistent, set.to_kvm_json()).unwrap();
    let out = xstate(&["pool", "baseline", inconsistent.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(
        "AVX-512 opmask (component 5) is enumerated but its size and offset are missing"
    ));
    set.remove_leaf(0xd);
    for (sub, regs) in xstate::layout::catalog::get("intel-sapphire-rapids")
        .unwrap()
        .to_cpuid()
        .subleaves
    {
        set.set(0xd, sub, regs).unwrap();
    }
    let kvm_json = dir.path().join("host.json");
    std::fs::write(&kvm_json, set.to_kvm_json()).unwrap();
    let v = json(&xstate(&[
        "pool",
        "baseline",
        kvm_json.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["hosts"][0], "host");
    assert_eq!(v["xcr0"], "0x602e7");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "   0x0000000d 0x00: eax=0x7 ebx=0x0\n").unwrap();
    let out = xstate(&["pool", "baseline", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Every real dump together.
    let Some(dir) = common::shared_cpuid_dir("pool over every dump") else {
        return;
    };
    let mut args = vec!["pool".to_string(), "baseline".into(), "--json".into()];
    for e in std::fs::read_dir(dir).unwrap() {
        args.push(e.unwrap().path().to_str().unwrap().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = json(&xstate(&args));
    // Zen 3 has no AVX-512 and PKRU at 2432: x87, SSE and AVX.
    assert_eq!(v["xcr0"], "0x7");
}

#[test]
fn layouts_whose_xcr0_breaks_a_rule_warn_and_never_reach_a_guest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tilecfg-only.toml");
    let spr = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/layouts/intel-sapphire-rapids.toml"
    ))
    .unwrap();
    // Sapphire Rapids without TILEDATA: XCR0 0x202e7.
    let cut = spr.find("[[component]]\nid = 18").unwrap();
    let text = spr[..cut]
        .replace(
            "xcr0_supported = \"0x602e7\"",
            "xcr0_supported = \"0x202e7\"",
        )
        .replace(
            "standard_size = 11008",
            "standard_size = 2816\nxsave_features = \"0x1f\"",
        );
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let out = xstate(&["layout", "--layout", file]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warning = stderr(&out);
    assert!(
        warning.contains("warning: layout")
            && warning.contains("XCR0 0x202e7 breaks a rule: AMX TILECFG and TILEDATA"),
        "{warning}"
    );
    let out = xstate(&["pool", "baseline", file, "--json"]);
    assert!(stderr(&out).contains("warning"));
    let v = json(&out);
    assert_eq!(v["xcr0"], "0x2e7");
    assert_eq!(
        v["excluded"][0]["reason"],
        "breaks an XSETBV rule: AMX TILECFG and TILEDATA (bits 17-18) must be both set or both clear"
    );
    // A catalog layout loads without a word.
    assert!(stderr(&xstate(&["layout", "--layout", "intel-sapphire-rapids"])).is_empty());
}

#[test]
fn cpuid_check_lists_every_inconsistency() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    let mut set = CpuidSet::from_cpuid_raw(&guest_text()).unwrap();
    // Make it consistent first: the guest text has AVX-512 flags and the
    // whole SPR XCR0 but only sub-leaf 2.
    xstate::migrate::pool::baseline(
        &[xstate::migrate::pool::PoolHost::from(
            xstate::layout::catalog::get("intel-sapphire-rapids")
                .unwrap()
                .clone(),
        )],
        &Default::default(),
    )
    .unwrap()
    .apply(&mut set)
    .unwrap();
    std::fs::write(&good, set.to_cpuid_raw()).unwrap();
    let out = xstate(&["cpuid", "check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v = json(&xstate(&[
        "cpuid",
        "check",
        good.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["consistent"], true);
    assert_eq!(v["xcr0_supported"], "0x602e7");

    // The raw guest text: flags and XCR0 without sub-leaves, AMX without XFD...
    let bad = dir.path().join("bad.txt");
    let text = guest_text().replace(
        "0x0000000d 0x01: eax=0x0000001f",
        "0x0000000d 0x01: eax=0x0000000f",
    );
    std::fs::write(&bad, text).unwrap();
    let out = xstate(&["cpuid", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8(out.stdout).unwrap();
    for want in [
        "is supported in XCR0 but leaf 0xD sub-leaf 5 is missing",
        "AMX is offered but XFD is clear",
        "APX_F (CPUID.(EAX=0x7,ECX=1):EDX[21]) is set",
    ] {
        assert!(report.contains(want), "{want}: {report}");
    }
    let v: Value = serde_json::from_slice(
        &xstate(&["cpuid", "check", bad.to_str().unwrap(), "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(v["consistent"], false);
    assert!(v["inconsistencies"].as_array().unwrap().len() >= 3);
    // Every real dump is consistent.
    if let Some(dir) = common::shared_cpuid_dir("cpuid check over the dumps") {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let out = xstate(&["cpuid", "check", p.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    // Not a CPUID: 1; no such file: 2; a huge file: 1 without reading it all.
    let not = dir.path().join("not.txt");
    std::fs::write(&not, "hello\n").unwrap();
    assert_eq!(
        xstate(&["cpuid", "check", not.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        xstate(&["cpuid", "check", "/nonexistent/x"]).status.code(),
        Some(2)
    );
    let huge = dir.path().join("huge.txt");
    std::fs::write(&huge, "x".repeat(5 << 20)).unwrap();
    let out = xstate(&["cpuid", "check", huge.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("larger than"));
}

/// A small Intel CPUID in `cpuid -r` text: leaf 1 ECX and leaf 7.0 EBX/EDX
/// as given, and leaf 0xD's sub-leaves as `(sub-leaf, eax, ebx, ecx, edx)`.
fn small_cpuid(leaf1_ecx: u32, leaf7: (u32, u32), leaf_d: &[(u32, u32, u32, u32, u32)]) -> String {
    let mut text = String::from(
        "   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n",
    );
    text += &format!(
        "   0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx={leaf1_ecx:#010x} edx=0x00000000\n"
    );
    text += &format!(
        "   0x00000007 0x00: eax=0x00000000 ebx={:#010x} ecx=0x00000000 edx={:#010x}\n",
        leaf7.0, leaf7.1
    );
    for (sub, eax, ebx, ecx, edx) in leaf_d {
        text += &format!(
            "   0x0000000d {sub:#04x}: eax={eax:#010x} ebx={ebx:#010x} ecx={ecx:#010x} edx={edx:#010x}\n"
        );
    }
    text
}

#[test]
fn cpuid_check_catches_components_without_flags_and_impossible_bits() {
    let dir = tempfile::tempdir().unwrap();
    let avx512 = [
        (2, 0x100, 0x240, 0, 0),
        (5, 0x40, 0x440, 0, 0),
        (6, 0x200, 0x480, 0, 0),
        (7, 0x400, 0x680, 0, 0),
    ];
    let with = |head: &[(u32, u32, u32, u32, u32)]| -> Vec<(u32, u32, u32, u32, u32)> {
        head.iter().chain(avx512.iter()).copied().collect()
    };
    let run = |name: &str, text: String| -> (Option<i32>, String) {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = xstate(&["cpuid", "check", path.to_str().unwrap()]);
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    // The same CPUID with its flags is consistent.
    let flags = (0x1c00_0000, (1 << 16, 0));
    let leaf_d = with(&[(0, 0xe7, 0xa80, 0xa80, 0), (1, 1, 0, 0, 0)]);
    let (code, report) = run("good.txt", small_cpuid(flags.0, flags.1, &leaf_d));
    assert_eq!(code, Some(0), "{report}");
    // XCR0 0xe7 with CPUID.1:ECX.AVX and 7.0:EBX.AVX512F clear.
    let (code, report) = run("no-flags.txt", small_cpuid(0x0c00_0000, (0, 0), &leaf_d));
    assert_eq!(code, Some(1), "{report}");
    for want in [
        "AVX components 0x4 are supported in XCR0",
        "but AVX is clear (CPUID.(EAX=0x1,ECX=0):ECX = 0x0c000000, bit 28)",
        "AVX-512 components 0xe0 are supported in XCR0",
        "but AVX512F is clear",
    ] {
        assert!(report.contains(want), "{want}: {report}");
    }
    // PT and arch LBR in IA32_XSS (0x8100), their flags set, XSAVES clear.
    let pt_lbr = (1 << 16 | 1 << 25, 1 << 19);
    let leaf_d = with(&[
        (0, 0xe7, 0xa80, 0xa80, 0),
        (1, 1, 0, 0x8100, 0),
        (8, 0x80, 0, 1, 0),
        (15, 0x328, 0, 1, 0),
    ]);
    let (code, report) = run("xss.txt", small_cpuid(flags.0, pt_lbr, &leaf_d));
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("IA32_XSS 0x8100 is supported") && report.contains("XSAVES is clear"),
        "{report}"
    );
    // The same without INTEL_PT and ARCH_LBR: both named too.
    let (_, report) = run("xss-no-flags.txt", small_cpuid(flags.0, flags.1, &leaf_d));
    assert!(
        report.contains("PT components 0x100 are supported in IA32_XSS")
            && report.contains("INTEL_PT is clear")
            && report.contains("Arch LBR components 0x8000 are supported in IA32_XSS")
            && report.contains("ARCH_LBR is clear"),
        "{report}"
    );
    // XCR0 0x8000000000000107 (what a pool baseline once emitted).
    let leaf_d = [
        (0, 0x107, 0x340, 0x340, 0x8000_0000),
        (1, 1, 0, 0, 0),
        (2, 0x100, 0x240, 0, 0),
        (8, 0x80, 0, 0, 0),
    ];
    let (code, report) = run("bit63.txt", small_cpuid(flags.0, (1 << 25, 0), &leaf_d));
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("XCR0 0x8000000000000107 breaks a rule: supervisor components")
            && report.contains("XCR0 0x8000000000000107 breaks a rule: bit 63 is reserved"),
        "{report}"
    );
    // IA32_XSS with PKRU (a user component) and bit 63.
    let leaf_d = with(&[
        (0, 0xe7, 0xa80, 0xa80, 0),
        (1, 0xf, 0x988, 0x200, 0x8000_0000),
    ]);
    let (code, report) = run("xss-user.txt", small_cpuid(flags.0, flags.1, &leaf_d));
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("supported IA32_XSS 0x8000000000000200 has 0x8000000000000200, which IA32_XSS never holds"),
        "{report}"
    );
}

/// `n` copies of the catalog's Zen 4 layout as files named `zen4-0`...,
/// each a host of its own name.
fn zen4_files(dir: &std::path::Path, n: usize) -> Vec<String> {
    let zen4 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/layouts/amd-zen4.toml"
    ))
    .unwrap();
    (0..n)
        .map(|i| {
            let path = dir.join(format!("zen4-{i}.toml"));
            std::fs::write(
                &path,
                zen4.replace("name = \"amd-zen4\"", &format!("name = \"zen4-{i}\"")),
            )
            .unwrap();
            path.to_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn text_output_names_each_component_once() {
    let text = stdout(&xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "intel-sapphire-rapids",
    ]));
    for c in [5, 6, 7, 9] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("(component {c})")))
            .collect();
        assert_eq!(lines.len(), 1, "component {c}: {lines:#?}");
        assert!(lines[0].starts_with("excluded "), "{}", lines[0]);
    }
    assert!(!text.contains("offsets differ for"), "{text}");
    // Kept at the reference's offsets: one line saying so, no exclusion.
    let text = stdout(&xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "intel-sapphire-rapids",
        "--allow-offset-mismatch",
        "--reference",
        "intel-sapphire-rapids",
    ]));
    let pkru: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(component 9)"))
        .collect();
    assert_eq!(
        pkru,
        [
            "offsets differ for PKRU (component 9): amd-zen4 2432, intel-sapphire-rapids 2688 \
             (kept at intel-sapphire-rapids's)"
        ]
    );
}

#[test]
fn warnings_and_reasons_stay_short_for_a_thousand_hosts() {
    // The same host a thousand times: named once.
    let mut args: Vec<&str> = vec!["pool", "baseline"];
    args.extend(std::iter::repeat_n("amd-zen4", 1000));
    args.extend(["intel-sapphire-rapids", "--format", "firecracker"]);
    let out = xstate(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let warning = stderr(&out);
    assert!(warning.len() < 1024, "{} bytes: {warning}", warning.len());
    assert_eq!(warning.matches("amd-zen4").count(), 1, "{warning}");
    let v = json(&xstate(
        &[&args[..args.len() - 2], &["--json"][..]].concat(),
    ));
    let amx = v["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == 18)
        .unwrap()
        .clone();
    assert_eq!(amx["reason"], "not on amd-zen4");
    // Thirteen hosts without a full CPUID: eight named, and 5 more.
    let dir = tempfile::tempdir().unwrap();
    let files = zen4_files(dir.path(), 12);
    let mut args: Vec<&str> = vec!["pool", "baseline"];
    args.extend(files.iter().map(String::as_str));
    args.push("intel-sapphire-rapids");
    let out = xstate(&[&args[..], &["--format", "firecracker"][..]].concat());
    let warning = stderr(&out);
    assert!(
        warning.contains(
            "not known on zen4-0, zen4-1, zen4-2, zen4-3, zen4-4, zen4-5, zen4-6, zen4-7 and 5 \
             more (give full CPUID dumps"
        ),
        "{warning}"
    );
    let v = json(&xstate(&[&args[..], &["--json"][..]].concat()));
    let reason = |id: u64| {
        v["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        reason(18),
        "not on zen4-0, zen4-1, zen4-2, zen4-3, zen4-4, zen4-5, zen4-6, zen4-7 and 4 more"
    );
    // The one host at another offset is still named.
    assert_eq!(
        reason(9),
        "standard offset differs (zen4-0, zen4-1, zen4-2, zen4-3, zen4-4, zen4-5, zen4-6, \
         zen4-7 and 4 more 2432, intel-sapphire-rapids 2688)"
    );
    // --allow-offset-mismatch names the other hosts once each, capped.
    let out = xstate(
        &[
            &args[..],
            &[
                "--allow-offset-mismatch",
                "--reference",
                "intel-sapphire-rapids",
            ][..],
        ]
        .concat(),
    );
    assert!(
        stderr(&out).contains("zen4-7 and 4 more"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).len() < 1024, "{}", stderr(&out));
}

#[test]
fn a_file_that_is_not_text_is_rejected_input() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"\x7fELF\x02\x01\x01\x00\xff\xfe\x80\x00junk").unwrap();
    let junk = junk.to_str().unwrap();
    let out = xstate(&["cpuid", "check", junk]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains(&format!("{junk} is not UTF-8 text (byte 8 is not)")),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("stream did not contain valid UTF-8"));
    // As a pool host, and as the guest to apply to: rejected, nothing written.
    // (ELF is read as a core file, --layout CORE; this one is no core.)
    let out = xstate(&["pool", "baseline", junk]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(read as a core file): not a readable 64-bit ELF file"),
        "{}",
        stderr(&out)
    );
    let written = dir.path().join("out.cpuid");
    let out = xstate(&[
        "pool",
        "baseline",
        "amd-zen4",
        "--apply-to",
        junk,
        "-o",
        written.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!written.exists());
    // A directory is not readable as a file: an I/O error, exit 2.
    let out = xstate(&["cpuid", "check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_guest_whose_only_cet_flag_is_masked_gets_no_cet() {
    let part = "an IBT-only guest and a Milan host";
    let (Some(emr), Some(milan)) = (
        shared(part, "host-intel-emr-cpuid-r.txt"),
        shared(part, "AuthenticAMD0A00F11_K19_Milan_02.txt"),
    ) else {
        return;
    };
    // The Emerald Rapids dump with shadow stacks (CET_SS) clear, IBT set.
    let mut set = CpuidSet::parse(&std::fs::read_to_string(&emr).unwrap()).unwrap();
    let mut leaf7 = set.get(7, 0).unwrap();
    leaf7.ecx &= !features::CET_SS.mask();
    set.set(7, 0, leaf7).unwrap();
    assert!(set.has_feature(features::CET_IBT) && set.xss_supported().bits() == 0x1800);
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("ibt-only.cpuid");
    std::fs::write(&guest, set.to_cpuid_raw()).unwrap();
    let guest = guest.to_str().unwrap();
    stdout(&xstate(&["cpuid", "check", guest]));
    // Milan has shadow stacks but no IBT: IBT is masked, and the guest is
    // left without a CET flag, so it gets no CET state either.
    let applied = dir.path().join("applied.cpuid");
    let out = xstate(&[
        "pool",
        "baseline",
        &milan,
        "--apply-to",
        guest,
        "-o",
        applied.to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("CET_U (component 11)"),
        "{}",
        stderr(&out)
    );
    stdout(&out);
    let text = std::fs::read_to_string(&applied).unwrap();
    let got = CpuidSet::parse(&text).unwrap();
    assert_eq!(got.xss_supported().bits(), 0, "{text}");
    assert!(check(&got).is_empty(), "{:?}", check(&got));
    stdout(&xstate(&["cpuid", "check", applied.to_str().unwrap()]));
    let v = json(&xstate(&[
        "pool",
        "baseline",
        &milan,
        "--apply-to",
        guest,
        "--json",
    ]));
    let cet = v["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == 11)
        .unwrap();
    assert!(
        cet["reason"]
            .as_str()
            .unwrap()
            .starts_with("the guest CPUID's CET_IBT is masked (not on every host)"),
        "{cet}"
    );
    // Both as hosts: no CET flag is on both, so neither the baseline nor
    // its Firecracker template offers CET (sub-leaf 1 ECX bits 11, 12).
    let v = json(&xstate(&["pool", "baseline", &milan, guest, "--json"]));
    assert_eq!(v["xss"], "0x0", "{v}");
    let v = json(&xstate(&[
        "pool",
        "baseline",
        &milan,
        guest,
        "--format",
        "firecracker",
    ]));
    let d1 = v["cpuid_modifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["leaf"] == "0xd" && m["subleaf"] == "0x1")
        .unwrap();
    let ecx = d1["modifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["register"] == "ecx")
        .unwrap();
    assert_eq!(ecx["bitmap"], format!("0b{:032b}", 0), "{d1}");
}

#[test]
fn apply_to_refuses_a_guest_cpuid_cut_short() {
    let Some(emr) = shared("a cut-short guest", "host-intel-emr-cpuid-r.txt") else {
        return;
    };
    // The first 20 lines: leaf 0 promises leaves up to 0x20, leaf 1 sets
    // XSAVE, leaf 0xD is gone. Not a CPU without XSAVE: refused, as cpuid
    // check and --layout refuse it, and nothing is written.
    let text = std::fs::read_to_string(&emr).unwrap();
    let cut: String = text.lines().take(20).map(|l| format!("{l}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("cut.cpuid");
    std::fs::write(&guest, cut).unwrap();
    let guest = guest.to_str().unwrap();
    let check = xstate(&["cpuid", "check", guest]);
    assert_eq!(check.status.code(), Some(1));
    assert_eq!(
        xstate(&["layout", "--layout", guest]).status.code(),
        Some(1)
    );
    let out = dir.path().join("g.cpuid");
    for format in ["cpuid-r", "kvm-json", "json", "text"] {
        let o = xstate(&[
            "pool",
            "baseline",
            "amd-zen3",
            "--apply-to",
            guest,
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "{guest}: the guest CPUID cannot take the baseline: no CPUID leaf 0xD sub-leaf 0, \
                 though leaf 0 says the CPU has basic leaves up to 0x20"
            )),
            "{err}"
        );
        assert!(!out.exists(), "{format}");
    }
}

#[test]
fn an_unknown_reference_names_at_most_eight_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let files = zen4_files(dir.path(), 3000);
    let mut args: Vec<&str> = vec!["pool", "baseline"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--allow-offset-mismatch", "--reference", "nope"]);
    let out = xstate(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.len() < 1024, "{} bytes: {err}", err.len());
    assert!(
        err.contains(
            "--reference nope is not a host of the pool (zen4-0, zen4-1, zen4-2, zen4-3, zen4-4, \
             zen4-5, zen4-6, zen4-7 and 2992 more)"
        ),
        "{err}"
    );
}
