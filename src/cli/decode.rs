//! `xstate decode`: every register of an XSAVE area file.

use std::path::PathBuf;

use serde_json::{Map, Value};
use xstate::prelude::*;
use xstate::{Register, XsaveView};

use super::{fail, hex, REJECTED, USAGE};

/// Arguments of `xstate decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file holding raw XSAVE area bytes (format from XCOMP_BV bit 63),
    /// or a migration stream (its first vCPU is shown).
    file: PathBuf,
    /// `host`, a catalog name, a layout file or a CPUID dump.
    #[arg(long, default_value = "host")]
    layout: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> u8 {
    let layout = match super::load_layout(&args.layout) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => return fail(USAGE, format_args!("{}: {e}", args.file.display())),
    };
    // A migration stream decodes to its first vCPU in the layout's standard
    // format (compacted when supervisor state is live, which only that
    // format holds); a version 2 stream's vCPU has its registers beside it.
    let mut xregs = None;
    let bytes = if xstate::migrate::stream::is_stream(&bytes) {
        match super::stream::load(&args.file) {
            Ok(vcpus) => match vcpus.first().map(|v| {
                xregs = v.registers;
                let format = if v.state.xstate_bv().intersects(layout.xss_supported()) {
                    xstate::Format::Compacted
                } else {
                    xstate::Format::Standard
                };
                v.state.encode(&layout, format)
            }) {
                Some(Ok(area)) => area,
                Some(Err(e)) => {
                    return fail(REJECTED, format_args!("{}: {e}", args.file.display()))
                }
                None => {
                    return fail(
                        REJECTED,
                        format_args!("{}: the stream holds no vCPU", args.file.display()),
                    )
                }
            },
            Err(code) => return code,
        }
    } else {
        bytes
    };
    let view = match XsaveView::new(&bytes[..], &layout) {
        Ok(v) => v,
        Err(e) => return fail(REJECTED, format_args!("{}: {e}", args.file.display())),
    };
    let mut registers = Map::new();
    for reg in Register::all() {
        // Registers of components the layout lacks are not printed.
        if let Ok(value) = view.read(reg) {
            registers.insert(
                reg.to_string(),
                Value::String(hex::format(&value, reg.is_memory_order())),
            );
        }
    }
    if args.json {
        let mut out = serde_json::json!({
            "format": view.format().as_str(),
            "xstate_bv": format!("{:#x}", view.xstate_bv()),
            "xcomp_bv": format!("{:#x}", view.xcomp_bv()),
            "registers": registers,
        });
        if let Some(x) = xregs {
            out["xcr0"] = format!("{:#x}", x.xcr0).into();
            out["xss"] = format!("{:#x}", x.xss).into();
            out["xfd"] = format!("{:#x}", x.xfd).into();
            out["xfd_err"] = format!("{:#x}", x.xfd_err).into();
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "format {}, XSTATE_BV {:#x}, XCOMP_BV {:#x}, layout {}",
            view.format().as_str(),
            view.xstate_bv(),
            view.xcomp_bv(),
            layout.name()
        );
        if let Some(x) = xregs {
            println!(
                "XCR0 {:#x}, IA32_XSS {:#x}, IA32_XFD {:#x}, IA32_XFD_ERR {:#x}",
                x.xcr0, x.xss, x.xfd, x.xfd_err
            );
        }
        for (name, value) in &registers {
            println!("{name:>10} {}", value.as_str().unwrap_or_default());
        }
    }
    0
}
