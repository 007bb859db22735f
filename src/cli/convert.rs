//! `xstate convert`: an XSAVE area from one CPU's layout and format to another's.

use std::path::PathBuf;

use xstate::migrate::{relayout, RelayoutOptions};
use xstate::Format;

use super::{fail, output, REJECTED, USAGE};

/// Arguments of `xstate convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The source XSAVE area (standard or compacted).
    input: PathBuf,
    /// Where to write the converted area.
    output: PathBuf,
    /// The source layout: `host`, a catalog name, a layout file or a CPUID dump.
    #[arg(long)]
    from: String,
    /// The destination layout.
    #[arg(long)]
    to: String,
    /// Write the compacted format (XSAVEC / XSAVES) instead of the standard one.
    #[arg(long)]
    compacted: bool,
    /// Drop components the destination lacks when their state is init.
    #[arg(long)]
    drop_init: bool,
}

pub fn run(args: &Args) -> u8 {
    let (from, to) = match (super::load_layout(&args.from), super::load_layout(&args.to)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let bytes = match std::fs::read(&args.input) {
        Ok(b) => b,
        Err(e) => return fail(USAGE, format_args!("{}: {e}", args.input.display())),
    };
    let options = RelayoutOptions {
        format: if args.compacted {
            Format::Compacted
        } else {
            Format::Standard
        },
        drop_init: args.drop_init,
    };
    let out = match relayout(&bytes, &from, &to, options) {
        Ok(out) => out,
        Err(e) => return fail(REJECTED, format_args!("{}: {e}", args.input.display())),
    };
    if let Err(e) = output::write_atomically(&args.output, &out) {
        return fail(USAGE, format_args!("{}: {e}", args.output.display()));
    }
    0
}
