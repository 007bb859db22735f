//! Layouts, dumps and profiles as the CLI reads them, end to end: what a
//! layout source may be, what is refused (exit 1), what is an I/O or usage
//! error (exit 2), and that nothing panics or writes on the way.

mod cli_common;
mod common;

use cli_common::{json, stderr, xstate};

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use xstate::cpuid::{CpuidRegs, CpuidSet};
use xstate::layout::{catalog, MAX_SOURCE_FILE};

/// Asserts the exit status, that stderr has `says` and that nothing
/// panicked; returns stderr.
fn status(out: &Output, code: i32, says: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(says), "expected {says:?} in: {err}");
    err
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `contents` to `name`; returns the path as a string.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A zeroed standard-format area of `size` bytes (every component init).
fn area(dir: &Dir, size: u32) -> String {
    dir.write("area.bin", vec![0u8; size as usize])
}

/// A one-vCPU stream of a zeroed Zen 4 area.
fn stream(dir: &Dir) -> String {
    let zen4 = catalog::get("amd-zen4").unwrap();
    let input = area(dir, zen4.standard_size());
    let out = dir.path("state.s");
    let o = xstate(&["stream", "encode", "--layout", "amd-zen4", &input, s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    out.to_str().unwrap().to_string()
}

const TINY: &str = r#"name = "tiny"
vendor = "GenuineIntel"
source = "made up"
xcr0_supported = "0x7"

[[component]]
id = 2
size = 256
offset = 576
"#;

#[test]
fn a_known_component_at_another_size_is_refused_not_a_panic() {
    let dir = Dir::new();
    let bad = dir.write("half-avx.toml", TINY.replace("size = 256", "size = 128"));
    let says = "AVX (component 2) has size 128, but its architectural size is 256";
    status(&xstate(&["layout", "--layout", &bad]), 1, says);
    let input = area(&dir, 832);
    let out = dir.path("out");
    status(
        &xstate(&["stream", "encode", "--layout", &bad, &input, s(&out)]),
        1,
        says,
    );
    status(
        &xstate(&[
            "convert",
            "--from",
            &bad,
            "--to",
            "amd-zen4",
            &input,
            s(&out),
        ]),
        1,
        says,
    );
    status(&xstate(&["decode", "--layout", &bad, &input]), 1, says);
    assert!(!out.exists(), "nothing is written");
    // The architectural size is taken.
    let good = dir.write("tiny.toml", TINY);
    assert!(xstate(&["layout", "--layout", &good]).status.success());
}

#[test]
fn impossible_xcr0_and_ia32_xss_bits_are_refused() {
    let dir = Dir::new();
    let pt = "xcr0_supported = \"0x107\"\n\n[[component]]\nid = 8\nsize = 128\noffset = 832\n";
    let with_pt = dir.write(
        "pt.toml",
        TINY.replace("xcr0_supported = \"0x7\"\n", &format!("{pt}\n")),
    );
    let says = "PT (component 8) is a supervisor component: IA32_XSS enumerates it, never XCR0";
    status(&xstate(&["layout", "--layout", &with_pt]), 1, says);
    status(
        &xstate(&["pool", "baseline", &with_pt, "amd-zen4"]),
        1,
        says,
    );
    let bit63 = dir.write(
        "bit63.toml",
        TINY.replace("xcr0_supported = \"0x7\"\n", &format!("{pt}\n"))
            .replace("0x107", "0x8000000000000107"),
    );
    let says = "supported XCR0 0x8000000000000107 has bit 63 set, which is reserved";
    status(&xstate(&["layout", "--layout", &bit63]), 1, says);
    status(&xstate(&["pool", "baseline", &bit63, "amd-zen4"]), 1, says);
    let avx_in_xss = dir.write(
        "xss.toml",
        TINY.replace("\"0x7\"", "\"0x3\"\nxss_supported = \"0x4\"")
            .replace("offset = 576", "supervisor = true"),
    );
    status(
        &xstate(&["layout", "--layout", &avx_in_xss]),
        1,
        "AVX (component 2) is a user component: XCR0 enumerates it, never IA32_XSS",
    );
}

#[test]
fn unbounded_geometry_is_refused_and_nothing_written() {
    let dir = Dir::new();
    let input = stream(&dir);
    let out = dir.path("out.bin");
    let legacy =
        "name = \"x\"\nvendor = \"GenuineIntel\"\nsource = \"made up\"\nxcr0_supported = \"0x3\"\n";
    for (name, text, says) in [
        (
            "huge.toml",
            format!("{legacy}standard_size = 4294967295\n"),
            "the standard size 4294967295 is more than the 1048576 bytes an XSAVE area may have",
        ),
        (
            "zero.toml",
            format!("{legacy}standard_size = 0\n"),
            "the standard size 0 is smaller than the legacy region and XSAVE header (576 bytes)",
        ),
        (
            "c62.toml",
            legacy.replace("\"0x3\"", "\"0x4000000000000003\"")
                + "\n[[component]]\nid = 62\nsize = 4000000000\noffset = 576\n",
            "component 62 (component 62) at offset 576 with size 4000000000 ends past 1048576 bytes",
        ),
    ] {
        let file = dir.write(name, text);
        status(
            &xstate(&["stream", "decode", "--layout", &file, &input, s(&out)]),
            1,
            says,
        );
        assert!(!out.exists(), "{name}: nothing is written");
    }
}

/// The EMR host's `cpuid -r` capture as lines, if the shared dumps are here.
fn emr_lines(part: &str) -> Option<Vec<String>> {
    let dir = common::shared_cpuid_dir(part)?;
    let text = std::fs::read_to_string(dir.join("host-intel-emr-cpuid-r.txt")).unwrap();
    Some(text.lines().map(String::from).collect())
}

#[test]
fn cut_and_duplicated_dumps_are_refused_by_every_command_alike() {
    let Some(lines) = emr_lines("cut and duplicated dumps") else {
        return;
    };
    let dir = Dir::new();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("0x0000000d 0x00:"))
        .unwrap();
    let cut = dir.write("cut.txt", lines[..at].join("\n"));
    let says =
        "no CPUID leaf 0xD sub-leaf 0, though leaf 0 says the CPU has basic leaves up to 0x20";
    status(&xstate(&["layout", "--layout", &cut]), 1, says);
    status(&xstate(&["pool", "baseline", &cut]), 1, says);
    let mut half = lines[..at].join("\n");
    half.push('\n');
    half.push_str(&lines[at][..30]);
    let half = dir.write("half.txt", half);
    let says = format!("line {}: malformed CPUID line", at + 1);
    status(&xstate(&["layout", "--layout", &half]), 1, &says);
    status(&xstate(&["pool", "baseline", &half]), 1, &says);
    status(&xstate(&["cpuid", "check", &half]), 1, &says);
    let mut dup = lines.clone();
    dup.insert(
        at,
        "   0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000".into(),
    );
    let dup = dir.write("dup.txt", dup.join("\n"));
    let says = format!("line {}: leaf 0xd sub-leaf 0x0 appears twice", at + 2);
    status(&xstate(&["layout", "--layout", &dup]), 1, &says);
    status(&xstate(&["pool", "baseline", &dup]), 1, &says);
    // The whole dump reads, as every command reads it.
    let whole = dir.write("emr.txt", lines.join("\n"));
    let v = json(&xstate(&["layout", "--layout", &whole, "--json"]));
    assert_eq!(v["xcr0_supported"], "0x602e7");
}

/// A CPUID whose leaf 0xD is Zen 4's, as KVM `kvm_cpuid2` JSON.
fn zen4_kvm_json() -> String {
    let mut set = CpuidSet::new();
    let leaf0 = CpuidRegs {
        eax: 0x10,
        ebx: 0x6874_7541,
        ecx: 0x444d_4163,
        edx: 0x6974_6e65,
    };
    set.set(0, 0, leaf0).unwrap();
    for (sub, regs) in catalog::get("amd-zen4").unwrap().to_cpuid().subleaves {
        set.set(0xd, sub, regs).unwrap();
    }
    set.to_kvm_json()
}

#[test]
fn kvm_cpuid2_json_is_a_layout_source_for_every_command() {
    let dir = Dir::new();
    let array = zen4_kvm_json();
    let input = stream(&dir);
    let zen4 = catalog::get("amd-zen4").unwrap();
    let raw = area(&dir, zen4.standard_size());
    for (name, text) in [
        ("pool.json", array.clone()),
        ("entries.json", format!("{{\"entries\": {array}}}")),
    ] {
        let file = dir.write(name, text);
        let v = json(&xstate(&["layout", "--layout", &file, "--json"]));
        assert_eq!(v["name"], name.trim_end_matches(".json"));
        assert_eq!(v["xcr0_supported"], "0x2e7");
        let o = xstate(&["diff", &file, "amd-zen4"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let o = xstate(&["decode", "--layout", &file, &raw]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = dir.path("converted");
        let o = xstate(&[
            "convert",
            "--from",
            &file,
            "--to",
            "amd-zen4",
            &raw,
            s(&out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = xstate(&["stream", "check", &input, "--to", &file]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = xstate(&["pool", "baseline", &file, "amd-zen4"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // A bad entry: refused, saying what the file was taken for.
    let bad = dir.write(
        "bad.json",
        array.replacen("\"eax\": \"0x", "\"eax\": \"zz", 1),
    );
    status(
        &xstate(&["layout", "--layout", &bad]),
        1,
        "bad.json (read as a CPUID: cpuid -r, InstLatx64 or kvm_cpuid2 JSON): entry 0: field \"eax\"",
    );
    // An object that is neither: taken for a host profile.
    let neither = dir.write("neither.json", "{\"name\": \"x\"}");
    status(
        &xstate(&["layout", "--layout", &neither]),
        1,
        "neither.json (read as a host profile): not a host profile",
    );
    let toml = dir.write("junk.toml", "name = [");
    status(
        &xstate(&["layout", "--layout", &toml]),
        1,
        "junk.toml (read as a TOML layout file): not a layout file",
    );
}

/// The `source:` line of `xstate layout --layout spec`.
fn source_line(spec: &str) -> String {
    let o = xstate(&["layout", "--layout", spec]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("source: "))
        .unwrap_or_else(|| panic!("no source line: {text}"))
        .to_string()
}

/// The shipped EMR profile with one field replaced.
fn profile_with(from: &str, to: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intel-emr-kvm-profile.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

#[test]
fn profiles_with_impossible_kvm_offers_are_refused() {
    let dir = Dir::new();
    let input = stream(&dir);
    for (name, from, to, says) in [
        (
            "no-legacy.json",
            "\"guest_xcr0\": \"0x2e7\"",
            "\"guest_xcr0\": \"0x0\"",
            "guest_xcr0 0x0 lacks x87 or SSE",
        ),
        (
            "all-ones.json",
            "\"guest_xcr0\": \"0x2e7\"",
            "\"guest_xcr0\": \"0xffffffffffffffff\"",
            "guest_xcr0 0xffffffffffffffff has 0xfffffffffff9fd18, which the host layout's XCR0 0x602e7 lacks",
        ),
        (
            "xss.json",
            "\"guest_xss\": \"0x0\"",
            "\"guest_xss\": \"0x100\"",
            "guest_xss 0x100 has 0x100, which the host layout's IA32_XSS 0x1800 lacks",
        ),
        (
            "mask.json",
            "\"mxcsr_mask\": \"0xffff\"",
            "\"mxcsr_mask\": \"0xff3f\"",
            "mxcsr_mask 0xff3f lacks bits 0x80 of 0xffbf",
        ),
        (
            "signed.json",
            "\"guest_xcr0\": \"0x2e7\"",
            "\"guest_xcr0\": \"+2e7\"",
            "host profile field guest_xcr0 has a bad value \"+2e7\"",
        ),
        // KVM takes no MXCSR bit the host does not: decoding for this
        // profile would write an area XRSTOR faults on.
        (
            "wide-mask.json",
            "\"mxcsr_mask\": \"0xffff\"",
            "\"mxcsr_mask\": \"0xffffffff\"",
            "mxcsr_mask 0xffffffff has bits 0xffff0000 outside the host layout's MXCSR mask 0xffff",
        ),
        (
            "tiny-buffer.json",
            "\"buffer_size\": 4096",
            "\"buffer_size\": 1",
            "buffer_size 1 is below 4096 bytes, the size of struct kvm_xsave",
        ),
        (
            "amx-in-4096.json",
            "\"guest_xcr0\": \"0x2e7\"",
            "\"guest_xcr0\": \"0x602e7\"",
            "buffer_size 4096 is smaller than the 11008 bytes of the standard-format area for its guest_xcr0 0x602e7",
        ),
        (
            "half-avx512.json",
            "\"guest_xcr0\": \"0x2e7\"",
            "\"guest_xcr0\": \"0x2a7\"",
            "guest_xcr0 is no XCR0 KVM offers guests: XCR0 0x2a7 breaks a rule",
        ),
        (
            "tilecfg-alone.json",
            "\"guest_xcr0\": \"0x2e7\"",
            "\"guest_xcr0\": \"0x202e7\"",
            "guest_xcr0 is no XCR0 KVM offers guests: XCR0 0x202e7 breaks a rule",
        ),
        (
            "apx.json",
            "\"guest_apx\": false",
            "\"guest_apx\": true",
            "guest_apx true disagrees with its guest_xcr0 0x2e7, whose bit 19 (APX) is clear",
        ),
    ] {
        let file = dir.write(name, profile_with(from, to));
        status(&xstate(&["layout", "--layout", &file]), 1, says);
        status(&xstate(&["pool", "baseline", &file, "amd-zen4"]), 1, says);
        let out = dir.path("decoded.bin");
        let o = xstate(&["stream", "decode", &input, s(&out), "--layout", &file]);
        status(&o, 1, says);
        assert!(!out.exists(), "{name}: decode wrote {}", out.display());
    }
    // The shipped profile loads as a layout, saying it came from a profile.
    let good = dir.write("emr.json", profile_with("\"0x2e7\"", "\"0x2e7\""));
    let v = json(&xstate(&["layout", "--layout", &good, "--json"]));
    assert_eq!(v["name"], "intel-emr-host");
    let source = source_line(&good);
    assert!(
        source.starts_with(&format!("host profile {good}: ")),
        "{source}"
    );
}

#[test]
fn kvm_info_names_the_machine_and_profiles_tell_hosts_apart() {
    if !Path::new("/dev/kvm").exists() {
        common::skip("kvm info profile names", "/dev/kvm is absent");
        return;
    }
    let info = xstate(&["kvm", "info", "--json"]);
    if !info.status.success() {
        common::skip(
            "kvm info profile names",
            &format!("/dev/kvm unusable: {}", stderr(&info)),
        );
        return;
    }
    let v: Value = serde_json::from_slice(&info.stdout).unwrap();
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    let node = if node.is_empty() { "host".into() } else { node };
    let release = v["kernel_release"].as_str().unwrap();
    assert_eq!(v["host_layout"]["name"], node.as_str());
    assert_eq!(
        v["host_layout"]["source"],
        format!("CPUID of {node} (xstate kvm info, Linux {release})")
    );
    // Saved and read back: a layout named after the machine, from a profile.
    let dir = Dir::new();
    let me = dir.write("me.json", &info.stdout);
    let layout = json(&xstate(&["layout", "--layout", &me, "--json"]));
    assert_eq!(layout["name"], node.as_str());
    let source = source_line(&me);
    assert!(
        source.starts_with(&format!("host profile {me}: CPUID of {node}")),
        "{source}"
    );
    // Another machine's profile of the same CPU: the diff names both.
    let mut other: Value = serde_json::from_slice(&info.stdout).unwrap();
    other["host_layout"]["name"] = "other-node".into();
    let other = dir.write("other.json", other.to_string());
    let o = xstate(&["diff", &me, &other]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with(&format!("{node} vs other-node")), "{text}");
    let o = xstate(&["pool", "baseline", &me, &other, "--json"]);
    let v = json(&o);
    assert_eq!(v["hosts"][0], node.as_str());
    assert_eq!(v["hosts"][1], "other-node");
}

#[test]
fn hex_with_a_sign_is_refused() {
    let dir = Dir::new();
    let input = stream(&dir);
    let o = xstate(&[
        "stream",
        "check",
        &input,
        "--to",
        "amd-zen4",
        "--guest-xcr0",
        "+7",
    ]);
    status(&o, 2, "\"+7\" is not a hex mask");
    let signed = dir.write("signed.toml", TINY.replace("\"0x7\"", "\"+7\""));
    status(
        &xstate(&["layout", "--layout", &signed]),
        1,
        "layout file field xcr0_supported has a bad value \"+7\"",
    );
    let dump = dir.write(
        "signed.txt",
        "CPU:\n   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n   \
         0x0000000d 0x00: eax=+0x00000207 ebx=0x00000988 ecx=0x00000988 edx=0x00000000\n",
    );
    status(
        &xstate(&["layout", "--layout", &dump]),
        1,
        "line 3: malformed CPUID line",
    );
    status(
        &xstate(&["pool", "baseline", &dump]),
        1,
        "line 3: malformed CPUID line",
    );
}

#[test]
fn large_and_binary_files_are_rejected_inputs_missing_ones_io_errors() {
    let dir = Dir::new();
    let input = stream(&dir);
    let big = dir.write("big.txt", vec![b' '; MAX_SOURCE_FILE as usize + 1]);
    let binary = dir.write("binary.bin", [0x7e, b'E', b'L', b'F', 0xff, 0xfe, 0, 0x80]);
    // ELF is read as a core file (--layout CORE): a broken one is refused.
    let elf = dir.write("elf.bin", [0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 0x80]);
    let missing = dir.path("missing.txt");
    let missing = s(&missing);
    let as_layout = |f: &str| xstate(&["layout", "--layout", f]);
    let as_guest_cpuid = |f: &str| {
        xstate(&[
            "stream",
            "check",
            &input,
            "--to",
            "amd-zen4",
            "--guest-cpuid",
            f,
        ])
    };
    let as_pool = |f: &str| xstate(&["pool", "baseline", f, "amd-zen4"]);
    for run in [
        &as_layout as &dyn Fn(&str) -> Output,
        &as_guest_cpuid,
        &as_pool,
    ] {
        status(&run(&big), 1, "is larger than 4194304 bytes");
        status(&run(&binary), 1, "is not UTF-8 text");
        status(&run(missing), 2, "missing.txt");
    }
    status(
        &as_layout(&elf),
        1,
        "(read as a core file): not a readable 64-bit ELF file",
    );
    status(&as_pool(&elf), 1, "(read as a core file)");
    status(&as_guest_cpuid(&elf), 1, "is not UTF-8 text");
}

#[test]
fn cpuid_check_refuses_what_no_command_loads() {
    // Leaf 0xD with a component past any area: every rule of the check
    // holds, yet no layout loads from it, so the check says so too.
    for name in [
        "huge-supervisor-cpuid-r.txt",
        "compacted-too-large-cpuid-r.txt",
    ] {
        let file = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let out = xstate(&["cpuid", "check", &file]);
        let check = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(out.status.code(), Some(1), "{name}: {check}");
        assert!(check.contains("leaf 0xD gives no valid layout"), "{check}");
        status(&xstate(&["layout", "--layout", &file]), 1, "");
    }
}

#[test]
fn xfd_on_a_component_it_never_applies_to_is_refused_everywhere() {
    let dir = Dir::new();
    // A layout file with AVX flagged XFD-capable: refused by every command
    // that loads it, so no baseline ever enumerates XFD for AVX.
    let toml = dir.write(
        "avxxfd.toml",
        TINY.replace("offset = 576\n", "offset = 576\nxfd = true\n"),
    );
    let says = "AVX (component 2) is flagged XFD-capable (CPUID.(EAX=0xd,ECX=2):ECX[2])";
    status(&xstate(&["layout", "--layout", &toml]), 1, says);
    let guest = dir.write("guest.cpuid", CpuidSet::new().to_cpuid_raw());
    let out = dir.path("g.cpuid");
    let o = xstate(&[
        "pool",
        "baseline",
        &toml,
        "--apply-to",
        &guest,
        "-o",
        s(&out),
    ]);
    status(&o, 1, says);
    assert!(!out.exists());
    // The same flag in a CPUID: the check names it, and no layout loads.
    let mut set = CpuidSet::new();
    for (sub, mut regs) in catalog::get("intel-sapphire-rapids")
        .unwrap()
        .to_cpuid()
        .subleaves
    {
        if sub == 2 {
            regs.ecx |= 4;
        }
        set.set(0xd, sub, regs).unwrap();
    }
    let cpuid = dir.write("avxxfd.cpuid", set.to_cpuid_raw());
    let o = xstate(&["cpuid", "check", &cpuid]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        report.contains(
            "AVX (component 2) is supported but CPUID.(EAX=0xd,ECX=2):ECX = 0x00000004 flags it \
             XFD-capable (bit 2)"
        ),
        "{report}"
    );
    status(&xstate(&["layout", "--layout", &cpuid]), 1, says);
    status(&xstate(&["pool", "baseline", &cpuid]), 1, says);
}

#[test]
fn a_kvm_cpuid2_entry_with_a_field_twice_is_refused() {
    let dir = Dir::new();
    // The sub-leaf 0 entry of leaf 0xD with "function" twice: 13, then 1.
    let array = zen4_kvm_json();
    let at = array.find("{\"function\": \"0x0000000d\"").unwrap();
    let mut text = array.clone();
    text.insert_str(at + 1, "\"function\": 13, ");
    text = text.replacen(
        "{\"function\": 13, \"function\": \"0x0000000d\"",
        "{\"function\": 13, \"function\": \"0x00000001\"",
        1,
    );
    let file = dir.write("twice.json", &text);
    let says = "JSON: duplicate field `function` at line";
    let o = xstate(&["cpuid", "check", &file]);
    status(&o, 1, says);
    status(&xstate(&["layout", "--layout", &file]), 1, says);
    status(&xstate(&["pool", "baseline", &file]), 1, says);
    let out = dir.path("g.json");
    let good = dir.write("good.json", &array);
    status(
        &xstate(&[
            "pool",
            "baseline",
            &good,
            "--apply-to",
            &file,
            "-o",
            s(&out),
        ]),
        1,
        says,
    );
    assert!(!out.exists());
}
