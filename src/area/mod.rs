//! The fixed parts of an XSAVE area as zerocopy types: the 512-byte legacy
//! (FXSAVE) region, the 64-byte XSAVE header and its checks, and the AMX
//! tile configuration.
//!
//! Every field is unaligned little-endian, so these types overlay a buffer
//! of any alignment without copying (Intel SDM vol. 1, 10.5.1 and 13.4).
//!
//! ```
//! use xstate::area::LegacyRegion;
//! use zerocopy::FromBytes;
//!
//! let mut bytes = [0u8; 512];
//! bytes[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
//! let legacy = LegacyRegion::ref_from_bytes(&bytes[..]).unwrap();
//! assert_eq!(legacy.mxcsr.get(), 0x1f80);
//! ```

mod header;
mod supervisor;
mod tiles;

pub use header::{init_area, AreaHeader, Field, Format, HeaderError};
#[cfg(feature = "alloc")]
pub(crate) use supervisor::CHECKED as CHECKED_SUPERVISOR;
pub use supervisor::{check_supervisor, SupervisorValueError};
pub use tiles::{palette1, TileConfig, TileConfigError};

use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The 512-byte legacy region written by FXSAVE and by XSAVE for x87 and
/// SSE (bytes 0..512 of every XSAVE area).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct LegacyRegion {
    /// x87 control word.
    pub fcw: U16,
    /// x87 status word.
    pub fsw: U16,
    /// Abridged x87 tag word (one bit per register, 1 = valid).
    pub ftw: u8,
    /// Reserved.
    pub reserved1: u8,
    /// Last x87 opcode.
    pub fop: U16,
    /// Last x87 instruction pointer (64-bit format).
    pub fip: U64,
    /// Last x87 data pointer (64-bit format).
    pub fdp: U64,
    /// SSE control and status.
    pub mxcsr: U32,
    /// MXCSR bits the CPU supports.
    pub mxcsr_mask: U32,
    /// ST0-ST7 / MM0-MM7, 80 bits used of each 16-byte slot.
    pub st: [[u8; 16]; 8],
    /// XMM0-XMM15.
    pub xmm: [[u8; 16]; 16],
    /// Reserved (416..464).
    pub reserved: [u8; 48],
    /// Available to software (464..512); ignored by the CPU and by KVM.
    /// Linux writes its user XCR0 at 464 in ptrace, core-dump and KVM copies.
    pub software: [u8; 48],
}

/// The 64-byte XSAVE header at offset 512.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct XsaveHeader {
    /// XSTATE_BV: the components not in their init configuration.
    pub xstate_bv: U64,
    /// XCOMP_BV: bit 63 set in the compacted format, with the components
    /// the area holds.
    pub xcomp_bv: U64,
    /// Must be zero.
    pub reserved: [u8; 48],
}

impl LegacyRegion {
    /// The legacy region at the start of `area` (at least 512 bytes).
    #[inline]
    pub(crate) fn of(area: &[u8]) -> &LegacyRegion {
        LegacyRegion::ref_from_bytes(&area[..LEGACY_SIZE]).expect("512 bytes, unaligned type")
    }

    /// The legacy region at the start of `area` (at least 512 bytes), writable.
    #[inline]
    #[cfg(all(feature = "kvm", target_arch = "x86_64"))]
    pub(crate) fn of_mut(area: &mut [u8]) -> &mut LegacyRegion {
        LegacyRegion::mut_from_bytes(&mut area[..LEGACY_SIZE]).expect("512 bytes, unaligned type")
    }
}

impl XsaveHeader {
    /// The header of `area` (at least 576 bytes).
    #[inline]
    pub(crate) fn of(area: &[u8]) -> &XsaveHeader {
        XsaveHeader::ref_from_bytes(&area[HEADER_OFFSET..EXTENDED_START])
            .expect("64 bytes, unaligned type")
    }

    /// The header of `area` (at least 576 bytes), writable.
    #[inline]
    pub(crate) fn of_mut(area: &mut [u8]) -> &mut XsaveHeader {
        XsaveHeader::mut_from_bytes(&mut area[HEADER_OFFSET..EXTENDED_START])
            .expect("64 bytes, unaligned type")
    }

    /// Whether the 48 reserved bytes are all zero, tested a word at a
    /// time: on every view opened and every pre-flight check.
    #[inline(always)]
    pub(crate) fn reserved_is_zero(&self) -> bool {
        self.reserved.chunks_exact(8).fold(0u64, |acc, w| {
            acc | u64::from_ne_bytes(w.try_into().expect("8 bytes"))
        }) == 0
    }

    /// The first non-zero reserved byte, for the error that names it: its
    /// offset in the area and its value (offset 528 and 0 when there is
    /// none).
    #[cold]
    pub(crate) fn first_reserved_byte(&self) -> (usize, u8) {
        let i = self.reserved.iter().position(|&b| b != 0).unwrap_or(0);
        (HEADER_RESERVED.start + i, self.reserved[i])
    }
}

/// Size of the legacy region.
pub(crate) const LEGACY_SIZE: usize = size_of::<LegacyRegion>();
/// Offset of the XSAVE header.
pub(crate) const HEADER_OFFSET: usize = LEGACY_SIZE;
/// Where the extended region starts: after the legacy region and the header.
pub const EXTENDED_START: usize = HEADER_OFFSET + size_of::<XsaveHeader>();
/// Offset of the 48 reserved header bytes.
pub(crate) const HEADER_RESERVED: core::ops::Range<usize> =
    HEADER_OFFSET + offset_of!(XsaveHeader, reserved)..EXTENDED_START;
/// MXCSR's init value.
pub const MXCSR_INIT: u32 = 0x1F80;
/// FCW's init value.
pub const FCW_INIT: u16 = 0x037F;

const _: () = {
    assert!(size_of::<LegacyRegion>() == 512);
    assert!(size_of::<XsaveHeader>() == 64);
    assert!(EXTENDED_START == 576);
    assert!(offset_of!(LegacyRegion, fip) == 8);
    assert!(offset_of!(LegacyRegion, mxcsr) == 24);
    assert!(offset_of!(LegacyRegion, mxcsr_mask) == 28);
    assert!(offset_of!(LegacyRegion, st) == 32);
    assert!(offset_of!(LegacyRegion, xmm) == 160);
    assert!(offset_of!(LegacyRegion, reserved) == 416);
    assert!(offset_of!(LegacyRegion, software) == 464);
    assert!(offset_of!(XsaveHeader, xcomp_bv) == 8);
    assert!(offset_of!(XsaveHeader, reserved) == 16);
};

/// Byte offsets of legacy-region fields, for table-driven access.
pub(crate) mod legacy {
    use super::LegacyRegion;
    use core::mem::{offset_of, size_of};

    /// FCW.
    pub(crate) const FCW: u32 = offset_of!(LegacyRegion, fcw) as u32;
    /// FSW.
    pub(crate) const FSW: u32 = offset_of!(LegacyRegion, fsw) as u32;
    /// Abridged FTW.
    pub(crate) const FTW: u32 = offset_of!(LegacyRegion, ftw) as u32;
    /// FOP.
    pub(crate) const FOP: u32 = offset_of!(LegacyRegion, fop) as u32;
    /// FIP.
    pub(crate) const FIP: u32 = offset_of!(LegacyRegion, fip) as u32;
    /// FDP.
    pub(crate) const FDP: u32 = offset_of!(LegacyRegion, fdp) as u32;
    /// MXCSR.
    pub(crate) const MXCSR: usize = offset_of!(LegacyRegion, mxcsr);
    /// MXCSR_MASK, in bytes from the start of the area.
    #[cfg(feature = "alloc")]
    pub(crate) const MXCSR_MASK: usize = offset_of!(LegacyRegion, mxcsr_mask);
    /// ST0.
    pub(crate) const ST: u32 = offset_of!(LegacyRegion, st) as u32;
    /// XMM0.
    pub(crate) const XMM: u32 = offset_of!(LegacyRegion, xmm) as u32;
    /// The x87 component's bytes: 0..24 (all but MXCSR and MXCSR_MASK) and 32..160.
    pub(crate) const X87_RANGES: [core::ops::Range<usize>; 2] = [
        0..MXCSR,
        offset_of!(LegacyRegion, st)..offset_of!(LegacyRegion, xmm),
    ];
    /// The x87 component's size as CPUID reports it: up to XMM0.
    pub(crate) const X87_END: usize = offset_of!(LegacyRegion, xmm);
    /// The SSE component's register bytes (MXCSR aside).
    pub(crate) const SSE_RANGE: core::ops::Range<usize> =
        offset_of!(LegacyRegion, xmm)..offset_of!(LegacyRegion, reserved);
    /// Bytes of XMM0-15.
    pub(crate) const XMM_BYTES: usize = size_of::<[[u8; 16]; 16]>();
    /// Bytes of the x87 registers proper (both ranges of [`X87_RANGES`]).
    #[cfg(feature = "alloc")]
    pub(crate) const X87_BYTES: usize =
        X87_RANGES[0].end - X87_RANGES[0].start + (X87_RANGES[1].end - X87_RANGES[1].start);
}
