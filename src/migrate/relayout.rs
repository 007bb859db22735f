//! Converting an XSAVE area from one layout and format to another.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::check::{faults, Incompatibility};
use super::guest::{Guest, Masking};

use crate::access::{AccessError, XstateRead, XstateWrite};
use crate::area::HeaderError;
use crate::component::{ComponentId, Xfeatures};
use crate::layout::{text, Text};
use crate::{Format, Layout, RegisterFile, XsaveView};

/// How [`relayout`] writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayoutOptions {
    /// The destination format.
    pub format: Format,
    /// Drop components the destination lacks when their state is init.
    /// Live state is never dropped.
    pub drop_init: bool,
    /// Clear the MXCSR bits the destination does not implement (outside
    /// its MXCSR mask) instead of refusing the state: XRSTOR and FXRSTOR
    /// fault (#GP) on them (Intel SDM vol. 1, 11.6.6).
    pub mask_mxcsr: bool,
}

impl Default for RelayoutOptions {
    fn default() -> Self {
        RelayoutOptions {
            format: Format::Standard,
            drop_init: false,
            mask_mxcsr: false,
        }
    }
}

/// Why state cannot move.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrateError {
    /// The source area does not open under the source layout.
    #[error("source area: {0}")]
    Source(#[source] HeaderError),
    /// The source area's bytes cannot be read (a component past its end).
    #[error("source area: {0}")]
    SourceAccess(#[source] AccessError),
    /// A live component the destination has no place for.
    #[error("{component} (component {n}) is live but {layout} has no place for it", n = .component.index())]
    LiveWithoutHome {
        /// The component.
        component: ComponentId,
        /// The destination layout's name.
        layout: Text<64>,
    },
    /// A component the destination lacks, init in the source: dropped
    /// only when asked to.
    #[error("{component} (component {n}) is init but {layout} has no place for it; drop init components to convert", n = .component.index())]
    InitWithoutHome {
        /// The component.
        component: ComponentId,
        /// The destination layout's name.
        layout: Text<64>,
    },
    /// The destination cannot take the state (sizes differ, say).
    #[error("destination: {0}")]
    Destination(#[source] AccessError),
    /// The state would make XRSTOR fault at the destination: an MXCSR bit
    /// it does not implement, or a TILECFG it refuses.
    #[error("{0}")]
    WouldFault(Incompatibility),
}

/// Converts the XSAVE area `src` (in `from`'s layout, either format) to
/// `to`'s layout in `options.format`.
///
/// Init components stay init. A live component `to` lacks is an error
/// naming it; so is an init one unless `options.drop_init`. Where the
/// layouts and formats agree the input is returned as it is, uncopied.
///
/// # Errors
///
/// A [`MigrateError`] naming the component or field at fault.
pub fn relayout<'a>(
    src: &'a [u8],
    from: &Layout,
    to: &Layout,
    options: RelayoutOptions,
) -> Result<Cow<'a, [u8]>, MigrateError> {
    relayout_for(src, from, to, options, &Guest::default()).map(|(area, _)| area)
}

/// [`relayout`] for a guest: the components `guest` cannot hold are masked
/// out first ([`Guest::mask`]), and returned, so a caller reports them;
/// those the destination lacks are dropped without `options.drop_init`.
///
/// # Errors
///
/// As [`relayout`], judged after masking.
pub fn relayout_for<'a>(
    src: &'a [u8],
    from: &Layout,
    to: &Layout,
    options: RelayoutOptions,
    guest: &Guest,
) -> Result<(Cow<'a, [u8]>, Vec<Masking>), MigrateError> {
    let view = XsaveView::new(src, from).map_err(MigrateError::Source)?;
    let mut regs = RegisterFile::from_view(&view).map_err(MigrateError::SourceAccess)?;
    let masked = guest.mask(&mut regs);
    // What the source area holds: its XCOMP_BV, or every component its
    // layout enables in the standard format; less what the guest cannot
    // hold (masked above when live), which goes without --drop-init. Live
    // components without a home are named before init ones: they are what
    // blocks the move.
    let held = view.held() | regs.xstate_bv();
    let not_for_guest = held
        .iter()
        .filter(|&c| guest.excludes(c).is_some())
        .collect::<Xfeatures>();
    let homeless = held - to.supported() - not_for_guest;
    let layout = text(to.name());
    if let Some(component) = (homeless & regs.xstate_bv()).first() {
        return Err(MigrateError::LiveWithoutHome { component, layout });
    }
    if let Some(component) = homeless.first().filter(|_| !options.drop_init) {
        return Err(MigrateError::InitWithoutHome { component, layout });
    }
    let mut masked_mxcsr = false;
    if options.mask_mxcsr {
        let mxcsr = regs.mxcsr().map_err(MigrateError::SourceAccess)?;
        if mxcsr & !to.mxcsr_mask() != 0 {
            regs.set_mxcsr(mxcsr & to.mxcsr_mask())
                .map_err(MigrateError::SourceAccess)?;
            masked_mxcsr = true;
        }
    }
    if let Some(fault) = faults(&regs, to.mxcsr_mask()).into_iter().next() {
        return Err(MigrateError::WouldFault(fault));
    }
    let size = match options.format {
        Format::Standard => to.standard_size() as usize,
        Format::Compacted => 0,
    };
    // The input itself, where nothing changes: no masking, the same
    // geometry and format, canonical bytes (PKRU's reserved bytes zero)
    // and the destination's MXCSR_MASK.
    let canonical = regs.component(ComponentId::PKRU).is_none_or(|_| {
        view.component(ComponentId::PKRU).ok().flatten() == regs.component(ComponentId::PKRU)
    }) && src.get(28..32) == Some(&to.mxcsr_mask().to_le_bytes()[..]);
    if masked.is_empty()
        && !masked_mxcsr
        && canonical
        && from.fingerprint() == to.fingerprint()
        && view.format() == options.format
        && src.len() == size
    {
        return Ok((Cow::Borrowed(src), masked));
    }
    regs.encode(to, options.format)
        .map(|area| (Cow::Owned(area), masked))
        .map_err(MigrateError::Destination)
}
