//! Nothing lost, nothing overwritten, bounded on hostile input: every case
//! runs the `xstate` binary as a user would, as the user the tests run as,
//! with device nodes made here (`mknod` in a temporary directory, never the
//! system's), and checks that nothing was replaced, lost or left behind,
//! that memory stayed bounded (the child's own peak RSS: `VmHWM`, which
//! starts afresh at exec, as the child reports it with
//! `XSTATE_REPORT_PEAK_RSS`; `wait4`'s rusage would count the test
//! process's own pages, shared until exec), and that nothing panicked.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use xstate::layout::catalog;
use xstate::migrate::stream::{self, Source, Vcpu};
use xstate::prelude::*;
use xstate::xregs::XstateRegisters;
use xstate::{ComponentId, Format, RegisterFile};

const BIN: &str = env!("CARGO_BIN_EXE_xstate");

/// What a run of the binary gave, with its peak resident set in KiB.
struct Run {
    out: Output,
    peak_kib: i64,
    took: Duration,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Asserts the exit status and that nothing panicked.
    fn status(&self, code: i32, says: &str) -> &Run {
        let err = self.stderr();
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(self.code(), Some(code), "stderr: {err}");
        assert!(err.contains(says), "expected {says:?} in: {err}");
        self
    }
}

/// Runs `xstate args` with `env` and stdin from `stdin` (else nothing);
/// the child reports its own peak RSS.
fn run_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&Path>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(match stdin {
        Some(p) => Stdio::from(fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("XSTATE_REPORT_PEAK_RSS", "1");
    let start = Instant::now();
    let out = cmd.output().expect("run xstate");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_kib = stderr
        .lines()
        .find_map(|l| l.strip_prefix("xstate: peak RSS "))
        .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS reported: {stderr}"));
    Run {
        out,
        peak_kib,
        took,
    }
}

fn run(args: &[&str]) -> Run {
    run_with(args, &[], None)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Makes a character device node `name` in `dir` with `major:minor`, or
/// `None` (with the skip printed) where this user may not.
fn mknod(dir: &Path, name: &str, major: u32, minor: u32, part: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    let c = std::ffi::CString::new(s(&path)).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; mknod only reads it.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    if r != 0 {
        common::skip(
            part,
            &format!(
                "mknod of a character device failed here ({}): needs CAP_MKNOD",
                std::io::Error::last_os_error()
            ),
        );
        return None;
    }
    Some(path)
}

/// A Sapphire Rapids standard-format area with SSE and AVX-512 live.
fn spr_area(dir: &Path, name: &str) -> PathBuf {
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut regs = RegisterFile::new();
    regs.set_xmm(3, 0x1234).unwrap();
    regs.set_zmm(17, [1, 2, 3, 4]).unwrap();
    let path = dir.join(name);
    fs::write(&path, regs.encode(spr, Format::Standard).unwrap()).unwrap();
    path
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The three commands that write a file, from `area` (a Sapphire Rapids
/// area) and `stream_file` to `out`.
fn writers<'a>(area: &'a str, stream_file: &'a str, out: &'a str) -> Vec<Vec<&'a str>> {
    let spr = "intel-sapphire-rapids";
    vec![
        vec!["convert", area, out, "--from", spr, "--to", spr],
        vec!["stream", "encode", area, out, "--layout", spr],
        vec!["stream", "decode", stream_file, out, "--layout", spr],
    ]
}

fn stream_of(dir: &Path, area: &Path) -> PathBuf {
    let path = dir.join("s.xst");
    run(&[
        "stream",
        "encode",
        s(area),
        s(&path),
        "--layout",
        "intel-sapphire-rapids",
    ])
    .status(0, "");
    path
}

#[test]
fn device_nodes_are_written_through_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let area = spr_area(dir.path(), "a.bin");
    let stream_file = stream_of(dir.path(), &area);
    let part = "device-node outputs";
    let Some(null) = mknod(dir.path(), "null", 1, 3, part) else {
        return;
    };
    let full = mknod(dir.path(), "full", 1, 7, part).unwrap();
    for args in writers(s(&area), s(&stream_file), s(&null)) {
        run(&args).status(0, "");
        let t = fs::symlink_metadata(&null).unwrap().file_type();
        assert!(t.is_char_device(), "{args:?} replaced the device node");
    }
    // /dev/full says ENOSPC: an I/O error, exit 2, the node kept.
    for args in writers(s(&area), s(&stream_file), s(&full)) {
        run(&args).status(2, "No space left on device");
        let t = fs::symlink_metadata(&full).unwrap().file_type();
        assert!(t.is_char_device(), "{args:?} replaced the device node");
    }
    // Nothing else appeared beside them.
    assert_eq!(listing(dir.path()), ["a.bin", "full", "null", "s.xst"]);
}

#[test]
fn device_fifo_and_huge_inputs_are_refused_at_once_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(made.expect("mkfifo (coreutils)").success());
    let sparse = dir.path().join("huge.bin");
    fs::File::create(&sparse).unwrap().set_len(4 << 30).unwrap();
    let mut inputs = vec![(fifo.clone(), "a FIFO, not a regular file")];
    inputs.push((sparse, "larger than 1048576 bytes"));
    if let Some(zero) = mknod(dir.path(), "zero", 1, 5, "device-node inputs") {
        inputs.push((zero, "a character device, not a regular file"));
    }
    for (input, says) in &inputs {
        let i = s(input);
        let spr = "intel-sapphire-rapids";
        for args in [
            vec!["decode", i],
            vec!["convert", i, s(&out), "--from", spr, "--to", spr],
            vec!["stream", "encode", i, s(&out), "--layout", spr],
            vec!["stream", "decode", i, s(&out), "--layout", spr],
            vec!["stream", "check", i, "--to", spr],
            vec!["kvm", "check", i],
            vec!["layout", "--layout", i],
        ] {
            let r = run(&args);
            // The sparse file is no stream: its first bytes say so.
            let says = if args[0] == "stream" && args[1] != "encode" && !says.contains("not a") {
                "not an xstate migration stream"
            } else if args[0] == "layout" && !says.contains("not a") {
                "larger than 4194304 bytes"
            } else {
                says
            };
            r.status(1, says);
            // A hang guard, not a timing measurement: a FIFO that were
            // opened would block forever (here it takes milliseconds).
            assert!(
                r.took < Duration::from_secs(30),
                "{args:?} took {:?}",
                r.took
            );
            assert!(r.peak_kib < 16 << 10, "{args:?}: {} KiB", r.peak_kib);
            assert!(!out.exists(), "{args:?} wrote a file");
        }
    }
    // A directory is no input at all: a usage error.
    run(&["decode", s(dir.path())]).status(2, "a directory, not a regular file");
}

#[test]
fn outputs_are_atomic_keep_their_mode_and_never_replace_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let area = spr_area(dir.path(), "a.bin");
    let original = fs::read(&area).unwrap();
    let stream_file = stream_of(dir.path(), &area);
    let out = dir.path().join("out.bin");
    // An existing output keeps its mode (read-only included: the caller
    // may write it, as root may).
    fs::write(&out, b"old").unwrap();
    for mode in [0o640, 0o604] {
        fs::set_permissions(&out, fs::Permissions::from_mode(mode)).unwrap();
        for args in writers(s(&area), s(&stream_file), s(&out)) {
            run(&args).status(0, "");
            assert_eq!(fs::metadata(&out).unwrap().mode() & 0o777, mode, "{args:?}");
        }
    }
    // An output that is another input of the command (its layout file) is
    // refused, the file unchanged.
    let toml = dir.path().join("spr.toml");
    fs::write(
        &toml,
        catalog::get("intel-sapphire-rapids").unwrap().to_toml(),
    )
    .unwrap();
    let layout_text = fs::read(&toml).unwrap();
    run(&[
        "convert",
        s(&area),
        s(&toml),
        "--from",
        s(&toml),
        "--to",
        s(&toml),
    ])
    .status(2, "the output is also an input");
    assert_eq!(fs::read(&toml).unwrap(), layout_text);
    fs::remove_file(&toml).unwrap();
    // Another name of the file stdout is (`//dev/stdout`) is written through
    // stdout, as the shell opened it (`>>` appends), never replaced.
    let log = dir.path().join("log");
    fs::write(&log, b"LOG").unwrap();
    let appended = Command::new(BIN)
        .args([
            "convert",
            s(&area),
            "//dev/stdout",
            "--from",
            "intel-sapphire-rapids",
            "--to",
            "intel-sapphire-rapids",
        ])
        .stdout(fs::OpenOptions::new().append(true).open(&log).unwrap())
        .status()
        .unwrap();
    assert!(appended.success());
    assert_eq!(fs::read(&log).unwrap()[..3], *b"LOG");
    assert_eq!(fs::metadata(&log).unwrap().len(), 3 + original.len() as u64);
    fs::remove_file(&log).unwrap();
    // The same file as input and output, by any name, is refused: the
    // input is unchanged.
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink("a.bin", &link).unwrap();
    let hard = dir.path().join("hard.bin");
    fs::hard_link(&area, &hard).unwrap();
    for same in [&area, &link, &hard] {
        for args in &writers(s(&area), s(&stream_file), s(same))[..2] {
            run(args).status(2, "the output is the input");
        }
    }
    let s_link = dir.path().join("s-link.xst");
    std::os::unix::fs::symlink("s.xst", &s_link).unwrap();
    let stream_bytes = fs::read(&stream_file).unwrap();
    run(&writers(s(&area), s(&stream_file), s(&s_link))[2]).status(2, "the output is the input");
    assert_eq!(fs::read(&area).unwrap(), original);
    assert_eq!(fs::read(&stream_file).unwrap(), stream_bytes);
    fs::remove_file(&hard).unwrap();
    // Nothing left behind.
    assert_eq!(
        listing(dir.path()),
        ["a.bin", "link.bin", "out.bin", "s-link.xst", "s.xst"]
    );
}

#[test]
fn a_signal_removes_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let area = spr_area(dir.path(), "a.bin");
    let out = dir.path().join("out.bin");
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let child = Command::new(BIN)
            .args([
                "convert",
                s(&area),
                s(&out),
                "--from",
                "intel-sapphire-rapids",
                "--to",
                "intel-sapphire-rapids",
            ])
            .env("XSTATE_TEST_HOLD_TEMP_MS", "20000")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the temporary file to appear.
        let start = Instant::now();
        while listing(dir.path()).len() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no temporary file"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let r = child.wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(r.status.signal(), Some(signal), "{r:?}");
        assert_eq!(listing(dir.path()), ["a.bin"], "left behind");
    }
}

#[test]
fn standard_input_and_output_are_dash() {
    let dir = tempfile::tempdir().unwrap();
    let area = spr_area(dir.path(), "a.bin");
    let spr = "intel-sapphire-rapids";
    let r = run_with(
        &["convert", "-", "-", "--from", spr, "--to", spr],
        &[],
        Some(&area),
    );
    r.status(0, "");
    assert_eq!(r.out.stdout, fs::read(&area).unwrap());
    let r = run_with(&["decode", "-", "--layout", spr], &[], Some(&area));
    r.status(0, "");
    assert!(String::from_utf8_lossy(&r.out.stdout).contains("zmm17"));
    assert_eq!(listing(dir.path()), ["a.bin"]);
}

#[test]
fn streams_use_memory_in_proportion_to_their_input() {
    let dir = tempfile::tempdir().unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let source = Source::of(spr);
    let write = |name: &str, vcpus: &[Vcpu]| {
        let path = dir.path().join(name);
        fs::write(&path, stream::encode(vcpus, &source).unwrap()).unwrap();
        path
    };
    let empty = Vcpu::new(
        RegisterFile::new(),
        XstateRegisters::with_xcr0(spr.xcr0_supported()),
    );
    let one = write("one.xst", std::slice::from_ref(&empty));
    let many = write("many.xst", &vec![empty; stream::MAX_VCPUS as usize]);
    let many_len = fs::metadata(&many).unwrap().len() as i64;
    let to = "intel-sapphire-rapids";
    for (args_one, args_many) in [
        (
            vec!["stream", "check", s(&one), "--to", to, "--json"],
            vec!["stream", "check", s(&many), "--to", to, "--json"],
        ),
        (
            vec!["decode", s(&one), "--layout", to, "--vcpu", "0"],
            vec!["decode", s(&many), "--layout", to, "--vcpu", "4095"],
        ),
    ] {
        let base = run(&args_one);
        base.status(0, "");
        let big = run(&args_many);
        big.status(0, "");
        // At most 32 bytes of memory per input byte beyond one vCPU's run
        // (and its JSON), where a register file per vCPU took 11 KiB each.
        let json = big.out.stdout.len() as i64 * 4;
        let grew = (big.peak_kib - base.peak_kib) * 1024;
        assert!(
            grew <= 32 * many_len + json,
            "{args_many:?}: {grew} bytes more for {many_len} bytes of input"
        );
    }
    let text =
        String::from_utf8_lossy(&run(&["decode", s(&many), "--vcpu", "7"]).out.stdout).into_owned();
    assert!(text.contains("vCPU 7 of 4096"), "{text}");
    // A valid, checksummed stream claiming more vCPUs than KVM allows is
    // refused from its header, whatever it holds.
    let mut bytes = fs::read(&one).unwrap();
    bytes[12..16].copy_from_slice(&1_000_000u32.to_le_bytes());
    let body = bytes.len() - 4;
    let crc = stream::crc32(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    let path = dir.path().join("million.xst");
    fs::write(&path, bytes).unwrap();
    run(&["stream", "check", s(&path), "--to", to]).status(1, "1000000");
    // A stream larger than its header's vCPUs take is refused unread.
    let padded = dir.path().join("padded.xst");
    fs::copy(&one, &padded).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&padded)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let r = run(&["stream", "check", s(&padded), "--to", to]);
    r.status(1, "more than a stream of 1 vCPUs takes at 65536 bytes each");
    // ... unless the bound is raised: then the checksum judges it.
    run(&[
        "stream",
        "check",
        s(&padded),
        "--to",
        to,
        "--max-vcpu-bytes",
        "2000000",
    ])
    .status(1, "checksum");
}

#[test]
fn areas_the_destination_faults_on_are_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let zen4 = catalog::get("amd-zen4").unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    // MXCSR with bit 17 (MM, AMD only): SPR's mask 0xffff lacks it.
    let mut regs = RegisterFile::new();
    regs.set_xmm(1, 5).unwrap();
    regs.set_mxcsr(0x21f80).unwrap();
    let area = dir.path().join("zen4.bin");
    fs::write(&area, regs.encode(zen4, Format::Standard).unwrap()).unwrap();
    let stream_file = dir.path().join("s.xst");
    run(&[
        "stream",
        "encode",
        s(&area),
        s(&stream_file),
        "--layout",
        "amd-zen4",
    ])
    .status(0, "");
    let out = dir.path().join("out.bin");
    let says = "MXCSR 0x21f80 has bits 0x20000 outside the destination's MXCSR mask 0xffff";
    let convert = [
        "convert",
        s(&area),
        s(&out),
        "--from",
        "amd-zen4",
        "--to",
        "intel-sapphire-rapids",
    ];
    let decode = [
        "stream",
        "decode",
        s(&stream_file),
        s(&out),
        "--layout",
        "intel-sapphire-rapids",
    ];
    for args in [&convert[..], &decode[..]] {
        run(args).status(1, says);
        assert!(!out.exists());
    }
    run(&[
        "stream",
        "check",
        s(&stream_file),
        "--to",
        "intel-sapphire-rapids",
    ])
    .status(1, "");
    // With --mask-mxcsr the bits go, said on stderr; MXCSR_MASK is the
    // destination's, as its FXSAVE writes it.
    for args in [&convert[..], &decode[..]] {
        let mut args = args.to_vec();
        args.push("--mask-mxcsr");
        run(&args).status(0, "MXCSR 0x21f80 masked to 0x1f80");
        let written = fs::read(&out).unwrap();
        let back = RegisterFile::decode(&written, spr).unwrap();
        assert_eq!(back.mxcsr().unwrap(), 0x1f80);
        assert_eq!(back.xmm(1).unwrap(), 5);
        assert_eq!(written[28..32], spr.mxcsr_mask().to_le_bytes());
        fs::remove_file(&out).unwrap();
    }
    // The kernel's and debuggers' artifacts are held to the same rule.
    for artifact in ["--to-ptrace", "--to-sigframe", "--to-core-notes"] {
        let args = [
            "convert",
            s(&area),
            "--from",
            "amd-zen4",
            "--to",
            "intel-sapphire-rapids",
            artifact,
            s(&out),
        ];
        run(&args).status(1, says);
        assert_eq!(listing(dir.path()), ["s.xst", "zen4.bin"], "{artifact}");
        let mut masked = args.to_vec();
        masked.push("--mask-mxcsr");
        run(&masked).status(0, "MXCSR 0x21f80 masked to 0x1f80");
        for f in listing(dir.path()) {
            if f.starts_with("out") {
                fs::remove_file(dir.path().join(f)).unwrap();
            }
        }
    }
    // An area converted to its own layout gets that layout's MXCSR_MASK
    // too (the input carried 0).
    let mut plain = RegisterFile::new();
    plain.set_xmm(0, 1).unwrap();
    let mut bytes = plain.encode(spr, Format::Standard).unwrap();
    bytes[28..32].fill(0);
    let zeroed = dir.path().join("mask0.bin");
    fs::write(&zeroed, bytes).unwrap();
    let spr_name = "intel-sapphire-rapids";
    run(&[
        "convert",
        s(&zeroed),
        s(&out),
        "--from",
        spr_name,
        "--to",
        spr_name,
    ])
    .status(0, "");
    assert_eq!(
        fs::read(&out).unwrap()[28..32],
        spr.mxcsr_mask().to_le_bytes()
    );
}

#[test]
fn supervisor_state_for_a_standard_format_destination_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let spr = catalog::get("intel-sapphire-rapids").unwrap();
    let mut cet = [0u8; 16];
    cet[..8].copy_from_slice(&1u64.to_le_bytes());
    let mut regs = RegisterFile::new();
    regs.set_component(ComponentId::CET_U, &cet).unwrap();
    let area = dir.path().join("xsaves.bin");
    fs::write(&area, regs.encode(spr, Format::Compacted).unwrap()).unwrap();
    let stream_file = dir.path().join("s.xst");
    run(&[
        "stream",
        "encode",
        s(&area),
        s(&stream_file),
        "--layout",
        "intel-sapphire-rapids",
    ])
    .status(0, "");
    // A layout without CET: refused, with reasons in text and JSON.
    let r = run(&[
        "stream",
        "check",
        s(&stream_file),
        "--to",
        "amd-zen4",
        "--json",
    ]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr());
    let v: serde_json::Value = serde_json::from_slice(&r.out.stdout).unwrap();
    let reasons = v["vcpus"][0]["reasons"].as_array().unwrap();
    assert!(!reasons.is_empty(), "{v}");
    // A KVM destination (offering CET_U and AMX here) takes the standard
    // format only, which holds no supervisor state: said so.
    let fixture = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intel-emr-kvm-profile.json"
    ))
    .unwrap();
    let profile = dir.path().join("cet-kvm.json");
    let with_cet = fixture
        .replace("\"guest_xss\": \"0x0\"", "\"guest_xss\": \"0x800\"")
        .replace("\"guest_xcr0\": \"0x2e7\"", "\"guest_xcr0\": \"0x602e7\"")
        .replace("\"buffer_size\": 4096", "\"buffer_size\": 11008")
        .replace("\"xsave2_size\": 4096", "\"xsave2_size\": 11008");
    assert_ne!(with_cet, fixture);
    fs::write(&profile, with_cet).unwrap();
    let r = run(&[
        "stream",
        "check",
        s(&stream_file),
        "--to",
        s(&profile),
        "--json",
    ]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr());
    let v: serde_json::Value = serde_json::from_slice(&r.out.stdout).unwrap();
    let reasons: Vec<String> = v["vcpus"][0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("standard-format area")),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.contains("XCOMP_BV")),
        "{reasons:?}"
    );
    // stream decode refuses it the same way, writing nothing.
    let out = dir.path().join("out.bin");
    run(&[
        "stream",
        "decode",
        s(&stream_file),
        s(&out),
        "--layout",
        s(&profile),
    ])
    .status(1, "standard-format area");
    assert!(!out.exists());
}

#[test]
fn geometry_that_cannot_be_real_is_refused_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let zen3 = catalog::get("amd-zen3").unwrap().to_toml();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        path
    };
    for (name, text, says) in [
        (
            "std.toml",
            zen3.replace("standard_size = 2440", "standard_size = 4294967295"),
            "standard size 4294967295",
        ),
        (
            "std2.toml",
            zen3.replace("standard_size = 2440", "standard_size = 3000"),
            "the standard size 3000 disagrees with the components",
        ),
        (
            "cets.toml",
            zen3.replace("size = 24\n", "size = 2147483648\n"),
            "CET_S (component 12)",
        ),
        (
            "supoff.toml",
            zen3.replace("size = 16\noffset = 0\n", "size = 16\noffset = 1000\n"),
            "CET_U (component 11) is a supervisor component, whose standard offset is 0, but has offset 1000",
        ),
    ] {
        let path = write(name, &text);
        run(&["layout", "--layout", s(&path)]).status(1, says);
    }
    // A mask with bits no CPU implements: areas written for it could hold
    // MXCSR values every XRSTOR faults on.
    let path = write("maskff.toml", &zen3.replace("0x2ffff", "0xffffffff"));
    run(&["layout", "--layout", s(&path)]).status(1, "has bits 0xfffd0000 outside 0x2ffff");
    // A host profile whose KVM buffer is larger than any XSAVE area.
    let fixture = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/intel-emr-kvm-profile.json"
    ))
    .unwrap();
    let big = fixture
        .replace("\"buffer_size\": 4096", "\"buffer_size\": 1048577")
        .replace("\"xsave2_size\": 4096", "\"xsave2_size\": 1048577");
    let path = write("big.json", &big);
    run(&["layout", "--layout", s(&path)]).status(1, "1048577");
    // A saved MXCSR mask of 0 stands for 0xffbf (Intel SDM vol. 1, 11.6.6).
    let path = write("mask0.toml", &zen3.replace("0x2ffff", "0x0"));
    let r = run(&["layout", "--layout", s(&path), "--json"]);
    r.status(0, "");
    let v: serde_json::Value = serde_json::from_slice(&r.out.stdout).unwrap();
    assert_eq!(v["mxcsr_mask"], "0xffbf", "{v}");
    // A binary file is a rejected input, not an I/O error.
    let path = dir.path().join("bin.toml");
    fs::write(&path, (0..=255u8).collect::<Vec<_>>()).unwrap();
    run(&["layout", "--layout", s(&path)]).status(1, "not UTF-8 text");
    // A CPUID dump with a sub-leaf given twice, differently.
    let dump = "   0x00000000 0x00: eax=0x0000000d ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n\
                \x20  0x00000001 0x00: eax=0x00a00f11 ebx=0x00000800 ecx=0x7ef8320b edx=0x178bfbff\n\
                \x20  0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000\n\
                \x20  0x0000000d 0x01: eax=0x0000000f ebx=0x00000340 ecx=0x00000000 edx=0x00000000\n\
                \x20  0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000\n\
                \x20  0x0000000d 0x02: eax=0x00000200 ebx=0x00000240 ecx=0x00000000 edx=0x00000000\n";
    let path = write("dup.txt", &format!("CPU:\n{dump}"));
    run(&["layout", "--layout", s(&path)]).status(1, "sub-leaf 0x2 appears twice");
}

#[test]
fn names_are_printed_escaped_and_closed_pipes_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let zen3 = catalog::get("amd-zen3").unwrap().to_toml();
    let evil = zen3.replace("name = \"amd-zen3\"", "name = \"\\u001b[31mred\\u0007\"");
    assert_ne!(evil, zen3);
    let path = dir.path().join("evil.toml");
    fs::write(&path, evil).unwrap();
    let r = run(&["layout", "--layout", s(&path)]);
    r.status(0, "");
    assert!(!r.out.stdout.contains(&0x1b), "raw escape printed");
    assert!(!r.out.stdout.contains(&0x07), "raw bell printed");
    // Output into a pipe closed early: no panic, nothing on stderr.
    for args in [
        &["report"][..],
        &["layout", "--layout", "intel-sapphire-rapids"][..],
    ] {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let r = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
    }
}
