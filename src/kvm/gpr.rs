//! All 32 general-purpose registers for instruction emulation: rax..r15
//! from `kvm_regs`, r16..r31 from APX (XSAVE component 19).

use kvm_bindings::kvm_regs;

use crate::access::{AccessError, XstateRead, XstateWrite};

/// Register names by index, in the x86 encoding order.
pub const GPR_NAMES: [&str; 32] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "r16", "r17", "r18", "r19", "r20", "r21", "r22", "r23", "r24", "r25", "r26",
    "r27", "r28", "r29", "r30", "r31",
];

/// A unified view of 32 GPRs over a vCPU's `kvm_regs` and its XSAVE state:
/// a view ([`XsaveView`](crate::XsaveView)) or a
/// [`RegisterFile`](crate::RegisterFile), anything with [`XstateRead`]
/// (and [`XstateWrite`] to set).
///
/// Reading r16..r31 while APX is init gives 0; writing one makes APX live.
/// On a layout without APX, r16..r31 are an error, not a silent zero.
///
/// ```
/// use kvm_bindings::kvm_regs;
/// use xstate::{kvm::Gprs, layout::catalog, XsaveView};
///
/// let layout = catalog::get("intel-diamond-rapids").unwrap();
/// let mut buf = vec![0u8; layout.standard_size() as usize];
/// let mut xstate = XsaveView::new(&mut buf[..], layout).unwrap();
/// let mut regs = kvm_regs::default();
/// let mut gprs = Gprs::new(&mut regs, &mut xstate);
/// gprs.set(3, 7).unwrap();                       // rbx
/// gprs.set_by_name("r20", 0xfeed).unwrap();      // APX
/// assert_eq!(gprs.get_by_name("rbx").unwrap(), 7);
/// assert_eq!(gprs.get(20).unwrap(), 0xfeed);
/// assert_eq!(regs.rbx, 7);
/// ```
#[derive(Debug)]
pub struct Gprs<'r, S: ?Sized> {
    regs: &'r mut kvm_regs,
    xstate: &'r mut S,
}

fn slot(regs: &mut kvm_regs, i: usize) -> &mut u64 {
    match i {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        _ => &mut regs.r15,
    }
}

fn bad_index(index: usize) -> AccessError {
    AccessError::NoRegister {
        family: "gpr",
        index,
    }
}

/// The index of a register name (`rax`..`r31`).
pub(super) fn index_of(name: &str) -> Option<usize> {
    GPR_NAMES.iter().position(|n| *n == name)
}

impl<'r, S: XstateRead + ?Sized> Gprs<'r, S> {
    /// Combines a vCPU's `kvm_regs` and its XSAVE state.
    pub fn new(regs: &'r mut kvm_regs, xstate: &'r mut S) -> Self {
        Gprs { regs, xstate }
    }

    /// GPR `index` (0..32).
    ///
    /// # Errors
    ///
    /// [`AccessError::NoRegister`] past 31; for r16..r31, the state's error
    /// when it has no APX.
    pub fn get(&mut self, index: usize) -> Result<u64, AccessError> {
        match index {
            0..=15 => Ok(*slot(self.regs, index)),
            16..=31 => self.xstate.r(index),
            _ => Err(bad_index(index)),
        }
    }

    /// GPR by name.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); an unknown name is [`AccessError::NoRegister`].
    pub fn get_by_name(&mut self, name: &str) -> Result<u64, AccessError> {
        self.get(index_of(name).ok_or(bad_index(usize::MAX))?)
    }
}

impl<S: XstateWrite + ?Sized> Gprs<'_, S> {
    /// Sets GPR `index` (0..32); r16..r31 make APX live.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub fn set(&mut self, index: usize, value: u64) -> Result<(), AccessError> {
        match index {
            0..=15 => {
                *slot(self.regs, index) = value;
                Ok(())
            }
            16..=31 => self.xstate.set_r(index, value),
            _ => Err(bad_index(index)),
        }
    }

    /// Sets a GPR by name.
    ///
    /// # Errors
    ///
    /// As [`get_by_name`](Self::get_by_name).
    pub fn set_by_name(&mut self, name: &str, value: u64) -> Result<(), AccessError> {
        self.set(index_of(name).ok_or(bad_index(usize::MAX))?, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::catalog;
    use crate::{ComponentId, XsaveView};

    #[test]
    fn r16_to_r31_follow_apx_init_rules() {
        let dmr = catalog::get("intel-diamond-rapids").unwrap();
        let mut buf = vec![0x77u8; dmr.standard_size() as usize];
        buf[512..576].fill(0);
        let mut view = XsaveView::new(&mut buf[..], dmr).unwrap();
        let mut regs = kvm_regs::default();
        let mut g = Gprs::new(&mut regs, &mut view);
        for i in 16..32 {
            assert_eq!(g.get(i).unwrap(), 0, "r{i} reads 0 while APX is init");
        }
        g.set(17, 0xabc).unwrap();
        assert_eq!(g.get(17).unwrap(), 0xabc);
        assert_eq!(g.get(16).unwrap(), 0, "the rest of APX initialized");
        assert!(view.is_live(ComponentId::APX));
        for (i, name) in GPR_NAMES.iter().enumerate() {
            assert_eq!(index_of(name), Some(i));
        }
    }

    #[test]
    fn r16_without_apx_is_an_error() {
        let zen4 = catalog::get("amd-zen4").unwrap();
        let mut buf = vec![0u8; 4096];
        let mut view = XsaveView::new(&mut buf[..], zen4).unwrap();
        let mut regs = kvm_regs::default();
        let mut g = Gprs::new(&mut regs, &mut view);
        assert!(matches!(
            g.get(16),
            Err(AccessError::NoComponent {
                component: ComponentId::APX,
                ..
            })
        ));
        assert!(matches!(
            g.set(31, 1),
            Err(AccessError::NoComponent {
                component: ComponentId::APX,
                ..
            })
        ));
        assert!(g.get(32).is_err());
        g.set_by_name("r15", 9).unwrap();
        assert_eq!(regs.r15, 9);
    }
}
