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
    /// a 512-byte FXSAVE image, an ELF core file (its NT_X86_XSTATE), or a
    /// migration stream.
    file: PathBuf,
    /// `host`, a catalog name, a layout file, a CPUID dump or a host
    /// profile, or a core file (its NT_X86_XSAVE_LAYOUT): the layout the
    /// area is in, or a stream's vCPU is shown in [default: for an area,
    /// the host's or a catalog layout that can have written its software
    /// bytes; for a core, its NT_X86_XSAVE_LAYOUT, else as for an area;
    /// for a stream, the catalog layout it was written from, else `host`].
    #[arg(long)]
    layout: Option<String>,
    /// For a stream: which vCPU.
    #[arg(long, default_value_t = 0)]
    vcpu: usize,
    /// For a core file: which thread (from 0, in the core's order).
    #[arg(long, default_value_t = 0)]
    thread: usize,
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
    let mut core = if xstate::artifact::core::is_elf_file(path) {
        Some(super::core::read(path, args.thread)?)
    } else if args.thread != 0 {
        return Err(fail(
            super::USAGE,
            format_args!("{}: --thread is for core files", path.display()),
        ));
    } else {
        None
    };
    let bytes = match &mut core {
        Some(c) => std::mem::take(&mut c.area),
        None => input::read(
            path,
            Expect::AreaOrStream {
                per_vcpu: args.bound.max_vcpu_bytes,
            },
        )?,
    };
    let rejected =
        |e: &dyn std::fmt::Display| fail(REJECTED, format_args!("{}: {e}", path.display()));
    let bytes = if core.is_none() && is_stream(&bytes) {
        bytes
    } else {
        super::area::prepare(bytes, &args.sw)
    };
    let parsed = if core.is_none() && is_stream(&bytes) {
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
        (None, None) => match core.as_mut().and_then(|c| c.note_layout.take()) {
            Some(layout) => layout,
            None => super::area::default_layout(&path.display().to_string(), &bytes)?,
        },
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
            super::area::refusal(&path.display().to_string(), layout.name(), &e),
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
        if let Some(c) = &core {
            out["core"] = serde_json::json!({
                "note": c.note,
                "thread": c.thread,
                "threads": c.threads,
                "pid": c.pid,
                "layout_note": c.has_layout_note,
            });
        }
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
        if let Some(c) = &core {
            println!(
                "core: {} of thread {} of {}{}",
                c.note,
                c.thread,
                c.threads,
                c.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
        }
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
