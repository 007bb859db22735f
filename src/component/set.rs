//! Sets of state components: XCR0, IA32_XSS, XSTATE_BV ([`Xfeatures`]) and
//! the compacted format's XCOMP_BV ([`XcompBv`]).

use super::ComponentId;

/// A set of state components, bit `i` for component `i`: the type of
/// XCR0, IA32_XSS, XSTATE_BV and the components an area holds.
///
/// ```
/// use xstate::{ComponentId, Xfeatures};
///
/// let avx512 = ComponentId::OPMASK.bit() | ComponentId::ZMM_HI256.bit() | ComponentId::HI16_ZMM.bit();
/// assert_eq!(avx512.bits(), 0xe0);
/// let xcr0 = Xfeatures::LEGACY | ComponentId::AVX.bit() | avx512;
/// assert_eq!(xcr0.extended(), ComponentId::AVX.bit() | avx512);
/// assert_eq!(format!("{xcr0}"), "0xe7");
/// assert_eq!(format!("{xcr0:?}"), "Xfeatures(0xe7: x87|SSE|AVX|AVX-512 opmask|AVX-512 ZMM_Hi256|AVX-512 Hi16_ZMM)");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Xfeatures(u64);

impl Xfeatures {
    /// No component.
    pub const EMPTY: Xfeatures = Xfeatures(0);
    /// x87 and SSE, which live in the 512-byte legacy region.
    pub const LEGACY: Xfeatures = Xfeatures(0b11);
    /// Every component the architecture lets XSAVE / XSTATE_BV name (0..=62;
    /// bit 63 of XCOMP_BV is the compacted-format flag, not a component).
    pub const ALL: Xfeatures = Xfeatures(!(1 << 63));

    /// The set whose bits are `bits`.
    #[inline]
    pub const fn from_bits(bits: u64) -> Xfeatures {
        Xfeatures(bits)
    }

    /// The set whose bits are `hi:lo`, as CPUID and the MSR and XCR
    /// instructions split 64-bit masks (leaf 0xD sub-leaf 0 EDX:EAX,
    /// sub-leaf 1 EDX:ECX).
    pub const fn from_halves(hi: u32, lo: u32) -> Xfeatures {
        Xfeatures::from_bits((hi as u64) << 32 | lo as u64)
    }

    /// The bits.
    #[inline]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether `c` is in the set.
    #[inline]
    pub const fn contains(self, c: ComponentId) -> bool {
        self.0 & (1 << c.index()) != 0
    }

    /// Whether every component of `other` is in the set.
    #[inline]
    pub const fn contains_all(self, other: Xfeatures) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set shares a component with `other`.
    #[inline]
    pub const fn intersects(self, other: Xfeatures) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The number of components.
    #[inline]
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// The set with `c` added.
    #[inline]
    pub const fn with(self, c: ComponentId) -> Xfeatures {
        Xfeatures(self.0 | 1 << c.index())
    }

    /// The set with `c` removed.
    #[inline]
    pub const fn without(self, c: ComponentId) -> Xfeatures {
        Xfeatures(self.0 & !(1 << c.index()))
    }

    /// Union.
    #[inline]
    pub const fn union(self, other: Xfeatures) -> Xfeatures {
        Xfeatures(self.0 | other.0)
    }

    /// Intersection.
    #[inline]
    pub const fn intersection(self, other: Xfeatures) -> Xfeatures {
        Xfeatures(self.0 & other.0)
    }

    /// The components of `self` not in `other`.
    #[inline]
    pub const fn difference(self, other: Xfeatures) -> Xfeatures {
        Xfeatures(self.0 & !other.0)
    }

    /// The set without x87 and SSE: the components of the extended region.
    #[inline]
    pub const fn extended(self) -> Xfeatures {
        Xfeatures(self.0 & !Self::LEGACY.0)
    }

    /// The components below `c` (lower numbers).
    #[inline]
    pub const fn below(self, c: ComponentId) -> Xfeatures {
        Xfeatures(self.0 & ((1u64 << c.index()) - 1))
    }

    /// The lowest component of the set.
    #[inline]
    pub const fn first(self) -> Option<ComponentId> {
        if self.0 == 0 {
            None
        } else {
            ComponentId::new(self.0.trailing_zeros() as u8)
        }
    }

    /// The components, lowest first.
    #[inline]
    pub const fn iter(self) -> Iter {
        Iter(self.0)
    }
}

/// The components of an [`Xfeatures`], lowest first.
#[derive(Clone, Debug)]
pub struct Iter(u64);

impl Iterator for Iter {
    type Item = ComponentId;

    #[inline]
    fn next(&mut self) -> Option<ComponentId> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as u8;
        self.0 &= self.0 - 1;
        ComponentId::new(bit)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter {}

impl IntoIterator for Xfeatures {
    type Item = ComponentId;
    type IntoIter = Iter;

    fn into_iter(self) -> Iter {
        self.iter()
    }
}

impl FromIterator<ComponentId> for Xfeatures {
    fn from_iter<I: IntoIterator<Item = ComponentId>>(iter: I) -> Xfeatures {
        iter.into_iter().fold(Xfeatures::EMPTY, Xfeatures::with)
    }
}

impl From<ComponentId> for Xfeatures {
    fn from(c: ComponentId) -> Xfeatures {
        c.bit()
    }
}

impl core::ops::BitOr for Xfeatures {
    type Output = Xfeatures;
    fn bitor(self, rhs: Xfeatures) -> Xfeatures {
        self.union(rhs)
    }
}

impl core::ops::BitOrAssign for Xfeatures {
    fn bitor_assign(&mut self, rhs: Xfeatures) {
        *self = self.union(rhs);
    }
}

impl core::ops::BitAnd for Xfeatures {
    type Output = Xfeatures;
    fn bitand(self, rhs: Xfeatures) -> Xfeatures {
        self.intersection(rhs)
    }
}

impl core::ops::BitAndAssign for Xfeatures {
    fn bitand_assign(&mut self, rhs: Xfeatures) {
        *self = self.intersection(rhs);
    }
}

impl core::ops::Sub for Xfeatures {
    type Output = Xfeatures;
    fn sub(self, rhs: Xfeatures) -> Xfeatures {
        self.difference(rhs)
    }
}

impl core::ops::SubAssign for Xfeatures {
    fn sub_assign(&mut self, rhs: Xfeatures) {
        *self = self.difference(rhs);
    }
}

/// Why text is not an [`Xfeatures`] mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a hex mask (an optional 0x, then hex digits: 0x2e7 or 2e7)")]
pub struct ParseMaskError;

impl core::str::FromStr for Xfeatures {
    type Err = ParseMaskError;

    /// A hex mask as XCR0 values are written: `0x2e7`, `0X2E7` or `2e7`
    /// (no sign: `+7` is refused), whitespace around it ignored.
    ///
    /// ```
    /// use xstate::Xfeatures;
    /// assert_eq!("0x2e7".parse(), Ok(Xfeatures::from_bits(0x2e7)));
    /// assert!("+7".parse::<Xfeatures>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Xfeatures, ParseMaskError> {
        crate::hex::parse_u64(s)
            .map(Xfeatures)
            .ok_or(ParseMaskError)
    }
}

impl core::fmt::Display for Xfeatures {
    /// Hex, as XCR0 values are written (`0x2e7`).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl core::fmt::LowerHex for Xfeatures {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::LowerHex::fmt(&self.0, f)
    }
}

impl core::fmt::Debug for Xfeatures {
    /// Hex and the components' names: `Xfeatures(0x3: x87|SSE)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Xfeatures({:#x}", self.0)?;
        for (n, c) in self.iter().enumerate() {
            f.write_str(if n == 0 { ": " } else { "|" })?;
            core::fmt::Display::fmt(&c, f)?;
        }
        f.write_str(")")
    }
}

/// The XSAVE header's XCOMP_BV: bit 63 set for the compacted format, and
/// then the components the area holds; 0 in the standard format.
///
/// ```
/// use xstate::{XcompBv, Xfeatures};
///
/// let x = XcompBv::compacted(Xfeatures::from_bits(0x207));
/// assert_eq!(x.bits(), 0x8000_0000_0000_0207);
/// assert!(x.is_compacted());
/// assert_eq!(x.components(), Xfeatures::from_bits(0x207));
/// assert!(!XcompBv::STANDARD.is_compacted());
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct XcompBv(u64);

impl XcompBv {
    /// Bit 63: the area is in the compacted format.
    pub const COMPACTED: u64 = 1 << 63;
    /// The standard format's XCOMP_BV: 0.
    pub const STANDARD: XcompBv = XcompBv(0);

    /// The compacted format's XCOMP_BV for an area holding `held`.
    #[inline]
    pub const fn compacted(held: Xfeatures) -> XcompBv {
        XcompBv(held.bits() | Self::COMPACTED)
    }

    /// The field as read from a header.
    #[inline]
    pub const fn from_bits(bits: u64) -> XcompBv {
        XcompBv(bits)
    }

    /// The field's bits.
    #[inline]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether bit 63 is set.
    #[inline]
    pub const fn is_compacted(self) -> bool {
        self.0 & Self::COMPACTED != 0
    }

    /// The components the area holds: the field without bit 63.
    #[inline]
    pub const fn components(self) -> Xfeatures {
        Xfeatures::from_bits(self.0 & !Self::COMPACTED)
    }
}

impl core::fmt::Display for XcompBv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl core::fmt::LowerHex for XcompBv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::LowerHex::fmt(&self.0, f)
    }
}

impl core::fmt::Debug for XcompBv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "XcompBv({:#x})", self.0)
    }
}
