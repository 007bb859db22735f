//! Running the `xstate` binary, for the tests of the CLI: only they
//! include this module, since the binary exists only where the `cli`
//! feature builds it (`tests/common` serves every test).
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::Value;

/// Runs `xstate` with `args`, its output captured.
pub fn xstate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xstate"))
        .args(args)
        .output()
        .expect("run xstate")
}

/// The run's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run's stdout as JSON, after checking that it succeeded.
pub fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}
