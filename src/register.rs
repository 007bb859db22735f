//! Every register a view can read or write, and where its bits live.
//!
//! A [`Register`] is assembled from one to three pieces, each a byte range
//! of one state component (YMM5 is XMM5 in SSE plus 16 bytes of AVX; ZMM5
//! adds 32 bytes of ZMM_Hi256). The table here is the single place that knows
//! those places; the views, the register file and the CLI all go through it.
//!
//! ```
//! use xstate::Register;
//!
//! assert_eq!(Register::Zmm(5).to_string(), "zmm5");
//! assert_eq!(Register::parse("r17"), Some(Register::R(17)));
//! assert_eq!(Register::Zmm(5).width(), 64);
//! assert_eq!(Register::all().count(), 119);
//! ```

use crate::area::legacy;
use crate::component::ComponentId;

/// A register held in an XSAVE area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Register {
    /// x87 control word.
    Fcw,
    /// x87 status word.
    Fsw,
    /// Abridged x87 tag word.
    Ftw,
    /// Last x87 opcode.
    Fop,
    /// Last x87 instruction pointer.
    Fip,
    /// Last x87 data pointer.
    Fdp,
    /// ST0-7 (80 bits).
    St(u8),
    /// SSE control/status.
    Mxcsr,
    /// XMM0-15.
    Xmm(u8),
    /// YMM0-15.
    Ymm(u8),
    /// ZMM0-31.
    Zmm(u8),
    /// Opmask k0-7.
    K(u8),
    /// Protection-key rights.
    Pkru,
    /// MPX bound registers 0-3 (lower bound in the low 64 bits).
    Bnd(u8),
    /// MPX user configuration.
    Bndcfgu,
    /// MPX status.
    Bndstatus,
    /// AMX tile configuration (64 bytes, memory order).
    Tilecfg,
    /// AMX tiles TMM0-7 (1024 bytes each, memory order).
    Tmm(u8),
    /// APX r16-r31.
    R(u8),
}

/// A byte range of one component that holds (part of) a register.
///
/// For x87 and SSE, `offset` is the offset in the legacy region; for the
/// other components, the offset within the component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The component.
    pub component: ComponentId,
    /// Offset in bytes (see above).
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

#[inline]
const fn piece(component: ComponentId, offset: u32, len: u32) -> Piece {
    Piece {
        component,
        offset,
        len,
    }
}

/// Up to three pieces, low bytes first.
pub type Pieces = ([Piece; 3], usize);

impl Register {
    /// Every register in canonical order: fcw fsw ftw fop fip fdp st0..7
    /// mxcsr xmm0..15 ymm0..15 zmm0..31 k0..7 pkru bnd0..3 bndcfgu bndstatus
    /// tilecfg tmm0..7 r16..r31.
    pub fn all() -> impl Iterator<Item = Register> {
        use Register::*;
        let fixed = [Fcw, Fsw, Ftw, Fop, Fip, Fdp].into_iter();
        fixed
            .chain((0..8).map(St))
            .chain(core::iter::once(Mxcsr))
            .chain((0..16).map(Xmm))
            .chain((0..16).map(Ymm))
            .chain((0..32).map(Zmm))
            .chain((0..8).map(K))
            .chain(core::iter::once(Pkru))
            .chain((0..4).map(Bnd))
            .chain([Bndcfgu, Bndstatus, Tilecfg])
            .chain((0..8).map(Tmm))
            .chain((16..32).map(R))
    }

    /// The family name and index (`("xmm", Some(3))`, `("mxcsr", None)`).
    pub fn family(self) -> (&'static str, Option<u8>) {
        use Register::*;
        match self {
            Fcw => ("fcw", None),
            Fsw => ("fsw", None),
            Ftw => ("ftw", None),
            Fop => ("fop", None),
            Fip => ("fip", None),
            Fdp => ("fdp", None),
            St(i) => ("st", Some(i)),
            Mxcsr => ("mxcsr", None),
            Xmm(i) => ("xmm", Some(i)),
            Ymm(i) => ("ymm", Some(i)),
            Zmm(i) => ("zmm", Some(i)),
            K(i) => ("k", Some(i)),
            Pkru => ("pkru", None),
            Bnd(i) => ("bnd", Some(i)),
            Bndcfgu => ("bndcfgu", None),
            Bndstatus => ("bndstatus", None),
            Tilecfg => ("tilecfg", None),
            Tmm(i) => ("tmm", Some(i)),
            R(i) => ("r", Some(i)),
        }
    }

    /// The register's name as the CLI prints it (`xmm3`, `r16`, `tilecfg`).
    #[cfg(feature = "alloc")]
    pub fn name(self) -> alloc::string::String {
        alloc::string::ToString::to_string(&self)
    }

    /// Parses a name as [`Display`](core::fmt::Display) prints it
    /// (`xmm3`, not `xmm03` or `XMM3`).
    pub fn parse(name: &str) -> Option<Register> {
        Register::all().find(|r| match r.family() {
            (family, None) => name == family,
            (family, Some(i)) => name.strip_prefix(family).is_some_and(|digits| {
                let canonical = digits.bytes().all(|b| b.is_ascii_digit())
                    && (digits == "0" || !digits.starts_with('0'));
                canonical && digits.parse::<u8>() == Ok(i)
            }),
        })
    }

    /// Whether the index is in range for the register family.
    #[inline]
    pub fn is_valid(self) -> bool {
        use Register::*;
        match self {
            St(i) | K(i) | Tmm(i) => i < 8,
            Xmm(i) | Ymm(i) => i < 16,
            Zmm(i) => i < 32,
            Bnd(i) => i < 4,
            R(i) => (16..32).contains(&i),
            _ => true,
        }
    }

    /// Width in bytes.
    #[inline]
    pub fn width(self) -> usize {
        let (pieces, n) = self.pieces();
        pieces[..n].iter().map(|p| p.len as usize).sum()
    }

    /// Whether the value is a byte string in memory order (AMX) rather than
    /// a little-endian number.
    #[inline]
    pub fn is_memory_order(self) -> bool {
        matches!(self, Register::Tilecfg | Register::Tmm(_))
    }

    /// The component pieces the register is assembled from, low bytes first.
    /// Indices must be valid ([`is_valid`](Self::is_valid)); an invalid one
    /// gives meaningless pieces, never a panic.
    #[inline]
    pub fn pieces(self) -> Pieces {
        use ComponentId as C;
        use Register::*;
        let none = piece(C::X87, 0, 0);
        let one = |p| ([p, none, none], 1);
        match self {
            Fcw => one(piece(C::X87, legacy::FCW, 2)),
            Fsw => one(piece(C::X87, legacy::FSW, 2)),
            Ftw => one(piece(C::X87, legacy::FTW, 1)),
            Fop => one(piece(C::X87, legacy::FOP, 2)),
            Fip => one(piece(C::X87, legacy::FIP, 8)),
            Fdp => one(piece(C::X87, legacy::FDP, 8)),
            St(i) => one(piece(C::X87, legacy::ST + 16 * i as u32, 10)),
            Mxcsr => one(piece(C::SSE, legacy::MXCSR as u32, 4)),
            Xmm(i) => one(xmm(i)),
            Ymm(i) => ([xmm(i), ymm_hi(i), none], 2),
            Zmm(i) if i < 16 => (
                [xmm(i), ymm_hi(i), piece(C::ZMM_HI256, 32 * i as u32, 32)],
                3,
            ),
            Zmm(i) => one(piece(C::HI16_ZMM, 64 * (i as u32 - 16), 64)),
            K(i) => one(piece(C::OPMASK, 8 * i as u32, 8)),
            Pkru => one(piece(C::PKRU, 0, 4)),
            Bnd(i) => one(piece(C::MPX_BNDREGS, 16 * i as u32, 16)),
            Bndcfgu => one(piece(C::MPX_BNDCSR, 0, 8)),
            Bndstatus => one(piece(C::MPX_BNDCSR, 8, 8)),
            Tilecfg => one(piece(C::TILECFG, 0, 64)),
            Tmm(i) => one(piece(C::TILEDATA, 1024 * i as u32, 1024)),
            R(i) => one(piece(C::APX, 8 * (i as u32).saturating_sub(16), 8)),
        }
    }
}

#[inline]
fn xmm(i: u8) -> Piece {
    piece(ComponentId::SSE, legacy::XMM + 16 * i as u32, 16)
}

#[inline]
fn ymm_hi(i: u8) -> Piece {
    piece(ComponentId::AVX, 16 * i as u32, 16)
}

impl core::fmt::Display for Register {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.family() {
            (family, None) => f.write_str(family),
            (family, Some(i)) => write!(f, "{family}{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Register;

    /// `pieces` of any index, valid or not, answers without a panic.
    #[test]
    fn pieces_of_any_index_never_panic() {
        let families: [fn(u8) -> Register; 8] = [
            Register::St,
            Register::Xmm,
            Register::Ymm,
            Register::Zmm,
            Register::K,
            Register::Bnd,
            Register::Tmm,
            Register::R,
        ];
        for make in families {
            for i in 0..=u8::MAX {
                let (_, n) = make(i).pieces();
                assert!((1..=3).contains(&n));
            }
        }
    }
}
