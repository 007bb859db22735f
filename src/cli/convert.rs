//! `xstate convert`: an XSAVE area from one CPU's layout and format to another's.

use std::path::PathBuf;

use xstate::migrate::{relayout_for, restore_area, Guest, MigrateError, RelayoutOptions};
use xstate::{Format, RegisterFile};

use super::{fail, output, REJECTED, USAGE};

/// Arguments of `xstate convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source XSAVE area (standard or compacted).
    input: PathBuf,
    /// Where to write the converted area.
    output: PathBuf,
    /// The source layout: `host`, a catalog name, a layout file, a CPUID dump
    /// or a host profile (`xstate kvm info --json`; its layout is used).
    #[arg(long)]
    from: String,
    /// The destination layout, named as --from is.
    #[arg(long, required_unless_present = "kvm")]
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
    #[command(flatten)]
    guest: super::guest::GuestArgs,
}

pub fn run(args: &Args) -> u8 {
    let to_spec = args.to.as_deref().unwrap_or("host");
    let (from, to) = match (super::load_layout(&args.from), super::load_layout(to_spec)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let bytes =
        match super::input::read_bounded(&args.input, super::input::MAX_AREA, "an XSAVE area") {
            Ok(b) => b,
            Err(code) => return code,
        };
    let options = RelayoutOptions {
        format: if args.compacted {
            Format::Compacted
        } else {
            Format::Standard
        },
        drop_init: args.drop_init,
    };
    let guest = match args.guest.guest() {
        Ok(g) => g,
        Err(code) => return code,
    };
    let what = args.input.display().to_string();
    let out = match relayout_for(&bytes, &from, &to, options, &guest) {
        Ok((out, masked)) => {
            super::guest::report(&what, &masked);
            out
        }
        Err(e) => {
            // The maskings still say what the guest could not hold.
            if let Ok(mut regs) = RegisterFile::decode(&bytes, &from) {
                super::guest::report(&what, &guest.mask(&mut regs));
            }
            let hint = match e {
                MigrateError::InitWithoutHome { .. } => " (--drop-init drops it)",
                _ => "",
            };
            return fail(REJECTED, format_args!("{what}: {e}{hint}"));
        }
    };
    let out = if args.kvm {
        match kvm_area(&out, &to, &guest) {
            Ok(area) => std::borrow::Cow::Owned(area),
            Err(e) => return fail(REJECTED, format_args!("{what}: {e}")),
        }
    } else {
        out
    };
    if let Err(e) = output::write_atomically(&args.output, &out) {
        return fail(USAGE, format_args!("{}: {e}", args.output.display()));
    }
    0
}

/// The relaid-out host-layout area as KVM's buffer on this host, as
/// `stream decode --kvm` writes it ([`restore_area`]).
#[cfg(target_arch = "x86_64")]
fn kvm_area(area: &[u8], host: &xstate::Layout, guest: &Guest) -> Result<Vec<u8>, String> {
    let profile =
        super::kvm::host_profile().ok_or("--kvm: /dev/kvm is absent or unusable on this host")?;
    let state = RegisterFile::decode(area, host).map_err(|e| e.to_string())?;
    restore_area(&state, &profile, guest).map_err(|e| e.to_string())
}

#[cfg(not(target_arch = "x86_64"))]
fn kvm_area(_: &[u8], _: &xstate::Layout, _: &Guest) -> Result<Vec<u8>, String> {
    Err("KVM XSAVE buffers exist only on x86_64".into())
}
