//! Command-line front end. Each subcommand lives in its own module and
//! returns the process exit status: 0 success, 1 rejected input, 2 usage or
//! I/O error.

mod area;
mod artifact;
mod convert;
mod core;
mod cpuid;
mod decode;
mod diff;
mod guest;
mod hex;
mod input;
#[cfg(target_arch = "x86_64")]
pub mod kvm;
mod layout;
mod output;
mod pool;
mod report;
mod stream;
mod vmm;

use clap::{Parser, Subcommand};

/// Exit status for a rejected input.
pub const REJECTED: u8 = 1;
/// Exit status for a usage or I/O error.
pub const USAGE: u8 = 2;

/// Save, restore, inspect and migrate x86 XSAVE state.
#[derive(Debug, Parser)]
#[command(name = "xstate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a CPU's XSAVE layout: every component's size and offsets.
    Layout(layout::Args),
    /// Convert an XSAVE area to another CPU's layout or format.
    Convert(convert::Args),
    /// Show how two CPUs' layouts differ (exit 1 when they do).
    Diff(diff::Args),
    /// Decode a raw XSAVE area file and print every register.
    Decode(decode::Args),
    /// Migration streams: encode, decode, check against a destination.
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Migration pools: the baseline every host can run, as a guest CPU model.
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Guest CPUIDs: check one for the consistency KVM's selftests assert.
    #[command(subcommand)]
    Cpuid(cpuid::CpuidCommand),
    /// Report on this host: its layout, a live XSAVE/XRSTOR self-check, KVM.
    Report,
    /// Other VMMs' snapshots (Cloud Hypervisor, crosvm): decode, check and
    /// convert their vCPUs' XSAVE state.
    #[command(subcommand)]
    Vmm(vmm::VmmCommand),
    /// KVM: capabilities and pre-flight checks of XSAVE buffers.
    #[cfg(target_arch = "x86_64")]
    #[command(subcommand)]
    Kvm(kvm::KvmCommand),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Layout(args) => layout::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Stream(cmd) => stream::run(&cmd),
        Command::Pool(cmd) => pool::run(&cmd),
        Command::Cpuid(cmd) => cpuid::run(&cmd),
        Command::Report => report::run(),
        Command::Vmm(cmd) => vmm::run(&cmd),
        #[cfg(target_arch = "x86_64")]
        Command::Kvm(cmd) => kvm::run(&cmd),
    }
}

/// Prints an error to stderr and returns `code`.
pub fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!("xstate: {}", printable(&message.to_string()));
    code
}

/// The most bytes of one message printed: a parser quoting a
/// hostile input's line must not flood the terminal.
const MAX_MESSAGE: usize = 2000;

/// `message` for a terminal: control characters (a NUL, an escape
/// sequence, a bare CR from the input quoted) escaped, cut after about
/// [`MAX_MESSAGE`] bytes.
pub fn printable(message: &str) -> String {
    let mut out = String::new();
    for c in message.chars() {
        if out.len() >= MAX_MESSAGE {
            out.push_str(" [...]");
            break;
        }
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// An error and every error it was caused by, joined with ": ".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The exit status for a layout source that gave no layout: 2 for a usage
/// or I/O error (an unknown name, a file that cannot be read), 1 for a
/// rejected input (a file too large, not text, or not a valid layout file,
/// CPUID or profile).
pub fn source_status(e: &xstate::layout::SourceError) -> u8 {
    use xstate::layout::SourceError;
    match e {
        SourceError::Io { .. }
        | SourceError::UnknownName { .. }
        | SourceError::NotRegular {
            kind: "directory", ..
        } => USAGE,
        _ => REJECTED,
    }
}

/// Reads a CPUID file as every layout source is read
/// ([`xstate::layout::read_source_file`], at most
/// [`xstate::layout::MAX_SOURCE_FILE`] bytes of UTF-8 text): exit 2 when it
/// cannot be read, 1 when it is too large or not text.
pub fn read_cpuid_file(path: &std::path::Path) -> Result<String, u8> {
    xstate::layout::read_source_file(path).map_err(|e| fail(source_status(&e), chain(&e)))
}

/// Prints a warning to stderr.
pub fn warn(message: impl std::fmt::Display) {
    eprintln!("xstate: warning: {}", printable(&message.to_string()));
}

/// Warns about every XSETBV rule the layout's supported XCR0 breaks: real
/// CPUs never enumerate such a set, hand-written files might, and no guest
/// is ever offered the bits at fault.
pub fn warn_layout(spec: &str, layout: &xstate::Layout) {
    for v in layout.xcr0_violations() {
        warn(format_args!(
            "layout {spec}: supported {v}; no XCR0 can use those bits, and no baseline offers them"
        ));
    }
}

/// Loads a layout named on the command line (`host`, a catalog name, or a
/// file: a host profile, a CPUID as `cpuid -r`, InstLatx64 or `kvm_cpuid2`
/// JSON, or a layout file), warning about an XCR0 that breaks an XSETBV
/// rule.
pub fn load_layout(spec: &str) -> Result<xstate::Layout, u8> {
    load_profile_of(spec, false).map(|p| p.layout)
}

/// Loads a host profile named on the command line without probing this
/// host's KVM: a profile file gives its KVM part, every other source its
/// layout alone.
#[cfg(target_arch = "x86_64")]
pub fn load_stored_profile(spec: &str) -> Result<xstate::profile::HostProfile, u8> {
    load_profile_of(spec, false)
}

/// Loads a host profile named on the command line: a profile file gives
/// its KVM part; `host` gives this host's live KVM part where `/dev/kvm` is
/// usable; other sources give the CPU's layout only.
pub fn load_profile(spec: &str) -> Result<xstate::profile::HostProfile, u8> {
    load_profile_of(spec, true)
}

fn load_profile_of(spec: &str, live_kvm: bool) -> Result<xstate::profile::HostProfile, u8> {
    load_source(spec, live_kvm).map(|(profile, _)| profile)
}

/// Loads what `spec` names as [`load_profile`] does (with this host's live
/// KVM part when `live_kvm`), and the whole CPUID when it is a CPUID dump.
pub fn load_source(
    spec: &str,
    live_kvm: bool,
) -> Result<
    (
        xstate::profile::HostProfile,
        Option<xstate::cpuid::CpuidSet>,
    ),
    u8,
> {
    let source = xstate::layout::LayoutSource::parse(spec);
    #[cfg(target_arch = "x86_64")]
    if live_kvm && source == xstate::layout::LayoutSource::Host {
        if let Some(profile) = kvm::host_profile() {
            warn_layout(spec, &profile.layout);
            return Ok((profile, None));
        }
        warn("host: /dev/kvm is absent or unusable: only this host's CPU is judged");
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = live_kvm;
    let (profile, cpuid) = source.load_with_cpuid().map_err(|e| {
        // File errors name the file already.
        let message = chain(&e);
        if message.starts_with(spec) {
            fail(source_status(&e), message)
        } else {
            fail(source_status(&e), format_args!("layout {spec}: {message}"))
        }
    })?;
    warn_layout(spec, &profile.layout);
    Ok((profile, cpuid))
}
