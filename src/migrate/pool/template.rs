//! The baseline as register modifications on each host's KVM-offered
//! CPUID: what a Firecracker custom CPU template holds.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{Baseline, PoolHost};
use crate::cpuid::features::FeatureMask;
use crate::cpuid::{is_known_indexed, Reg};

impl Baseline {
    /// The baseline as register modifications on the CPUID each host's KVM
    /// offers, for VMMs that take CPU templates (Firecracker's custom CPU
    /// templates apply exactly this): leaf 0xD's sub-leaves 0, 1 and those
    /// of the baseline's components set whole, the feature masks as bits to
    /// clear, and the sub-leaves of dropped leaves set to zero.
    ///
    /// A template may only touch entries that exist on every host (such
    /// VMMs refuse a modifier for an entry the host's CPUID lacks): leaf 1
    /// sub-leaf 0, leaf 7 sub-leaf 0 and the baseline's leaf 0xD
    /// sub-leaves always qualify; any other entry only when every host's
    /// CPUID ([`PoolHost::cpuid`]) is known and has it. What cannot be
    /// included is listed in [`CpuTemplate::omitted`].
    pub fn template(&self, hosts: &[PoolHost]) -> CpuTemplate {
        let everywhere = |leaf: u32, sub: u32| {
            matches!((leaf, sub), (1, 0) | (7, 0))
                || !hosts.is_empty()
                    && hosts.iter().all(|h| {
                        h.cpuid
                            .as_ref()
                            .is_some_and(|c| c.entry(leaf, sub).is_some())
                    })
        };
        let mut entries: BTreeMap<(u32, u32), Vec<RegisterTemplate>> = BTreeMap::new();
        for (&sub, regs) in &self.cpuid.subleaves {
            let e = entries.entry((0xd, sub)).or_default();
            for reg in Reg::ALL {
                e.push(RegisterTemplate {
                    register: reg,
                    mask: u32::MAX,
                    value: reg.read(regs),
                });
            }
        }
        let mut omitted = Vec::new();
        for m in &self.feature_masks {
            if everywhere(m.leaf, m.subleaf) {
                entries
                    .entry((m.leaf, m.subleaf))
                    .or_default()
                    .push(RegisterTemplate {
                        register: m.register,
                        mask: m.clear,
                        value: 0,
                    });
            } else {
                omitted.push(Omitted::Mask(*m));
            }
        }
        for &leaf in &self.drop_leaves {
            let subs: Vec<u32> = match hosts.first().and_then(|h| h.cpuid.as_ref()) {
                Some(c) => c
                    .iter()
                    .filter(|&(l, s, _)| l == leaf && everywhere(l, s))
                    .map(|(_, s, _)| s)
                    .collect(),
                None => Vec::new(),
            };
            if subs.is_empty() {
                omitted.push(Omitted::Leaf(leaf));
            }
            for s in subs {
                let e = entries.entry((leaf, s)).or_default();
                e.clear();
                for reg in Reg::ALL {
                    e.push(RegisterTemplate {
                        register: reg,
                        mask: u32::MAX,
                        value: 0,
                    });
                }
            }
        }
        CpuTemplate {
            entries: entries
                .into_iter()
                .map(|((leaf, subleaf), mut registers)| {
                    registers.sort_by_key(|r| r.register);
                    merge(&mut registers);
                    TemplateEntry {
                        leaf,
                        subleaf,
                        indexed: is_known_indexed(leaf),
                        registers,
                    }
                })
                .collect(),
            omitted,
        }
    }
}

/// Merges the templates of one register (sorted by register) into one.
fn merge(registers: &mut Vec<RegisterTemplate>) {
    let mut out: Vec<RegisterTemplate> = Vec::with_capacity(registers.len());
    for r in registers.drain(..) {
        match out.last_mut() {
            Some(last) if last.register == r.register => {
                last.value = (last.value & !r.mask) | (r.value & r.mask);
                last.mask |= r.mask;
            }
            _ => out.push(r),
        }
    }
    *registers = out;
}

/// What a template does to one register: the bits in `mask` become those
/// of `value`, the others stay as the host's KVM offers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterTemplate {
    /// The register.
    pub register: Reg,
    /// The bits set by the template.
    pub mask: u32,
    /// Their values (zero outside `mask`).
    pub value: u32,
}

/// The modifications of one CPUID entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateEntry {
    /// Leaf.
    pub leaf: u32,
    /// Sub-leaf.
    pub subleaf: u32,
    /// Whether the sub-leaf is significant (`KVM_CPUID_FLAG_SIGNIFCANT_INDEX`).
    pub indexed: bool,
    /// One per register touched, in EAX..EDX order.
    pub registers: Vec<RegisterTemplate>,
}

/// Something [`Baseline::template`] could not include: its entry is not
/// known to exist on every host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Omitted {
    /// Feature bits to clear.
    Mask(FeatureMask),
    /// A leaf to drop.
    Leaf(u32),
}

/// A baseline as register modifications ([`Baseline::template`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTemplate {
    /// The entries modified, ascending by leaf and sub-leaf.
    pub entries: Vec<TemplateEntry>,
    /// What could not be included.
    pub omitted: Vec<Omitted>,
}
