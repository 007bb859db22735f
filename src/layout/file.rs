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
//! end of the last user component; `mxcsr_mask` to the vendor's usual value.

use serde::{Deserialize, Serialize};

use super::{ComponentGeometry, Layout, LayoutParts};
use crate::component;
use crate::error::LayoutError;

/// The serialized form of a layout file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    /// Short name, used as the catalog key (`intel-sapphire-rapids`).
    pub name: String,
    /// CPUID vendor string.
    pub vendor: String,
    /// What CPU this is.
    #[serde(default)]
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

fn parse_hex(field: &'static str, s: &str) -> Result<u64, LayoutError> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u64::from_str_radix(t, 16).map_err(|_| LayoutError::BadField {
        field,
        value: s.to_string(),
    })
}

impl LayoutFile {
    /// Builds and validates the layout this file describes.
    pub fn to_layout(&self) -> Result<Layout, LayoutError> {
        let mxcsr_mask = match &self.mxcsr_mask {
            Some(s) => Some(u32::try_from(parse_hex("mxcsr_mask", s)?).map_err(|_| {
                LayoutError::BadField {
                    field: "mxcsr_mask",
                    value: s.clone(),
                }
            })?),
            None => None,
        };
        Layout::from_parts(LayoutParts {
            name: self.name.clone(),
            vendor: self.vendor.clone(),
            source: if self.description.is_empty() {
                self.source.clone()
            } else {
                format!("{}: {}", self.description, self.source)
            },
            xcr0_supported: parse_hex("xcr0_supported", &self.xcr0_supported)?,
            xss_supported: parse_hex("xss_supported", &self.xss_supported)?,
            standard_size: self.standard_size,
            mxcsr_mask,
            components: self
                .components
                .iter()
                .map(|c| ComponentGeometry {
                    index: c.id,
                    size: c.size,
                    offset: c.offset,
                    supervisor: c.supervisor,
                    align64: c.align64,
                    xfd: c.xfd,
                })
                .collect(),
        })
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
            components: layout
                .components()
                .filter(|g| g.index >= 2)
                .map(|g| ComponentEntry {
                    id: g.index,
                    name: Some(component::name_of(g.index).into_owned()),
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
    pub fn from_toml(text: &str) -> Result<Layout, LayoutError> {
        let file: LayoutFile =
            toml::from_str(text).map_err(|e| LayoutError::Toml(e.message().to_string()))?;
        file.to_layout()
    }

    /// This layout as a TOML layout file.
    pub fn to_toml(&self) -> String {
        toml::to_string(&LayoutFile::from_layout(self)).expect("layout files always serialize")
    }
}
