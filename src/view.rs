//! Zero-copy typed views over an XSAVE area.
//!
//! An [`XsaveView`] borrows (or owns) a byte buffer holding an XSAVE area in
//! the standard or the compacted format and a [`Layout`] that says where each
//! component is. Opening one checks the header against the layout
//! ([`AreaHeader::parse`]) and copies nothing; the buffer may have any
//! alignment. Reads and writes ([`XstateRead`], [`XstateWrite`]) go through
//! the [`Register`] table and apply the hardware's init-state rules:
//!
//! - a component whose XSTATE_BV bit is clear reads as its init values,
//!   whatever bytes the buffer holds for it;
//! - the first write to such a component fills it with its init values,
//!   then sets its bit, then stores the value;
//! - MXCSR counts in the standard format while SSE or AVX is live (as the
//!   standard-format XRSTOR and KVM treat it), in the compacted format only
//!   while SSE is live (as the compacted-format XRSTOR does: Intel SDM
//!   vol. 1, 13.8.2, and measured here), and reads as 0x1F80 otherwise
//!   ([`XsaveView::mxcsr_counts`]); writing it makes SSE live (MXCSR is SSE
//!   state: the CPU's XINUSE\[1\] tracks it too);
//! - a register whose component the layout lacks is an error, not a zero.
//!
//! The view keeps XSTATE_BV as it read or wrote it, so it hands out no raw
//! mutable access to the header: only to a component's own bytes
//! ([`XsaveView::component_mut`]).
//!
//! ```
//! use xstate::prelude::*;
//! use xstate::{layout::catalog, ComponentId, XsaveView};
//!
//! let layout = catalog::get("intel-diamond-rapids").unwrap();
//! let mut buf = vec![0u8; layout.standard_size() as usize];
//! let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
//! assert_eq!(view.r(20).unwrap(), 0); // APX in init state
//! view.set_r(20, 0xfeed).unwrap();
//! assert!(view.is_live(ComponentId::APX));
//! assert_eq!(u64::from_le_bytes(buf[960 + 32..960 + 40].try_into().unwrap()), 0xfeed);
//! ```

use crate::access::{check_register, check_width, AccessError, XstateRead, XstateWrite};
use crate::area::{
    legacy, AreaHeader, Format, HeaderError, XsaveHeader, FCW_INIT, LEGACY_SIZE, MXCSR_INIT,
};
use crate::component::{ComponentId, XcompBv, Xfeatures, MXCSR_COMPONENTS};
use crate::layout::Layout;
use crate::register::{Piece, Register};
use zerocopy::IntoBytes;

/// A typed view over an XSAVE area. See the [module docs](self).
///
/// `B` is the buffer: `&[u8]` for a read view, `&mut [u8]` for a write view,
/// or any owner such as `Vec<u8>`.
#[derive(Clone)]
pub struct XsaveView<'a, B> {
    buf: B,
    layout: &'a Layout,
    header: AreaHeader,
}

impl<B: AsRef<[u8]>> core::fmt::Debug for XsaveView<'_, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XsaveView")
            .field("layout", &self.layout.name())
            .field("len", &self.buf.as_ref().len())
            .field("header", &self.header)
            .finish()
    }
}

/// A view that could not be opened: why, and the buffer given back.
pub struct OpenError<B> {
    /// Why the header does not fit the layout.
    pub error: HeaderError,
    /// The buffer, unchanged.
    pub buffer: B,
}

impl<B> OpenError<B> {
    /// The buffer, given back.
    pub fn into_buffer(self) -> B {
        self.buffer
    }

    /// The error, without the buffer.
    pub fn into_error(self) -> HeaderError {
        self.error
    }
}

impl<B: AsRef<[u8]>> core::fmt::Debug for OpenError<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenError")
            .field("error", &self.error)
            .field("buffer_len", &self.buffer.as_ref().len())
            .finish()
    }
}

impl<B> core::fmt::Display for OpenError<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.error, f)
    }
}

impl<B: AsRef<[u8]>> core::error::Error for OpenError<B> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<B> From<OpenError<B>> for AccessError {
    fn from(e: OpenError<B>) -> AccessError {
        AccessError::Header(e.error)
    }
}

impl<B> From<OpenError<B>> for HeaderError {
    fn from(e: OpenError<B>) -> HeaderError {
        e.error
    }
}

impl<'a, B: AsRef<[u8]>> XsaveView<'a, B> {
    /// Opens a view, checking the header against `layout`
    /// ([`AreaHeader::parse`]). The buffer stays the caller's on error (for
    /// a borrowed buffer there is nothing to give back; for an owned one,
    /// [`try_new`](Self::try_new) gives it back).
    ///
    /// # Errors
    ///
    /// The [`HeaderError`] found.
    #[inline(always)]
    pub fn new(buf: B, layout: &'a Layout) -> Result<Self, HeaderError> {
        XsaveView::try_new(buf, layout).map_err(OpenError::into_error)
    }

    /// Opens a view as [`new`](Self::new) does, giving the buffer back on
    /// error, as zerocopy's errors do: for owned buffers (`Vec<u8>`, a
    /// kvm-bindings buffer) that must not be lost.
    ///
    /// ```
    /// use xstate::{layout::catalog, XsaveView};
    ///
    /// let layout = catalog::get("amd-zen3").unwrap();
    /// let mut area = vec![0u8; 2440];
    /// area[530] = 1; // a reserved header byte
    /// let err = XsaveView::try_new(area, layout).unwrap_err();
    /// let area: Vec<u8> = err.into_buffer(); // not lost
    /// assert_eq!(area.len(), 2440);
    /// ```
    ///
    /// # Errors
    ///
    /// [`OpenError`] with the [`HeaderError`] and the buffer.
    #[inline(always)]
    pub fn try_new(buf: B, layout: &'a Layout) -> Result<Self, OpenError<B>> {
        match AreaHeader::parse(buf.as_ref(), layout) {
            Ok(header) => Ok(XsaveView {
                buf,
                layout,
                header,
            }),
            Err(error) => Err(OpenError { error, buffer: buf }),
        }
    }

    /// The layout the view reads with.
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// The area's format.
    pub fn format(&self) -> Format {
        self.header.format
    }

    /// XCOMP_BV (0 in the standard format).
    pub fn xcomp_bv(&self) -> XcompBv {
        self.header.xcomp_bv
    }

    /// The components the area has room for (see [`AreaHeader::held`]).
    pub fn held(&self) -> Xfeatures {
        self.header.held(self.layout)
    }

    /// Whether MXCSR's bytes hold MXCSR (else it is 0x1F80): in the
    /// standard format while SSE or AVX is live, as the standard-format
    /// XRSTOR loads MXCSR whenever either is requested; in the compacted
    /// format only while SSE is live, as the compacted-format XRSTOR loads
    /// it only with XSTATE_BV\[1\] set and sets 0x1F80 otherwise (Intel SDM
    /// vol. 1, 13.8.2), so an XSAVEC image with AVX live and SSE init has
    /// stale bytes there.
    #[inline]
    pub fn mxcsr_counts(&self) -> bool {
        match self.header.format {
            Format::Standard => self.header.xstate_bv.intersects(MXCSR_COMPONENTS),
            Format::Compacted => self.header.xstate_bv.contains(ComponentId::SSE),
        }
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }

    /// Where `component` starts in the buffer (0 for x87 and SSE, whose
    /// offsets are legacy-region offsets).
    ///
    /// # Errors
    ///
    /// [`AccessError::NoComponent`] when the layout lacks it,
    /// [`AccessError::NotInArea`] when the area has no room for it.
    #[inline]
    pub fn component_offset(&self, component: ComponentId) -> Result<usize, AccessError> {
        if component.is_legacy() {
            // The legacy region is always there, but a compacted area holds
            // x87 and SSE only when XCOMP_BV says so (XRSTOR faults otherwise).
            if self.header.format == Format::Compacted
                && !self.header.xcomp_bv.components().contains(component)
            {
                return Err(AccessError::NotInArea(component));
            }
            return Ok(0);
        }
        let g = self
            .layout
            .geometry(component)
            .ok_or(AccessError::NoComponent {
                component,
                supported: self.layout.supported(),
            })?;
        match self.header.format {
            Format::Standard if g.supervisor => Err(AccessError::NotInArea(component)),
            Format::Standard => Ok(g.offset as usize),
            Format::Compacted => self
                .layout
                .compacted_offset(self.header.xcomp_bv.components(), component)
                .map(|o| o as usize)
                .ok_or(AccessError::NotInArea(component)),
        }
    }

    /// The bytes of live `component`, or `None` when it is in its init
    /// configuration. For x87 and SSE that is the whole 512-byte legacy
    /// region, as [`RegisterFile::component`](crate::RegisterFile::component)
    /// gives it.
    ///
    /// # Errors
    ///
    /// As [`component_offset`](Self::component_offset), and
    /// [`AccessError::BufferTooSmall`] when the buffer ends inside it.
    #[inline]
    pub fn component(&self, component: ComponentId) -> Result<Option<&[u8]>, AccessError> {
        self.component_offset(component)?;
        if !self.header.xstate_bv.contains(component) {
            return Ok(None);
        }
        let range = self.extent_of(component)?;
        Ok(Some(&self.buf.as_ref()[range]))
    }

    /// The byte range `component` occupies, checked against the buffer.
    #[inline]
    pub(crate) fn extent_of(
        &self,
        component: ComponentId,
    ) -> Result<core::ops::Range<usize>, AccessError> {
        let base = self.component_offset(component)?;
        let size = if component.is_legacy() {
            LEGACY_SIZE
        } else {
            self.layout.geometry(component).map_or(0, |g| g.size) as usize
        };
        let len = self.buf.as_ref().len();
        if base + size > len {
            return Err(AccessError::BufferTooSmall {
                component,
                start: base,
                end: base + size,
                len,
            });
        }
        Ok(base..base + size)
    }

    #[inline]
    fn read_piece(&self, reg: Register, p: &Piece, dst: &mut [u8]) -> Result<(), AccessError> {
        let live = if reg == Register::Mxcsr {
            self.mxcsr_counts()
        } else {
            self.header.xstate_bv.contains(p.component)
        };
        match self.component_offset(p.component) {
            Ok(base) if live => {
                let start = base + p.offset as usize;
                match self.buf.as_ref().get(start..start + dst.len()) {
                    Some(src) => dst.copy_from_slice(src),
                    // The buffer ends inside the component: name its extent.
                    None => {
                        return Err(self.extent_of(p.component).err().unwrap_or(
                            AccessError::BufferTooSmall {
                                component: p.component,
                                start,
                                end: start + dst.len(),
                                len: self.buf.as_ref().len(),
                            },
                        ))
                    }
                }
            }
            // Compacted areas without the component hold it in init state.
            Ok(_) | Err(AccessError::NotInArea(_)) => init_bytes(reg, dst),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

impl<B: AsRef<[u8]>> XsaveView<'_, B> {
    /// Copies the `dst.len()` bytes at `offset` in `component` of a
    /// standard-format area into `dst` when the component is live, zeros
    /// when it is init; `false` (and `dst` partly written) where the fast
    /// path does not apply (the compacted format, a component the layout
    /// lacks, a buffer cut short), for the general path to answer.
    #[inline(always)]
    fn standard_copy(&self, component: ComponentId, offset: usize, dst: &mut [u8]) -> bool {
        if self.header.format != Format::Standard {
            return false;
        }
        if self.header.xstate_bv.contains(component) {
            // Live: the header check at opening saw the component in the
            // layout's XCR0, so its table entry holds its offset.
            let at = self.layout.standard_offset_of_live(component) as usize + offset;
            return match self.buf.as_ref().get(at..at + dst.len()) {
                Some(src) => {
                    dst.copy_from_slice(src);
                    true
                }
                None => false,
            };
        }
        if !component.is_legacy() && !self.layout.has(component) {
            return false;
        }
        dst.fill(0);
        true
    }

    /// 16-byte lanes gathered from standard-format pieces `(component,
    /// offset, lanes)`, copied in memory rather than assembled from 8-byte
    /// halves in general registers, so a caller that moves the result with
    /// 16-byte loads reads it through store forwarding instead of stalling
    /// (measured here: ymm 7.8 ns that way against 2 ns for the floor).
    #[inline(always)]
    fn standard_lanes<const N: usize>(
        &self,
        pieces: &[(ComponentId, usize, usize)],
        out: &mut [u128; N],
    ) -> bool {
        let bytes = out.as_mut_bytes();
        let mut at = 0;
        for &(component, offset, lanes) in pieces {
            if !self.standard_copy(component, offset, &mut bytes[at..at + 16 * lanes]) {
                return false;
            }
            at += 16 * lanes;
        }
        for v in out.iter_mut() {
            *v = u128::from_le(*v);
        }
        true
    }
}

impl<B: AsRef<[u8]>> XstateRead for XsaveView<'_, B> {
    #[inline]
    fn xstate_bv(&self) -> Xfeatures {
        self.header.xstate_bv
    }

    // The register accessors take a fast path for the standard format
    // (where a view's checks at opening guarantee every live component's
    // bytes), and the general one, `read_into`, for everything else; both
    // give the same bytes (tests/proptest_views.rs).

    #[inline(always)]
    fn xmm(&self, i: usize) -> Result<u128, AccessError> {
        let mut out = [0u128; 1];
        if !(i < 16 && self.standard_lanes(&[(ComponentId::SSE, 160 + 16 * i, 1)], &mut out)) {
            crate::access::general::lanes_into(self, i, &mut out)?;
        }
        Ok(out[0])
    }

    #[inline(always)]
    fn ymm(&self, i: usize) -> Result<[u128; 2], AccessError> {
        let mut out = [0u128; 2];
        // The pieces' offsets only for an index in range: a huge one would
        // overflow.
        let fast = i < 16
            && self.standard_lanes(
                &[
                    (ComponentId::SSE, 160 + 16 * i, 1),
                    (ComponentId::AVX, 16 * i, 1),
                ],
                &mut out,
            );
        if !fast {
            crate::access::general::lanes_into(self, i, &mut out)?;
        }
        Ok(out)
    }

    #[inline(always)]
    fn zmm(&self, i: usize) -> Result<[u128; 4], AccessError> {
        let mut out = [0u128; 4];
        let fast = if i < 16 {
            self.standard_lanes(
                &[
                    (ComponentId::SSE, 160 + 16 * i, 1),
                    (ComponentId::AVX, 16 * i, 1),
                    (ComponentId::ZMM_HI256, 32 * i, 2),
                ],
                &mut out,
            )
        } else if i < 32 {
            self.standard_lanes(&[(ComponentId::HI16_ZMM, 64 * (i - 16), 4)], &mut out)
        } else {
            false
        };
        if !fast {
            crate::access::general::lanes_into(self, i, &mut out)?;
        }
        Ok(out)
    }

    #[inline(always)]
    fn r(&self, i: usize) -> Result<u64, AccessError> {
        if (16..32).contains(&i) {
            let mut v = 0u64;
            if self.standard_copy(ComponentId::APX, 8 * (i - 16), v.as_mut_bytes()) {
                return Ok(u64::from_le(v));
            }
        }
        crate::access::general::r(self, i)
    }

    #[inline]
    fn read_into(&self, reg: Register, out: &mut [u8]) -> Result<(), AccessError> {
        check_register(reg)?;
        check_width(reg, out)?;
        let (pieces, n) = reg.pieces();
        let mut at = 0;
        for p in &pieces[..n] {
            let dst = &mut out[at..at + p.len as usize];
            self.read_piece(reg, p, dst)?;
            at += p.len as usize;
        }
        Ok(())
    }
}

/// The init value of one register piece: FCW 0x037F, MXCSR 0x1F80, all else 0.
#[inline]
fn init_bytes(reg: Register, dst: &mut [u8]) {
    match reg {
        Register::Fcw => dst.copy_from_slice(&FCW_INIT.to_le_bytes()),
        Register::Mxcsr => dst.copy_from_slice(&MXCSR_INIT.to_le_bytes()),
        _ => dst.fill(0),
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> XstateWrite for XsaveView<'_, B> {
    #[inline]
    fn write(&mut self, reg: Register, value: &[u8]) -> Result<(), AccessError> {
        check_register(reg)?;
        check_width(reg, value)?;
        let (pieces, n) = reg.pieces();
        // Check every piece before touching anything.
        let mut bases = [0usize; 3];
        for (i, p) in pieces[..n].iter().enumerate() {
            bases[i] = self.extent_of(p.component)?.start;
        }
        let mut at = 0;
        for (i, p) in pieces[..n].iter().enumerate() {
            // MXCSR is SSE state (the CPU's XINUSE[1] tracks it too).
            let owner = if reg == Register::Mxcsr {
                ComponentId::SSE
            } else {
                p.component
            };
            self.make_live(owner)?;
            let start = bases[i] + p.offset as usize;
            let len = p.len as usize;
            let buf = self.buf.as_mut();
            buf[start..start + len].copy_from_slice(&value[at..at + len]);
            // A component's reserved bytes (PKRU's 4..8) are written as zero.
            let reserved = p.component.reserved_bytes();
            buf[bases[i] + reserved.start..bases[i] + reserved.end].fill(0);
            at += len;
        }
        Ok(())
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> XsaveView<'_, B> {
    /// Makes `component` live: if its XSTATE_BV bit is clear, fills it with
    /// its init values first, then sets the bit.
    ///
    /// While SSE and AVX are init, MXCSR's bytes are set to the 0x1F80 the
    /// view reports, whether or not `component` was live: the
    /// standard-format XRSTOR loads MXCSR whatever XSTATE_BV says, and
    /// `KVM_SET_XSAVE` checks it whenever x87, SSE or AVX is live, so a
    /// buffer's stale bytes there must not survive a write.
    ///
    /// # Errors
    ///
    /// As [`component_offset`](Self::component_offset), and
    /// [`AccessError::BufferTooSmall`]; nothing changes then.
    #[inline]
    pub fn make_live(&mut self, component: ComponentId) -> Result<(), AccessError> {
        let range = self.extent_of(component)?;
        let was_mxcsr_live = self.mxcsr_counts();
        let buf = self.buf.as_mut();
        if !was_mxcsr_live {
            buf[legacy::MXCSR..legacy::MXCSR + 4].copy_from_slice(&MXCSR_INIT.to_le_bytes());
        }
        if self.header.xstate_bv.contains(component) {
            return Ok(());
        }
        match component {
            ComponentId::X87 => {
                for r in legacy::X87_RANGES {
                    buf[r].fill(0);
                }
                buf[legacy::FCW as usize..legacy::FCW as usize + 2]
                    .copy_from_slice(&FCW_INIT.to_le_bytes());
            }
            ComponentId::SSE => buf[legacy::SSE_RANGE].fill(0),
            _ => buf[range].fill(0),
        }
        self.set_xstate_bv(self.header.xstate_bv.with(component));
        Ok(())
    }

    /// Puts `component` in its init configuration by clearing its
    /// XSTATE_BV bit (its bytes are left as they are, as XSAVE would); any
    /// component number, known or not.
    ///
    /// When SSE and AVX are then both init, MXCSR's bytes are set to 0x1F80:
    /// the standard-format XRSTOR loads MXCSR from memory whatever XSTATE_BV
    /// says, so the bytes must agree with the value the view reports.
    #[inline]
    pub fn set_init(&mut self, component: ComponentId) {
        self.set_xstate_bv(self.header.xstate_bv.without(component));
        if !self.mxcsr_counts() {
            self.buf.as_mut()[legacy::MXCSR..legacy::MXCSR + 4]
                .copy_from_slice(&MXCSR_INIT.to_le_bytes());
        }
    }

    #[inline]
    pub(crate) fn set_xstate_bv(&mut self, value: Xfeatures) {
        self.header.xstate_bv = value;
        XsaveHeader::of_mut(self.buf.as_mut())
            .xstate_bv
            .set(value.bits());
    }

    /// The whole buffer, writable: for the crate's own encoders, which
    /// keep the header in step through [`set_xstate_bv`](Self::set_xstate_bv).
    #[cfg(feature = "alloc")]
    #[inline]
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Mutable bytes of extended `component`, made live first. The header
    /// stays the view's to keep.
    ///
    /// # Errors
    ///
    /// As [`make_live`](Self::make_live).
    #[inline]
    pub fn component_mut(&mut self, component: ComponentId) -> Result<&mut [u8], AccessError> {
        let range = self.extent_of(component)?;
        self.make_live(component)?;
        Ok(&mut self.buf.as_mut()[range])
    }
}
