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
