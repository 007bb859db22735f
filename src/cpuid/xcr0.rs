//! The rules an XCR0 value must follow: XSETBV raises #GP and
//! `KVM_SET_XCRS` returns EINVAL when one is broken.
//!
//! Source: Intel SDM Vol. 1 §13.3 ("Enabling the XSAVE feature set and
//! XSAVE-enabled features") and Vol. 2 XSETBV (#GP conditions); the APX rule
//! from the Intel APX architecture specification and KVM's `__kvm_set_xcr()`
//! (BNDREGS and APX refused together).
//!
//! The rules, as a table ([`Rule::ALL`]):
//!
//! | rule | bits |
//! |------|------|
//! | x87 always set | 0 |
//! | AVX needs SSE | 2 → 1 |
//! | AVX-512 needs AVX and SSE | 5-7 → 1-2 |
//! | AVX-512 all or none | 5, 6, 7 |
//! | MPX both or none | 3, 4 |
//! | AMX both or none | 17, 18 |
//! | never MPX with APX | 3-4 vs 19 |
//! | never a supervisor component | 8, 10-16 |
//! | bit 63 reserved | 63 |
//!
//! The last two hold whatever the CPU: supervisor components (PT, PASID,
//! CET_U, CET_S, HDC, UINTR, arch LBR, HWP) are enabled in IA32_XSS and
//! never enumerated in leaf 0xD sub-leaf 0 (SDM Vol. 1 §13.2, §13.3), and
//! bit 63 is reserved for a future extension of the bit vectors (SDM Vol. 1
//! §13.3: XSETBV #GP if a reserved bit is set). IA32_XSS has the mirror
//! rules ([`xss_invalid`]): never a user component, never bit 63 (SDM
//! Vol. 1 §13.3, Vol. 4 IA32_XSS).
//!
//! Whether a bit is supported at all is the CPU's business (CPUID leaf 0xD),
//! not a rule here. Nothing here allocates.
//!
//! ```
//! use xstate::cpuid::xcr0::{sanitize, violations, Rule};
//! use xstate::{ComponentId, Xfeatures};
//!
//! assert_eq!(violations(Xfeatures::from_bits(0x602e7)).count(), 0);
//! let v: Vec<_> = violations(Xfeatures::from_bits(0x27)).collect();
//! assert_eq!(v.len(), 1);
//! assert_eq!(v[0].rule, Rule::Avx512AllOrNone);
//!
//! let fixed = sanitize(Xfeatures::from_bits(0x27)).unwrap();
//! assert_eq!(fixed.xcr0.bits(), 0x7);
//! assert_eq!(fixed.dropped().collect::<Vec<_>>(), [(ComponentId::OPMASK, Rule::Avx512AllOrNone)]);
//! ```

use core::fmt;

use crate::component::{ComponentId, Xfeatures, COMPONENTS, KNOWN_COMPONENTS};

/// The known supervisor components, enabled in IA32_XSS (PT, PASID, CET_U,
/// CET_S, HDC, UINTR, arch LBR, HWP: bits 8 and 10-16), from the component
/// table ([`COMPONENTS`]).
pub const SUPERVISOR: Xfeatures = {
    let mut bits = 0u64;
    let mut i = 0;
    while i < KNOWN_COMPONENTS {
        if COMPONENTS[i].supervisor {
            bits |= 1 << i;
        }
        i += 1;
    }
    Xfeatures::from_bits(bits)
};

/// The known user components, enabled in XCR0 (bits 0-7, 9, 17-19), from
/// the component table.
pub const USER: Xfeatures =
    Xfeatures::from_bits(((1u64 << KNOWN_COMPONENTS) - 1) & !SUPERVISOR.bits());

/// Bit 63 of XCR0 and IA32_XSS: reserved (it would extend the bit vector),
/// never a component.
pub const RESERVED: Xfeatures = Xfeatures::from_bits(1 << 63);

/// x87 (bit 0).
const X87: Xfeatures = ComponentId::X87.bit();
/// SSE (bit 1).
const SSE: Xfeatures = ComponentId::SSE.bit();
/// AVX (bit 2).
const AVX: Xfeatures = ComponentId::AVX.bit();
/// MPX BNDREGS and BNDCSR (bits 3-4).
const MPX: Xfeatures = Xfeatures::from_bits(0b11 << 3);
/// AVX-512 opmask, ZMM_Hi256, Hi16_ZMM (bits 5-7).
const AVX512: Xfeatures = Xfeatures::from_bits(0b111 << 5);
/// AMX TILECFG and TILEDATA (bits 17-18).
const AMX: Xfeatures = Xfeatures::from_bits(0b11 << 17);
/// APX (bit 19).
const APX: Xfeatures = ComponentId::APX.bit();

/// One XCR0 rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// x87 (bit 0) must always be set.
    X87Required,
    /// AVX (bit 2) needs SSE (bit 1).
    AvxNeedsSse,
    /// AVX-512 (bits 5-7) needs AVX and SSE (bits 1-2).
    Avx512NeedsAvx,
    /// AVX-512 bits 5-7 are all set or all clear.
    Avx512AllOrNone,
    /// MPX bits 3 and 4 are both set or both clear.
    MpxTogether,
    /// AMX bits 17 and 18 are both set or both clear.
    AmxTogether,
    /// MPX (bits 3-4) and APX (bit 19) are never set together.
    NoMpxWithApx,
    /// Supervisor components (bits 8, 10-16) are enabled in IA32_XSS, never
    /// in XCR0.
    NoSupervisor,
    /// Bit 63 is reserved.
    Bit63Reserved,
}

/// How a rule constrains the bits, so that checking and fixing share one table.
#[derive(Clone, Copy)]
enum Shape {
    /// These bits must be set.
    Required(Xfeatures),
    /// If any of `when` is set, all of `needs` must be.
    Needs { when: Xfeatures, needs: Xfeatures },
    /// All of these bits or none.
    AllOrNone(Xfeatures),
    /// Not both sides; a fix drops `drop`.
    Exclusive { drop: Xfeatures, keep: Xfeatures },
    /// None of these bits, ever.
    Forbidden(Xfeatures),
}

impl Rule {
    /// Every rule, in the order [`sanitize`] applies them.
    pub const ALL: [Rule; 9] = [
        Rule::X87Required,
        Rule::AvxNeedsSse,
        Rule::Avx512NeedsAvx,
        Rule::Avx512AllOrNone,
        Rule::MpxTogether,
        Rule::AmxTogether,
        Rule::NoMpxWithApx,
        Rule::NoSupervisor,
        Rule::Bit63Reserved,
    ];

    const fn shape(self) -> Shape {
        match self {
            Rule::X87Required => Shape::Required(X87),
            Rule::AvxNeedsSse => Shape::Needs {
                when: AVX,
                needs: SSE,
            },
            Rule::Avx512NeedsAvx => Shape::Needs {
                when: AVX512,
                needs: SSE.union(AVX),
            },
            Rule::Avx512AllOrNone => Shape::AllOrNone(AVX512),
            Rule::MpxTogether => Shape::AllOrNone(MPX),
            Rule::AmxTogether => Shape::AllOrNone(AMX),
            // MPX is the one dropped: it is deprecated (gone from Linux since
            // 5.6 and from GCC since 9.1), APX is the live feature.
            Rule::NoMpxWithApx => Shape::Exclusive {
                drop: MPX,
                keep: APX,
            },
            Rule::NoSupervisor => Shape::Forbidden(SUPERVISOR),
            Rule::Bit63Reserved => Shape::Forbidden(RESERVED),
        }
    }

    /// The rule as a sentence.
    pub const fn description(self) -> &'static str {
        match self {
            Rule::X87Required => "x87 (bit 0) must always be set",
            Rule::AvxNeedsSse => "AVX (bit 2) needs SSE (bit 1)",
            Rule::Avx512NeedsAvx => "AVX-512 (bits 5-7) needs AVX and SSE (bits 1-2)",
            Rule::Avx512AllOrNone => {
                "AVX-512 opmask, ZMM_Hi256 and Hi16_ZMM (bits 5-7) must be all set or all clear"
            }
            Rule::MpxTogether => "MPX BNDREGS and BNDCSR (bits 3-4) must be both set or both clear",
            Rule::AmxTogether => {
                "AMX TILECFG and TILEDATA (bits 17-18) must be both set or both clear"
            }
            Rule::NoMpxWithApx => "MPX (bits 3-4) and APX (bit 19) must not be set together",
            Rule::NoSupervisor => {
                "supervisor components (PT, PASID, CET_U, CET_S, HDC, UINTR, LBR, HWP: bits 8, \
                 10-16) belong in IA32_XSS, never in XCR0"
            }
            Rule::Bit63Reserved => "bit 63 is reserved, never a component",
        }
    }

    /// The components of `xcr0` that break this rule (the ones a fix would
    /// drop, or for [`Rule::X87Required`] the missing x87); empty when it
    /// holds.
    pub const fn offending(self, xcr0: Xfeatures) -> Xfeatures {
        match self.shape() {
            Shape::Required(bits) => bits.difference(xcr0),
            Shape::Needs { when, needs } => {
                if xcr0.intersects(when) && !xcr0.contains_all(needs) {
                    xcr0.intersection(when)
                } else {
                    Xfeatures::EMPTY
                }
            }
            Shape::AllOrNone(bits) => {
                let set = xcr0.intersection(bits);
                if !set.is_empty() && set.bits() != bits.bits() {
                    set
                } else {
                    Xfeatures::EMPTY
                }
            }
            Shape::Exclusive { drop, keep } => {
                if xcr0.intersects(drop) && xcr0.intersects(keep) {
                    xcr0.intersection(drop)
                } else {
                    Xfeatures::EMPTY
                }
            }
            Shape::Forbidden(bits) => xcr0.intersection(bits),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// One broken rule in one XCR0 value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The XCR0 value checked.
    pub xcr0: Xfeatures,
    /// The components at fault: those a fix drops, or the missing x87.
    pub bits: Xfeatures,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Rule::X87Required => write!(f, "XCR0 {} breaks a rule: {}", self.xcr0, self.rule),
            _ => write!(
                f,
                "XCR0 {} breaks a rule: {} (bits at fault: {})",
                self.xcr0, self.rule, self.bits
            ),
        }
    }
}

/// Why [`sanitize`] cannot fix a value.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Xcr0Error {
    /// x87 (bit 0) is clear: no subset of the value is valid.
    #[error(
        "XCR0 {xcr0} lacks x87 (bit 0), which every XCR0 must have; dropping bits cannot fix it"
    )]
    MissingX87 {
        /// The value.
        xcr0: Xfeatures,
    },
}

/// Every rule `xcr0` breaks, in [`Rule::ALL`] order; none when XSETBV
/// would accept it (supported bits aside).
pub fn violations(xcr0: Xfeatures) -> impl Iterator<Item = Violation> + Clone {
    Rule::ALL.into_iter().filter_map(move |rule| {
        let bits = rule.offending(xcr0);
        (!bits.is_empty()).then_some(Violation { rule, xcr0, bits })
    })
}

/// Whether XSETBV accepts `xcr0` as far as the rules go (supported bits
/// aside).
pub fn is_valid(xcr0: Xfeatures) -> bool {
    violations(xcr0).next().is_none()
}

/// What [`sanitize`] made of a value: the valid part, and the rule that
/// dropped each component that went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sanitized {
    /// The largest valid part of the value given.
    pub xcr0: Xfeatures,
    /// Indexed by component number: the rule that dropped it.
    dropped_by: [Option<Rule>; 64],
}

impl Sanitized {
    /// Every dropped component with the rule that dropped it, ascending by
    /// component.
    pub fn dropped(&self) -> impl Iterator<Item = (ComponentId, Rule)> + '_ {
        self.dropped_by.iter().enumerate().filter_map(|(i, r)| {
            let rule = (*r)?;
            Some((ComponentId::new(i as u8)?, rule))
        })
    }

    /// The rule that dropped `component`, if it was dropped.
    pub fn rule_for(&self, component: ComponentId) -> Option<Rule> {
        self.dropped_by[component.index() as usize]
    }
}

/// The largest part of `xcr0` that breaks no rule, found by dropping bits,
/// with the rule that dropped each component. The result is always a
/// subset of `xcr0`: sanitize never adds a bit.
///
/// What goes: AVX without SSE, AVX-512 without AVX and SSE, a partial
/// AVX-512, MPX or AMX group, MPX when APX is set too (APX stays), every
/// supervisor component and bit 63.
///
/// # Errors
///
/// [`Xcr0Error::MissingX87`] when bit 0 is clear. Adding x87 would return
/// bits the caller did not give, and dropping cannot help: a value without
/// x87 is not an XCR0 any CPU produces, so it is refused as corrupt.
pub fn sanitize(xcr0: Xfeatures) -> Result<Sanitized, Xcr0Error> {
    if !xcr0.contains(ComponentId::X87) {
        return Err(Xcr0Error::MissingX87 { xcr0 });
    }
    let mut out = Sanitized {
        xcr0,
        dropped_by: [None; 64],
    };
    // Each pass only clears bits, and the rules' dependencies point down the
    // table (AVX-512 after AVX), so one pass settles it; loop to be sure.
    loop {
        let mut changed = false;
        for rule in Rule::ALL {
            let bits = rule.offending(out.xcr0);
            if bits.is_empty() {
                continue;
            }
            out.xcr0 -= bits;
            for c in bits {
                out.dropped_by[c.index() as usize] = Some(rule);
            }
            changed = true;
        }
        if !changed {
            return Ok(out);
        }
    }
}

/// The smallest XCR0 that has `component` and breaks no rule: x87, the
/// component, and whatever the rules make it need (AVX-512 brings all of
/// bits 1, 2 and 5-7). The standard-format size of any valid XCR0 is the
/// size of this value for its furthest-reaching component. A component no
/// XCR0 may hold (a supervisor one, bit 63) gives x87 and itself, which
/// breaks a rule: no valid XCR0 has it.
///
/// ```
/// use xstate::cpuid::xcr0::minimal_with;
/// use xstate::ComponentId;
/// assert_eq!(minimal_with(ComponentId::ZMM_HI256).bits(), 0xe7);
/// assert_eq!(minimal_with(ComponentId::PKRU).bits(), 0x201);
/// ```
pub fn minimal_with(component: ComponentId) -> Xfeatures {
    let mut value = X87 | component.bit();
    loop {
        let before = value;
        for rule in Rule::ALL {
            match rule.shape() {
                Shape::Required(bits) => value |= bits,
                Shape::Needs { when, needs } if value.intersects(when) => value |= needs,
                Shape::AllOrNone(bits) if value.intersects(bits) => value |= bits,
                _ => {}
            }
        }
        if value == before {
            return value;
        }
    }
}

/// The bits of an IA32_XSS value that no CPU accepts: user components
/// ([`USER`]: x87, SSE, AVX, MPX, AVX-512, PKRU, AMX, APX, which are
/// XCR0's) and bit 63 ([`RESERVED`]). Empty when the value is possible
/// (supported bits aside). Components 20-62 are left to the CPU to judge.
///
/// ```
/// use xstate::cpuid::xcr0::xss_invalid;
/// use xstate::Xfeatures;
/// assert!(xss_invalid(Xfeatures::from_bits(0xdd00)).is_empty());
/// assert_eq!(xss_invalid(Xfeatures::from_bits(0x8000_0000_0000_1a00)).bits(), 0x8000_0000_0000_0200);
/// ```
pub const fn xss_invalid(xss: Xfeatures) -> Xfeatures {
    xss.intersection(USER.union(RESERVED))
}
