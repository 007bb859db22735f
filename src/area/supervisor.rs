//! The values of supervisor components that XRSTORS refuses: it loads each
//! field as WRMSR would load its MSR, and faults (#GP) on a value WRMSR
//! refuses. Checked conservatively: only what every CPU refuses, so a value
//! accepted here may still fault on a CPU with fewer address bits.
//!
//! Sources: Intel SDM vol. 1, 13.5.4-13.5.6 (PASID, CET state) and vol. 4
//! (IA32_U_CET, IA32_PLx_SSP, IA32_PASID); Linux `arch/x86/kvm/x86.c`
//! (`kvm_set_msr_common`: CET_US reserved bits 9:6, SSPs canonical and
//! 4-byte aligned). PT, UINTR, HDC, HWP and arch LBR values are not checked.

use crate::component::ComponentId;

/// Why XRSTORS would refuse a supervisor component's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{component} {field} is {value:#x}: {rule}")]
pub struct SupervisorValueError {
    /// The component.
    pub component: ComponentId,
    /// The field (its MSR's name).
    pub field: &'static str,
    /// Its value.
    pub value: u64,
    /// The rule it breaks.
    pub rule: &'static str,
}

/// One 64-bit field of a supervisor component and what WRMSR takes in it.
struct FieldRule {
    component: ComponentId,
    /// Offset in bytes in the component.
    offset: usize,
    field: &'static str,
    holds: fn(u64) -> bool,
    rule: &'static str,
}

/// Canonical for the widest linear addresses (57 bits, LA57): bits 63:57
/// equal bit 56. A value that is not is non-canonical on every CPU.
const fn canonical(v: u64) -> bool {
    (((v << 7) as i64) >> 7) as u64 == v
}

/// A shadow-stack pointer: canonical and 4-byte aligned.
const fn ssp(v: u64) -> bool {
    canonical(v) && v & 3 == 0
}

const SSP_RULE: &str = "a shadow-stack pointer is canonical and 4-byte aligned";

/// Every field checked, by component.
const RULES: &[FieldRule] = &[
    FieldRule {
        component: ComponentId::PASID,
        offset: 0,
        field: "IA32_PASID",
        // PASID in bits 19:0, valid in bit 31.
        holds: |v| v & !(0xF_FFFF | 1 << 31) == 0,
        rule: "bits 30:20 and 63:32 are reserved",
    },
    FieldRule {
        component: ComponentId::CET_U,
        offset: 0,
        field: "IA32_U_CET",
        holds: |v| v & 0x3C0 == 0 && canonical(v & !0xFFF),
        rule: "bits 9:6 are reserved and the legacy bitmap base (63:12) is canonical",
    },
    FieldRule {
        component: ComponentId::CET_U,
        offset: 8,
        field: "IA32_PL3_SSP",
        holds: ssp,
        rule: SSP_RULE,
    },
    FieldRule {
        component: ComponentId::CET_S,
        offset: 0,
        field: "IA32_PL0_SSP",
        holds: ssp,
        rule: SSP_RULE,
    },
    FieldRule {
        component: ComponentId::CET_S,
        offset: 8,
        field: "IA32_PL1_SSP",
        holds: ssp,
        rule: SSP_RULE,
    },
    FieldRule {
        component: ComponentId::CET_S,
        offset: 16,
        field: "IA32_PL2_SSP",
        holds: ssp,
        rule: SSP_RULE,
    },
];

/// The components [`check_supervisor`] has rules for: every other one passes.
#[cfg(feature = "alloc")]
pub(crate) const CHECKED: crate::component::Xfeatures = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < RULES.len() {
        bits |= 1 << RULES[i].component.index();
        i += 1;
    }
    crate::component::Xfeatures::from_bits(bits)
};

/// Checks the bytes of a live `component` as XRSTORS would load them.
///
/// ```
/// use xstate::area::check_supervisor;
/// use xstate::ComponentId;
///
/// let mut cet_u = [0u8; 16];
/// assert!(check_supervisor(ComponentId::CET_U, &cet_u).is_ok());
/// cet_u[8] = 2; // IA32_PL3_SSP not 4-byte aligned
/// assert_eq!(check_supervisor(ComponentId::CET_U, &cet_u).unwrap_err().field, "IA32_PL3_SSP");
/// ```
///
/// # Errors
///
/// The first field whose value XRSTORS refuses. Components and fields this
/// module does not know, and bytes too short to hold a field, pass.
pub fn check_supervisor(component: ComponentId, bytes: &[u8]) -> Result<(), SupervisorValueError> {
    for r in RULES.iter().filter(|r| r.component == component) {
        let Some(field) = bytes.get(r.offset..r.offset + 8) else {
            continue;
        };
        let mut le = [0u8; 8];
        le.copy_from_slice(field);
        let value = u64::from_le_bytes(le);
        if !(r.holds)(value) {
            return Err(SupervisorValueError {
                component,
                field: r.field,
                value,
                rule: r.rule,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(component: ComponentId, len: usize, at: usize, v: u64) -> Result<(), &'static str> {
        let mut b = [0u8; 24];
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        check_supervisor(component, &b[..len]).map_err(|e| e.field)
    }

    #[test]
    fn what_wrmsr_refuses_xrstors_refuses() {
        let (u, s, p) = (ComponentId::CET_U, ComponentId::CET_S, ComponentId::PASID);
        // Accepted: a bitmap base and SSPs in the upper half, aligned.
        assert_eq!(with(u, 16, 0, 0xFFFF_8000_0000_1000 | 0x3F), Ok(()));
        assert_eq!(with(u, 16, 8, 0xFFFF_FFFF_FFFF_FFF8), Ok(()));
        assert_eq!(with(s, 24, 16, 0x7FFF_FFFF_F000), Ok(()));
        assert_eq!(with(p, 8, 0, 1 << 31 | 0xABCDE), Ok(()));
        // Refused.
        assert_eq!(with(u, 16, 0, 0x40), Err("IA32_U_CET"));
        assert_eq!(with(u, 16, 0, 0x8000_0000_0000_0000), Err("IA32_U_CET"));
        assert_eq!(with(u, 16, 8, 0x8000_0000_0000_0000), Err("IA32_PL3_SSP"));
        assert_eq!(with(u, 16, 8, 0x1001), Err("IA32_PL3_SSP"));
        assert_eq!(with(s, 24, 8, 2), Err("IA32_PL1_SSP"));
        assert_eq!(with(s, 24, 16, 1 << 60), Err("IA32_PL2_SSP"));
        assert_eq!(with(p, 8, 0, 1 << 20), Err("IA32_PASID"));
        assert_eq!(with(p, 8, 0, 1 << 32), Err("IA32_PASID"));
        // Unchecked components pass.
        assert_eq!(with(ComponentId::PT, 24, 0, u64::MAX), Ok(()));
    }
}
