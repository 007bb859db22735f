//! `xstate layout`: one CPU's XSAVE layout as a table or JSON.

use serde_json::json;
use xstate::Layout;

/// Arguments of `xstate layout`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `host`, a catalog name, a layout file, a CPUID dump or a host profile
    /// (`xstate kvm info --json`).
    #[arg(long, default_value = "host")]
    layout: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// List the catalog's layout names.
    #[arg(long, conflicts_with = "json")]
    list: bool,
}

pub fn run(args: &Args) -> u8 {
    if args.list {
        for l in xstate::layout::catalog::all() {
            println!("{:24} {}", l.name(), l.source());
        }
        return 0;
    }
    let layout = match super::load_layout(&args.layout) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&layout)).expect("json")
        );
    } else {
        print!("{}", table(&layout));
    }
    0
}

/// The JSON form: compacted figures assume every supported component.
pub fn to_json(layout: &Layout) -> serde_json::Value {
    let all = layout.supported();
    let components: Vec<_> = layout
        .components()
        .map(|g| {
            json!({
                "id": g.id.index(),
                "name": g.id.to_string(),
                "size": g.size,
                "offset": if g.supervisor { None } else { Some(g.offset) },
                "compacted_offset": layout.compacted_offset(all, g.id),
                "align64": g.align64,
                "supervisor": g.supervisor,
                "xfd": g.xfd,
            })
        })
        .collect();
    json!({
        "name": layout.name(),
        "vendor": layout.vendor(),
        "xcr0_supported": layout.xcr0_supported().to_string(),
        "xss_supported": layout.xss_supported().to_string(),
        "xsave_features": format!("{:#x}", layout.xsave_features()),
        "mxcsr_mask": format!("{:#x}", layout.mxcsr_mask()),
        "standard_size": layout.standard_size(),
        "compacted_size": layout.compacted_size(),
        "components": components,
    })
}

/// The human-readable table.
pub fn table(layout: &Layout) -> String {
    use std::fmt::Write;
    let all = layout.supported();
    let mut s = String::new();
    let _ = writeln!(s, "layout {} ({})", layout.name(), layout.vendor());
    let _ = writeln!(s, "source: {}", layout.source());
    let _ = writeln!(
        s,
        "XCR0 supported {:#x}, IA32_XSS supported {:#x}, MXCSR mask {:#x}",
        layout.xcr0_supported(),
        layout.xss_supported(),
        layout.mxcsr_mask()
    );
    let _ = writeln!(
        s,
        "standard size {} bytes, compacted size {} bytes (all supported components)",
        layout.standard_size(),
        layout.compacted_size()
    );
    let _ = writeln!(
        s,
        "{:>3}  {:<18} {:>6} {:>8} {:>10}  {:<7} {:<10} xfd",
        "id", "name", "size", "offset", "compacted", "align64", "kind"
    );
    for g in layout.components() {
        let offset = if g.supervisor {
            "-".to_string()
        } else {
            g.offset.to_string()
        };
        let compacted = layout
            .compacted_offset(all, g.id)
            .map_or("-".into(), |o| o.to_string());
        let _ = writeln!(
            s,
            "{:>3}  {:<18} {:>6} {:>8} {:>10}  {:<7} {:<10} {}",
            g.id.index(),
            g.id.to_string(),
            g.size,
            offset,
            compacted,
            if g.align64 { "yes" } else { "no" },
            if g.supervisor { "supervisor" } else { "user" },
            if g.xfd { "yes" } else { "no" },
        );
    }
    s
}
