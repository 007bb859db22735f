//! [`CpuidSet`]: every leaf and sub-leaf of one CPU, with the text and JSON
//! formats it is read from and written to.
//!
//! Three input formats:
//!
//! - `cpuid -r` text: `   0x0000000d 0x00: eax=0x00000207 ebx=... ecx=... edx=...`.
//! - InstLatx64 text: `CPUID 0000000D: 000602E7-00002B00-00002B00-00000000 [SL 00]`.
//! - KVM `kvm_cpuid2` entries as JSON: an array, or an object with an
//!   `"entries"` array, of `{"function", "index", "flags", "eax", "ebx",
//!   "ecx", "edx"}`, each a number or a string (`"0x1f"` hex, `"31"` decimal).
//!
//! Only the first CPU of a multi-CPU text dump is read: a second leaf 0
//! sub-leaf 0 line starts the next CPU. Lines that are not CPUID lines
//! (headers, comments, cache summaries) are skipped; a line that starts like
//! a CPUID line but does not parse is an error naming its line number.
//!
//! A leaf is *indexed* when its sub-leaf (ECX input) is significant, as KVM's
//! `KVM_CPUID_FLAG_SIGNIFCANT_INDEX` (flags bit 0) says. A leaf that is not
//! indexed has exactly one entry, kept under sub-leaf 0.

#[cfg(feature = "std")]
use alloc::borrow::ToOwned;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
#[cfg(feature = "std")]
use core::fmt::Write as _;

#[cfg(feature = "std")]
use serde_json::Value;
use thiserror::Error;

use super::bit::FeatureBit;
use super::features::{self, FeatureMask};
use crate::component::Xfeatures;
#[cfg(feature = "std")]
use crate::layout::dump::{self, DumpFormat};
use crate::layout::{CpuidRegs, Layout, LayoutError};

/// The most entries a [`CpuidSet`] holds. Parsers refuse more: a real CPU has
/// a few hundred at most, and KVM takes at most 256 (`KVM_MAX_CPUID_ENTRIES`).
pub const MAX_ENTRIES: usize = 4096;

/// `KVM_CPUID_FLAG_SIGNIFCANT_INDEX` (sic, the uAPI's spelling): the entry's
/// index is significant. Source: Linux `arch/x86/include/uapi/asm/kvm.h`.
pub const FLAG_SIGNIFICANT_INDEX: u32 = 1;

/// Leaves whose sub-leaf is significant even when a dump shows only sub-leaf
/// 0. Source: Linux `cpuid_function_is_indexed()` (`arch/x86/include/asm/cpuid`),
/// which KVM uses for its supported CPUID; 0x29 (APX) from the Intel APX
/// architecture specification, whose leaf 0x29 is enumerated by sub-leaf.
const KNOWN_INDEXED: [u32; 16] = [
    0x4,
    0x7,
    0xb,
    0xd,
    0xf,
    0x10,
    0x12,
    0x14,
    0x17,
    0x18,
    0x1d,
    0x1e,
    0x1f,
    0x24,
    0x29,
    0x8000_001d,
];

/// Whether Linux and KVM treat `leaf`'s sub-leaf as significant
/// (`cpuid_function_is_indexed()`), whether or not a dump shows more than
/// sub-leaf 0.
pub fn is_known_indexed(leaf: u32) -> bool {
    KNOWN_INDEXED.contains(&leaf)
}

/// Where in the input a parse error is: a text line or a JSON entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// 1-based line number of a text dump.
    Line(usize),
    /// 0-based index into the JSON entries array.
    Entry(usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Line(n) => write!(f, "line {n}"),
            At::Entry(n) => write!(f, "entry {n}"),
        }
    }
}

/// Why a CPUID dump could not be read, or an entry not added.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuidSetError {
    /// No line or entry of any supported format.
    #[error("not a CPUID dump: no cpuid -r line, InstLatx64 line or KVM JSON entry found")]
    NotADump,
    /// A line that starts like a CPUID line but does not parse.
    #[error("{at}: malformed CPUID line")]
    Malformed {
        /// The line.
        at: At,
    },
    /// The same leaf and sub-leaf twice for one CPU.
    #[error("{at}: leaf {leaf:#x} sub-leaf {subleaf:#x} appears twice")]
    Duplicate {
        /// The second occurrence.
        at: At,
        /// The leaf.
        leaf: u32,
        /// The sub-leaf.
        subleaf: u32,
    },
    /// More entries than [`MAX_ENTRIES`].
    #[error("{at}: more than {max} CPUID entries")]
    TooManyEntries {
        /// The first entry past the limit.
        at: At,
        /// The limit.
        max: usize,
    },
    /// The JSON text does not parse.
    #[error("JSON syntax error at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A JSON key twice in one object (`{"function": 13, "function": 1}`)
    /// of a `kvm_cpuid2` entry, or `"entries"` twice: which value is meant
    /// is not for a parser to guess.
    #[error("JSON: {message}: a kvm_cpuid_entry2 names each of its fields once, and a dump its \"entries\" once")]
    DuplicateKey {
        /// 1-based line of the second occurrence.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message, naming the key and where it is.
        message: String,
    },
    /// Valid JSON, but neither an array of entries nor `{"entries": [...]}`.
    #[error("JSON: expected an array of kvm_cpuid_entry2 objects or an object with an \"entries\" array")]
    JsonShape,
    /// A JSON entry that is not an object.
    #[error("{at}: not a JSON object")]
    NotAnObject {
        /// The entry.
        at: At,
    },
    /// A JSON entry field missing or not a 32-bit unsigned value.
    #[error("{at}: field \"{field}\" {reason}")]
    Field {
        /// The entry.
        at: At,
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`CpuidSet::set`] on a full set.
    #[error("the set already holds {max} CPUID entries")]
    Full {
        /// The limit.
        max: usize,
    },
}

/// A whole CPUID: leaf and sub-leaf to registers, in ascending order, plus
/// which leaves are indexed (their sub-leaf is significant).
///
/// ```
/// use xstate::cpuid::{CpuidRegs, CpuidSet};
///
/// let mut set = CpuidSet::new();
/// set.set(0xd, 2, CpuidRegs { eax: 256, ebx: 576, ecx: 0, edx: 0 }).unwrap();
/// assert!(set.is_indexed(0xd));
/// assert_eq!(set.get(0xd, 2).unwrap().ebx, 576);
/// let again = CpuidSet::from_kvm_json(&set.to_kvm_json()).unwrap();
/// assert_eq!(again, set);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuidSet {
    entries: BTreeMap<(u32, u32), CpuidRegs>,
    indexed: BTreeSet<u32>,
}

impl CpuidSet {
    /// An empty set.
    pub fn new() -> CpuidSet {
        CpuidSet::default()
    }

    /// Number of entries (leaf and sub-leaf pairs).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry as `(leaf, sub-leaf, registers)`, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, CpuidRegs)> + '_ {
        self.entries.iter().map(|(&(l, s), &r)| (l, s, r))
    }

    /// Whether `leaf`'s sub-leaf is significant.
    pub fn is_indexed(&self, leaf: u32) -> bool {
        self.indexed.contains(&leaf)
    }

    /// Marks `leaf` indexed or not. Unmarking drops its sub-leaves other
    /// than 0, which a non-indexed leaf cannot have.
    pub fn set_indexed(&mut self, leaf: u32, indexed: bool) {
        if indexed {
            self.indexed.insert(leaf);
        } else {
            self.indexed.remove(&leaf);
            self.entries.retain(|&(l, s), _| l != leaf || s == 0);
        }
    }

    /// The registers CPUID returns for `(leaf, subleaf)`, if the set has that
    /// entry. The sub-leaf of a leaf that is not indexed is ignored, as CPUID
    /// ignores ECX for it.
    pub fn get(&self, leaf: u32, subleaf: u32) -> Option<CpuidRegs> {
        let sub = if self.is_indexed(leaf) { subleaf } else { 0 };
        self.entries.get(&(leaf, sub)).copied()
    }

    /// The entry stored at exactly `(leaf, subleaf)`, without CPUID's rule
    /// that a leaf that is not indexed ignores its sub-leaf.
    pub fn entry(&self, leaf: u32, subleaf: u32) -> Option<CpuidRegs> {
        self.entries.get(&(leaf, subleaf)).copied()
    }

    /// Sets the registers of `(leaf, subleaf)`, adding the entry if needed
    /// and returning the old registers. A non-zero sub-leaf marks the leaf
    /// indexed.
    ///
    /// # Errors
    ///
    /// [`CpuidSetError::Full`] when adding an entry to a set that already
    /// holds [`MAX_ENTRIES`].
    pub fn set(
        &mut self,
        leaf: u32,
        subleaf: u32,
        regs: CpuidRegs,
    ) -> Result<Option<CpuidRegs>, CpuidSetError> {
        if subleaf != 0 {
            self.indexed.insert(leaf);
        }
        let sub = if self.is_indexed(leaf) { subleaf } else { 0 };
        if !self.entries.contains_key(&(leaf, sub)) && self.entries.len() >= MAX_ENTRIES {
            return Err(CpuidSetError::Full { max: MAX_ENTRIES });
        }
        Ok(self.entries.insert((leaf, sub), regs))
    }

    /// Removes one entry, returning its registers.
    pub fn remove(&mut self, leaf: u32, subleaf: u32) -> Option<CpuidRegs> {
        let sub = if self.is_indexed(leaf) { subleaf } else { 0 };
        self.entries.remove(&(leaf, sub))
    }

    /// Removes every sub-leaf of `leaf` and its indexed mark; returns how
    /// many entries went.
    pub fn remove_leaf(&mut self, leaf: u32) -> usize {
        let before = self.entries.len();
        self.entries.retain(|&(l, _), _| l != leaf);
        self.indexed.remove(&leaf);
        before - self.entries.len()
    }

    /// The vendor string of leaf 0 (EBX, EDX, ECX as ASCII:
    /// `"GenuineIntel"`, `"AuthenticAMD"`), if the set has leaf 0. Bytes that
    /// are not UTF-8 come out as U+FFFD.
    pub fn vendor(&self) -> Option<String> {
        let r = self.get(0, 0)?;
        let mut v = Vec::with_capacity(12);
        for reg in [r.ebx, r.edx, r.ecx] {
            v.extend_from_slice(&reg.to_le_bytes());
        }
        Some(String::from_utf8_lossy(&v).into_owned())
    }

    /// Whether the feature flag is set; false when its sub-leaf is absent.
    pub fn has_feature(&self, feature: FeatureBit) -> bool {
        self.entry(feature.leaf, feature.subleaf)
            .is_some_and(|r| feature.register.read(&r) & feature.mask() != 0)
    }

    /// XCR0 bits the CPU supports: leaf 0xD sub-leaf 0 EDX:EAX (empty without it).
    pub fn xcr0_supported(&self) -> Xfeatures {
        Xfeatures::from_bits(
            self.entry(0xd, 0)
                .map_or(0, |r| Xfeatures::from_halves(r.edx, r.eax).bits()),
        )
    }

    /// IA32_XSS bits the CPU supports: leaf 0xD sub-leaf 1 EDX:ECX (empty without it).
    pub fn xss_supported(&self) -> Xfeatures {
        Xfeatures::from_bits(
            self.entry(0xd, 1)
                .map_or(0, |r| Xfeatures::from_halves(r.edx, r.ecx).bits()),
        )
    }

    /// Whether this CPU has the XSAVE feature set: CPUID.1:ECX.XSAVE set,
    /// leaf 0's maximum basic leaf at least 0xD, and leaf 0xD sub-leaf 0
    /// present. A set without leaf 1 or leaf 0 counts on the others (a dump
    /// of leaf 0xD only). Without XSAVE the CPU is legacy-only: x87 and SSE
    /// in the 512-byte FXSAVE image.
    pub fn has_xsave(&self) -> bool {
        !self.says_legacy_only() && self.entry(0xd, 0).is_some()
    }

    /// Whether leaf 1 or leaf 0 says the CPU has no XSAVE: CPUID.1:ECX.XSAVE
    /// clear, or a maximum basic leaf (leaf 0 EAX) below 0xD.
    fn says_legacy_only(&self) -> bool {
        let flag_clear = self.entry(1, 0).is_some() && !self.has_feature(features::XSAVE);
        let no_leaf_d = self.entry(0, 0).is_some_and(|r| r.eax < 0xd);
        flag_clear || no_leaf_d
    }

    /// Clears `mask.clear` in every entry that `masks` name; entries the
    /// set lacks are skipped (looked up exactly, as [`CpuidSet::entry`]).
    pub fn clear_masks(&mut self, masks: &[FeatureMask]) {
        for m in masks {
            if let Some(regs) = self.entries.get_mut(&(m.leaf, m.subleaf)) {
                *m.register.slot(regs) &= !m.clear;
            }
        }
    }

    /// A set from `kvm_cpuid_entry2`-shaped entries: (function, index,
    /// flags, registers). A leaf any of whose entries has
    /// [`FLAG_SIGNIFICANT_INDEX`] is indexed; the others' index is ignored.
    ///
    /// # Errors
    ///
    /// [`CpuidSetError::TooManyEntries`] past [`MAX_ENTRIES`], or
    /// [`CpuidSetError::Duplicate`] for a leaf and sub-leaf given twice, with
    /// the entry's index.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (u32, u32, u32, CpuidRegs)>,
    ) -> Result<CpuidSet, CpuidSetError> {
        let entries: Vec<_> = entries.into_iter().take(MAX_ENTRIES + 1).collect();
        if entries.len() > MAX_ENTRIES {
            return Err(CpuidSetError::TooManyEntries {
                at: At::Entry(MAX_ENTRIES),
                max: MAX_ENTRIES,
            });
        }
        let mut set = CpuidSet::new();
        for &(function, _, flags, _) in &entries {
            if flags & FLAG_SIGNIFICANT_INDEX != 0 {
                set.indexed.insert(function);
            }
        }
        for (i, (function, index, _, regs)) in entries.into_iter().enumerate() {
            let sub = if set.indexed.contains(&function) {
                index
            } else {
                0
            };
            if set.entries.insert((function, sub), regs).is_some() {
                return Err(CpuidSetError::Duplicate {
                    at: At::Entry(i),
                    leaf: function,
                    subleaf: sub,
                });
            }
        }
        Ok(set)
    }

    /// The XSAVE layout this CPUID describes, named `name`: leaf 0xD's
    /// geometry, the vendor of leaf 0. A CPU whose leaf 1 clears XSAVE, or
    /// whose leaf 0 gives a maximum basic leaf below 0xD, gives the
    /// legacy-only layout ([`Layout::legacy_only`]), whatever else the set
    /// holds.
    ///
    /// # Errors
    ///
    /// [`LayoutError::MissingLeaf0xD`] when leaf 0 says leaf 0xD exists
    /// (and leaf 1 does not clear XSAVE) but the set lacks its sub-leaf 0
    /// (a dump cut short: not a legacy-only CPU);
    /// [`LayoutError::NoLeaf0xD`] when neither leaf 0xD nor leaf 0 or 1 is
    /// there to say what the CPU is; or the [`LayoutError`] of an invalid
    /// leaf 0xD geometry.
    pub fn to_layout(&self, name: &str, source: &str) -> Result<Layout, LayoutError> {
        let vendor = self.vendor().unwrap_or_else(|| "unknown".into());
        if self.says_legacy_only() {
            return Ok(Layout::legacy_only(name, &vendor, source));
        }
        if self.entry(0xd, 0).is_none() {
            return Err(match self.entry(0, 0) {
                Some(leaf0) => LayoutError::MissingLeaf0xD {
                    max_leaf: Some(leaf0.eax),
                },
                None if self.entry(1, 0).is_some() => {
                    LayoutError::MissingLeaf0xD { max_leaf: None }
                }
                None => LayoutError::NoLeaf0xD,
            });
        }
        crate::layout::from_subleaves(name, &vendor, source, |sub| self.entry(0xd, sub))
    }
}

#[cfg(feature = "std")]
impl CpuidSet {
    /// Reads a dump in any supported format, detected from the content: JSON
    /// when it starts with `[` or `{`, else `cpuid -r` or InstLatx64 text.
    ///
    /// # Errors
    ///
    /// [`CpuidSetError::NotADump`] when no format matches, or the error of
    /// the format's own parser.
    pub fn parse(text: &str) -> Result<CpuidSet, CpuidSetError> {
        CpuidSet::parse_named(text).map(|(set, _)| set)
    }

    /// [`CpuidSet::parse`], and the name of the format read: `InstLatx64`,
    /// `cpuid -r` or `kvm_cpuid2 JSON`.
    pub(crate) fn parse_named(text: &str) -> Result<(CpuidSet, &'static str), CpuidSetError> {
        let start = text.trim_start();
        if start.starts_with('[') || start.starts_with('{') {
            return CpuidSet::from_kvm_json(text).map(|set| (set, "kvm_cpuid2 JSON"));
        }
        match dump::detect(text) {
            Some(format) => parse_text(text, format).map(|set| {
                let name = match format {
                    DumpFormat::InstLatx64 => "InstLatx64",
                    DumpFormat::CpuidRaw => "cpuid -r",
                };
                (set, name)
            }),
            None => Err(CpuidSetError::NotADump),
        }
    }

    /// Reads `cpuid -r` text, first CPU only.
    ///
    /// # Errors
    ///
    /// [`CpuidSetError::Malformed`], [`CpuidSetError::Duplicate`] or
    /// [`CpuidSetError::TooManyEntries`] with the line at fault;
    /// [`CpuidSetError::NotADump`] when no line parses.
    pub fn from_cpuid_raw(text: &str) -> Result<CpuidSet, CpuidSetError> {
        parse_text(text, DumpFormat::CpuidRaw)
    }

    /// Reads InstLatx64 text, first CPU only. A leaf is indexed when one of
    /// its lines carries a `[SL nn]` tag.
    ///
    /// # Errors
    ///
    /// As [`CpuidSet::from_cpuid_raw`].
    pub fn from_instlatx64(text: &str) -> Result<CpuidSet, CpuidSetError> {
        parse_text(text, DumpFormat::InstLatx64)
    }

    /// Reads KVM `kvm_cpuid2` entries as JSON. `index` and `flags` default to
    /// 0; unknown fields (`padding`) are ignored; a field given twice in one
    /// entry is refused. Flags other than bit 0
    /// (significant index) are not kept: the stateful-function flags are
    /// obsolete. The index of an entry without bit 0 is not significant and
    /// is stored, and written back, as 0.
    ///
    /// # Errors
    ///
    /// [`CpuidSetError::Json`] for a syntax error, [`CpuidSetError::JsonShape`],
    /// [`CpuidSetError::TooManyEntries`], or [`CpuidSetError::NotAnObject`],
    /// [`CpuidSetError::Field`] and [`CpuidSetError::Duplicate`] with the
    /// entry index at fault; [`CpuidSetError::DuplicateKey`] for a field
    /// given twice in one entry (or `"entries"` twice), with its line.
    pub fn from_kvm_json(text: &str) -> Result<CpuidSet, CpuidSetError> {
        let value: Value = serde_json::from_str(text).map_err(|e| CpuidSetError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let entries = match &value {
            Value::Array(a) => a,
            Value::Object(o) => match o.get("entries") {
                Some(Value::Array(a)) => a,
                _ => return Err(CpuidSetError::JsonShape),
            },
            _ => return Err(CpuidSetError::JsonShape),
        };
        if entries.len() > MAX_ENTRIES {
            return Err(CpuidSetError::TooManyEntries {
                at: At::Entry(MAX_ENTRIES),
                max: MAX_ENTRIES,
            });
        }
        let mut parsed = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            parsed.push(json_entry(i, entry)?);
        }
        no_duplicate_keys(text, matches!(value, Value::Array(_)))?;
        let set = CpuidSet::from_entries(
            parsed
                .into_iter()
                .map(|e| (e.function, e.index, e.flags, e.regs)),
        )?;
        if set.is_empty() {
            return Err(CpuidSetError::NotADump);
        }
        Ok(set)
    }

    /// Writes `cpuid -r` text: a `CPU:` header and one line per entry. The
    /// format has no place for the indexed flags: reading it back marks
    /// indexed the leaves with a non-zero sub-leaf and the leaves Linux
    /// knows to be indexed.
    pub fn to_cpuid_raw(&self) -> String {
        let mut out = String::with_capacity(16 + 80 * self.entries.len());
        out.push_str("CPU:\n");
        for (&(leaf, sub), r) in &self.entries {
            let _ = writeln!(
                out,
                "   0x{leaf:08x} 0x{sub:02x}: eax=0x{:08x} ebx=0x{:08x} ecx=0x{:08x} edx=0x{:08x}",
                r.eax, r.ebx, r.ecx, r.edx
            );
        }
        out
    }

    /// Writes the entries as a JSON array of `kvm_cpuid_entry2` objects, every
    /// value an `0x`-prefixed 8-digit hex string, `flags` 1 for indexed leaves.
    pub fn to_kvm_json(&self) -> String {
        if self.entries.is_empty() {
            return "[]\n".to_owned();
        }
        let mut out = String::with_capacity(4 + 160 * self.entries.len());
        out.push_str("[\n");
        let last = self.entries.len() - 1;
        for (n, (&(leaf, sub), r)) in self.entries.iter().enumerate() {
            let flags = if self.is_indexed(leaf) {
                FLAG_SIGNIFICANT_INDEX
            } else {
                0
            };
            let _ = write!(
                out,
                "  {{\"function\": \"0x{leaf:08x}\", \"index\": \"0x{sub:08x}\", \
                 \"flags\": \"0x{flags:08x}\", \"eax\": \"0x{:08x}\", \"ebx\": \"0x{:08x}\", \
                 \"ecx\": \"0x{:08x}\", \"edx\": \"0x{:08x}\"}}",
                r.eax, r.ebx, r.ecx, r.edx
            );
            out.push_str(if n == last { "\n" } else { ",\n" });
        }
        out.push_str("]\n");
        out
    }
}

#[cfg(feature = "std")]
/// Reads the first CPU of a text dump in `format`.
fn parse_text(text: &str, format: DumpFormat) -> Result<CpuidSet, CpuidSetError> {
    let mut set = CpuidSet::new();
    let mut seen_leaf0 = false;
    for (n, line) in text.lines().enumerate() {
        let at = At::Line(n + 1);
        let parsed = match format {
            DumpFormat::InstLatx64 => dump::parse_instlat(line),
            DumpFormat::CpuidRaw => dump::parse_cpuid_raw(line),
        };
        let Some((leaf, sub, regs)) = parsed else {
            if looks_like_data(format, line) {
                return Err(CpuidSetError::Malformed { at });
            }
            continue;
        };
        if leaf == 0 && sub == 0 {
            // A second leaf 0 starts the next CPU of a multi-CPU dump.
            if seen_leaf0 {
                break;
            }
            seen_leaf0 = true;
        }
        if set.entries.contains_key(&(leaf, sub)) {
            return Err(CpuidSetError::Duplicate {
                at,
                leaf,
                subleaf: sub,
            });
        }
        if set.entries.len() >= MAX_ENTRIES {
            return Err(CpuidSetError::TooManyEntries {
                at,
                max: MAX_ENTRIES,
            });
        }
        set.entries.insert((leaf, sub), regs);
        let tagged = format == DumpFormat::InstLatx64 && line.contains("[SL ");
        if sub != 0 || tagged || KNOWN_INDEXED.contains(&leaf) {
            set.indexed.insert(leaf);
        }
    }
    if set.is_empty() {
        return Err(CpuidSetError::NotADump);
    }
    Ok(set)
}

#[cfg(feature = "std")]
/// Whether `line` starts like a CPUID line of `format`, so that failing to
/// parse it is an error rather than a line to skip: a `cpuid -r` line whose
/// first word is `0x`-prefixed, an InstLatx64 line `CPUID` followed by a
/// hex leaf number (with or without its colon). A line cut anywhere after
/// those first characters is still data, and refused.
fn looks_like_data(format: DumpFormat, line: &str) -> bool {
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or("");
    match format {
        DumpFormat::InstLatx64 => {
            let leaf = words.next().unwrap_or("");
            let leaf = leaf.strip_suffix(':').unwrap_or(leaf);
            first == "CPUID" && !leaf.is_empty() && leaf.bytes().all(|b| b.is_ascii_hexdigit())
        }
        DumpFormat::CpuidRaw => first.starts_with("0x") || first.starts_with("0X"),
    }
}

#[cfg(feature = "std")]
/// The keys of one `kvm_cpuid_entry2` object, for serde to refuse one given
/// twice (a [`Value`] keeps the last silently); others (`padding`) are
/// ignored.
#[derive(serde::Deserialize)]
struct EntryKeys {
    #[serde(rename = "function")]
    _function: Option<serde::de::IgnoredAny>,
    #[serde(rename = "index")]
    _index: Option<serde::de::IgnoredAny>,
    #[serde(rename = "flags")]
    _flags: Option<serde::de::IgnoredAny>,
    #[serde(rename = "eax")]
    _eax: Option<serde::de::IgnoredAny>,
    #[serde(rename = "ebx")]
    _ebx: Option<serde::de::IgnoredAny>,
    #[serde(rename = "ecx")]
    _ecx: Option<serde::de::IgnoredAny>,
    #[serde(rename = "edx")]
    _edx: Option<serde::de::IgnoredAny>,
}

#[cfg(feature = "std")]
/// `{"entries": [...]}`, for serde to refuse `"entries"` twice.
#[derive(serde::Deserialize)]
struct EntriesKey {
    #[serde(rename = "entries")]
    _entries: Vec<EntryKeys>,
}

#[cfg(feature = "std")]
/// Refuses a key given twice in an entry, or `"entries"` twice, in `text`,
/// whose shape (an array of objects when `array`, else an object with an
/// `"entries"` array of objects) is already known.
fn no_duplicate_keys(text: &str, array: bool) -> Result<(), CpuidSetError> {
    let checked = if array {
        serde_json::from_str::<Vec<EntryKeys>>(text).map(drop)
    } else {
        serde_json::from_str::<EntriesKey>(text).map(drop)
    };
    checked.map_err(|e| CpuidSetError::DuplicateKey {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

#[cfg(feature = "std")]
/// One `kvm_cpuid_entry2` as read from JSON.
struct JsonEntry {
    function: u32,
    index: u32,
    flags: u32,
    regs: CpuidRegs,
}

#[cfg(feature = "std")]
fn json_entry(i: usize, entry: &Value) -> Result<JsonEntry, CpuidSetError> {
    let at = At::Entry(i);
    let obj = entry.as_object().ok_or(CpuidSetError::NotAnObject { at })?;
    let field = |name: &'static str, default: Option<u32>| -> Result<u32, CpuidSetError> {
        match obj.get(name) {
            None => default.ok_or(CpuidSetError::Field {
                at,
                field: name,
                reason: "is missing",
            }),
            Some(v) => json_u32(v).ok_or(CpuidSetError::Field {
                at,
                field: name,
                reason: "is not a 32-bit unsigned number, hex string (\"0x1f\") or decimal string",
            }),
        }
    };
    Ok(JsonEntry {
        function: field("function", None)?,
        index: field("index", Some(0))?,
        flags: field("flags", Some(0))?,
        regs: CpuidRegs {
            eax: field("eax", None)?,
            ebx: field("ebx", None)?,
            ecx: field("ecx", None)?,
            edx: field("edx", None)?,
        },
    })
}

#[cfg(feature = "std")]
/// A JSON number or string as a u32: `31`, `"0x1f"`, `"0X1F"` or `"31"`.
fn json_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => u32::try_from(n.as_u64()?).ok(),
        Value::String(s) if s.starts_with("0x") || s.starts_with("0X") => crate::hex::parse_u32(s),
        Value::String(s) => {
            // str::parse takes a leading '+'; a value here is digits only.
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        _ => None,
    }
}
