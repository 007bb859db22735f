//! The layout engine: one CPU's XSAVE geometry.
//!
//! A [`Layout`] holds, for every state component a CPU enumerates, its size,
//! its offset in the standard (non-compacted) format and its flags, exactly as
//! CPUID leaf 0xD reports them. Compacted offsets are not stored: they depend
//! on which components a buffer holds (its XCOMP_BV) and follow from the
//! hardware rule in [`Layout::compacted_offset`].
//!
//! This module is pure data and parsing, and needs no allocation: a layout
//! comes from a CPUID function ([`Layout::from_cpuid`]). With the `std`
//! feature it also comes from CPUID dumps ([`Layout::from_dump`]), layout
//! files ([`Layout::from_toml`]) and the built-in [`catalog`]; the host's
//! comes from [`crate::host::layout`]. Every constructor validates the
//! geometry.
//!
//! ```
//! use xstate::{ComponentId, Layout, Xfeatures};
//!
//! let zen4 = xstate::layout::catalog::get("amd-zen4").unwrap();
//! let spr = xstate::layout::catalog::get("intel-sapphire-rapids").unwrap();
//! // Same component, different standard offsets: never hard-code one CPU.
//! assert_eq!(zen4.offset(ComponentId::PKRU), Some(2432));
//! assert_eq!(spr.offset(ComponentId::PKRU), Some(2688));
//! // Compacted offsets follow from the components present.
//! assert_eq!(spr.compacted_offset(spr.supported(), ComponentId::OPMASK), Some(832));
//! ```

#[cfg(feature = "std")]
pub mod catalog;
mod cpuid;
#[cfg(feature = "alloc")]
mod diff;
#[cfg(feature = "std")]
pub(crate) mod dump;
#[cfg(feature = "std")]
mod file;
#[cfg(feature = "std")]
mod source;
#[cfg(all(test, feature = "std"))]
mod tests;

#[cfg(feature = "alloc")]
pub(crate) use cpuid::from_subleaves;
#[cfg(feature = "alloc")]
pub use cpuid::CpuidLeaf0xD;
pub use cpuid::{subleaf0, subleaf1, CpuidRegs, XSAVE_FEATURES_DEFAULT};
#[cfg(feature = "alloc")]
pub use diff::{diff, ComponentDiff};
#[cfg(feature = "std")]
pub use dump::{DumpError, DumpFormat};
#[cfg(feature = "std")]
pub use file::{ComponentEntry, FileError, LayoutFile};
#[cfg(feature = "std")]
pub use source::{read_source_file, LayoutSource, SourceError, MAX_SOURCE_FILE};

use arrayvec::ArrayString;

use crate::area::EXTENDED_START;
use crate::component::{ComponentId, Xfeatures};
use crate::xregs::Xreg;

/// Where a component sits in one CPU's XSAVE area, from CPUID leaf 0xD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ComponentGeometry {
    /// The component.
    pub id: ComponentId,
    /// Size in bytes (CPUID.(0xD, i).EAX).
    pub size: u32,
    /// Offset in bytes in the standard format (CPUID.(0xD, i).EBX); 0 for
    /// supervisor components.
    pub offset: u32,
    /// Managed by IA32_XSS (CPUID.(0xD, i).ECX bit 0).
    pub supervisor: bool,
    /// Aligned to 64 bytes in the compacted format (ECX bit 1).
    pub align64: bool,
    /// Supports extended feature disable, IA32_XFD (ECX bit 2).
    pub xfd: bool,
}

impl ComponentGeometry {
    /// End of the component in the standard format (offset + size).
    pub fn end(&self) -> u32 {
        self.offset + self.size
    }

    /// The component with `id` in a layout that does not enumerate it.
    const fn absent(id: ComponentId) -> ComponentGeometry {
        ComponentGeometry {
            id,
            size: 0,
            offset: 0,
            supervisor: false,
            align64: false,
            xfd: false,
        }
    }
}

/// Why a layout could not be built: every message names the components and
/// offsets at fault.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// XCR0 must enumerate x87 and SSE.
    #[error("supported XCR0 {xcr0} lacks x87 or SSE (bits 0 and 1)")]
    MissingLegacy {
        /// The XCR0 bits read.
        xcr0: Xfeatures,
    },
    /// A bit is enumerated both in XCR0 and IA32_XSS.
    #[error("components {0} are enumerated in both XCR0 and IA32_XSS")]
    BothXcr0AndXss(Xfeatures),
    /// Geometry given for x87 or SSE, whose places are fixed.
    #[error("{0} (component {n}) is a legacy component: its place in the legacy region is fixed", n = .0.index())]
    LegacyGeometry(ComponentId),
    /// Geometry for a component that XCR0/XSS does not enumerate.
    #[error("{0} (component {n}) has geometry but is not enumerated in XCR0 or IA32_XSS", n = .0.index())]
    NotEnumerated(ComponentId),
    /// Two geometry entries for one component.
    #[error("{0} (component {n}) is described twice", n = .0.index())]
    Duplicate(ComponentId),
    /// A component of size 0.
    #[error("{0} (component {n}) has size 0", n = .0.index())]
    ZeroSize(ComponentId),
    /// The supervisor flag disagrees with the XCR0/XSS bit.
    #[error("{component} (component {n}) is flagged {flag} but enumerated in {register}", n = .component.index(),
        flag = if *supervisor { "supervisor" } else { "user" }, register = if *supervisor { "XCR0" } else { "IA32_XSS" })]
    SupervisorMismatch {
        /// The component.
        component: ComponentId,
        /// Its supervisor flag.
        supervisor: bool,
    },
    /// An enumerated component without geometry.
    #[error("{0} (component {n}) is enumerated but its size and offset are missing", n = .0.index())]
    MissingGeometry(ComponentId),
    /// A component that ends past [`MAX_AREA_SIZE`] (its offset plus its
    /// size; a supervisor component's offset is 0): no area may hold it.
    #[error("{component} (component {n}) at offset {offset} with size {size} ends past {max} bytes, the most an XSAVE area may have",
        n = .component.index(), max = MAX_AREA_SIZE)]
    EndOverflow {
        /// The component.
        component: ComponentId,
        /// Its offset in bytes.
        offset: u32,
        /// Its size in bytes.
        size: u32,
    },
    /// The compacted area for every supported component would be larger
    /// than [`MAX_AREA_SIZE`].
    #[error("the compacted area for every supported component would be {size} bytes, more than the {max} an XSAVE area may have",
        max = MAX_AREA_SIZE)]
    CompactedTooLarge {
        /// Its size in bytes.
        size: u64,
    },
    /// An enumerated standard size (CPUID.(0xD,0).ECX) smaller than the
    /// legacy region and XSAVE header (576 bytes).
    #[error(
        "the standard size {size} is smaller than the legacy region and XSAVE header (576 bytes)"
    )]
    StandardTooSmall {
        /// The enumerated size in bytes.
        size: u32,
    },
    /// An enumerated standard size (CPUID.(0xD,0).ECX) other than the end
    /// of the last supported user component (or 576 without any), which is
    /// what the CPU computes it as (Intel SDM vol. 1, 13.5).
    #[error("the standard size {size} disagrees with the components, whose standard-format area ends at {computed} bytes")]
    StandardSizeMismatch {
        /// The enumerated size in bytes.
        size: u32,
        /// The end of the last user component (576 at least), in bytes.
        computed: u32,
    },
    /// A supervisor component given a standard-format offset: the standard
    /// format holds no supervisor state, and CPUID.(0xD,i).EBX is 0 for
    /// every supervisor component (Intel SDM vol. 1, 13.2).
    #[error("{component} (component {n}) is a supervisor component, whose standard offset is 0, but has offset {offset}",
        n = .component.index())]
    SupervisorOffset {
        /// The component.
        component: ComponentId,
        /// The offset given, in bytes.
        offset: u32,
    },
    /// An enumerated standard size larger than [`MAX_AREA_SIZE`].
    #[error("the standard size {size} is more than the {max} bytes an XSAVE area may have", max = MAX_AREA_SIZE)]
    StandardTooLarge {
        /// The enumerated size in bytes.
        size: u32,
    },
    /// A known component whose size is not the one every CPU gives it
    /// ([`ComponentId::fixed_size`]: every known component but arch LBR).
    #[error("{component} (component {n}) has size {size}, but its architectural size is {architectural}",
        n = .component.index())]
    NotArchitecturalSize {
        /// The component.
        component: ComponentId,
        /// The size given, in bytes.
        size: u32,
        /// Its architectural size, in bytes.
        architectural: u32,
    },
    /// A known component flagged as supporting extended feature disable
    /// (CPUID.(0xD,i).ECX bit 2) that the architecture never lets XFD
    /// apply to: of the known components only AMX TILEDATA
    /// ([`ComponentId::xfd_capable`]).
    #[error("{0} (component {n}) is flagged XFD-capable (CPUID.(EAX=0xd,ECX={n}):ECX[2]), but extended feature disable applies to no known component other than AMX TILEDATA", n = .0.index())]
    XfdNotCapable(ComponentId),
    /// Bit 63 set in the supported XCR0 or IA32_XSS: it is reserved in both
    /// (Intel SDM vol. 1, 13.3; in XCOMP_BV it is the compacted-format flag).
    #[error("supported {register} {value} has bit 63 set, which is reserved")]
    ReservedBit63 {
        /// XCR0 or IA32_XSS.
        register: Xreg,
        /// The supported bits read.
        value: Xfeatures,
    },
    /// A known supervisor component enumerated in XCR0: XSETBV can never
    /// set its bit, only IA32_XSS can.
    #[error("{0} (component {n}) is a supervisor component: IA32_XSS enumerates it, never XCR0", n = .0.index())]
    SupervisorInXcr0(ComponentId),
    /// A known user component enumerated in IA32_XSS: only XCR0 can enable it.
    #[error("{0} (component {n}) is a user component: XCR0 enumerates it, never IA32_XSS", n = .0.index())]
    UserInXss(ComponentId),
    /// An MXCSR mask without every bit of [`MXCSR_MASK_MIN`], which every
    /// CPU lets software set.
    #[error("MXCSR mask {mask:#x} lacks bits {missing:#x} of {min:#x}, the architectural minimum every CPU lets software set",
        missing = MXCSR_MASK_MIN & !*mask, min = MXCSR_MASK_MIN)]
    MxcsrMask {
        /// The mask given.
        mask: u32,
    },
    /// An MXCSR mask with bits no CPU implements (outside
    /// [`MXCSR_MASK_MAX`]): an area written for it could hold MXCSR values
    /// every CPU's XRSTOR faults on.
    #[error("MXCSR mask {mask:#x} has bits {extra:#x} outside {max:#x}, the bits any CPU implements (bit 17 is AMD's MM)",
        extra = *mask & !MXCSR_MASK_MAX, max = MXCSR_MASK_MAX)]
    MxcsrMaskReserved {
        /// The mask given.
        mask: u32,
    },
    /// A user component placed inside the legacy region or header.
    #[error("{component} (component {n}) at offset {offset} lies inside the legacy region and header (0..576)", n = .component.index())]
    InLegacyRegion {
        /// The component.
        component: ComponentId,
        /// Its standard offset in bytes.
        offset: u32,
    },
    /// A component running past the enumerated size.
    #[error("{component} (component {n}) at {offset}..{end} runs past the enumerated size {standard_size}",
        n = .component.index(), end = *offset as u64 + *size as u64)]
    PastEnd {
        /// The component.
        component: ComponentId,
        /// Its offset in bytes.
        offset: u32,
        /// Its size in bytes.
        size: u32,
        /// The enumerated standard size in bytes.
        standard_size: u32,
    },
    /// Two user components overlapping in the standard format.
    #[error("{a} (component {an}) at {a_offset}..{a_end} overlaps {b} (component {bn}) at {b_offset}..{b_end}",
        an = .a.index(), bn = .b.index())]
    Overlap {
        /// First component.
        a: ComponentId,
        /// Its offset in bytes.
        a_offset: u32,
        /// Its end.
        a_end: u32,
        /// Second component.
        b: ComponentId,
        /// Its offset in bytes.
        b_offset: u32,
        /// Its end.
        b_end: u32,
    },
    /// MPX and APX are both enumerated: they share offset 960 and are
    /// mutually exclusive.
    #[error("{mpx} (component {n}) at offset {mpx_offset} and APX (component 19) at offset {apx_offset} are both enumerated; MPX and APX are mutually exclusive", n = .mpx.index())]
    MpxAndApx {
        /// The MPX component enumerated.
        mpx: ComponentId,
        /// Its offset in bytes.
        mpx_offset: u32,
        /// APX's offset in bytes.
        apx_offset: u32,
    },
    /// No CPUID leaf 0xD (sub-leaf 0) to build a layout from.
    #[error("no CPUID leaf 0xD sub-leaf 0 found")]
    NoLeaf0xD,
    /// A CPUID whose leaf 0 says leaf 0xD exists (its maximum basic leaf,
    /// EAX, is 0xD or more) or, without leaf 0, whose leaf 1 sets XSAVE,
    /// and whose leaf 1 does not clear XSAVE, but without leaf 0xD
    /// sub-leaf 0: a dump cut short, not a CPU without XSAVE.
    #[error("no CPUID leaf 0xD sub-leaf 0, though {}: the CPUID is incomplete (a dump cut short?), not that of a CPU without XSAVE",
        Leaf0xDWitness(*max_leaf))]
    MissingLeaf0xD {
        /// Leaf 0 EAX, the maximum basic leaf; `None` without leaf 0.
        max_leaf: Option<u32>,
    },
}

/// What says that a CPUID should have leaf 0xD, for
/// [`LayoutError::MissingLeaf0xD`].
struct Leaf0xDWitness(Option<u32>);

impl core::fmt::Display for Leaf0xDWitness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(max) => write!(
                f,
                "leaf 0 says the CPU has basic leaves up to {max:#x} and leaf 1 does not clear XSAVE"
            ),
            None => f.write_str("leaf 1 sets XSAVE"),
        }
    }
}

/// The most bytes an area a layout describes may have, standard or
/// compacted: 1 MiB. The largest real areas are about 11 KiB (Sapphire
/// Rapids with AMX: 11008 bytes standard, 11776 compacted with every
/// supervisor component; Linux's `KVM_CAP_XSAVE2` and the signal frame
/// follow the same size), so the cap leaves room for tens of times more
/// state while keeping what a hostile layout file or dump can make xstate
/// allocate or write (a buffer, an area file, a stream) bounded.
pub const MAX_AREA_SIZE: u32 = 1 << 20;

/// The MXCSR bits every CPU lets software set: FXSAVE's MXCSR_MASK is at
/// least this (0xFFBF: all but DAZ, bit 6, below bit 16; a zero MXCSR_MASK
/// field means exactly this. Intel SDM vol. 1, 11.6.6).
pub const MXCSR_MASK_MIN: u32 = 0xFFBF;

/// The MXCSR bits any CPU implements: 0..15, and 17 (AMD's MM, the
/// misaligned-exception mask); bit 16 and 18..31 are reserved everywhere
/// (Intel SDM vol. 1, 10.2.3; AMD APM vol. 1, 4.2.2).
pub const MXCSR_MASK_MAX: u32 = 0x2FFFF;

/// The MXCSR mask a saved MXCSR_MASK value stands for: 0 (what CPUs before
/// the Pentium 4 save) means [`MXCSR_MASK_MIN`], any other value itself
/// (Intel SDM vol. 1, 11.6.6).
#[inline]
pub const fn mxcsr_mask_from_saved(saved: u32) -> u32 {
    if saved == 0 {
        MXCSR_MASK_MIN
    } else {
        saved
    }
}

/// Short text held inline, without allocation: a layout's name, vendor and
/// source. Longer text is cut at a character boundary.
pub type Text<const N: usize> = ArrayString<N>;

/// `s` as inline text of at most `N` bytes.
pub(crate) fn text<const N: usize>(s: &str) -> Text<N> {
    // Names are printed: a control character (an escape sequence, a
    // newline) from a hostile file becomes U+FFFD, never reaching a
    // terminal.
    let mut out = Text::new();
    for c in s.chars() {
        let c = if c.is_control() {
            char::REPLACEMENT_CHARACTER
        } else {
            c
        };
        if out.try_push(c).is_err() {
            break;
        }
    }
    out
}

/// One CPU's XSAVE geometry. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    name: Text<64>,
    vendor: Text<16>,
    source: Text<256>,
    xcr0_supported: Xfeatures,
    xss_supported: Xfeatures,
    standard_size: u32,
    mxcsr_mask: u32,
    xsave_features: u32,
    /// CPUID.1:ECX.XSAVE: false for a legacy-only CPU.
    xsave: bool,
    /// Indexed by component number; `size == 0` means not enumerated.
    table: [ComponentGeometry; 64],
    /// [`Layout::fingerprint`], computed once when the layout is built.
    fingerprint: u64,
}

/// The walk of [`Layout::extents`].
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub(crate) struct Extents<'a> {
    layout: &'a Layout,
    compacted: bool,
    wanted: Xfeatures,
    held: Xfeatures,
    /// Components still to pass: the wanted ones, and in the compacted
    /// format the held ones below them, whose sizes move the offset.
    todo: Xfeatures,
    /// The compacted format's next free offset.
    offset: u32,
    /// The buffer's length in bytes: a component ending past it is
    /// [`AccessError::BufferTooSmall`](crate::AccessError::BufferTooSmall).
    len: usize,
}

#[cfg(feature = "alloc")]
impl Iterator for Extents<'_> {
    type Item = (ComponentId, Result<(usize, usize), crate::AccessError>);

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let layout = self.layout;
        let supported = layout.supported();
        loop {
            // Held components past the last wanted one need no walk.
            if !self.todo.intersects(self.wanted) {
                return None;
            }
            let c = self.todo.first()?;
            self.todo = self.todo.without(c);
            let g = &layout.table[c.index() as usize];
            let placed = if !self.compacted {
                (!g.supervisor).then_some(g.offset)
            } else if self.held.contains(c) {
                let start = layout.place(self.offset, c);
                self.offset = start + g.size;
                Some(start)
            } else {
                None
            };
            if !self.wanted.contains(c) {
                continue;
            }
            return Some((
                c,
                match placed {
                    _ if !supported.contains(c) => Err(crate::AccessError::NoComponent {
                        component: c,
                        supported,
                    }),
                    Some(start) if start as usize + g.size as usize > self.len => {
                        Err(crate::AccessError::BufferTooSmall {
                            component: c,
                            start: start as usize,
                            end: start as usize + g.size as usize,
                            len: self.len,
                        })
                    }
                    Some(start) => Ok((start as usize, g.size as usize)),
                    None => Err(crate::AccessError::NotInArea(c)),
                },
            ));
        }
    }
}

/// MXCSR_MASK when a layout does not say: Intel's 0xFFFF, or AMD's 0x2FFFF
/// (bit 17, misaligned-SSE mask, writable; measured on this project's AMD
/// host).
pub fn default_mxcsr_mask(vendor: &str) -> u32 {
    if vendor == "AuthenticAMD" {
        0x2FFFF
    } else {
        0xFFFF
    }
}

/// What a layout is built from, before validation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayoutParts<'a> {
    pub(crate) name: &'a str,
    pub(crate) vendor: &'a str,
    pub(crate) source: &'a str,
    pub(crate) xcr0_supported: Xfeatures,
    pub(crate) xss_supported: Xfeatures,
    pub(crate) standard_size: Option<u32>,
    pub(crate) mxcsr_mask: Option<u32>,
    /// CPUID.(0xD,1).EAX, if known.
    pub(crate) xsave_features: Option<u32>,
    /// Extended components (2..=63).
    pub(crate) components: &'a [ComponentGeometry],
}

impl Layout {
    /// Builds and validates a layout from its parts.
    pub(crate) fn from_parts(parts: LayoutParts<'_>) -> Result<Layout, LayoutError> {
        let mut table: [ComponentGeometry; 64] = core::array::from_fn(|i| {
            ComponentGeometry::absent(ComponentId::new(i as u8).expect("0..64"))
        });
        table[0].size = crate::component::COMPONENTS[0].size;
        table[1] = ComponentGeometry {
            size: crate::component::COMPONENTS[1].size,
            offset: crate::area::legacy::XMM,
            ..table[1]
        };
        let (xcr0, xss) = (parts.xcr0_supported, parts.xss_supported);
        for (register, value) in [(Xreg::Xcr0, xcr0), (Xreg::Xss, xss)] {
            if value.bits() & 1 << 63 != 0 {
                return Err(LayoutError::ReservedBit63 { register, value });
            }
        }
        if !xcr0.contains_all(Xfeatures::LEGACY) {
            return Err(LayoutError::MissingLegacy { xcr0 });
        }
        if xcr0.intersects(xss) {
            return Err(LayoutError::BothXcr0AndXss(xcr0 & xss));
        }
        let supervisor = |id: ComponentId| id.info().map(|i| i.supervisor);
        if let Some(id) = xcr0.iter().find(|&id| supervisor(id) == Some(true)) {
            return Err(LayoutError::SupervisorInXcr0(id));
        }
        if let Some(id) = xss.iter().find(|&id| supervisor(id) == Some(false)) {
            return Err(LayoutError::UserInXss(id));
        }
        match parts.standard_size {
            Some(size) if (size as usize) < EXTENDED_START => {
                return Err(LayoutError::StandardTooSmall { size });
            }
            Some(size) if size > MAX_AREA_SIZE => {
                return Err(LayoutError::StandardTooLarge { size });
            }
            _ => {}
        }
        let supported = xcr0 | xss;
        for g in parts.components {
            let id = g.id;
            if id.is_legacy() {
                return Err(LayoutError::LegacyGeometry(id));
            }
            if !supported.contains(id) {
                return Err(LayoutError::NotEnumerated(id));
            }
            if table[id.index() as usize].size != 0 {
                return Err(LayoutError::Duplicate(id));
            }
            if g.size == 0 {
                return Err(LayoutError::ZeroSize(id));
            }
            if u64::from(g.offset) + u64::from(g.size) > u64::from(MAX_AREA_SIZE) {
                return Err(LayoutError::EndOverflow {
                    component: id,
                    offset: g.offset,
                    size: g.size,
                });
            }
            if g.supervisor != xss.contains(id) {
                return Err(LayoutError::SupervisorMismatch {
                    component: id,
                    supervisor: g.supervisor,
                });
            }
            if g.supervisor && g.offset != 0 {
                return Err(LayoutError::SupervisorOffset {
                    component: id,
                    offset: g.offset,
                });
            }
            match id.fixed_size() {
                Some(architectural) if g.size != architectural => {
                    return Err(LayoutError::NotArchitecturalSize {
                        component: id,
                        size: g.size,
                        architectural,
                    });
                }
                _ => {}
            }
            if g.xfd && !id.xfd_capable() {
                return Err(LayoutError::XfdNotCapable(id));
            }
            table[id.index() as usize] = *g;
        }
        for id in supported.extended() {
            if table[id.index() as usize].size == 0 {
                return Err(LayoutError::MissingGeometry(id));
            }
        }
        // Every compacted offset and size is a partial sum of this one:
        // checking it once keeps all later u32 arithmetic in range, and
        // every area within MAX_AREA_SIZE.
        let mut compacted = EXTENDED_START as u64;
        for id in supported.extended() {
            let g = &table[id.index() as usize];
            if g.align64 {
                compacted = compacted.next_multiple_of(64);
            }
            compacted += u64::from(g.size);
        }
        if compacted > u64::from(MAX_AREA_SIZE) {
            return Err(LayoutError::CompactedTooLarge { size: compacted });
        }
        let user = xcr0.extended();
        let computed_size = user
            .iter()
            .map(|id| table[id.index() as usize].end())
            .max()
            .unwrap_or(0)
            .max(EXTENDED_START as u32);
        let standard_size = parts.standard_size.unwrap_or(computed_size);
        for id in user {
            let g = &table[id.index() as usize];
            if (g.offset as usize) < EXTENDED_START {
                return Err(LayoutError::InLegacyRegion {
                    component: id,
                    offset: g.offset,
                });
            }
            if g.end() > standard_size {
                return Err(LayoutError::PastEnd {
                    component: id,
                    offset: g.offset,
                    size: g.size,
                    standard_size,
                });
            }
        }
        let mpx = ComponentId::MPX_BNDREGS.bit() | ComponentId::MPX_BNDCSR.bit();
        if supported.intersects(mpx) && supported.contains(ComponentId::APX) {
            let m = (supported & mpx).first().expect("an MPX component");
            return Err(LayoutError::MpxAndApx {
                mpx: m,
                mpx_offset: table[m.index() as usize].offset,
                apx_offset: table[ComponentId::APX.index() as usize].offset,
            });
        }
        for a in user {
            for b in user - a.bit() {
                let (ga, gb) = (&table[a.index() as usize], &table[b.index() as usize]);
                if a < b && ga.offset < gb.end() && gb.offset < ga.end() {
                    return Err(LayoutError::Overlap {
                        a,
                        a_offset: ga.offset,
                        a_end: ga.end(),
                        b,
                        b_offset: gb.offset,
                        b_end: gb.end(),
                    });
                }
            }
        }
        if standard_size != computed_size {
            return Err(LayoutError::StandardSizeMismatch {
                size: standard_size,
                computed: computed_size,
            });
        }
        let mxcsr_mask = parts
            .mxcsr_mask
            .map_or_else(|| default_mxcsr_mask(parts.vendor), mxcsr_mask_from_saved);
        if mxcsr_mask & MXCSR_MASK_MIN != MXCSR_MASK_MIN {
            return Err(LayoutError::MxcsrMask { mask: mxcsr_mask });
        }
        if mxcsr_mask & !MXCSR_MASK_MAX != 0 {
            return Err(LayoutError::MxcsrMaskReserved { mask: mxcsr_mask });
        }
        let xfd = supported.iter().any(|id| table[id.index() as usize].xfd);
        let xsave_features = parts
            .xsave_features
            .unwrap_or(XSAVE_FEATURES_DEFAULT | if xfd { cpuid::XFD } else { 0 });
        Ok(Layout {
            name: text(parts.name),
            vendor: text(parts.vendor),
            source: text(parts.source),
            xcr0_supported: xcr0,
            xss_supported: xss,
            standard_size,
            mxcsr_mask,
            xsave_features,
            xsave: true,
            table,
            fingerprint: 0,
        }
        .with_fingerprint())
    }

    /// This layout with its fingerprint computed from its geometry.
    fn with_fingerprint(mut self) -> Layout {
        self.fingerprint = self.compute_fingerprint();
        self
    }

    /// The layout of a CPU without the XSAVE feature set (CPUID.1:ECX.XSAVE
    /// clear, or no CPUID leaf 0xD): a legacy-only CPU, whose x87 and SSE
    /// state is the 512-byte FXSAVE image. It supports XCR0 0x3 (x87 and
    /// SSE) and nothing else; [`Layout::standard_size`] is 576 (the legacy
    /// region and an XSAVE header, the smallest area the views open), and
    /// [`Layout::xsave_features`] is 0.
    ///
    /// ```
    /// let old = xstate::Layout::legacy_only("core2", "GenuineIntel", "a pre-XSAVE CPU");
    /// assert!(!old.has_xsave());
    /// assert_eq!(old.xcr0_supported(), xstate::Xfeatures::LEGACY);
    /// assert_eq!(old.standard_size(), 576);
    /// ```
    pub fn legacy_only(name: &str, vendor: &str, source: &str) -> Layout {
        let mut layout = Layout::from_parts(LayoutParts {
            name,
            vendor,
            source,
            xcr0_supported: Xfeatures::LEGACY,
            xss_supported: Xfeatures::EMPTY,
            standard_size: None,
            mxcsr_mask: None,
            xsave_features: Some(0),
            components: &[],
        })
        .expect("x87 and SSE alone are a valid geometry");
        layout.xsave = false;
        layout.with_fingerprint()
    }

    /// Whether the CPU has the XSAVE feature set (CPUID.1:ECX.XSAVE); false
    /// for a [`Layout::legacy_only`] one.
    #[inline]
    pub fn has_xsave(&self) -> bool {
        self.xsave
    }

    /// Every XSETBV rule the supported XCR0 breaks
    /// ([`crate::cpuid::xcr0::violations`]). Real CPUs never enumerate
    /// such a set (TILECFG without TILEDATA, part of AVX-512, AVX-512
    /// without AVX), but a hand-written layout file might: no XCR0 that
    /// uses the bits at fault can ever be set, so a guest must never be
    /// offered them. The `xstate` CLI prints these as warnings when it
    /// loads a layout.
    ///
    /// ```
    /// let spr = xstate::layout::catalog::get("intel-sapphire-rapids").unwrap();
    /// assert_eq!(spr.xcr0_violations().count(), 0);
    /// ```
    pub fn xcr0_violations(&self) -> impl Iterator<Item = crate::cpuid::xcr0::Violation> + Clone {
        crate::cpuid::xcr0::violations(self.xcr0_supported)
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
    pub fn xcr0_supported(&self) -> Xfeatures {
        self.xcr0_supported
    }

    /// Supervisor components the CPU supports in IA32_XSS (CPUID.(0xD,1).EDX:ECX).
    #[inline]
    pub fn xss_supported(&self) -> Xfeatures {
        self.xss_supported
    }

    /// Every supported component, user and supervisor.
    #[inline]
    pub fn supported(&self) -> Xfeatures {
        self.xcr0_supported | self.xss_supported
    }

    /// Size in bytes of the standard-format area for every supported user
    /// component (CPUID.(0xD,0).ECX).
    #[inline]
    pub fn standard_size(&self) -> u32 {
        self.standard_size
    }

    /// Size in bytes of a compacted area holding every supported component
    /// (XCR0 and XSS).
    pub fn compacted_size(&self) -> u32 {
        self.compacted_size_for(self.supported())
    }

    /// The MXCSR bits this CPU lets software set (FXSAVE's MXCSR_MASK).
    pub fn mxcsr_mask(&self) -> u32 {
        self.mxcsr_mask
    }

    /// This layout with the MXCSR mask `mask` (the host's, measured with
    /// FXSAVE: [`crate::host::layout`] does that); 0, as a saved
    /// MXCSR_MASK, means [`MXCSR_MASK_MIN`].
    pub fn with_mxcsr_mask(mut self, mask: u32) -> Layout {
        self.mxcsr_mask = mxcsr_mask_from_saved(mask);
        self
    }

    /// CPUID.(0xD,1).EAX: bit 0 XSAVEOPT, 1 XSAVEC, 2 XGETBV with ECX = 1,
    /// 3 XSAVES/XRSTORS, 4 XFD.
    pub fn xsave_features(&self) -> u32 {
        self.xsave_features
    }

    /// Whether the CPU enumerates `component`.
    #[inline]
    pub fn has(&self, component: ComponentId) -> bool {
        self.supported().contains(component)
    }

    /// The geometry of `component`, if the CPU enumerates it.
    #[inline]
    pub fn geometry(&self, component: ComponentId) -> Option<&ComponentGeometry> {
        self.has(component)
            .then(|| &self.table[component.index() as usize])
    }

    /// The standard-format offset in bytes of `component` as the layout's
    /// table holds it, 0 for x87 and SSE (their offsets are legacy-region
    /// offsets) and for components the layout lacks: for the views' fast
    /// paths, which call it only for components an opened area's XSTATE_BV
    /// names (so within the layout's XCR0).
    #[inline(always)]
    pub(crate) fn standard_offset_of_live(&self, component: ComponentId) -> u32 {
        if component.is_legacy() {
            0
        } else {
            self.table[component.index() as usize].offset
        }
    }

    /// An ascending walk over the extended components of `wanted` in an
    /// area of this layout in the format `xcomp_bv` names, in a buffer of
    /// `len` bytes: each with its offset and size in bytes, or the reason
    /// the area has no place for it
    /// ([`AccessError::NoComponent`](crate::AccessError::NoComponent),
    /// [`AccessError::NotInArea`](crate::AccessError::NotInArea) for one
    /// outside a compacted area's XCOMP_BV or a supervisor component in the
    /// standard format,
    /// [`AccessError::BufferTooSmall`](crate::AccessError::BufferTooSmall)
    /// for one ending past `len`). Compacted offsets accumulate as the walk goes
    /// (Intel SDM vol. 1, 13.4.3), so the walk is O(n) in the components
    /// held.
    #[cfg(feature = "alloc")]
    #[inline(always)]
    pub(crate) fn extents(
        &self,
        xcomp_bv: crate::component::XcompBv,
        wanted: Xfeatures,
        len: usize,
    ) -> Extents<'_> {
        let compacted = xcomp_bv.is_compacted();
        let wanted = wanted.extended();
        let held = if compacted {
            xcomp_bv.components().extended() & self.supported()
        } else {
            Xfeatures::EMPTY
        };
        Extents {
            layout: self,
            compacted,
            wanted,
            held,
            todo: wanted | held,
            offset: EXTENDED_START as u32,
            len,
        }
    }

    /// Every enumerated component's geometry, in ascending order, the
    /// legacy x87 and SSE components included (their sizes as CPUID
    /// reports them, 160 and 256, at offsets 0 and 160).
    pub fn components(&self) -> impl Iterator<Item = &ComponentGeometry> + '_ {
        self.supported()
            .iter()
            .map(move |id| &self.table[id.index() as usize])
    }

    /// Standard-format offset in bytes of a user component (`None` for
    /// supervisor or unsupported components).
    pub fn offset(&self, component: ComponentId) -> Option<u32> {
        self.geometry(component)
            .filter(|g| !g.supervisor)
            .map(|g| g.offset)
    }

    /// Size in bytes of a component, if supported.
    pub fn size(&self, component: ComponentId) -> Option<u32> {
        self.geometry(component).map(|g| g.size)
    }

    /// Offset in bytes of `component` in a compacted area holding `held`
    /// (XCOMP_BV's components), or `None` if the area does not hold it.
    ///
    /// The rule is the hardware's (Intel SDM vol. 1, 13.4.3): the extended
    /// region starts at 576 and the components present follow in ascending
    /// order, each first rounded up to 64 bytes when its align bit is set.
    #[inline]
    pub fn compacted_offset(&self, held: Xfeatures, component: ComponentId) -> Option<u32> {
        let held = held & self.supported();
        if !held.contains(component) {
            return None;
        }
        if component.is_legacy() {
            return Some(self.table[component.index() as usize].offset);
        }
        let mut offset = EXTENDED_START as u32;
        for id in held.extended().below(component) {
            offset = self.place(offset, id) + self.table[id.index() as usize].size;
        }
        Some(self.place(offset, component))
    }

    /// Size in bytes of a compacted area holding `held` (XCOMP_BV's
    /// components).
    #[inline]
    pub fn compacted_size_for(&self, held: Xfeatures) -> u32 {
        let mut offset = EXTENDED_START as u32;
        for id in (held & self.supported()).extended() {
            offset = self.place(offset, id) + self.table[id.index() as usize].size;
        }
        offset
    }

    #[inline]
    fn place(&self, offset: u32, id: ComponentId) -> u32 {
        if self.table[id.index() as usize].align64 {
            offset.next_multiple_of(64)
        } else {
            offset
        }
    }

    /// Size in bytes of a standard-format area holding the user components
    /// in `xcr0`.
    #[inline]
    pub fn standard_size_for(&self, xcr0: Xfeatures) -> u32 {
        // Every user component: the standard size, which a layout is built
        // only where it equals their end (no walk on the hot paths that ask
        // for the layout's own XCR0).
        if xcr0.contains_all(self.xcr0_supported) {
            return self.standard_size;
        }
        (xcr0 & self.xcr0_supported)
            .extended()
            .iter()
            .map(|id| self.table[id.index() as usize].end())
            .max()
            .unwrap_or(0)
            .max(EXTENDED_START as u32)
    }

    /// A copy of this layout under another name.
    pub fn renamed(&self, name: &str) -> Layout {
        Layout {
            name: text(name),
            ..self.clone()
        }
    }

    /// This layout with another [`source`](Self::source) text.
    #[cfg(any(feature = "std", all(feature = "kvm", target_arch = "x86_64")))]
    pub(crate) fn with_source(self, source: &str) -> Layout {
        Layout {
            source: text(source),
            ..self
        }
    }

    /// A 64-bit fingerprint of the geometry (not the name or source text):
    /// two layouts with the same fingerprint place every component alike.
    /// Computed once, when the layout is built.
    #[inline]
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    fn compute_fingerprint(&self) -> u64 {
        // FNV-1a over the geometry, stable across builds and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |v: u64| {
            for b in v.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(self.xcr0_supported.bits());
        feed(self.xss_supported.bits());
        feed(u64::from(self.standard_size));
        if !self.xsave {
            // Fed only when false, so that the fingerprints of XSAVE
            // layouts stay what they were before the flag existed.
            feed(u64::from(u32::MAX));
        }
        for g in self.components() {
            feed(u64::from(g.id.index()));
            feed(u64::from(g.size));
            feed(u64::from(g.offset));
            feed(u64::from(g.supervisor) | u64::from(g.align64) << 1 | u64::from(g.xfd) << 2);
        }
        h
    }
}
