//! Converting an XSAVE area from one layout and format to another.

use std::borrow::Cow;

use thiserror::Error;

use crate::component::{self, name_of};
use crate::{Format, Layout, RegisterFile, ViewError, XsaveView};

/// How [`relayout`] writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayoutOptions {
    /// The destination format.
    pub format: Format,
    /// Drop components the destination lacks when their state is init.
    /// Live state is never dropped.
    pub drop_init: bool,
}

impl Default for RelayoutOptions {
    fn default() -> Self {
        RelayoutOptions {
            format: Format::Standard,
            drop_init: false,
        }
    }
}

/// Why state cannot move.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MigrateError {
    /// The source area does not open under the source layout.
    #[error("source area: {0}")]
    Source(ViewError),
    /// A live component the destination has no place for.
    #[error("{} (component {index}) is live but {layout} has no place for it", name_of(*index))]
    LiveWithoutHome {
        /// The component.
        index: u8,
        /// The destination layout.
        layout: String,
    },
    /// A component the destination lacks, init in the source: dropped
    /// only when asked to.
    #[error("{} (component {index}) is init but {layout} has no place for it; drop init components to convert", name_of(*index))]
    InitWithoutHome {
        /// The component.
        index: u8,
        /// The destination layout.
        layout: String,
    },
    /// The destination cannot take the state (sizes differ, say).
    #[error("destination: {0}")]
    Destination(ViewError),
}

/// Converts the XSAVE area `src` (in `from`'s layout, either format) to
/// `to`'s layout in `options.format`.
///
/// Init components stay init. A live component `to` lacks is an error
/// naming it; so is an init one unless `options.drop_init`. Where the
/// layouts and formats agree the input is returned as it is, uncopied.
pub fn relayout<'a>(
    src: &'a [u8],
    from: &Layout,
    to: &Layout,
    options: RelayoutOptions,
) -> Result<Cow<'a, [u8]>, MigrateError> {
    let view = XsaveView::new(src, from).map_err(MigrateError::Source)?;
    let regs = RegisterFile::from_view(&view).map_err(MigrateError::Source)?;
    // What the source area holds: its XCOMP_BV, or every component its
    // layout enables in the standard format.
    let held = match view.format() {
        Format::Standard => from.xcr0_supported(),
        Format::Compacted => view.xcomp_bv() & !(1 << 63),
    };
    for i in component::bits(held | regs.xstate_bv()) {
        if to.geometry(i).is_some() {
            continue;
        }
        if regs.xstate_bv() & 1 << i != 0 {
            return Err(MigrateError::LiveWithoutHome {
                index: i,
                layout: to.name().to_string(),
            });
        }
        if !options.drop_init {
            return Err(MigrateError::InitWithoutHome {
                index: i,
                layout: to.name().to_string(),
            });
        }
    }
    let size = match options.format {
        Format::Standard => to.standard_size() as usize,
        Format::Compacted => 0,
    };
    if from.fingerprint() == to.fingerprint()
        && view.format() == options.format
        && src.len() == size
    {
        return Ok(Cow::Borrowed(src));
    }
    regs.encode(to, options.format)
        .map(Cow::Owned)
        .map_err(MigrateError::Destination)
}
