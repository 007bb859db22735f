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

/// `../shared/cpuid` beside the repository, or `None` with the skip
/// printed; a panic when fixtures are required.
pub fn shared_cpuid_dir(part: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/cpuid"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !fixtures_required(),
        "{part}: {} is missing and XSTATE_REQUIRE_FIXTURES=1",
        dir.display()
    );
    skip(
        part,
        &format!(
            "{} is not present beside the repository (set XSTATE_REQUIRE_FIXTURES=1 to make this a failure)",
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
