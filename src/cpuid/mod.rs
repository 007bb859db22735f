//! A whole guest or host CPUID, and what it says about XSAVE state.
//!
//! - [`xcr0`]: the rules XSETBV and `KVM_SET_XCRS` enforce on an XCR0 value
//!   (core: no allocation).
//! - [`features`]: one sourced table from XSAVE state components to the
//!   CPUID feature flags and leaves that advertise them (core), and with
//!   `alloc` the masks that take components away from a CPUID
//!   ([`features::apply`]).
//! - [`CpuidSet`] (`alloc`): every leaf and sub-leaf of one CPU; with `std`
//!   read from `cpuid -r` text, an InstLatx64 dump or KVM `kvm_cpuid2`
//!   entries as JSON, and written back to `cpuid -r` text or that JSON.
//! - [`check()`] (`alloc`): a CPUID's internal consistency as far as XSAVE
//!   goes: feature flags against XCR0 and IA32_XSS both ways, the XCR0 and
//!   IA32_XSS rules (no supervisor component in XCR0, no user one in
//!   IA32_XSS, never bit 63, IA32_XSS only with XSAVES), leaf 0xD sizes
//!   against its offsets, AMX and XFD, APX and MPX.
//!
//! Nothing here touches the host: it is pure logic over values given to it.
//!
//! ```
//! use xstate::cpuid::{check, features, CpuidSet};
//! use xstate::ComponentId;
//!
//! let dump = "\
//!    0x00000000 0x00: eax=0x0000000d ebx=0x756e6547 ecx=0x6c65746e edx=0x49656e69
//!    0x00000001 0x00: eax=0x000806f8 ebx=0x00000000 ecx=0x1c000000 edx=0x00000000
//!    0x0000000d 0x00: eax=0x00000007 ebx=0x00000340 ecx=0x00000340 edx=0x00000000
//!    0x0000000d 0x01: eax=0x00000001 ebx=0x00000000 ecx=0x00000000 edx=0x00000000
//!    0x0000000d 0x02: eax=0x00000100 ebx=0x00000240 ecx=0x00000000 edx=0x00000000
//! ";
//! let mut set = CpuidSet::parse(dump).unwrap();
//! assert_eq!(set.vendor().as_deref(), Some("GenuineIntel"));
//! assert!(check(&set).is_empty());
//!
//! // Take AVX away: the AVX flag, XCR0 bit 2 and sub-leaf 2 go, the sizes follow.
//! features::apply(&mut set, ComponentId::AVX.bit()).unwrap();
//! assert!(!set.has_feature(features::AVX));
//! assert_eq!(set.xcr0_supported().bits(), 0b11);
//! assert_eq!(set.get(0xd, 0).unwrap().ecx, 576);
//! assert!(check(&set).is_empty());
//! ```

mod bit;
#[cfg(feature = "alloc")]
mod check;
pub mod features;
#[cfg(feature = "alloc")]
mod leaf_d;
#[cfg(feature = "alloc")]
mod set;
pub mod xcr0;

pub use crate::layout::CpuidRegs;
pub use bit::{FeatureBit, Reg};
#[cfg(feature = "alloc")]
pub use check::{check, Inconsistency};
#[cfg(feature = "alloc")]
pub use set::{is_known_indexed, At, CpuidSet, CpuidSetError, FLAG_SIGNIFICANT_INDEX, MAX_ENTRIES};

#[cfg(all(test, feature = "std"))]
mod tests;
