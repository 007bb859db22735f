//! The project's own layout files: TOML, one CPU per file, human readable.
//!
//! ```toml
//! name = "amd-zen3"
//! vendor = "AuthenticAMD"
//! description = "AMD Zen 3 (EPYC 7003, Milan)"
//! source = "CPUID leaf 0xD of an EPYC 7003 part"
//! xcr0_supported = "0x207"
//! xss_supported = "0x1800"
//! standard_size = 2440
//! mxcsr_mask = "0x2ffff"
//!
//! [[component]]
//! id = 2
//! name = "AVX"
//! size = 256
//! offset = 576
//! ```
//!
//! `supervisor`, `align64` and `xfd` default to false; `standard_size` to the
//! end of the last user component; `mxcsr_mask` to the vendor's usual value;
//! `xsave_features` (CPUID.(0xD,1).EAX) to 0xF, with bit 4 (XFD) when a
//! component is XFD-capable. `xsave = false` describes a CPU without the
//! XSAVE feature set (a legacy-only CPU: `xcr0_supported = "0x3"`, no
//! component tables).

use arrayvec::ArrayVec;
use serde::{Deserialize, Serialize};

use super::{ComponentGeometry, Layout, LayoutError, LayoutParts};
use crate::component::{ComponentId, Xfeatures};

/// Why a layout file gave no layout.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Not TOML, or not this schema.
    #[error("not a layout file")]
    Toml(#[source] toml::de::Error),
    /// A field with a bad value.
    #[error("layout file field {field} has a bad value {value:?}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its text.
        value: String,
    },
    /// A `[[component]]` id that is no component number (0..=63).
    #[error("layout file component id {0} is not a component number (0..=63)")]
    BadId(u8),
    /// More `[[component]]` tables than there are components.
    #[error("layout file has {0} component tables, more than the 64 components there are")]
    TooManyComponents(usize),
    /// `xsave = false` with XSAVE state: a legacy-only CPU has XCR0 0x3 and
    /// nothing else.
    #[error("layout file says xsave = false (a legacy-only CPU) but has xcr0_supported {xcr0}, xss_supported {xss} or component tables: it may have XCR0 0x3 and nothing else")]
    LegacyWithXsaveState {
        /// The file's XCR0 bits.
        xcr0: Xfeatures,
        /// The file's IA32_XSS bits.
        xss: Xfeatures,
    },
    /// The file describes an invalid geometry.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// The serialized form of a layout file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    /// Short name, used as the catalog key (`intel-sapphire-rapids`).
    pub name: String,
    /// CPUID vendor string.
    pub vendor: String,
    /// What CPU this is (left out when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where the numbers came from.
    pub source: String,
    /// Supported XCR0 bits, hex.
    pub xcr0_supported: String,
    /// Supported IA32_XSS bits, hex.
    #[serde(default = "zero_hex")]
    pub xss_supported: String,
    /// CPUID.(0xD,0).ECX, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_size: Option<u32>,
    /// MXCSR_MASK, hex, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mxcsr_mask: Option<String>,
    /// CPUID.(0xD,1).EAX (XSAVEOPT, XSAVEC, XGETBV1, XSAVES, XFD), hex, if stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xsave_features: Option<String>,
    /// CPUID.1:ECX.XSAVE; `false` for a legacy-only CPU (x87 and SSE in
    /// the FXSAVE image, XCR0 0x3, no components). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xsave: Option<bool>,
    /// Extended components (index >= 2).
    #[serde(default, rename = "component")]
    pub components: Vec<ComponentEntry>,
}

fn zero_hex() -> String {
    "0x0".into()
}

/// One `[[component]]` table of a layout file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComponentEntry {
    /// Component number.
    pub id: u8,
    /// Display name (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Size in bytes.
    pub size: u32,
    /// Standard-format offset (0 for supervisor components).
    #[serde(default)]
    pub offset: u32,
    /// Managed by IA32_XSS.
    #[serde(default)]
    pub supervisor: bool,
    /// 64-byte aligned in the compacted format.
    #[serde(default)]
    pub align64: bool,
    /// XFD supported.
    #[serde(default)]
    pub xfd: bool,
}

fn parse_hex(field: &'static str, s: &str) -> Result<u64, FileError> {
    crate::hex::parse_u64(s).ok_or_else(|| FileError::BadField {
        field,
        value: s.to_string(),
    })
}

fn parse_hex32(field: &'static str, s: &str) -> Result<u32, FileError> {
    crate::hex::parse_u32(s).ok_or_else(|| FileError::BadField {
        field,
        value: s.to_string(),
    })
}

impl LayoutFile {
    /// Builds and validates the layout this file describes.
    ///
    /// # Errors
    ///
    /// [`FileError::BadField`] for a hex field that does not parse,
    /// [`FileError::BadId`] for a component id past 63, or the geometry's
    /// [`FileError::Layout`] error.
    pub fn to_layout(&self) -> Result<Layout, FileError> {
        let mxcsr_mask = self
            .mxcsr_mask
            .as_deref()
            .map(|s| parse_hex32("mxcsr_mask", s))
            .transpose()?
            .map(super::mxcsr_mask_from_saved);
        let xsave_features = self
            .xsave_features
            .as_deref()
            .map(|s| parse_hex32("xsave_features", s))
            .transpose()?;
        if self.components.len() > 64 {
            return Err(FileError::TooManyComponents(self.components.len()));
        }
        let mut components = ArrayVec::<ComponentGeometry, 64>::new();
        for c in &self.components {
            components.push(ComponentGeometry {
                id: ComponentId::new(c.id).ok_or(FileError::BadId(c.id))?,
                size: c.size,
                offset: c.offset,
                supervisor: c.supervisor,
                align64: c.align64,
                xfd: c.xfd,
            });
        }
        let source = if self.description.is_empty() {
            self.source.clone()
        } else {
            format!("{}: {}", self.description, self.source)
        };
        if self.xsave == Some(false) {
            let xcr0 = Xfeatures::from_bits(parse_hex("xcr0_supported", &self.xcr0_supported)?);
            let xss = Xfeatures::from_bits(parse_hex("xss_supported", &self.xss_supported)?);
            if xcr0 != Xfeatures::LEGACY || !xss.is_empty() || !components.is_empty() {
                return Err(FileError::LegacyWithXsaveState { xcr0, xss });
            }
            let layout = Layout::legacy_only(&self.name, &self.vendor, &source);
            return match mxcsr_mask {
                Some(mask) if mask & super::MXCSR_MASK_MIN != super::MXCSR_MASK_MIN => {
                    Err(LayoutError::MxcsrMask { mask }.into())
                }
                Some(mask) if mask & !super::MXCSR_MASK_MAX != 0 => {
                    Err(LayoutError::MxcsrMaskReserved { mask }.into())
                }
                Some(m) => Ok(layout.with_mxcsr_mask(m)),
                None => Ok(layout),
            };
        }
        Ok(Layout::from_parts(LayoutParts {
            name: &self.name,
            vendor: &self.vendor,
            source: &source,
            xcr0_supported: Xfeatures::from_bits(parse_hex(
                "xcr0_supported",
                &self.xcr0_supported,
            )?),
            xss_supported: Xfeatures::from_bits(parse_hex("xss_supported", &self.xss_supported)?),
            standard_size: self.standard_size,
            mxcsr_mask,
            xsave_features,
            components: &components,
        })?)
    }

    /// The file form of `layout`.
    pub fn from_layout(layout: &Layout) -> LayoutFile {
        LayoutFile {
            name: layout.name().to_string(),
            vendor: layout.vendor().to_string(),
            description: String::new(),
            source: layout.source().to_string(),
            xcr0_supported: format!("{:#x}", layout.xcr0_supported()),
            xss_supported: format!("{:#x}", layout.xss_supported()),
            standard_size: Some(layout.standard_size()),
            mxcsr_mask: Some(format!("{:#x}", layout.mxcsr_mask())),
            xsave_features: Some(format!("{:#x}", layout.xsave_features())),
            xsave: (!layout.has_xsave()).then_some(false),
            components: layout
                .components()
                .filter(|g| !g.id.is_legacy())
                .map(|g| ComponentEntry {
                    id: g.id.index(),
                    name: Some(g.id.to_string()),
                    size: g.size,
                    offset: g.offset,
                    supervisor: g.supervisor,
                    align64: g.align64,
                    xfd: g.xfd,
                })
                .collect(),
        }
    }
}

impl Layout {
    /// Parses and validates a TOML layout file.
    ///
    /// # Errors
    ///
    /// [`FileError::Toml`] for text that is not a layout file, or an error
    /// of [`LayoutFile::to_layout`].
    pub fn from_toml(text: &str) -> Result<Layout, FileError> {
        let file: LayoutFile = toml::from_str(text).map_err(FileError::Toml)?;
        file.to_layout()
    }

    /// This layout as a TOML layout file.
    pub fn to_toml(&self) -> String {
        toml::to_string(&LayoutFile::from_layout(self)).expect("layout files always serialize")
    }
}
