//! The layout engine: one CPU's XSAVE geometry.
//!
//! A [`Layout`] holds, for every state component a CPU enumerates, its size,
//! its offset in the standard (non-compacted) format and its flags, exactly as
//! CPUID leaf 0xD reports them. Compacted offsets are not stored: they depend
//! on which components a buffer holds (its XCOMP_BV) and follow from the
//! hardware rule in [`Layout::compacted_offset`].
//!
//! Layouts come from the host ([`Layout::host`]), a CPUID dump
//! ([`Layout::from_dump`]), a layout file ([`Layout::from_toml`]) or the
//! built-in [`catalog`]. Every constructor validates the geometry.
//!
//! ```
//! use xstate::{Component, Layout};
//!
//! let zen4 = xstate::layout::catalog::get("amd-zen4").unwrap();
//! let spr = xstate::layout::catalog::get("intel-sapphire-rapids").unwrap();
//! // Same component, different standard offsets: never hard-code one CPU.
//! assert_eq!(zen4.offset(Component::Pkru), Some(2432));
//! assert_eq!(spr.offset(Component::Pkru), Some(2688));
//! // Compacted offsets follow from the components present.
//! let all = spr.supported();
//! assert_eq!(spr.compacted_offset(all, Component::Opmask), Some(832));
//! ```

pub mod catalog;
mod cpuid;
mod diff;
pub(crate) mod dump;
mod file;
mod source;

pub use cpuid::{CpuidLeaf0xD, CpuidRegs};
pub use diff::{diff, ComponentDiff};
pub use file::LayoutFile;
pub use source::LayoutSource;

use crate::component::{self, Component, EXTENDED_REGION_START, LEGACY_MASK};
use crate::error::LayoutError;

/// Where a component sits in one CPU's XSAVE area, from CPUID leaf 0xD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ComponentGeometry {
    /// The component's bit number.
    pub index: u8,
    /// Size in bytes (CPUID.(0xD, i).EAX).
    pub size: u32,
    /// Offset in the standard format (CPUID.(0xD, i).EBX); 0 for supervisor components.
    pub offset: u32,
    /// Managed by IA32_XSS (CPUID.(0xD, i).ECX bit 0).
    pub supervisor: bool,
    /// Aligned to 64 bytes in the compacted format (ECX bit 1).
    pub align64: bool,
    /// Supports extended feature disable (ECX bit 2).
    pub xfd: bool,
}

impl ComponentGeometry {
    /// End of the component in the standard format (offset + size).
    pub fn end(&self) -> u32 {
        self.offset + self.size
    }
}

/// The legacy components as they sit in the 512-byte FXSAVE region.
const LEGACY_GEOMETRY: [ComponentGeometry; 2] = [
    ComponentGeometry {
        index: 0,
        size: 160,
        offset: 0,
        supervisor: false,
        align64: false,
        xfd: false,
    },
    ComponentGeometry {
        index: 1,
        size: 256,
        offset: 160,
        supervisor: false,
        align64: false,
        xfd: false,
    },
];

/// One CPU's XSAVE geometry. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    name: String,
    vendor: String,
    source: String,
    xcr0_supported: u64,
    xss_supported: u64,
    standard_size: u32,
    mxcsr_mask: u32,
    /// Indexed by component number; `size == 0` means not enumerated.
    table: [ComponentGeometry; 64],
}

/// MXCSR_MASK when a layout does not say: Intel's 0xFFFF, or AMD's 0x2FFFF
/// (bit 17, misaligned-SSE mask, writable).
pub fn default_mxcsr_mask(vendor: &str) -> u32 {
    if vendor == "AuthenticAMD" {
        0x2FFFF
    } else {
        0xFFFF
    }
}

const EMPTY: ComponentGeometry = ComponentGeometry {
    index: 0,
    size: 0,
    offset: 0,
    supervisor: false,
    align64: false,
    xfd: false,
};

/// What a layout is built from, before validation.
#[derive(Clone, Debug)]
pub(crate) struct LayoutParts {
    pub name: String,
    pub vendor: String,
    pub source: String,
    pub xcr0_supported: u64,
    pub xss_supported: u64,
    pub standard_size: Option<u32>,
    pub mxcsr_mask: Option<u32>,
    /// Extended components (index >= 2).
    pub components: Vec<ComponentGeometry>,
}

impl Layout {
    /// Builds and validates a layout from its parts.
    pub(crate) fn from_parts(parts: LayoutParts) -> Result<Layout, LayoutError> {
        let mut table = [EMPTY; 64];
        table[0] = LEGACY_GEOMETRY[0];
        table[1] = LEGACY_GEOMETRY[1];
        if parts.xcr0_supported & LEGACY_MASK != LEGACY_MASK {
            return Err(LayoutError::MissingLegacy {
                xcr0: parts.xcr0_supported,
            });
        }
        if parts.xcr0_supported & parts.xss_supported != 0 {
            return Err(LayoutError::BothXcr0AndXss {
                mask: parts.xcr0_supported & parts.xss_supported,
            });
        }
        let supported = parts.xcr0_supported | parts.xss_supported;
        for g in &parts.components {
            let idx = g.index;
            if !(2..64).contains(&idx) {
                return Err(LayoutError::BadIndex { index: idx });
            }
            if supported & (1 << idx) == 0 {
                return Err(LayoutError::NotEnumerated { index: idx });
            }
            if table[idx as usize].size != 0 {
                return Err(LayoutError::Duplicate { index: idx });
            }
            if g.size == 0 {
                return Err(LayoutError::ZeroSize { index: idx });
            }
            if g.offset.checked_add(g.size).is_none() {
                return Err(LayoutError::EndOverflow {
                    index: idx,
                    offset: g.offset,
                    size: g.size,
                });
            }
            let expect_supervisor = parts.xss_supported & (1 << idx) != 0;
            if g.supervisor != expect_supervisor {
                return Err(LayoutError::SupervisorMismatch {
                    index: idx,
                    supervisor: g.supervisor,
                });
            }
            table[idx as usize] = *g;
        }
        for idx in component::bits(supported & !LEGACY_MASK) {
            if table[idx as usize].size == 0 {
                return Err(LayoutError::MissingGeometry { index: idx });
            }
        }
        // Every compacted offset and size is a partial sum of this one:
        // checking it once keeps all later u32 arithmetic in range.
        let mut compacted = u64::from(EXTENDED_REGION_START);
        for i in component::bits(supported & !LEGACY_MASK) {
            let g = &table[i as usize];
            if g.align64 {
                compacted = compacted.next_multiple_of(64);
            }
            compacted += u64::from(g.size);
        }
        if compacted > u64::from(u32::MAX) {
            return Err(LayoutError::CompactedTooLarge { size: compacted });
        }
        let user: Vec<ComponentGeometry> = component::bits(parts.xcr0_supported & !LEGACY_MASK)
            .map(|i| table[i as usize])
            .collect();
        let computed_size = user
            .iter()
            .map(ComponentGeometry::end)
            .max()
            .unwrap_or(0)
            .max(EXTENDED_REGION_START);
        let standard_size = parts.standard_size.unwrap_or(computed_size);
        for g in &user {
            if g.offset < EXTENDED_REGION_START {
                return Err(LayoutError::InLegacyRegion {
                    index: g.index,
                    offset: g.offset,
                });
            }
            if g.end() > standard_size {
                return Err(LayoutError::PastEnd {
                    index: g.index,
                    offset: g.offset,
                    size: g.size,
                    standard_size,
                });
            }
        }
        let mpx = Component::MpxBndregs.mask() | Component::MpxBndcsr.mask();
        if supported & mpx != 0 && supported & Component::Apx.mask() != 0 {
            let m = if supported & Component::MpxBndregs.mask() != 0 {
                3
            } else {
                4
            };
            return Err(LayoutError::MpxAndApx {
                mpx: m,
                mpx_offset: table[m as usize].offset,
                apx_offset: table[19].offset,
            });
        }
        for (i, a) in user.iter().enumerate() {
            for b in &user[i + 1..] {
                if a.offset < b.end() && b.offset < a.end() {
                    return Err(LayoutError::Overlap {
                        a: a.index,
                        a_offset: a.offset,
                        a_end: a.end(),
                        b: b.index,
                        b_offset: b.offset,
                        b_end: b.end(),
                    });
                }
            }
        }
        let mxcsr_mask = parts
            .mxcsr_mask
            .unwrap_or_else(|| default_mxcsr_mask(&parts.vendor));
        Ok(Layout {
            name: parts.name,
            vendor: parts.vendor,
            source: parts.source,
            xcr0_supported: parts.xcr0_supported,
            xss_supported: parts.xss_supported,
            standard_size,
            mxcsr_mask,
            table,
        })
    }

    /// The layout's name (a catalog name, a file's `name`, or `host`).
    #[inline]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CPU vendor string, such as `GenuineIntel` or `AuthenticAMD`.
    pub fn vendor(&self) -> &str {
        &self.vendor
    }

    /// Where the numbers came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// User components the CPU supports in XCR0 (CPUID.(0xD,0).EDX:EAX).
    #[inline]
    pub fn xcr0_supported(&self) -> u64 {
        self.xcr0_supported
    }

    /// Supervisor components the CPU supports in IA32_XSS (CPUID.(0xD,1).EDX:ECX).
    #[inline]
    pub fn xss_supported(&self) -> u64 {
        self.xss_supported
    }

    /// Every supported component, user and supervisor.
    #[inline]
    pub fn supported(&self) -> u64 {
        self.xcr0_supported | self.xss_supported
    }

    /// Size of the standard-format area for every supported user component
    /// (CPUID.(0xD,0).ECX).
    #[inline]
    pub fn standard_size(&self) -> u32 {
        self.standard_size
    }

    /// Size of a compacted area holding every supported component (XCR0 and XSS).
    pub fn compacted_size(&self) -> u32 {
        self.compacted_size_for(self.supported())
    }

    /// The MXCSR bits this CPU lets software set (FXSAVE's MXCSR_MASK).
    pub fn mxcsr_mask(&self) -> u32 {
        self.mxcsr_mask
    }

    /// Whether the CPU enumerates `component`.
    #[inline]
    pub fn has(&self, component: Component) -> bool {
        self.supported() & component.mask() != 0
    }

    /// The geometry of component number `index`, if the CPU enumerates it.
    #[inline]
    pub fn geometry(&self, index: u8) -> Option<&ComponentGeometry> {
        let g = self.table.get(index as usize)?;
        (self.supported() & (1 << index) != 0).then_some(g)
    }

    /// Every enumerated component's geometry, in ascending index order,
    /// the legacy x87 and SSE components included.
    pub fn components(&self) -> impl Iterator<Item = &ComponentGeometry> + '_ {
        component::bits(self.supported()).map(move |i| &self.table[i as usize])
    }

    /// Standard-format offset of a user component (`None` for supervisor or
    /// unsupported components).
    pub fn offset(&self, component: Component) -> Option<u32> {
        self.geometry(component.index())
            .filter(|g| !g.supervisor)
            .map(|g| g.offset)
    }

    /// Size of a component, if supported.
    pub fn size(&self, component: Component) -> Option<u32> {
        self.geometry(component.index()).map(|g| g.size)
    }

    /// Offset of component `index` in a compacted area whose XCOMP_BV is
    /// `xcomp_bv` (bit 63 ignored), or `None` if the area does not hold it.
    ///
    /// The rule is the hardware's: the extended region starts at 576 and the
    /// components present follow in ascending index order, each first
    /// rounded up to 64 bytes when its align bit is set.
    pub fn compacted_offset(&self, xcomp_bv: u64, component: Component) -> Option<u32> {
        self.compacted_offset_of(xcomp_bv, component.index())
    }

    /// [`compacted_offset`](Self::compacted_offset) by component number.
    #[inline]
    pub fn compacted_offset_of(&self, xcomp_bv: u64, index: u8) -> Option<u32> {
        let index = index as usize;
        if index >= 64 || xcomp_bv & self.supported() & (1 << index) == 0 {
            return None;
        }
        if index < 2 {
            return Some(self.table[index].offset);
        }
        let below = xcomp_bv & self.supported() & !LEGACY_MASK & ((1u64 << index) - 1);
        let mut offset = EXTENDED_REGION_START;
        for i in component::bits(below) {
            offset = self.place(offset, i as usize) + self.table[i as usize].size;
        }
        Some(self.place(offset, index))
    }

    /// Size of a compacted area whose XCOMP_BV is `xcomp_bv` (bit 63 ignored).
    #[inline]
    pub fn compacted_size_for(&self, xcomp_bv: u64) -> u32 {
        let mut offset = EXTENDED_REGION_START;
        for i in component::bits(xcomp_bv & self.supported() & !LEGACY_MASK & !(1 << 63)) {
            offset = self.place(offset, i as usize) + self.table[i as usize].size;
        }
        offset
    }

    #[inline]
    fn place(&self, offset: u32, index: usize) -> u32 {
        if self.table[index].align64 {
            offset.next_multiple_of(64)
        } else {
            offset
        }
    }

    /// Size of a standard-format area holding the user components in `xcr0`.
    #[inline]
    pub fn standard_size_for(&self, xcr0: u64) -> u32 {
        component::bits(xcr0 & self.xcr0_supported & !LEGACY_MASK)
            .map(|i| self.table[i as usize].end())
            .max()
            .unwrap_or(0)
            .max(EXTENDED_REGION_START)
    }

    /// A copy of this layout under another name.
    pub fn renamed(&self, name: impl Into<String>) -> Layout {
        Layout {
            name: name.into(),
            ..self.clone()
        }
    }

    /// A 64-bit fingerprint of the geometry (not the name or source text):
    /// two layouts with the same fingerprint place every component alike.
    pub fn fingerprint(&self) -> u64 {
        // FNV-1a over the geometry, stable across builds and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |v: u64| {
            for b in v.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(self.xcr0_supported);
        feed(self.xss_supported);
        feed(u64::from(self.standard_size));
        for g in self.components() {
            feed(u64::from(g.index));
            feed(u64::from(g.size));
            feed(u64::from(g.offset));
            feed(u64::from(g.supervisor) | u64::from(g.align64) << 1 | u64::from(g.xfd) << 2);
        }
        h
    }
}

#[cfg(test)]
mod tests;
