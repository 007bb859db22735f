//! XSAVE area sizes from the leaf 0xD sub-leaves of a [`CpuidSet`].
//!
//! Sub-leaf i >= 2: EAX = size, EBX = standard-format offset, `ECX[1]` = 64-byte
//! aligned in the compacted format (Intel SDM Vol. 1 §13.4.3 and the CPUID
//! instruction, leaf 0DH). The legacy region and header take the first 576
//! bytes of either format.
//!
//! Sizes are `u64` so that hostile offsets and sizes cannot overflow.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::set::CpuidSet;
use super::xcr0;
use crate::area::EXTENDED_START;
use crate::component::{ComponentId, Xfeatures};
use crate::layout::CpuidRegs;

/// Past this many combinations or reachable sizes, [`compacted_size_possible`]
/// gives up rather than spend unbounded time on a hostile CPUID.
const SEARCH_LIMIT: usize = 1 << 16;

/// Sub-leaf `c` of leaf 0xD, looked up exactly.
fn subleaf(set: &CpuidSet, c: ComponentId) -> Option<CpuidRegs> {
    set.entry(0xd, u32::from(c.index()))
}

/// Size in bytes of the standard-format area for the user components of
/// `xcr0`: the furthest end (offset + size) of any of them, at least 576.
/// None when a component's sub-leaf is missing.
pub(crate) fn standard_size(set: &CpuidSet, xcr0: Xfeatures) -> Option<u64> {
    let mut size = EXTENDED_START as u64;
    for c in xcr0.extended() {
        let r = subleaf(set, c)?;
        size = size.max(u64::from(r.ebx) + u64::from(r.eax));
    }
    Some(size)
}

/// Size in bytes of the compacted-format area holding `held`'s components:
/// 576, then each component in ascending order, rounded up to 64 bytes
/// first when its `ECX[1]` says so. None when a sub-leaf is missing.
pub(crate) fn compacted_size(set: &CpuidSet, held: Xfeatures) -> Option<u64> {
    let mut size = EXTENDED_START as u64;
    for c in held.extended() {
        size = place(size, subleaf(set, c)?);
    }
    Some(size)
}

/// The end of a component placed at `offset` in the compacted format.
fn place(offset: u64, r: CpuidRegs) -> u64 {
    let start = if r.ecx & 2 != 0 {
        offset.next_multiple_of(64)
    } else {
        offset
    };
    start + u64::from(r.eax)
}

/// Every size sub-leaf 0 EBX may report: the standard-format size of some
/// XCR0 that is a subset of the supported one and breaks no XSETBV rule.
/// That is 576 or the size of [`xcr0::minimal_with`] a supported component
/// (the furthest-reaching component of a valid XCR0 brings no more than its
/// own minimal set). x87 and SSE count as supported: they add no size, and
/// a CPUID lacking them is reported by the XCR0 rules already. None when a
/// sub-leaf is missing.
pub(crate) fn possible_standard_sizes(set: &CpuidSet) -> Option<BTreeSet<u64>> {
    let supported = set.xcr0_supported();
    let mut sizes = BTreeSet::from([EXTENDED_START as u64]);
    for c in supported.extended() {
        let minimal = xcr0::minimal_with(c);
        if (supported | Xfeatures::LEGACY).contains_all(minimal) {
            sizes.insert(standard_size(set, minimal)?);
        }
    }
    Some(sizes)
}

/// Whether `size` is the compacted size of some valid XCR0 (a subset of the
/// supported one that breaks no XSETBV rule) together with some subset of
/// the supported IA32_XSS bits: what sub-leaf 1 EBX reports for the XCR0
/// and IA32_XSS enabled at the time. None when a sub-leaf is missing or the
/// search would exceed its bound (more than 2^16 combinations). x87 and SSE
/// count as enabled, as for [`possible_standard_sizes`].
pub(crate) fn compacted_size_possible(set: &CpuidSet, size: u64) -> Option<bool> {
    let xcr0 = set.xcr0_supported();
    let xss = set.xss_supported() - xcr0;
    let free = xcr0.extended();
    let combinations = 1usize
        .checked_shl(free.len())
        .and_then(|n| n.checked_mul(1usize.checked_shl(xss.len())?))?;
    if combinations > SEARCH_LIMIT {
        return None;
    }
    let mut geometry = Vec::new();
    for c in (xcr0 | xss).extended() {
        geometry.push((c, subleaf(set, c)?));
    }
    // Every subset of the extended XCR0 bits, x87 and SSE always in.
    let mut sub = free.bits();
    loop {
        let user = Xfeatures::from_bits(sub) | Xfeatures::LEGACY;
        if xcr0::is_valid(user) {
            let mut reachable = BTreeSet::from([EXTENDED_START as u64]);
            for &(c, r) in &geometry {
                if user.contains(c) {
                    reachable = reachable.iter().map(|&o| place(o, r)).collect();
                } else if xss.contains(c) {
                    let placed: Vec<u64> = reachable.iter().map(|&o| place(o, r)).collect();
                    reachable.extend(placed);
                }
                if reachable.len() > SEARCH_LIMIT {
                    return None;
                }
            }
            if reachable.contains(&size) {
                return Some(true);
            }
        }
        if sub == 0 {
            return Some(false);
        }
        sub = (sub - 1) & free.bits();
    }
}

/// Rewrites leaf 0xD's size fields for the XCR0 and IA32_XSS bits it now
/// supports, as `KVM_GET_SUPPORTED_CPUID` reports them: sub-leaf 0 EBX and
/// ECX = the standard size, sub-leaf 1 EBX = the compacted size when
/// XSAVEC (`EAX[1]`) or XSAVES (`EAX[3]`) is advertised. A size that cannot be
/// computed (missing sub-leaf) or does not fit 32 bits is left as it was.
pub(crate) fn refresh_sizes(set: &mut CpuidSet) {
    let (xcr0, xss) = (set.xcr0_supported(), set.xss_supported());
    if let (Some(mut r), Some(size)) = (set.entry(0xd, 0), standard_size(set, xcr0)) {
        if let Ok(size) = u32::try_from(size) {
            r.ebx = size;
            r.ecx = size;
            let _ = set.set(0xd, 0, r);
        }
    }
    if let (Some(mut r), Some(size)) = (set.entry(0xd, 1), compacted_size(set, xcr0 | xss)) {
        if r.eax & 0b1010 != 0 {
            if let Ok(size) = u32::try_from(size) {
                r.ebx = size;
                let _ = set.set(0xd, 1, r);
            }
        }
    }
}
