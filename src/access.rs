//! Typed register access, shared by the views and the register file.
//!
//! [`XstateRead`] and [`XstateWrite`] give every register a typed getter
//! and setter (`xmm`, `set_zmm`, `tmm`, `r`, ...) on top of one required
//! method each, which copies a [`Register`]'s bytes out or in. The views
//! ([`XsaveView`](crate::XsaveView)) and the register file
//! ([`RegisterFile`](crate::RegisterFile)) implement them, so code written
//! against the traits (the 32-GPR view of [`kvm`](crate::kvm), an
//! instruction emulator) takes either.
//!
//! ```
//! use xstate::prelude::*;
//! use xstate::{layout::catalog, RegisterFile, XsaveView};
//!
//! fn bump_xmm0(state: &mut impl XstateWrite) -> Result<(), xstate::AccessError> {
//!     let v = state.xmm(0)?;
//!     state.set_xmm(0, v + 1)
//! }
//!
//! let mut regs = RegisterFile::new();
//! bump_xmm0(&mut regs).unwrap();
//! let layout = catalog::get("amd-zen4").unwrap();
//! let mut area = regs.encode(layout, xstate::Format::Standard).unwrap();
//! let mut view = XsaveView::new(&mut area[..], layout).unwrap();
//! bump_xmm0(&mut view).unwrap();
//! assert_eq!(view.xmm(0).unwrap(), 2);
//! ```

use crate::area::HeaderError;
use crate::component::{ComponentId, Xfeatures};
use crate::register::Register;

/// Why a register or component could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The area's header does not fit the layout.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// A register of a component the layout does not have.
    #[error("{component} (component {n}) is not supported by the layout (it supports {supported})", n = .component.index())]
    NoComponent {
        /// The component.
        component: ComponentId,
        /// The layout's components.
        supported: Xfeatures,
    },
    /// A component the area has no room for: not in a compacted area's
    /// XCOMP_BV, or a supervisor component in the standard format.
    #[error("{0} (component {n}) is not in this area (not in its XCOMP_BV, or supervisor state in the standard format)", n = .0.index())]
    NotInArea(ComponentId),
    /// The buffer ends inside a component.
    #[error("{component} (component {n}) at bytes {start}..{end} lies past the end of the {len}-byte buffer", n = .component.index())]
    BufferTooSmall {
        /// The component.
        component: ComponentId,
        /// Its first byte in the buffer.
        start: usize,
        /// Its end in the buffer.
        end: usize,
        /// The buffer's length in bytes.
        len: usize,
    },
    /// A component whose size at the destination differs from the state's.
    #[error("{component} (component {n}) is {layout_size} bytes in the layout but {state_size} bytes in the state", n = .component.index())]
    SizeMismatch {
        /// The component.
        component: ComponentId,
        /// Its size in bytes in the layout.
        layout_size: usize,
        /// Its size in bytes in the state.
        state_size: usize,
    },
    /// A value whose length is not the register's width.
    #[error("{register} is {expected} bytes wide, the value given is {got} bytes")]
    WrongWidth {
        /// The register.
        register: Register,
        /// Its width in bytes.
        expected: usize,
        /// The value's length in bytes.
        got: usize,
    },
    /// A register index out of range (xmm16, k8, r40, ...).
    #[error("no register {family}{index}")]
    NoRegister {
        /// Register family name.
        family: &'static str,
        /// The index given.
        index: usize,
    },
}

/// Reading registers out of an XSAVE state: one required method, the typed
/// getters provided. See the [module docs](self).
///
/// # Errors
///
/// Every getter fails as [`read_into`](Self::read_into) does.
#[allow(clippy::missing_errors_doc)]
pub trait XstateRead {
    /// The live components (XSTATE_BV): components not in it read as their
    /// init values.
    fn xstate_bv(&self) -> Xfeatures;

    /// Copies `reg`'s value, little-endian (memory order for AMX), into
    /// `out`, which must be [`Register::width`] bytes long.
    ///
    /// # Errors
    ///
    /// [`AccessError::NoRegister`] for an index out of range,
    /// [`AccessError::WrongWidth`] for a wrong `out`, and the implementer's
    /// errors for a component it lacks.
    fn read_into(&self, reg: Register, out: &mut [u8]) -> Result<(), AccessError>;

    /// Whether `component` is live (its XSTATE_BV bit is set).
    fn is_live(&self, component: ComponentId) -> bool {
        self.xstate_bv().contains(component)
    }

    /// `reg`'s value as bytes, little-endian (memory order for AMX).
    ///
    /// # Errors
    ///
    /// As [`read_into`](Self::read_into).
    #[cfg(feature = "alloc")]
    fn read(&self, reg: Register) -> Result<alloc::vec::Vec<u8>, AccessError> {
        check_register(reg)?;
        let mut out = alloc::vec![0; reg.width()];
        self.read_into(reg, &mut out)?;
        Ok(out)
    }

    /// x87 control word.
    fn fcw(&self) -> Result<u16, AccessError> {
        get(self, Register::Fcw)
    }
    /// x87 status word.
    fn fsw(&self) -> Result<u16, AccessError> {
        get(self, Register::Fsw)
    }
    /// Abridged x87 tag word.
    fn ftw(&self) -> Result<u8, AccessError> {
        get(self, Register::Ftw)
    }
    /// Last x87 opcode.
    fn fop(&self) -> Result<u16, AccessError> {
        get(self, Register::Fop)
    }
    /// Last x87 instruction pointer.
    fn fip(&self) -> Result<u64, AccessError> {
        get(self, Register::Fip)
    }
    /// Last x87 data pointer.
    fn fdp(&self) -> Result<u64, AccessError> {
        get(self, Register::Fdp)
    }
    /// MXCSR (0x1F80 while SSE and AVX are both init).
    fn mxcsr(&self) -> Result<u32, AccessError> {
        get(self, Register::Mxcsr)
    }
    /// PKRU.
    fn pkru(&self) -> Result<u32, AccessError> {
        get(self, Register::Pkru)
    }
    /// MPX BNDCFGU.
    fn bndcfgu(&self) -> Result<u64, AccessError> {
        get(self, Register::Bndcfgu)
    }
    /// MPX BNDSTATUS.
    fn bndstatus(&self) -> Result<u64, AccessError> {
        get(self, Register::Bndstatus)
    }
    /// XMM`i` (0..16).
    #[inline]
    fn xmm(&self, i: usize) -> Result<u128, AccessError> {
        get(self, Register::Xmm(index("xmm", i)?))
    }
    /// Opmask k`i` (0..8).
    fn k(&self, i: usize) -> Result<u64, AccessError> {
        get(self, Register::K(index("k", i)?))
    }
    /// MPX BND`i` (0..4): lower bound in the low 64 bits, upper in the high.
    fn bnd(&self, i: usize) -> Result<u128, AccessError> {
        get(self, Register::Bnd(index("bnd", i)?))
    }
    /// APX r`i` (16..32).
    fn r(&self, i: usize) -> Result<u64, AccessError> {
        get(self, Register::R(index("r", i)?))
    }
    /// ST`i` / MM`i` (0..8): the 80-bit value's 10 bytes, little-endian.
    fn st(&self, i: usize) -> Result<[u8; 10], AccessError> {
        read_array(self, Register::St(index("st", i)?))
    }
    /// YMM`i` (0..16) as `[low 128 bits, high 128 bits]`.
    // Not marked #[inline], unlike xmm and zmm: inlined into a caller it
    // measured twice as slow (benches/view.rs).
    fn ymm(&self, i: usize) -> Result<[u128; 2], AccessError> {
        let b: [u8; 32] = read_array(self, Register::Ymm(index("ymm", i)?))?;
        Ok(lanes(&b))
    }
    /// ZMM`i` (0..32) as four 128-bit lanes, lowest first.
    #[inline]
    fn zmm(&self, i: usize) -> Result<[u128; 4], AccessError> {
        let b: [u8; 64] = read_array(self, Register::Zmm(index("zmm", i)?))?;
        Ok(lanes(&b))
    }
    /// The AMX tile configuration, 64 bytes in memory order.
    fn tilecfg(&self) -> Result<[u8; 64], AccessError> {
        read_array(self, Register::Tilecfg)
    }
    /// AMX tile TMM`i` (0..8), 1024 bytes in memory order (16 rows of 64).
    fn tmm(&self, i: usize) -> Result<[u8; 1024], AccessError> {
        read_array(self, Register::Tmm(index("tmm", i)?))
    }
}

/// Writing registers into an XSAVE state: one required method, the typed
/// setters provided. A write to a component in its init configuration
/// first puts the rest of it at its init values and marks it live.
///
/// # Errors
///
/// Every setter fails as [`write`](Self::write) does.
#[allow(clippy::missing_errors_doc)]
pub trait XstateWrite: XstateRead {
    /// Writes `reg` from little-endian bytes (memory order for AMX),
    /// making its components live first. Nothing is written when any piece
    /// cannot be.
    ///
    /// # Errors
    ///
    /// [`AccessError::NoRegister`], [`AccessError::WrongWidth`], and the
    /// implementer's errors for a component it cannot hold.
    fn write(&mut self, reg: Register, value: &[u8]) -> Result<(), AccessError>;

    /// Sets the x87 control word.
    fn set_fcw(&mut self, v: u16) -> Result<(), AccessError> {
        self.write(Register::Fcw, &v.to_le_bytes())
    }
    /// Sets the x87 status word.
    fn set_fsw(&mut self, v: u16) -> Result<(), AccessError> {
        self.write(Register::Fsw, &v.to_le_bytes())
    }
    /// Sets the abridged x87 tag word.
    fn set_ftw(&mut self, v: u8) -> Result<(), AccessError> {
        self.write(Register::Ftw, &[v])
    }
    /// Sets the last x87 opcode.
    fn set_fop(&mut self, v: u16) -> Result<(), AccessError> {
        self.write(Register::Fop, &v.to_le_bytes())
    }
    /// Sets the last x87 instruction pointer.
    fn set_fip(&mut self, v: u64) -> Result<(), AccessError> {
        self.write(Register::Fip, &v.to_le_bytes())
    }
    /// Sets the last x87 data pointer.
    fn set_fdp(&mut self, v: u64) -> Result<(), AccessError> {
        self.write(Register::Fdp, &v.to_le_bytes())
    }
    /// Sets MXCSR (making SSE live if SSE and AVX are both init).
    fn set_mxcsr(&mut self, v: u32) -> Result<(), AccessError> {
        self.write(Register::Mxcsr, &v.to_le_bytes())
    }
    /// Sets PKRU (bytes 4..8 of the component are written as zero).
    fn set_pkru(&mut self, v: u32) -> Result<(), AccessError> {
        self.write(Register::Pkru, &v.to_le_bytes())
    }
    /// Sets MPX BNDCFGU.
    fn set_bndcfgu(&mut self, v: u64) -> Result<(), AccessError> {
        self.write(Register::Bndcfgu, &v.to_le_bytes())
    }
    /// Sets MPX BNDSTATUS.
    fn set_bndstatus(&mut self, v: u64) -> Result<(), AccessError> {
        self.write(Register::Bndstatus, &v.to_le_bytes())
    }
    /// Sets XMM`i` (0..16).
    fn set_xmm(&mut self, i: usize, v: u128) -> Result<(), AccessError> {
        self.write(Register::Xmm(index("xmm", i)?), &v.to_le_bytes())
    }
    /// Sets opmask k`i` (0..8).
    fn set_k(&mut self, i: usize, v: u64) -> Result<(), AccessError> {
        self.write(Register::K(index("k", i)?), &v.to_le_bytes())
    }
    /// Sets MPX BND`i` (0..4).
    fn set_bnd(&mut self, i: usize, v: u128) -> Result<(), AccessError> {
        self.write(Register::Bnd(index("bnd", i)?), &v.to_le_bytes())
    }
    /// Sets APX r`i` (16..32).
    fn set_r(&mut self, i: usize, v: u64) -> Result<(), AccessError> {
        self.write(Register::R(index("r", i)?), &v.to_le_bytes())
    }
    /// Sets ST`i` (0..8) from the 80-bit value's 10 bytes.
    fn set_st(&mut self, i: usize, v: [u8; 10]) -> Result<(), AccessError> {
        self.write(Register::St(index("st", i)?), &v)
    }
    /// Sets YMM`i` (0..16) from `[low, high]`.
    fn set_ymm(&mut self, i: usize, v: [u128; 2]) -> Result<(), AccessError> {
        self.write(Register::Ymm(index("ymm", i)?), &lane_bytes::<2, 32>(v))
    }
    /// Sets ZMM`i` (0..32) from four lanes, lowest first.
    fn set_zmm(&mut self, i: usize, v: [u128; 4]) -> Result<(), AccessError> {
        self.write(Register::Zmm(index("zmm", i)?), &lane_bytes::<4, 64>(v))
    }
    /// Sets the AMX tile configuration.
    fn set_tilecfg(&mut self, v: &[u8; 64]) -> Result<(), AccessError> {
        self.write(Register::Tilecfg, v)
    }
    /// Sets AMX tile TMM`i` (0..8).
    fn set_tmm(&mut self, i: usize, v: &[u8; 1024]) -> Result<(), AccessError> {
        self.write(Register::Tmm(index("tmm", i)?), v)
    }
}

/// Integers that registers decode to.
trait LeBytes: Sized {
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

/// The register accessors' general path, through
/// [`XstateRead::read_into`]: what the trait's provided accessors do, for
/// implementers whose fast paths fall back to it.
pub(crate) mod general {
    use super::{get, index, lanes, read_array, AccessError, Register, XstateRead};

    #[cold]
    #[inline(never)]
    pub(crate) fn xmm<S: XstateRead + ?Sized>(s: &S, i: usize) -> Result<u128, AccessError> {
        get(s, Register::Xmm(index("xmm", i)?))
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn ymm<S: XstateRead + ?Sized>(s: &S, i: usize) -> Result<[u128; 2], AccessError> {
        let b: [u8; 32] = read_array(s, Register::Ymm(index("ymm", i)?))?;
        Ok(lanes(&b))
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn zmm<S: XstateRead + ?Sized>(s: &S, i: usize) -> Result<[u128; 4], AccessError> {
        let b: [u8; 64] = read_array(s, Register::Zmm(index("zmm", i)?))?;
        Ok(lanes(&b))
    }

    /// A vector register's lanes into `out`, for the views' fast paths,
    /// which gather into the same memory: `out` unchanged on error.
    #[cold]
    #[inline(never)]
    pub(crate) fn lanes_into<S: XstateRead + ?Sized, const N: usize>(
        s: &S,
        i: usize,
        out: &mut [u128; N],
    ) -> Result<(), AccessError> {
        match N {
            2 => out.copy_from_slice(&ymm(s, i)?),
            4 => out.copy_from_slice(&zmm(s, i)?),
            _ => out.copy_from_slice(&[xmm(s, i)?]),
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn r<S: XstateRead + ?Sized>(s: &S, i: usize) -> Result<u64, AccessError> {
        get(s, Register::R(index("r", i)?))
    }
}

#[inline(always)]
fn get<T: LeBytes, S: XstateRead + ?Sized>(s: &S, reg: Register) -> Result<T, AccessError> {
    let mut out = T::Bytes::default();
    s.read_into(reg, out.as_mut())?;
    Ok(T::from_le(out))
}

#[inline(always)]
fn read_array<const N: usize, S: XstateRead + ?Sized>(
    s: &S,
    reg: Register,
) -> Result<[u8; N], AccessError> {
    let mut out = [0; N];
    s.read_into(reg, &mut out)?;
    Ok(out)
}

/// Converts an index to a register number, or the error naming it.
#[inline]
fn index(family: &'static str, i: usize) -> Result<u8, AccessError> {
    u8::try_from(i).map_err(|_| AccessError::NoRegister { family, index: i })
}

/// Checks a value has the register's width.
#[inline]
pub(crate) fn check_width(reg: Register, value: &[u8]) -> Result<(), AccessError> {
    if value.len() == reg.width() {
        Ok(())
    } else {
        Err(AccessError::WrongWidth {
            register: reg,
            expected: reg.width(),
            got: value.len(),
        })
    }
}

/// Checks a register's index is in range.
#[inline]
pub(crate) fn check_register(reg: Register) -> Result<(), AccessError> {
    if reg.is_valid() {
        return Ok(());
    }
    let (family, index) = reg.family();
    Err(AccessError::NoRegister {
        family,
        index: usize::from(index.unwrap_or(0)),
    })
}

#[inline]
fn lanes<const N: usize>(b: &[u8]) -> [u128; N] {
    core::array::from_fn(|i| {
        u128::from_le_bytes(b[16 * i..16 * i + 16].try_into().expect("16 bytes"))
    })
}

#[inline]
fn lane_bytes<const N: usize, const M: usize>(v: [u128; N]) -> [u8; M] {
    let mut out = [0u8; M];
    for (i, lane) in v.iter().enumerate() {
        out[16 * i..16 * i + 16].copy_from_slice(&lane.to_le_bytes());
    }
    out
}
