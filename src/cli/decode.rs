//! `xstate decode`: every register of an XSAVE area file, or of one vCPU of
//! a migration stream.

use std::path::PathBuf;

use serde_json::{Map, Value};
use xstate::layout::catalog;
use xstate::migrate::stream::{self, is_stream, StreamHeader};
use xstate::prelude::*;
use xstate::xregs::XstateRegisters;
use xstate::{Format, Layout, Register, XsaveView};

use super::input::{self, Expect};
use super::{fail, hex, REJECTED};

/// Arguments of `xstate decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file holding raw XSAVE area bytes (format from XCOMP_BV bit 63),
    /// or a migration stream.
    file: PathBuf,
    /// `host`, a catalog name, a layout file, a CPUID dump or a host
    /// profile: the layout the area is in, or a stream's vCPU is shown in
    /// [default: `host` for an area; for a stream, the catalog layout it
    /// was written from, else `host`].
    #[arg(long)]
    layout: Option<String>,
    /// For a stream: which vCPU.
    #[arg(long, default_value_t = 0)]
    vcpu: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    bound: super::stream::BoundArgs,
    #[command(flatten)]
    sw: super::area::SwArgs,
}

/// What a stream says of the vCPU shown.
struct FromStream {
    header: StreamHeader,
    registers: Option<XstateRegisters>,
}

/// The catalog layout a stream was written from, when it is one.
fn source_layout(header: &StreamHeader) -> Option<&'static Layout> {
    catalog::all()
        .iter()
        .find(|l| l.fingerprint() == header.source_fingerprint)
}

impl FromStream {
    /// The name of the catalog layout the stream was written from.
    fn source_name(&self) -> Option<&'static str> {
        source_layout(&self.header).map(Layout::name)
    }
}

pub fn run(args: &Args) -> u8 {
    match try_run(args) {
        Ok(code) | Err(code) => code,
    }
}

fn try_run(args: &Args) -> Result<u8, u8> {
    let path = &args.file;
    let bytes = input::read(
        path,
        Expect::AreaOrStream {
            per_vcpu: args.bound.max_vcpu_bytes,
        },
    )?;
    let rejected =
        |e: &dyn std::fmt::Display| fail(REJECTED, format_args!("{}: {e}", path.display()));
    let bytes = if is_stream(&bytes) {
        bytes
    } else {
        super::area::prepare(bytes, &args.sw)
    };
    let parsed = if is_stream(&bytes) {
        Some(stream::parse(&bytes).map_err(|e| rejected(&e))?)
    } else {
        None
    };
    let layout = match (&args.layout, &parsed) {
        (Some(spec), _) => super::load_layout(spec)?,
        (None, Some(p)) => match source_layout(&p.header()) {
            Some(source) => source.clone(),
            None => super::load_layout("host")?,
        },
        (None, None) => super::area::default_layout(&path.display().to_string(), &bytes)?,
    };
    // A stream's vCPU is shown in the layout's standard format (compacted
    // when supervisor state is live, which only that format holds).
    let (area, stream) = if let Some(parsed) = parsed {
        let Some(v) = parsed.vcpu(args.vcpu) else {
            return Err(rejected(&format_args!(
                "no vCPU {} (the stream holds {})",
                args.vcpu,
                parsed.len()
            )));
        };
        let from = FromStream {
            header: parsed.header(),
            registers: v.registers,
        };
        let format = if v.state.xstate_bv().intersects(layout.xss_supported()) {
            Format::Compacted
        } else {
            Format::Standard
        };
        let area = v.state.encode(&layout, format).map_err(|e| {
            let hint = match from.source_name() {
                Some(name) => format!("the stream was written from {name}: --layout {name}"),
                None => "--layout names a layout that has it".to_string(),
            };
            rejected(&format_args!(
                "vCPU {}: {e} in layout {} ({hint})",
                args.vcpu,
                layout.name()
            ))
        })?;
        (area, Some(from))
    } else if args.vcpu != 0 {
        return Err(fail(
            super::USAGE,
            format_args!(
                "{}: --vcpu is for migration streams; this is an XSAVE area",
                path.display()
            ),
        ));
    } else {
        (bytes, None)
    };
    let view = XsaveView::new(&area[..], &layout).map_err(|e| {
        fail(
            REJECTED,
            super::area::refusal(&path.display().to_string(), &e),
        )
    })?;
    // Registers of components the layout lacks are not printed; the rest in
    // the canonical order (x87, SSE, then by component).
    let registers: Vec<(String, String)> = Register::all()
        .filter_map(|reg| {
            let value = view.read(reg).ok()?;
            Some((reg.to_string(), hex::format(&value, reg.is_memory_order())))
        })
        .collect();
    if args.json {
        let map: Map<String, Value> = registers
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let mut out = serde_json::json!({
            "layout": layout.name(),
            "format": view.format().as_str(),
            "xstate_bv": format!("{:#x}", view.xstate_bv()),
            "xcomp_bv": format!("{:#x}", view.xcomp_bv()),
            "registers": map,
        });
        if let Some(s) = &stream {
            out["stream"] = serde_json::json!({
                "version": s.header.version,
                "vcpus": s.header.vcpus,
                "vcpu": args.vcpu,
                "source_xcr0": format!("{:#x}", s.header.source_xcr0),
                "source_layout": s.source_name(),
            });
            if let Some(x) = s.registers {
                out["xcr0"] = format!("{:#x}", x.xcr0).into();
                out["xss"] = format!("{:#x}", x.xss).into();
                out["xfd"] = format!("{:#x}", x.xfd).into();
                out["xfd_err"] = format!("{:#x}", x.xfd_err).into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        if let Some(s) = &stream {
            println!(
                "stream version {}: vCPU {} of {}, written from {} (source XCR0 {:#x}); shown in layout {}",
                s.header.version,
                args.vcpu,
                s.header.vcpus,
                s.source_name().unwrap_or("a layout outside the catalog"),
                s.header.source_xcr0,
                layout.name()
            );
            if let Some(x) = s.registers {
                println!(
                    "XCR0 {:#x}, IA32_XSS {:#x}, IA32_XFD {:#x}, IA32_XFD_ERR {:#x}",
                    x.xcr0, x.xss, x.xfd, x.xfd_err
                );
            }
        }
        println!(
            "format {}, XSTATE_BV {:#x}, XCOMP_BV {:#x}, layout {}",
            view.format().as_str(),
            view.xstate_bv(),
            view.xcomp_bv(),
            layout.name()
        );
        for (name, value) in &registers {
            println!("{name:>10} {value}");
        }
    }
    Ok(0)
}
