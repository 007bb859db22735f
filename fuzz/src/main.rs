//! The AFL++ harness: `xstate-fuzz TARGET` runs the body of the fuzz target
//! of that name (`xstate::fuzzing::TARGETS`) on each input AFL++ gives it,
//! in persistent mode; `xstate-fuzz --list` prints the targets' names, one
//! a line. Built with `cargo afl build`; see `fuzz/README.md`.

use std::process::ExitCode;

use xstate::fuzzing::{target, TARGETS};

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    if name == "--list" {
        for t in TARGETS {
            println!("{}", t.name);
        }
        return ExitCode::SUCCESS;
    }
    let Some(target) = target(&name) else {
        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: xstate-fuzz TARGET (one of: {})", names.join(", "));
        return ExitCode::from(2);
    };
    // The catalog is parsed once, on first use; parse it before the loop
    // so that every run of a body takes the same edges (AFL++'s stability).
    xstate::layout::catalog::all();
    let body = target.body;
    afl::fuzz!(|data: &[u8]| {
        body(data);
    });
    ExitCode::SUCCESS
}
