//! Moving XSAVE state between CPUs: relayout between layouts and formats,
//! the migration stream, destination checks and the migration-pool baseline.
//!
//! ```
//! use xstate::layout::catalog;
//! use xstate::migrate::{relayout, RelayoutOptions};
//! use xstate::prelude::*;
//! use xstate::{Format, RegisterFile};
//!
//! let zen4 = catalog::get("amd-zen4").unwrap();
//! let spr = catalog::get("intel-sapphire-rapids").unwrap();
//! let mut regs = RegisterFile::new();
//! regs.set_zmm(3, [1, 2, 3, 4]).unwrap();
//! let area = regs.encode(zen4, Format::Standard).unwrap();
//! // Zen 4 keeps AVX-512 at 832.., Sapphire Rapids at 1088..: moved, not copied.
//! let moved = relayout(&area, zen4, spr, RelayoutOptions::default()).unwrap();
//! assert_eq!(RegisterFile::decode(&moved, spr).unwrap(), regs);
//! ```

pub(crate) mod check;
mod guest;
pub mod pool;
mod relayout;
pub mod stream;

pub use check::{check, check_host, restore_area, CheckReport, Incompatibility, Refuser};
pub use guest::{Guest, MaskReason, Masking};
pub use relayout::{
    relayout, relayout_for, relayout_into, MigrateError, RelayoutOptions, RelayoutReport,
};
