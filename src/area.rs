//! The fixed parts of an XSAVE area as zerocopy types: the legacy (FXSAVE)
//! region and the XSAVE header, and the payloads of the extended components.
//!
//! Every field is unaligned little-endian, so these types overlay a buffer
//! of any alignment without copying.
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

use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The 512-byte legacy region written by FXSAVE and by XSAVE for x87 and SSE.
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
    pub software: [u8; 48],
}

/// The 64-byte XSAVE header at offset 512.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct XsaveHeader {
    /// Components not in their init configuration.
    pub xstate_bv: U64,
    /// Compacted format: bit 63 set, and the components the area holds.
    pub xcomp_bv: U64,
    /// Must be zero.
    pub reserved: [u8; 48],
}

/// Offset of the XSAVE header.
pub const HEADER_OFFSET: usize = 512;
/// Offset of the 48 reserved header bytes.
pub const HEADER_RESERVED: core::ops::Range<usize> = 528..576;
/// XCOMP_BV bit 63: the area is in the compacted format.
pub const XCOMP_BV_COMPACTED: u64 = 1 << 63;
/// MXCSR's init value.
pub const MXCSR_INIT: u32 = 0x1F80;
/// FCW's init value.
pub const FCW_INIT: u16 = 0x037F;

const _: () = {
    assert!(size_of::<LegacyRegion>() == 512);
    assert!(size_of::<XsaveHeader>() == 64);
    assert!(offset_of!(LegacyRegion, fip) == 8);
    assert!(offset_of!(LegacyRegion, mxcsr) == 24);
    assert!(offset_of!(LegacyRegion, mxcsr_mask) == 28);
    assert!(offset_of!(LegacyRegion, st) == 32);
    assert!(offset_of!(LegacyRegion, xmm) == 160);
    assert!(offset_of!(LegacyRegion, reserved) == 416);
    assert!(offset_of!(LegacyRegion, software) == 464);
};

/// Byte offsets of legacy-region fields, for table-driven access.
pub mod legacy {
    use super::LegacyRegion;
    use core::mem::offset_of;

    /// FCW.
    pub const FCW: u32 = offset_of!(LegacyRegion, fcw) as u32;
    /// FSW.
    pub const FSW: u32 = offset_of!(LegacyRegion, fsw) as u32;
    /// Abridged FTW.
    pub const FTW: u32 = offset_of!(LegacyRegion, ftw) as u32;
    /// FOP.
    pub const FOP: u32 = offset_of!(LegacyRegion, fop) as u32;
    /// FIP.
    pub const FIP: u32 = offset_of!(LegacyRegion, fip) as u32;
    /// FDP.
    pub const FDP: u32 = offset_of!(LegacyRegion, fdp) as u32;
    /// MXCSR.
    pub const MXCSR: u32 = offset_of!(LegacyRegion, mxcsr) as u32;
    /// ST0.
    pub const ST: u32 = offset_of!(LegacyRegion, st) as u32;
    /// XMM0.
    pub const XMM: u32 = offset_of!(LegacyRegion, xmm) as u32;
    /// The x87 component's bytes: 0..24 (all but MXCSR and MXCSR_MASK) and 32..160.
    pub const X87_RANGES: [core::ops::Range<usize>; 2] = [0..24, 32..160];
    /// The SSE component's register bytes (MXCSR aside).
    pub const SSE_RANGE: core::ops::Range<usize> = 160..416;
}

/// Payload of the APX component (19): r16..r31.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct ApxState {
    /// r16..r31, little-endian.
    pub r: [U64; 16],
}

/// Payload of the opmask component (5): k0..k7.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct OpmaskState {
    /// k0..k7.
    pub k: [U64; 8],
}

/// One MPX bound register.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct Bound {
    /// Lower bound.
    pub lower: U64,
    /// Upper bound (stored inverted by the hardware, shown as stored).
    pub upper: U64,
}

const _: () = {
    assert!(size_of::<ApxState>() == 128);
    assert!(size_of::<OpmaskState>() == 64);
    assert!(size_of::<Bound>() == 16);
    let _ = U16::ZERO;
    let _ = U32::ZERO;
};
