//! `xstate cpuid check`: a guest CPUID's consistency as far as XSAVE goes,
//! in the spirit of KVM's selftests.

use std::path::{Path, PathBuf};

use serde_json::json;
use xstate::cpuid::{check, CpuidSet};

use super::{fail, REJECTED};

/// CPUID subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CpuidCommand {
    /// Check a CPUID (`cpuid -r` text, an InstLatx64 dump or `kvm_cpuid2`
    /// entries as JSON) for the consistency KVM's selftests assert: XCR0
    /// and IA32_XSS against the feature flags both ways, the XSETBV rules,
    /// IA32_XSS (no user component, only with XSAVES), leaf 0xD sizes
    /// against its offsets, XFD for AMX, APX against MPX. Exit 1 listing
    /// every inconsistency.
    Check {
        /// The CPUID file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Reads and parses a CPUID file: exit 2 when unreadable, 1 when not a
/// CPUID (not text, or larger than any CPUID).
pub fn load(path: &Path) -> Result<(CpuidSet, String), u8> {
    let text = super::read_cpuid_file(path)?;
    let set = CpuidSet::parse(&text)
        .map_err(|e| fail(REJECTED, format_args!("{}: {e}", path.display())))?;
    Ok((set, text))
}

pub fn run(cmd: &CpuidCommand) -> u8 {
    let CpuidCommand::Check { file, json } = cmd;
    let set = match load(file) {
        Ok((set, _)) => set,
        Err(code) => return code,
    };
    let found = check(&set);
    if *json {
        let out = json!({
            "file": file.display().to_string(),
            "entries": set.len(),
            "xcr0_supported": set.xcr0_supported().to_string(),
            "xss_supported": set.xss_supported().to_string(),
            "consistent": found.is_empty(),
            "inconsistencies": found.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else if found.is_empty() {
        println!(
            "{}: consistent ({} entries, XCR0 {}, IA32_XSS {})",
            file.display(),
            set.len(),
            set.xcr0_supported(),
            set.xss_supported()
        );
    } else {
        for i in &found {
            println!("{}: {i}", file.display());
        }
    }
    if found.is_empty() {
        0
    } else {
        REJECTED
    }
}
