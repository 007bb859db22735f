//! Helpers shared by the integration tests: skips that show in a plain
//! `cargo test` run, the shared CPUID dumps, and a KVM test VM.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Reports a part of a test that cannot run here, and why. The line goes
/// straight to the terminal's stderr (the test harness captures only
/// `print!`/`eprint!`), so it shows in a plain `cargo test` run.
pub fn skip(part: &str, why: &str) {
    note(&format!("SKIPPED {part}: {why}"));
}

/// A line of test output that shows in a plain `cargo test` run too.
pub fn note(line: &str) {
    // One write, so the line is not split by the harness's own output.
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Whether missing shared fixtures fail the tests that read them
/// (`XSTATE_REQUIRE_FIXTURES=1`, as `.ci/run` sets) instead of skipping.
pub fn fixtures_required() -> bool {
    std::env::var("XSTATE_REQUIRE_FIXTURES").is_ok_and(|v| v == "1")
}

/// Where the shared CPUID dumps are: `$XSTATE_CPUID_DIR` when set (a copy
/// of the repository elsewhere points it at the dumps), else
/// `../shared/cpuid` beside the repository.
pub fn cpuid_dir() -> PathBuf {
    match std::env::var_os("XSTATE_CPUID_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/cpuid")),
    }
}

/// The shared CPUID dumps' directory ([`cpuid_dir`]), or `None` with the
/// skip printed. A panic when fixtures are required
/// (`XSTATE_REQUIRE_FIXTURES=1`) or when `XSTATE_CPUID_DIR` names a
/// directory that is not there: a path given on purpose is never skipped.
pub fn shared_cpuid_dir(part: &str) -> Option<PathBuf> {
    let dir = cpuid_dir();
    if dir.is_dir() {
        return Some(dir);
    }
    let named = std::env::var_os("XSTATE_CPUID_DIR").is_some_and(|d| !d.is_empty());
    assert!(
        !named,
        "{part}: XSTATE_CPUID_DIR={} is not a directory",
        dir.display()
    );
    assert!(
        !fixtures_required(),
        "{part}: {} is missing and XSTATE_REQUIRE_FIXTURES=1 (set XSTATE_CPUID_DIR to the dumps' directory)",
        dir.display()
    );
    skip(
        part,
        &format!(
            "{} is not present beside the repository (set XSTATE_CPUID_DIR to the dumps' directory; \
             XSTATE_REQUIRE_FIXTURES=1 makes this a failure)",
            dir.display()
        ),
    );
    None
}

/// A test VM on `/dev/kvm`, or `None` with the skip printed.
#[cfg(target_arch = "x86_64")]
pub fn vm(part: &str) -> Option<xstate::kvm::guest::TestVm> {
    if !std::path::Path::new("/dev/kvm").exists() {
        skip(part, "/dev/kvm is absent");
        return None;
    }
    match xstate::kvm::guest::TestVm::new() {
        Ok(vm) => Some(vm),
        Err(e) => {
            skip(part, &format!("/dev/kvm is unusable: {e}"));
            None
        }
    }
}

/// One ELF note: its name and type, and the descriptor, each padded to 4
/// bytes (the System V gABI's note layout).
pub fn elf_note(name: &str, kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    let name = format!("{name}\0");
    n.extend_from_slice(&(name.len() as u32).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&kind.to_le_bytes());
    n.extend_from_slice(name.as_bytes());
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend_from_slice(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

/// A minimal x86_64 ELF core file (ET_CORE, EM_X86_64) whose one PT_NOTE
/// segment, right after the 64-byte ELF header and one 56-byte program
/// header, holds `body` (notes made with [`elf_note`]).
pub fn elf_core(body: &[u8]) -> Vec<u8> {
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    elf.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    for v in [0u64, 64, 0] {
        elf.extend_from_slice(&v.to_le_bytes()); // e_entry, e_phoff, e_shoff
    }
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        elf.extend_from_slice(&v.to_le_bytes()); // sizes and counts
    }
    elf.extend_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    elf.extend_from_slice(&0u32.to_le_bytes()); // p_flags
    for v in [120u64, 0, 0, body.len() as u64, 0, 4] {
        elf.extend_from_slice(&v.to_le_bytes()); // offset, addresses, sizes, align
    }
    elf.extend_from_slice(body);
    elf
}

/// The size in bytes of `c`'s bytes in a register file
/// (`RegisterFile::set_component`): the 512-byte legacy region for x87 and
/// SSE, the layout's size for the others.
pub fn component_size(layout: &xstate::Layout, c: xstate::ComponentId) -> usize {
    if c.is_legacy() {
        512
    } else {
        layout.geometry(c).unwrap().size as usize
    }
}
