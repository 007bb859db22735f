//! A whole guest or host CPUID, and what it says about XSAVE state.
//!
//! - [`CpuidSet`]: every leaf and sub-leaf of one CPU, read from `cpuid -r`
//!   text, an InstLatx64 dump or KVM `kvm_cpuid2` entries as JSON, and
//!   written back to `cpuid -r` text or that JSON.
//! - [`xcr0`]: the rules XSETBV and `KVM_SET_XCRS` enforce on an XCR0 value.
//!
//! Component sets are `u64` masks (bit i = state component i) and component
//! numbers are `u8`. Nothing here touches the host: it is pure logic over
//! values given to it.
//!
//! ```
//! use xstate::cpuid::CpuidSet;
//!
//! let dump = "\
//!    0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
//!    0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000
//!    0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000
//! ";
//! let set = CpuidSet::parse(dump).unwrap();
//! assert_eq!(set.vendor().as_deref(), Some("GenuineIntel"));
//! assert_eq!(set.xcr0_supported(), 0b111);
//! assert_eq!(set.get(0xd, 2).unwrap().ebx, 576);
//! ```

mod bit;
mod set;
pub mod xcr0;

pub use crate::layout::CpuidRegs;
pub use bit::{FeatureBit, Register};
pub use set::{At, CpuidSet, CpuidSetError, MAX_ENTRIES};

#[cfg(test)]
mod tests;
