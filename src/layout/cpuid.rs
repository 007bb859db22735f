//! CPUID leaf 0xD values and the layout they describe.

use std::collections::BTreeMap;

use super::{ComponentGeometry, Layout, LayoutParts};
use crate::component;
use crate::error::LayoutError;

/// The four registers one CPUID sub-leaf returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuidLeaf0xD {
    /// Vendor string (`GenuineIntel`, `AuthenticAMD`, ...).
    pub vendor: Option<String>,
    /// Sub-leaf number to registers.
    pub subleaves: BTreeMap<u32, CpuidRegs>,
}

impl CpuidLeaf0xD {
    /// Reads leaf 0xD of the CPU this code runs on.
    #[cfg(target_arch = "x86_64")]
    pub fn host() -> CpuidLeaf0xD {
        use core::arch::x86_64::__cpuid_count;
        let query = |leaf, sub| {
            let r = __cpuid_count(leaf, sub);
            CpuidRegs {
                eax: r.eax,
                ebx: r.ebx,
                ecx: r.ecx,
                edx: r.edx,
            }
        };
        let v = query(0, 0);
        let mut vendor = Vec::with_capacity(12);
        for r in [v.ebx, v.edx, v.ecx] {
            vendor.extend_from_slice(&r.to_le_bytes());
        }
        let mut out = CpuidLeaf0xD {
            vendor: Some(String::from_utf8_lossy(&vendor).into_owned()),
            subleaves: BTreeMap::new(),
        };
        if v.eax < 0xD {
            return out;
        }
        let s0 = query(0xD, 0);
        let s1 = query(0xD, 1);
        out.subleaves.insert(0, s0);
        out.subleaves.insert(1, s1);
        let supported = (u64::from(s0.edx) << 32 | u64::from(s0.eax))
            | (u64::from(s1.edx) << 32 | u64::from(s1.ecx));
        for i in component::bits(supported & !3) {
            out.subleaves.insert(u32::from(i), query(0xD, u32::from(i)));
        }
        out
    }

    /// XCR0 bits supported (sub-leaf 0 EDX:EAX).
    pub fn xcr0_supported(&self) -> u64 {
        self.subleaves
            .get(&0)
            .map_or(0, |r| u64::from(r.edx) << 32 | u64::from(r.eax))
    }

    /// IA32_XSS bits supported (sub-leaf 1 EDX:ECX).
    pub fn xss_supported(&self) -> u64 {
        self.subleaves
            .get(&1)
            .map_or(0, |r| u64::from(r.edx) << 32 | u64::from(r.ecx))
    }

    /// Builds the layout these values describe, named `name`.
    pub fn to_layout(&self, name: &str) -> Result<Layout, LayoutError> {
        self.to_layout_from(name, "CPUID leaf 0xD")
    }

    pub(crate) fn to_layout_from(&self, name: &str, source: &str) -> Result<Layout, LayoutError> {
        let s0 = self.subleaves.get(&0).ok_or(LayoutError::NoLeaf0xD)?;
        let xcr0 = self.xcr0_supported();
        let xss = self.xss_supported();
        let mut components = Vec::new();
        for i in component::bits((xcr0 | xss) & !3) {
            let r = self
                .subleaves
                .get(&u32::from(i))
                .ok_or(LayoutError::MissingGeometry { index: i })?;
            components.push(ComponentGeometry {
                index: i,
                size: r.eax,
                offset: r.ebx,
                supervisor: r.ecx & 1 != 0,
                align64: r.ecx & 2 != 0,
                xfd: r.ecx & 4 != 0,
            });
        }
        Layout::from_parts(LayoutParts {
            name: name.to_string(),
            vendor: self.vendor.clone().unwrap_or_else(|| "unknown".into()),
            source: source.to_string(),
            xcr0_supported: xcr0,
            xss_supported: xss,
            standard_size: Some(s0.ecx),
            mxcsr_mask: None,
            components,
        })
    }
}

impl Layout {
    /// The layout of the CPU this code runs on, from the CPUID instruction.
    ///
    /// The MXCSR mask is measured with FXSAVE.
    ///
    /// ```
    /// let host = xstate::Layout::host().unwrap();
    /// assert!(host.standard_size() >= 576);
    /// ```
    #[cfg(target_arch = "x86_64")]
    pub fn host() -> Result<Layout, LayoutError> {
        let leaf = CpuidLeaf0xD::host();
        let mut layout = leaf.to_layout_from("host", "CPUID instruction on this host")?;
        layout.mxcsr_mask = crate::host::mxcsr_mask();
        Ok(layout)
    }

    /// The leaf 0xD values this layout describes, as a CPU would report them
    /// with every supported component enabled in XCR0 and IA32_XSS.
    pub fn to_cpuid(&self) -> CpuidLeaf0xD {
        let mut out = CpuidLeaf0xD {
            vendor: Some(self.vendor.clone()),
            subleaves: BTreeMap::new(),
        };
        let xcr0 = self.xcr0_supported;
        let xss = self.xss_supported;
        out.subleaves.insert(
            0,
            CpuidRegs {
                eax: xcr0 as u32,
                ebx: self.standard_size,
                ecx: self.standard_size,
                edx: (xcr0 >> 32) as u32,
            },
        );
        out.subleaves.insert(
            1,
            CpuidRegs {
                // XSAVEOPT, XSAVEC, XGETBV with ECX=1, XSAVES.
                eax: 0xF,
                ebx: self.compacted_size(),
                ecx: xss as u32,
                edx: (xss >> 32) as u32,
            },
        );
        for g in self.components().filter(|g| g.index >= 2) {
            out.subleaves.insert(u32::from(g.index), CpuidRegs::from(g));
        }
        out
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
