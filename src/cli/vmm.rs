//! `xstate vmm`: the XSAVE state in other VMMs' snapshots, decoded, checked
//! against a destination, and converted for it.
//!
//! - Cloud Hypervisor: a snapshot directory's `state.json`. The VM's
//!   snapshot holds a `cpu-manager` snapshot, whose `snapshots` are the
//!   vCPUs by id; each vCPU's `snapshot_data.state` is a JSON string of its
//!   state, `{"Kvm": {...}}`, holding `cpuid` (`kvm_cpuid_entry2` objects),
//!   `fpu` and `xsave: {"region": [1024 u32], "extra": [u32...]}` (`extra`
//!   omitted when empty). The source layout comes from the saved CPUID.
//! - crosvm: one vCPU's CBOR fragment holding `xsave: {"data": [u32...],
//!   "len": bytes}` (or that map itself). crosvm saves no CPUID, so the
//!   source layout must be given (`--layout`).
//!
//! A conversion writes only the XSAVE bytes (and, for Cloud Hypervisor,
//! the `fpu` fields where x87 or SSE changed, since it sets them after the
//! XSAVE state on restore), after the same judgement as `stream check`;
//! nothing is written when any vCPU is refused.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use xstate::cpuid::CpuidSet;
use xstate::layout::CpuidRegs;
use xstate::migrate::pool::{baseline, Baseline, BaselineOptions, PoolHost};
use xstate::migrate::{check_host, restore_area, CheckReport, Guest, Incompatibility};
use xstate::prelude::*;
use xstate::profile::HostProfile;
use xstate::{Layout, Register, RegisterFile, XsaveView};

use super::{fail, hex, output, REJECTED, USAGE};

/// The largest Cloud Hypervisor `state.json` read, in bytes.
const MAX_CH_STATE: u64 = 32 << 20;
/// The most JSON values a `state.json`, and a vCPU's state inside it, may
/// hold: a parsed value takes tens of bytes, so a file of bare numbers
/// would take many times its size. Cloud Hypervisor's hold a few thousand
/// (a vCPU's state: its XSAVE words, CPUID entries, MSRs, LAPIC bytes).
const MAX_JSON_VALUES: usize = 1 << 20;

/// Whether `text` holds at most `max` JSON values: counted, outside
/// strings, as the separators and openers that begin one (an upper bound),
/// in one pass and no memory.
fn json_values_at_most(text: &[u8], max: usize) -> bool {
    let (mut count, mut in_string, mut escaped) = (1usize, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b':' | b'[' | b'{' => {
                count += 1;
                if count > max {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// The largest crosvm vCPU fragment read, in bytes: its XSAVE state is at
/// most 11 KiB of words, its registers and MSRs a few KiB more.
const MAX_CROSVM_FRAGMENT: u64 = 256 << 10;

/// `xstate vmm` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum VmmCommand {
    /// Cloud Hypervisor snapshots (a directory holding `state.json`).
    #[command(subcommand)]
    Ch(Action),
    /// crosvm vCPU snapshots (one vCPU's CBOR fragment; crosvm saves no
    /// CPUID: --layout gives the source layout).
    #[command(subcommand)]
    Crosvm(Action),
}

/// What to do with a snapshot.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print one vCPU's registers (saying how many vCPUs there are).
    Decode {
        /// The snapshot: a Cloud Hypervisor directory, or a crosvm fragment.
        snapshot: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// Which vCPU (a Cloud Hypervisor snapshot's n-th, by id).
        #[arg(long, default_value_t = 0)]
        vcpu: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every vCPU against a destination, as `stream check` does
    /// (exit 1 when one cannot go, listing every reason).
    Check {
        /// The snapshot.
        snapshot: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// The destination: a host profile, `host`, a catalog name, a layout
        /// file or a CPUID dump.
        #[arg(long)]
        to: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        guest: super::guest::GuestArgs,
    },
    /// Write the snapshot converted for a destination: Cloud Hypervisor's
    /// `state.json` (to OUTPUT), or crosvm's fragment, with only the XSAVE
    /// state (and CH's `fpu` where x87 or SSE changed) rewritten.
    Convert {
        /// The snapshot.
        snapshot: PathBuf,
        /// Where to write the converted `state.json` or fragment.
        output: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// The destination, named as for `check`; `host` with a usable
        /// /dev/kvm writes this host's KVM buffer size.
        #[arg(long)]
        to: String,
        /// Clear MXCSR bits outside the destination's MXCSR mask instead of
        /// refusing the vCPU; said on stderr.
        #[arg(long)]
        mask_mxcsr: bool,
        #[command(flatten)]
        guest: super::guest::GuestArgs,
    },
}

/// The source layout, where the snapshot does not say it.
#[derive(Debug, clap::Args)]
pub struct SourceArgs {
    /// The layout the XSAVE bytes were saved in: required for crosvm, which
    /// saves no CPUID; for Cloud Hypervisor it replaces the one its saved
    /// CPUID gives.
    #[arg(long)]
    layout: Option<String>,
}

/// One vCPU of a snapshot: its XSAVE bytes and the layout they are in.
struct SavedVcpu {
    id: String,
    bytes: Vec<u8>,
    layout: Layout,
}

/// A snapshot read, with what is needed to write it back.
enum Snapshot {
    Ch {
        root: Value,
        /// JSON pointers to each vCPU's state string, in id order.
        states: Vec<String>,
    },
    Crosvm {
        root: ciborium::Value,
    },
}

pub fn run(cmd: &VmmCommand) -> u8 {
    let (ch, action) = match cmd {
        VmmCommand::Ch(a) => (true, a),
        VmmCommand::Crosvm(a) => (false, a),
    };
    match try_run(ch, action) {
        Ok(code) | Err(code) => code,
    }
}

fn try_run(ch: bool, action: &Action) -> Result<u8, u8> {
    let (path, source) = match action {
        Action::Decode {
            snapshot, source, ..
        }
        | Action::Check {
            snapshot, source, ..
        }
        | Action::Convert {
            snapshot, source, ..
        } => (snapshot, source),
    };
    let given = source
        .layout
        .as_deref()
        .map(super::load_layout)
        .transpose()?;
    let (snapshot, vcpus) = if ch {
        read_ch(path, given.as_ref())?
    } else {
        let Some(layout) = given else {
            return Err(fail(
                USAGE,
                format_args!(
                    "{}: crosvm saves no CPUID: --layout must give the layout its XSAVE bytes are in",
                    path.display()
                ),
            ));
        };
        read_crosvm(path, layout)?
    };
    let what = |v: &SavedVcpu| format!("{}: vCPU {}", path.display(), v.id);
    let states = vcpus
        .iter()
        .map(|v| {
            RegisterFile::decode(&v.bytes, &v.layout).map_err(|e| {
                fail(
                    REJECTED,
                    format_args!("{}: in layout {}: {e}", what(v), v.layout.name()),
                )
            })
        })
        .collect::<Result<Vec<_>, u8>>()?;
    match action {
        Action::Decode { vcpu, json, .. } => {
            let Some(v) = vcpus.get(*vcpu) else {
                return Err(fail(
                    REJECTED,
                    format_args!(
                        "{}: no vCPU {vcpu} (the snapshot holds {})",
                        path.display(),
                        vcpus.len()
                    ),
                ));
            };
            print_vcpu(v, *vcpu, vcpus.len(), *json).map_err(|e| fail(REJECTED, e))?;
            Ok(0)
        }
        Action::Check {
            to, json, guest, ..
        } => {
            let destination = super::load_profile(to)?;
            let guest = guest.guest()?;
            let reports: Vec<_> = states
                .iter()
                .map(|s| check_host(s, &destination, &guest))
                .collect();
            print_reports(&vcpus, &reports, &destination, *json);
            Ok(if reports.iter().all(CheckReport::is_compatible) {
                0
            } else {
                REJECTED
            })
        }
        Action::Convert {
            output,
            to,
            mask_mxcsr,
            guest,
            ..
        } => {
            super::input::refuse_same(&state_file(ch, path), output)?;
            let destination = super::load_profile(to)?;
            let guest = guest.guest()?;
            let mut areas = Vec::with_capacity(vcpus.len());
            for (v, state) in vcpus.iter().zip(states) {
                areas.push(convert(&what(v), state, &destination, &guest, *mask_mxcsr)?);
            }
            let bytes = write_back(snapshot, &vcpus, &areas, &destination)
                .map_err(|e| fail(REJECTED, format_args!("{}: {e}", path.display())))?;
            output::write_atomically(output, &bytes)
                .map_err(|e| fail(USAGE, format_args!("{}: {e}", output.display())))?;
            Ok(0)
        }
    }
}

/// The file a snapshot is read from.
fn state_file(ch: bool, path: &Path) -> PathBuf {
    if ch {
        path.join("state.json")
    } else {
        path.to_path_buf()
    }
}

/// `state` judged and laid out for `destination`: refused (nothing
/// written) as `stream decode` refuses.
fn convert(
    what: &str,
    mut state: RegisterFile,
    destination: &HostProfile,
    guest: &Guest,
    mask_mxcsr: bool,
) -> Result<Vec<u8>, u8> {
    if mask_mxcsr {
        super::stream::mask_mxcsr_for(what, &mut state, destination);
    }
    let report = check_host(&state, destination, guest);
    super::guest::report(what, &report.masked);
    if !report.is_compatible() {
        return Err(super::stream::not_written(
            what,
            &report.incompatibilities,
            format_args!("{} cannot take it", destination.layout.name()),
        ));
    }
    guest.mask(&mut state);
    restore_area(&state, destination, guest)
        .map_err(|e| fail(REJECTED, format_args!("{what}: {e}")))
}

/// A JSON pointer token for `key` (RFC 6901).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The pointer to the first object under `v` with `key`, searching at most
/// `depth` levels of objects.
fn find_key(v: &Value, key: &str, depth: usize) -> Option<String> {
    let obj = v.as_object()?;
    if obj.contains_key(key) {
        return Some(format!("/{}", token(key)));
    }
    if depth == 0 {
        return None;
    }
    obj.iter()
        .find_map(|(k, child)| find_key(child, key, depth - 1).map(|p| format!("/{}{p}", token(k))))
}

fn read_ch(dir: &Path, given: Option<&Layout>) -> Result<(Snapshot, Vec<SavedVcpu>), u8> {
    let file = dir.join("state.json");
    let bytes = super::input::read_limited(&file, MAX_CH_STATE)?;
    let rejected =
        |e: &dyn std::fmt::Display| fail(REJECTED, format_args!("{}: {e}", file.display()));
    if !json_values_at_most(&bytes, MAX_JSON_VALUES) {
        return Err(rejected(&format_args!(
            "more than {MAX_JSON_VALUES} JSON values: not a Cloud Hypervisor state.json"
        )));
    }
    let root: Value = serde_json::from_slice(&bytes).map_err(|e| rejected(&e))?;
    let manager = find_key(&root, "cpu-manager", 8)
        .ok_or_else(|| rejected(&"no cpu-manager snapshot: not a Cloud Hypervisor state.json"))?;
    let children = root
        .pointer(&format!("{manager}/snapshots"))
        .and_then(Value::as_object)
        .ok_or_else(|| rejected(&"the cpu-manager snapshot has no vCPU snapshots"))?;
    let mut ids: Vec<&String> = children.keys().collect();
    ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.as_str()));
    let mut states = Vec::new();
    let mut vcpus = Vec::new();
    for id in ids {
        let pointer = format!("{manager}/snapshots/{}/snapshot_data/state", token(id));
        let what = |e: &dyn std::fmt::Display| rejected(&format_args!("vCPU {id}: {e}"));
        let text = root
            .pointer(&pointer)
            .and_then(Value::as_str)
            .ok_or_else(|| what(&"no snapshot_data.state string"))?;
        if !json_values_at_most(text.as_bytes(), MAX_JSON_VALUES) {
            return Err(what(&format_args!(
                "its state holds more than {MAX_JSON_VALUES} JSON values: not a vCPU state"
            )));
        }
        let state: Value = serde_json::from_str(text).map_err(|e| what(&e))?;
        let kvm = kvm_state(&state).map_err(|e| what(&e))?;
        let bytes = ch_xsave(kvm).map_err(|e| what(&e))?;
        let layout = match given {
            Some(l) => l.clone(),
            None => ch_layout(kvm).map_err(|e| what(&e))?,
        };
        vcpus.push(SavedVcpu {
            id: id.clone(),
            bytes,
            layout,
        });
        states.push(pointer);
    }
    if vcpus.is_empty() {
        return Err(rejected(&"the cpu-manager snapshot holds no vCPU"));
    }
    Ok((Snapshot::Ch { root, states }, vcpus))
}

/// The `{"Kvm": {...}}` vCPU state's inside.
fn kvm_state(state: &Value) -> Result<&Map<String, Value>, String> {
    let obj = state
        .as_object()
        .ok_or("the vCPU state is not a JSON object")?;
    match obj.get("Kvm").and_then(Value::as_object) {
        Some(kvm) => Ok(kvm),
        None => Err(format!(
            "not a KVM vCPU state ({}): only KVM's is read",
            obj.keys().next().map_or("empty", String::as_str)
        )),
    }
}

/// `n` as a u32, or an error naming `what`.
fn word(n: &Value, what: &str) -> Result<u32, String> {
    n.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("{what}: {n} is not a u32"))
}

/// CH's `xsave`: `region` (1024 words) then `extra`, as bytes.
fn ch_xsave(kvm: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let xsave = kvm.get("xsave").ok_or("no xsave")?;
    let region = xsave
        .get("region")
        .and_then(Value::as_array)
        .filter(|r| r.len() == 1024)
        .ok_or("xsave.region is not an array of 1024 words")?;
    let extra = match xsave.get("extra") {
        None => &[][..],
        Some(e) => e.as_array().ok_or("xsave.extra is not an array")?,
    };
    let mut bytes = Vec::with_capacity(4 * (region.len() + extra.len()));
    for w in region.iter().chain(extra) {
        bytes.extend_from_slice(&word(w, "xsave")?.to_le_bytes());
    }
    if bytes.len() > xstate::layout::MAX_AREA_SIZE as usize {
        return Err(format!(
            "xsave holds {} bytes: larger than any XSAVE area",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The layout CH's saved CPUID describes.
fn ch_layout(kvm: &Map<String, Value>) -> Result<Layout, String> {
    let entries = kvm
        .get("cpuid")
        .and_then(Value::as_array)
        .ok_or("no saved cpuid: --layout gives the source layout")?;
    ch_cpuid(entries)?
        .to_layout("saved-cpuid", "the vCPU's saved CPUID")
        .map_err(|e| format!("the saved cpuid's leaf 0xD: {e}"))
}

/// CH's saved `kvm_cpuid_entry2` objects as a CPUID.
fn ch_cpuid(entries: &[Value]) -> Result<CpuidSet, String> {
    let mut parsed = Vec::with_capacity(entries.len());
    for e in entries {
        // index and flags may be left out (0); the rest is required.
        let field = |k: &str| match e.get(k) {
            Some(v) => word(v, &format!("cpuid {k}")),
            None if matches!(k, "index" | "flags") => Ok(0),
            None => Err(format!("a cpuid entry without {k}")),
        };
        parsed.push((
            field("function")?,
            field("index")?,
            field("flags")?,
            CpuidRegs {
                eax: field("eax")?,
                ebx: field("ebx")?,
                ecx: field("ecx")?,
                edx: field("edx")?,
            },
        ));
    }
    CpuidSet::from_entries(parsed).map_err(|e| format!("the saved cpuid: {e}"))
}

fn read_crosvm(path: &Path, layout: Layout) -> Result<(Snapshot, Vec<SavedVcpu>), u8> {
    let bytes = super::input::read_limited(path, MAX_CROSVM_FRAGMENT)?;
    let rejected =
        |e: &dyn std::fmt::Display| fail(REJECTED, format_args!("{}: {e}", path.display()));
    let mut reader = &bytes[..];
    let mut root: ciborium::Value = ciborium::from_reader(&mut reader).map_err(|e| {
        use ciborium::de::Error;
        let why = match e {
            Error::Io(_) => "CBOR cut short".to_string(),
            Error::Syntax(at) => format!("not CBOR: a syntax error at byte {at}"),
            Error::Semantic(at, m) => match at {
                Some(at) => format!("CBOR at byte {at}: {m}"),
                None => format!("CBOR: {m}"),
            },
            Error::RecursionLimitExceeded => "CBOR nested too deeply".to_string(),
        };
        rejected(&why)
    })?;
    if !reader.is_empty() {
        return Err(rejected(&format_args!(
            "{} bytes after the CBOR value: not one vCPU fragment",
            reader.len()
        )));
    }
    no_duplicate_keys(&root).map_err(|e| rejected(&e))?;
    let xsave = crosvm_xsave(&mut root).map_err(|e| rejected(&e))?;
    let vcpus = vec![SavedVcpu {
        id: "0".into(),
        bytes: xsave,
        layout,
    }];
    Ok((Snapshot::Crosvm { root }, vcpus))
}

/// Refuses a CBOR map that gives a text key twice, at any depth (which of
/// two `xsave` or `data` entries a reader takes is not defined).
fn no_duplicate_keys(v: &ciborium::Value) -> Result<(), String> {
    match v {
        ciborium::Value::Map(m) => {
            let mut seen = std::collections::BTreeSet::new();
            for (k, _) in m {
                if let Some(text) = k.as_text() {
                    if !seen.insert(text) {
                        return Err(format!("a CBOR map gives the key {text:?} twice"));
                    }
                }
            }
            m.iter().try_for_each(|(_, v)| no_duplicate_keys(v))
        }
        ciborium::Value::Array(a) => a.iter().try_for_each(no_duplicate_keys),
        ciborium::Value::Tag(_, v) => no_duplicate_keys(v),
        _ => Ok(()),
    }
}

/// The map holding crosvm's `Xsave` fields: the fragment's `xsave`, or the
/// fragment itself.
fn crosvm_map(root: &mut ciborium::Value) -> Option<&mut Vec<(ciborium::Value, ciborium::Value)>> {
    let ciborium::Value::Map(m) = root else {
        return None;
    };
    let is_xsave = m.iter().any(|(k, _)| k.as_text() == Some("data"));
    if is_xsave {
        return Some(m);
    }
    m.iter_mut()
        .find(|(k, _)| k.as_text() == Some("xsave"))
        .and_then(|(_, v)| match v {
            ciborium::Value::Map(m) => Some(m),
            _ => None,
        })
}

fn crosvm_xsave(root: &mut ciborium::Value) -> Result<Vec<u8>, String> {
    let map = crosvm_map(root).ok_or("no xsave map with data: not a crosvm vCPU snapshot")?;
    let get = |key: &str| {
        map.iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    };
    let data = get("data")
        .and_then(ciborium::Value::as_array)
        .ok_or("xsave.data is not an array")?;
    let mut bytes = Vec::with_capacity(4 * data.len());
    for w in data {
        let w = w
            .as_integer()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or("xsave.data holds a value that is not a u32")?;
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    if let Some(len) = get("len") {
        let len = len
            .as_integer()
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&l| l <= bytes.len())
            .ok_or("xsave.len is not a byte count within xsave.data")?;
        bytes.truncate(len);
    }
    if bytes.len() > xstate::layout::MAX_AREA_SIZE as usize {
        return Err(format!(
            "xsave holds {} bytes: larger than any XSAVE area",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The snapshot with each vCPU's XSAVE bytes replaced by `areas`.
fn write_back(
    snapshot: Snapshot,
    vcpus: &[SavedVcpu],
    areas: &[Vec<u8>],
    destination: &HostProfile,
) -> Result<Vec<u8>, String> {
    let words = |area: &[u8]| -> Vec<u32> {
        area.chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect()
    };
    match snapshot {
        Snapshot::Ch { mut root, states } => {
            // The destination as a pool of one: its baseline narrows each
            // vCPU's saved CPUID.
            let pool = [PoolHost::from(destination.clone())];
            let base = baseline(&pool, &BaselineOptions::default()).map_err(|e| e.to_string())?;
            for ((pointer, v), area) in states.iter().zip(vcpus).zip(areas) {
                let mut area = area.clone();
                // CH's region is 4096 bytes, whatever the area.
                if area.len() < 4096 {
                    area.resize(4096, 0);
                }
                let slot = root.pointer_mut(pointer).ok_or("vCPU state moved")?;
                let mut state: Value =
                    serde_json::from_str(slot.as_str().ok_or("vCPU state moved")?)
                        .map_err(|e| e.to_string())?;
                let kvm = state
                    .get_mut("Kvm")
                    .and_then(Value::as_object_mut)
                    .ok_or("vCPU state moved")?;
                let w = words(&area);
                let mut xsave = Map::new();
                xsave.insert("region".into(), json!(w[..1024]));
                if w.len() > 1024 {
                    xsave.insert("extra".into(), json!(w[1024..]));
                }
                kvm.insert("xsave".into(), Value::Object(xsave));
                // The saved CPUID's leaf 0xD describes where the guest finds
                // each component: at the destination, its offsets.
                if let Some(entries) = kvm.get_mut("cpuid").and_then(Value::as_array_mut) {
                    *entries = retarget_cpuid(entries, &base, destination.layout.name())
                        .map_err(|e| format!("vCPU {}: {e}", super::printable(&v.id)))?;
                }
                // x87 and SSE: bytes 0..24 (FCW..FDP), MXCSR (24..28), the
                // ST and XMM registers (32..416); not MXCSR_MASK (28..32),
                // which is the CPU's, nor the reserved rest.
                let legacy = |b: &[u8]| -> Vec<u8> { [&b[..28], &b[32..416]].concat() };
                if v.bytes.len() < 416 || legacy(&area) != legacy(&v.bytes) {
                    if let Some(fpu) = kvm.get_mut("fpu").and_then(Value::as_object_mut) {
                        set_fpu(fpu, &area);
                    }
                }
                *slot = Value::String(state.to_string());
            }
            Ok(root.to_string().into_bytes())
        }
        Snapshot::Crosvm { mut root } => {
            let area = &areas[0];
            let map = crosvm_map(&mut root).ok_or("xsave moved")?;
            let data = ciborium::Value::Array(
                words(area)
                    .into_iter()
                    .map(|w| ciborium::Value::Integer(w.into()))
                    .collect(),
            );
            for (k, v) in map.iter_mut() {
                match k.as_text() {
                    Some("data") => *v = data.clone(),
                    Some("len") => *v = ciborium::Value::Integer(area.len().into()),
                    _ => {}
                }
            }
            let mut out = Vec::new();
            ciborium::into_writer(&root, &mut out).map_err(|e| e.to_string())?;
            Ok(out)
        }
    }
}

/// The saved CPUID narrowed to what `destination` runs: `base`, the pool
/// baseline of that one host, applied to it (`xstate pool baseline DEST
/// --apply-to`),
/// so its leaf 0xD places each component where the destination keeps it
/// and no feature the destination lacks is left exposed. Entries are
/// rewritten as `kvm_cpuid_entry2` objects, in leaf order.
fn retarget_cpuid(
    entries: &[Value],
    base: &Baseline,
    destination: &str,
) -> Result<Vec<Value>, String> {
    let mut set = ch_cpuid(entries)?;
    base.apply(&mut set)
        .map_err(|e| format!("the saved cpuid narrowed for {destination}: {e}"))?;
    Ok(set
        .iter()
        .map(|(function, index, r)| {
            json!({
                "function": function,
                "index": index,
                "flags": u32::from(set.is_indexed(function)),
                "eax": r.eax,
                "ebx": r.ebx,
                "ecx": r.ecx,
                "edx": r.edx,
                "padding": [0, 0, 0],
            })
        })
        .collect())
}

/// CH's `fpu` (`kvm_fpu`'s fields) from an area's legacy region.
fn set_fpu(fpu: &mut Map<String, Value>, area: &[u8]) {
    let u16_at = |o: usize| u16::from_le_bytes([area[o], area[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(area[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(area[o..o + 8].try_into().expect("8 bytes"));
    let regs = |start: usize, n: usize| -> Value {
        (0..n)
            .map(|i| json!(area[start + 16 * i..start + 16 * (i + 1)]))
            .collect()
    };
    fpu.insert("fcw".into(), json!(u16_at(0)));
    fpu.insert("fsw".into(), json!(u16_at(2)));
    fpu.insert("ftwx".into(), json!(area[4]));
    fpu.insert("last_opcode".into(), json!(u16_at(6)));
    fpu.insert("last_ip".into(), json!(u64_at(8)));
    fpu.insert("last_dp".into(), json!(u64_at(16)));
    fpu.insert("mxcsr".into(), json!(u32_at(24)));
    fpu.insert("fpr".into(), regs(32, 8));
    fpu.insert("xmm".into(), regs(160, 16));
}

fn print_vcpu(v: &SavedVcpu, n: usize, count: usize, json_out: bool) -> Result<(), String> {
    let view = XsaveView::new(&v.bytes[..], &v.layout).map_err(|e| e.to_string())?;
    let registers: Vec<(String, String)> = Register::all()
        .filter_map(|reg| {
            let value = view.read(reg).ok()?;
            Some((reg.to_string(), hex::format(&value, reg.is_memory_order())))
        })
        .collect();
    if json_out {
        let map: Map<String, Value> = registers
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let out = json!({
            "vcpu": n,
            "id": v.id,
            "vcpus": count,
            "layout": v.layout.name(),
            "xstate_bv": format!("{:#x}", view.xstate_bv()),
            "registers": map,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "vCPU {} (id {}) of {count}, in layout {}: XSTATE_BV {:#x}, {} bytes",
            n,
            super::printable(&v.id),
            v.layout.name(),
            view.xstate_bv(),
            v.bytes.len()
        );
        for (name, value) in &registers {
            println!("{name:>10} {value}");
        }
    }
    Ok(())
}

fn print_reports(
    vcpus: &[SavedVcpu],
    reports: &[CheckReport],
    destination: &HostProfile,
    json_out: bool,
) {
    let name = destination.layout.name();
    if json_out {
        let per: Vec<_> = vcpus
            .iter()
            .zip(reports)
            .map(|(v, r)| {
                json!({
                    "id": v.id,
                    "source_layout": v.layout.name(),
                    "compatible": r.is_compatible(),
                    "kvm_set_xsave_ok": r.kvm,
                    "reasons": r.incompatibilities.iter().map(Incompatibility::to_string).collect::<Vec<_>>(),
                    "masked": r.masked.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = json!({
            "destination": name,
            "compatible": reports.iter().all(CheckReport::is_compatible),
            "vcpus": per,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return;
    }
    for (v, r) in vcpus.iter().zip(reports) {
        let id = super::printable(&v.id);
        for m in &r.masked {
            println!("vCPU {id}: {m}");
        }
        if r.is_compatible() {
            println!("vCPU {id}: compatible with {name}");
        }
        for reason in &r.incompatibilities {
            println!("vCPU {id}: {reason}");
        }
    }
}
