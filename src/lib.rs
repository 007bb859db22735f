//! # xstate
//!
//! Save, restore, inspect and migrate the x86 XSAVE extended state of virtual
//! CPUs.
//!
//! - [`Layout`]: one CPU's XSAVE geometry, from CPUID leaf 0xD of the host,
//!   of a CPUID dump, or of a layout file ([`layout::catalog`] ships several).
//! - [`XsaveView`]: zero-copy typed read and write access to an XSAVE area in
//!   the standard or compacted format, with the hardware's init-state rules,
//!   through the [`XstateRead`] / [`XstateWrite`] traits.
//! - [`RegisterFile`]: an owned, typed snapshot of a whole state.
//! - [`migrate`]: relayout, the migration stream, destination checks, the
//!   pool baseline (a guest CPU model every host of a pool runs).
//! - [`cpuid`]: a whole CPUID (`cpuid -r`, InstLatx64, `kvm_cpuid2` JSON),
//!   the XSETBV rules, the table from components to the feature flags that
//!   advertise them, and a consistency check.
//! - [`kvm`]: views over `kvm_xsave`, vCPU helpers, the kernel's behaviour
//!   measured, and [`preflight`], which predicts `KVM_SET_XSAVE`'s verdict.
//! - [`apx`]: whether APX's r16..r31 exist for a vCPU (KVM's offer and the
//!   vCPU's XCR0 decide, not the host CPU) and whether an emulated
//!   instruction may name them.
//!
//! Layers, by feature (see `docs/architecture.md`): with none, the core
//! (`no_std`, no allocation: components, layouts from a CPUID function,
//! views, header checks, pre-flight, the XSETBV rules and the feature
//! table); `alloc` adds the register file, migration and `CpuidSet`; `std`
//! layout files, dumps, CPUID parsing and the catalog; `kvm` the KVM
//! helpers; `serde` serde for the register file; `cli` the `xstate` tool.
//!
//! ```
//! use xstate::prelude::*;
//! use xstate::{layout::catalog, Format, XsaveView};
//!
//! let layout = catalog::get("intel-sapphire-rapids").unwrap();
//! let mut buf = vec![0u8; layout.standard_size() as usize];
//! let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
//! assert_eq!(view.format(), Format::Standard);
//! view.set_xmm(3, 0x0123_4567_89ab_cdef).unwrap();
//! assert_eq!(view.xmm(3).unwrap(), 0x0123_4567_89ab_cdef);
//! assert_eq!(view.mxcsr().unwrap(), 0x1f80); // SSE just went live at its init values
//! ```

#![cfg_attr(not(feature = "std"), no_std)]
// docs.rs (`--cfg docsrs`, nightly) marks what each feature adds.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_errors_doc
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(all(feature = "kvm", not(feature = "std")))]
extern crate std;

pub mod access;
pub mod apx;
pub mod area;
pub mod artifact;
pub mod component;
pub mod cpuid;
#[cfg(all(feature = "testing", feature = "std"))]
#[doc(hidden)]
pub mod fuzzing;
mod hex;
#[cfg(target_arch = "x86_64")]
#[cfg_attr(docsrs, doc(cfg(target_arch = "x86_64")))]
pub mod host;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub mod input;
#[cfg(all(feature = "kvm", target_arch = "x86_64"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "kvm", target_arch = "x86_64"))))]
pub mod kvm;
pub mod layout;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod migrate;
pub mod preflight;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod profile;
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub mod regfile;
pub mod register;
pub mod view;
pub mod xregs;

pub use access::{AccessError, XstateRead, XstateWrite};
pub use area::{Format, HeaderError};
pub use component::{ComponentId, XcompBv, Xfeatures};
pub use layout::{Layout, LayoutError};
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub use regfile::RegisterFile;
pub use register::Register;
pub use view::{OpenError, XsaveView};

/// The register access traits, for `use xstate::prelude::*`.
pub mod prelude {
    pub use crate::access::{XstateRead, XstateWrite};
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "cli"))]
pub struct ReadmeDoctests;
