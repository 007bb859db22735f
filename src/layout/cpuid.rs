//! CPUID leaf 0xD values and the layout they describe.
//!
//! Leaf 0xD (Intel SDM vol. 1, 13.2): sub-leaf 0 EDX:EAX the XCR0 bits
//! supported, EBX the standard size for the XCR0 enabled now, ECX for every
//! supported bit; sub-leaf 1 EAX the XSAVE features, EBX the XSAVES size for
//! XCR0 | IA32_XSS enabled now, EDX:ECX the IA32_XSS bits supported;
//! sub-leaf i >= 2 EAX size, EBX standard offset, ECX bit 0 supervisor,
//! bit 1 64-byte aligned when compacted, bit 2 XFD.

#[cfg(feature = "alloc")]
use alloc::collections::BTreeMap;
#[cfg(feature = "alloc")]
use alloc::string::String;

use arrayvec::ArrayVec;

use super::{ComponentGeometry, Layout, LayoutError, LayoutParts};
use crate::component::{ComponentId, Xfeatures};

/// The four registers one CPUID sub-leaf returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuidRegs {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// Leaf 0xD sub-leaf 1 EAX bit 4: XFD (IA32_XFD) is supported.
pub(crate) const XFD: u32 = 1 << 4;

/// Leaf 0xD sub-leaf 1 EAX for a layout that does not say: XSAVEOPT,
/// XSAVEC, XGETBV with ECX = 1 and XSAVES (every CPU since Skylake);
/// layouts with an XFD-capable component add XFD (bit 4).
pub const XSAVE_FEATURES_DEFAULT: u32 = 0xF;

/// Leaf 0xD sub-leaf 0 for a guest or CPU whose supported XCR0 is `xcr0`:
/// EBX and ECX the standard size `size` for it.
pub fn subleaf0(xcr0: Xfeatures, size: u32) -> CpuidRegs {
    CpuidRegs {
        eax: xcr0.bits() as u32,
        ebx: size,
        ecx: size,
        edx: (xcr0.bits() >> 32) as u32,
    }
}

/// Leaf 0xD sub-leaf 1: the XSAVE features `eax`, the compacted size
/// `compacted_size` of XCR0 | IA32_XSS, and the IA32_XSS bits `xss`.
pub fn subleaf1(eax: u32, compacted_size: u32, xss: Xfeatures) -> CpuidRegs {
    CpuidRegs {
        eax,
        ebx: compacted_size,
        ecx: xss.bits() as u32,
        edx: (xss.bits() >> 32) as u32,
    }
}

impl From<&ComponentGeometry> for CpuidRegs {
    /// The sub-leaf CPUID.(0xD, i) that describes a component: EAX size,
    /// EBX standard offset, ECX supervisor / align64 / XFD bits.
    fn from(g: &ComponentGeometry) -> CpuidRegs {
        CpuidRegs {
            eax: g.size,
            ebx: g.offset,
            ecx: u32::from(g.supervisor) | u32::from(g.align64) << 1 | u32::from(g.xfd) << 2,
            edx: 0,
        }
    }
}

fn geometry_of(id: ComponentId, r: CpuidRegs) -> ComponentGeometry {
    ComponentGeometry {
        id,
        size: r.eax,
        offset: r.ebx,
        supervisor: r.ecx & 1 != 0,
        align64: r.ecx & 2 != 0,
        xfd: r.ecx & 4 != 0,
    }
}

fn vendor_of(leaf0: CpuidRegs) -> [u8; 12] {
    let mut v = [0u8; 12];
    for (i, r) in [leaf0.ebx, leaf0.edx, leaf0.ecx].into_iter().enumerate() {
        v[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
    }
    v
}

/// Builds a layout from the sub-leaves of leaf 0xD that `subleaf` gives
/// (`None` for a sub-leaf the source lacks).
pub(crate) fn from_subleaves(
    name: &str,
    vendor: &str,
    source: &str,
    subleaf: impl Fn(u32) -> Option<CpuidRegs>,
) -> Result<Layout, LayoutError> {
    let s0 = subleaf(0).ok_or(LayoutError::NoLeaf0xD)?;
    let s1 = subleaf(1);
    let xcr0 = Xfeatures::from_halves(s0.edx, s0.eax);
    let xss = s1.map_or(Xfeatures::EMPTY, |r| Xfeatures::from_halves(r.edx, r.ecx));
    let mut components = ArrayVec::<ComponentGeometry, 64>::new();
    for id in (xcr0 | xss).extended() {
        let r = subleaf(u32::from(id.index())).ok_or(LayoutError::MissingGeometry(id))?;
        components.push(geometry_of(id, r));
    }
    Layout::from_parts(LayoutParts {
        name,
        vendor,
        source,
        xcr0_supported: xcr0,
        xss_supported: xss,
        standard_size: Some(s0.ecx),
        mxcsr_mask: None,
        xsave_features: s1.map(|r| r.eax),
        components: &components,
    })
}

impl Layout {
    /// Builds the layout a CPUID function describes: `cpuid(leaf, subleaf)`
    /// answers as the CPUID instruction would (the host's, a guest's, a
    /// dump's). Reads the vendor from leaf 0 and the geometry from leaf
    /// 0xD; needs no allocation. The MXCSR mask is the vendor's usual one
    /// ([`Layout::with_mxcsr_mask`] sets a measured one).
    ///
    /// ```
    /// use xstate::layout::CpuidRegs;
    /// use xstate::Layout;
    ///
    /// // An AMD Zen 3: x87, SSE, AVX and PKRU.
    /// let zen3 = |leaf: u32, sub: u32| match (leaf, sub) {
    ///     (0, _) => CpuidRegs { eax: 0x10, ebx: 0x6874_7541, ecx: 0x444d_4163, edx: 0x6974_6e65 },
    ///     (0xD, 0) => CpuidRegs { eax: 0x207, ebx: 0x988, ecx: 0x988, edx: 0 },
    ///     (0xD, 2) => CpuidRegs { eax: 0x100, ebx: 0x240, ecx: 0, edx: 0 },
    ///     (0xD, 9) => CpuidRegs { eax: 8, ebx: 0x980, ecx: 0, edx: 0 },
    ///     _ => CpuidRegs::default(),
    /// };
    /// let layout = Layout::from_cpuid("zen3", "CPUID", zen3).unwrap();
    /// assert_eq!(layout.vendor(), "AuthenticAMD");
    /// assert_eq!(layout.standard_size(), 2440);
    /// ```
    ///
    /// # Errors
    ///
    /// [`LayoutError::NoLeaf0xD`] when leaf 0 says leaf 0xD does not exist,
    /// or the validation error of the geometry read.
    pub fn from_cpuid(
        name: &str,
        source: &str,
        cpuid: impl Fn(u32, u32) -> CpuidRegs,
    ) -> Result<Layout, LayoutError> {
        let leaf0 = cpuid(0, 0);
        if leaf0.eax < 0xD {
            return Err(LayoutError::NoLeaf0xD);
        }
        let vendor = vendor_of(leaf0);
        let vendor = core::str::from_utf8(&vendor).unwrap_or("unknown");
        from_subleaves(name, vendor, source, |sub| Some(cpuid(0xD, sub)))
    }
}

/// CPUID leaf 0xD of one CPU: its sub-leaves by number, and the vendor
/// string from leaf 0 when known.
///
/// ```
/// use xstate::layout::{CpuidLeaf0xD, CpuidRegs};
///
/// let mut leaf = CpuidLeaf0xD::default();
/// leaf.vendor = Some("AuthenticAMD".into());
/// leaf.subleaves.insert(0, CpuidRegs { eax: 0x207, ebx: 0x988, ecx: 0x988, edx: 0 });
/// leaf.subleaves.insert(2, CpuidRegs { eax: 0x100, ebx: 0x240, ecx: 0, edx: 0 });
/// leaf.subleaves.insert(9, CpuidRegs { eax: 8, ebx: 0x980, ecx: 0, edx: 0 });
/// let layout = leaf.to_layout("zen3").unwrap();
/// assert_eq!(layout.standard_size(), 2440);
/// ```
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuidLeaf0xD {
    /// Vendor string (`GenuineIntel`, `AuthenticAMD`, ...).
    pub vendor: Option<String>,
    /// Sub-leaf number to registers.
    pub subleaves: BTreeMap<u32, CpuidRegs>,
}

#[cfg(feature = "alloc")]
impl CpuidLeaf0xD {
    /// XCR0 bits supported (sub-leaf 0 EDX:EAX).
    pub fn xcr0_supported(&self) -> Xfeatures {
        Xfeatures::from_bits(
            self.subleaves
                .get(&0)
                .map_or(0, |r| Xfeatures::from_halves(r.edx, r.eax).bits()),
        )
    }

    /// IA32_XSS bits supported (sub-leaf 1 EDX:ECX).
    pub fn xss_supported(&self) -> Xfeatures {
        Xfeatures::from_bits(
            self.subleaves
                .get(&1)
                .map_or(0, |r| Xfeatures::from_halves(r.edx, r.ecx).bits()),
        )
    }

    /// Builds the layout these values describe, named `name`.
    ///
    /// # Errors
    ///
    /// [`LayoutError::NoLeaf0xD`] without sub-leaf 0,
    /// [`LayoutError::MissingGeometry`] for an enumerated component without
    /// its sub-leaf, or another validation error of the geometry.
    pub fn to_layout(&self, name: &str) -> Result<Layout, LayoutError> {
        self.to_layout_from(name, "CPUID leaf 0xD")
    }

    pub(crate) fn to_layout_from(&self, name: &str, source: &str) -> Result<Layout, LayoutError> {
        from_subleaves(
            name,
            self.vendor.as_deref().unwrap_or("unknown"),
            source,
            |sub| self.subleaves.get(&sub).copied(),
        )
    }
}

#[cfg(feature = "alloc")]
impl Layout {
    /// The leaf 0xD values this layout describes, as a CPU would report them
    /// with every supported component enabled in XCR0 and IA32_XSS.
    pub fn to_cpuid(&self) -> CpuidLeaf0xD {
        let mut out = CpuidLeaf0xD {
            vendor: Some(self.vendor().into()),
            subleaves: BTreeMap::new(),
        };
        out.subleaves
            .insert(0, subleaf0(self.xcr0_supported(), self.standard_size()));
        out.subleaves.insert(
            1,
            subleaf1(
                self.xsave_features(),
                self.compacted_size(),
                self.xss_supported(),
            ),
        );
        for g in self.components().filter(|g| !g.id.is_legacy()) {
            out.subleaves
                .insert(u32::from(g.id.index()), CpuidRegs::from(g));
        }
        out
    }
}
