//! The XSAVE header of an area, parsed and checked against a layout.

use super::{XsaveHeader, EXTENDED_START};
use crate::artifact::swbytes::{self, SwBytesError};
use crate::component::{XcompBv, Xfeatures};
use crate::Layout;

/// The two XSAVE area formats (Intel SDM vol. 1, 13.4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Every component at its CPUID offset (XSAVE, XSAVEOPT, KVM, ptrace,
    /// core dumps, signal frames).
    Standard,
    /// Only the components in XCOMP_BV, packed (XSAVEC, XSAVES).
    Compacted,
}

impl Format {
    /// "standard" or "compacted".
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Standard => "standard",
            Format::Compacted => "compacted",
        }
    }
}

impl core::fmt::Display for Format {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header field, as error messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// XSTATE_BV.
    XstateBv,
    /// XCOMP_BV.
    XcompBv,
}

impl core::fmt::Display for Field {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Field::XstateBv => "XSTATE_BV",
            Field::XcompBv => "XCOMP_BV",
        })
    }
}

/// Why an area's header does not fit a layout: what XRSTOR would fault on
/// (#GP), or a buffer too short to hold what the header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The buffer is shorter than the format and the header need.
    #[error("buffer of {len} bytes is too small: the {format} format needs {needed}")]
    TooSmall {
        /// Buffer length in bytes.
        len: usize,
        /// Bytes needed.
        needed: usize,
        /// The format the header names.
        format: Format,
    },
    /// A reserved byte of the XSAVE header is not zero.
    #[error("reserved XSAVE header byte at offset {offset} is {value:#04x}, must be 0")]
    Reserved {
        /// Offset in the buffer (528..576).
        offset: usize,
        /// The byte.
        value: u8,
    },
    /// XCOMP_BV is not zero but bit 63 is clear: neither format.
    #[error(
        "XCOMP_BV {0} has bit 63 clear but is not 0: neither the standard nor the compacted format"
    )]
    XcompBv(XcompBv),
    /// XSTATE_BV or XCOMP_BV names components the layout does not support
    /// (in the standard format: supervisor components too).
    #[error("{field} {value} has components {unsupported} that the layout does not support in the {format} format (it supports {supported})")]
    Unsupported {
        /// The field.
        field: Field,
        /// The field's value.
        value: Xfeatures,
        /// The offending components.
        unsupported: Xfeatures,
        /// What the layout supports in this format.
        supported: Xfeatures,
        /// The format.
        format: Format,
    },
    /// A compacted area with XSTATE_BV components not present in XCOMP_BV.
    #[error("XSTATE_BV {xstate_bv} has components {missing} not in XCOMP_BV {xcomp_bv}")]
    NotInXcompBv {
        /// XSTATE_BV.
        xstate_bv: Xfeatures,
        /// XCOMP_BV.
        xcomp_bv: XcompBv,
        /// The components missing.
        missing: Xfeatures,
    },
    /// A standard-format area whose software bytes (464..512: a ptrace,
    /// core or KVM XCR0, a signal frame's `_fpx_sw_bytes`) the layout
    /// cannot have written: the area is in another CPU's layout.
    #[error(transparent)]
    SoftwareBytes(#[from] SwBytesError),
}

/// An area's format and header fields, checked against a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AreaHeader {
    /// The format XCOMP_BV bit 63 selects.
    pub format: Format,
    /// The live components.
    pub xstate_bv: Xfeatures,
    /// XCOMP_BV (0 in the standard format).
    pub xcomp_bv: XcompBv,
}

impl AreaHeader {
    /// Reads the header of `buf` and checks it against `layout`: the 48
    /// reserved bytes are zero; XCOMP_BV is 0 (standard) or has bit 63
    /// (compacted); XSTATE_BV and XCOMP_BV name only components the layout
    /// supports (user components only in the standard format); a compacted
    /// area holds every live component; and the buffer is long enough for
    /// every component the header names (a buffer of the layout's full
    /// standard size, such as a `kvm_xsave`, holds any XSTATE_BV). A
    /// standard-format area's software bytes, when it has them, must be
    /// ones the layout can have written ([`swbytes::check`]: a ptrace, core
    /// or KVM copy's XCR0 and size, a signal frame's `_fpx_sw_bytes`); that
    /// is checked right after XCOMP_BV, so an area in another CPU's layout
    /// is refused for that. [`swbytes::clear`] on the buffer first ignores
    /// them.
    ///
    /// ```
    /// use xstate::area::{AreaHeader, Format};
    ///
    /// let layout = xstate::layout::catalog::get("amd-zen3").unwrap();
    /// let mut area = [0u8; 2440];
    /// area[512] = 0x3; // XSTATE_BV: x87 and SSE
    /// let h = AreaHeader::parse(&area, layout).unwrap();
    /// assert_eq!(h.format, Format::Standard);
    /// assert_eq!(h.xstate_bv.bits(), 0x3);
    /// ```
    ///
    /// # Errors
    ///
    /// The first [`HeaderError`] found, in the order above.
    #[inline]
    pub fn parse(buf: &[u8], layout: &Layout) -> Result<AreaHeader, HeaderError> {
        if buf.len() < EXTENDED_START {
            return Err(HeaderError::TooSmall {
                len: buf.len(),
                needed: EXTENDED_START,
                format: Format::Standard,
            });
        }
        let h = XsaveHeader::of(buf);
        let xstate_bv = Xfeatures::from_bits(h.xstate_bv.get());
        let xcomp_bv = XcompBv::from_bits(h.xcomp_bv.get());
        if !h.reserved_is_zero() {
            let (offset, value) = h.first_reserved_byte();
            return Err(HeaderError::Reserved { offset, value });
        }
        AreaHeader::check(buf.len(), layout, xstate_bv, xcomp_bv, Some(buf))
    }

    /// The checks of [`parse`](Self::parse) after the reserved bytes, for a
    /// header with `xstate_bv` and `xcomp_bv` over a buffer of `len` bytes:
    /// also what an encoder checks before writing one. `buf`, when given,
    /// is the area whose software bytes a standard-format header must
    /// agree with.
    #[inline]
    pub(crate) fn check(
        len: usize,
        layout: &Layout,
        xstate_bv: Xfeatures,
        xcomp_bv: XcompBv,
        buf: Option<&[u8]>,
    ) -> Result<AreaHeader, HeaderError> {
        let unsupported =
            |field, value: Xfeatures, supported: Xfeatures, format| HeaderError::Unsupported {
                field,
                value,
                unsupported: value - supported,
                supported,
                format,
            };
        if !xcomp_bv.is_compacted() {
            if xcomp_bv != XcompBv::STANDARD {
                return Err(HeaderError::XcompBv(xcomp_bv));
            }
            // First: an area in another CPU's layout says so, rather than
            // failing on what that layout makes of it.
            if let Some(buf) = buf {
                swbytes::check(buf, layout)?;
            }
            let supported = layout.xcr0_supported();
            if !supported.contains_all(xstate_bv) {
                return Err(unsupported(
                    Field::XstateBv,
                    xstate_bv,
                    supported,
                    Format::Standard,
                ));
            }
            // A buffer of the full standard size (a kvm_xsave, say) holds any XSTATE_BV.
            if len < layout.standard_size() as usize {
                let needed = layout.standard_size_for(xstate_bv) as usize;
                if len < needed {
                    return Err(HeaderError::TooSmall {
                        len,
                        needed,
                        format: Format::Standard,
                    });
                }
            }
            Ok(AreaHeader {
                format: Format::Standard,
                xstate_bv,
                xcomp_bv,
            })
        } else {
            let held = xcomp_bv.components();
            let supported = layout.supported();
            if !supported.contains_all(held) {
                return Err(unsupported(
                    Field::XcompBv,
                    held,
                    supported,
                    Format::Compacted,
                ));
            }
            // As XRSTOR requires: every live component is one the area holds.
            if !held.contains_all(xstate_bv) {
                return Err(HeaderError::NotInXcompBv {
                    xstate_bv,
                    xcomp_bv,
                    missing: xstate_bv - held,
                });
            }
            let needed = layout.compacted_size_for(held) as usize;
            if len < needed {
                return Err(HeaderError::TooSmall {
                    len,
                    needed,
                    format: Format::Compacted,
                });
            }
            Ok(AreaHeader {
                format: Format::Compacted,
                xstate_bv,
                xcomp_bv,
            })
        }
    }

    /// The components the area has room for: XCOMP_BV's in the compacted
    /// format, every user component of `layout` in the standard format.
    #[inline]
    pub fn held(&self, layout: &Layout) -> Xfeatures {
        match self.format {
            Format::Standard => layout.xcr0_supported(),
            Format::Compacted => self.xcomp_bv.components(),
        }
    }
}

/// Writes an empty header (XSTATE_BV 0) for `format` into `buf` (at least
/// 576 bytes), making it a valid all-init area; `xcomp_bv` is used for the
/// compacted format.
///
/// ```
/// use xstate::area::{init_area, Format};
/// use xstate::{XcompBv, XsaveView};
/// use xstate::prelude::*;
///
/// let layout = xstate::layout::catalog::get("amd-zen4").unwrap();
/// let mut buf = vec![0xAAu8; layout.compacted_size() as usize];
/// init_area(&mut buf, XcompBv::compacted(layout.xcr0_supported()));
/// let view = XsaveView::new(&buf[..], layout).unwrap();
/// assert_eq!(view.format(), Format::Compacted);
/// assert_eq!(view.zmm(17).unwrap(), [0; 4]);
/// assert_eq!(view.fcw().unwrap(), 0x037f);
/// ```
///
/// # Panics
///
/// When `buf` is shorter than 576 bytes.
pub fn init_area(buf: &mut [u8], xcomp_bv: XcompBv) {
    let h = XsaveHeader::of_mut(buf);
    h.xstate_bv.set(0);
    h.xcomp_bv.set(xcomp_bv.bits());
    h.reserved = [0; 48];
}
