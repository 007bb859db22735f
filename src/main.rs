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
    ExitCode::from(cli::run(args))
}
