//! `xstate stream`: encode an XSAVE area as a migration stream, decode one
//! for a destination, check a stream against a destination.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use xstate::area::AreaHeader;
use xstate::migrate::stream::{self, Source, Vcpu};
use xstate::migrate::{check_host, restore_area, Guest, Incompatibility};
use xstate::prelude::*;
use xstate::profile::HostProfile;
use xstate::xregs::XstateRegisters;
use xstate::RegisterFile;

use super::input::{self, Expect};
use super::{fail, output, REJECTED, USAGE};

/// Stream subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StreamCommand {
    /// Encode an XSAVE area (standard or compacted) as a one-vCPU stream
    /// (version 2: XCR0 from --guest-xcr0, else the layout's user components
    /// the CPU model exposes; IA32_XSS the supervisor components a compacted
    /// area's XCOMP_BV holds; IA32_XFD from --xfd; IA32_XFD_ERR 0).
    Encode {
        /// The XSAVE area.
        input: PathBuf,
        /// The stream to write.
        output: PathBuf,
        /// The area's layout: `host`, a catalog name, a layout file, a CPUID
        /// dump or a host profile.
        #[arg(long)]
        layout: String,
        #[command(flatten)]
        guest: super::guest::GuestArgs,
        #[command(flatten)]
        sw: super::area::SwArgs,
    },
    /// Decode a stream's vCPU into the destination's standard format (the
    /// compacted one XRSTORS takes when supervisor state is live and there
    /// is no KVM), after the same judgement as `stream check` (nothing is
    /// written that it refuses; maskings on stderr). PKRU goes with its
    /// XSTATE_BV bit set unless the guest's CPU model lacks it, so every
    /// kernel restores it alike; for a host profile with a KVM part, `host`
    /// with a usable /dev/kvm, or --kvm: KVM's buffer size, PKRU and APX set
    /// where that KVM offers them, and the KVM_SET_XSAVE rules checked.
    Decode {
        /// The stream.
        input: PathBuf,
        /// The XSAVE area to write.
        output: PathBuf,
        /// The destination: a host profile (`xstate kvm info --json`), a
        /// catalog name, a layout file, a CPUID dump or `host`.
        #[arg(long, required_unless_present = "kvm", conflicts_with = "kvm")]
        layout: Option<String>,
        /// Write for KVM on this host: the host layout, exactly KVM's buffer
        /// size (KVM_CAP_XSAVE2), checked as KVM_SET_XSAVE would.
        #[arg(long)]
        kvm: bool,
        /// Which vCPU of the stream.
        #[arg(long, default_value_t = 0)]
        vcpu: usize,
        /// Clear MXCSR bits outside the destination's MXCSR mask (which
        /// XRSTOR faults on) instead of refusing the vCPU; said on stderr.
        #[arg(long)]
        mask_mxcsr: bool,
        #[command(flatten)]
        guest: super::guest::GuestArgs,
        #[command(flatten)]
        bound: BoundArgs,
    },
    /// Check whether every vCPU of a stream can go to a destination (exit 1
    /// when not, listing every reason). Against a host profile (`xstate kvm
    /// info --json`, or `host` where /dev/kvm is usable) KVM there is judged
    /// too; against a layout or a dump, only its CPU.
    Check {
        /// The stream.
        input: PathBuf,
        /// The destination: a host profile, `host`, a catalog name, a
        /// layout file or a CPUID dump.
        #[arg(long)]
        to: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        guest: super::guest::GuestArgs,
        #[command(flatten)]
        bound: BoundArgs,
    },
}

/// The bound on a stream's size, per vCPU its header claims.
#[derive(Debug, clap::Args)]
pub struct BoundArgs {
    /// For a stream: the most bytes read for each vCPU its header claims
    /// (the stream's bound is this times its vCPU count, at most 1 GiB;
    /// every known component live takes about 12 KiB; larger values than a
    /// section can hold change nothing)
    #[arg(long, value_name = "BYTES", default_value_t = stream::VCPU_BYTES_BOUND)]
    pub max_vcpu_bytes: u64,
}

/// Reads a stream (`-`: standard input) within `bound`.
fn read_stream(path: &Path, bound: &BoundArgs) -> Result<Vec<u8>, u8> {
    input::read(
        path,
        Expect::Stream {
            per_vcpu: bound.max_vcpu_bytes,
        },
    )
}

/// Validates a stream read from `path`.
fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<stream::Parsed<'a>, u8> {
    stream::parse(bytes).map_err(|e| fail(REJECTED, format_args!("{}: {e}", path.display())))
}

/// The registers `stream encode` gives an area's vCPU, which no live vCPU
/// describes: XCR0 the layout's supported user components; IA32_XSS the
/// supervisor components a compacted area holds (XSAVES writes XCOMP_BV
/// from XCR0 | IA32_XSS), none for the standard format; no XFD.
fn area_registers(area: &[u8], layout: &xstate::Layout) -> XstateRegisters {
    let held = AreaHeader::parse(area, layout)
        .map(|h| h.xcomp_bv.components())
        .unwrap_or_default();
    XstateRegisters {
        xss: held & layout.xss_supported(),
        ..XstateRegisters::with_xcr0(layout.xcr0_supported())
    }
}

pub fn run(cmd: &StreamCommand) -> u8 {
    match try_run(cmd) {
        Ok(code) | Err(code) => code,
    }
}

fn try_run(cmd: &StreamCommand) -> Result<u8, u8> {
    match cmd {
        StreamCommand::Encode {
            input,
            output,
            layout,
            guest,
            sw,
        } => {
            input::refuse_same(input, output)?;
            let layout = super::load_layout(layout)?;
            let guest = guest.guest()?;
            let bytes = super::area::prepare(input::read(input, Expect::Area)?, sw);
            let mut regs = RegisterFile::decode(&bytes, &layout).map_err(|e| match e {
                xstate::AccessError::Header(h) => fail(
                    REJECTED,
                    super::area::refusal(&input.display().to_string(), layout.name(), &h),
                ),
                e => fail(REJECTED, format_args!("{}: {e}", input.display())),
            })?;
            let what = input.display().to_string();
            super::guest::report(&what, &guest.mask(&mut regs));
            let registers = guest_registers(area_registers(&bytes, &layout), &guest);
            // A stream its own source could not restore is never written:
            // judged as `stream check --to` the source layout judges it
            // (MXCSR and TILECFG XRSTOR takes, registers the CPU can hold).
            let source = HostProfile::from(layout.clone());
            let report = check_host(&regs, &source, &Guest::from_registers(&registers));
            if !report.is_compatible() {
                return Err(not_written(
                    &what,
                    &report.incompatibilities,
                    format_args!("its own source, {}, could not restore it", layout.name()),
                ));
            }
            let out = stream::encode(&[Vcpu::new(regs, registers)], &Source::of(&layout))
                .map_err(|e| fail(REJECTED, format_args!("{what}: {e}")))?;
            output::write_atomically(output, &out)
                .map_err(|e| fail(USAGE, format_args!("{}: {e}", output.display())))?;
            if guest.xcr0.is_none() {
                eprintln!(
                    "xstate: {what}: an area does not say the vCPU's XCR0: recorded as {} (the layout's user components{}); --guest-xcr0 gives the real one",
                    registers.xcr0,
                    if guest.model_xcr0.is_some() { " the CPU model exposes" } else { "" },
                );
            }
            Ok(0)
        }
        StreamCommand::Decode {
            input,
            output,
            layout,
            kvm: _,
            vcpu,
            mask_mxcsr,
            guest,
            bound,
        } => {
            input::refuse_same(input, output)?;
            let guest = guest.guest()?;
            let bytes = read_stream(input, bound)?;
            let parsed = parse(input, &bytes)?;
            let mut v = parsed.vcpu(*vcpu).ok_or_else(|| {
                fail(
                    REJECTED,
                    format_args!(
                        "{}: no vCPU {vcpu} (the stream holds {})",
                        input.display(),
                        parsed.len()
                    ),
                )
            })?;
            let what = format!("{}: vCPU {vcpu}", input.display());
            let destination = match layout {
                // `host` is this host with its live KVM, as for `check`.
                Some(spec) => super::load_profile(spec)?,
                // Without --layout, clap has required --kvm.
                None => {
                    live_kvm_profile().map_err(|e| fail(REJECTED, format_args!("{what}: {e}")))?
                }
            };
            if *mask_mxcsr {
                mask_mxcsr_for(&what, &mut v.state, &destination);
            }
            // Judged as `stream check` judges it: nothing is written that
            // the check refuses.
            let guest = with_registers(&what, &guest, v.registers);
            let report = check_host(&v.state, &destination, &guest);
            super::guest::report(&what, &report.masked);
            if !report.is_compatible() {
                return Err(not_written(
                    &what,
                    &report.incompatibilities,
                    format_args!("{} cannot take it", destination.layout.name()),
                ));
            }
            let mut regs = v.state.clone();
            guest.mask(&mut regs);
            let area = restore_area(&regs, &destination, &guest)
                .map_err(|e| fail(REJECTED, format_args!("{what}: {e}")))?;
            output::write_atomically(output, &area)
                .map_err(|e| fail(USAGE, format_args!("{}: {e}", output.display())))?;
            Ok(0)
        }
        StreamCommand::Check {
            input,
            to,
            json,
            guest,
            bound,
        } => {
            let destination = super::load_profile(to)?;
            let guest = guest.guest()?;
            let bytes = read_stream(input, bound)?;
            let parsed = parse(input, &bytes)?;
            if parsed.is_empty() {
                super::warn(format_args!(
                    "{}: the stream holds no vCPU: nothing to judge",
                    input.display()
                ));
            }
            // One vCPU decoded, judged and printed at a time, into the same
            // register file: memory stays in proportion to the input, with
            // JSON too (written as it goes).
            let name = destination.layout.name();
            let judged = if destination.kvm.is_some() {
                "cpu and kvm"
            } else {
                "cpu"
            };
            let mut out = std::io::stdout().lock();
            if *json {
                let _ = write!(
                    out,
                    "{{\n  \"destination\": {},\n  \"judged\": \"{judged}\",\n  \"vcpus\": [",
                    json!(name)
                );
            }
            let mut state = RegisterFile::new();
            let (mut compatible, mut kvm_ok) = (true, true);
            for n in 0..parsed.len() {
                let registers = parsed.decode_into(n, &mut state).expect("n < len");
                let what = format!("{}: vCPU {n}", input.display());
                let r = check_host(
                    &state,
                    &destination,
                    &with_registers(&what, &guest, registers),
                );
                compatible &= r.is_compatible();
                kvm_ok &= r.kvm == Some(true);
                if *json {
                    let v = json!({
                        "vcpu": n,
                        "compatible": r.is_compatible(),
                        "kvm_set_xsave_ok": r.kvm,
                        "reasons": r.incompatibilities.iter().map(Incompatibility::to_string).collect::<Vec<_>>(),
                        "masked": r.masked.iter().map(|m| json!({
                            "id": m.component.index(),
                            "name": m.component.to_string(),
                            "reason": m.to_string(),
                        })).collect::<Vec<_>>(),
                    });
                    let sep = if n == 0 { "" } else { "," };
                    let _ = write!(out, "{sep}\n    {v}");
                    continue;
                }
                for m in &r.masked {
                    let _ = writeln!(out, "vCPU {n}: {m}");
                }
                if r.is_compatible() {
                    let _ = match r.kvm {
                        Some(_) => writeln!(
                            out,
                            "vCPU {n}: compatible with {name}: its CPU and KVM_SET_XSAVE there take it"
                        ),
                        None => writeln!(
                            out,
                            "vCPU {n}: compatible with {name}'s CPU (judged the CPU only: the KVM verdict is unknown without a KVM profile)"
                        ),
                    };
                }
                for reason in &r.incompatibilities {
                    let _ = writeln!(out, "vCPU {n}: {reason}");
                }
            }
            if *json {
                let kvm = if destination.kvm.is_some() {
                    json!(kvm_ok)
                } else {
                    json!(null)
                };
                let _ = writeln!(
                    out,
                    "\n  ],\n  \"compatible\": {compatible},\n  \"kvm_set_xsave_ok\": {kvm}\n}}"
                );
            }
            let _ = out.flush();
            Ok(if compatible { 0 } else { REJECTED })
        }
    }
}

/// `--mask-mxcsr`: clears the MXCSR bits of `state` outside the mask
/// `check_host` judges it by at `destination` (its KVM's, else its CPU's),
/// saying so on stderr.
pub fn mask_mxcsr_for(what: &str, state: &mut RegisterFile, destination: &HostProfile) {
    let mask = destination
        .kvm
        .as_ref()
        .map_or(destination.layout.mxcsr_mask(), |k| k.mxcsr_mask);
    mask_mxcsr(what, state, mask);
}

/// Clears the MXCSR bits of `state` outside `mask`, saying so on stderr;
/// whether there were any.
pub fn mask_mxcsr(what: &str, state: &mut RegisterFile, mask: u32) -> bool {
    report_mxcsr_mask(what, state, mask);
    match state.mxcsr() {
        Ok(mxcsr) if mxcsr & !mask != 0 => state.set_mxcsr(mxcsr & mask).is_ok(),
        _ => false,
    }
}

/// Says on stderr that `state`'s MXCSR loses the bits outside `mask`,
/// when it has any.
pub fn report_mxcsr_mask(what: &str, state: &RegisterFile, mask: u32) {
    let Ok(mxcsr) = state.mxcsr() else { return };
    if mxcsr & !mask != 0 {
        super::warn(format_args!(
            "{what}: MXCSR {mxcsr:#x} masked to {:#x}: the destination's MXCSR mask {mask:#x} lacks bits {:#x}",
            mxcsr & mask,
            mxcsr & !mask
        ));
    }
}

/// Prints every reason, then that nothing was written and why: the
/// rejected-input status.
pub fn not_written(what: &str, reasons: &[Incompatibility], why: impl std::fmt::Display) -> u8 {
    for reason in reasons {
        eprintln!("xstate: {what}: {reason}");
    }
    let above = match reasons.len() {
        1 => "the reason above".to_string(),
        n => format!("{n} reasons above"),
    };
    fail(
        REJECTED,
        format_args!("{what}: not written: {why} ({above})"),
    )
}

/// This host's profile with its live KVM part.
#[cfg(target_arch = "x86_64")]
fn live_kvm_profile() -> Result<HostProfile, String> {
    super::kvm::host_profile()
        .ok_or_else(|| "--kvm: /dev/kvm is absent or unusable on this host".into())
}

#[cfg(not(target_arch = "x86_64"))]
fn live_kvm_profile() -> Result<HostProfile, String> {
    Err("--kvm: KVM XSAVE buffers exist only on x86_64".into())
}

/// The registers a stream records for an area: the area's own, narrowed by
/// what is known of the guest (its XCR0, the XCR0 its CPU model exposes,
/// its IA32_XFD).
fn guest_registers(mut registers: XstateRegisters, guest: &Guest) -> XstateRegisters {
    if let Some(xcr0) = guest.xcr0 {
        registers.xcr0 = xcr0;
    }
    if let Some(model) = guest.model_xcr0 {
        registers.xcr0 &= model | xstate::Xfeatures::LEGACY;
    }
    registers.xfd = guest.xfd;
    registers
}

/// The guest the options describe, completed by a version 2 stream's
/// registers for that vCPU (the options win where both say something).
///
/// A given XCR0 that differs from the recorded one is said on stderr: the
/// options describe the guest, but the stream recorded its vCPU.
fn with_registers(what: &str, guest: &Guest, registers: Option<XstateRegisters>) -> Guest {
    let Some(r) = registers else {
        return *guest;
    };
    if let Some(xcr0) = guest.xcr0.filter(|&x| x != r.xcr0) {
        super::warn(format_args!(
            "{what}: --guest-xcr0 {xcr0} replaces the XCR0 {} the stream records",
            r.xcr0
        ));
    }
    Guest {
        xcr0: guest.xcr0.or(Some(r.xcr0)),
        model_xcr0: guest.model_xcr0,
        xss: guest.xss.or(Some(r.xss)),
        xfd: guest.xfd | r.xfd,
    }
}
