//! CPUID dumps: the InstLatx64 text format and `cpuid -r` output (and,
//! through [`CpuidSet`], KVM `kvm_cpuid2` entries as JSON).
//!
//! InstLatx64 lines look like
//! `CPUID 0000000D: 000602E7-00002B00-00002B00-00000000 [SL 00]`
//! (EAX-EBX-ECX-EDX, sub-leaf in brackets); `cpuid -r` lines look like
//! `0x0000000d 0x00: eax=0x00000207 ebx=0x00000988 ecx=0x00000988 edx=0x00000000`.
//! The format is detected from the content. The line parsers here are the
//! only ones: [`CpuidSet`] reads dumps with them (first CPU only, a line
//! that starts like a CPUID line but does not parse, or a leaf and sub-leaf
//! seen twice, is an error naming its line), and [`Layout::from_dump`]
//! builds its layout from that [`CpuidSet`].

use super::{CpuidLeaf0xD, CpuidRegs, Layout, LayoutError};
use crate::cpuid::{CpuidSet, CpuidSetError};

/// Why a CPUID dump gave no layout.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpError {
    /// Text in neither dump format.
    #[error("not a CPUID dump in a known format (InstLatx64 or `cpuid -r`)")]
    UnknownFormat,
    /// A CPUID line that does not parse, the same leaf and sub-leaf twice
    /// (each naming its line, or JSON entry), or too many entries.
    #[error(transparent)]
    Cpuid(#[from] CpuidSetError),
    /// A dump without leaf 0xD sub-leaf 0, and without leaf 0 or 1 to tell
    /// a CPU without XSAVE by.
    #[error("no CPUID leaf 0xD sub-leaf 0 found")]
    NoLeaf0xD,
    /// Leaf 0xD describes an invalid geometry.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// The text formats a dump may be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// InstLatx64 `CPUID xxxxxxxx: a-b-c-d [SL nn]`.
    InstLatx64,
    /// `cpuid -r` `0xLEAF 0xSUB: eax=.. ebx=.. ecx=.. edx=..`.
    CpuidRaw,
}

fn hex(s: &str) -> Option<u32> {
    crate::hex::parse_u32(s)
}

/// One parsed line: leaf, sub-leaf, registers.
pub(crate) fn parse_instlat(line: &str) -> Option<(u32, u32, CpuidRegs)> {
    let rest = line.trim().strip_prefix("CPUID ")?;
    let (leaf, rest) = rest.split_once(':')?;
    let leaf = hex(leaf)?;
    let rest = rest.trim();
    let regs_text = rest.split_whitespace().next()?;
    let mut regs = regs_text.split('-').map(hex);
    let (eax, ebx, ecx, edx) = (regs.next()??, regs.next()??, regs.next()??, regs.next()??);
    if regs.next().is_some() {
        return None;
    }
    let sub = match rest.find("[SL ") {
        Some(p) => hex(rest[p + 4..].split(']').next()?)?,
        None => 0,
    };
    Some((leaf, sub, CpuidRegs { eax, ebx, ecx, edx }))
}

/// One parsed `cpuid -r` line: leaf, sub-leaf, registers.
pub(crate) fn parse_cpuid_raw(line: &str) -> Option<(u32, u32, CpuidRegs)> {
    let mut words = line.split_whitespace();
    let leaf = words.next()?;
    if !leaf.starts_with("0x") {
        return None;
    }
    let leaf = hex(leaf)?;
    let sub = hex(words.next()?.strip_suffix(':')?)?;
    let mut regs = [None; 4];
    for w in words {
        let (name, value) = w.split_once('=')?;
        let slot = ["eax", "ebx", "ecx", "edx"]
            .iter()
            .position(|n| *n == name)?;
        regs[slot] = Some(hex(value)?);
    }
    Some((
        leaf,
        sub,
        CpuidRegs {
            eax: regs[0]?,
            ebx: regs[1]?,
            ecx: regs[2]?,
            edx: regs[3]?,
        },
    ))
}

/// Detects the dump format of `text`, if it is a CPUID dump at all: the
/// format of its first CPUID line or, when no line parses, of its first line
/// shaped like one (`CPUID 0000000D:`, `0x0000000d 0x00:`), so that a dump
/// whose lines are all cut or corrupted is still taken for a dump (and
/// refused as one, naming the line).
pub(crate) fn detect(text: &str) -> Option<DumpFormat> {
    let mut shaped = None;
    for line in text.lines() {
        if parse_instlat(line).is_some() {
            return Some(DumpFormat::InstLatx64);
        }
        if parse_cpuid_raw(line).is_some() {
            return Some(DumpFormat::CpuidRaw);
        }
        shaped = shaped.or_else(|| shaped_like(line));
    }
    shaped
}

/// The format whose CPUID line `line` starts like: a leaf and a colon
/// (`CPUID 0000000D:`), or a leaf and a sub-leaf with its colon
/// (`0x0000000d 0x00:`).
fn shaped_like(line: &str) -> Option<DumpFormat> {
    let mut words = line.split_whitespace();
    let (first, second) = (words.next()?, words.next()?);
    let hex_digits = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_hexdigit());
    let hex_word = |w: &str| w.strip_prefix("0x").is_some_and(hex_digits);
    if first == "CPUID" && second.strip_suffix(':').is_some_and(hex_digits) {
        Some(DumpFormat::InstLatx64)
    } else if hex_word(first) && second.strip_suffix(':').is_some_and(hex_word) {
        Some(DumpFormat::CpuidRaw)
    } else {
        None
    }
}

impl CpuidLeaf0xD {
    /// Extracts leaf 0 (vendor) and leaf 0xD from a CPUID dump in any
    /// format [`CpuidSet::parse`] reads (InstLatx64, `cpuid -r`,
    /// `kvm_cpuid2` JSON), with its rules: first CPU only, a malformed
    /// CPUID line or a duplicate is an error.
    ///
    /// ```
    /// let dump = "CPUID 00000000: 00000010-68747541-444D4163-69746E65\n\
    ///             CPUID 0000000D: 00000207-00000340-00000988-00000000 [SL 00]\n\
    ///             CPUID 0000000D: 00000100-00000240-00000000-00000000 [SL 02]\n\
    ///             CPUID 0000000D: 00000008-00000980-00000000-00000000 [SL 09]\n";
    /// let leaf = xstate::layout::CpuidLeaf0xD::from_dump(dump).unwrap();
    /// assert_eq!(leaf.vendor.as_deref(), Some("AuthenticAMD"));
    /// assert_eq!(leaf.xcr0_supported().bits(), 0x207);
    /// ```
    ///
    /// # Errors
    ///
    /// [`DumpError::UnknownFormat`], [`DumpError::Cpuid`] naming the line
    /// or entry at fault, or [`DumpError::NoLeaf0xD`].
    pub fn from_dump(text: &str) -> Result<CpuidLeaf0xD, DumpError> {
        let (set, _) = parse(text)?;
        let out = CpuidLeaf0xD {
            vendor: set.vendor(),
            subleaves: set
                .iter()
                .filter(|&(leaf, _, _)| leaf == 0xD)
                .map(|(_, sub, regs)| (sub, regs))
                .collect(),
        };
        if !out.subleaves.contains_key(&0) {
            return Err(DumpError::NoLeaf0xD);
        }
        Ok(out)
    }
}

/// Reads a dump with [`CpuidSet::parse`]: the set and its format's name.
fn parse(text: &str) -> Result<(CpuidSet, &'static str), DumpError> {
    CpuidSet::parse_named(text).map_err(|e| match e {
        CpuidSetError::NotADump => DumpError::UnknownFormat,
        e => DumpError::Cpuid(e),
    })
}

impl Layout {
    /// Builds a layout from a CPUID dump (format auto-detected: InstLatx64,
    /// `cpuid -r` or `kvm_cpuid2` JSON), named `name`. The dump is read by
    /// [`CpuidSet::parse`] and the layout built by [`CpuidSet::to_layout`],
    /// as `cpuid check` and `pool baseline` read theirs.
    ///
    /// A dump of a CPU without the XSAVE feature set (CPUID.1:ECX.XSAVE
    /// clear, or a maximum basic leaf below 0xD in leaf 0) gives the
    /// [`Layout::legacy_only`] layout.
    ///
    /// # Errors
    ///
    /// A [`DumpError`]: not a dump; a malformed CPUID line or a duplicate
    /// one ([`DumpError::Cpuid`], naming the line); no leaf 0xD
    /// ([`DumpError::NoLeaf0xD`] with nothing to tell what the CPU is,
    /// [`LayoutError::MissingLeaf0xD`] when leaf 0 says leaf 0xD exists);
    /// or an invalid geometry.
    pub fn from_dump(name: &str, text: &str) -> Result<Layout, DumpError> {
        Layout::from_dump_with_cpuid(name, text).map(|(layout, _)| layout)
    }

    /// As [`from_dump`](Self::from_dump), and the whole CPUID the dump
    /// holds (its feature flags, for a pool baseline).
    ///
    /// # Errors
    ///
    /// As [`from_dump`](Self::from_dump).
    pub fn from_dump_with_cpuid(name: &str, text: &str) -> Result<(Layout, CpuidSet), DumpError> {
        let (set, format) = parse(text)?;
        // Without XSAVE, to_layout gives the legacy-only layout (or an
        // error when the set should have had leaf 0xD).
        let what = if set.has_xsave() {
            format!("CPUID dump ({format} format)")
        } else {
            format!("CPUID dump ({format} format): no XSAVE, legacy-only")
        };
        let layout = set.to_layout(name, &what).map_err(|e| match e {
            LayoutError::NoLeaf0xD => DumpError::NoLeaf0xD,
            e => DumpError::Layout(e),
        })?;
        Ok((layout, set))
    }
}
