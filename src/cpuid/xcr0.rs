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
//!
//! Whether a bit is supported at all is the CPU's business (CPUID leaf 0xD),
//! not a rule here.
//!
//! ```
//! use xstate::cpuid::xcr0::{sanitize, violations, Rule};
//!
//! assert!(violations(0x602e7).is_empty());
//! let v = violations(0x27);
//! assert_eq!(v.len(), 1);
//! assert_eq!(v[0].rule, Rule::Avx512AllOrNone);
//!
//! let (fixed, dropped) = sanitize(0x27).unwrap();
//! assert_eq!(fixed, 0x7);
//! assert_eq!(dropped, vec![(5, Rule::Avx512AllOrNone)]);
//! ```

use std::fmt;

use thiserror::Error;

/// x87 (bit 0).
const X87: u64 = 1 << 0;
/// SSE (bit 1).
const SSE: u64 = 1 << 1;
/// AVX (bit 2).
const AVX: u64 = 1 << 2;
/// MPX BNDREGS and BNDCSR (bits 3-4).
const MPX: u64 = 0b11 << 3;
/// AVX-512 opmask, ZMM_Hi256, Hi16_ZMM (bits 5-7).
const AVX512: u64 = 0b111 << 5;
/// AMX TILECFG and TILEDATA (bits 17-18).
const AMX: u64 = 0b11 << 17;
/// APX (bit 19).
const APX: u64 = 1 << 19;

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
}

/// How a rule constrains the bits, so that checking and fixing share one table.
#[derive(Clone, Copy)]
enum Shape {
    /// These bits must be set.
    Required(u64),
    /// If any of `when` is set, all of `needs` must be.
    Needs { when: u64, needs: u64 },
    /// All of these bits or none.
    AllOrNone(u64),
    /// Not both sides; a fix drops `drop`.
    Exclusive { drop: u64, keep: u64 },
}

impl Rule {
    /// Every rule, in the order [`sanitize`] applies them.
    pub const ALL: [Rule; 7] = [
        Rule::X87Required,
        Rule::AvxNeedsSse,
        Rule::Avx512NeedsAvx,
        Rule::Avx512AllOrNone,
        Rule::MpxTogether,
        Rule::AmxTogether,
        Rule::NoMpxWithApx,
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
                needs: SSE | AVX,
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
        }
    }

    /// The bits of `xcr0` that break this rule (the ones a fix would drop,
    /// or for [`Rule::X87Required`] the missing bit 0); 0 when it holds.
    pub const fn offending(self, xcr0: u64) -> u64 {
        match self.shape() {
            Shape::Required(bits) => bits & !xcr0,
            Shape::Needs { when, needs } => {
                if xcr0 & when != 0 && xcr0 & needs != needs {
                    xcr0 & when
                } else {
                    0
                }
            }
            Shape::AllOrNone(bits) => {
                let set = xcr0 & bits;
                if set != 0 && set != bits {
                    set
                } else {
                    0
                }
            }
            Shape::Exclusive { drop, keep } => {
                if xcr0 & drop != 0 && xcr0 & keep != 0 {
                    xcr0 & drop
                } else {
                    0
                }
            }
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
    pub xcr0: u64,
    /// The bits at fault: those a fix drops, or the missing bit 0.
    pub bits: u64,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Rule::X87Required => write!(f, "XCR0 {:#x} breaks a rule: {}", self.xcr0, self.rule),
            _ => write!(
                f,
                "XCR0 {:#x} breaks a rule: {} (bits at fault: {:#x})",
                self.xcr0, self.rule, self.bits
            ),
        }
    }
}

/// Why [`sanitize`] cannot fix a value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Xcr0Error {
    /// x87 (bit 0) is clear: no subset of the value is valid.
    #[error(
        "XCR0 {xcr0:#x} lacks x87 (bit 0), which every XCR0 must have; dropping bits cannot fix it"
    )]
    MissingX87 {
        /// The value.
        xcr0: u64,
    },
}

/// Every rule `xcr0` breaks, in [`Rule::ALL`] order; empty when XSETBV
/// would accept it (supported bits aside).
pub fn violations(xcr0: u64) -> Vec<Violation> {
    Rule::ALL
        .iter()
        .filter_map(|&rule| {
            let bits = rule.offending(xcr0);
            (bits != 0).then_some(Violation { rule, xcr0, bits })
        })
        .collect()
}

/// The largest part of `xcr0` that breaks no rule, found by dropping bits,
/// and each dropped component with the rule that dropped it (ascending by
/// component within a rule, rules in [`Rule::ALL`] order). The result is
/// always a subset of `xcr0`: sanitize never adds a bit.
///
/// What goes: AVX without SSE, AVX-512 without AVX and SSE, a partial
/// AVX-512, MPX or AMX group, and MPX when APX is set too (APX stays).
///
/// # Errors
///
/// [`Xcr0Error::MissingX87`] when bit 0 is clear. Adding x87 would return
/// bits the caller did not give, and dropping cannot help: a value without
/// x87 is not an XCR0 any CPU produces, so it is refused as corrupt.
pub fn sanitize(xcr0: u64) -> Result<(u64, Vec<(u8, Rule)>), Xcr0Error> {
    if xcr0 & X87 == 0 {
        return Err(Xcr0Error::MissingX87 { xcr0 });
    }
    let mut value = xcr0;
    let mut dropped = Vec::new();
    // Each pass only clears bits, and the rules' dependencies point down the
    // table (AVX-512 after AVX), so one pass settles it; loop to be sure.
    loop {
        let mut changed = false;
        for rule in Rule::ALL {
            let bits = rule.offending(value);
            if bits == 0 {
                continue;
            }
            value &= !bits;
            dropped.extend(crate::component::bits(bits).map(|c| (c, rule)));
            changed = true;
        }
        if !changed {
            return Ok((value, dropped));
        }
    }
}

/// The smallest XCR0 that has `component` and breaks no rule: x87, the
/// component, and whatever the rules make it need (AVX-512 brings all of
/// bits 1, 2 and 5-7). The standard-format size of any valid XCR0 is the
/// size of this value for its furthest-reaching component.
///
/// ```
/// assert_eq!(xstate::cpuid::xcr0::minimal_with(6), 0xe7);
/// assert_eq!(xstate::cpuid::xcr0::minimal_with(9), 0x201);
/// ```
pub fn minimal_with(component: u8) -> u64 {
    let mut value = X87 | crate::component::bit(component);
    loop {
        let before = value;
        for rule in Rule::ALL {
            match rule.shape() {
                Shape::Required(bits) => value |= bits,
                Shape::Needs { when, needs } if value & when != 0 => value |= needs,
                Shape::AllOrNone(bits) if value & bits != 0 => value |= bits,
                _ => {}
            }
        }
        if value == before {
            return value;
        }
    }
}
