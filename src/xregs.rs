//! The registers that decide how an XSAVE area is read but live outside
//! it: XCR0, IA32_XSS, IA32_XFD and IA32_XFD_ERR.
//!
//! XCR0 and IA32_XSS say which components are enabled (and so which an
//! area of the compacted format holds); IA32_XFD disables components
//! (XSAVE then saves them as init, and `KVM_SET_XSAVE` drops them); and
//! IA32_XFD_ERR records which disabled component a guest touched. A VMM
//! that moves a vCPU must carry them with the area: a missing IA32_XSS was
//! a real snapshot bug in a VMM. Intel SDM vol. 1, 13.3 and 13.14.
//!
//! ```
//! use xstate::xregs::XstateRegisters;
//! use xstate::{ComponentId, Xfeatures};
//!
//! let mut regs = XstateRegisters::with_xcr0(Xfeatures::from_bits(0x602e7));
//! regs.xfd = ComponentId::TILEDATA.bit();
//! assert_eq!(regs.enabled().bits(), 0x202e7); // tile data disabled
//! ```

use crate::component::Xfeatures;

/// MSR number of IA32_XSS.
pub const MSR_IA32_XSS: u32 = 0xDA0;
/// MSR number of IA32_XFD.
pub const MSR_IA32_XFD: u32 = 0x1C4;
/// MSR number of IA32_XFD_ERR.
pub const MSR_IA32_XFD_ERR: u32 = 0x1C5;

/// A vCPU's (or thread's) extended-state control registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XstateRegisters {
    /// XCR0: the user components enabled.
    pub xcr0: Xfeatures,
    /// IA32_XSS: the supervisor components enabled.
    pub xss: Xfeatures,
    /// IA32_XFD: the components disabled by extended feature disable.
    pub xfd: Xfeatures,
    /// IA32_XFD_ERR: the disabled components a #NM was raised for.
    pub xfd_err: Xfeatures,
}

impl XstateRegisters {
    /// XCR0 `xcr0`, every other register 0.
    pub fn with_xcr0(xcr0: Xfeatures) -> XstateRegisters {
        XstateRegisters {
            xcr0,
            xss: Xfeatures::EMPTY,
            xfd: Xfeatures::EMPTY,
            xfd_err: Xfeatures::EMPTY,
        }
    }

    /// The components XSAVE saves live: enabled in XCR0 or IA32_XSS and
    /// not disabled in IA32_XFD.
    pub fn enabled(&self) -> Xfeatures {
        (self.xcr0 | self.xss) - self.xfd
    }
}
