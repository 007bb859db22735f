//! A standard-format area of user components, as the kernel's user ABI
//! takes and gives it: the one builder behind [`super::ptrace`],
//! [`super::sigframe`] and [`super::notes`].

use crate::access::{AccessError, XstateRead};
use crate::area::EXTENDED_START;
use crate::component::{XcompBv, Xfeatures};
use crate::layout::Layout;
use crate::regfile::RegisterFile;
use alloc::vec;
use alloc::vec::Vec;

/// Why an area cannot become a kernel user-ABI area.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserAreaError {
    /// The source area does not open in its layout, or its state does not
    /// fit the destination layout.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// An XCR0 without x87 and SSE, or with components the destination
    /// layout lacks (or supervisor ones).
    #[error("XCR0 {xcr0} is not a user XCR0 of layout {layout}: it must hold x87 and SSE and be within {supported}")]
    Xcr0 {
        /// The XCR0 given.
        xcr0: Xfeatures,
        /// The destination layout's name.
        layout: crate::layout::Text<64>,
        /// Its user components.
        supported: Xfeatures,
    },
    /// State the destination's XRSTOR faults on (an MXCSR bit outside its
    /// MXCSR mask, a TILECFG LDTILECFG refuses): `PTRACE_SETREGSET` and
    /// `sigreturn` refuse it, a debugger's restore faults.
    #[error("{0}")]
    WouldFault(crate::migrate::Incompatibility),
    /// Live components the XCR0 does not enable: the kernel would refuse
    /// them (or, in a signal frame, drop them).
    #[error("components {live} are live but XCR0 {xcr0} does not enable them")]
    NotEnabled {
        /// The components.
        live: Xfeatures,
        /// The XCR0.
        xcr0: Xfeatures,
    },
}

/// The state of `area` (either format, in layout `from`) as a
/// standard-format area of layout `to` holding the user components of
/// `xcr0`: `to.standard_size_for(xcr0)` bytes, software bytes zero,
/// MXCSR_MASK `to`'s; refused where `to`'s XRSTOR would fault on it.
pub(crate) fn standard_area(
    area: &[u8],
    from: &Layout,
    to: &Layout,
    xcr0: Xfeatures,
) -> Result<Vec<u8>, UserAreaError> {
    if !xcr0.contains_all(Xfeatures::LEGACY) || !to.xcr0_supported().contains_all(xcr0) {
        return Err(UserAreaError::Xcr0 {
            xcr0,
            layout: crate::layout::text(to.name()),
            supported: to.xcr0_supported(),
        });
    }
    let regs = RegisterFile::decode(area, from)?;
    let live = regs.xstate_bv() - xcr0;
    if !live.is_empty() {
        return Err(UserAreaError::NotEnabled { live, xcr0 });
    }
    if let Some(fault) = crate::migrate::check::faults(&regs, to.mxcsr_mask())
        .into_iter()
        .next()
    {
        return Err(UserAreaError::WouldFault(fault));
    }
    let size = (to.standard_size_for(xcr0) as usize).max(EXTENDED_START);
    let mut out = vec![0u8; size];
    regs.encode_into(&mut out, to, XcompBv::STANDARD)?;
    Ok(out)
}
