//! The `xstate` binary end to end: output shapes and exit statuses.

mod cli_common;
mod common;

use cli_common::{json, xstate};

use std::process::{Command, Output};

use serde_json::Value;
use xstate::prelude::*;
use xstate::{layout::catalog, ComponentId, Format, RegisterFile};

#[test]
fn layout_json_has_the_documented_shape() {
    let v = json(&xstate(&[
        "layout",
        "--layout",
        "intel-sapphire-rapids",
        "--json",
    ]));
    assert_eq!(v["name"], "intel-sapphire-rapids");
    assert_eq!(v["vendor"], "GenuineIntel");
    assert_eq!(v["xcr0_supported"], "0x602e7");
    assert_eq!(v["xss_supported"], "0xdd00");
    assert_eq!(v["standard_size"], 11008);
    let comps = v["components"].as_array().unwrap();
    let by_id = |id: u64| comps.iter().find(|c| c["id"] == id).unwrap();
    assert_eq!(by_id(9)["offset"], 2688);
    assert_eq!(by_id(18)["align64"], true);
    assert_eq!(by_id(18)["xfd"], true);
    assert_eq!(
        by_id(8)["offset"],
        Value::Null,
        "supervisor components have no standard offset"
    );
    assert_eq!(by_id(8)["supervisor"], true);
    // Compacted figures assume every supported component (XCR0 and XSS).
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let all = spr.supported();
    for c in comps {
        let id = ComponentId::new(c["id"].as_u64().unwrap() as u8).unwrap();
        assert_eq!(
            c["compacted_offset"],
            spr.compacted_offset(all, id).unwrap()
        );
    }
    assert_eq!(v["compacted_size"], spr.compacted_size());
}

#[test]
fn layout_reads_host_catalog_files_and_dumps() {
    assert!(xstate(&["layout"]).status.success());
    let out = xstate(&["layout", "--layout", "amd-zen3"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("PKRU") && text.contains("2432"), "{text}");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/layouts/intel-lunar-lake.toml");
    let v = json(&xstate(&["layout", "--layout", file, "--json"]));
    assert_eq!(v["name"], "intel-lunar-lake");
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("zen3.txt");
    std::fs::write(
        &dump,
        "   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n\
         \x20  0x0000000d 0x00: eax=0x00000207 ebx=0x00000988 ecx=0x00000988 edx=0x00000000\n\
         \x20  0x0000000d 0x01: eax=0x0000000f ebx=0x00000370 ecx=0x00000000 edx=0x00000000\n\
         \x20  0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000\n\
         \x20  0x0000000d 0x09: eax=0x00000008 ebx=0x00000980 ecx=0x00000000 edx=0x00000000\n",
    )
    .unwrap();
    let v = json(&xstate(&[
        "layout",
        "--layout",
        dump.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["vendor"], "AuthenticAMD");
    assert_eq!(v["standard_size"], 2440);
}

#[test]
fn bad_layouts_and_usage_have_distinct_statuses() {
    // Usage error: unknown flag.
    assert_eq!(xstate(&["layout", "--bogus"]).status.code(), Some(2));
    // I/O error: a file that does not exist.
    assert_eq!(
        xstate(&["layout", "--layout", "/nonexistent/x.toml"])
            .status
            .code(),
        Some(2)
    );
    // Rejected input: an invalid layout names the components at fault.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\nvendor = \"GenuineIntel\"\nsource = \"test\"\n\
         xcr0_supported = \"0x80007\"\n\
         [[component]]\nid = 2\nsize = 256\noffset = 576\n\
         [[component]]\nid = 19\nsize = 128\noffset = 700\n",
    )
    .unwrap();
    let out = xstate(&["layout", "--layout", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AVX") && err.contains("APX") && err.contains("700"),
        "{err}"
    );
}

#[test]
fn decode_prints_every_register_with_init_rules() {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_xmm(1, 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10)
        .unwrap();
    regs.set_zmm(17, [1, 2, 3, 4]).unwrap();
    regs.set_k(2, 0xabcd).unwrap();
    let mut area = regs.encode(zen4, Format::Standard).unwrap();
    // Stale bytes in the init AVX component must read as zero.
    let avx = zen4.offset(xstate::ComponentId::AVX).unwrap() as usize;
    area[avx..avx + 256].fill(0xee);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("area.bin");
    std::fs::write(&file, &area).unwrap();

    let v = json(&xstate(&[
        "decode",
        file.to_str().unwrap(),
        "--layout",
        "amd-zen4",
        "--json",
    ]));
    assert_eq!(v["format"], "standard");
    assert_eq!(v["xcomp_bv"], "0x0");
    let r = &v["registers"];
    assert_eq!(r["xmm1"], "0x0102030405060708090a0b0c0d0e0f10");
    assert_eq!(
        r["ymm1"],
        format!("0x{}0102030405060708090a0b0c0d0e0f10", "0".repeat(32))
    );
    assert_eq!(r["fcw"], "0x037f");
    assert_eq!(r["mxcsr"], "0x00001f80");
    assert_eq!(r["st0"], format!("0x{}", "0".repeat(20)));
    assert_eq!(r["k2"], "0x000000000000abcd");
    assert_eq!(
        r["zmm17"],
        format!("0x{:032x}{:032x}{:032x}{:032x}", 4, 3, 2, 1)
    );
    assert_eq!(r["pkru"], "0x00000000");
    // Registers of components zen4 lacks are not printed.
    for absent in ["r16", "tmm0", "tilecfg", "bnd0"] {
        assert!(r.get(absent).is_none(), "{absent} printed");
    }
    assert_eq!(
        r.as_object().unwrap().len(),
        6 + 8 + 1 + 16 + 16 + 32 + 8 + 1
    );

    // The same state compacted decodes alike.
    let compacted = regs.encode(zen4, Format::Compacted).unwrap();
    std::fs::write(&file, &compacted).unwrap();
    let c = json(&xstate(&[
        "decode",
        file.to_str().unwrap(),
        "--layout",
        "amd-zen4",
        "--json",
    ]));
    assert_eq!(c["format"], "compacted");
    assert_eq!(c["registers"], v["registers"]);
}

#[test]
fn decode_rejects_bad_areas_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.bin");
    std::fs::write(&file, [0u8; 100]).unwrap();
    let out = xstate(&["decode", file.to_str().unwrap(), "--layout", "amd-zen4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too small"));

    let mut area = vec![0u8; 4096];
    area[540] = 1; // a reserved header byte
    std::fs::write(&file, &area).unwrap();
    let out = xstate(&["decode", file.to_str().unwrap(), "--layout", "amd-zen4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("540"));

    let missing = dir.path().join("missing.bin");
    let out = xstate(&["decode", missing.to_str().unwrap(), "--layout", "amd-zen4"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn report_runs() {
    let out = xstate(&["report"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("host XSAVE layout"));
    // The live migration moves the whole extended state in a version 2
    // stream, where /dev/kvm is usable.
    if std::path::Path::new("/dev/kvm").exists() && !text.contains("skipped: /dev/kvm") {
        for line in [
            "stream version 2",
            "IA32_XFD_ERR",
            "registers of the area identical",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}

#[test]
fn diff_lists_components_that_differ() {
    let out = xstate(&["diff", "amd-zen4", "intel-sapphire-rapids", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["components"].as_array().unwrap();
    let pkru = rows.iter().find(|r| r["id"] == 9).unwrap();
    assert_eq!(pkru["a"]["offset"], 2432);
    assert_eq!(pkru["b"]["offset"], 2688);
    let tiles = rows.iter().find(|r| r["id"] == 18).unwrap();
    assert_eq!(tiles["a"], Value::Null);
    assert!(rows.iter().all(|r| r["id"] != 2), "AVX is alike on both");
    assert_eq!(
        xstate(&["diff", "amd-zen3", "amd-zen3"]).status.code(),
        Some(0)
    );
}

#[test]
fn kvm_check_judges_files_like_kvm_set_xsave() {
    if !std::path::Path::new("/dev/kvm").exists() {
        return common::skip("xstate kvm check", "/dev/kvm is absent");
    }
    let info = xstate(&["kvm", "info", "--json"]);
    if !info.status.success() {
        return common::skip(
            "xstate kvm check",
            &format!(
                "/dev/kvm unusable: {}",
                String::from_utf8_lossy(&info.stderr)
            ),
        );
    }
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    let size = info["buffer_size"].as_u64().unwrap() as usize;
    assert!(info["guest_xcr0"].as_str().unwrap().starts_with("0x"));
    assert!(info["host_layout"]["component"].is_array());

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.bin");
    std::fs::write(&good, vec![0u8; size]).unwrap();
    let mut bad = vec![0u8; size];
    bad[520] = 1; // XCOMP_BV
    let bad_file = dir.path().join("bad.bin");
    std::fs::write(&bad_file, &bad).unwrap();
    let short = dir.path().join("short.bin");
    std::fs::write(&short, [0u8; 100]).unwrap();

    let out = xstate(&["kvm", "check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}: ok\n", good.display())
    );

    let out = xstate(&[
        "kvm",
        "check",
        good.to_str().unwrap(),
        bad_file.to_str().unwrap(),
        short.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{}: rejected: XCOMP_BV", bad_file.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: rejected: buffer is 100 bytes",
            short.display()
        )),
        "{text}"
    );

    let missing = dir.path().join("missing.bin");
    let out = xstate(&[
        "kvm",
        "check",
        good.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(xstate(&["kvm", "check"]).status.code(), Some(2));
}

#[test]
fn convert_writes_the_destination_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_zmm(9, [9, 8, 7, 6]).unwrap();
    let input = dir.path().join("spr.bin");
    std::fs::write(&input, regs.encode(spr, Format::Standard).unwrap()).unwrap();
    let out = dir.path().join("zen4.bin");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "convert",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            "--from",
            "intel-sapphire-rapids",
            "--to",
            "amd-zen4",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| xstate(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // AMX is init on the source, Zen 4 lacks it: refused without --drop-init.
    let r = run(args(&[]));
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("AMX"));
    assert!(!out.exists(), "no output file on error");
    let r = run(args(&["--drop-init", "--compacted"]));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let zen4 = catalog::get("amd-zen4").unwrap();
    let moved = RegisterFile::decode(&std::fs::read(&out).unwrap(), zen4).unwrap();
    assert_eq!(moved, regs);
}

#[test]
fn stream_encode_check_decode_and_pool_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_zmm(20, [5, 6, 7, 8]).unwrap();
    regs.set_mxcsr(0x2_1F80).unwrap(); // AMD's bit 17
    std::fs::write(p("area.bin"), regs.encode(zen4, Format::Standard).unwrap()).unwrap();

    let r = xstate(&[
        "stream",
        "encode",
        &p("area.bin"),
        &p("s.xst"),
        "--layout",
        "amd-zen4",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // Intel lacks MXCSR bit 17: incompatible, with the reason.
    let r = xstate(&[
        "stream",
        "check",
        &p("s.xst"),
        "--to",
        "intel-sapphire-rapids",
        "--json",
    ]);
    assert_eq!(r.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["compatible"], false);
    assert!(v["vcpus"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("MXCSR"));
    // A Zen 3 lacks AVX-512 but has AMD's MXCSR bit.
    let r = xstate(&["stream", "check", &p("s.xst"), "--to", "amd-zen3"]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("Hi16_ZMM") && !text.contains("MXCSR"),
        "{text}"
    );
    assert_eq!(
        xstate(&["stream", "check", &p("s.xst"), "--to", "amd-zen4"])
            .status
            .code(),
        Some(0)
    );
    // Decode for Zen 4 again; Zen 3 has no place for zmm20.
    let r = xstate(&[
        "stream",
        "decode",
        &p("s.xst"),
        &p("back.bin"),
        "--layout",
        "amd-zen4",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // The same state, PKRU written with its bit set (its init value 0) so
    // that every kernel's KVM_SET_XSAVE restores it alike.
    let mut pinned = regs.clone();
    pinned.set_pkru(0).unwrap();
    assert_eq!(
        RegisterFile::decode(&std::fs::read(p("back.bin")).unwrap(), zen4).unwrap(),
        pinned
    );
    let r = xstate(&[
        "stream",
        "decode",
        &p("s.xst"),
        &p("z3.bin"),
        "--layout",
        "amd-zen3",
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        !dir.path().join("z3.bin").exists(),
        "no output file on error"
    );
    // `xstate decode` reads the stream as well.
    let r = json(&xstate(&[
        "decode",
        &p("s.xst"),
        "--layout",
        "amd-zen4",
        "--json",
    ]));
    assert_eq!(
        r["registers"]["zmm20"],
        format!("0x{:032x}{:032x}{:032x}{:032x}", 8, 7, 6, 5)
    );
    // A corrupted stream is rejected.
    let mut bad = std::fs::read(p("s.xst")).unwrap();
    bad[40] ^= 1;
    std::fs::write(p("bad.xst"), &bad).unwrap();
    assert_eq!(
        xstate(&["stream", "check", &p("bad.xst"), "--to", "amd-zen4"])
            .status
            .code(),
        Some(1)
    );

    let v = json(&xstate(&[
        "pool",
        "baseline",
        "intel-sapphire-rapids",
        "amd-zen4",
        "--json",
    ]));
    // AVX-512 and PKRU sit at other offsets on Zen 4: excluded by default.
    assert_eq!(v["xcr0"], "0x7");
    assert!(v["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == 18));
    assert!(v["offset_mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == 9 && m["kept"] == false));
    assert_eq!(v["cpuid_0xd"][0]["eax"], "0x00000007");
}

/// `kvm info --json`, or `None` with the skip printed.
fn kvm_info(part: &str) -> Option<Value> {
    if !std::path::Path::new("/dev/kvm").exists() {
        common::skip(part, "/dev/kvm is absent");
        return None;
    }
    let info = xstate(&["kvm", "info", "--json"]);
    if !info.status.success() {
        common::skip(
            part,
            &format!(
                "/dev/kvm unusable: {}",
                String::from_utf8_lossy(&info.stderr)
            ),
        );
        return None;
    }
    Some(serde_json::from_slice(&info.stdout).unwrap())
}

#[test]
fn kvm_info_reports_what_was_measured() {
    let Some(info) = kvm_info("xstate kvm info") else {
        return;
    };
    assert!(!info["kernel_release"].as_str().unwrap().is_empty());
    let host_size = info["host_layout_standard_size"].as_u64().unwrap();
    assert_eq!(
        info["host_layout"]["standard_size"].as_u64().unwrap(),
        host_size
    );
    assert!(info["buffer_size"].as_u64().unwrap() >= 4096);
    assert_eq!(info["mxcsr_mask"], info["host_mxcsr_mask"]);
    let guest_xcr0 = u64::from_str_radix(
        info["guest_xcr0"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    // PKRU's measured behaviour is there exactly when KVM offers PKRU.
    assert_eq!(info["pkru"].is_object(), guest_xcr0 & 0x200 != 0, "{info}");
    if info["pkru"].is_object() {
        let on_clear = info["pkru"]["on_clear_bit"].as_str().unwrap();
        assert!(["reset", "kept", "loaded"].contains(&on_clear) || on_clear.starts_with("0x"));
    }
    let amx = &info["amx"];
    assert_eq!(amx["offered"], guest_xcr0 & 0x60000 == 0x60000);
    if amx["permitted"] == true && amx["offered"] == false {
        assert!(amx["summary"]
            .as_str()
            .unwrap()
            .contains("KVM offers guests no AMX"));
    }
    // The JSON is this host's profile: every SRC argument reads it back.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("host.json");
    std::fs::write(&profile, serde_json::to_vec(&info).unwrap()).unwrap();
    let from_profile = json(&xstate(&[
        "layout",
        "--layout",
        profile.to_str().unwrap(),
        "--json",
    ]));
    let host = json(&xstate(&["layout", "--json"]));
    assert_eq!(from_profile["xcr0_supported"], host["xcr0_supported"]);
    assert_eq!(from_profile["components"], host["components"]);
    let text = String::from_utf8(xstate(&["kvm", "info"]).stdout).unwrap();
    for line in [
        "kernel:",
        "KVM buffer size:",
        "MXCSR mask:",
        "AMX for guests:",
        "PKRU:",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[test]
fn kvm_flag_writes_exactly_kvm_size_or_nothing() {
    let Some(info) = kvm_info("--kvm on convert and stream decode") else {
        return;
    };
    let size = info["buffer_size"].as_u64().unwrap() as usize;
    let guest_xcr0 = u64::from_str_radix(
        info["guest_xcr0"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();

    // An SSE state from another CPU: converted and decoded to KVM's size.
    let mut regs = RegisterFile::new();
    regs.set_xmm(5, 0x1234).unwrap();
    std::fs::write(path("sse.bin"), regs.encode(spr, Format::Standard).unwrap()).unwrap();
    let out = xstate(&[
        "convert",
        &path("sse.bin"),
        &path("sse.kvm"),
        "--from",
        "intel-sapphire-rapids",
        "--kvm",
        "--drop-init",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(path("sse.kvm")).unwrap().len(), size);
    let out = xstate(&[
        "stream",
        "encode",
        &path("sse.bin"),
        &path("sse.s"),
        "--layout",
        "intel-sapphire-rapids",
        "--guest-xcr0",
        "0x7",
    ]);
    assert!(out.status.success());
    let out = xstate(&[
        "stream",
        "decode",
        &path("sse.s"),
        &path("sse2.kvm"),
        "--kvm",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let area = std::fs::read(path("sse2.kvm")).unwrap();
    assert_eq!(area.len(), size);
    let check = xstate(&["kvm", "check", &path("sse.kvm"), &path("sse2.kvm")]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // PKRU goes with its bit set where KVM offers it.
    let xstate_bv = u64::from_le_bytes(area[512..520].try_into().unwrap());
    assert_eq!(xstate_bv & 0x200, guest_xcr0 & 0x200);

    // AMX tile data: written only where KVM offers AMX; otherwise refused,
    // naming the component, and no file appears.
    let mut amx = RegisterFile::new();
    amx.set_tmm(0, &[7; 1024]).unwrap();
    std::fs::write(path("amx.bin"), amx.encode(spr, Format::Standard).unwrap()).unwrap();
    let out = xstate(&[
        "stream",
        "encode",
        &path("amx.bin"),
        &path("amx.s"),
        "--layout",
        "intel-sapphire-rapids",
    ]);
    assert!(out.status.success());
    let out = xstate(&[
        "stream",
        "decode",
        &path("amx.s"),
        &path("amx.kvm"),
        "--kvm",
    ]);
    if guest_xcr0 & 0x40000 == 0 {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("component 18"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!dir.path().join("amx.kvm").exists());
    } else {
        assert!(out.status.success());
        assert_eq!(std::fs::read(path("amx.kvm")).unwrap().len(), size);
    }
    // `--to host` judges this host's KVM too: a verdict, never null.
    let v = json(&xstate(&[
        "stream",
        "check",
        &path("sse.s"),
        "--to",
        "host",
        "--json",
    ]));
    assert_eq!(v["kvm_set_xsave_ok"], true, "{v}");
    assert_eq!(v["judged"], "cpu and kvm");
    let out = xstate(&["stream", "check", &path("amx.s"), "--to", "host", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["kvm_set_xsave_ok"],
        guest_xcr0 & 0x60000 == 0x60000,
        "{v}"
    );
    assert_eq!(
        out.status.code(),
        Some(if guest_xcr0 & 0x60000 == 0x60000 {
            0
        } else {
            1
        })
    );
    // Neither --layout nor --kvm: a usage error.
    assert_eq!(
        xstate(&["stream", "decode", &path("sse.s"), &path("x")])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        xstate(&[
            "stream",
            "decode",
            &path("sse.s"),
            &path("x"),
            "--kvm",
            "--layout",
            "amd-zen4"
        ])
        .status
        .code(),
        Some(2)
    );
}

/// A standard area for `layout` holding `regs`.
/// CET_U state XRSTORS takes: IA32_U_CET with shadow stacks enabled (bit
/// 0), IA32_PL3_SSP a canonical, aligned address.
fn cet_u() -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&1u64.to_le_bytes());
    b[8..].copy_from_slice(&0x7fff_ffff_f000u64.to_le_bytes());
    b
}

fn area_file(dir: &std::path::Path, name: &str, regs: &RegisterFile, layout: &str) -> String {
    let layout = catalog::get(layout).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, regs.encode(layout, Format::Standard).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn migration_decisions_judge_kvm_and_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let emr = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intel-emr-kvm-profile.json"
    );

    // AMX state (XSTATE_BV 0x60003, TILECFG palette 1, one tile row set)
    // to the Intel host, whose KVM offers guests XCR0 0x2e7 in 4096 bytes.
    let mut amx = RegisterFile::new();
    amx.set_fcw(0x37f).unwrap();
    amx.set_xmm(0, 1).unwrap();
    let mut cfg = [0u8; 64];
    cfg[0] = 1; // palette 1
    cfg[16] = 64; // tile 0: 64 bytes per row
    cfg[48] = 16; // tile 0: 16 rows
    amx.set_tilecfg(&cfg).unwrap();
    let mut tile = [0u8; 1024];
    tile[..64].fill(0x5a);
    amx.set_tmm(0, &tile).unwrap();
    assert_eq!(amx.xstate_bv().bits(), 0x60003);
    let area = area_file(dir.path(), "amx.bin", &amx, "intel-sapphire-rapids");
    let out = xstate(&[
        "stream",
        "encode",
        &area,
        &path("amx.s"),
        "--layout",
        "intel-sapphire-rapids",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Judged against the CPU only, it fits; the KVM verdict is unknown.
    let cpu = xstate(&[
        "stream",
        "check",
        &path("amx.s"),
        "--to",
        "intel-sapphire-rapids",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&cpu.stdout).unwrap();
    assert_eq!(v["compatible"], true, "{v}");
    assert_eq!(v["kvm_set_xsave_ok"], Value::Null, "{v}");
    assert_eq!(v["vcpus"][0]["kvm_set_xsave_ok"], Value::Null);
    let text = String::from_utf8(
        xstate(&[
            "stream",
            "check",
            &path("amx.s"),
            "--to",
            "intel-sapphire-rapids",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        text.contains("the KVM verdict is unknown without a KVM profile"),
        "{text}"
    );
    // Against the host's profile, refused, naming AMX and KVM's guest XCR0.
    let out = xstate(&["stream", "check", &path("amx.s"), "--to", emr, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["compatible"], false);
    assert_eq!(v["kvm_set_xsave_ok"], false);
    let reasons: Vec<&str> = v["vcpus"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("AMX TILEDATA") && r.contains("guest XCR0 0x2e7")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("AMX TILECFG")),
        "{reasons:?}"
    );

    // The same state with the guest's IA32_XFD disabling tile data: the
    // stream carries no tile data, and says so.
    let out = xstate(&[
        "stream",
        "encode",
        &area,
        &path("xfd.s"),
        "--layout",
        "intel-sapphire-rapids",
        "--xfd",
        "0x40000",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AMX TILEDATA (component 18) masked") && err.contains("IA32_XFD 0x40000"),
        "{err}"
    );
    let decoded = xstate(&[
        "decode",
        &path("xfd.s"),
        "--layout",
        "intel-sapphire-rapids",
        "--json",
    ]);
    let v = json(&decoded);
    assert_eq!(v["xstate_bv"], "0x20003", "{v}");
    assert_eq!(v["registers"]["tmm0"], format!("0x{}", "00".repeat(1024)));

    // A host's PKRU leaked into a guest whose CPU model has no PKU.
    let mut leaked = RegisterFile::new();
    leaked.set_xmm(3, 0x33).unwrap();
    leaked.set_pkru(0x5555_5554).unwrap();
    let area = area_file(dir.path(), "pkru.bin", &leaked, "intel-sapphire-rapids");
    let no_pku = dir.path().join("no-pku.toml");
    std::fs::write(
        &no_pku,
        "name = \"no-pku\"\nvendor = \"GenuineIntel\"\nsource = \"test: x87, SSE and AVX\"\n\
         xcr0_supported = \"0x7\"\n[[component]]\nid = 2\nsize = 256\noffset = 576\n",
    )
    .unwrap();
    let no_pku = no_pku.to_str().unwrap();
    let out = xstate(&[
        "stream",
        "encode",
        &area,
        &path("leak.s"),
        "--layout",
        "intel-sapphire-rapids",
    ]);
    assert!(out.status.success());
    assert_eq!(
        xstate(&["stream", "check", &path("leak.s"), "--to", no_pku])
            .status
            .code(),
        Some(1)
    );
    // A vCPU XCR0 without PKRU does not mask it (CR4.PKE reaches PKRU
    // alone): the state keeps it, and the destination still lacks PKU.
    let out = xstate(&[
        "stream",
        "encode",
        &area,
        &path("xcr0.s"),
        "--layout",
        "intel-sapphire-rapids",
        "--guest-xcr0",
        "0x7",
    ]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("masked"));
    assert_eq!(
        xstate(&["stream", "check", &path("xcr0.s"), "--to", no_pku])
            .status
            .code(),
        Some(1)
    );
    // The vCPU's registers are judged: an AVX-512 XCR0 cannot be set on a
    // Zen 3 CPU, even with the state all init.
    let out = xstate(&[
        "stream",
        "check",
        &path("xcr0.s"),
        "--to",
        "amd-zen3",
        "--guest-xcr0",
        "0xe7",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the vCPU's XCR0 0xe7 enables 0xe0, which the destination CPU does not support (it has 0x207)"),
        "{text}"
    );
    // Impossible guest registers are usage errors: an XCR0 breaking an
    // XSETBV rule, an IA32_XFD on a component that is not XFD-capable.
    for (flag, value) in [("--guest-xcr0", "0x5"), ("--xfd", "0x200")] {
        let out = xstate(&[
            "stream",
            "check",
            &path("xcr0.s"),
            "--to",
            no_pku,
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
    }
    // The guest's CPUID (leaf 0xD sub-leaf 0 without PKRU) masks the
    // leaked PKRU. The stream, encoded from a bare area, says XCR0 is the
    // layout's; the vCPU's real XCR0 goes with its CPU model.
    let cpuid = dir.path().join("guest.cpuid");
    std::fs::write(
        &cpuid,
        "   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n\
         \x20  0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000\n",
    )
    .unwrap();
    let out = xstate(&[
        "stream",
        "check",
        &path("leak.s"),
        "--to",
        no_pku,
        "--guest-cpuid",
        cpuid.to_str().unwrap(),
        "--guest-xcr0",
        "0x7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PKRU (component 9) masked"));
    // convert masks the same way, reporting it.
    let out = xstate(&[
        "convert",
        &area,
        &path("conv.bin"),
        "--from",
        "intel-sapphire-rapids",
        "--to",
        "amd-zen3",
        "--guest-cpuid",
        cpuid.to_str().unwrap(),
        "--drop-init",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("PKRU (component 9) masked"));
    // Bad guest options are usage errors; a CPUID without leaf 0xD is refused.
    assert_eq!(
        xstate(&[
            "stream",
            "check",
            &path("xcr0.s"),
            "--to",
            no_pku,
            "--xfd",
            "zz"
        ])
        .status
        .code(),
        Some(2)
    );
    std::fs::write(&cpuid, "not a cpuid\n").unwrap();
    assert_eq!(
        xstate(&[
            "stream",
            "check",
            &path("xcr0.s"),
            "--to",
            no_pku,
            "--guest-cpuid",
            cpuid.to_str().unwrap()
        ])
        .status
        .code(),
        Some(1)
    );
}

#[test]
fn streams_carry_the_registers_and_version_1_still_reads() {
    use xstate::migrate::stream::{self, Source};
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();

    // A compacted area holding CET_U (an XSAVES area): XCR0 is the layout's
    // user components, IA32_XSS the supervisor components XCOMP_BV holds.
    let mut regs = RegisterFile::new();
    regs.set_xmm(1, 0x11).unwrap();
    regs.set_component(ComponentId::CET_U, &cet_u()).unwrap();
    std::fs::write(
        p("xsaves.bin"),
        regs.encode(spr, Format::Compacted).unwrap(),
    )
    .unwrap();
    let r = xstate(&[
        "stream",
        "encode",
        &p("xsaves.bin"),
        &p("s.xst"),
        "--layout",
        "intel-sapphire-rapids",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = std::fs::read(p("s.xst")).unwrap();
    assert_eq!(bytes[8..10], 2u16.to_le_bytes(), "version 2");
    let v = json(&xstate(&[
        "decode",
        &p("s.xst"),
        "--layout",
        "intel-sapphire-rapids",
        "--json",
    ]));
    assert_eq!(
        [&v["xcr0"], &v["xss"], &v["xfd"], &v["xfd_err"]],
        ["0x602e7", "0x800", "0x0", "0x0"]
    );
    assert_eq!(v["registers"]["xmm1"], format!("0x{:032x}", 0x11));
    let r = xstate(&["decode", &p("s.xst"), "--layout", "intel-sapphire-rapids"]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("XCR0 0x602e7, IA32_XSS 0x800, IA32_XFD 0x0, IA32_XFD_ERR 0x0"),
        "{text}"
    );

    // Impossible registers are refused (exit 1), naming the register.
    let mut bad = bytes.clone();
    let xcr0_at = stream::HEADER_LEN + 16;
    bad[xcr0_at..xcr0_at + 8].copy_from_slice(&0x5u64.to_le_bytes());
    let body = bad.len() - 4;
    let crc = stream::crc32(&bad[..body]);
    bad[body..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(p("bad.xst"), &bad).unwrap();
    let r = xstate(&[
        "stream",
        "check",
        &p("bad.xst"),
        "--to",
        "intel-sapphire-rapids",
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("offset 48") && err.contains("XCR0 0x5"),
        "{err}"
    );

    // A version 1 stream still decodes and checks; it has no registers.
    regs.set_init(ComponentId::CET_U);
    let v1 = stream::encode_v1(std::slice::from_ref(&regs), &Source::of(spr)).unwrap();
    std::fs::write(p("v1.xst"), v1).unwrap();
    let v = json(&xstate(&[
        "decode",
        &p("v1.xst"),
        "--layout",
        "intel-sapphire-rapids",
        "--json",
    ]));
    assert_eq!(v["registers"]["xmm1"], format!("0x{:032x}", 0x11));
    assert!(v.get("xcr0").is_none());
    let r = xstate(&[
        "stream",
        "check",
        &p("v1.xst"),
        "--to",
        "intel-sapphire-rapids",
    ]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
}

#[test]
fn stream_decode_writes_only_what_check_takes() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let emr = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intel-emr-kvm-profile.json"
    );
    let encode = |area: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "stream",
            "encode",
            area,
            out,
            "--layout",
            "intel-sapphire-rapids",
        ];
        args.extend_from_slice(extra);
        let out = xstate(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // SSE and PKRU state, XCR0 0x2e7: to a host profile with a KVM part,
    // the area is KVM's buffer there (4096 bytes, not the host layout's
    // 11008), PKRU with its bit set, and passes that KVM's rules.
    let mut regs = RegisterFile::new();
    regs.set_xmm(2, 0x22).unwrap();
    regs.set_pkru(0x5555_5554).unwrap();
    let area = area_file(dir.path(), "pkru.bin", &regs, "intel-sapphire-rapids");
    encode(&area, &path("pkru.s"), &["--guest-xcr0", "0x2e7"]);
    let out = xstate(&[
        "stream",
        "decode",
        &path("pkru.s"),
        &path("emr.bin"),
        "--layout",
        emr,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(path("emr.bin")).unwrap();
    assert_eq!(bytes.len(), 4096);
    assert_eq!(
        u64::from_le_bytes(bytes[512..520].try_into().unwrap()),
        0x202
    );
    let check = xstate(&["kvm", "check", &path("emr.bin"), "--to", emr]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // AMX tile data to that host, whose KVM offers guests no AMX: refused
    // with every reason, and no file appears.
    let mut amx = RegisterFile::new();
    amx.set_tmm(0, &[7; 1024]).unwrap();
    let area = area_file(dir.path(), "amx.bin", &amx, "intel-sapphire-rapids");
    encode(&area, &path("amx.s"), &[]);
    let out = xstate(&[
        "stream",
        "decode",
        &path("amx.s"),
        &path("no.bin"),
        "--layout",
        emr,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AMX TILEDATA") && err.contains("not written"),
        "{err}"
    );
    assert!(!dir.path().join("no.bin").exists());

    // The vCPU's XCR0 is judged too: AVX-512 to a Zen 3 CPU.
    let mut sse = RegisterFile::new();
    sse.set_xmm(0, 1).unwrap();
    let area = area_file(dir.path(), "sse.bin", &sse, "intel-sapphire-rapids");
    encode(&area, &path("avx512.s"), &["--guest-xcr0", "0xe7"]);
    let out = xstate(&[
        "stream",
        "decode",
        &path("avx512.s"),
        &path("no.bin"),
        "--layout",
        "amd-zen3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the vCPU's XCR0 0xe7"));
    assert!(!dir.path().join("no.bin").exists());

    // The guest's CPU model masks a leaked PKRU, saying so on stderr.
    let cpuid = dir.path().join("guest.cpuid");
    std::fs::write(
        &cpuid,
        "   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n\
         \x20  0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000\n",
    )
    .unwrap();
    let out = xstate(&[
        "stream",
        "decode",
        &path("pkru.s"),
        &path("zen3.bin"),
        "--layout",
        "amd-zen3",
        "--guest-cpuid",
        cpuid.to_str().unwrap(),
        "--guest-xcr0",
        "0x7",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("PKRU (component 9) masked"));
    let v = json(&xstate(&[
        "decode",
        &path("zen3.bin"),
        "--layout",
        "amd-zen3",
        "--json",
    ]));
    assert_eq!(v["registers"]["pkru"], "0x00000000", "{v}");
    assert_eq!(v["registers"]["xmm2"], format!("{:#034x}", 0x22), "{v}");
}

#[test]
fn decode_shows_any_vcpu_in_order_and_huge_inputs_are_refused() {
    use xstate::migrate::stream::{self, Source, Vcpu};
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let vcpus: Vec<Vcpu> = (0..2u128)
        .map(|n| {
            let mut regs = RegisterFile::new();
            regs.set_xmm(2, 0x20 + n).unwrap();
            regs.set_xmm(10, 0xA0 + n).unwrap();
            regs.set_zmm(16, [n, 0, 0, 1]).unwrap();
            Vcpu::new(
                regs,
                xstate::xregs::XstateRegisters::with_xcr0(zen4.xcr0_supported()),
            )
        })
        .collect();
    std::fs::write(
        p("two.s"),
        stream::encode(&vcpus, &Source::of(zen4)).unwrap(),
    )
    .unwrap();
    let out = xstate(&["decode", &p("two.s"), "--layout", "amd-zen4", "--vcpu", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("stream version 2: vCPU 1 of 2, written from amd-zen4"),
        "{text}"
    );
    assert!(text.contains(&format!("xmm2 {:#034x}", 0x21)), "{text}");
    // Canonical order: xmm2 before xmm10, x87 before SSE.
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
    assert!(
        at(" fcw ") < at(" xmm0 ") && at(" xmm2 ") < at(" xmm10 "),
        "{text}"
    );
    let v = json(&xstate(&[
        "decode",
        &p("two.s"),
        "--layout",
        "amd-zen4",
        "--vcpu",
        "1",
        "--json",
    ]));
    assert_eq!(v["stream"]["vcpus"], 2);
    assert_eq!(v["stream"]["source_layout"], "amd-zen4");
    // Without --layout, a stream is shown in the catalog layout it names.
    let out = xstate(&["decode", &p("two.s")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("shown in layout amd-zen4"));
    // No such vCPU; a layout without the live AVX-512 state, with a hint.
    let out = xstate(&["decode", &p("two.s"), "--layout", "amd-zen4", "--vcpu", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no vCPU 2 (the stream holds 2)"));
    let out = xstate(&["decode", &p("two.s"), "--layout", "amd-zen3"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--layout amd-zen4"), "{err}");

    // Inputs past the bounds (sparse files: nothing is stored) are refused
    // as what they cannot be, exit 1, nothing written.
    let huge = |name: &str, len: u64| {
        let f = std::fs::File::create(p(name)).unwrap();
        f.set_len(len).unwrap();
        p(name)
    };
    let area = huge("area.bin", (1 << 20) + 1);
    // A stream's bound follows the vCPUs its header claims: 64 KiB each.
    let stream_file = huge("stream.s", 200_000);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&stream_file)
            .unwrap();
        f.write_all(b"XSTATEMS\x02\0\0\0\x01\0\0\0").unwrap();
    }
    for args in [
        vec![
            "convert",
            &area,
            &p("out.bin"),
            "--from",
            "amd-zen4",
            "--to",
            "amd-zen4",
        ],
        vec![
            "stream",
            "encode",
            &area,
            &p("out.bin"),
            "--layout",
            "amd-zen4",
        ],
        vec!["decode", &stream_file, "--layout", "amd-zen4"],
        vec!["stream", "check", &stream_file, "--to", "amd-zen4"],
        vec![
            "stream",
            "decode",
            &stream_file,
            &p("out.bin"),
            "--layout",
            "amd-zen4",
        ],
    ] {
        let out = xstate(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("larger than"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!dir.path().join("out.bin").exists());
    }
}

#[test]
fn what_the_guest_cannot_hold_is_masked_reported_and_never_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let err = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();
    // A guest CPU model without PKU (leaf 0xD XCR0 0xe7: AVX-512, no PKRU).
    let cpuid = path("nopku.cpuid");
    std::fs::write(
        &cpuid,
        "   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n\
         \x20  0x0000000d 0x00: eax=0x000000e7 ebx=0x00000a80 ecx=0x00000a80 edx=0x00000000\n",
    )
    .unwrap();

    // AVX-512 and PKRU live on Sapphire Rapids, to Zen 3 for a vCPU with
    // XCR0 0x7 whose CPU model has no PKU: both masked, each said, and the
    // components Zen 3 lacks dropped without --drop-init, since the guest
    // cannot hold them.
    let mut regs = RegisterFile::new();
    regs.set_zmm(1, [1, 2, 3, 4]).unwrap();
    regs.set_pkru(0x5555_5554).unwrap();
    let area = area_file(dir.path(), "spr.bin", &regs, "intel-sapphire-rapids");
    let out = xstate(&[
        "convert",
        &area,
        &path("zen3.bin"),
        "--from",
        "intel-sapphire-rapids",
        "--to",
        "amd-zen3",
        "--guest-xcr0",
        "0x7",
        "--guest-cpuid",
        &cpuid,
    ]);
    assert!(out.status.success(), "{}", err(&out));
    let e = err(&out);
    assert!(e.contains("AVX-512 ZMM_Hi256 (component 6) masked"), "{e}");
    assert!(e.contains("PKRU (component 9) masked"), "{e}");
    // A failing conversion still says what it masked.
    let mut amx = regs.clone();
    amx.set_tmm(0, &[1; 1024]).unwrap();
    let area = area_file(dir.path(), "amx.bin", &amx, "intel-sapphire-rapids");
    let out = xstate(&[
        "convert",
        &area,
        &path("no.bin"),
        "--from",
        "intel-sapphire-rapids",
        "--to",
        "amd-zen3",
        "--guest-cpuid",
        &cpuid,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let e = err(&out);
    assert!(
        e.contains("PKRU (component 9) masked") && e.contains("AMX TILEDATA"),
        "{e}"
    );
    assert!(!dir.path().join("no.bin").exists());

    // To a Linux 6.5 host (which checks XSTATE_BV against the vCPU's
    // CPUID): decode never sets PKRU's bit for a guest without PKU, so
    // what check accepts, decode writes, and KVM's rules there pass.
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intel-emr-kvm-profile.json"
    ))
    .unwrap();
    let old = path("emr65.json");
    std::fs::write(
        &old,
        fixture.replace(
            "\"kernel_release\": \"6.18\"",
            "\"kernel_release\": \"6.5.0\"",
        ),
    )
    .unwrap();
    let mut sse = RegisterFile::new();
    sse.set_zmm(2, [5, 6, 7, 8]).unwrap();
    let area = area_file(dir.path(), "avx512.bin", &sse, "intel-sapphire-rapids");
    let out = xstate(&[
        "stream",
        "encode",
        &area,
        &path("s.xst"),
        "--layout",
        "intel-sapphire-rapids",
        "--guest-xcr0",
        "0xe7",
    ]);
    assert!(out.status.success(), "{}", err(&out));
    let check = xstate(&[
        "stream",
        "check",
        &path("s.xst"),
        "--to",
        &old,
        "--guest-cpuid",
        &cpuid,
    ]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let out = xstate(&[
        "stream",
        "decode",
        &path("s.xst"),
        &path("old.bin"),
        "--layout",
        &old,
        "--guest-cpuid",
        &cpuid,
    ]);
    assert!(out.status.success(), "{}", err(&out));
    let bytes = std::fs::read(path("old.bin")).unwrap();
    assert_eq!(bytes.len(), 4096);
    assert_eq!(
        u64::from_le_bytes(bytes[512..520].try_into().unwrap()) & 0x200,
        0
    );
    // Without the guest's CPUID, PKRU goes with its bit set (its init 0).
    let out = xstate(&[
        "stream",
        "decode",
        &path("s.xst"),
        &path("new.bin"),
        "--layout",
        &old,
    ]);
    assert!(out.status.success(), "{}", err(&out));
    let bytes = std::fs::read(path("new.bin")).unwrap();
    assert_eq!(
        u64::from_le_bytes(bytes[512..520].try_into().unwrap()) & 0x200,
        0x200
    );

    // --guest-xcr0 over a stream's own XCR0 says so.
    let out = xstate(&[
        "stream",
        "check",
        &path("s.xst"),
        "--to",
        "amd-zen4",
        "--guest-xcr0",
        "0x7",
    ]);
    assert!(
        err(&out).contains("--guest-xcr0 0x7 replaces the XCR0 0xe7 the stream records"),
        "{}",
        err(&out)
    );
}

#[test]
fn nothing_is_written_that_its_own_checks_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let err = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();
    let refused = |out: &Output, says: &str| {
        assert_eq!(out.status.code(), Some(1), "{}", err(out));
        assert!(err(out).contains(says), "{says:?} in {}", err(out));
        assert!(!dir.path().join("out").exists());
    };
    // MXCSR beyond the source's mask, a TILECFG LDTILECFG refuses: stream
    // encode writes no stream its own source could not restore.
    let mut mxcsr = RegisterFile::new();
    mxcsr.set_xmm(0, 1).unwrap();
    mxcsr.set_mxcsr(0x2_1F80).unwrap();
    let area = area_file(dir.path(), "mxcsr.bin", &mxcsr, "intel-sapphire-rapids");
    let encode = |area: &str, extra: &[&str]| {
        let mut args = vec![
            "stream",
            "encode",
            area,
            "out",
            "--layout",
            "intel-sapphire-rapids",
        ];
        args.extend_from_slice(extra);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xstate"));
        cmd.current_dir(dir.path()).args(&args);
        cmd.output().unwrap()
    };
    refused(&encode(&area, &[]), "outside the destination's MXCSR mask");
    let mut tiles = RegisterFile::new();
    let mut cfg = [0u8; 64];
    cfg[0] = 2;
    tiles.set_tilecfg(&cfg).unwrap();
    let area = area_file(dir.path(), "tiles.bin", &tiles, "intel-sapphire-rapids");
    refused(&encode(&area, &[]), "TILECFG palette 2");
    // Registers the source CPU cannot hold: APX in XCR0, XFD on a CPU
    // without XFD-capable AMX... Sapphire Rapids has AMX, so APX.
    let area = area_file(
        dir.path(),
        "sse.bin",
        &RegisterFile::new(),
        "intel-sapphire-rapids",
    );
    refused(
        &encode(&area, &["--guest-xcr0", "0x80007"]),
        "XCR0 0x80007 enables 0x80000",
    );
    // convert judges the vCPU's registers at the destination.
    let out = xstate(&[
        "convert",
        &area,
        &path("out"),
        "--from",
        "intel-sapphire-rapids",
        "--to",
        "amd-zen3",
        "--guest-xcr0",
        "0xe7",
        "--drop-init",
    ]);
    refused(&out, "the vCPU's XCR0 0xe7 enables 0xe0");
    // A guest CPU model whose XCR0 breaks an XSETBV rule describes no guest.
    let cpuid = path("bad.cpuid");
    std::fs::write(
        &cpuid,
        "   0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69\n\
         \x20  0x0000000d 0x00: eax=0x00000023 ebx=0x00000340 ecx=0x00000340 edx=0x00000000\n",
    )
    .unwrap();
    refused(&encode(&area, &["--guest-cpuid", &cpuid]), "XSETBV");

    // Supervisor state: check and decode agree. A compacted area with
    // CET_U live decodes to the compacted format XRSTORS takes.
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut cet = RegisterFile::new();
    cet.set_xmm(1, 0x11).unwrap();
    cet.set_component(ComponentId::CET_U, &cet_u()).unwrap();
    std::fs::write(path("cet.bin"), cet.encode(spr, Format::Compacted).unwrap()).unwrap();
    let out = encode(&path("cet.bin"), &[]);
    assert!(out.status.success(), "{}", err(&out));
    std::fs::rename(path("out"), path("cet.s")).unwrap();
    let check = xstate(&[
        "stream",
        "check",
        &path("cet.s"),
        "--to",
        "intel-sapphire-rapids",
    ]);
    assert_eq!(check.status.code(), Some(0));
    let out = xstate(&[
        "stream",
        "decode",
        &path("cet.s"),
        &path("cet.out"),
        "--layout",
        "intel-sapphire-rapids",
    ]);
    assert!(out.status.success(), "{}", err(&out));
    let back = RegisterFile::decode(&std::fs::read(path("cet.out")).unwrap(), spr).unwrap();
    assert_eq!(back.component(ComponentId::CET_U), Some(&cet_u()[..]));

    // A CET_U value XRSTORS refuses (reserved IA32_U_CET bits) is never
    // written into a stream.
    let mut bad = cet_u();
    bad[1] = 0x3;
    let mut cet_bad = RegisterFile::new();
    cet_bad.set_component(ComponentId::CET_U, &bad).unwrap();
    std::fs::write(
        path("cetbad.bin"),
        cet_bad.encode(spr, Format::Compacted).unwrap(),
    )
    .unwrap();
    refused(
        &encode(&path("cetbad.bin"), &[]),
        "XRSTORS would fault: CET_U",
    );

    // decode: an area file over the area bound is refused unread.
    let big = std::fs::File::create(path("big.bin")).unwrap();
    big.set_len((1 << 20) + 1).unwrap();
    let out = xstate(&["decode", &path("big.bin"), "--layout", "amd-zen4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("larger than 1048576 bytes"),
        "{}",
        err(&out)
    );

    // Errors quoting hostile input stay printable and short.
    std::fs::write(path("nul.toml"), vec![0u8; 1 << 20]).unwrap();
    let out = xstate(&["layout", "--layout", &path("nul.toml")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.len() < 4096,
        "{} bytes of stderr",
        out.stderr.len()
    );
    assert!(!out.stderr.contains(&0u8));
}

#[test]
fn stdout_is_written_as_redirected_and_names_never_reach_a_terminal_raw() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let area = area_file(dir.path(), "sse.bin", &RegisterFile::new(), "amd-zen4");
    // `>> out`: /dev/stdout appends, as the shell set it up.
    std::fs::write(path("out"), b"HEADER").unwrap();
    let out = std::fs::OpenOptions::new()
        .append(true)
        .open(path("out"))
        .unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_xstate"))
        .args([
            "convert",
            &area,
            "/dev/stdout",
            "--from",
            "amd-zen4",
            "--to",
            "amd-zen4",
        ])
        .stdout(out)
        .status()
        .unwrap();
    assert!(status.success());
    let written = std::fs::read(path("out")).unwrap();
    assert!(written.starts_with(b"HEADER"));
    assert_eq!(written.len(), 6 + 2440);
    // A layout file naming itself with an escape sequence and a newline.
    let toml = path("evil.toml");
    std::fs::write(
        &toml,
        "name = \"emr\\u001b[2J\\nFAKE: ok\"\nvendor = \"GenuineIntel\"\nsource = \"test\"\n\
         xcr0_supported = \"0x3\"\n",
    )
    .unwrap();
    let out = xstate(&["layout", "--layout", &toml]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.contains(&0x1b));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\nFAKE: ok"));
    // --vcpu is for streams.
    let out = xstate(&["decode", &area, "--layout", "amd-zen4", "--vcpu", "1"]);
    assert_eq!(out.status.code(), Some(2));
    // A convert refused for the vCPU's registers still says what it masked.
    let mut regs = RegisterFile::new();
    regs.set_zmm(1, [1, 2, 3, 4]).unwrap();
    let area = area_file(dir.path(), "avx512.bin", &regs, "intel-sapphire-rapids");
    let out = xstate(&[
        "convert",
        &area,
        &path("no.bin"),
        "--from",
        "intel-sapphire-rapids",
        "--to",
        "amd-zen3",
        "--guest-xcr0",
        "0x7",
        "--xfd",
        "0x40000",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(component 6) masked") && err.contains("IA32_XFD"),
        "{err}"
    );
}
