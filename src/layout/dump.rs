//! CPUID dump files: the InstLatx64 text format and `cpuid -r` output.
//!
//! InstLatx64 lines look like
//! `CPUID 0000000D: 000602E7-00002B00-00002B00-00000000 [SL 00]`
//! (EAX-EBX-ECX-EDX, sub-leaf in brackets); `cpuid -r` lines look like
//! `0x0000000d 0x00: eax=0x00000207 ebx=0x00000988 ecx=0x00000988 edx=0x00000000`.
//! The format is detected from the content. Only the first CPU of a
//! multi-CPU dump is read.

use super::{CpuidLeaf0xD, CpuidRegs, Layout, LayoutError};

/// Why a CPUID dump gave no layout.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpError {
    /// Text in neither dump format.
    #[error("not a CPUID dump in a known format (InstLatx64 or `cpuid -r`)")]
    UnknownFormat,
    /// A dump without leaf 0xD sub-leaf 0.
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

/// Detects the dump format of `text`, if it is a CPUID dump at all.
pub(crate) fn detect(text: &str) -> Option<DumpFormat> {
    for line in text.lines() {
        if parse_instlat(line).is_some() {
            return Some(DumpFormat::InstLatx64);
        }
        if parse_cpuid_raw(line).is_some() {
            return Some(DumpFormat::CpuidRaw);
        }
    }
    None
}

/// What a dump says about XSAVE: leaf 0 (vendor), leaf 1 ECX, leaf 0xD.
struct DumpXsave {
    leaf0xd: CpuidLeaf0xD,
    /// Leaf 0 was present.
    leaf0: bool,
    /// Leaf 1 ECX, if present.
    leaf1_ecx: Option<u32>,
}

/// CPUID.1:ECX.XSAVE (bit 26).
const XSAVE_FLAG: u32 = 1 << 26;

fn read_dump(text: &str) -> Result<DumpXsave, DumpError> {
    let format = detect(text).ok_or(DumpError::UnknownFormat)?;
    let mut out = DumpXsave {
        leaf0xd: CpuidLeaf0xD::default(),
        leaf0: false,
        leaf1_ecx: None,
    };
    for line in text.lines() {
        let parsed = match format {
            DumpFormat::InstLatx64 => parse_instlat(line),
            DumpFormat::CpuidRaw => parse_cpuid_raw(line),
        };
        let Some((leaf, sub, regs)) = parsed else {
            continue;
        };
        match leaf {
            0 if sub == 0 => {
                // A second leaf 0 starts the next CPU of a multi-CPU dump.
                if out.leaf0 {
                    break;
                }
                out.leaf0 = true;
                let mut v = Vec::with_capacity(12);
                for r in [regs.ebx, regs.edx, regs.ecx] {
                    v.extend_from_slice(&r.to_le_bytes());
                }
                out.leaf0xd.vendor = Some(String::from_utf8_lossy(&v).into_owned());
            }
            1 => {
                out.leaf1_ecx.get_or_insert(regs.ecx);
            }
            0xD => {
                out.leaf0xd.subleaves.entry(sub).or_insert(regs);
            }
            _ => {}
        }
    }
    Ok(out)
}

impl CpuidLeaf0xD {
    /// Extracts leaf 0 (vendor) and leaf 0xD from a CPUID dump in either
    /// supported text format.
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
    /// [`DumpError::UnknownFormat`] or [`DumpError::NoLeaf0xD`].
    pub fn from_dump(text: &str) -> Result<CpuidLeaf0xD, DumpError> {
        let out = read_dump(text)?.leaf0xd;
        if !out.subleaves.contains_key(&0) {
            return Err(DumpError::NoLeaf0xD);
        }
        Ok(out)
    }
}

impl Layout {
    /// Builds a layout from a CPUID dump (format auto-detected), named `name`.
    ///
    /// A dump of a CPU without the XSAVE feature set (CPUID.1:ECX.XSAVE
    /// clear, or leaf 0 or 1 present but no leaf 0xD) gives the
    /// [`Layout::legacy_only`] layout.
    ///
    /// # Errors
    ///
    /// A [`DumpError`]: not a dump, no leaf 0xD (and no leaf 0 or 1 to tell
    /// a legacy-only CPU by), or an invalid geometry.
    pub fn from_dump(name: &str, text: &str) -> Result<Layout, DumpError> {
        let format = detect(text).ok_or(DumpError::UnknownFormat)?;
        let what = match format {
            DumpFormat::InstLatx64 => "CPUID dump (InstLatx64 format)",
            DumpFormat::CpuidRaw => "CPUID dump (cpuid -r format)",
        };
        let dump = read_dump(text)?;
        let has_leaf0xd = dump.leaf0xd.subleaves.contains_key(&0);
        let xsave_clear = dump.leaf1_ecx.is_some_and(|ecx| ecx & XSAVE_FLAG == 0);
        if xsave_clear || (!has_leaf0xd && (dump.leaf0 || dump.leaf1_ecx.is_some())) {
            let vendor = dump.leaf0xd.vendor.as_deref().unwrap_or("unknown");
            let what = format!("{what}: no XSAVE, legacy-only");
            return Ok(Layout::legacy_only(name, vendor, &what));
        }
        if !has_leaf0xd {
            return Err(DumpError::NoLeaf0xD);
        }
        Ok(dump.leaf0xd.to_layout_from(name, what)?)
    }
}
