//! XSAVE state components: their numbers, names and architectural facts.
//!
//! A state component is one bit of XCR0 or IA32_XSS. [`ComponentId`] names
//! one, known or not (0..=63); [`Xfeatures`] is a set of them (an XCR0,
//! IA32_XSS or XSTATE_BV value) and [`XcompBv`] the compacted-format header
//! field. The architectural table [`COMPONENTS`] (0..=19, x87 to APX) is
//! the one place sizes are written; a CPU's sizes and offsets come from its
//! [`Layout`](crate::Layout), which CPUID fills.
//!
//! ```
//! use xstate::{ComponentId, Xfeatures};
//!
//! assert_eq!(ComponentId::APX.index(), 19);
//! assert_eq!(ComponentId::PKRU.to_string(), "PKRU");
//! assert_eq!(ComponentId::new(23).unwrap().to_string(), "component 23");
//! let xcr0 = Xfeatures::from_bits(0x207);
//! assert!(xcr0.contains(ComponentId::PKRU));
//! assert_eq!(xcr0.iter().map(ComponentId::index).collect::<Vec<_>>(), [0, 1, 2, 9]);
//! ```

mod set;

pub use set::{Iter, ParseMaskError, XcompBv, Xfeatures};

/// One XSAVE state component: its bit number in XCR0, IA32_XSS and the
/// XSAVE header's bit vectors (0..=63).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct ComponentId(u8);

impl ComponentId {
    /// x87 FPU state (legacy region).
    pub const X87: ComponentId = ComponentId(0);
    /// SSE state: XMM0-15 and MXCSR (legacy region).
    pub const SSE: ComponentId = ComponentId(1);
    /// AVX: the upper 128 bits of YMM0-15 (YMM_Hi128).
    pub const AVX: ComponentId = ComponentId(2);
    /// MPX bound registers BND0-3.
    pub const MPX_BNDREGS: ComponentId = ComponentId(3);
    /// MPX BNDCFGU and BNDSTATUS.
    pub const MPX_BNDCSR: ComponentId = ComponentId(4);
    /// AVX-512 opmask registers k0-k7.
    pub const OPMASK: ComponentId = ComponentId(5);
    /// AVX-512: the upper 256 bits of ZMM0-15.
    pub const ZMM_HI256: ComponentId = ComponentId(6);
    /// AVX-512: ZMM16-31, all 512 bits.
    pub const HI16_ZMM: ComponentId = ComponentId(7);
    /// Processor trace (supervisor).
    pub const PT: ComponentId = ComponentId(8);
    /// Protection keys for user pages.
    pub const PKRU: ComponentId = ComponentId(9);
    /// PASID (supervisor).
    pub const PASID: ComponentId = ComponentId(10);
    /// CET user state (supervisor-managed).
    pub const CET_U: ComponentId = ComponentId(11);
    /// CET supervisor state.
    pub const CET_S: ComponentId = ComponentId(12);
    /// Hardware duty cycling (supervisor).
    pub const HDC: ComponentId = ComponentId(13);
    /// User interrupts (supervisor-managed).
    pub const UINTR: ComponentId = ComponentId(14);
    /// Architectural LBRs (supervisor).
    pub const LBR: ComponentId = ComponentId(15);
    /// Hardware P-states (supervisor).
    pub const HWP: ComponentId = ComponentId(16);
    /// AMX tile configuration.
    pub const TILECFG: ComponentId = ComponentId(17);
    /// AMX tile data TMM0-7.
    pub const TILEDATA: ComponentId = ComponentId(18);
    /// APX extended general purpose registers r16-r31.
    pub const APX: ComponentId = ComponentId(19);

    /// The component with bit number `index`, if it is one (0..=63).
    #[inline]
    pub const fn new(index: u8) -> Option<ComponentId> {
        if index < 64 {
            Some(ComponentId(index))
        } else {
            None
        }
    }

    /// The component's bit number.
    #[inline]
    pub const fn index(self) -> u8 {
        self.0
    }

    /// The set holding only this component.
    #[inline]
    pub const fn bit(self) -> Xfeatures {
        Xfeatures::from_bits(1 << self.0)
    }

    /// Whether this is x87 or SSE, which live in the 512-byte legacy region.
    #[inline]
    pub const fn is_legacy(self) -> bool {
        self.0 < 2
    }

    /// Architectural facts about the component, if the architecture
    /// defines it (0..=19).
    #[inline]
    pub const fn info(self) -> Option<&'static ComponentInfo> {
        if (self.0 as usize) < KNOWN_COMPONENTS {
            Some(&COMPONENTS[self.0 as usize])
        } else {
            None
        }
    }

    /// The display name (`AVX-512 ZMM_Hi256`), for known components.
    #[inline]
    pub const fn name(self) -> Option<&'static str> {
        match self.info() {
            Some(info) => Some(info.name),
            None => None,
        }
    }

    /// The bytes of the component that canonical state keeps zero (offsets
    /// within it): empty for all but PKRU, whose bytes 4..8 are reserved.
    ///
    /// ```
    /// use xstate::ComponentId;
    /// assert_eq!(ComponentId::PKRU.reserved_bytes(), 4..8);
    /// assert!(ComponentId::AVX.reserved_bytes().is_empty());
    /// ```
    #[inline]
    pub const fn reserved_bytes(self) -> core::ops::Range<usize> {
        match self.info() {
            Some(i) if i.used < i.size => i.used as usize..i.size as usize,
            _ => 0..0,
        }
    }

    /// Whether extended feature disable may apply to the component
    /// ([`XFD_CAPABLE`]): for a known one, whether the architecture lets it
    /// (AMX TILEDATA only); an unknown one (20..=62) is left to the CPU;
    /// bit 63 is no component.
    ///
    /// ```
    /// use xstate::ComponentId;
    /// assert!(ComponentId::TILEDATA.xfd_capable());
    /// assert!(!ComponentId::AVX.xfd_capable() && !ComponentId::TILECFG.xfd_capable());
    /// assert!(ComponentId::new(40).unwrap().xfd_capable());
    /// assert!(!ComponentId::new(63).unwrap().xfd_capable());
    /// ```
    #[inline]
    pub const fn xfd_capable(self) -> bool {
        XFD_CAPABLE.contains(self)
    }

    /// The size in bytes every CPU gives the component, for a known
    /// component of fixed size (all but arch LBR).
    #[inline]
    pub const fn fixed_size(self) -> Option<u32> {
        match self.info() {
            Some(i) if i.fixed_size => Some(i.size),
            _ => None,
        }
    }

    /// Every architecturally defined component, in ascending order.
    pub fn known() -> impl Iterator<Item = ComponentId> {
        (0..KNOWN_COMPONENTS as u8).map(ComponentId)
    }
}

impl core::fmt::Display for ComponentId {
    /// The name (`AMX TILEDATA`), or `component N` for unknown numbers.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "component {}", self.0),
        }
    }
}

impl core::fmt::Debug for ComponentId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ComponentId({}: {self})", self.0)
    }
}

/// The number of state components the architecture defines (0..=19).
pub const KNOWN_COMPONENTS: usize = 20;

/// What the architecture says about one component, independent of any CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Display name, as in the SDM and the CLI's tables.
    pub name: &'static str,
    /// Architectural size in bytes: the size of its canonical image (x87
    /// and SSE: their bytes of the legacy region). A CPU's CPUID is
    /// authoritative for where it goes; for supervisor components whose
    /// size depends on the CPU (arch LBR), CPUID is authoritative for the
    /// size too.
    pub size: u32,
    /// Managed through IA32_XSS (supervisor) rather than XCR0.
    pub supervisor: bool,
    /// Bytes that hold architectural state, from the component's start;
    /// the rest of `size` is reserved and kept zero (PKRU: 4 of 8).
    pub used: u32,
    /// Whether every CPU gives it `size` bytes. Arch LBR's size follows the
    /// number of LBRs a CPU has (CPUID leaf 0x1C), so CPUID alone says it.
    pub fixed_size: bool,
    /// Whether extended feature disable (IA32_XFD) may apply to it, so that
    /// its leaf 0xD sub-leaf may set `ECX[2]`: AMX TILEDATA alone (Intel SDM
    /// vol. 1, 13.14; Linux's and KVM's `XFEATURE_MASK_USER_DYNAMIC`).
    pub xfd: bool,
}

const fn user(name: &'static str, size: u32) -> ComponentInfo {
    ComponentInfo {
        name,
        size,
        supervisor: false,
        used: size,
        fixed_size: true,
        xfd: false,
    }
}

const fn supervisor(name: &'static str, size: u32) -> ComponentInfo {
    ComponentInfo {
        name,
        size,
        supervisor: true,
        used: size,
        fixed_size: true,
        xfd: false,
    }
}

/// The architectural component table, indexed by component number (Intel
/// SDM vol. 1, 13.1 and 13.2; APX: the APX architecture specification).
pub const COMPONENTS: [ComponentInfo; KNOWN_COMPONENTS] = [
    user("x87", 160),
    user("SSE", 256),
    user("AVX", 256),
    user("MPX BNDREGS", 64),
    user("MPX BNDCSR", 64),
    user("AVX-512 opmask", 64),
    user("AVX-512 ZMM_Hi256", 512),
    user("AVX-512 Hi16_ZMM", 1024),
    supervisor("PT", 128),
    // PKRU is 32 bits; bytes 4..8 are reserved (KVM returns them as 0).
    ComponentInfo {
        used: 4,
        ..user("PKRU", 8)
    },
    supervisor("PASID", 8),
    supervisor("CET_U", 16),
    supervisor("CET_S", 24),
    supervisor("HDC", 8),
    supervisor("UINTR", 48),
    // Arch LBR: 808 bytes with 32 LBRs; its size follows CPUID leaf 0x1C.
    ComponentInfo {
        fixed_size: false,
        ..supervisor("LBR", 808)
    },
    supervisor("HWP", 8),
    user("AMX TILECFG", 64),
    // The one known component extended feature disable applies to.
    ComponentInfo {
        xfd: true,
        ..user("AMX TILEDATA", 8192)
    },
    user("APX", 128),
];

/// The components IA32_XFD and IA32_XFD_ERR may name, and whose leaf 0xD
/// sub-leaf may enumerate XFD support (`ECX[2]`): of the known ones those
/// [`COMPONENTS`] marks (AMX TILEDATA); components this code does not know
/// (20..=62) are left to the CPU to judge. Bit 63 is no component.
pub const XFD_CAPABLE: Xfeatures = {
    let mut bits = Xfeatures::ALL.bits() & !((1u64 << KNOWN_COMPONENTS) - 1);
    let mut i = 0;
    while i < KNOWN_COMPONENTS {
        if COMPONENTS[i].xfd {
            bits |= 1 << i;
        }
        i += 1;
    }
    Xfeatures::from_bits(bits)
};

/// The components whose liveness makes MXCSR count in the standard format
/// and in a register file: SSE and AVX (the standard-format XRSTOR loads
/// MXCSR when either is requested; the compacted one only with SSE, see
/// [`XsaveView::mxcsr_counts`](crate::XsaveView::mxcsr_counts)).
pub(crate) const MXCSR_COMPONENTS: Xfeatures = ComponentId::SSE.bit().union(ComponentId::AVX.bit());

/// The components with reserved bytes (PKRU's 4..8), kept zero: each one
/// whose used bytes are fewer than its size.
#[cfg(feature = "alloc")]
pub(crate) const WITH_RESERVED: Xfeatures = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < COMPONENTS.len() {
        if COMPONENTS[i].used < COMPONENTS[i].size {
            bits |= 1 << i;
        }
        i += 1;
    }
    Xfeatures::from_bits(bits)
};

/// Where the canonical image of each fixed-size user component (2..=19,
/// not supervisor) starts in one contiguous buffer holding them all, and
/// that buffer's size: derived from [`COMPONENTS`], so a component added
/// to the table gets its place without another line of code.
#[cfg(feature = "alloc")]
pub(crate) const CANONICAL_SLOTS: ([Option<u32>; KNOWN_COMPONENTS], usize) = {
    let mut slots = [None; KNOWN_COMPONENTS];
    let mut at = 0u32;
    let mut i = 2;
    while i < KNOWN_COMPONENTS {
        if !COMPONENTS[i].supervisor {
            slots[i] = Some(at);
            at += COMPONENTS[i].size;
        }
        i += 1;
    }
    (slots, at as usize)
};

const _: () = {
    // The legacy components' sizes are their bytes of the FXSAVE image.
    assert!(COMPONENTS[0].size as usize == crate::area::legacy::X87_END);
    assert!(COMPONENTS[1].size as usize == crate::area::legacy::XMM_BYTES);
    // Sizes the register accessors rely on.
    assert!(COMPONENTS[ComponentId::TILEDATA.0 as usize].size == 8 * 1024);
    assert!(COMPONENTS[ComponentId::APX.0 as usize].size == 16 * 8);
    assert!(COMPONENTS[ComponentId::HI16_ZMM.0 as usize].size == 16 * 64);
    assert!(COMPONENTS[ComponentId::ZMM_HI256.0 as usize].size == 16 * 32);
    assert!(COMPONENTS[ComponentId::AVX.0 as usize].size == 16 * 16);
    assert!(COMPONENTS[ComponentId::OPMASK.0 as usize].size == 8 * 8);
    assert!(
        core::mem::size_of::<crate::area::TileConfig>()
            == COMPONENTS[ComponentId::TILECFG.0 as usize].size as usize
    );
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for (i, c) in ComponentId::known().enumerate() {
            assert_eq!(c.index() as usize, i);
            assert_eq!(c.name(), Some(COMPONENTS[i].name));
        }
        assert_eq!(ComponentId::new(64), None);
        assert_eq!(ComponentId::new(20).unwrap().name(), None);
        assert_eq!(format!("{:?}", ComponentId::PKRU), "ComponentId(9: PKRU)");
    }

    #[test]
    fn canonical_slots_pack_the_user_components() {
        let (slots, total) = CANONICAL_SLOTS;
        assert_eq!(slots[0], None);
        assert_eq!(slots[8], None, "PT is supervisor");
        assert_eq!(slots[2], Some(0));
        assert_eq!(slots[3], Some(256));
        let user: u32 = (2..KNOWN_COMPONENTS)
            .filter(|&i| !COMPONENTS[i].supervisor)
            .map(|i| COMPONENTS[i].size)
            .sum();
        assert_eq!(total, user as usize);
    }
}
