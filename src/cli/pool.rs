//! `xstate pool baseline`: the XSAVE features a guest may use on every host
//! of a migration pool.

use serde_json::json;
use xstate::migrate::pool::baseline;

/// Pool subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PoolCommand {
    /// Compute the pool's baseline XCR0, exclusions, offset mismatches and
    /// leaf 0xD values.
    Baseline {
        /// Every host's layout: `host`, catalog names, layout files or CPUID dumps.
        #[arg(required = true)]
        layouts: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: &PoolCommand) -> u8 {
    let PoolCommand::Baseline { layouts, json } = cmd;
    let mut hosts = Vec::new();
    for spec in layouts {
        match super::load_layout(spec) {
            Ok(l) => hosts.push(l),
            Err(code) => return code,
        }
    }
    let b = baseline(&hosts);
    let cpuid: Vec<_> = b
        .cpuid
        .subleaves
        .iter()
        .map(|(sub, r)| {
            json!({
                "subleaf": sub,
                "eax": format!("{:#010x}", r.eax),
                "ebx": format!("{:#010x}", r.ebx),
                "ecx": format!("{:#010x}", r.ecx),
                "edx": format!("{:#010x}", r.edx),
            })
        })
        .collect();
    if *json {
        let out = json!({
            "xcr0": b.xcr0.to_string(),
            "xss": b.xss.to_string(),
            "excluded": b.excluded.iter().map(|e| json!({"id": e.component.index(), "name": e.component.to_string(), "reason": e.reason})).collect::<Vec<_>>(),
            "offset_mismatches": b.offset_mismatches.iter().map(|m| json!({
                "id": m.component.index(),
                "name": m.component.to_string(),
                "offsets": m.offsets.iter().map(|(h, o)| json!({"host": h, "offset": o})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "cpuid_0xd": cpuid,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "baseline XCR0 {:#x}, IA32_XSS {:#x} over {} hosts",
            b.xcr0,
            b.xss,
            hosts.len()
        );
        for e in &b.excluded {
            println!(
                "excluded {} (component {}): {}",
                e.component,
                e.component.index(),
                e.reason
            );
        }
        for m in &b.offset_mismatches {
            let list: Vec<String> = m.offsets.iter().map(|(h, o)| format!("{h} {o}")).collect();
            println!(
                "offsets differ for {} (component {}): {}",
                m.component,
                m.component.index(),
                list.join(", ")
            );
        }
        println!("CPUID leaf 0xD for guests:");
        for (sub, r) in &b.cpuid.subleaves {
            println!(
                "  0x0000000d {sub:#04x}: eax={:#010x} ebx={:#010x} ecx={:#010x} edx={:#010x}",
                r.eax, r.ebx, r.ecx, r.edx
            );
        }
    }
    0
}
