//! # xstate
//!
//! Save, restore, inspect and migrate the x86 XSAVE extended state of virtual
//! CPUs.
//!
//! - [`Layout`]: one CPU's XSAVE geometry, from CPUID leaf 0xD of the host,
//!   of a CPUID dump, or of a layout file ([`layout::catalog`] ships several).
//! - [`XsaveView`]: zero-copy typed read and write access to an XSAVE area in
//!   the standard or compacted format, with the hardware's init-state rules.
//! - [`RegisterFile`]: an owned, typed snapshot of a whole state.
//! - [`kvm`]: views over `kvm_xsave`, vCPU helpers and a pre-flight check
//!   that predicts `KVM_SET_XSAVE`'s verdict.
//!
//! ```
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

#![warn(missing_docs)]

pub mod area;
pub mod component;
pub mod cpuid;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(target_arch = "x86_64")]
pub mod host;
#[cfg(target_arch = "x86_64")]
pub mod kvm;
pub mod layout;
pub mod migrate;
pub mod regfile;
#[cfg(feature = "serde")]
mod regfile_serde;
pub mod register;
pub mod view;

pub use component::Component;
pub use error::{LayoutError, ViewError};
pub use layout::Layout;
pub use regfile::RegisterFile;
pub use register::Register;
pub use view::{Format, XsaveView};

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
