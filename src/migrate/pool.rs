//! The migration-pool baseline: what a guest CPU model may expose on every
//! host of a pool.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::component::{ComponentId, Xfeatures};
use crate::layout::{subleaf0, subleaf1, CpuidLeaf0xD, CpuidRegs};
use crate::Layout;

/// A component left out of the baseline, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// The component.
    pub component: ComponentId,
    /// Why.
    pub reason: String,
}

/// A baseline component whose standard offset differs between hosts: a
/// guest's own XSAVE sees its host's offset, so mixing these hosts needs a
/// decision (or a relayout on every move).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetMismatch {
    /// The component.
    pub component: ComponentId,
    /// Each host's name and offset in bytes, in pool order.
    pub offsets: Vec<(String, u32)>,
}

/// The pool's baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// XCR0 a guest may use on every host.
    pub xcr0: Xfeatures,
    /// IA32_XSS bits every host supports.
    pub xss: Xfeatures,
    /// Components some host has that the baseline leaves out.
    pub excluded: Vec<Exclusion>,
    /// Baseline components at different standard offsets across hosts.
    pub offset_mismatches: Vec<OffsetMismatch>,
    /// The CPUID leaf 0xD values to present to guests in the pool (offsets
    /// of the first host; see `offset_mismatches`).
    pub cpuid: CpuidLeaf0xD,
}

/// Computes the baseline of a pool of hosts (at least one).
///
/// ```
/// use xstate::layout::catalog;
/// use xstate::migrate::pool::baseline;
/// use xstate::ComponentId;
///
/// let pool = [catalog::get("intel-sapphire-rapids").unwrap().clone(),
///             catalog::get("amd-zen4").unwrap().clone()];
/// let b = baseline(&pool);
/// assert_eq!(b.xcr0.bits(), 0x2e7); // no AMX: Zen 4 lacks it
/// assert!(b.offset_mismatches.iter().any(|m| m.component == ComponentId::PKRU)); // 2688 vs 2432
/// ```
pub fn baseline(hosts: &[Layout]) -> Baseline {
    let all = |f: fn(&Layout) -> Xfeatures| {
        hosts
            .iter()
            .map(f)
            .fold(Xfeatures::ALL, Xfeatures::intersection)
    };
    let (mut xcr0, mut xss) = (all(Layout::xcr0_supported), all(Layout::xss_supported));
    if hosts.is_empty() {
        (xcr0, xss) = (Xfeatures::LEGACY, Xfeatures::EMPTY);
    }
    let union = hosts
        .iter()
        .map(Layout::supported)
        .fold(Xfeatures::EMPTY, Xfeatures::union);
    let mpx = ComponentId::MPX_BNDREGS.bit() | ComponentId::MPX_BNDCSR.bit();
    let apx = ComponentId::APX.bit();
    let mut excluded = Vec::new();
    for c in union - (xcr0 | xss) {
        let lacking: Vec<&str> = hosts
            .iter()
            .filter(|h| !h.has(c))
            .map(Layout::name)
            .collect();
        let reason = if (mpx | apx).contains(c) && union.intersects(mpx) && union.intersects(apx) {
            format!(
                "MPX and APX share offset 960 and are mutually exclusive; the pool mixes them ({} lack {c})",
                lacking.join(", "),
            )
        } else {
            format!("not on {}", lacking.join(", "))
        };
        excluded.push(Exclusion {
            component: c,
            reason,
        });
    }
    let mut offset_mismatches = Vec::new();
    for c in xcr0.extended() {
        let offsets: Vec<(String, u32)> = hosts
            .iter()
            .map(|h| (h.name().to_string(), h.offset(c).unwrap_or(0)))
            .collect();
        if offsets.iter().any(|(_, o)| *o != offsets[0].1) {
            offset_mismatches.push(OffsetMismatch {
                component: c,
                offsets,
            });
        }
    }
    let cpuid = hosts.first().map_or_else(CpuidLeaf0xD::default, |first| {
        let size = hosts
            .iter()
            .map(|h| h.standard_size_for(xcr0))
            .max()
            .unwrap_or(576);
        let xsave_features = hosts
            .iter()
            .map(Layout::xsave_features)
            .fold(!0, |a, b| a & b);
        let mut leaf = CpuidLeaf0xD {
            vendor: Some(first.vendor().to_string()),
            ..Default::default()
        };
        leaf.subleaves.insert(0, subleaf0(xcr0, size));
        leaf.subleaves.insert(
            1,
            subleaf1(xsave_features, first.compacted_size_for(xcr0 | xss), xss),
        );
        for c in (xcr0 | xss).extended() {
            let g = first
                .geometry(c)
                .expect("baseline components are on every host");
            leaf.subleaves
                .insert(u32::from(c.index()), CpuidRegs::from(g));
        }
        leaf
    });
    Baseline {
        xcr0,
        xss,
        excluded,
        offset_mismatches,
        cpuid,
    }
}
