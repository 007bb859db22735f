//! `xstate pool baseline`: one guest CPU model for every host of a
//! migration pool, with the feature masking that keeps a guest from seeing
//! what one host lacks; as text, JSON, a Firecracker custom CPU template,
//! or applied to a guest CPUID.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use xstate::cpuid::features::{self, FeatureMask};
use xstate::layout::CpuidLeaf0xD;
use xstate::migrate::pool::{
    baseline, capped, grouped, Baseline, BaselineOptions, CpuTemplate, OffsetPolicy, Omitted,
    PoolHost,
};

use super::{fail, output, warn, REJECTED, USAGE};

/// Pool subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PoolCommand {
    /// Compute the pool's baseline: XCR0 and IA32_XSS every host offers,
    /// leaf 0xD for guests, the feature bits to mask, every exclusion with
    /// its reason.
    Baseline(BaselineArgs),
}

/// Output formats of `pool baseline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text (the default without --apply-to; with it, the
    /// baseline as applied to that guest).
    Text,
    /// JSON: xcr0, xss, excluded, offset_mismatches, cpuid_0xd, feature_masks, ...
    /// (with --apply-to: the baseline as applied to that guest, and what
    /// the guest lacked in `excluded`).
    Json,
    /// A Firecracker custom CPU template (`cpuid_modifiers` with bitmaps).
    Firecracker,
    /// `cpuid -r` text (with --apply-to).
    CpuidR,
    /// `kvm_cpuid2` entries as JSON (with --apply-to).
    KvmJson,
}

/// Arguments of `pool baseline`.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// Every host: `host`, a catalog name, a layout file, or a CPUID dump
    /// (`cpuid -r`, InstLatx64 or `kvm_cpuid2` JSON; its feature flags are
    /// read too).
    #[arg(required = true)]
    hosts: Vec<String>,
    /// Print JSON (same as --format json).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Output format. With --apply-to: the guest CPUID as cpuid-r or
    /// kvm-json (the input's format by default), or json or text for the
    /// baseline as applied to it.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Keep components whose standard offsets differ between hosts, at the
    /// offsets of the --reference host. Guests then misread their own
    /// XSAVE areas on the other hosts.
    #[arg(long, requires = "reference")]
    allow_offset_mismatch: bool,
    /// With --allow-offset-mismatch: the host whose offsets guests see (as
    /// given on the command line, or its layout name).
    #[arg(long, value_name = "HOST", requires = "allow_offset_mismatch")]
    reference: Option<String>,
    /// A guest CPUID (`cpuid -r` text or `kvm_cpuid2` entries as JSON) to
    /// print with the baseline applied: leaf 0xD replaced, feature bits
    /// cleared, leaves of excluded components dropped. Applying never adds
    /// to the guest: it keeps only the XCR0 and IA32_XSS bits, XSAVE
    /// features and flags it had; what it lacked is noted on stderr and
    /// listed by --json.
    #[arg(long, value_name = "FILE")]
    apply_to: Option<PathBuf>,
    /// Write the output to FILE (whole or not at all) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(cmd: &PoolCommand) -> u8 {
    let PoolCommand::Baseline(args) = cmd;
    match try_run(args) {
        Ok(code) | Err(code) => code,
    }
}

/// Loads one host as every command loads a source (a catalog name, a
/// layout file, a host profile, a CPUID dump whose whole CPUID comes along
/// for its feature flags; `host` with this host's KVM offer where
/// `/dev/kvm` is usable).
fn load_host(spec: &str) -> Result<PoolHost, u8> {
    let (profile, cpuid) = super::load_source(spec, true)?;
    let host = PoolHost::from(profile);
    Ok(match cpuid {
        Some(set) => host.with_cpuid(set),
        None => host,
    })
}

fn try_run(args: &BaselineArgs) -> Result<u8, u8> {
    let format = match (args.json, args.format) {
        (true, _) => OutputFormat::Json,
        (false, Some(f)) => f,
        (false, None) if args.apply_to.is_some() => OutputFormat::CpuidR,
        (false, None) => OutputFormat::Text,
    };
    let applying = args.apply_to.is_some();
    match format {
        OutputFormat::CpuidR | OutputFormat::KvmJson if !applying => {
            return Err(fail(
                USAGE,
                "--format cpuid-r and kvm-json print a guest CPUID: they need --apply-to FILE",
            ));
        }
        OutputFormat::Firecracker if applying => {
            return Err(fail(
                USAGE,
                "--apply-to prints the guest CPUID (--format cpuid-r or kvm-json) or the baseline \
                 as applied to it (--format json or text); a Firecracker template is the pool's",
            ));
        }
        _ => {}
    }
    let hosts = args
        .hosts
        .iter()
        .map(|s| load_host(s))
        .collect::<Result<Vec<_>, u8>>()?;
    let offsets = match &args.reference {
        None => OffsetPolicy::Exclude,
        Some(r) => {
            let index = args
                .hosts
                .iter()
                .position(|s| s == r)
                .or_else(|| hosts.iter().position(|h| h.name() == r))
                .ok_or_else(|| {
                    let names = capped(hosts.iter().map(|h| h.name().to_string()));
                    fail(
                        USAGE,
                        format_args!("--reference {r} is not a host of the pool ({names})"),
                    )
                })?;
            OffsetPolicy::Reference(index)
        }
    };
    let b = baseline(&hosts, &BaselineOptions { offsets })
        .map_err(|e| fail(USAGE, format_args!("pool baseline: {e}")))?;
    warn_mismatches(&b, &hosts);
    let text = match (&args.apply_to, format) {
        (Some(file), _) => apply(&b, &hosts, file, format, args.format.is_some())?,
        (None, OutputFormat::Json) => pretty(&to_json(&b, &hosts)),
        (None, OutputFormat::Firecracker) => {
            let template = b.template(&hosts);
            warn_omitted(&template, &hosts);
            pretty(&firecracker(&template))
        }
        (None, _) => to_text(&b, &hosts, None),
    };
    match &args.output {
        Some(path) => output::write_atomically(path, text.as_bytes())
            .map_err(|e| fail(USAGE, format_args!("{}: {e}", path.display())))?,
        None => print!("{text}"),
    }
    Ok(0)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("json");
    s.push('\n');
    s
}

/// The warning `--allow-offset-mismatch` owes: guests see one host's
/// offsets and misread their own areas on the others.
fn warn_mismatches(b: &Baseline, hosts: &[PoolHost]) {
    let Some(reference) = &b.reference else {
        return;
    };
    let kept: Vec<_> = b
        .offset_mismatches
        .iter()
        .filter(|m| (b.xcr0 | b.xss).contains(m.component))
        .collect();
    if kept.is_empty() {
        return;
    }
    let names: Vec<String> = kept.iter().map(|m| m.component.to_string()).collect();
    let size = b.cpuid.subleaves.get(&0).map_or(0, |r| r.ecx);
    let others = hosts.iter().filter(|h| h.name() != reference).map(|h| {
        let theirs = h.layout.standard_size_for(b.xcr0);
        let mut s = h.name().to_string();
        if theirs > size {
            s.push_str(&format!(
                " (whose XSAVE writes {theirs} bytes, past the {size} that CPUID promises)"
            ));
        }
        s
    });
    warn(format_args!(
        "--allow-offset-mismatch keeps {} at {reference}'s offsets: guests will misread their own \
         XSAVE areas (signal frames, ptrace, anything laid out from CPUID) on {}",
        names.join(", "),
        capped(others)
    ));
}

fn warn_omitted(t: &CpuTemplate, hosts: &[PoolHost]) {
    if t.omitted.is_empty() {
        return;
    }
    let list: Vec<String> = t
        .omitted
        .iter()
        .map(|o| match o {
            Omitted::Mask(m) => format!(
                "leaf {:#x} sub-leaf {:#x} {} bits {:#010x}",
                m.leaf, m.subleaf, m.register, m.clear
            ),
            Omitted::Leaf(l) => format!("leaf {l:#x} (to drop)"),
        })
        .collect();
    let mut unknown = hosts
        .iter()
        .filter(|h| h.cpuid.is_none())
        .map(|h| h.name().to_string())
        .peekable();
    let why = if unknown.peek().is_none() {
        "some host's CPUID lacks the entry".to_string()
    } else {
        format!(
            "the entries are not known on {} (give full CPUID dumps to include them)",
            capped(unknown)
        )
    };
    warn(format_args!(
        "the template leaves out {} because Firecracker refuses a modifier for a CPUID entry a \
         host lacks, and {why}",
        list.join("; ")
    ));
}

fn hex(v: u32) -> String {
    format!("{v:#x}")
}

fn leaf_json(leaf: &CpuidLeaf0xD) -> Vec<Value> {
    leaf.subleaves
        .iter()
        .map(|(sub, r)| {
            json!({
                "subleaf": hex(*sub),
                "eax": format!("{:#010x}", r.eax),
                "ebx": format!("{:#010x}", r.ebx),
                "ecx": format!("{:#010x}", r.ecx),
                "edx": format!("{:#010x}", r.edx),
            })
        })
        .collect()
}

fn mask_json(m: &FeatureMask) -> Value {
    let flags: Vec<&str> = features::flags_in(m).map(|b| b.name).collect();
    let what: Vec<&str> = if flags.is_empty() && m.leaf == 0x12 {
        vec!["SGX XFRM"]
    } else {
        flags
    };
    json!({
        "leaf": hex(m.leaf),
        "subleaf": hex(m.subleaf),
        "register": m.register.name(),
        "clear": format!("{:#010x}", m.clear),
        "features": what,
    })
}

fn to_json(b: &Baseline, hosts: &[PoolHost]) -> Value {
    json!({
        "hosts": hosts.iter().map(PoolHost::name).collect::<Vec<_>>(),
        "xcr0": b.xcr0.to_string(),
        "xss": b.xss.to_string(),
        "xsave": b.xsave,
        "xsave_features": format!("{:#x}", b.xsave_features),
        "excluded": b.excluded.iter().map(|e| json!({
            "id": e.component.index(),
            "name": e.component.to_string(),
            "reason": e.reason,
        })).collect::<Vec<_>>(),
        "offset_mismatches": b.offset_mismatches.iter().map(|m| json!({
            "id": m.component.index(),
            "name": m.component.to_string(),
            "kept": (b.xcr0 | b.xss).contains(m.component),
            "offsets": m.offsets.iter().map(|(h, o)| json!({"host": h, "offset": o})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "reference": b.reference,
        "cpuid_0xd": leaf_json(&b.cpuid),
        "feature_masks": b.feature_masks.iter().map(mask_json).collect::<Vec<_>>(),
        "drop_leaves": b.drop_leaves.iter().map(|l| hex(*l)).collect::<Vec<_>>(),
        "missing_features": b.missing_features.iter().map(|m| json!({
            "feature": m.feature.name,
            "leaf": hex(m.feature.leaf),
            "subleaf": hex(m.feature.subleaf),
            "register": m.feature.register.name(),
            "bit": m.feature.bit,
            "hosts": m.hosts,
        })).collect::<Vec<_>>(),
    })
}

/// The baseline as text; `guest` names the guest CPUID it was applied to.
fn to_text(b: &Baseline, hosts: &[PoolHost], guest: Option<&Path>) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "baseline XCR0 {}, IA32_XSS {} over {} hosts{}{}",
        b.xcr0,
        b.xss,
        hosts.len(),
        if b.xsave {
            String::new()
        } else {
            " (no XSAVE: legacy-only)".into()
        },
        guest.map_or_else(String::new, |g| format!(", as applied to {}", g.display()))
    ));
    for e in &b.excluded {
        line(format!(
            "excluded {} (component {}): {}",
            e.component,
            e.component.index(),
            e.reason
        ));
    }
    // Each component once: an excluded one has its line above (with the
    // offsets when they are why); only those kept at the reference's
    // offsets get a line of their own.
    for m in &b.offset_mismatches {
        let Some(r) = b
            .reference
            .as_ref()
            .filter(|_| (b.xcr0 | b.xss).contains(m.component))
        else {
            continue;
        };
        line(format!(
            "offsets differ for {} (component {}): {} (kept at {r}'s)",
            m.component,
            m.component.index(),
            grouped(m.offsets.iter().map(|(h, o)| (h.clone(), o.to_string())))
        ));
    }
    // Flags masked because some host's CPUID lacks them, by host.
    let mut by_hosts: Vec<(String, Vec<&str>)> = Vec::new();
    for m in &b.missing_features {
        let hosts = capped(m.hosts.iter().cloned());
        match by_hosts.iter_mut().find(|(h, _)| *h == hosts) {
            Some((_, flags)) => flags.push(m.feature.name),
            None => by_hosts.push((hosts, vec![m.feature.name])),
        }
    }
    for (hosts, flags) in by_hosts {
        line(format!("masked, not on {hosts}: {}", flags.join(", ")));
    }
    line("CPUID leaf 0xD for guests:".into());
    for (sub, r) in &b.cpuid.subleaves {
        line(format!(
            "  0x0000000d {sub:#04x}: eax={:#010x} ebx={:#010x} ecx={:#010x} edx={:#010x}",
            r.eax, r.ebx, r.ecx, r.edx
        ));
    }
    line("feature bits to clear:".into());
    for m in &b.feature_masks {
        let flags: Vec<&str> = features::flags_in(m).map(|f| f.name).collect();
        line(format!(
            "  leaf {:#x} sub-leaf {:#x} {}: clear {:#010x}{}",
            m.leaf,
            m.subleaf,
            m.register,
            m.clear,
            if flags.is_empty() {
                String::new()
            } else {
                format!(" ({})", flags.join(", "))
            }
        ));
    }
    if !b.drop_leaves.is_empty() {
        let leaves: Vec<String> = b.drop_leaves.iter().map(|l| hex(*l)).collect();
        line(format!("leaves to drop: {}", leaves.join(", ")));
    }
    out
}

/// Firecracker's bitmap: 32 characters, bit 31 first; `0`/`1` where the
/// template sets a bit, `x` where it leaves the host's.
fn bitmap(mask: u32, value: u32) -> String {
    let mut s = String::with_capacity(34);
    s.push_str("0b");
    for bit in (0..32).rev() {
        s.push(if mask >> bit & 1 == 0 {
            'x'
        } else if value >> bit & 1 == 1 {
            '1'
        } else {
            '0'
        });
    }
    s
}

fn firecracker(t: &CpuTemplate) -> Value {
    let modifiers: Vec<Value> = t
        .entries
        .iter()
        .map(|e| {
            json!({
                "leaf": hex(e.leaf),
                "subleaf": hex(e.subleaf),
                "flags": u32::from(e.indexed),
                "modifiers": e.registers.iter().map(|r| json!({
                    "register": r.register.name(),
                    "bitmap": bitmap(r.mask, r.value),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "cpuid_modifiers": modifiers,
        "msr_modifiers": [],
    })
}

/// Applies the baseline to the guest CPUID in `file` and renders the guest
/// CPUID (its input's format unless `explicit`), or for `json` and `text`
/// the baseline as applied to it. With a CPUID out, what the guest lacked
/// is noted on stderr.
fn apply(
    b: &Baseline,
    hosts: &[PoolHost],
    file: &Path,
    format: OutputFormat,
    explicit: bool,
) -> Result<String, u8> {
    let (mut guest, text) = super::cpuid::load(file)?;
    let got = b.apply(&mut guest).map_err(|e| {
        fail(
            REJECTED,
            format_args!("{}: {}", file.display(), super::chain(&e)),
        )
    })?;
    let json_input = matches!(text.trim_start().chars().next(), Some('[' | '{'));
    Ok(match format {
        OutputFormat::Json => {
            let mut v = to_json(&got, hosts);
            v["guest"] = Value::from(file.display().to_string());
            pretty(&v)
        }
        OutputFormat::Text => to_text(&got, hosts, Some(file)),
        _ => {
            note_guest_lacked(b, &got, file);
            match format {
                OutputFormat::KvmJson => guest.to_kvm_json(),
                OutputFormat::CpuidR if explicit => guest.to_cpuid_raw(),
                _ if json_input => guest.to_kvm_json(),
                _ => guest.to_cpuid_raw(),
            }
        }
    })
}

/// Notes on stderr the components of the baseline that the guest in `file`
/// did not get, since applying never adds to a guest.
fn note_guest_lacked(b: &Baseline, got: &Baseline, file: &Path) {
    let lost = ((b.xcr0 | b.xss) - (got.xcr0 | got.xss)).extended();
    if lost.is_empty() {
        return;
    }
    let names = lost
        .iter()
        .map(|c| format!("{c} (component {})", c.index()));
    eprintln!(
        "xstate: note: {} lacks what the baseline offers, so its CPUID does not get {} (--format \
         json lists why)",
        file.display(),
        capped(names)
    );
}
