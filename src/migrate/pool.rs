//! The migration-pool baseline: what a guest CPU model may expose on every
//! host of a pool.

use crate::component::{self, name_of, Component};
use crate::layout::{CpuidLeaf0xD, CpuidRegs};
use crate::Layout;

/// A component left out of the baseline, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    /// The component.
    pub index: u8,
    /// Why.
    pub reason: String,
}

/// A baseline component whose standard offset differs between hosts: a
/// guest's own XSAVE sees its host's offset, so mixing these hosts needs a
/// decision (or a relayout on every move).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetMismatch {
    /// The component.
    pub index: u8,
    /// Each host's name and offset, in pool order.
    pub offsets: Vec<(String, u32)>,
}

/// The pool's baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// XCR0 a guest may use on every host.
    pub xcr0: u64,
    /// IA32_XSS bits every host supports.
    pub xss: u64,
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
///
/// let pool = [catalog::get("intel-sapphire-rapids").unwrap().clone(),
///             catalog::get("amd-zen4").unwrap().clone()];
/// let b = baseline(&pool);
/// assert_eq!(b.xcr0, 0x2e7); // no AMX: Zen 4 lacks it
/// assert!(b.offset_mismatches.iter().any(|m| m.index == 9)); // PKRU 2688 vs 2432
/// ```
pub fn baseline(hosts: &[Layout]) -> Baseline {
    let all = |f: fn(&Layout) -> u64| hosts.iter().map(f).fold(!0u64, |a, b| a & b);
    let any = |f: fn(&Layout) -> u64| hosts.iter().map(f).fold(0u64, |a, b| a | b);
    let (mut xcr0, xss) = (all(Layout::xcr0_supported), all(Layout::xss_supported));
    if hosts.is_empty() {
        xcr0 = 0x3;
    }
    let union = any(Layout::supported);
    let mpx = Component::MpxBndregs.mask() | Component::MpxBndcsr.mask();
    let apx = Component::Apx.mask();
    let mut excluded = Vec::new();
    for i in component::bits(union & !(xcr0 | xss)) {
        let bit = 1u64 << i;
        let lacking: Vec<&str> = hosts
            .iter()
            .filter(|h| h.supported() & bit == 0)
            .map(Layout::name)
            .collect();
        let reason = if bit & (mpx | apx) != 0 && union & mpx != 0 && union & apx != 0 {
            format!(
                "MPX and APX share offset 960 and are mutually exclusive; the pool mixes them ({} lack {})",
                lacking.join(", "),
                name_of(i)
            )
        } else {
            format!("not on {}", lacking.join(", "))
        };
        excluded.push(Exclusion { index: i, reason });
    }
    let mut offset_mismatches = Vec::new();
    for i in component::bits(xcr0 & !3) {
        let offsets: Vec<(String, u32)> = hosts
            .iter()
            .map(|h| (h.name().to_string(), h.geometry(i).map_or(0, |g| g.offset)))
            .collect();
        if offsets.iter().any(|(_, o)| *o != offsets[0].1) {
            offset_mismatches.push(OffsetMismatch { index: i, offsets });
        }
    }
    let cpuid = hosts.first().map_or_else(CpuidLeaf0xD::default, |first| {
        let size = hosts
            .iter()
            .map(|h| h.standard_size_for(xcr0))
            .max()
            .unwrap_or(576);
        let mut leaf = CpuidLeaf0xD {
            vendor: Some(first.vendor().to_string()),
            ..Default::default()
        };
        leaf.subleaves.insert(
            0,
            CpuidRegs {
                eax: xcr0 as u32,
                ebx: size,
                ecx: size,
                edx: (xcr0 >> 32) as u32,
            },
        );
        leaf.subleaves.insert(
            1,
            CpuidRegs {
                eax: 0xF,
                ebx: first.compacted_size_for(xcr0 | xss),
                ecx: xss as u32,
                edx: (xss >> 32) as u32,
            },
        );
        for i in component::bits((xcr0 | xss) & !3) {
            let g = first
                .geometry(i)
                .expect("baseline components are on every host");
            leaf.subleaves.insert(u32::from(i), CpuidRegs::from(g));
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
