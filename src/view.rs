//! Zero-copy typed views over an XSAVE area.
//!
//! An [`XsaveView`] borrows (or owns) a byte buffer holding an XSAVE area in
//! the standard or the compacted format and a [`Layout`] that says where each
//! component is. Opening one checks the header against the layout and copies
//! nothing; the buffer may have any alignment. Reads and writes go through
//! the [`Register`] table and apply the hardware's init-state rules:
//!
//! - a component whose XSTATE_BV bit is clear reads as its init values,
//!   whatever bytes the buffer holds for it;
//! - the first write to such a component fills it with its init values,
//!   then sets its bit, then stores the value;
//! - MXCSR counts only while SSE or AVX is live (as KVM and the compacted
//!   format treat it) and reads as 0x1F80 otherwise; writing it makes SSE
//!   live (MXCSR is SSE state: the CPU's XINUSE[1] tracks it too);
//! - a register whose component the layout lacks is an error, not a zero.
//!
//! ```
//! use xstate::{layout::catalog, XsaveView, Component};
//!
//! let layout = catalog::get("intel-diamond-rapids").unwrap();
//! let mut buf = vec![0u8; layout.standard_size() as usize];
//! let mut view = XsaveView::new(&mut buf[..], layout).unwrap();
//! assert_eq!(view.r(20).unwrap(), 0); // APX in init state
//! view.set_r(20, 0xfeed).unwrap();
//! assert_eq!(view.xstate_bv() & Component::Apx.mask(), Component::Apx.mask());
//! assert_eq!(u64::from_le_bytes(buf[960 + 32..960 + 40].try_into().unwrap()), 0xfeed);
//! ```

use crate::area::{
    self, legacy, XsaveHeader, FCW_INIT, HEADER_OFFSET, MXCSR_INIT, XCOMP_BV_COMPACTED,
};
use crate::component::{self, Component, EXTENDED_REGION_START};
use crate::error::ViewError;
use crate::layout::Layout;
use crate::register::{Piece, Register};
use zerocopy::FromBytes;

/// The two XSAVE area formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Every component at its CPUID offset (XSAVE, XSAVEOPT, KVM).
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

/// A typed view over an XSAVE area. See the [module docs](self).
///
/// `B` is the buffer: `&[u8]` for a read view, `&mut [u8]` for a write view,
/// or any owner such as `Vec<u8>`.
#[derive(Clone, Debug)]
pub struct XsaveView<'a, B> {
    buf: B,
    layout: &'a Layout,
    format: Format,
    xstate_bv: u64,
    xcomp_bv: u64,
}

const MXCSR_COMPONENTS: u64 = Component::Sse.mask() | Component::Avx.mask();

/// Reads the header fields of `buf` (at least 576 bytes).
#[inline]
fn header(buf: &[u8]) -> &XsaveHeader {
    XsaveHeader::ref_from_bytes(&buf[HEADER_OFFSET..HEADER_OFFSET + 64])
        .expect("64 bytes, unaligned type")
}

/// Checks an area's header and size against `layout` and returns its
/// format, XSTATE_BV and XCOMP_BV.
#[inline]
pub fn check_header(buf: &[u8], layout: &Layout) -> Result<(Format, u64, u64), ViewError> {
    let min = EXTENDED_REGION_START as usize;
    if buf.len() < min {
        return Err(ViewError::TooSmall {
            len: buf.len(),
            needed: min,
            format: "standard",
        });
    }
    let h = header(buf);
    let (xstate_bv, xcomp_bv) = (h.xstate_bv.get(), h.xcomp_bv.get());
    let reserved_words = h.reserved.chunks_exact(8).fold(0u64, |acc, w| {
        acc | u64::from_ne_bytes(w.try_into().expect("8 bytes"))
    });
    if reserved_words != 0 {
        let i = h.reserved.iter().position(|&b| b != 0).unwrap_or(0);
        return Err(ViewError::ReservedHeader {
            offset: area::HEADER_RESERVED.start + i,
            value: h.reserved[i],
        });
    }
    let unsupported = |field, value: u64, allowed: u64| ViewError::Unsupported {
        field,
        value,
        unsupported: value & !allowed,
        layout: layout.name().to_string(),
    };
    if xcomp_bv & XCOMP_BV_COMPACTED == 0 {
        if xcomp_bv != 0 {
            return Err(ViewError::BadXcompBv {
                xcomp_bv,
                format: "standard",
            });
        }
        if xstate_bv & !layout.xcr0_supported() != 0 {
            return Err(unsupported("XSTATE_BV", xstate_bv, layout.xcr0_supported()));
        }
        // A buffer of the full standard size (a kvm_xsave, say) holds any XSTATE_BV.
        let needed = if buf.len() >= layout.standard_size() as usize {
            0
        } else {
            layout.standard_size_for(xstate_bv) as usize
        };
        if buf.len() < needed {
            return Err(ViewError::TooSmall {
                len: buf.len(),
                needed,
                format: "standard",
            });
        }
        Ok((Format::Standard, xstate_bv, 0))
    } else {
        let held = xcomp_bv & !XCOMP_BV_COMPACTED;
        if held & !layout.supported() != 0 {
            return Err(unsupported("XCOMP_BV", held, layout.supported()));
        }
        // As XRSTOR requires: every live component is one the area holds.
        if xstate_bv & !held != 0 {
            return Err(ViewError::NotInXcompBv {
                xstate_bv,
                xcomp_bv,
                missing: xstate_bv & !held,
            });
        }
        if xstate_bv & !layout.supported() != 0 {
            return Err(unsupported("XSTATE_BV", xstate_bv, layout.supported()));
        }
        let needed = layout.compacted_size_for(held) as usize;
        if buf.len() < needed {
            return Err(ViewError::TooSmall {
                len: buf.len(),
                needed,
                format: "compacted",
            });
        }
        Ok((Format::Compacted, xstate_bv, xcomp_bv))
    }
}

impl<'a, B: AsRef<[u8]>> XsaveView<'a, B> {
    /// Opens a view, checking the header against `layout`: the buffer's
    /// size, XCOMP_BV against the format (bit 63 selects compacted), the
    /// reserved header bytes, and that XSTATE_BV and XCOMP_BV name only
    /// components the layout supports.
    #[inline(always)]
    pub fn new(buf: B, layout: &'a Layout) -> Result<Self, ViewError> {
        let (format, xstate_bv, xcomp_bv) = check_header(buf.as_ref(), layout)?;
        Ok(XsaveView {
            buf,
            layout,
            format,
            xstate_bv,
            xcomp_bv,
        })
    }

    /// The layout the view reads with.
    pub fn layout(&self) -> &'a Layout {
        self.layout
    }

    /// The area's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// XSTATE_BV: the components not in their init configuration.
    pub fn xstate_bv(&self) -> u64 {
        self.xstate_bv
    }

    /// XCOMP_BV (0 in the standard format).
    pub fn xcomp_bv(&self) -> u64 {
        self.xcomp_bv
    }

    /// Whether `component` is live (its XSTATE_BV bit is set).
    pub fn is_live(&self, component: Component) -> bool {
        self.xstate_bv & component.mask() != 0
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }

    /// Where component `index` starts in the buffer (0 for x87 and SSE, whose
    /// offsets are legacy-region offsets), or why it cannot be reached.
    #[inline]
    pub fn component_offset(&self, index: u8) -> Result<usize, ViewError> {
        if index < 2 {
            // The legacy region is always there, but a compacted area holds
            // x87 and SSE only when XCOMP_BV says so (XRSTOR faults otherwise).
            if self.format == Format::Compacted && self.xcomp_bv & (1 << index) == 0 {
                return Err(ViewError::NotInBuffer { index });
            }
            return Ok(0);
        }
        let g = self
            .layout
            .geometry(index)
            .ok_or_else(|| ViewError::NoComponent {
                index,
                layout: self.layout.name().to_string(),
            })?;
        match self.format {
            Format::Standard if g.supervisor => Err(ViewError::NotInBuffer { index }),
            Format::Standard => Ok(g.offset as usize),
            Format::Compacted => self
                .layout
                .compacted_offset_of(self.xcomp_bv, index)
                .map(|o| o as usize)
                .ok_or(ViewError::NotInBuffer { index }),
        }
    }

    /// The bytes of live component `index`, or `None` when it is in its
    /// init configuration. For x87 and SSE (0 and 1) that is the whole
    /// 512-byte legacy region, as [`RegisterFile::component`](crate::RegisterFile::component) gives it.
    #[inline]
    pub fn component(&self, index: u8) -> Result<Option<&[u8]>, ViewError> {
        let offset = self.component_offset(index)?;
        if self.xstate_bv & component::bit(index) == 0 {
            return Ok(None);
        }
        let size = match index {
            0 | 1 => 512,
            _ => self.layout.geometry(index).map_or(0, |g| g.size) as usize,
        };
        self.slice(offset, size).map(Some)
    }

    #[inline]
    fn slice(&self, offset: usize, len: usize) -> Result<&[u8], ViewError> {
        let buf = self.buf.as_ref();
        buf.get(offset..offset + len).ok_or(ViewError::TooSmall {
            len: buf.len(),
            needed: offset + len,
            format: self.format.as_str(),
        })
    }

    /// The byte range a component occupies, checked against the buffer.
    #[inline]
    pub(crate) fn extent_of(&self, index: u8) -> Result<core::ops::Range<usize>, ViewError> {
        let base = self.component_offset(index)?;
        let size = match index {
            0 | 1 => 512,
            _ => self.layout.geometry(index).map_or(0, |g| g.size) as usize,
        };
        let len = self.buf.as_ref().len();
        if base + size > len {
            return Err(ViewError::TooSmall {
                len,
                needed: base + size,
                format: self.format.as_str(),
            });
        }
        Ok(base..base + size)
    }

    /// Copies `reg`'s value, little-endian (memory order for AMX), into
    /// `out`, which must be [`Register::width`] bytes long.
    #[inline]
    pub fn read_into(&self, reg: Register, out: &mut [u8]) -> Result<(), ViewError> {
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

    #[inline]
    fn read_piece(&self, reg: Register, p: &Piece, dst: &mut [u8]) -> Result<(), ViewError> {
        let base = self.component_offset(p.component);
        let live = if reg == Register::Mxcsr {
            self.xstate_bv & MXCSR_COMPONENTS != 0
        } else {
            self.xstate_bv & (1 << p.component) != 0
        };
        match base {
            Ok(base) if live => {
                dst.copy_from_slice(self.slice(base + p.offset as usize, dst.len())?);
            }
            // Compacted areas without the component hold it in init state.
            Ok(_) | Err(ViewError::NotInBuffer { .. }) => init_bytes(reg, p, dst),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// The init value of one register piece: FCW 0x037F, MXCSR 0x1F80, all else 0.
#[inline]
fn init_bytes(reg: Register, p: &Piece, dst: &mut [u8]) {
    match reg {
        Register::Fcw => dst.copy_from_slice(&FCW_INIT.to_le_bytes()),
        Register::Mxcsr => dst.copy_from_slice(&MXCSR_INIT.to_le_bytes()),
        _ => dst.fill(0),
    }
    let _ = p;
}

/// Generates the typed register accessors for a type with `read_into`,
/// `read_array` and `write` (the views and the register file share them).
macro_rules! typed_accessors {
    (read: [$($rh:tt)*], write: [$($wh:tt)*]) => {
        $($rh)* {
            /// x87 control word.
            pub fn fcw(&self) -> Result<u16, ViewError> { self.get(Register::Fcw) }
            /// x87 status word.
            pub fn fsw(&self) -> Result<u16, ViewError> { self.get(Register::Fsw) }
            /// Abridged x87 tag word.
            pub fn ftw(&self) -> Result<u8, ViewError> { self.get(Register::Ftw) }
            /// Last x87 opcode.
            pub fn fop(&self) -> Result<u16, ViewError> { self.get(Register::Fop) }
            /// Last x87 instruction pointer.
            pub fn fip(&self) -> Result<u64, ViewError> { self.get(Register::Fip) }
            /// Last x87 data pointer.
            pub fn fdp(&self) -> Result<u64, ViewError> { self.get(Register::Fdp) }
            /// MXCSR (0x1F80 while SSE and AVX are both init).
            pub fn mxcsr(&self) -> Result<u32, ViewError> { self.get(Register::Mxcsr) }
            /// PKRU.
            pub fn pkru(&self) -> Result<u32, ViewError> { self.get(Register::Pkru) }
            /// MPX BNDCFGU.
            pub fn bndcfgu(&self) -> Result<u64, ViewError> { self.get(Register::Bndcfgu) }
            /// MPX BNDSTATUS.
            pub fn bndstatus(&self) -> Result<u64, ViewError> { self.get(Register::Bndstatus) }
            /// XMM`i` (0..16).
            pub fn xmm(&self, i: usize) -> Result<u128, ViewError> { self.get(Register::Xmm(index("xmm", i)?)) }
            /// Opmask k`i` (0..8).
            pub fn k(&self, i: usize) -> Result<u64, ViewError> { self.get(Register::K(index("k", i)?)) }
            /// MPX BND`i` (0..4): lower bound in the low 64 bits, upper in the high.
            pub fn bnd(&self, i: usize) -> Result<u128, ViewError> { self.get(Register::Bnd(index("bnd", i)?)) }
            /// APX r`i` (16..32).
            pub fn r(&self, i: usize) -> Result<u64, ViewError> { self.get(Register::R(index("r", i)?)) }
            /// ST`i` / MM`i` (0..8): the 80-bit value's 10 bytes, little-endian.
            pub fn st(&self, i: usize) -> Result<[u8; 10], ViewError> { self.read_array(Register::St(index("st", i)?)) }
            /// YMM`i` (0..16) as `[low 128 bits, high 128 bits]`.
            pub fn ymm(&self, i: usize) -> Result<[u128; 2], ViewError> {
                let b: [u8; 32] = self.read_array(Register::Ymm(index("ymm", i)?))?;
                Ok($crate::view::lanes(&b))
            }
            /// ZMM`i` (0..32) as four 128-bit lanes, lowest first.
            pub fn zmm(&self, i: usize) -> Result<[u128; 4], ViewError> {
                let b: [u8; 64] = self.read_array(Register::Zmm(index("zmm", i)?))?;
                Ok($crate::view::lanes(&b))
            }
            /// The AMX tile configuration, 64 bytes in memory order.
            pub fn tilecfg(&self) -> Result<[u8; 64], ViewError> { self.read_array(Register::Tilecfg) }
            /// AMX tile TMM`i` (0..8), 1024 bytes in memory order.
            pub fn tmm(&self, i: usize) -> Result<Box<[u8; 1024]>, ViewError> {
                let mut out = Box::new([0u8; 1024]);
                self.read_into(Register::Tmm(index("tmm", i)?), &mut out[..])?;
                Ok(out)
            }
            /// `reg`'s value as bytes, little-endian (memory order for AMX).
            pub fn read(&self, reg: Register) -> Result<Vec<u8>, ViewError> {
                check_register(reg)?;
                let mut out = vec![0; reg.width()];
                self.read_into(reg, &mut out)?;
                Ok(out)
            }
            #[inline(always)]
            fn read_array<const N: usize>(&self, reg: Register) -> Result<[u8; N], ViewError> {
                let mut out = [0; N];
                self.read_into(reg, &mut out)?;
                Ok(out)
            }
            #[inline(always)]
            fn get<T: $crate::view::LeBytes>(&self, reg: Register) -> Result<T, ViewError> {
                let mut out = T::Bytes::default();
                self.read_into(reg, out.as_mut())?;
                Ok(T::from_le(out))
            }
        }
        $($wh)* {
            /// Sets the x87 control word.
            pub fn set_fcw(&mut self, v: u16) -> Result<(), ViewError> { self.write(Register::Fcw, &v.to_le_bytes()) }
            /// Sets the x87 status word.
            pub fn set_fsw(&mut self, v: u16) -> Result<(), ViewError> { self.write(Register::Fsw, &v.to_le_bytes()) }
            /// Sets the abridged x87 tag word.
            pub fn set_ftw(&mut self, v: u8) -> Result<(), ViewError> { self.write(Register::Ftw, &[v]) }
            /// Sets the last x87 opcode.
            pub fn set_fop(&mut self, v: u16) -> Result<(), ViewError> { self.write(Register::Fop, &v.to_le_bytes()) }
            /// Sets the last x87 instruction pointer.
            pub fn set_fip(&mut self, v: u64) -> Result<(), ViewError> { self.write(Register::Fip, &v.to_le_bytes()) }
            /// Sets the last x87 data pointer.
            pub fn set_fdp(&mut self, v: u64) -> Result<(), ViewError> { self.write(Register::Fdp, &v.to_le_bytes()) }
            /// Sets MXCSR (making SSE live if SSE and AVX are both init).
            pub fn set_mxcsr(&mut self, v: u32) -> Result<(), ViewError> { self.write(Register::Mxcsr, &v.to_le_bytes()) }
            /// Sets PKRU.
            pub fn set_pkru(&mut self, v: u32) -> Result<(), ViewError> { self.write(Register::Pkru, &v.to_le_bytes()) }
            /// Sets MPX BNDCFGU.
            pub fn set_bndcfgu(&mut self, v: u64) -> Result<(), ViewError> { self.write(Register::Bndcfgu, &v.to_le_bytes()) }
            /// Sets MPX BNDSTATUS.
            pub fn set_bndstatus(&mut self, v: u64) -> Result<(), ViewError> { self.write(Register::Bndstatus, &v.to_le_bytes()) }
            /// Sets XMM`i` (0..16).
            pub fn set_xmm(&mut self, i: usize, v: u128) -> Result<(), ViewError> { self.write(Register::Xmm(index("xmm", i)?), &v.to_le_bytes()) }
            /// Sets opmask k`i` (0..8).
            pub fn set_k(&mut self, i: usize, v: u64) -> Result<(), ViewError> { self.write(Register::K(index("k", i)?), &v.to_le_bytes()) }
            /// Sets MPX BND`i` (0..4).
            pub fn set_bnd(&mut self, i: usize, v: u128) -> Result<(), ViewError> { self.write(Register::Bnd(index("bnd", i)?), &v.to_le_bytes()) }
            /// Sets APX r`i` (16..32).
            pub fn set_r(&mut self, i: usize, v: u64) -> Result<(), ViewError> { self.write(Register::R(index("r", i)?), &v.to_le_bytes()) }
            /// Sets ST`i` (0..8) from the 80-bit value's 10 bytes.
            pub fn set_st(&mut self, i: usize, v: [u8; 10]) -> Result<(), ViewError> { self.write(Register::St(index("st", i)?), &v) }
            /// Sets YMM`i` (0..16) from `[low, high]`.
            pub fn set_ymm(&mut self, i: usize, v: [u128; 2]) -> Result<(), ViewError> {
                self.write(Register::Ymm(index("ymm", i)?), &$crate::view::lane_bytes::<2, 32>(v))
            }
            /// Sets ZMM`i` (0..32) from four lanes, lowest first.
            pub fn set_zmm(&mut self, i: usize, v: [u128; 4]) -> Result<(), ViewError> {
                self.write(Register::Zmm(index("zmm", i)?), &$crate::view::lane_bytes::<4, 64>(v))
            }
            /// Sets the AMX tile configuration.
            pub fn set_tilecfg(&mut self, v: &[u8; 64]) -> Result<(), ViewError> { self.write(Register::Tilecfg, v) }
            /// Sets AMX tile TMM`i` (0..8).
            pub fn set_tmm(&mut self, i: usize, v: &[u8; 1024]) -> Result<(), ViewError> { self.write(Register::Tmm(index("tmm", i)?), v) }
        }
    };
}
pub(crate) use typed_accessors;

/// Integers that registers decode to.
#[doc(hidden)]
pub trait LeBytes {
    /// The byte array.
    type Bytes: Default + AsMut<[u8]>;
    /// Decodes.
    fn from_le(b: Self::Bytes) -> Self;
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            type Bytes = [u8; core::mem::size_of::<$t>()];
            fn from_le(b: Self::Bytes) -> Self { <$t>::from_le_bytes(b) }
        }
    )*};
}
le_bytes!(u8, u16, u32, u64, u128);

/// Converts an index to a register number, or the error naming it.
#[inline]
pub(crate) fn index(name: &'static str, i: usize) -> Result<u8, ViewError> {
    u8::try_from(i).map_err(|_| ViewError::NoRegister { name, index: i })
}

/// Checks a value has the register's width.
#[inline]
pub(crate) fn check_width(reg: Register, value: &[u8]) -> Result<(), ViewError> {
    if value.len() == reg.width() {
        Ok(())
    } else {
        Err(ViewError::WrongWidth {
            register: reg.name(),
            expected: reg.width(),
            got: value.len(),
        })
    }
}

/// Checks a register's index is in range.
#[inline]
pub(crate) fn check_register(reg: Register) -> Result<(), ViewError> {
    if reg.is_valid() {
        return Ok(());
    }
    let (name, index) = match reg {
        Register::St(i) => ("st", i),
        Register::Xmm(i) => ("xmm", i),
        Register::Ymm(i) => ("ymm", i),
        Register::Zmm(i) => ("zmm", i),
        Register::K(i) => ("k", i),
        Register::Bnd(i) => ("bnd", i),
        Register::Tmm(i) => ("tmm", i),
        Register::R(i) => ("r", i),
        _ => ("?", 0),
    };
    Err(ViewError::NoRegister {
        name,
        index: index as usize,
    })
}

typed_accessors!(
    read: [impl<'a, B: AsRef<[u8]>> XsaveView<'a, B>],
    write: [impl<'a, B: AsRef<[u8]> + AsMut<[u8]>> XsaveView<'a, B>]
);

#[inline]
pub(crate) fn lanes<const N: usize>(b: &[u8]) -> [u128; N] {
    core::array::from_fn(|i| {
        u128::from_le_bytes(b[16 * i..16 * i + 16].try_into().expect("16 bytes"))
    })
}

#[inline]
pub(crate) fn lane_bytes<const N: usize, const M: usize>(v: [u128; N]) -> [u8; M] {
    let mut out = [0u8; M];
    for (i, lane) in v.iter().enumerate() {
        out[16 * i..16 * i + 16].copy_from_slice(&lane.to_le_bytes());
    }
    out
}

impl<'a, B: AsRef<[u8]> + AsMut<[u8]>> XsaveView<'a, B> {
    /// The whole buffer, for writing. Changes to the header through it are
    /// not seen by the view; reopen it after such changes.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Writes `reg` from little-endian bytes (memory order for AMX),
    /// making its components live first.
    ///
    /// Nothing is written if any piece cannot be (missing component, no
    /// room in a compacted area).
    #[inline]
    pub fn write(&mut self, reg: Register, value: &[u8]) -> Result<(), ViewError> {
        check_register(reg)?;
        check_width(reg, value)?;
        let (pieces, n) = reg.pieces();
        // Check every piece before touching anything.
        let mut bases = [0usize; 3];
        for (i, p) in pieces[..n].iter().enumerate() {
            bases[i] = self.component_offset(p.component)?;
            self.extent_of(p.component)?;
        }
        let mut at = 0;
        for (i, p) in pieces[..n].iter().enumerate() {
            if reg == Register::Mxcsr {
                // MXCSR is SSE state (the CPU's XINUSE[1] tracks it too).
                self.make_live(Component::Sse.index())?;
            } else {
                self.make_live(p.component)?;
            }
            let start = bases[i] + p.offset as usize;
            let len = p.len as usize;
            let buf = self.buf.as_mut();
            buf[start..start + len].copy_from_slice(&value[at..at + len]);
            // A component's reserved bytes (PKRU's 4..8) are written as zero.
            let reserved = component::reserved_bytes(p.component);
            buf[bases[i] + reserved.start..bases[i] + reserved.end].fill(0);
            at += len;
        }
        Ok(())
    }

    /// Makes component `index` live: if its XSTATE_BV bit is clear, fills
    /// it with its init values first, then sets the bit.
    #[inline]
    pub fn make_live(&mut self, index: u8) -> Result<(), ViewError> {
        let range = self.extent_of(index)?;
        if self.xstate_bv & (1 << index) != 0 {
            return Ok(());
        }
        let was_mxcsr_live = self.xstate_bv & MXCSR_COMPONENTS != 0;
        let buf = self.buf.as_mut();
        match index {
            0 => {
                for r in legacy::X87_RANGES {
                    buf[r].fill(0);
                }
                buf[0..2].copy_from_slice(&FCW_INIT.to_le_bytes());
            }
            1 => buf[legacy::SSE_RANGE].fill(0),
            _ => buf[range].fill(0),
        }
        if (1u64 << index) & MXCSR_COMPONENTS != 0 && !was_mxcsr_live {
            let m = legacy::MXCSR as usize;
            buf[m..m + 4].copy_from_slice(&MXCSR_INIT.to_le_bytes());
        }
        self.set_xstate_bv(self.xstate_bv | 1 << index);
        Ok(())
    }

    /// Puts `component` in its init configuration by clearing its
    /// XSTATE_BV bit (its bytes are left as they are, as XSAVE would).
    ///
    /// When SSE and AVX are then both init, MXCSR's bytes are set to 0x1F80:
    /// the standard-format XRSTOR loads MXCSR from memory whatever XSTATE_BV
    /// says, so the bytes must agree with the value the view reports.
    pub fn set_init(&mut self, component: Component) {
        self.clear_bit(component.index());
    }

    /// Clears bit `index` of XSTATE_BV (any component number).
    #[inline]
    pub fn clear_bit(&mut self, index: u8) {
        let was_mxcsr_live = self.xstate_bv & MXCSR_COMPONENTS != 0;
        self.set_xstate_bv(self.xstate_bv & !component::bit(index));
        if was_mxcsr_live && self.xstate_bv & MXCSR_COMPONENTS == 0 {
            let m = legacy::MXCSR as usize;
            self.buf.as_mut()[m..m + 4].copy_from_slice(&MXCSR_INIT.to_le_bytes());
        }
    }

    #[inline]
    pub(crate) fn set_xstate_bv(&mut self, value: u64) {
        self.xstate_bv = value;
        self.buf.as_mut()[HEADER_OFFSET..HEADER_OFFSET + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Mutable bytes of extended component `index` (>= 2), made live first.
    #[inline]
    pub fn component_mut(&mut self, index: u8) -> Result<&mut [u8], ViewError> {
        let range = self.extent_of(index)?;
        self.make_live(index)?;
        Ok(&mut self.buf.as_mut()[range])
    }
}

/// Writes an empty header (XSTATE_BV 0) for `format` into `buf`, making it a
/// valid all-init area for `layout`; `xcomp_bv` is used for the compacted
/// format (bit 63 is added).
///
/// ```
/// use xstate::{layout::catalog, view::init_area, Format, XsaveView};
///
/// let layout = catalog::get("amd-zen4").unwrap();
/// let mut buf = vec![0xAAu8; layout.compacted_size() as usize];
/// init_area(&mut buf, Format::Compacted, layout.xcr0_supported());
/// let view = XsaveView::new(&buf[..], layout).unwrap();
/// assert_eq!(view.zmm(17).unwrap(), [0; 4]);
/// assert_eq!(view.fcw().unwrap(), 0x037f);
/// ```
pub fn init_area(buf: &mut [u8], format: Format, xcomp_bv: u64) {
    let h = &mut buf[HEADER_OFFSET..HEADER_OFFSET + 64];
    h.fill(0);
    if format == Format::Compacted {
        h[8..16].copy_from_slice(&(xcomp_bv | XCOMP_BV_COMPACTED).to_le_bytes());
    }
}
