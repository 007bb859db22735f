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

use crate::component::{Xfeatures, XFD_CAPABLE};
use crate::cpuid::xcr0::{Rule, RESERVED, USER};

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

/// One of the four registers of [`XstateRegisters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Xreg {
    /// XCR0 (`XGETBV`/`XSETBV`; KVM: `KVM_GET_XCRS` / `KVM_SET_XCRS`).
    Xcr0,
    /// IA32_XSS, MSR 0xDA0.
    Xss,
    /// IA32_XFD, MSR 0x1C4.
    Xfd,
    /// IA32_XFD_ERR, MSR 0x1C5.
    XfdErr,
}

impl Xreg {
    /// The four, in the order the stream and the KVM helpers carry them.
    pub const ALL: [Xreg; 4] = [Xreg::Xcr0, Xreg::Xss, Xreg::Xfd, Xreg::XfdErr];

    /// The register's name in the SDM's terms (`IA32_XFD`).
    pub const fn name(self) -> &'static str {
        match self {
            Xreg::Xcr0 => "XCR0",
            Xreg::Xss => "IA32_XSS",
            Xreg::Xfd => "IA32_XFD",
            Xreg::XfdErr => "IA32_XFD_ERR",
        }
    }

    /// The MSR number, or `None` for XCR0 (an extended control register).
    pub const fn msr(self) -> Option<u32> {
        match self {
            Xreg::Xcr0 => None,
            Xreg::Xss => Some(MSR_IA32_XSS),
            Xreg::Xfd => Some(MSR_IA32_XFD),
            Xreg::XfdErr => Some(MSR_IA32_XFD_ERR),
        }
    }
}

impl core::fmt::Display for Xreg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why register values are impossible: no CPU holds them and KVM refuses
/// them (`KVM_SET_XCRS`, `KVM_SET_MSRS`) or drops state under them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XregsError {
    /// XCR0 breaks a rule of XSETBV (which `KVM_SET_XCRS` applies too).
    #[error("XCR0 {xcr0} breaks an XSETBV rule: {rule}")]
    Xcr0 {
        /// The value.
        xcr0: Xfeatures,
        /// The rule, in words.
        rule: &'static str,
    },
    /// IA32_XSS names user components (or bit 63).
    #[error("IA32_XSS {xss} has {bad}, which it cannot enable: only supervisor components belong in IA32_XSS")]
    Xss {
        /// The value.
        xss: Xfeatures,
        /// The bits it may not have.
        bad: Xfeatures,
    },
    /// A component enabled in both XCR0 and IA32_XSS.
    #[error("{both} enabled in both XCR0 and IA32_XSS: a component is either user or supervisor")]
    Both {
        /// The components in both.
        both: Xfeatures,
    },
    /// IA32_XFD or IA32_XFD_ERR names components extended feature disable
    /// does not apply to.
    #[error("{register} {value} has {bad}, which extended feature disable does not apply to (of the known components only AMX TILEDATA supports it)")]
    NotXfdCapable {
        /// IA32_XFD or IA32_XFD_ERR.
        register: Xreg,
        /// The value.
        value: Xfeatures,
        /// The bits it may not have.
        bad: Xfeatures,
    },
    /// Components live in XSTATE_BV while IA32_XFD disables them.
    #[error("XSTATE_BV has {live} live while IA32_XFD {xfd} disables them: XSAVE saves such components as init and KVM_SET_XSAVE drops them")]
    XfdDisabledLive {
        /// IA32_XFD.
        xfd: Xfeatures,
        /// The live components it disables.
        live: Xfeatures,
    },
}

impl XregsError {
    /// The register the fault is in (IA32_XFD for live state it disables).
    pub const fn register(&self) -> Xreg {
        match self {
            XregsError::Xcr0 { .. } => Xreg::Xcr0,
            XregsError::Xss { .. } | XregsError::Both { .. } => Xreg::Xss,
            XregsError::NotXfdCapable { register, .. } => *register,
            XregsError::XfdDisabledLive { .. } => Xreg::Xfd,
        }
    }
}

/// The first XSETBV rule `xcr0` breaks, as a sentence (SDM vol. 1, 13.3;
/// the checks of KVM's `__kvm_set_xcr` in `arch/x86/kvm/x86.c`): the one
/// rule table of [`crate::cpuid::xcr0`].
fn broken_xcr0_rule(xcr0: Xfeatures) -> Option<&'static str> {
    Rule::ALL
        .iter()
        .find(|r| !r.offending(xcr0).is_empty())
        .map(|r| r.description())
}

impl XstateRegisters {
    /// The value of `reg`.
    pub const fn get(&self, reg: Xreg) -> Xfeatures {
        match reg {
            Xreg::Xcr0 => self.xcr0,
            Xreg::Xss => self.xss,
            Xreg::Xfd => self.xfd,
            Xreg::XfdErr => self.xfd_err,
        }
    }

    /// Sets `reg` to `value`.
    pub fn set(&mut self, reg: Xreg, value: Xfeatures) {
        match reg {
            Xreg::Xcr0 => self.xcr0 = value,
            Xreg::Xss => self.xss = value,
            Xreg::Xfd => self.xfd = value,
            Xreg::XfdErr => self.xfd_err = value,
        }
    }

    /// Checks that the four values are possible, independent of any CPU:
    ///
    /// - XCR0 keeps the XSETBV rules (x87 set; AVX needs SSE; MPX's two,
    ///   AVX-512's three and AMX's two bits go together, AVX-512 needs AVX;
    ///   no MPX with APX; no supervisor component; not bit 63);
    /// - IA32_XSS holds no user component (0..=7, 9, 17..=19) and not bit 63;
    /// - no component is in both;
    /// - IA32_XFD and IA32_XFD_ERR name only components that support
    ///   extended feature disable: AMX TILEDATA among the known ones, and
    ///   any component 20..=62 (unknown here, left to the CPU).
    ///
    /// What a given CPU or KVM supports is judged elsewhere (the layout,
    /// the vCPU's CPUID).
    ///
    /// ```
    /// use xstate::xregs::{XregsError, XstateRegisters};
    /// use xstate::Xfeatures;
    ///
    /// assert!(XstateRegisters::with_xcr0(Xfeatures::from_bits(0x2e7)).check().is_ok());
    /// let avx_without_sse = XstateRegisters::with_xcr0(Xfeatures::from_bits(0x5));
    /// assert!(matches!(avx_without_sse.check(), Err(XregsError::Xcr0 { .. })));
    /// ```
    ///
    /// # Errors
    ///
    /// The first [`XregsError`] found, in the order of the list above.
    pub fn check(&self) -> Result<(), XregsError> {
        if let Some(rule) = broken_xcr0_rule(self.xcr0) {
            return Err(XregsError::Xcr0 {
                xcr0: self.xcr0,
                rule,
            });
        }
        let bad = self.xss & (USER | RESERVED);
        if !bad.is_empty() {
            return Err(XregsError::Xss { xss: self.xss, bad });
        }
        let both = self.xcr0 & self.xss;
        if !both.is_empty() {
            return Err(XregsError::Both { both });
        }
        for register in [Xreg::Xfd, Xreg::XfdErr] {
            let value = self.get(register);
            let bad = value - XFD_CAPABLE;
            if !bad.is_empty() {
                return Err(XregsError::NotXfdCapable {
                    register,
                    value,
                    bad,
                });
            }
        }
        Ok(())
    }

    /// [`check`](Self::check), and that no component live in `xstate_bv`
    /// is disabled in IA32_XFD: XSAVE saves a disabled component as init
    /// (SDM vol. 1, 13.14), `KVM_GET_XSAVE` returns its XSTATE_BV bit
    /// clear, and `KVM_SET_XSAVE` clears the bit (Linux commit b45f7217,
    /// "x86/fpu: Clear XSTATE_BV\[i\] in guest XSAVE state whenever
    /// XFD\[i\]=1"), so such state never reaches a vCPU.
    ///
    /// Live components outside XCR0 | IA32_XSS are not refused: a vCPU
    /// starts with XCR0 = 1 and uses SSE through FXSAVE (CR4.OSFXSR)
    /// without ever enabling it in XCR0, PKRU is reachable with CR4.PKE
    /// alone, and `KVM_SET_XSAVE` judges XSTATE_BV against the XCR0 KVM
    /// supports, not the vCPU's.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check), then [`XregsError::XfdDisabledLive`].
    pub fn check_state(&self, xstate_bv: Xfeatures) -> Result<(), XregsError> {
        self.check()?;
        let live = xstate_bv & self.xfd;
        if !live.is_empty() {
            return Err(XregsError::XfdDisabledLive {
                xfd: self.xfd,
                live,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::ComponentId;

    fn regs(xcr0: u64, xss: u64, xfd: u64, xfd_err: u64) -> XstateRegisters {
        XstateRegisters {
            xcr0: Xfeatures::from_bits(xcr0),
            xss: Xfeatures::from_bits(xss),
            xfd: Xfeatures::from_bits(xfd),
            xfd_err: Xfeatures::from_bits(xfd_err),
        }
    }

    #[test]
    fn real_values_pass() {
        // Measured or documented XCR0 / XSS / XFD values.
        for (xcr0, xss, xfd) in [
            (0x1, 0, 0),                // a vCPU after reset
            (0x7, 0, 0),                // the test VM
            (0x207, 0x1800, 0),         // AMD Zen 3 with CET
            (0x2e7, 0, 0),              // KVM's guest XCR0 on the Intel host
            (0x602e7, 0x1900, 0x40000), // Sapphire Rapids, tile data disabled
            (0x802e7, 0, 0),            // APX without MPX
            (0x1_0000_0000_0007, 0, 0), // an unknown user component 48
        ] {
            let r = regs(xcr0, xss, xfd, xfd);
            assert_eq!(r.check(), Ok(()), "{r:?}");
        }
    }

    #[test]
    fn every_xcr0_rule_bites() {
        for (xcr0, words) in [
            (0x6, "x87"),
            (0x5, "AVX (bit 2) needs SSE"),
            (0xF, "MPX"),
            (0x67, "AVX-512"),
            (0xE3, "needs AVX"),
            (0x20007, "AMX"),
            (0x8001F, "APX"),
            (0x107, "supervisor"),
            (0x8000_0000_0000_0003, "bit 63"),
        ] {
            match regs(xcr0, 0, 0, 0).check() {
                Err(XregsError::Xcr0 { rule, .. }) => {
                    assert!(rule.contains(words), "{xcr0:#x}: {rule}")
                }
                other => panic!("{xcr0:#x}: {other:?}"),
            }
        }
    }

    #[test]
    fn xss_xfd_and_live_state() {
        assert_eq!(
            regs(0x3, 0x202, 0, 0).check(),
            Err(XregsError::Xss {
                xss: Xfeatures::from_bits(0x202),
                bad: Xfeatures::from_bits(0x202)
            })
        );
        assert_eq!(
            regs(0x1_0000_0000_0003, 0x1_0000_0000_0000, 0, 0).check(),
            Err(XregsError::Both {
                both: Xfeatures::from_bits(0x1_0000_0000_0000)
            })
        );
        let e = regs(0x7, 0, 0, 0x4).check().unwrap_err();
        assert_eq!(e.register(), Xreg::XfdErr);
        assert!(e.to_string().starts_with("IA32_XFD_ERR 0x4 has 0x4"), "{e}");
        let tiles = regs(0x602e7, 0, 0x40000, 0);
        assert_eq!(tiles.check_state(Xfeatures::from_bits(0x20003)), Ok(()));
        assert_eq!(
            tiles.check_state(Xfeatures::from_bits(0x60003)),
            Err(XregsError::XfdDisabledLive {
                xfd: Xfeatures::from_bits(0x40000),
                live: ComponentId::TILEDATA.bit()
            })
        );
        // Live state outside XCR0 is the vCPU's business (SSE with XCR0 = 1).
        assert_eq!(regs(0x1, 0, 0, 0).check_state(Xfeatures::LEGACY), Ok(()));
    }

    #[test]
    fn names_and_msrs() {
        let names: Vec<_> = Xreg::ALL.iter().map(|r| r.to_string()).collect();
        assert_eq!(names, ["XCR0", "IA32_XSS", "IA32_XFD", "IA32_XFD_ERR"]);
        assert_eq!(Xreg::Xcr0.msr(), None);
        assert_eq!(Xreg::XfdErr.msr(), Some(0x1C5));
        let mut r = XstateRegisters::with_xcr0(Xfeatures::LEGACY);
        r.set(Xreg::Xfd, ComponentId::TILEDATA.bit());
        assert_eq!(r.get(Xreg::Xfd), ComponentId::TILEDATA.bit());
    }
}
