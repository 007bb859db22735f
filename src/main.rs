//! `xstate`: show and diff XSAVE layouts, decode buffers, check KVM and
//! migration compatibility.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when stdout's reader goes away
    // (`xstate decode F | head`) instead of failing to print.
    #[cfg(unix)]
    // SAFETY: restoring SIGPIPE's default disposition, before any other
    // thread exists, touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = cli::run(args);
    report_peak_rss();
    ExitCode::from(code)
}

/// A test instrument, not an interface: with `XSTATE_REPORT_PEAK_RSS` set,
/// prints this process's own peak resident set (`VmHWM` of
/// /proc/self/status, which starts afresh at exec) on stderr, so a test can
/// bound the memory a command used on its input.
fn report_peak_rss() {
    if std::env::var_os("XSTATE_REPORT_PEAK_RSS").is_none() {
        return;
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("xstate: peak RSS {}", line["VmHWM:".len()..].trim());
        }
    }
}
