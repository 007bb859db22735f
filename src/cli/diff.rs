//! `xstate diff`: how two CPUs' XSAVE layouts differ.

use serde_json::json;
use xstate::layout::{diff, ComponentGeometry};

/// Arguments of `xstate diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// First layout: `host`, a catalog name, a layout file, a CPUID dump or
    /// a host profile (`xstate kvm info --json`).
    a: String,
    /// Second layout.
    b: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Exit status: 0 when the geometries are identical, 1 when they differ.
pub fn run(args: &Args) -> u8 {
    let (a, b) = match (super::load_layout(&args.a), super::load_layout(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let d = diff(&a, &b);
    let geometry = |g: Option<ComponentGeometry>| {
        g.map(|g| {
            json!({
                "size": g.size,
                "offset": if g.supervisor { None } else { Some(g.offset) },
                "align64": g.align64,
                "supervisor": g.supervisor,
                "xfd": g.xfd,
            })
        })
    };
    if args.json {
        let rows: Vec<_> = d
            .iter()
            .map(|c| {
                json!({
                    "id": c.id.index(),
                    "name": c.id.to_string(),
                    "a": geometry(c.a),
                    "b": geometry(c.b),
                })
            })
            .collect();
        let out = json!({
            "a": a.name(),
            "b": b.name(),
            "standard_size": [a.standard_size(), b.standard_size()],
            "mxcsr_mask": [format!("{:#x}", a.mxcsr_mask()), format!("{:#x}", b.mxcsr_mask())],
            "components": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        let cell = |g: Option<ComponentGeometry>| match g {
            None => "absent".to_string(),
            Some(g) if g.supervisor => format!("{} B supervisor", g.size),
            Some(g) => format!(
                "{} B @ {}{}",
                g.size,
                g.offset,
                if g.align64 { " a64" } else { "" }
            ),
        };
        println!("{} vs {}", a.name(), b.name());
        println!(
            "standard size: {} vs {}",
            a.standard_size(),
            b.standard_size()
        );
        if a.mxcsr_mask() != b.mxcsr_mask() {
            println!("MXCSR mask: {:#x} vs {:#x}", a.mxcsr_mask(), b.mxcsr_mask());
        }
        for c in &d {
            println!(
                "{:>3}  {:<18} {:<24} {}",
                c.id.index(),
                c.id.to_string(),
                cell(c.a),
                cell(c.b)
            );
        }
        if d.is_empty() {
            println!("same components, sizes, offsets and flags");
        }
    }
    u8::from(!d.is_empty() || a.standard_size() != b.standard_size())
}
