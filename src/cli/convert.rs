//! `xstate convert`: an XSAVE area from one CPU's layout and format to another's.

use std::path::PathBuf;

use xstate::migrate::{
    check_host, relayout_for, restore_area, Guest, Incompatibility, MigrateError, RelayoutOptions,
};
use xstate::profile::HostProfile;
use xstate::{Format, RegisterFile};

use super::{fail, output, REJECTED, USAGE};

/// Arguments of `xstate convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source XSAVE area (standard or compacted).
    input: PathBuf,
    /// Where to write the converted area (not with --to-core-notes,
    /// --to-ptrace, --to-sigframe).
    #[arg(required_unless_present_any = ["to_core_notes", "to_ptrace", "to_sigframe"])]
    output: Option<PathBuf>,
    /// The source layout: `host`, a catalog name, a layout file, a CPUID dump
    /// or a host profile (`xstate kvm info --json`; its layout is used).
    #[arg(long)]
    from: String,
    /// The destination layout, named as --from is (for --to-core-notes,
    /// --to-ptrace, --to-sigframe: the CPU they are for [default: host]).
    #[arg(long, required_unless_present_any = ["kvm", "to_core_notes", "to_ptrace", "to_sigframe"])]
    to: Option<String>,
    /// Write the compacted format (XSAVEC / XSAVES) instead of the standard one.
    #[arg(long, conflicts_with = "kvm")]
    compacted: bool,
    /// Write for KVM on this host: the host layout, standard format, exactly
    /// KVM's buffer size (KVM_CAP_XSAVE2), checked as KVM_SET_XSAVE would.
    #[arg(long, conflicts_with = "to")]
    kvm: bool,
    /// Drop components the destination lacks when their state is init.
    #[arg(long)]
    drop_init: bool,
    /// Clear MXCSR bits outside the destination's MXCSR mask (which XRSTOR
    /// faults on) instead of refusing the area; said on stderr.
    #[arg(long)]
    mask_mxcsr: bool,
    #[command(flatten)]
    guest: super::guest::GuestArgs,
    #[command(flatten)]
    sw: super::area::SwArgs,
    #[command(flatten)]
    artifact: super::artifact::ArtifactArgs,
}

pub fn run(args: &Args) -> u8 {
    for output in args.output.iter().cloned().chain(args.artifact.outputs()) {
        if let Err(code) = super::input::refuse_same(&args.input, &output) {
            return code;
        }
    }
    let to_spec = args.to.as_deref().unwrap_or("host");
    let (from, to) = match (super::load_layout(&args.from), super::load_layout(to_spec)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let bytes = match super::input::read(&args.input, super::input::Expect::Area) {
        Ok(b) => super::area::prepare(b, &args.sw),
        Err(code) => return code,
    };
    if args.artifact.any() {
        let what = args.input.display().to_string();
        // --mask-mxcsr: the bits the destination lacks go before the
        // artifact is built (which refuses them otherwise).
        let bytes = if args.mask_mxcsr {
            match mask_mxcsr_in_area(&what, &bytes, &from, to.mxcsr_mask()) {
                Ok(b) => b,
                Err(code) => return code,
            }
        } else {
            bytes
        };
        return super::artifact::write(
            &args.artifact,
            &what,
            &bytes,
            &from,
            to_spec,
            &to,
            args.guest.xcr0(),
        );
    }
    let Some(output_path) = &args.output else {
        return fail(USAGE, "convert: no output file");
    };
    let options = RelayoutOptions {
        format: if args.compacted {
            Format::Compacted
        } else {
            Format::Standard
        },
        drop_init: args.drop_init,
        mask_mxcsr: args.mask_mxcsr,
    };
    let guest = match args.guest.guest() {
        Ok(g) => g,
        Err(code) => return code,
    };
    let what = args.input.display().to_string();
    // The vCPU's registers as the options give them must be settable at
    // the destination (its CPU; with --kvm, this host's KVM too).
    let live = if args.kvm {
        match kvm_profile() {
            Some(profile) => Some(profile),
            None => {
                return fail(
                    REJECTED,
                    format_args!("{what}: --kvm: /dev/kvm is absent or unusable on this host"),
                )
            }
        }
    } else {
        None
    };
    let destination = live
        .clone()
        .unwrap_or_else(|| HostProfile::from(to.clone()));
    let refused: Vec<_> = check_host(&RegisterFile::new(), &destination, &guest)
        .incompatibilities
        .into_iter()
        .filter(|i| matches!(i, Incompatibility::Register { .. }))
        .collect();
    // On failure, the maskings still say what the guest could not hold.
    let report_masked = || {
        if let Ok(mut regs) = RegisterFile::decode(&bytes, &from) {
            super::guest::report(&what, &guest.mask(&mut regs));
        }
    };
    if !refused.is_empty() {
        report_masked();
        return super::stream::not_written(
            &what,
            &refused,
            format_args!(
                "{} cannot hold this vCPU's registers",
                destination.layout.name()
            ),
        );
    }
    let out = match relayout_for(&bytes, &from, &to, options, &guest) {
        Ok((out, masked)) => {
            super::guest::report(&what, &masked);
            if args.mask_mxcsr {
                if let Ok(regs) = RegisterFile::decode(&bytes, &from) {
                    super::stream::report_mxcsr_mask(&what, &regs, to.mxcsr_mask());
                }
            }
            out
        }
        Err(e) => {
            report_masked();
            if let MigrateError::Source(h @ xstate::HeaderError::SoftwareBytes(_)) = &e {
                return fail(REJECTED, super::area::refusal(&what, from.name(), h));
            }
            let hint = match e {
                MigrateError::InitWithoutHome { .. } => " (--drop-init drops it)",
                _ => "",
            };
            return fail(REJECTED, format_args!("{what}: {e}{hint}"));
        }
    };
    let out = if let Some(profile) = &live {
        match kvm_area(&out, &to, profile, &guest) {
            Ok(area) => std::borrow::Cow::Owned(area),
            Err(e) => return fail(REJECTED, format_args!("{what}: {e}")),
        }
    } else {
        out
    };
    if let Err(e) = output::write_atomically(output_path, &out) {
        return fail(USAGE, format_args!("{}: {e}", output_path.display()));
    }
    0
}

/// This host's profile with its live KVM part, when `/dev/kvm` is usable.
#[cfg(target_arch = "x86_64")]
fn kvm_profile() -> Option<HostProfile> {
    super::kvm::host_profile()
}

#[cfg(not(target_arch = "x86_64"))]
fn kvm_profile() -> Option<HostProfile> {
    None
}

/// The relaid-out host-layout area as KVM's buffer on this host, as
/// `stream decode --kvm` writes it ([`restore_area`]).
fn kvm_area(
    area: &[u8],
    host: &xstate::Layout,
    profile: &HostProfile,
    guest: &Guest,
) -> Result<Vec<u8>, String> {
    let state = RegisterFile::decode(area, host).map_err(|e| e.to_string())?;
    restore_area(&state, profile, guest).map_err(|e| e.to_string())
}

/// `area` (layout `from`, either format) with the MXCSR bits outside
/// `mask` cleared, said on stderr when there were any.
fn mask_mxcsr_in_area(
    what: &str,
    area: &[u8],
    from: &xstate::Layout,
    mask: u32,
) -> Result<Vec<u8>, u8> {
    let mut regs = RegisterFile::decode(area, from)
        .map_err(|e| fail(REJECTED, format_args!("{what}: {e}")))?;
    if !super::stream::mask_mxcsr(what, &mut regs, mask) {
        return Ok(area.to_vec());
    }
    let format = xstate::XsaveView::new(area, from)
        .map(|v| v.format())
        .unwrap_or(Format::Standard);
    regs.encode(from, format)
        .map_err(|e| fail(REJECTED, format_args!("{what}: {e}")))
}
