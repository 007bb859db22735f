//! XSAVE state components: their numbers, names and architectural facts.
//!
//! A state component is one bit of XCR0 or IA32_XSS. This module knows the
//! components the architecture defines (0..=19, x87 to APX); their sizes and
//! offsets on a particular CPU come from its [`Layout`](crate::Layout), never
//! from here. Components numbered above 19 that a CPU enumerates are kept by
//! the layout under their number, with [`Component::name`] falling back to
//! `"component N"`.
//!
//! ```
//! use xstate::Component;
//!
//! assert_eq!(Component::Apx.index(), 19);
//! assert_eq!(Component::from_index(9), Some(Component::Pkru));
//! assert_eq!(Component::Pkru.name(), "PKRU");
//! ```

/// The number of state components the architecture defines (0..=19).
pub const KNOWN_COMPONENTS: usize = 20;

/// Components 0 and 1 live in the 512-byte legacy (FXSAVE) region.
pub const LEGACY_MASK: u64 = 0b11;

/// Size of the legacy region plus the XSAVE header: where the extended region starts.
pub const EXTENDED_REGION_START: u32 = 576;

/// A state component defined by the architecture.
///
/// The discriminant is the component's bit number in XCR0 / IA32_XSS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Component {
    /// x87 FPU state (legacy region).
    X87 = 0,
    /// SSE state: XMM0-15 and MXCSR (legacy region).
    Sse = 1,
    /// AVX: the upper 128 bits of YMM0-15 (YMM_Hi128).
    Avx = 2,
    /// MPX bound registers BND0-3.
    MpxBndregs = 3,
    /// MPX BNDCFGU and BNDSTATUS.
    MpxBndcsr = 4,
    /// AVX-512 opmask registers k0-k7.
    Opmask = 5,
    /// AVX-512: the upper 256 bits of ZMM0-15.
    ZmmHi256 = 6,
    /// AVX-512: ZMM16-31, all 512 bits.
    Hi16Zmm = 7,
    /// Processor trace (supervisor).
    Pt = 8,
    /// Protection keys for user pages.
    Pkru = 9,
    /// PASID (supervisor).
    Pasid = 10,
    /// CET user state (supervisor-managed).
    CetU = 11,
    /// CET supervisor state.
    CetS = 12,
    /// Hardware duty cycling (supervisor).
    Hdc = 13,
    /// User interrupts (supervisor-managed).
    Uintr = 14,
    /// Architectural LBRs (supervisor).
    Lbr = 15,
    /// Hardware P-states (supervisor).
    Hwp = 16,
    /// AMX tile configuration.
    TileCfg = 17,
    /// AMX tile data TMM0-7.
    TileData = 18,
    /// APX extended general purpose registers r16-r31.
    Apx = 19,
}

/// What the architecture says about one component, independent of any CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentInfo {
    /// The component.
    pub component: Component,
    /// Display name, as in the SDM and the CLI's tables.
    pub name: &'static str,
    /// Architectural size in bytes (a CPU's CPUID is authoritative).
    pub size: u32,
    /// Managed through IA32_XSS (supervisor) rather than XCR0.
    pub supervisor: bool,
    /// Bytes that hold architectural state, from the component's start;
    /// the rest of `size` is reserved and kept zero (PKRU: 4 of 8).
    pub used: u32,
}

const fn info(
    component: Component,
    name: &'static str,
    size: u32,
    supervisor: bool,
) -> ComponentInfo {
    ComponentInfo {
        component,
        name,
        size,
        supervisor,
        used: size,
    }
}

/// The architectural component table, indexed by component number.
pub const COMPONENTS: [ComponentInfo; KNOWN_COMPONENTS] = [
    info(Component::X87, "x87", 160, false),
    info(Component::Sse, "SSE", 256, false),
    info(Component::Avx, "AVX", 256, false),
    info(Component::MpxBndregs, "MPX BNDREGS", 64, false),
    info(Component::MpxBndcsr, "MPX BNDCSR", 64, false),
    info(Component::Opmask, "AVX-512 opmask", 64, false),
    info(Component::ZmmHi256, "AVX-512 ZMM_Hi256", 512, false),
    info(Component::Hi16Zmm, "AVX-512 Hi16_ZMM", 1024, false),
    info(Component::Pt, "PT", 128, true),
    // PKRU is 32 bits; bytes 4..8 are reserved (KVM returns them as 0).
    ComponentInfo {
        used: 4,
        ..info(Component::Pkru, "PKRU", 8, false)
    },
    info(Component::Pasid, "PASID", 8, true),
    info(Component::CetU, "CET_U", 16, true),
    info(Component::CetS, "CET_S", 24, true),
    info(Component::Hdc, "HDC", 8, true),
    info(Component::Uintr, "UINTR", 48, true),
    info(Component::Lbr, "LBR", 808, true),
    info(Component::Hwp, "HWP", 8, true),
    info(Component::TileCfg, "AMX TILECFG", 64, false),
    info(Component::TileData, "AMX TILEDATA", 8192, false),
    info(Component::Apx, "APX", 128, false),
];

impl Component {
    /// Every architecturally defined component, in ascending order.
    pub const ALL: [Component; KNOWN_COMPONENTS] = {
        let mut all = [Component::X87; KNOWN_COMPONENTS];
        let mut i = 0;
        while i < KNOWN_COMPONENTS {
            all[i] = COMPONENTS[i].component;
            i += 1;
        }
        all
    };

    /// The component with bit number `index`, if the architecture defines one.
    #[inline]
    pub const fn from_index(index: u8) -> Option<Component> {
        if (index as usize) < KNOWN_COMPONENTS {
            Some(COMPONENTS[index as usize].component)
        } else {
            None
        }
    }

    /// The component's bit number in XCR0 / IA32_XSS.
    #[inline]
    pub const fn index(self) -> u8 {
        self as u8
    }

    /// The component's bit in XCR0 / IA32_XSS / XSTATE_BV.
    #[inline]
    pub const fn mask(self) -> u64 {
        1 << self as u8
    }

    /// Architectural facts about the component.
    pub const fn info(self) -> &'static ComponentInfo {
        &COMPONENTS[self as usize]
    }

    /// The component's display name.
    pub const fn name(self) -> &'static str {
        self.info().name
    }
}

/// The reserved bytes of component `index` (offsets within it), which
/// canonical state keeps zero: empty for all but PKRU (4..8).
///
/// ```
/// assert_eq!(xstate::component::reserved_bytes(9), 4..8);
/// assert!(xstate::component::reserved_bytes(2).is_empty());
/// ```
#[inline]
pub fn reserved_bytes(index: u8) -> core::ops::Range<usize> {
    match Component::from_index(index) {
        Some(c) if c.info().used < c.info().size => c.info().used as usize..c.info().size as usize,
        _ => 0..0,
    }
}

/// The display name of component number `index`, known or not.
///
/// ```
/// assert_eq!(xstate::component::name_of(18), "AMX TILEDATA");
/// assert_eq!(xstate::component::name_of(23), "component 23");
/// ```
pub fn name_of(index: u8) -> std::borrow::Cow<'static, str> {
    match Component::from_index(index) {
        Some(c) => c.name().into(),
        None => format!("component {index}").into(),
    }
}

/// The XCR0 / XSTATE_BV bit of component number `index`, or 0 for numbers
/// past 63 (which no register can hold).
///
/// ```
/// assert_eq!(xstate::component::bit(9), 0x200);
/// assert_eq!(xstate::component::bit(64), 0);
/// ```
#[inline]
pub const fn bit(index: u8) -> u64 {
    if index < 64 {
        1 << index
    } else {
        0
    }
}

/// Iterates the bit numbers set in `mask`, lowest first.
///
/// ```
/// let bits: Vec<u8> = xstate::component::bits(0b1010_0001).collect();
/// assert_eq!(bits, [0, 5, 7]);
/// ```
#[inline]
pub fn bits(mut mask: u64) -> impl Iterator<Item = u8> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let bit = mask.trailing_zeros() as u8;
        mask &= mask - 1;
        Some(bit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_component_number() {
        for (i, info) in COMPONENTS.iter().enumerate() {
            assert_eq!(info.component.index() as usize, i);
            assert_eq!(Component::from_index(i as u8), Some(info.component));
        }
        assert_eq!(Component::from_index(20), None);
    }
}
